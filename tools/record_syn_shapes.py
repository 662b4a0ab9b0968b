#!/usr/bin/env python3
"""Record a real loopback capture of the three ways a handshake ends before it is over, with
the client's own record of each as the truth; or (``--recording self_connect``) of a socket
connected to itself; or (``--recording simultaneous_open``) of two sockets connecting to each
other; or (``--recording socket_gone``) of a client whose socket goes silently after the
handshake, so that its kernel resets the server's data (the script's comments say how).

    sudo python3 tools/record_syn_shapes.py            # writes sample_pcaps/syn_shapes.pcap
    sudo python3 tools/record_syn_shapes.py --out /tmp/x.pcap
    sudo python3 tools/record_syn_shapes.py --recording self_connect   # self_connect.pcap
    sudo python3 tools/record_syn_shapes.py --recording simultaneous_open
    sudo python3 tools/record_syn_shapes.py --recording socket_gone

In a private network namespace (``tds``), with ``net.ipv4.tcp_syn_retries`` at 2 and an
nftables rule that drops every segment to port 9, a client:

* connects to 127.0.0.1:7, where nothing listens: the kernel answers the SYN with an
  RST+ACK, ``connect()`` fails with ECONNREFUSED (a scan of a closed port looks so);
* connects to 127.0.0.1:9: the SYN is dropped and sent again (with its ISN) until
  ``connect()`` gives up with ETIMEDOUT, about 7 s later (a SYN flood, or a filtered port,
  looks so; the 6.x kernel this was recorded on sent it six times, a second apart);
* sends one SYN to 127.0.0.1:8080, where a socket listens, from a raw socket: the server
  answers with a SYN-ACK, which the client's kernel, having no socket for it, answers with
  an RST (a SYN scan of an open port, ``nmap -sS``, looks so).

tcpdump records the loopback with a 96-byte snap length.  The record (``OUT`` with
``.record.json`` for ``.pcap``) holds what the client saw (each probe's ports, ISN where the
client chose it, and outcome) and, under ``kernel``, what the kernel recorded meanwhile for
the probes' ports (gen_samples.py's tracer: ``sock:inet_sock_set_state`` and
``tcp:tcp_send_reset`` in a private ftrace instance, times on the capture's clock): which
sockets existed and every state they went through, and which RSTs came from a socket or from
none.  (Not a ``.truth.json``: that format describes two sockets per connection.)  Stdlib
only; needs root, ip(8), nft, tcpdump and tracefs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NS = "tds"
sys.path.insert(0, str(ROOT / "tools"))
import gen_samples  # noqa: E402  (its tracer and trace parser)

CLIENT = r"""
import errno, json, socket, struct, time

def attempt(port, probe):
    s = socket.socket()
    started = time.monotonic()
    try:
        s.connect(("127.0.0.1", port))
        outcome = "connected"
    except OSError as exc:
        outcome = errno.errorcode[exc.errno]
    record = {"probe": probe, "client_port": s.getsockname()[1], "server_port": port,
              "outcome": outcome, "seconds": round(time.monotonic() - started, 1)}
    s.close()
    return record

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

out = [attempt(7, "refused"), attempt(9, "unanswered")]
srv = socket.socket()
srv.bind(("127.0.0.1", 8080))
srv.listen(8)
sport, isn = 45678, 123456789
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
head = struct.pack("!HHIIBBHHH", sport, 8080, isn, 0, 5 << 4, 0x02, 64240, 0, 0)
pseudo = socket.inet_aton("127.0.0.1") * 2 + struct.pack("!BBH", 0, 6, len(head))
head = head[:16] + struct.pack("!H", checksum(pseudo + head)) + head[18:]
raw.sendto(head, ("127.0.0.1", 0))
time.sleep(1.5)
out.append({"probe": "aborted", "client_port": sport, "server_port": 8080, "isn": isn,
            "outcome": "SYN from a raw socket; the kernel resets the SYN-ACK"})
print(json.dumps(out))
"""


SELF_CONNECT = r"""
import json, socket, subprocess, time

# A socket bound to a port connects to that same port, where nothing listens: its SYN comes
# back to itself, a simultaneous open with itself (Linux allows it: a client retrying a
# local port in the ephemeral range can end up so).  It sends data, reads it back, and
# closes: its FIN comes back to it too.
s = socket.socket()
s.bind(("127.0.0.1", 46000))
started = time.monotonic()
s.connect(("127.0.0.1", 46000))
s.sendall(b"hello, me")
echo = s.recv(100)
time.sleep(0.2)
s.close()
time.sleep(0.5)
# the kernel's own word on where it ended: TIME_WAIT is a mini-socket that the state
# tracepoint does not report (the full socket is reported CLOSED as it is replaced)
ss = subprocess.run(["ss", "-Htan", "state", "time-wait", "sport", "=", ":46000"],
                    capture_output=True, text=True, check=True).stdout.split("\n")
print(json.dumps([{"probe": "self-connected", "client_port": 46000, "server_port": 46000,
                   "outcome": "connected", "echo": echo.decode(),
                   "time_wait_after_close": [" ".join(line.split()) for line in ss if line]}]))
"""
SIMULTANEOUS_OPEN = r"""
import json, select, socket, subprocess, time

# Two sockets, each bound to its own port, connect to each other: a simultaneous open
# (TCP hole punching does this through NATs).  On loopback a SYN arrives as it is sent, so
# the first SYN would find no socket in SYN_SENT and be reset; so the SYNs (without ACK)
# to these ports are dropped at input (after the capture point, as a NAT or the path
# drops them) until both sockets have sent theirs, and the retransmitted SYNs meet sockets
# in SYN_SENT.  Then data both ways, and the first socket closes first.
def probe(name, a_port, b_port, gap):
    a, b = socket.socket(), socket.socket()
    a.bind(("127.0.0.1", a_port))
    b.bind(("127.0.0.1", b_port))
    a.setblocking(False)
    b.setblocking(False)
    subprocess.run(["nft", f"add rule inet tds in tcp dport {{ {a_port}, {b_port} }} "
                    "tcp flags & (syn | ack) == syn drop"], check=True)
    a.connect_ex(("127.0.0.1", b_port))
    time.sleep(gap)
    b.connect_ex(("127.0.0.1", a_port))
    time.sleep(0.2)
    subprocess.run(["nft", "flush chain inet tds in"], check=True)
    select.select([], [a, b], [], 5)
    time.sleep(0.2)  # (both are writable when connected; the later one a moment after)
    errors = [s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) for s in (a, b)]
    a.setblocking(True)
    b.setblocking(True)
    a.sendall(b"ping")
    got_b = b.recv(100)
    b.sendall(b"pong")
    got_a = a.recv(100)
    a.close()
    time.sleep(0.1)
    eof = b.recv(100)
    b.close()
    time.sleep(0.3)
    ss = subprocess.run(["ss", "-Htan", "state", "time-wait"], capture_output=True,
                        text=True, check=True).stdout.split("\n")
    return {"probe": name, "client_port": a_port, "server_port": b_port,
            "second_connect_after_s": gap, "so_error": errors,
            "outcome": "connected" if errors == [0, 0] and got_b == b"ping" and
            got_a == b"pong" and eof == b"" else "failed",
            "time_wait_after_close": [" ".join(line.split()) for line in ss
                                      if f":{a_port} " in line + " "]}

print(json.dumps([probe("one SYN meets a SYN_SENT socket", 46001, 46002, 0.3),
                  probe("SYNs cross", 46003, 46004, 0.0)]))
"""
SOCKET_GONE = r"""
import json, socket, struct, subprocess, time

# A client connects and sends nothing; then its socket goes without a word on the wire (as
# when its host restarts, or a NAT on the way forgets the mapping): it is closed with
# SO_LINGER 0 while nftables drops its segments at output (before the capture point), so
# its RST is not seen.  The server then sends data; the client's kernel, with no socket
# for it, answers with a bare RST whose sequence number is the data's ACK number, the
# client's ISN + 1 (tcp_v4_send_reset): what a SYN_SENT socket that never took the
# SYN-ACK would send too, but the client's ACK of the SYN-ACK was seen.
srv = socket.socket()
srv.bind(("127.0.0.1", 8081))
srv.listen(1)
c = socket.socket()
c.bind(("127.0.0.1", 46010))
c.connect(("127.0.0.1", 8081))
conn, _ = srv.accept()
time.sleep(0.2)
subprocess.run(["nft", "add chain inet tds out { type filter hook output priority 0; }; "
                "add rule inet tds out tcp sport 46010 drop"], check=True)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
time.sleep(0.2)
subprocess.run(["nft", "flush chain inet tds out"], check=True)
conn.sendall(b"hello")
time.sleep(0.2)
try:
    got = conn.recv(100)
    outcome = "read %r" % got
except ConnectionResetError:
    outcome = "ECONNRESET"
conn.close()
srv.close()
print(json.dumps([{"probe": "socket gone", "client_port": 46010, "server_port": 8081,
                   "outcome": outcome}]))
"""
RECORDINGS = {"syn_shapes": CLIENT, "self_connect": SELF_CONNECT,
              "simultaneous_open": SIMULTANEOUS_OPEN, "socket_gone": SOCKET_GONE}
"""What each recording runs in the namespace: a script that prints its probes as JSON."""


def _event(ev: dict) -> dict:
    """A traced event as the record keeps it: the time on the capture's clock (6 places),
    the socket's own (local) and far (remote) endpoint, and the state change or RST."""
    out = {"ts": round(ev["ts"], 6), "event": ev["name"], "local": list(ev["local"]),
           "remote": list(ev["remote"])}
    for key in ("old", "new", "state", "reason"):
        if key in ev:
            out[key] = ev[key]
    return out


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, text=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recording", choices=sorted(RECORDINGS), default="syn_shapes",
                    help="what to record (default: %(default)s)")
    ap.add_argument("--out", help="the capture (default: sample_pcaps/RECORDING.pcap)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (a network namespace, nftables, tcpdump)", file=sys.stderr)
        return 2
    for tool in ("ip", "nft", "tcpdump"):
        if shutil.which(tool) is None:
            print(f"needs {tool}", file=sys.stderr)
            return 2
    out = Path(args.out or ROOT / "sample_pcaps" / f"{args.recording}.pcap")
    tracer = gen_samples.Tracer()
    sh("ip", "netns", "del", NS, check=False)
    sh("ip", "netns", "add", NS)
    dump = None
    try:
        ns = ("ip", "netns", "exec", NS)
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        sh(*ns, "sysctl", "-qw", "net.ipv4.tcp_syn_retries=2")
        sh(*ns, "nft", "add table inet tds; add chain inet tds in { type filter hook input "
           "priority 0; }; add rule inet tds in tcp dport 9 drop")
        # (--immediate-mode: each packet handed over as it comes, not a buffer a second
        # later, which the stop at the end could lose)
        dump = subprocess.Popen([*ns, "tcpdump", "-i", "lo", "-s", "96", "-U",
                                 "--immediate-mode", "-w", str(out)],
                                stderr=subprocess.PIPE, text=True)
        assert dump.stderr is not None
        dump.stderr.readline()  # "listening on lo ...": capturing from here
        time.sleep(0.5)
        tracer.setup()
        tracer.start()
        record = json.loads(sh(*ns, sys.executable, "-c", RECORDINGS[args.recording]).stdout)
        time.sleep(0.5)
        trace, overruns = tracer.stop()
        assert not overruns, f"the trace lost {overruns} events"
    finally:
        tracer.teardown()
        if dump is not None:
            dump.send_signal(signal.SIGINT)
            dump.wait(10)
        sh("ip", "netns", "del", NS, check=False)
    offset, _ = gen_samples.clock_offset()
    ports = {p["client_port"] for p in record} | {p["server_port"] for p in record}
    kernel = [_event(ev) for ev in gen_samples.parse_trace(trace, offset)
              if ev.get("local", ("", 0))[1] in ports or ev.get("remote", ("", 0))[1] in ports]
    record_path = out.with_name(out.name[:-len(".pcap")] + ".record.json")
    record_path.write_text(json.dumps({"capture": out.name, "probes": record,
                                       "kernel": kernel}, indent=2) + "\n")
    print(f"wrote {out} and {record_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
