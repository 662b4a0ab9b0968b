"""Connections recognised a window of records at a time, without the per-packet state
machine.

Most connections of a busy capture open with a handshake, exchange data and close with
FIN, ACK, FIN, ACK (or FIN, FIN+ACK, ACK, or an RST, or a FIN then an RST), all within a
few seconds, or are still open when the capture ends. For such a connection the tracker
(:mod:`teardown_analyzer.flows`) always reaches the same verdict: a four-way (or
three-way) close by whoever sent the first FIN, that side in TIME_WAIT (or an ``rst`` or
``fin-then-rst`` close, both sides CLOSED; or ``none``, or ``half-open``). This module
gathers the IPv4 and IPv6 records of a *window* (a few batches; behind any link header
:data:`LAYOUTS` knows) as columns with numpy, groups them by connection, and checks with
array operations which connections are exactly that
(:func:`~teardown_analyzer.recognise.recognise`, whose conditions follow the tracker step
by step). Those are kept as their packets
(:data:`ROW`), with the verdict (:class:`~teardown_analyzer.results.ResultSink` totals)
computed here; their full summary (every state with its time and packet) is made only if
the output reads them, by feeding those packets to a tracker then (:func:`replay`).
Every other record of the window goes through :meth:`Tracker.feed
<teardown_analyzer.flows.Tracker.feed>` one by one, in capture order.

The results are identical to feeding every packet (tests/test_columnar.py), because:

* a connection is taken here only when all its packets are in the window and the
  tracker holds nothing of its 4-tuple (not tracked, not parked); connections are
  independent of each other in the tracker, so the order in which different connections
  are fed does not matter;
* it is parked as a sweep would park it (until the same time, in the tracker's
  :attr:`~teardown_analyzer.flows.Tracker.kept`, a
  :class:`~teardown_analyzer.keptindex.KeptIndex`), so a late segment of its 4-tuple (a
  retransmitted FIN, a new SYN) takes it back: replayed, then fed on;
* a connection that may still become one waits for the next window, for up to
  :data:`HOLD` windows; then it is fed like the others, its packets in their order.  A
  window in which nothing of its 4-tuple comes does not analyse it again (its records
  would make the same group, with the same verdict: :meth:`Window.take`);
* unless it is still open (no FIN; or only a SYN, sent again or answered by a SYN-ACK)
  or half-open (FINs from one side) and breaks none of the conditions so far
  (:attr:`~teardown_analyzer.recognise.Groups.unclosed`): then the tracker's verdict, if
  nothing more of its 4-tuple comes, is known too (``none`` or ``half-open``), and it is
  kept the same way, parked as an idle open connection is, until the end of the
  capture.

One difference is left, and feeding every packet has it too: where the capture's clock
jumps forward past a connection's TIME_WAIT timer and then back, whether a later segment of
its 4-tuple still finds it depends on when expired connections were let go (a sweep every
65,536 packets there, after each window here).
"""

from __future__ import annotations

import struct
from typing import Callable, Iterator

import numpy as np

from .capture import Batch, items_at
from .flows import SYN, Conn, Tracker
from .link import AF_IPV6, ETH_IPV4, ETH_IPV6, VLAN_TPIDS, TcpPacket, tcp_packet_at
from .keptindex import KeptIndex, endpoints
from .parking import blob_endpoints
from .recognise import Groups, key_hash, recognise

ROW = np.dtype([("packet", "<i8"), ("ts", "<i8"), ("sender", "u1"), ("ipid", "<i4"),
                ("tcp_len", "<i4"), ("seq", "<u4"), ("ack", "<u4"), ("word", "<u2"),
                ("window", "<u2"), ("checksum", "<i4"), ("opt", "<i4")])
"""A kept packet: what the tracker reads of it (:data:`~teardown_analyzer.link.TcpPacket`)
but its endpoints, which its connection's :data:`HEADER` holds once (``sender`` 0: the
first, 1: the second; ``opt`` -1: none)."""
HEADER = np.dtype([("tag", "u1"), ("key", "V37"), ("pad", f"V{ROW.itemsize - 38}")])
"""What a connection kept here starts with, before its packets' rows (of the same size):
a zero tag (which tells such a blob from a frozen connection,
:mod:`teardown_analyzer.parking`, which starts with marshal's type code), and the two
endpoints as :func:`gather`'s ``key`` has them."""
WINDOW_ROWS = 131072
"""Records gathered before a window is analysed."""
HOLD = 3
"""A connection that may still close cleanly waits for at most this many next windows."""
HOLD_ROWS = 1024
"""... if it has no more than this many records so far: a long one is fed at once (and
its plain segments counted a batch at a time, :mod:`teardown_analyzer.plain`)."""
FIRST_WINDOW = 1
"""The first window is analysed as soon as it holds this many records, each next one at
twice the size of the one before, up to :data:`WINDOW_ROWS`: what a capture is made of
(mostly short connections, or long ones whose plain segments are better counted at once,
:mod:`teardown_analyzer.plain`) is known after the first batch."""
KEY6 = np.array(list(range(22, 38)) + [54, 55] + list(range(38, 54)) + [56, 57])
"""Where an Ethernet/IPv6 frame holds the source address and port, the destination
address and port: a key's 36 bytes after the IP version's (an IPv4 key has the 4-byte
addresses at the start of the 16 bytes, the rest zero)."""
TCP = np.dtype({"names": ["sport", "dport", "seq", "ack", "word", "window", "checksum"],
                "formats": [">u2", ">u2", ">u4", ">u4", ">u2", ">u2", ">u2"],
                "offsets": [0, 2, 4, 8, 12, 14, 16], "itemsize": 20})
"""The fields of TCP's fixed header :func:`gather` reads."""


class Layout:
    """A link layer whose IP header is at a fixed place (``ip_at``), and which tells IPv4
    from IPv6 as :mod:`teardown_analyzer.link`'s decoder of it does (``versions(h)``:
    whether each record's link header says IPv4, and IPv6, from its first bytes ``h``)."""

    def __init__(self, ip_at: int,
                 versions: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> None:
        self.ip_at = ip_at
        self.versions = versions
        self.head = ip_at + 60
        """Bytes read of each record: the link header, IPv6's (40) and TCP's fixed header
        (20); a SYN's options are read apart."""
        self.frame = np.dtype({
            "names": ["vihl", "total_len", "ipid", "frag", "proto", "payload_len", "next"],
            "formats": ["u1", ">u2", ">u2", ">u2", "u1", ">u2", "u1"],
            "offsets": [ip_at + o for o in (0, 2, 4, 6, 9, 4, 6)], "itemsize": self.head})
        """The IP fields read of those bytes (IPv4's, then IPv6's, which overlap)."""
        self.key6 = KEY6 + ip_at - 14
        """Where :data:`KEY6` is behind this link header."""


def _protocol(at: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """An EtherType at ``at``: Ethernet's, or the Linux cooked captures' protocol."""
    def versions(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        protocol = h[:, at].astype(np.int64) << 8 | h[:, at + 1]
        return protocol == ETH_IPV4, protocol == ETH_IPV6
    return versions


def _family(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BSD loopback: the address family in either byte order (no four bytes read as
    AF_INET one way are AF_INET6 the other, so the order they are tried in does not
    matter)."""
    little = h[:, :4].copy().view("<u4")[:, 0]
    big = h[:, :4].copy().view(">u4")[:, 0]
    return (little == 2) | (big == 2), \
        np.isin(little, _AF_IPV6_LIST) | np.isin(big, _AF_IPV6_LIST)


def _by_version(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw IP: the IP header's version tells (and :func:`gather` checks it anyway)."""
    every = np.ones(len(h), bool)
    return every, every


def _tagged(tags: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Ethernet with ``tags`` VLAN tags (802.1Q, 802.1ad), then an EtherType."""
    inner = _protocol(12 + 4 * tags)

    def versions(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v4, v6 = inner(h)
        for at in range(12, 12 + 4 * tags, 4):
            tagged = np.isin(h[:, at].astype(np.int64) << 8 | h[:, at + 1], _VLAN_TPIDS)
            v4, v6 = v4 & tagged, v6 & tagged
        return v4, v6
    return versions


_AF_IPV6_LIST = sorted(AF_IPV6)
_VLAN_TPIDS = sorted(VLAN_TPIDS)
LAYOUTS: dict[int, tuple[Layout, ...]] = {
    1: (Layout(14, _protocol(12)), Layout(18, _tagged(1)), Layout(22, _tagged(2))),
    113: (Layout(16, _protocol(14)),),                                    # Linux cooked
    276: (Layout(20, _protocol(0)),),                                     # Linux cooked v2
    **dict.fromkeys((0, 108), (Layout(4, _family),)),                     # BSD loopback
    **dict.fromkeys((12, 14, 101, 228, 229), (Layout(0, _by_version),)),  # raw IP
}
"""The link types gathered here, by link type number, each with the layouts its records
may have (Ethernet: without VLAN tags, with one, with two), as
:mod:`teardown_analyzer.link` decodes them; records behind any other link layer, more
tags, IP options or IPv6 extension headers are decoded one by one (with the same
results, slower)."""
SAMPLE = 32
"""Records of a batch looked at to tell which of its link type's layouts to read it with
first (:func:`_likeliest_first`)."""
COLUMNS = ("packet", "ts", "key", "seq", "ack", "word", "flags", "tcp_len", "plen",
           "window", "checksum", "ipid", "opt", "regular")
"""What :func:`gather` makes of each record, column by column."""


class Window:
    """Records of batches (of the link types in :data:`LAYOUTS`), gathered as columns
    until they are analysed, and those held to be analysed again with a next window.

    The records of each connection are in capture order, but not the window's as a whole:
    records held from windows before come first (:meth:`take`)."""

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []
        """Records gathered since the last :meth:`take`: :data:`COLUMNS`, and ``hash``."""
        self.held: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]] = []
        """Records held (:meth:`hold`): those each window held, the rows of them still
        held, and each one's connection's first packet number."""
        self.size = 0
        self.began: list[int] = []
        """Packet number of the first record of each of the last HOLD windows: a
        connection whose first record came before them has waited HOLD times."""
        self._taken = True
        self._seen = np.zeros(_BUCKETS, bool)  # (:meth:`take`, all false between calls)

    def add(self, part: dict[str, np.ndarray], first: int) -> None:
        """The records of one batch (:func:`gathered`; ``first``: its first packet's
        number)."""
        if self._taken:
            self.began = self.began[1 - HOLD:] + [first] if HOLD > 1 else [first]
            self._taken = False
        if len(part["packet"]):
            self.parts.append(dict(part, hash=key_hash(part["key"])))
            self.size += len(part["packet"])

    def take(self, final: bool) -> dict[str, np.ndarray] | None:
        """What is to be analysed, as one set of columns (:data:`COLUMNS`, and ``hash``):
        the records held, then those gathered.  Unless ``final``, the records of a
        connection held that nothing came for since, and which may wait longer, stay:
        they would only be held again as they are (the same records, the same group)."""
        if not self.size:
            return None
        if not final:  # what came since: its hashes' buckets marked in _seen
            seen = self._seen
            marks = [(p["hash"] & _MASK).astype(np.intp) for p in self.parts]
            for m in marks:
                seen[m] = True
        still = []
        sources: list[tuple[dict[str, np.ndarray], np.ndarray | None]] = []
        for held, live, since in self.held:
            if not final:
                idle = (since >= self.began[0]) \
                    & ~seen[(held["hash"][live] & _MASK).astype(np.intp)]
                if idle.all():
                    still.append((held, live, since))
                    continue
                if idle.any():
                    still.append((held, live[idle], since[idle]))
                live = live[~idle]
            sources.append((held, np.sort(live)))  # (read in order: several times faster)
        if not final:
            for m in marks:
                seen[m] = False
        sources += [(p, None) for p in self.parts]
        self.parts, self.held, self._taken = [], still, True
        self.size = sum(len(live) for _, live, _ in still)
        if len(sources) == 1 and sources[0][1] is None:
            return sources[0][0]
        total = sum(len(p["packet"]) if rows is None else len(rows) for p, rows in sources)
        if not total:
            return None
        cols = {}
        for c in (*COLUMNS, "hash"):  # each source's rows copied straight into place
            like = sources[0][0][c]
            out = cols[c] = np.empty((total, *like.shape[1:]), like.dtype)
            at = 0
            for p, rows in sources:
                if rows is None:
                    out[at:at + len(p[c])] = p[c]
                    at += len(p[c])
                else:
                    # (rows held, all within it; "clip" writes to out without a buffer)
                    np.take(p[c], rows, axis=0, out=out[at:at + len(rows)], mode="clip")
                    at += len(rows)
        return cols

    def hold(self, cols: dict[str, np.ndarray], since: np.ndarray) -> None:
        """Records to analyse again with a next window (in capture order), with their
        connections' first packet numbers."""
        if len(since):
            self.held.append((cols, np.arange(len(since)), since))
            self.size += len(since)


_BUCKETS = 1 << 22
_MASK = np.uint64(_BUCKETS - 1)
"""Hashes marked in :attr:`Window._seen` by their low 22 bits: a connection held is
analysed again when a record of its hash came (and when one of the about ``n / 2**22``
others of its bucket did, ``n`` the records that came)."""


def gathered(batch: Batch, owner: tuple[int, int], skip: Callable[[str], None]
             ) -> dict[str, np.ndarray] | None:
    """:func:`gather` of a batch; None if it cannot be: a link type not in
    :data:`LAYOUTS`, or a timestamp beyond 64 bits (a corrupt pcapng clock)."""
    if batch.linktype not in LAYOUTS:
        return None
    try:
        ts = np.asarray(batch.ts_ns, np.int64)
    except OverflowError:
        return None
    return gather(batch.buf, batch.starts, batch.lens, ts, batch.first, owner, skip,
                  batch.linktype)


def gather(buf: "bytes | memoryview", starts: np.ndarray, lens: np.ndarray, ts: np.ndarray,
           first: int, owner: tuple[int, int], skip: Callable[[str], None],
           linktype: int = 1) -> dict[str, np.ndarray]:
    """The TCP records of one batch (of a link type in :data:`LAYOUTS`) that ``owner`` =
    (k, n) tracks (the port sum modulo n is k), as columns: everything the tracker reads
    of each (:data:`~teardown_analyzer.link.TcpPacket`).  Records that are not IPv4
    without options or IPv6 without extension headers right after one of the link type's
    layouts are decoded one by one (and are not ``regular``); records that are not TCP are
    counted with ``skip`` (by owner 0)."""
    k, n = owner
    st = np.asarray(starts, np.int64)
    ln = np.asarray(lens, np.int64)
    data = np.frombuffer(buf, np.uint8)
    layouts = _likeliest_first(LAYOUTS[linktype], data, st)
    cols = _read(data, st, ln, layouts[0])
    for layout in layouts[1:]:  # records the ones before could not read (VLAN tags ...)
        rest = np.flatnonzero(~cols["fast"])
        if not len(rest):
            break
        more = _read(data, st[rest], ln[rest], layout)
        hit = np.flatnonzero(more["fast"])
        for c, v in cols.items():
            v[rest[hit]] = more[c][hit]
    fast, key = cols.pop("fast"), cols["key"]
    mine = fast.copy()
    if n > 1:  # another process's connections: the port sum picks the process
        ports = (key[:, 17].astype(np.int64) << 8 | key[:, 18]) \
            + (key[:, 35].astype(np.int64) << 8 | key[:, 36])
        mine &= ports % n == k
    cols["packet"] = first + np.arange(len(st))
    cols["ts"] = ts
    # the rest, one by one: other layers (IP options ...) and what is not TCP
    others = np.flatnonzero(~fast)
    for p, start, incl in zip(others.tolist(), st[others].tolist(), ln[others].tolist()):
        got = tcp_packet_at(buf, start, incl, linktype)
        if isinstance(got, str):
            if k == 0:
                skip(got)
            continue
        (version, src, dst, ipid, tlen, sp, dp, seq, ack, word_p, window, checksum,
         opt) = got
        if n > 1 and (sp + dp) % n != k:
            continue
        mine[p] = True
        key[p] = np.frombuffer(b"".join(endpoints((src, sp, dst, dp))), np.uint8)
        cols["seq"][p], cols["ack"][p], cols["word"][p] = seq, ack, word_p
        cols["flags"][p], cols["tcp_len"][p] = word_p & 0x1FF, tlen
        cols["plen"][p] = tlen - (word_p >> 12) * 4
        cols["window"][p], cols["checksum"][p], cols["ipid"][p] = window, checksum, ipid
        cols["opt"][p] = -1 if opt is None else opt
    if mine.all():
        return {c: cols[c] for c in COLUMNS}
    idx = np.flatnonzero(mine)
    return {c: cols[c][idx] for c in COLUMNS}


def _likeliest_first(layouts: tuple[Layout, ...], data: np.ndarray, st: np.ndarray
                     ) -> tuple[Layout, ...]:
    """``layouts`` (of one link type), the one whose link header the first records of the
    batch have most often first: in a capture of VLAN-tagged frames, each record is read
    once behind a tag, not first as an untagged frame, in vain.  (A record has the link
    header of one layout at most, so the order changes how fast, not what, is read.)"""
    if len(layouts) == 1:
        return layouts
    sample = st[:SAMPLE]
    hits: list[int] = []
    for layout in layouts:
        v4, v6 = layout.versions(first_bytes(data, sample, layout.head))
        hits.append(int((v4 | v6).sum()))
        if 2 * hits[0] >= len(sample):
            return layouts  # (the first has half or more: no other has more)
    return tuple(layouts[i] for i in sorted(range(len(layouts)), key=lambda i: -hits[i]))


def _read(data: np.ndarray, st: np.ndarray, ln: np.ndarray, layout: Layout
          ) -> dict[str, np.ndarray]:
    """The columns of the records at ``st`` in ``data`` (captured lengths ``ln``) behind
    ``layout``'s link header, but their number and time; ``fast``: whether each is IPv4
    without options (not a fragment) or IPv6 without extension headers, carrying TCP (the
    others' columns are not read: left to the general decoder)."""
    ip = layout.ip_at
    # each record's first bytes (and, for a shorter one, what follows it: not read)
    h = first_bytes(data, st, layout.head)
    f = h.view(layout.frame)[:, 0]
    link4, link6 = layout.versions(h)
    v4 = link4 & (ln >= ip + 40) & (f["vihl"] == 0x45) & (f["proto"] == 6) \
        & ((f["frag"] & 0x1FFF) == 0) & (f["total_len"] >= 20)
    # an IPv6 payload length of 0 (jumbogram, TSO) makes the captured length count
    v6 = link6 & (ln >= ip + 60) & (f["vihl"] >> 4 == 6) & (f["next"] == 6) \
        & (f["payload_len"] > 0)
    fast = v4 | v6
    # the endpoints (as :data:`KEY6` says) and the TCP header, behind IPv4 or IPv6: each
    # read for every record as the version most have, then the others' over them
    rows6 = np.flatnonzero(v6)
    most, other = (_ip6, _ip4) if 2 * len(rows6) > len(st) else (_ip4, _ip6)
    key, tcp = most(h, layout)
    others = np.flatnonzero(~v6) if most is _ip6 else rows6
    if len(others):
        tcp = tcp.copy()
        key[others], tcp[others] = other(h[others], layout)
    t = tcp.view(TCP)[:, 0]

    def field(name: str) -> np.ndarray:
        v = t[name]
        return v.astype(v.dtype.newbyteorder("="))

    word = field("word").astype(np.int64)
    tcp_len = np.where(v6, f["payload_len"], f["total_len"].astype(np.int64) - 20)
    hlen = (word >> 12) * 4
    regular = fast & (hlen >= 20) & (tcp_len >= hlen)
    tcp_at = np.where(v6, ip + 40, ip + 20)
    return {"fast": fast, "key": key, "seq": field("seq"), "ack": field("ack"),
            "word": word.astype(np.uint16), "flags": (word & 0x1FF).astype(np.uint16),
            "tcp_len": tcp_len.astype(np.int32), "plen": (tcp_len - hlen).astype(np.int32),
            "window": field("window"), "checksum": field("checksum").astype(np.int32),
            "ipid": np.where(v6, -1, f["ipid"]).astype(np.int32),
            "opt": _options(data, st + tcp_at, np.minimum(hlen, ln - tcp_at), regular, word,
                            field("ack")),
            "regular": regular}


def _ip4(h: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """The endpoints (a ``key`` each) and the TCP header of records ``h`` (their first
    bytes) as IPv4 behind ``layout``'s link header."""
    ip = layout.ip_at
    key = np.zeros((len(h), 37), np.uint8)
    key[:, 0] = 4
    key[:, 1:5], key[:, 17:19] = h[:, ip + 12:ip + 16], h[:, ip + 20:ip + 22]  # source
    key[:, 19:23], key[:, 35:37] = h[:, ip + 16:ip + 20], h[:, ip + 22:ip + 24]  # dest.
    return key, h[:, ip + 20:ip + 40]


def _ip6(h: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_ip4`, as IPv6."""
    key = np.empty((len(h), 37), np.uint8)
    key[:, 0], key[:, 1:] = 6, h[:, layout.key6]
    return key, h[:, layout.ip_at + 40:layout.ip_at + 60]


def first_bytes(data: np.ndarray, st: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` bytes from each of ``st`` (zeros past the end of ``data``)."""
    short = st > len(data) - width
    if not short.any():
        if not len(st):  # (and data may be shorter than width)
            return np.zeros((0, width), np.uint8)
        return _bytes_at(data, width, st)
    out = np.zeros((len(st), width), np.uint8)
    cut = int(st[short].min())  # the last records: a copy of the end, padded
    tail = np.concatenate((data[cut:], np.zeros(width, np.uint8)))
    if len(data) >= width:
        out[~short] = _bytes_at(data, width, st[~short])
    out[short] = _bytes_at(tail, width, st[short] - cut)
    return out


def _bytes_at(data: np.ndarray, width: int, st: np.ndarray) -> np.ndarray:
    return items_at(data, np.dtype(f"V{width}"), st).view(np.uint8).reshape(-1, width)


_LINUX_SYN = ((0xFFFF_FFFF_0000_FFFF, 0x0A08_0204_0000_0402), (0x00FF_FFFF, 0x0003_0301))
"""The options Linux puts in a SYN and a SYN-ACK (MSS, SACK-permitted, timestamps, NOP,
window scale), as (mask, value) of their first 8 bytes and of bytes 16 to 19 read as
little-endian integers: 2, 4 (MSS), 4, 2 (SACK-permitted), 8, 10 (timestamps), then
1 (NOP), 3, 3 (window scale); the window-scale shift is then byte 19."""


def _options(data: np.ndarray, tcp_at: np.ndarray, end: np.ndarray, regular: np.ndarray,
             word: np.ndarray, ack: np.ndarray) -> np.ndarray:
    """What :func:`~teardown_analyzer.link.read_options` reads of each record's options
    (its TCP header at ``tcp_at`` in ``data``, ``end`` bytes of it there): a SYN's
    window-scale shift, how far past its ACK field another segment's SACK blocks reach;
    -1: none."""
    out = _window_scale(data, tcp_at, end, regular & ((word & SYN) != 0)).astype(np.int32)
    words = word >> 12
    maybe = regular & ((word & SYN) == 0) & ((words > 8) | (words == 8) & (end > 22))
    rows = np.flatnonzero(maybe)
    if len(rows):  # (not the options most segments carry: a timestamp after two NOPs)
        ts_only = (words[rows] == 8) & (first_bytes(data, tcp_at[rows] + 22, 1)[:, 0] == 8)
        rows = rows[~ts_only]
        out[rows] = _sack_past(data, tcp_at[rows], end[rows], ack[rows])
    return out


def _find_option(o: np.ndarray, end: np.ndarray, wanted: Callable[..., np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each header's first option that ``wanted(kind, size, position, end)`` takes, walked
    as :func:`~teardown_analyzer.tcp._walk_options` walks them, all headers a step at a
    time (``o``: each header's 40 option bytes; ``end``: how many of them it has):
    (rows of ``o`` with one, its position, its length)."""
    rows, where, sizes = [], [], []
    at = np.arange(len(o))  # rows of o
    p = np.zeros(len(at), np.int64)
    while len(at):
        going = p < end
        at, p, end = at[going], p[going], end[going]
        if not len(at):
            break
        kind = o[at, p]
        size = o[at, np.minimum(p + 1, 39)].astype(np.int64)  # (past the end: not used)
        # NOP: the next byte; EOL or an option without a valid length: none
        step = np.where(kind == 1, 1, size)
        last = (kind == 0) | ((kind != 1) & ((p + 1 >= end) | (size < 2)))
        found = ~last & wanted(kind, size, p, end)
        rows.append(at[found])
        where.append(p[found])
        sizes.append(np.minimum(size[found], end[found] - p[found]))
        going = ~last & ~found
        at, p, end = at[going], p[going] + step[going], end[going]
    if not rows:
        return (np.zeros(0, np.int64),) * 3
    return np.concatenate(rows), np.concatenate(where), np.concatenate(sizes)


def _sack_past(data: np.ndarray, tcp_at: np.ndarray, end: np.ndarray, ack: np.ndarray
               ) -> np.ndarray:
    """How far past the ACK field :func:`~teardown_analyzer.tcp.sack_top` of each of these
    TCP headers is (-1: None)."""
    out = np.full(len(tcp_at), -1, np.int32)
    o = first_bytes(data, tcp_at + 20, 40)
    r, q, size = _find_option(o, end - 20, lambda kind, size, p, end: kind == 5)
    best = np.zeros(len(r), np.int64)
    base = ack[r].astype(np.int64)
    for j in range(4):  # (four blocks at most)
        edge_at = q + 6 + 8 * j
        whole = edge_at + 4 <= q + size
        idx = np.minimum(edge_at[:, None] + np.arange(4), 39)
        edge = (o[r[:, None], idx].astype(np.int64) << np.array([24, 16, 8, 0])).sum(1)
        past = (edge - base) & 0xFFFFFFFF
        better = whole & (past > 0) & (past < 1 << 31) & (past > best)
        best = np.where(better, past, best)
        out[r[better]] = past[better]
    return out


def _window_scale(data: np.ndarray, tcp_at: np.ndarray, end: np.ndarray, syn: np.ndarray
                  ) -> np.ndarray:
    """The window-scale shift in each SYN's options (its TCP header at ``tcp_at`` in
    ``data``, ``end`` bytes of it there; -1: none), read as
    :func:`~teardown_analyzer.tcp.window_scale` reads them; -1 for the other records."""
    out = np.full(len(syn), -1, np.int16)
    rows = np.flatnonzero(syn)
    start = tcp_at[rows] + 20  # the options: 40 bytes at most
    end = end[rows] - 20
    # Linux's options, all there: read at once, as two integers; the others option by
    # option
    o = first_bytes(data, start, 20)
    (mask8, linux8), (mask4, linux4) = _LINUX_SYN
    tail = o[:, 16:].copy().view("<u4")[:, 0]
    linux = ((o[:, :8].copy().view("<u8")[:, 0] & np.uint64(mask8)) == np.uint64(linux8)) \
        & ((tail & np.uint32(mask4)) == np.uint32(linux4)) & (end >= 20)
    out[rows[linux]] = tail[linux] >> 24
    rows, end = rows[~linux], end[~linux]
    o = first_bytes(data, start[~linux], 40)
    at, p, _ = _find_option(o, end, lambda kind, size, p, end:
                            (kind == 3) & (size == 3) & (p + 2 < end))
    out[rows[at]] = o[at, p + 2]
    return out


KeepRows = Callable[[np.ndarray, "bytes | memoryview", np.ndarray, np.ndarray, np.ndarray,
                    np.ndarray], int]
"""(ids, blobs of all, offset and size of each one's in them, coded verdicts, half-closes)
-> the handle of the first (:meth:`~teardown_analyzer.results.ResultSink.add_rows`)."""


def analyse_window(tracker: Tracker, window: Window, keep_rows: KeepRows,
                   kept_blob: Callable[[int, int], bytes], time_wait_ns: int, grace_ns: int,
                   final: bool) -> int:
    """Analyse what ``window`` gathered: connections whose verdict is known
    (:func:`~teardown_analyzer.recognise.recognise`) kept with ``keep_rows`` (and read back
    with ``kept_blob``: a handle's first bytes), the rest fed
    to ``tracker`` in capture order, except (unless ``final``) the connections that may
    still close cleanly, which wait in ``window`` for the next one (for up to
    :data:`HOLD` windows, with up to :data:`HOLD_ROWS` records).  The number of records
    kept so."""
    cols = window.take(final)
    if cols is None:
        return 0
    waited_from = window.began[0]
    groups = recognise(cols, time_wait_ns, grace_ns)
    order, starts, ends = groups.order, groups.starts, groups.ends
    clean, promising = groups.clean.copy(), groups.promising
    first_packet = cols["packet"][order[starts]]
    short = ends - starts <= HOLD_ROWS
    may_wait = promising & ~clean & (first_packet >= waited_from) & short & (not final)
    # The tracker must hold nothing of a 4-tuple taken or held here.  A group held from a
    # window before held nothing when it came, and nothing of its 4-tuple was fed since
    # (its records all waited here): only the groups that came with this window's
    # records are looked up.
    index = tracker.kept if isinstance(tracker.kept, KeptIndex) \
        else KeptIndex(tracker, lambda handle: kept_blob(handle, HEADER.itemsize)[1:38])
    look = np.flatnonzero((clean | promising) & (first_packet >= window.began[-1]))
    tracked = np.zeros(len(starts), bool)
    tracked[look] = index.holds(groups.hash[look])
    clean &= ~tracked
    hold = may_wait & ~tracked
    # waited long enough (or the capture ends): kept open or half-open, as an idle
    # connection is parked (a long one is fed: its plain segments may be counted at once)
    settled = groups.unclosed & ~tracked & ~hold & short
    group_of = groups.group_of
    chosen = clean | settled
    taken_rows = chosen[group_of]
    held_rows = hold[group_of]
    kept = 0
    if chosen.any():
        kept = int(taken_rows.sum())
        _keep(index, cols, groups, np.flatnonzero(chosen), keep_rows)
    held = order[held_rows]
    since = np.empty(len(order), np.int64)  # each held record's connection's first packet
    since[held] = first_packet[group_of[held_rows]]
    held.sort()  # (copied in order: several times faster)
    window.hold({c: v.take(held, axis=0) for c, v in cols.items()}, since[held])
    rest = order[~taken_rows & ~held_rows]
    feed_rows(tracker, cols, rest[np.argsort(cols["packet"][rest], kind="stable")])
    return kept


def feed_rows(tracker: Tracker, cols: dict[str, np.ndarray], rest: np.ndarray) -> None:
    """Records ``rest`` (in capture order) through the tracker one by one."""
    feed = tracker.feed
    for packet, ts, tcp in records(cols, rest):
        feed(packet, ts, tcp)


def records(cols: dict[str, np.ndarray], rows: np.ndarray
            ) -> Iterator[tuple[int, int, TcpPacket]]:
    """Records ``rows`` as the tracker takes them: (packet number, time, :data:`TcpPacket
    <teardown_analyzer.link.TcpPacket>`)."""
    key = cols["key"][rows]
    for (packet, ts, (src, sport, dst, dport), version, ipid, tcp_len, seq, ack, word,
         window, checksum, opt) in zip(*(cols[c][rows].tolist() for c in ("packet", "ts")),
                                          _four_tuples(key), key[:, 0].tolist(),
                                          *(cols[c][rows].tolist() for c in _FIELDS)):
        yield packet, ts, (version, src, dst, ipid, tcp_len, sport, dport, seq, ack, word,
                           window, checksum, None if opt < 0 else opt)


def _four_tuples(key: np.ndarray) -> list[tuple[bytes, int, bytes, int]]:
    """Each ``key`` (as :func:`gather` makes them) as (source address, port, destination
    address, port), the tracker's 4-tuple."""
    v6 = key[:, 0] == 6
    src, dst = np.empty(len(key), object), np.empty(len(key), object)
    for rows, width in ((~v6, 4), (v6, 16)):
        if rows.any():
            part = key[rows]
            for out, at in ((src, 1), (dst, 19)):  # the addresses as bytes objects
                out[rows] = np.ascontiguousarray(part[:, at:at + width]).view(
                    f"V{width}").ravel().astype(object)
    sport = (key[:, 17].astype(np.int64) << 8 | key[:, 18]).tolist()
    dport = (key[:, 35].astype(np.int64) << 8 | key[:, 36]).tolist()
    return list(zip(src.tolist(), sport, dst.tolist(), dport))


_FIELDS = ("ipid", "tcp_len", "seq", "ack", "word", "window", "checksum", "opt")
"""What :data:`ROW` holds of a packet but its time and number, in :data:`TcpPacket
<teardown_analyzer.link.TcpPacket>` order."""
assert ROW.names == ("packet", "ts", "sender", *_FIELDS)  # replay() reads rows as tuples
_ROW_STRUCT = struct.Struct("<qqBiiIIHHii")
""":data:`ROW` for :mod:`struct` (which makes a blob's rows into tuples three times as
fast as numpy's ``tolist``)."""
assert _ROW_STRUCT.size == ROW.itemsize


def _keep(index: KeptIndex, cols: dict[str, np.ndarray], groups: Groups,
          chosen: np.ndarray, keep_rows: KeepRows) -> None:
    """Keep the clean closes and unclosed connections ``chosen`` (group numbers) as their
    packets (a :data:`HEADER`, then a :data:`ROW` each), and park each in ``index`` as a
    sweep would park it: a late segment of its 4-tuple can still take it back until it is
    due (an unclosed one: until the end of the capture)."""
    order, starts, ends = groups.order, groups.starts, groups.ends
    size = ends - starts
    member = np.zeros(len(starts), bool)
    member[chosen] = True
    in_order = np.repeat(member, size)
    picked = order[in_order]
    counts = size[chosen]
    first = order[starts[chosen]]
    # each connection's header row, then its packets' rows: every field gathered straight
    # into its place (a header row's from record 0, then overwritten)
    at = np.concatenate(([0], np.cumsum(counts + 1)[:-1]))
    is_row = np.ones(len(picked) + len(chosen), bool)
    is_row[at] = False
    src = np.zeros(len(is_row), np.int64)
    src[is_row] = picked
    rows = np.empty(len(is_row), ROW)
    for c in ("packet", "ts", *_FIELDS):
        rows[c] = cols[c].take(src)  # (a third faster than indexing)
    rows["sender"][is_row] = groups.sender[in_order]
    out = rows.view(np.uint8).reshape(len(rows), ROW.itemsize)
    out[at] = 0
    out[at, 1:38] = cols["key"][first]  # (a zero tag, the endpoints, zeros)
    handle = keep_rows(cols["packet"][first], out.reshape(-1).data, at * ROW.itemsize,
                       (counts + 1) * ROW.itemsize, groups.meta[chosen], groups.half[chosen])
    index.add(groups.hash[chosen], np.where(groups.unclosed[chosen], -1, groups.due[chosen]),
              handle + np.arange(len(chosen)))


def replay(blob: bytes, keep_ladder: bool = False) -> Conn:
    """The connection a blob of :func:`_keep`'s holds, fed to a tracker of its own: what
    the tracker would have made of its packets."""
    tracker = Tracker(keep_ladder=keep_ladder)
    version = blob[1]
    ends = blob_endpoints(blob)
    for (packet, ts, sender, ipid, tcp_len, seq, ack, word, window, checksum,
         opt) in _ROW_STRUCT.iter_unpack(memoryview(blob)[ROW.itemsize:]):
        (src, sport), (dst, dport) = ends[sender], ends[1 - sender]
        tracker.feed(packet, ts, (version, src, dst, ipid, tcp_len, sport, dport, seq, ack,
                                  word, window, checksum, None if opt < 0 else opt))
    (conn,) = tracker._tracked()
    tracker._settle(conn)  # (as when it leaves a tracker's table: what no segment shows)
    return conn
