"""Resource bounds: wall time and peak memory of ``teardown-analyze`` on two big captures.

* ``synflood``: a million SYNs, each from a different 4-tuple (a SYN flood): a million
  connections, none of which ever finishes, so none leaves the tracker by itself;
* ``onestream``: one connection of a million packets (handshake, 499,997 data segments
  of 100 bytes each ACKed, four-way close).

Both are written to /tmp (``--dir``) with ``struct`` (raw IPv4, LINKTYPE_RAW; TCP checksums
are left at zero: the analysis does not verify them).  Each run is
``/usr/bin/time -v teardown-analyze analyze FILE --format FMT -q > /dev/null``; the
script prints wall time and peak resident memory (the ``Maximum resident set size`` of
GNU time) as a Markdown table for ``benchmarks/BOUNDS.md``.  When the CLI has
``--max-connections``, the SYN flood runs a second time with ``--max-connections 100000``
and the warning it prints is shown.

Usage::

    python benchmarks/bounds.py                       # both captures, table format
    python benchmarks/bounds.py --packets 200000      # smaller, quicker
    python benchmarks/bounds.py --formats table,csv --keep

Needs GNU time (``apt-get install -y time``).  Not a test: the figures depend on the
machine; ``BOUNDS.md`` records them with the date and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import time
from datetime import date

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
REC = struct.Struct("<IIII")
T0 = 1_700_000_000


def _ipv4_header(total: int, src: bytes, dst: bytes) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, src, dst)
    s = sum(struct.unpack("!10H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:]


def write_synflood(path: str, n: int) -> None:
    """``n`` SYNs from 10.x.y.z:port to 192.0.2.1:80, every one a new 4-tuple, 1 us apart."""
    dst = bytes([192, 0, 2, 1])
    tcp = struct.Struct("!HHIIHHHH")
    with open(path, "wb", buffering=1 << 20) as fh:
        fh.write(PCAP_HEADER)
        chunk = []
        for i in range(n):
            host, port = divmod(i, 50_000)
            src = bytes([10, (host >> 16) & 0xFF, (host >> 8) & 0xFF, host & 0xFF])
            seg = tcp.pack(10_000 + port, 80, (i * 2_654_435_761) & 0xFFFFFFFF, 0,
                           0x5002, 64240, 0, 0)
            pkt = _ipv4_header(40, src, dst) + seg
            sec, usec = divmod(i, 1_000_000)
            chunk.append(REC.pack(T0 + sec, usec, 40, 40) + pkt)
            if len(chunk) == 10_000:
                fh.write(b"".join(chunk))
                chunk = []
        fh.write(b"".join(chunk))


def write_onestream(path: str, n: int) -> None:
    """One connection of ``n`` packets: handshake, data + ACK pairs, four-way close."""
    c, s = bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2])
    cp, sp = 40_000, 443
    tcp = struct.Struct("!HHIIHHHH")
    payload = b"x" * 100
    ip_c = _ipv4_header(140, c, s)   # client data segments (fixed length)
    ip_s = _ipv4_header(40, s, c)    # server ACKs
    isn_c, isn_s = 1_000, 5_000_000
    SYN, ACK, FIN, PSH = 0x002, 0x010, 0x001, 0x008

    def rec(i: int, frm_client: bool, seq: int, ack: int, flags: int, data: bytes = b""
            ) -> bytes:
        src, dst, sport, dport = (c, s, cp, sp) if frm_client else (s, c, sp, cp)
        seg = tcp.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x5000 | flags,
                       65535, 0, 0) + data
        if data:
            ip = ip_c if frm_client else _ipv4_header(40 + len(data), src, dst)
        else:
            ip = ip_s if not frm_client else _ipv4_header(40, src, dst)
        pkt = ip + seg
        sec, usec = divmod(i * 10, 1_000_000)  # 10 us apart
        return REC.pack(T0 + sec, usec, len(pkt), len(pkt)) + pkt

    with open(path, "wb", buffering=1 << 20) as fh:
        fh.write(PCAP_HEADER)
        i = 0
        fh.write(rec(i, True, isn_c, 0, SYN)); i += 1
        fh.write(rec(i, False, isn_s, isn_c + 1, SYN | ACK)); i += 1
        fh.write(rec(i, True, isn_c + 1, isn_s + 1, ACK)); i += 1
        seq = isn_c + 1
        pairs = (n - 3 - 4) // 2
        chunk = []
        for _ in range(pairs):
            chunk.append(rec(i, True, seq, isn_s + 1, ACK | PSH, payload)); i += 1
            seq += len(payload)
            chunk.append(rec(i, False, isn_s + 1, seq, ACK)); i += 1
            if len(chunk) >= 20_000:
                fh.write(b"".join(chunk))
                chunk = []
        fh.write(b"".join(chunk))
        fh.write(rec(i, True, seq, isn_s + 1, FIN | ACK)); i += 1
        fh.write(rec(i, False, isn_s + 1, seq + 1, ACK)); i += 1
        fh.write(rec(i, False, isn_s + 1, seq + 1, FIN | ACK)); i += 1
        fh.write(rec(i, True, seq + 1, isn_s + 2, ACK)); i += 1


def has_option(option: str) -> bool:
    r = subprocess.run([_exe(), "analyze", "--help"], capture_output=True, text=True)
    return option in r.stdout


def _exe() -> str:
    return shutil.which("teardown-analyze") or "teardown-analyze"


def measure(path: str, fmt: str, extra: list[str]) -> dict[str, object]:
    """Run the CLI under GNU time; wall seconds, peak RSS (MiB), status, stderr's tail."""
    cmd = ["/usr/bin/time", "-v", _exe(), "analyze", path, "--format", fmt, *extra]
    with open(os.devnull, "wb") as null:
        r = subprocess.run(cmd, stdout=null, stderr=subprocess.PIPE, text=True)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", r.stderr)
    secs = 0.0
    if wall:
        for part in wall.group(1).split(":"):
            secs = secs * 60 + float(part)
    messages = [ln for ln in r.stderr.splitlines()
                if ln.startswith(("warning:", "error:", "internal error"))]
    status = re.search(r"Exit status: (\d+)", r.stderr)
    return {"cmd": " ".join(["teardown-analyze", *cmd[3:]]), "wall_s": secs,
            "rss_mib": int(rss.group(1)) / 1024 if rss else float("nan"),
            "status": int(status.group(1)) if status else r.returncode,
            "messages": messages}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--formats", default="table", help="comma-separated (default: table)")
    ap.add_argument("--max-connections", type=int, default=100_000)
    ap.add_argument("--keep", action="store_true", help="keep the generated captures")
    args = ap.parse_args(argv)
    if not os.path.exists("/usr/bin/time"):
        print("GNU time is missing: apt-get install -y time", file=sys.stderr)
        return 2
    files = {"synflood": os.path.join(args.dir, f"bounds-synflood-{args.packets}.pcap"),
             "onestream": os.path.join(args.dir, f"bounds-onestream-{args.packets}.pcap")}
    for name, writer in (("synflood", write_synflood), ("onestream", write_onestream)):
        t = time.monotonic()
        writer(files[name], args.packets)
        print(f"wrote {files[name]}: {os.path.getsize(files[name]) / 2**20:.1f} MiB in "
              f"{time.monotonic() - t:.1f} s", file=sys.stderr)
    runs = []
    for fmt in args.formats.split(","):
        for name in ("synflood", "onestream"):
            runs.append((name, fmt, ["-q"]))
    capped = has_option("--max-connections")
    if capped:
        runs.append(("synflood", "table", ["--max-connections", str(args.max_connections)]))
    else:
        print("teardown-analyze has no --max-connections: the capped run is skipped",
              file=sys.stderr)
    print(f"\n{date.today().isoformat()}, {platform.node()}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{_meminfo()}\n")
    print("| capture | packets | command | status | wall time | peak RSS |")
    print("|---|---|---|---|---|---|")
    for name, fmt, extra in runs:
        m = measure(files[name], fmt, extra)
        cmd = str(m["cmd"]).replace(files[name], name + ".pcap")
        print(f"| {name} | {args.packets:,} | `{cmd}` | {m['status']} | "
              f"{m['wall_s']:.1f} s | {m['rss_mib']:.0f} MiB |", flush=True)
        for msg in m["messages"]:  # type: ignore[union-attr]
            print(f"|  |  | {msg.replace(files[name], name + '.pcap')} |  |  |  |")
    if not args.keep:
        for path in files.values():
            os.remove(path)
    return 0


def _meminfo() -> str:
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        return f"{kb / 2**20:.0f} GiB RAM"
    except OSError:
        return "RAM unknown"


if __name__ == "__main__":
    sys.exit(main())
