#!/usr/bin/env python3
"""Write a deterministic synthetic capture for the teardown-analyzer benchmark.

Standard library only.  ``python benchmarks/make_capture.py`` writes
``/tmp/teardown-bench-200000.pcap`` (about 200,000 connections, 2.5 million packets)
and ``PATH.expected.json``: the connection and packet counts, the counts per close kind
(the analyzer's kind names), per initiator, per scenario, and the exact ``totals``
object ``teardown-analyze --format json`` must report.

The capture is a classic little-endian microsecond pcap, Ethernet (or, with ``--link
sll2``, Linux cooked v2 headers, as ``tcpdump -i any`` writes them; with ``--link vlan``,
Ethernet with an 802.1Q tag), IPv4 and some IPv6.
Connections interleave: they start as a Poisson process (``--rate`` per second), live
for a handshake, a few request/response exchanges, an idle time and a close, so a few
thousand are open at any moment.  Every segment carries the timestamps option (the
SYNs also MSS, SACK-permitted and window scale); IPv4 and TCP checksums are correct.
Each connection gets its own RTT (0.1-50 ms, log-uniform) and capture point (near the
server, near the client or in between), and capture times follow from them: a side's
answer to a segment is seen one capture-to-side round trip later.

Scenarios (the close kind the analyzer must report in brackets):

* ``four-way``: FIN, ACK, FIN, ACK                                     [four-way]
* ``three-way``: FIN, FIN+ACK, ACK                                     [three-way]
* ``half-close``: FIN, the peer keeps sending data, then FIN+ACK, ACK   [four-way]
* ``fin-retransmitted``: FIN, the same FIN ~RTO later, ACK, FIN, ACK    [four-way]
* ``simultaneous``: both FINs cross (neither ACKs the other), two ACKs  [simultaneous]
* ``rst``: RST+ACK from one side, no FIN                                [rst]
* ``fin-then-rst``: FIN, ACK, the peer sends data and the closed side answers with a
  bare RST; or the peer aborts with RST+ACK from CLOSE_WAIT            [fin-then-rst]
* ``half-open``: FIN, ACK, the peer never closes                       [half-open]
* ``open``: no FIN, no RST: still open when the capture ends           [none]

Closes are initiated by the client or by the server.  No 4-tuple is ever reused (each
client address allocates its ports from a counter that never wraps), so the expected
connection count is exact.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import os
import random
import struct
import sys
import time

KINDS = ("four-way", "three-way", "simultaneous", "fin-then-rst", "rst", "half-open", "none")

# scenario -> (analyzer kind, weight, probability the client initiates the close)
SCENARIOS: dict[str, tuple[str, float, float]] = {
    "four-way": ("four-way", 36.0, 0.55),
    "three-way": ("three-way", 25.0, 0.55),
    "half-close": ("four-way", 5.0, 0.8),
    "fin-retransmitted": ("four-way", 3.0, 0.5),
    "simultaneous": ("simultaneous", 1.5, 0.5),
    "rst": ("rst", 10.0, 0.5),
    "fin-then-rst": ("fin-then-rst", 3.0, 0.6),
    "half-open": ("half-open", 5.0, 0.4),
    "open": ("none", 11.5, 0.0),
}
TIME_WAIT_SCENARIOS = {"four-way", "three-way", "half-close", "fin-retransmitted"}

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
M32 = 0xFFFFFFFF
MSS4, MSS6 = 1460, 1440
TS_OPT = 0x0101080A  # NOP NOP kind 8 length 10
EPOCH = 1_700_000_000  # first connection starts here (seconds)

REC = struct.Struct("<IIII")
ROUTER_MAC = bytes.fromhex("02005e000001")
SERVER_MAC = bytes.fromhex("02005e0000aa")


def _sll2(protocol: int, packet_type: int, mac: bytes) -> bytes:
    """A Linux cooked v2 header: protocol, reserved, interface index, ARPHRD_ETHER, packet
    type (0: to this host, 4: sent by it), address length, address (padded to 8)."""
    return struct.pack("!HHIHBB8s", protocol, 0, 2, 1, packet_type, 6, mac)


# the link header of each IP version (4, 6) and direction (client -> server, and back),
# as seen on the server
LINKS = {
    "ethernet": (1, {4: (SERVER_MAC + ROUTER_MAC + b"\x08\x00",
                         ROUTER_MAC + SERVER_MAC + b"\x08\x00"),
                     6: (SERVER_MAC + ROUTER_MAC + b"\x86\xdd",
                         ROUTER_MAC + SERVER_MAC + b"\x86\xdd")}),
    "sll2": (276, {4: (_sll2(0x0800, 0, ROUTER_MAC), _sll2(0x0800, 4, SERVER_MAC)),
                   6: (_sll2(0x86DD, 0, ROUTER_MAC), _sll2(0x86DD, 4, SERVER_MAC))}),
    # Ethernet with an 802.1Q tag (VLAN 100), as a trunk or mirror port shows it
    "vlan": (1, {4: (SERVER_MAC + ROUTER_MAC + b"\x81\x00\x00\x64\x08\x00",
                     ROUTER_MAC + SERVER_MAC + b"\x81\x00\x00\x64\x08\x00"),
                 6: (SERVER_MAC + ROUTER_MAC + b"\x81\x00\x00\x64\x86\xdd",
                     ROUTER_MAC + SERVER_MAC + b"\x81\x00\x00\x64\x86\xdd")}),
}

SERVERS4 = [bytes([192, 0, 2, 10 + i]) for i in range(4)]
SERVERS6 = [bytes.fromhex("20010db8000100000000000000000010"),
            bytes.fromhex("20010db8000100000000000000000011")]
SERVER_PORTS = (443, 443, 443, 80, 8080, 5432)
EPHEMERAL_LO, EPHEMERAL_HI = 32768, 60999


def _wsum(b: bytes) -> int:
    """Sum of the 16-bit big-endian words of ``b`` modulo 0xFFFF (2**16 == 1 mod 0xFFFF)."""
    if len(b) & 1:
        return (int.from_bytes(b, "big") << 8) % 0xFFFF
    return int.from_bytes(b, "big") % 0xFFFF


def _fold(s: int) -> int:
    """The checksum field for a ones'-complement sum congruent to ``s`` (mod 0xFFFF).

    The data summed is never all zero (the protocol number is in it), so a sum that is
    0 mod 0xFFFF is 0xFFFF in ones'-complement arithmetic and its complement is 0.
    """
    return (0xFFFF - s % 0xFFFF) % 0xFFFF


def _syn_options(mss: int, tsval: int, tsecr: int, wscale: int) -> bytes:
    # Linux's order: MSS, SACK-permitted, timestamps, NOP, window scale
    return struct.pack(">BBHBBBBIIBBBB", 2, 4, mss, 4, 2, 8, 10, tsval, tsecr, 1, 3, 3, wscale)


class Generator:
    def __init__(self, connections: int, seed: int, rate: float, ipv6_share: float,
                 link: str = "ethernet") -> None:
        self.linktype, self.link = LINKS[link]
        size = len(self.link[4][0])  # the link header's length
        self.size = size
        # link header + IPv4 or IPv6 + TCP fixed header (+ the timestamps option: NOP NOP
        # 8 10 TSval TSecr)
        self.v4 = struct.Struct(f">{size}sHHHHHH4s4sHHIIHHHH")
        self.v6 = struct.Struct(f">{size}sIHH16s16sHHIIHHHH")
        self.v4ts = struct.Struct(f">{size}sHHHHHH4s4sHHIIHHHHIII")
        self.v6ts = struct.Struct(f">{size}sIHH16s16sHHIIHHHHIII")
        self.n = connections
        self.rng = random.Random(seed)
        self.seed = seed
        self.rate = rate
        self.ipv6_share = ipv6_share
        prng = random.Random(seed ^ 0x5EED)
        self.payload = prng.randbytes(8192 + 2 * MSS4)
        # clients: enough addresses that no client runs out of ports (no 4-tuple reuse)
        self.n_clients = max(16, connections // 40)
        self.client_next_port: dict[int, int] = {}
        self.scen_names = list(SCENARIOS)
        self.scen_cum = []
        acc = 0.0
        for name in self.scen_names:
            acc += SCENARIOS[name][1]
            self.scen_cum.append(acc)
        self.count = itertools.count()
        self.heap: list[tuple[int, int, bytes]] = []
        self.packets = 0
        self.ipv6_conns = 0
        self.scenarios = {name: 0 for name in SCENARIOS}
        self.kinds = {k: 0 for k in KINDS}
        self.initiators = {"client": 0, "server": 0, "both": 0, "none": 0}
        self.kind_initiators: dict[str, dict[str, int]] = {k: {} for k in KINDS}
        self.time_wait = {"client": 0, "server": 0, "both": 0}
        self.rsts = 0
        self.max_open = 0

    # -- addresses ---------------------------------------------------------------------

    def _client(self, v6: bool) -> tuple[bytes, int]:
        rng = self.rng
        rnd = rng.random
        c = int(rnd() * self.n_clients)
        key = c * 2 + v6
        port = self.client_next_port.get(key)
        if port is None:
            port = EPHEMERAL_LO + int(rnd() * 3000)
        port += 1 + int(rnd() * 3)
        if port > EPHEMERAL_HI:  # cannot happen with n_clients >= connections / 40
            raise RuntimeError("client ran out of ports")
        self.client_next_port[key] = port
        if v6:
            ip = bytes.fromhex("20010db8") + (0x80000000 + c).to_bytes(4, "big") + \
                c.to_bytes(8, "big")
        else:
            n = 0x0A000000 + 0x10000 + c  # 10.1.0.0 upwards
            ip = n.to_bytes(4, "big")
        return ip, port

    # -- one connection ----------------------------------------------------------------

    def connection(self, t0: int) -> int | None:
        """Script one connection starting at capture time ``t0`` (microseconds); return
        the time of its last packet, or None when it stays open (CLOSE_WAIT or ESTABLISHED)."""
        rng = self.rng
        rnd = rng.random

        def ri(lo: int, hi: int) -> int:  # lo <= n < hi; much faster than randrange
            return lo + int(rnd() * (hi - lo))

        v6 = rnd() < self.ipv6_share
        cip, cport = self._client(v6)
        if v6:
            sip = SERVERS6[ri(0, len(SERVERS6))]
        else:
            sip = SERVERS4[ri(0, len(SERVERS4))]
        sport = SERVER_PORTS[ri(0, len(SERVER_PORTS))]
        x = rnd() * self.scen_cum[-1]
        i = 0
        while self.scen_cum[i] < x:
            i += 1
        scen = self.scen_names[i]
        kind, _w, p_client = SCENARIOS[scen]
        a = 0 if rnd() < p_client else 1  # the side that closes (0 client, 1 server)
        b = 1 - a

        # timing: RTT log-uniform 0.1-50 ms; capture point f (0 = at the client)
        rtt = 100.0 * math.exp(rnd() * math.log(500.0))
        r = rnd()
        f = 0.97 if r < 0.6 else 0.03 if r < 0.85 else 0.3 + 0.4 * rnd()
        gap = (max(2, int(f * rtt)), max(2, int((1.0 - f) * rtt)))  # capture->side->capture

        # per-direction constants
        hop = ri(4, 20)
        mss = MSS6 if v6 else MSS4
        seg_max = mss - 12
        if v6:
            k_ip = (0, 0)
            src, dst = (cip, sip), (sip, cip)
            pseudo = _wsum(cip) + _wsum(sip) + 6
            eth = self.link[6]
            flow = (0x60000000 | rng.getrandbits(20), 0x60000000 | rng.getrandbits(20))
            ttlproto = (6 << 8 | (64 - hop), 6 << 8 | 64)  # next header, hop limit
        else:
            src, dst = (cip, sip), (sip, cip)
            ttlproto = ((64 - hop) << 8 | 6, 64 << 8 | 6)
            k_addr = 0x4500 + 0x4000 + _wsum(cip) + _wsum(sip)
            k_ip = (k_addr + ttlproto[0], k_addr + ttlproto[1])
            pseudo = _wsum(cip) + _wsum(sip) + 6
            eth = self.link[4]
            ipid = [rng.getrandbits(16), rng.getrandbits(16)]
        ports = ((cport, sport), (sport, cport))
        k_tcp = (pseudo + cport + sport, pseudo + cport + sport)
        isn = [rng.getrandbits(32), rng.getrandbits(32)]
        nxt = [isn[0], isn[1]]            # next sequence number each side sends
        rcv = [0, 0]                      # what each side acknowledges (peer's nxt seen)
        ts_base = [rng.getrandbits(32), rng.getrandbits(32)]
        last_tsval = [0, 0]
        wscale = (7, ri(7, 11))
        win = [ri(400, 2048), ri(200, 1024)]
        heap = self.heap
        push = heapq.heappush
        count = self.count
        payload = self.payload
        rec_pack = REC.pack
        v4ts_pack, v6ts_pack = self.v4ts.pack, self.v6ts.pack
        v4_pack, v6_pack = self.v4.pack, self.v6.pack
        link = self.size
        getbits = rng.getrandbits

        def emit(s: int, t: int, flags: int, plen: int = 0, ack: int | None = None,
                 seq: int | None = None, opts: bytes | None = None,
                 window: int | None = None) -> None:
            if seq is None:
                seq = nxt[s]
            if ack is None:
                ack = rcv[s] if flags & ACK else 0
            if window is None:
                window = win[s] if not flags & SYN else 64240 if s == 0 else 65160
            if plen:
                off = getbits(12) << 1
                data = payload[off:off + plen]
                if plen & 1:
                    psum = int.from_bytes(data, "big") << 8
                else:
                    psum = int.from_bytes(data, "big")
            else:
                data = b""
                psum = 0
            if opts is None:
                # the common case: the timestamps option alone, one pack for all headers
                tsval = (ts_base[s] + t // 1000) & M32
                tsecr = last_tsval[1 - s]
                last_tsval[s] = tsval
                tcp_len = 32 + plen
                offflags = 0x8000 | flags
                csum = (0xFFFF - (k_tcp[s] + tcp_len + seq + ack + offflags + window + TS_OPT
                                  + tsval + tsecr + psum) % 0xFFFF) % 0xFFFF
                if v6:
                    rec = rec_pack(EPOCH + t // 1_000_000, t % 1_000_000, link + 40 + tcp_len,
                                   link + 40 + tcp_len) + \
                        v6ts_pack(eth[s], flow[s], tcp_len, ttlproto[s], src[s], dst[s],
                                  ports[s][0], ports[s][1], seq, ack, offflags, window, csum,
                                  0, TS_OPT, tsval, tsecr)
                else:
                    tot = 20 + tcp_len
                    ident = ipid[s] = (ipid[s] + 1) & 0xFFFF
                    ipsum = (0xFFFF - (k_ip[s] + tot + ident) % 0xFFFF) % 0xFFFF
                    rec = rec_pack(EPOCH + t // 1_000_000, t % 1_000_000, link + tot,
                                   link + tot) + \
                        v4ts_pack(eth[s], 0x4500, tot, ident, 0x4000, ttlproto[s], ipsum,
                                  src[s], dst[s], ports[s][0], ports[s][1], seq, ack,
                                  offflags, window, csum, 0, TS_OPT, tsval, tsecr)
            else:
                hlen = 20 + len(opts)
                tcp_len = hlen + plen
                offflags = (hlen // 4) << 12 | flags
                csum = _fold(k_tcp[s] + tcp_len + seq + ack + offflags + window
                             + _wsum(opts) + psum)
                if v6:
                    hdr = v6_pack(eth[s], flow[s], tcp_len, ttlproto[s], src[s], dst[s],
                                  ports[s][0], ports[s][1], seq, ack, offflags, window, csum, 0)
                    caplen = link + 40 + tcp_len
                else:
                    tot = 20 + tcp_len
                    ident = ipid[s] = (ipid[s] + 1) & 0xFFFF
                    ipsum = _fold(k_ip[s] + tot + ident)
                    hdr = v4_pack(eth[s], 0x4500, tot, ident, 0x4000, ttlproto[s], ipsum,
                                  src[s], dst[s], ports[s][0], ports[s][1], seq, ack,
                                  offflags, window, csum, 0)
                    caplen = link + 20 + tcp_len
                rec = rec_pack(EPOCH + t // 1_000_000, t % 1_000_000, caplen, caplen) + \
                    hdr + opts
            push(heap, (t, next(count), rec + data if plen else rec))
            end = (seq + plen + (1 if flags & (SYN | FIN) else 0)) & M32
            if (end - nxt[s]) & M32 < 0x80000000:
                nxt[s] = end
            # the peer has now seen this segment (capture order = script order)
            if not flags & RST:
                rcv[1 - s] = nxt[s]

        def send_data(s: int, t: int, total: int) -> int:
            """``s`` sends ``total`` bytes in MSS-sized segments, the peer ACKs every
            second segment; returns the time of the last packet."""
            segs = []
            while total > 0:
                n = min(seg_max, total)
                segs.append(n)
                total -= n
            for k, n in enumerate(segs):
                emit(s, t, ACK | (PSH if k == len(segs) - 1 else 0), n)
                t += 12 + n // 100  # back to back at the capture point
            # the peer's ACKs, after the burst: one per two segments (delayed ACKs)
            r_ = 1 - s
            t2 = t + gap[r_]
            acked = nxt[s]
            pos = (nxt[s] - sum(segs)) & M32
            for k, n in enumerate(segs):
                pos = (pos + n) & M32
                if k % 2 == 1 or k == len(segs) - 1:
                    emit(r_, t2, ACK, ack=pos)
                    t2 += 15
            assert pos == acked
            return t2

        # -- handshake ---------------------------------------------------------------
        t = t0
        tsv_c = (ts_base[0] + t // 1000) & M32
        emit(0, t, SYN, opts=_syn_options(mss, tsv_c, 0, wscale[0]))
        last_tsval[0] = tsv_c
        t += gap[1] + ri(5, 40)
        tsv_s = (ts_base[1] + t // 1000) & M32
        emit(1, t, SYN | ACK, opts=_syn_options(mss, tsv_s, tsv_c, wscale[1]))
        last_tsval[1] = tsv_s
        t += gap[0] + ri(5, 40)
        emit(0, t, ACK)

        # -- exchanges: request, (delayed ACK), response, client ACKs ----------------
        n_ex = 1
        while n_ex < 4 and rnd() < 0.3:
            n_ex += 1
        for _ in range(n_ex):
            t += ri(20, 2000)
            req = ri(60, 900)
            emit(0, t, ACK | PSH, req)
            think = int(50.0 * math.exp(rnd() * math.log(1000.0)))  # 50 us - 50 ms
            t += gap[1]
            if think > 40_000:
                emit(1, t + 40_000, ACK)  # delayed ACK of the request
            t += think
            size = int(200 * math.exp(rnd() * math.log(40.0)))  # 200 B - 8 KB
            t = send_data(1, t, size)

        # -- idle, then the close ----------------------------------------------------
        r = rnd()
        t += ri(100, 5000) if r < 0.5 else ri(5000, 2_000_000)
        initiator: str | None = ("client", "server")[a]
        if scen == "four-way":
            emit(a, t, FIN | ACK)
            t += gap[b] + ri(10, 60)
            emit(b, t, ACK)
            t += ri(50, 20_000)
            emit(b, t, FIN | ACK)
            t += gap[a] + ri(10, 60)
            emit(a, t, ACK)
        elif scen == "three-way":
            emit(a, t, FIN | ACK)
            t += gap[b] + ri(10, 200)
            emit(b, t, FIN | ACK)
            t += gap[a] + ri(10, 60)
            emit(a, t, ACK)
        elif scen == "half-close":
            emit(a, t, FIN | ACK)
            t += gap[b] + ri(10, 60)
            if rnd() < 0.5:
                emit(b, t, ACK)
                t += ri(20, 500)
            t = send_data(b, t, ri(500, 12_000))
            t += ri(50, 5000)
            emit(b, t, FIN | ACK)
            t += gap[a] + ri(10, 60)
            emit(a, t, ACK)
        elif scen == "fin-retransmitted":
            emit(a, t, FIN | ACK)       # lost after the capture point
            t += 200_000 + int(rtt) + ri(0, 20_000)
            emit(a, t, FIN | ACK, seq=(nxt[a] - 1) & M32)  # the retransmission, ~RTO later
            t += gap[b] + ri(10, 60)
            emit(b, t, ACK)
            t += ri(50, 20_000)
            emit(b, t, FIN | ACK)
            t += gap[a] + ri(10, 60)
            emit(a, t, ACK)
        elif scen == "simultaneous":
            a_pre, b_pre = nxt[a], nxt[b]
            emit(a, t, FIN | ACK, ack=b_pre)
            a_fin = a_pre
            # b closes before a's FIN reaches it: its FIN is seen less than gap[b] later
            tb = t + max(1, int(gap[b] * (0.05 + 0.9 * rnd())))
            emit(b, tb, FIN | ACK, ack=a_pre)
            b_fin = b_pre
            ta = tb + gap[a] + ri(10, 60)   # a ACKs b's FIN
            tb2 = t + gap[b] + ri(10, 60)   # b ACKs a's FIN
            for tt, s in sorted(((ta, a), (tb2, b))):
                if s == a:
                    emit(a, tt, ACK, ack=(b_fin + 1) & M32)
                else:
                    emit(b, tt, ACK, ack=(a_fin + 1) & M32)
            t = max(ta, tb2)
            initiator = "both"
        elif scen == "rst":
            emit(a, t, RST | ACK)
        elif scen == "fin-then-rst":
            emit(a, t, FIN | ACK)
            t += gap[b] + ri(10, 60)
            emit(b, t, ACK)
            t += ri(100, 50_000)
            if rnd() < 0.6:
                # the peer still sends; the closed side has no one to read it: bare RST
                # from the reply path, seq = the data segment's ACK number
                emit(b, t, ACK | PSH, ri(100, 1200))
                t += gap[a] + ri(10, 60)
                emit(a, t, RST, seq=nxt[a], ack=0, opts=b"", window=0)
            else:
                # the peer aborts from CLOSE_WAIT (SO_LINGER 0, or unread data)
                emit(b, t, RST | ACK)
        elif scen == "half-open":
            emit(a, t, FIN | ACK)
            t += gap[b] + ri(10, 60)
            emit(b, t, ACK)
        else:  # open
            initiator = None
        # -- bookkeeping -------------------------------------------------------------
        self.scenarios[scen] += 1
        self.kinds[kind] += 1
        key = initiator or "none"
        self.initiators[key] += 1
        ki = self.kind_initiators[kind]
        ki[key] = ki.get(key, 0) + 1
        if scen in TIME_WAIT_SCENARIOS:
            # the side that closed first holds TIME_WAIT; both after a simultaneous close
            self.time_wait[initiator] += 1  # type: ignore[index]
        elif kind == "simultaneous":
            self.time_wait["both"] += 1
        if scen in ("rst", "fin-then-rst"):
            self.rsts += 1
        if v6:
            self.ipv6_conns += 1
        return None if scen in ("open", "half-open") else t

    # -- the whole capture ---------------------------------------------------------------

    def run(self, out) -> None:
        rng = self.rng
        heap = self.heap
        pop = heapq.heappop
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, self.linktype))
        buf: list[bytes] = []
        t = 0.0
        mean_gap_us = 1e6 / self.rate
        ends: list[int] = []   # last-packet times of the connections still closing
        forever = 0            # connections left open (open, half-open)
        open_sum = 0
        for _ in range(self.n):
            t += rng.expovariate(1.0) * mean_gap_us
            ti = int(t)
            while heap and heap[0][0] <= ti:
                buf.append(pop(heap)[2])
            while ends and ends[0] <= ti:
                pop(ends)
            if len(buf) > 65536:
                self.packets += len(buf)
                out.write(b"".join(buf))
                buf.clear()
            closing = len(ends)
            open_sum += closing
            self.max_open = max(self.max_open, closing)
            end = self.connection(ti)
            if end is None:
                forever += 1
            else:
                heapq.heappush(ends, end)
        self.mean_concurrent = open_sum / max(1, self.n)
        self.left_open = forever
        self.duration_s = t / 1e6
        while heap:
            buf.append(pop(heap)[2])
        self.packets += len(buf)
        out.write(b"".join(buf))

    def expected(self, path: str) -> dict:
        return {
            "schema": "teardown-benchmark/1",
            "capture": os.path.basename(path),
            "generator": {"seed": self.seed, "connections": self.n, "rate_per_s": self.rate,
                          "ipv6_share": self.ipv6_share, "linktype": self.linktype},
            "connections": self.n,
            "packets": self.packets,
            "ipv6_connections": self.ipv6_conns,
            "concurrent_connections": {"mean": round(self.mean_concurrent, 1),
                                       "max": self.max_open,
                                       "note": "connections between their first and last "
                                               "packet when a new one starts (not counting "
                                               "the ones left open)"},
            "connection_starts_s": round(self.duration_s, 3),
            "kinds": self.kinds,
            "initiators": self.initiators,
            "kind_initiators": {k: dict(sorted(v.items()))
                                for k, v in self.kind_initiators.items()},
            "scenarios": self.scenarios,
            # exactly what Report.totals() must give
            "totals": {"connections": self.n, "kinds": dict(self.kinds), "rsts": self.rsts,
                       "half_open": self.kinds["half-open"],
                       "time_wait": dict(self.time_wait)},
        }


def generate(path: str, connections: int = 200_000, seed: int = 1, rate: float = 6000.0,
             ipv6_share: float = 0.15, link: str = "ethernet") -> dict:
    """Write the capture to ``path`` and ``path.expected.json``; return the expected dict."""
    gen = Generator(connections, seed, rate, ipv6_share, link)
    with open(path, "wb") as f:
        gen.run(f)
    exp = gen.expected(path)
    with open(path + ".expected.json", "w", encoding="utf-8") as f:
        json.dump(exp, f, indent=2)
        f.write("\n")
    return exp


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=200_000,
                   help="number of connections (default 200000: about 2.5 M packets)")
    p.add_argument("--out", default=None,
                   help="capture path (default /tmp/teardown-bench-N.pcap); the expected "
                        "counts go to PATH.expected.json")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--rate", type=float, default=6000.0,
                   help="new connections per second of capture time (default 6000)")
    p.add_argument("--ipv6-share", type=float, default=0.15,
                   help="fraction of connections over IPv6 (default 0.15)")
    p.add_argument("--link", choices=sorted(LINKS), default="ethernet",
                   help="link header: ethernet (default), sll2 (Linux cooked v2, as "
                        "tcpdump -i any writes) or vlan (Ethernet with an 802.1Q tag)")
    args = p.parse_args(argv)
    if args.connections < 1:
        p.error("--connections must be at least 1")
    out = args.out or f"/tmp/teardown-bench-{args.connections}.pcap"
    t0 = time.perf_counter()
    exp = generate(out, args.connections, args.seed, args.rate, args.ipv6_share, args.link)
    dt = time.perf_counter() - t0
    size = os.path.getsize(out)
    print(f"wrote {out}: {exp['connections']} connections, {exp['packets']} packets, "
          f"{size / 1e6:.1f} MB in {dt:.1f} s; expected counts in {out}.expected.json",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
