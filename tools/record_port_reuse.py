#!/usr/bin/env python3
"""Record a real loopback capture of many short connections whose client ports the kernel
reuses, with the client's own record of every connection as the truth.

    sudo python3 tools/record_port_reuse.py                    # 20,000 connections
    sudo python3 tools/record_port_reuse.py --connections 500 --out /tmp/x.pcap.gz

In a private network namespace (``tdr``) the ephemeral port range is cut to 16 ports, a
server on 127.0.0.1:8080 answers each request and closes first (its side goes to TIME_WAIT),
and a client connects, sends a request, reads the answer to the end and closes, one
connection after another.  Every new connection therefore takes a port that an earlier one
used, and its SYN reaches the server's TIME_WAIT socket for the same 4-tuple, which accepts
it (``tcp_timewait_state_process`` -> ``TCP_TW_SYN``).  tcpdump records the loopback with a
96-byte snap length (every header, no payload), gzip-compressed.

The record (``OUT`` with ``.record.json`` for ``.pcap.gz``; not a ``.truth.json``: no kernel trace) holds what the client saw:
the number of connections and the local port of each, in order, and how many the server
accepted.  Stdlib only; needs root, ip(8) and tcpdump.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NS = "tdr"
PORTS = (40000, 40015)

SERVER = r"""
import socket, sys
n = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 8080))
srv.listen(128)
print("ready", flush=True)
for _ in range(n):
    c, _ = srv.accept()
    c.recv(100)
    c.sendall(b"r" * 40)
    c.close()  # the server closes first: TIME_WAIT on its side
print("accepted", n, flush=True)
"""

CLIENT = r"""
import json, socket, sys, time
n = int(sys.argv[1])
out = []
for i in range(n):
    s = socket.socket()
    s.connect(("127.0.0.1", 8080))
    port = s.getsockname()[1]
    s.sendall(b"q" * 20)
    while s.recv(100):
        pass
    s.close()
    out.append([port, time.time()])
json.dump(out, sys.stdout)
"""


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=20000)
    p.add_argument("--out", default=str(ROOT / "sample_pcaps" / "port_reuse.pcap.gz"))
    p.add_argument("--timestamps", action="store_true",
                   help="keep TCP timestamps on (off by default: the file is smaller)")
    args = p.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        print("needs root and tcpdump", file=sys.stderr)
        return 2
    out = Path(args.out)
    raw = out.with_suffix("")  # .pcap
    sh("ip", "netns", "del", NS, check=False)
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", NS, "sysctl", "-qw",
           f"net.ipv4.ip_local_port_range={PORTS[0]} {PORTS[1]}")
        if not args.timestamps:  # 20 bytes less entropy per packet: a smaller sample
            sh("ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv4.tcp_timestamps=0")
        dump = subprocess.Popen(["ip", "netns", "exec", NS, "tcpdump", "-i", "lo", "-n", "-s",
                                 "96", "-B", "65536", "--immediate-mode", "-U", "-w", str(raw), "tcp port 8080"],
                                stderr=subprocess.PIPE, text=True)
        assert dump.stderr is not None
        line = dump.stderr.readline()  # "listening on lo ..." once it captures
        if "listening" not in line:
            raise SystemExit(f"tcpdump did not start: {line}")
        server = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c", SERVER,
                                   str(args.connections)], stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        t0 = time.time()
        client = sh("ip", "netns", "exec", NS, sys.executable, "-c", CLIENT,
                    str(args.connections))
        record = json.loads(client.stdout)
        accepted = server.stdout.readline().split()
        server.wait(timeout=30)
        time.sleep(1.0)  # the last ACKs reach tcpdump
        dump.terminate()
        _, err = dump.communicate(timeout=30)
        kernel = sh("uname", "-r").stdout.strip()
    finally:
        sh("ip", "netns", "del", NS, check=False)
    dropped = [ln for ln in err.splitlines() if "dropped by kernel" in ln]
    with open(raw, "rb") as src, gzip.open(out, "wb", compresslevel=9) as dst:
        shutil.copyfileobj(src, dst)
    raw.unlink()
    ports = [port for port, _ in record]
    truth = {
        "description": "loopback, one namespace, ephemeral ports cut to "
                       f"{PORTS[0]}-{PORTS[1]}; the server closes first; {len(record)} "
                       "connections one after another, each on a port an earlier one used",
        "recorded_with": "tools/record_port_reuse.py",
        "kernel": kernel,
        "tcp_timestamps": args.timestamps,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        "connections": len(record),
        "server_accepted": int(accepted[1]) if accepted[:1] == ["accepted"] else None,
        "client_ports": {str(port): ports.count(port) for port in sorted(set(ports))},
        "tcpdump": dropped,
        "client_ports_in_order": ports,
    }
    truth_path = Path(str(out).removesuffix(".pcap.gz") + ".record.json")
    truth_path.write_text(json.dumps(truth, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {truth_path}: "
          f"{len(record)} connections on {len(set(ports))} client ports; {dropped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
