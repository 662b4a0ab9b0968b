"""Userspace link forwarders for tools/gen_samples.py (this kernel has no
8021q and no ipip/gre modules, so the generator builds these links itself).

  tdg_fwd.py tun  DEV_A DEV_B
      Creates two TUN devices (IFF_TUN|IFF_NO_PI, ARPHRD_NONE, so a capture on
      them is LINKTYPE_RAW) in the current namespace, prints "ready", then
      copies every IP packet read from one to the other.  The generator moves
      the devices into the client and server namespaces.

  tdg_fwd.py vlan VID ACCESS_A TRUNK_A TRUNK_B ACCESS_B
      An 802.1Q "switch pair": frames arriving on ACCESS_A are tagged with VID
      and sent out of TRUNK_A; frames arriving on TRUNK_B (the kernel strips
      the tag on receive) are sent untagged out of ACCESS_B; and the reverse
      direction likewise.  TRUNK_A/TRUNK_B are the two ends of one veth pair,
      so a capture on TRUNK_A shows every frame with its 802.1Q tag.

  tdg_fwd.py delay MS DEV_A DEV_B
      A "long wire" (this kernel has no sch_netem): every frame arriving on
      DEV_A is sent out of DEV_B, and vice versa, MS milliseconds after the
      kernel received it (SO_TIMESTAMPNS receive stamp, so Python's wake-up
      latency is not added to the delay; frames are released from a heap in
      due-time order, so the order within each direction is kept; the last
      0.5 ms before a release is busy-polled, since a timed sleep wakes up
      ~0.2 ms late here).  Runs under SCHED_FIFO when allowed.  On SIGTERM/SIGINT it prints one JSON
      line of statistics (frames, lateness of each release beyond its due
      time: median/max in microseconds) to stdout.
"""
import fcntl
import heapq
import json
import os
import select
import signal
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SPIN_NS = 500_000   # delay mode: busy-poll for the last 0.5 ms before a frame is due


def _stop(*_):
    sys.exit(0)


def tun(a, b):
    fds = []
    for name in (a, b):
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
        fds.append(fd)
    print("ready", flush=True)
    peer = {fds[0]: fds[1], fds[1]: fds[0]}
    while True:
        r, _, _ = select.select(fds, [], [])
        for fd in r:
            try:
                pkt = os.read(fd, 65535)
                os.write(peer[fd], pkt)
            except OSError:
                pass


def vlan(vid, acc_a, tr_a, tr_b, acc_b):
    socks = {}
    for name in (acc_a, tr_a, tr_b, acc_b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, ETH_P_ALL))
        socks[name] = s
    tag = struct.pack("!HH", 0x8100, vid & 0x0FFF)
    # (from, to, action)
    route = {acc_a: (tr_a, "tag"), tr_a: (acc_a, "untag"), acc_b: (tr_b, "tag"), tr_b: (acc_b, "untag")}
    by_fd = {s.fileno(): n for n, s in socks.items()}
    print("ready", flush=True)
    while True:
        r, _, _ = select.select(list(by_fd), [], [])
        for fd in r:
            name = by_fd[fd]
            data, meta = socks[name].recvfrom(65535)
            if meta[2] == PACKET_OUTGOING:
                continue
            dst, action = route[name]
            if action == "tag":
                if data[12:14] == b"\x81\x00":
                    continue
                data = data[:12] + tag + data[12:]
            else:
                if data[12:14] == b"\x81\x00":  # tag left inline
                    data = data[:12] + data[16:]
            try:
                socks[dst].send(data)
            except OSError:
                pass


def delay(ms, a, b):
    d_ns = int(round(float(ms) * 1e6))
    socks = {}
    for name in (a, b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, ETH_P_ALL))
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.setblocking(False)
        socks[name] = s
    peer = {a: socks[b], b: socks[a]}
    by_fd = {s.fileno(): n for n, s in socks.items()}
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(20))
    except (AttributeError, OSError):
        pass
    heap, seq = [], 0
    late_us, frames = [], {a: 0, b: 0}

    def stats(*_):
        late_us.sort()
        out = {"frames": frames, "delay_ms": float(ms),
               "late_us_median": late_us[len(late_us) // 2] if late_us else None,
               "late_us_max": late_us[-1] if late_us else None}
        print(json.dumps(out), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stats)
    signal.signal(signal.SIGINT, stats)
    print("ready", flush=True)
    while True:
        now = time.time_ns()
        while heap and heap[0][0] <= now:
            due, _, name, data = heapq.heappop(heap)
            try:
                peer[name].send(data)
            except OSError:
                pass
            late_us.append(round((time.time_ns() - due) / 1000, 1))
            now = time.time_ns()
        if heap and heap[0][0] - now < SPIN_NS:
            timeout = 0.0   # the next release is close: poll, don't sleep (timer wake-ups are ~0.2 ms late)
        else:
            timeout = max(0.0, (heap[0][0] - now - SPIN_NS) / 1e9) if heap else None
        r, _, _ = select.select(list(by_fd), [], [], timeout)
        for fd in r:
            name = by_fd[fd]
            while True:
                try:
                    data, anc, _flags, meta = socks[name].recvmsg(65535, 64)
                except BlockingIOError:
                    break
                if meta[2] == PACKET_OUTGOING:
                    continue
                rx = None
                for lvl, typ, val in anc:
                    if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(val) >= 16:
                        sec, nsec = struct.unpack("qq", val[:16])
                        rx = sec * 1_000_000_000 + nsec
                if rx is None:
                    rx = time.time_ns()
                frames[name] += 1
                seq += 1
                heapq.heappush(heap, (rx + d_ns, seq, name, data))


if __name__ == "__main__":
    if sys.argv[1] == "delay":
        delay(sys.argv[2], sys.argv[3], sys.argv[4])
    signal.signal(signal.SIGTERM, _stop)
    if sys.argv[1] == "tun":
        tun(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "vlan":
        vlan(int(sys.argv[2]), *sys.argv[3:7])
    else:
        sys.exit("usage: tdg_fwd.py tun A B | vlan VID ACCESS_A TRUNK_A TRUNK_B ACCESS_B | delay MS A B")
