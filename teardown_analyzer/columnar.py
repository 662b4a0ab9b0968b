"""Connections recognised a window of records at a time, without the per-packet state
machine.

Most connections of a busy capture open with a handshake, exchange data and close with
FIN, ACK, FIN, ACK (or FIN, FIN+ACK, ACK, or an RST, or a FIN then an RST), all within a
few seconds, or are still open when the capture ends.  For such a connection the tracker
(:mod:`teardown_analyzer.flows`) always reaches the same verdict: a four-way (or
three-way) close by whoever sent the first FIN, that side in TIME_WAIT (or an ``rst`` or
``fin-then-rst`` close, both sides CLOSED; or ``none``, or ``half-open``).  This module
gathers the Ethernet/IPv4 and Ethernet/IPv6 records of a *window* (a few batches) as
columns with numpy, groups them by connection, and checks with array operations which
connections are exactly that (:func:`_clean_closes`, whose conditions follow the tracker
step by step).  Those are kept as their packets (:data:`ROW`), with the verdict
(:class:`~teardown_analyzer.results.ResultSink` totals) computed here; their full summary
(every state with its time and packet) is made only if the output reads them, by
feeding those packets to a tracker then (:func:`replay`).  Every other record of the
window goes through :meth:`Tracker.feed <teardown_analyzer.flows.Tracker.feed>` one by
one, in capture order.

The results are identical to feeding every packet (tests/test_columnar.py), because:

* a connection is taken here only when all its packets are in the window and the
  tracker holds nothing of its 4-tuple (not tracked, not parked); connections are
  independent of each other in the tracker, so the order in which different connections
  are fed does not matter;
* it is parked exactly as a sweep would park it (:meth:`Tracker.park_kept`), so a late
  segment of its 4-tuple (a retransmitted FIN, a new SYN) takes it back: replayed, then
  fed on;
* a connection that may still become one waits for the next window, for up to
  :data:`HOLD` windows; then it is fed like the others, its packets in their order;
* unless it is still open (no FIN) or half-open (FINs from one side) and breaks none of
  the conditions so far (:attr:`Groups.unclosed`): then the tracker's verdict, if nothing more
  of its 4-tuple comes, is known too (``none`` or ``half-open``), and it is kept the same
  way, parked as an idle open connection is, until the end of the capture.

One difference is left, and feeding every packet has it too: where the capture's clock
jumps forward past a connection's TIME_WAIT timer and then back, whether a later segment of
its 4-tuple still finds it depends on when expired connections were let go (a sweep every
65,536 packets there, after each window here).

Some conditions are stricter than the verdict needs (no data on the SYN, the handshake's
ACK exactly at the SYN-ACK's sequence number plus one, no duplicate whatever the time
between the two copies): a connection they turn away is fed, with the same result.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .flows import ACK, FIN, RST, SYN, Conn, Tracker
from .link import tcp_packet_at
from .results import KINDS

HEAD = 114
"""Bytes read of each record: Ethernet (14), IPv6 (40) and the longest TCP header (60),
all that :func:`~teardown_analyzer.link.tcp_packet_at` reads of the whole record."""
ROW = np.dtype([("packet", "<i8"), ("ts", "<i8"), ("sender", "u1"), ("ipid", "<i4"),
                ("tcp_len", "<i4"), ("seq", "<u4"), ("ack", "<u4"), ("word", "<u2"),
                ("window", "<u2"), ("checksum", "<i4"), ("wscale", "<i2")])
"""A kept packet: what the tracker reads of it (:data:`~teardown_analyzer.link.TcpPacket`)
but its endpoints, which its connection's :data:`HEADER` holds once (``sender`` 0: the
first, 1: the second; ``wscale`` -1: none)."""
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
KEY4 = np.array([26, 27, 28, 29] + [0] * 12 + [34, 35, 30, 31, 32, 33] + [0] * 12 + [36, 37])
KEY6 = np.array(list(range(22, 38)) + [54, 55] + list(range(38, 54)) + [56, 57])
"""Where an Ethernet/IPv4 and an Ethernet/IPv6 frame hold the source address (4 or 16
bytes, as 16) and port, the destination address and port: a 36-byte key (after the IP
version's byte)."""
_M32 = 0xFFFFFFFF
_BIG = np.iinfo(np.int64).max
_COLUMNS = ("packet", "ts", "key", "seq", "ack", "word", "flags", "tcp_len", "plen",
            "window", "checksum", "ipid", "wscale", "regular")


def _after(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """``a`` at or after ``b`` in 32-bit sequence space (the tracker's seq_geq)."""
    return ((a - b) & _M32) < 0x80000000


class Window:
    """Records of Ethernet batches, gathered as columns until they are analysed."""

    def __init__(self, owner: tuple[int, int], skip: Callable[[str], None]) -> None:
        self.owner = owner
        self.skip = skip
        self.parts: list[dict[str, np.ndarray]] = []
        self.size = 0
        self.began: list[int] = []
        """Packet number of the first record of each of the last HOLD windows: a
        connection whose first record came before them has waited HOLD times."""
        self._taken = True

    def add(self, buf: bytes, starts: list[int], lens: list[int], stamps: list[int],
            first: int) -> bool:
        """Gather one batch (Ethernet); False, with nothing gathered, if it cannot be (a
        timestamp beyond 64 bits: corrupt pcapng clock)."""
        try:
            ts = np.asarray(stamps, np.int64)
        except OverflowError:
            return False
        if self._taken:
            self.began = self.began[1 - HOLD:] + [first] if HOLD > 1 else [first]
            self._taken = False
        part = gather(buf, starts, lens, ts, first, self.owner, self.skip)
        if len(part["packet"]):
            self.parts.append(part)
            self.size += len(part["packet"])
        return True

    def take(self) -> dict[str, np.ndarray] | None:
        """Everything gathered, as one set of columns; the window is empty after."""
        if not self.size:
            return None
        cols = {c: np.concatenate([p[c] for p in self.parts]) for c in _COLUMNS}
        self.parts, self.size, self._taken = [], 0, True
        return cols

    def hold(self, cols: dict[str, np.ndarray]) -> None:
        """Records to analyse again with the next window."""
        if len(cols["packet"]):
            self.parts.insert(0, cols)
            self.size += len(cols["packet"])


def gather(buf: bytes, starts: list[int], lens: list[int], ts: np.ndarray, first: int,
           owner: tuple[int, int], skip: Callable[[str], None]) -> dict[str, np.ndarray]:
    """The TCP records of one Ethernet batch that ``owner`` = (k, n) tracks (the port sum
    modulo n is k), as columns: everything the tracker reads of each
    (:data:`~teardown_analyzer.link.TcpPacket`).  Records that are not Ethernet/IPv4
    without options or Ethernet/IPv6 without extension headers are decoded one by one
    (and are not ``regular``); records that are not TCP are counted with ``skip`` (by
    owner 0)."""
    count = len(starts)
    k, n = owner
    st = np.asarray(starts, np.int64)
    ln = np.asarray(lens, np.int64)
    # each record's first HEAD bytes (and, for a shorter one, what follows it: not read)
    h = _heads(np.frombuffer(buf, np.uint8), st)

    def u16(at: int, at6: int | None = None) -> np.ndarray:
        """The 16-bit field at ``at`` (at ``at6`` in an IPv6 record)."""
        v = h[:, at].astype(np.int64) << 8 | h[:, at + 1]
        return v if at6 is None else np.where(v6, h[:, at6].astype(np.int64) << 8
                                              | h[:, at6 + 1], v)

    def u32(at: int, at6: int) -> np.ndarray:
        return u16(at, at6) << 16 | u16(at + 2, at6 + 2)

    ethertype = u16(12)
    v4 = (ln >= 54) & (ethertype == 0x0800) & (h[:, 14] == 0x45) & (h[:, 23] == 6) \
        & ((u16(20) & 0x1FFF) == 0) & (u16(16) >= 20)
    # an IPv6 payload length of 0 (jumbogram, TSO) makes the captured length count
    v6 = (ln >= 74) & (ethertype == 0x86DD) & (h[:, 14] >> 4 == 6) & (h[:, 20] == 6) \
        & (u16(18) > 0)
    fast = v4 | v6
    pos = np.arange(count)
    if n > 1:  # another process's records: not read further
        sport, dport = u16(34, 54), u16(36, 56)
        pos = np.flatnonzero(~fast | ((sport + dport) % n == k))
        h, ln, ts, v4, v6, fast = h[pos], ln[pos], ts[pos], v4[pos], v6[pos], fast[pos]
        count = len(pos)
    mine = fast.copy()
    # the endpoints (:data:`KEY4`, :data:`KEY6`): as IPv4 for every record, then the IPv6
    # ones over them (the others are read one by one below)
    key = np.zeros((count, 37), np.uint8)
    key[:, 0] = 4
    key[:, 1:5], key[:, 17:19] = h[:, 26:30], h[:, 34:36]    # source address, port
    key[:, 19:23], key[:, 35:37] = h[:, 30:34], h[:, 36:38]  # destination address, port
    if v6.any():
        rows6 = np.flatnonzero(v6)
        key6 = np.empty((len(rows6), 37), np.uint8)
        key6[:, 0] = 6
        key6[:, 1:] = h[rows6][:, KEY6]
        key[rows6] = key6
    word = u16(46, 66)
    tcp_len = np.where(v6, u16(18), u16(16) - 20)
    hlen = (word >> 12) * 4
    regular = fast & (hlen >= 20) & (tcp_len >= hlen)
    cols = {"packet": first + pos, "ts": ts,
            "key": key, "seq": u32(38, 58).astype(np.uint32),
            "ack": u32(42, 62).astype(np.uint32), "word": word.astype(np.uint16),
            "flags": (word & 0x1FF).astype(np.uint16),
            "tcp_len": tcp_len.astype(np.int32), "plen": (tcp_len - hlen).astype(np.int32),
            "window": u16(48, 68).astype(np.uint16),
            "checksum": u16(50, 70).astype(np.int32),
            "ipid": np.where(v6, -1, u16(18)).astype(np.int32),
            "wscale": _window_scale(h, np.where(v6, 54, 34), hlen, ln,
                                    regular & ((word & SYN) != 0)),
            "regular": regular}
    # the rest, one by one: other layers (VLAN, IP options ...) and what is not TCP
    for p in np.flatnonzero(~fast).tolist():
        got = tcp_packet_at(buf, starts[pos[p]], lens[pos[p]], 1)
        if isinstance(got, str):
            if k == 0:
                skip(got)
            continue
        (version, src, dst, ipid, tlen, sp, dp, seq, ack, word_p, window, checksum,
         wscale) = got
        if n > 1 and (sp + dp) % n != k:
            continue
        mine[p] = True
        key[p] = np.frombuffer(bytes([version]) + src.ljust(16, b"\0") + sp.to_bytes(2, "big")
                               + dst.ljust(16, b"\0") + dp.to_bytes(2, "big"), np.uint8)
        cols["seq"][p], cols["ack"][p], cols["word"][p] = seq, ack, word_p
        cols["flags"][p], cols["tcp_len"][p] = word_p & 0x1FF, tlen
        cols["plen"][p] = tlen - (word_p >> 12) * 4
        cols["window"][p], cols["checksum"][p], cols["ipid"][p] = window, checksum, ipid
        cols["wscale"][p] = -1 if wscale is None else wscale
    idx = np.flatnonzero(mine)
    return {c: v[idx] for c, v in cols.items()}


def _heads(data: np.ndarray, st: np.ndarray) -> np.ndarray:
    """The :data:`HEAD` bytes from each of ``st`` (zeros past the end of ``data``)."""
    short = st > len(data) - HEAD
    if not short.any():
        return sliding_window_view(data, HEAD)[st]
    out = np.zeros((len(st), HEAD), np.uint8)
    cut = int(st[short].min())  # the last records: a copy of the end, padded
    tail = np.concatenate((data[cut:], np.zeros(HEAD, np.uint8)))
    out[~short] = sliding_window_view(data, HEAD)[st[~short]] if len(data) >= HEAD else 0
    out[short] = sliding_window_view(tail, HEAD)[st[short] - cut]
    return out


_LINUX_SYN = np.array([2, 4, -1, -1, 4, 2, 8, 10] + [-1] * 8 + [1, 3, 3, -1], np.int16)
"""The options Linux puts in a SYN and a SYN-ACK (MSS, SACK-permitted, timestamps, NOP,
window scale; -1: any byte): the window-scale shift is then byte 19."""


def _window_scale(h: np.ndarray, tcp_at: np.ndarray, hlen: np.ndarray, ln: np.ndarray,
                  syn: np.ndarray) -> np.ndarray:
    """The window-scale shift in each SYN's options (-1: none), read as
    :func:`~teardown_analyzer.tcp.window_scale` reads them, all SYNs a step at a time;
    -1 for the other records."""
    out = np.full(len(h), -1, np.int16)
    rows = np.flatnonzero(syn)
    p = (tcp_at + 20)[rows]
    end = np.minimum(tcp_at + hlen, ln)[rows]
    # Linux's options, all there: read at once; the others option by option
    opts = h[rows[:, None], p[:, None] + np.arange(len(_LINUX_SYN))].astype(np.int16)
    linux = ((opts == _LINUX_SYN) | (_LINUX_SYN < 0)).all(axis=1) \
        & (end >= p + len(_LINUX_SYN))
    out[rows[linux]] = opts[linux, -1]
    rows, p, end = rows[~linux], p[~linux], end[~linux]
    while len(rows):
        going = p < end
        rows, p, end = rows[going], p[going], end[going]
        if not len(rows):
            break
        kind = h[rows, p]
        size = h[rows, np.minimum(p + 1, HEAD - 1)]
        # NOP: the next byte; EOL or an option without a valid length: no shift
        step = np.where(kind == 1, 1, size)
        last = (kind == 0) | ((kind != 1) & ((p + 1 >= end) | (size < 2)))
        found = ~last & (kind == 3) & (size == 3) & (p + 2 < end)
        out[rows[found]] = h[rows[found], p[found] + 2]
        going = ~last & ~found
        rows, p, end = rows[going], p[going] + step[going], end[going]
    return out


KeepRows = Callable[[np.ndarray, "bytes | memoryview", np.ndarray, np.ndarray, np.ndarray],
                   int]
"""(ids, blobs of all, offset and size of each one's in them, coded verdicts) -> the
handle of the first (:meth:`~teardown_analyzer.results.ResultSink.add_rows`)."""


def analyse_window(tracker: Tracker, window: Window, keep_rows: KeepRows,
                   time_wait_ns: int, grace_ns: int, final: bool) -> int:
    """Analyse what ``window`` gathered: clean closes kept with ``keep_rows``, the rest fed
    to ``tracker`` in capture order, except (unless ``final``) the connections that may
    still close cleanly, which wait in ``window`` for the next one (for up to
    :data:`HOLD` windows, with up to :data:`HOLD_ROWS` records).  The number of records
    kept as clean closes."""
    cols = window.take()
    if cols is None:
        return 0
    waited_from = window.began[0]
    groups = _clean_closes(cols, time_wait_ns, grace_ns)
    order, starts, ends = groups.order, groups.starts, groups.ends
    clean, promising = groups.clean.copy(), groups.promising
    # the tracker must hold nothing of a 4-tuple taken or held here
    conns, parked = tracker.conns, tracker.parked
    candidates = np.flatnonzero(clean | promising)
    tuples = _four_tuples(cols["key"][order[starts[candidates]]])
    tracked = np.zeros(len(starts), bool)
    for g, k1 in zip(candidates.tolist(), tuples):
        k2 = (k1[2], k1[3], k1[0], k1[1])
        if k1 in conns or k2 in conns or k1 in parked or k2 in parked:
            tracked[g] = True
    clean &= ~tracked
    first_packet = cols["packet"][order[starts]]
    short = ends - starts <= HOLD_ROWS
    hold = promising & ~tracked & ~clean & (first_packet >= waited_from) & short \
        & (not final)
    # waited long enough (or the capture ends): kept open or half-open, as an idle
    # connection is parked (a long one is fed: its plain segments may be counted at once)
    settled = groups.unclosed & ~tracked & ~hold & short
    group_of = np.repeat(np.arange(len(starts)), ends - starts)  # in sorted order
    chosen = clean | settled
    taken_rows = chosen[group_of]
    held_rows = hold[group_of]
    kept = 0
    if chosen.any():
        kept = int(taken_rows.sum())
        chosen_at = np.flatnonzero(chosen)
        at = np.searchsorted(candidates, chosen_at).tolist()  # (chosen: all candidates)
        _keep(tracker, cols, groups, chosen_at, [tuples[i] for i in at], keep_rows)
    held = np.sort(order[held_rows])
    window.hold({c: v[held] for c, v in cols.items()})
    _feed(tracker, cols, np.sort(order[~taken_rows & ~held_rows]))
    return kept


def _feed(tracker: Tracker, cols: dict[str, np.ndarray], rest: np.ndarray) -> None:
    """Records ``rest`` (in capture order) through the tracker one by one."""
    feed = tracker.feed
    key = cols["key"][rest]
    for (packet, ts, (src, sport, dst, dport), version, ipid, tcp_len, seq, ack, word,
         window, checksum, wscale) in zip(*(cols[c][rest].tolist() for c in ("packet", "ts")),
                                          _four_tuples(key), key[:, 0].tolist(),
                                          *(cols[c][rest].tolist() for c in _FIELDS)):
        feed(packet, ts, (version, src, dst, ipid, tcp_len, sport, dport, seq, ack, word,
                          window, checksum, None if wscale < 0 else wscale))


def _four_tuples(key: np.ndarray) -> list[tuple[bytes, int, bytes, int]]:
    """Each ``key`` (as :func:`gather` makes them) as (source address, port, destination
    address, port), the tracker's 4-tuple."""
    raw = key.tobytes()
    sport = (key[:, 17].astype(np.int64) << 8 | key[:, 18]).tolist()
    dport = (key[:, 35].astype(np.int64) << 8 | key[:, 36]).tolist()
    out = []
    at = 0
    for version, sp, dp in zip(key[:, 0].tolist(), sport, dport):
        width = 16 if version == 6 else 4
        out.append((raw[at + 1:at + 1 + width], sp, raw[at + 19:at + 19 + width], dp))
        at += 37
    return out


_FIELDS = ("ipid", "tcp_len", "seq", "ack", "word", "window", "checksum", "wscale")
"""What :data:`ROW` holds of a packet but its time and number, in :data:`TcpPacket
<teardown_analyzer.link.TcpPacket>` order."""


class Groups(NamedTuple):
    """A window's records by connection (:func:`_clean_closes`)."""

    order: np.ndarray
    """Record indices, grouped by connection, each group in capture order."""
    starts: np.ndarray
    """Where each group begins in ``order``."""
    ends: np.ndarray
    sender: np.ndarray
    """Per record, in ``order``: 0 if its group's endpoint 0 sent it, else 1."""
    clean: np.ndarray
    """Per group: a complete clean close (FINs, an RST, or FINs then an RST)."""
    promising: np.ndarray
    """Per group: the beginning of one (what there is breaks none of the conditions)."""
    unclosed: np.ndarray
    """Per group: a handshake and what follows it, still open (no FIN) or half-open (one
    FIN), breaking none of the conditions: what the tracker makes of it if nothing more
    of its 4-tuple comes."""
    meta: np.ndarray
    """Per clean or unclosed group: its verdict, coded as
    :class:`~teardown_analyzer.results.ResultSink` codes it (kind, RSTs, TIME_WAIT side,
    unusual)."""
    due: np.ndarray
    """Per clean group: when a sweep would let it go (its TIME_WAIT timer; for an RST, a
    second after it): until then a segment of its 4-tuple takes it back.  An unclosed
    group waits for one until the end of the capture."""


_FOUR_WAY, _THREE_WAY, _SIMULTANEOUS, _RST, _FIN_THEN_RST, _HALF_OPEN, _NONE = (
    KINDS.index(k) for k in ("four-way", "three-way", "simultaneous", "rst", "fin-then-rst",
                             "half-open", "none"))


def _clean_closes(cols: dict[str, np.ndarray], time_wait_ns: int, grace_ns: int) -> Groups:
    """Group the records by connection; which groups are complete clean closes, and which
    are the beginning of one.

    The conditions, in the tracker's terms (flows.py ``_segment``):

    * records 0, 1, 2: a SYN (no ACK, FIN, RST, no data) from endpoint 0, the client; a
      SYN-ACK from endpoint 1 acknowledging it; an ACK from the client acknowledging the
      SYN-ACK (no SYN, FIN, RST).  Both sides are ESTABLISHED after it.
    * no SYN after record 1, no RST at all, and no record the tracker would skip or that
      was not read from the common layouts;
    * one FIN from Y, one or more from X.  The first (from X) moves X to FIN_WAIT1 and
      the peer Y to CLOSE_WAIT; X sends no data after it, and its FIN's time is before
      Y's.  X's other FINs come before Y acknowledges the first (a retransmission, or one
      with another sequence number: an anomaly, the close unusual, nothing more; one
      after it would take back that acknowledgment, flows.py ``_revoke_ack``).
    * Y's FIN acknowledges X's FIN (not a crossing: no simultaneous close).  The first of
      Y's segments that acknowledges X's FIN moves X to FIN_WAIT2; if that is Y's FIN
      itself, X goes to TIME_WAIT on it (three-way), otherwise on Y's FIN (four-way).  Y
      moves to LAST_ACK and sends no data after its FIN.
    * the last record is X's ACK of Y's FIN (Y CLOSED), and nothing follows; it comes
      before X's TIME_WAIT is over (at its time: after it, it would start a connection
      of its own).
    * no segment equals the one before it in its direction (a duplicate, skipped).

    Or the FINs crossed (a simultaneous close): FINs from both sides as above, Y's
    acknowledging nothing of X's, nor any of Y's segments before it (the tracker rewrites
    Y's CLOSE_WAIT as FIN_WAIT1, both go to CLOSING); the last two records are one from
    each side, each the first to acknowledge the other's FIN (both to TIME_WAIT), the
    second before the first one's TIME_WAIT is over.

    Or, after the handshake and instead of Y's FIN: an RST without data or FIN as the
    last record, acceptable (its sequence number at or after everything its sender sent, the
    ends within 2**31 of the sender's ISN: the tracker's next_seq, flows.py ``_rst``).
    Both sides go to CLOSED: an ``rst`` close by its sender, or with X's FINs before it
    (and the RST's time not before X's first FIN), ``fin-then-rst`` by X; either has one
    RST and is unusual by kind.

    Or *unclosed*: the handshake, then no RST and no FIN from Y, breaking none of the
    conditions above (duplicates, data after X's own FIN, SYNs ...): with nothing more,
    the tracker leaves both sides ESTABLISHED (kind ``none``, nothing unusual) or X in
    FIN_WAIT1/2 and Y in CLOSE_WAIT (``half-open``, unusual by kind).
    """
    n = len(cols["key"])
    order, starts, ends, sender, odd = _group(cols["key"], cols["packet"])
    ngroups = len(starts)
    size = ends - starts
    group_of = np.repeat(np.arange(ngroups), size)
    pos = np.arange(n) - starts[group_of]       # position in its group
    flags = cols["flags"][order].astype(np.int64)
    seq, ack = cols["seq"][order].astype(np.int64), cols["ack"][order].astype(np.int64)
    plen, ts = cols["plen"][order].astype(np.int64), cols["ts"][order]
    regular = cols["regular"][order]

    def per_group(values: np.ndarray, ufunc: Any, empty: Any) -> np.ndarray:
        out = np.full(ngroups, empty, dtype=values.dtype)
        ufunc.at(out, group_of, values)
        return out

    def anyg(mask: np.ndarray) -> np.ndarray:
        return np.bincount(group_of[mask], minlength=ngroups) > 0

    def at(values: np.ndarray, where: np.ndarray) -> np.ndarray:
        return values[np.minimum(where, n - 1)]

    # --- the handshake: records 0, 1, 2 of the group ----------------------------------
    r0, r1, r2 = starts, starts + 1, starts + 2
    ctl = SYN | ACK | FIN | RST
    opens = (flags[r0] & ctl) == SYN
    opens &= plen[r0] == 0
    has1, has2 = size >= 2, size >= 3
    isn_c = seq[r0]
    synack = has1 & (at(sender, r1) == 1) & ((at(flags, r1) & ctl) == SYN | ACK) \
        & (at(plen, r1) == 0) & (at(ack, r1) == (isn_c + 1) & _M32)
    isn_s = at(seq, r1)
    est = has2 & (at(sender, r2) == 0) & ((at(flags, r2) & (SYN | FIN | RST | ACK)) == ACK) \
        & (at(ack, r2) == (isn_s + 1) & _M32)
    # --- what no record may be --------------------------------------------------------
    rst = (flags & RST) != 0
    last_row = pos == size[group_of] - 1
    has_rst = anyg(rst)
    bad = ~regular | odd | (rst & ~last_row) | (((flags & SYN) != 0) & (pos >= 2))
    # duplicates: each record against the one before it in its direction
    by_dir = np.lexsort((np.arange(n), sender, group_of))
    same = (group_of[by_dir][1:] == group_of[by_dir][:-1]) \
        & (sender[by_dir][1:] == sender[by_dir][:-1])
    fields = [seq, ack, flags, cols["window"][order], cols["checksum"][order],
              cols["ipid"][order]]
    for f in fields:
        same &= f[by_dir][1:] == f[by_dir][:-1]
    bad[by_dir[1:][same]] = True
    # --- the FINs -------------------------------------------------------------------------
    last = ends - 1
    fin = (flags & FIN) != 0
    f1 = per_group(np.where(fin, pos, _BIG), np.minimum, _BIG)
    f1r = starts + np.where(f1 < _BIG, f1, 0)
    x = sender[f1r]                          # who closed first (sent the first FIN)
    xg, yg = x[group_of], 1 - x[group_of]
    fins_x = np.bincount(group_of[fin & (sender == xg)], minlength=ngroups)
    fins_y = np.bincount(group_of[fin & (sender == yg)], minlength=ngroups)
    f2 = per_group(np.where(fin & (sender == yg), pos, _BIG), np.minimum, _BIG)
    two_fins = (fins_x >= 1) & (fins_y == 1)
    f2r = starts + np.where(two_fins, f2, 0)
    fin_x = (seq[f1r] + plen[f1r]) & _M32
    fin_y = (seq[f2r] + plen[f2r]) & _M32
    after_f1 = pos > f1[group_of]
    after_f2 = pos > np.where(two_fins, f2, _BIG)[group_of]
    bad |= after_f1 & (sender == xg) & (plen > 0)
    bad |= after_f2 & (sender == yg) & (plen > 0)
    has_ack = (flags & ACK) != 0
    # the first of Y's segments that covers X's FIN (X to FIN_WAIT2)
    acks_x = after_f1 & (sender == yg) & has_ack & _after(ack, (fin_x + 1)[group_of])
    a1 = per_group(np.where(acks_x, pos, _BIG), np.minimum, _BIG)
    # a FIN from X again, before Y acknowledged its first: unusual (retransmitted, or with
    # another sequence number), nothing more
    again = fin & after_f1 & (sender == xg)
    bad |= again & (pos > a1[group_of])
    retransmitted = anyg(again)
    y_fin_acks = ((flags[f2r] & ACK) != 0) & _after(ack[f2r], (fin_x + 1) & _M32)
    # the ACK of Y's FIN: X's first segment after it that covers it, the group's last
    acks_y = after_f2 & (sender == xg) & has_ack & _after(ack, (fin_y + 1)[group_of])
    a2 = per_group(np.where(acks_y, pos, _BIG), np.minimum, _BIG)
    # ... before X's TIME_WAIT (from Y's FIN, or Y's last segment) is over at its time
    tw_over = ts[last] >= np.maximum(ts[f2r], ts[np.maximum(last - 1, 0)]) + time_wait_ns
    closes = two_fins & (ts[f1r] < ts[f2r]) & y_fin_acks & (a2 == size - 1) & ~tw_over
    three = a1 == f2  # Y's FIN is the first of its segments that covers X's
    begun = opens & ~anyg(bad) & synack & est
    fin_close = begun & closes & ~has_rst
    # --- or the FINs crossed: the first of Y's segments that covers X's FIN comes after
    # Y's FIN (X FIN_WAIT1 -> CLOSING, Y's CLOSE_WAIT rewritten as FIN_WAIT1 -> CLOSING);
    # it and X's first that covers Y's FIN are the last two records (both to TIME_WAIT),
    # the second before the first one's TIME_WAIT is over
    crossed = begun & two_fins & ~has_rst & (a1 > f2) \
        & (np.minimum(a1, a2) == size - 2) & (np.maximum(a1, a2) == size - 1) \
        & (ts[last] < ts[np.maximum(last - 1, 0)] + time_wait_ns)
    # --- or an RST, acceptable, as the last record, with no FIN or after X's ------------
    rst_sender = sender[last]
    isn = np.where(sender == 0, isn_c[group_of], isn_s[group_of])
    rel_end = (seq + plen + ((flags & SYN) != 0) + fin - isn) & _M32
    far = anyg(rel_end >= 1 << 31)
    mine_before = (sender == rst_sender[group_of]) & ~last_row
    sent = per_group(np.where(mine_before, rel_end, 0), np.maximum, 0)
    rel_rst = (seq[last] - np.where(rst_sender == 0, isn_c, isn_s)) & _M32
    rst_ends = begun & has_rst & (fins_y == 0) & (plen[last] == 0) & ~fin[last] & ~far \
        & (rel_rst >= sent)
    rst_close = rst_ends & (fins_x == 0)
    fin_then_rst = rst_ends & (fins_x > 0) & (ts[last] >= ts[f1r])
    clean = fin_close | crossed | rst_close | fin_then_rst
    # could still become one: what there is so far breaks none of the conditions
    promising = opens & ~anyg(bad) & ((size < 2) | synack) & ((size < 3) | est) & ~clean \
        & ~has_rst & (fins_y <= 1)
    # or, if nothing follows, stays open (no FIN) or half-open (FINs from one side)
    unclosed = begun & ~has_rst & (fins_y == 0)
    # the verdicts, coded as ResultSink codes them; when a sweep would let each go
    tw_side = np.where(x == 0, 1, 2)  # the TIME_WAIT is the first closer's: client, server
    meta = np.where(three, _THREE_WAY, _FOUR_WAY) | tw_side << 3 \
        | retransmitted.astype(np.int64) << 5
    meta = np.where(crossed, _SIMULTANEOUS | 3 << 3 | 1 << 5, meta)  # TIME_WAIT on both
    meta = np.where(rst_close, _RST | 1 << 5 | 1 << 6, meta)
    meta = np.where(fin_then_rst, _FIN_THEN_RST | 1 << 5 | 1 << 6, meta)
    meta = np.where(unclosed, np.where(fins_x > 0, _HALF_OPEN | 1 << 5, _NONE), meta)
    due = np.where(rst_ends, ts[last] + grace_ns,
                   np.maximum(np.where(crossed, ts[np.maximum(last - 1, 0)], ts[f2r]),
                              ts[last]) + time_wait_ns)
    return Groups(order, starts, ends, sender, clean, promising, unclosed, meta, due)


_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                 0x27D4EB2F165667C5], np.uint64)


def _pair_hash(words: np.ndarray, version: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each record's connection (``words``: the two endpoints as three
    64-bit words each, word by word): the same for both directions (the two endpoints'
    hashes added); different connections almost never alike (and when they are,
    :func:`_group` notices)."""
    def endpoint(w: np.ndarray) -> np.ndarray:
        h = w[0] * _MIX[0] + w[1] * _MIX[1] + w[2] * _MIX[2]
        return (h ^ (h >> np.uint64(29))) * _MIX[3]
    h = endpoint(words[:3]) + endpoint(words[3:]) + version.astype(np.uint64) * _MIX[0]
    return h ^ (h >> np.uint64(32))


def _group(key: np.ndarray, packet: np.ndarray) -> tuple[np.ndarray, ...]:
    """Records by connection: (order, starts, ends, sender, odd), where ``order`` lists
    the records group by group, each group in capture order, from ``starts`` to
    ``ends``; ``sender`` (in ``order``) is 0 for a record sent by the group's first
    record's sender (endpoint 0), else 1; ``odd`` marks the records of groups left to the
    tracker: an endpoint talking to itself, or records of another connection whose hash
    is alike (the group is then not one connection)."""
    n = len(key)
    wide = np.zeros((n, 48), np.uint8)  # the two endpoints as three 64-bit words each
    wide[:, :18], wide[:, 24:42] = key[:, 1:19], key[:, 19:]
    words = np.ascontiguousarray(wide.view(np.uint64).T)  # word by word: faster to index
    version = key[:, 0]
    h = _pair_hash(words, version)
    # sort on the hash's top bits and the record's place in the window (unique, and in
    # capture order when the window is: then no stable sort is needed)
    bits = max(n.bit_length(), 1)
    if n > 1 and not (packet[1:] > packet[:-1]).all():
        place = np.argsort(packet, kind="stable")
        rank = np.empty(n, np.uint64)
        rank[place] = np.arange(n, dtype=np.uint64)
    else:
        rank = np.arange(n, dtype=np.uint64)
    sortkey = np.sort((h >> np.uint64(bits)) << np.uint64(bits) | rank)
    order = (sortkey & np.uint64((1 << bits) - 1)).astype(np.int64)
    top = sortkey >> np.uint64(bits)
    new_group = np.ones(n + 1, bool)
    new_group[1:-1] = top[1:] != top[:-1]
    bounds = np.flatnonzero(new_group)
    starts, ends = bounds[:-1], bounds[1:]
    first = np.repeat(order[starts], ends - starts)
    # each record's endpoints against its group's first record's: the same, or swapped
    forward, back = np.ones(n, bool), np.ones(n, bool)
    for i in range(3):
        a, z = words[i][order], words[i + 3][order]
        a0, z0 = words[i][first], words[i + 3][first]
        forward &= (a == a0) & (z == z0)
        back &= (a == z0) & (z == a0)
    odd_rec = (forward == back) | (version[order] != version[first])  # neither, or a loop
    group_of = np.repeat(np.arange(len(starts)), ends - starts)
    odd = np.bincount(group_of[odd_rec], minlength=len(starts))[group_of] > 0
    return order, starts, ends, (~forward).astype(np.int64), odd


def _keep(tracker: Tracker, cols: dict[str, np.ndarray], groups: Groups,
          chosen: np.ndarray, tuples: list[tuple[bytes, int, bytes, int]],
          keep_rows: KeepRows) -> None:
    """Keep the clean closes and unclosed connections ``chosen`` (group numbers; their
    4-tuples as their first records have them) as their packets (a :data:`HEADER`, then
    a :data:`ROW` each), and park each as a sweep would: a late segment of its 4-tuple
    can still take it back until it is due (an unclosed one: until the end of the
    capture)."""
    order, starts, ends = groups.order, groups.starts, groups.ends
    size = ends - starts
    member = np.zeros(len(starts), bool)
    member[chosen] = True
    in_order = np.repeat(member, size)
    picked = order[in_order]
    counts = size[chosen]
    first = order[starts[chosen]]
    # each connection's header row, then its packets' rows
    at = np.concatenate(([0], np.cumsum(counts + 1)[:-1]))
    out = np.zeros(len(picked) + len(chosen), ROW)
    heads = out.view(HEADER)
    heads["key"][at] = cols["key"][first].view("V37").ravel()
    is_row = np.ones(len(out), bool)
    is_row[at] = False
    rows = np.empty(len(picked), ROW)
    for c in ("packet", "ts", *_FIELDS):
        rows[c] = cols[c][picked]
    rows["sender"] = groups.sender[in_order]
    out[is_row] = rows
    handle = keep_rows(cols["packet"][first], out.view(np.uint8).data, at * ROW.itemsize,
                       (counts + 1) * ROW.itemsize, groups.meta[chosen])
    due = np.where(groups.unclosed[chosen], -1, groups.due[chosen]).tolist()
    park = tracker.park_kept
    for i, (four, when) in enumerate(zip(tuples, due)):
        park(four, None if when == -1 else when, handle + i)


def replay(blob: bytes, keep_ladder: bool = False) -> Conn:
    """The connection a blob of :func:`_keep`'s holds, fed to a tracker of its own: what
    the tracker would have made of its packets."""
    tracker = Tracker(keep_ladder=keep_ladder)
    raw = blob[1:38]
    width = 16 if raw[0] == 6 else 4
    ends = ((raw[1:1 + width], raw[17] << 8 | raw[18]),
            (raw[19:19 + width], raw[35] << 8 | raw[36]))
    rows = np.frombuffer(blob, ROW, offset=ROW.itemsize)
    for (packet, ts, sender, ipid, tcp_len, seq, ack, word, window, checksum,
         wscale) in zip(*(rows[c].tolist() for c in ("packet", "ts", "sender", *_FIELDS))):
        (src, sport), (dst, dport) = ends[sender], ends[1 - sender]
        tracker.feed(packet, ts, (raw[0], src, dst, ipid, tcp_len, sport, dport, seq, ack,
                                  word, window, checksum, None if wscale < 0 else wscale))
    (conn,) = tracker._tracked()
    return conn
