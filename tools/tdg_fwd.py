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
"""
import fcntl
import os
import select
import signal
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


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


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    if sys.argv[1] == "tun":
        tun(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "vlan":
        vlan(int(sys.argv[2]), *sys.argv[3:7])
    else:
        sys.exit("usage: tdg_fwd.py tun A B | vlan VID ACCESS_A TRUNK_A TRUNK_B ACCESS_B")
