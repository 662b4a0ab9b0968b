"""What the tracker would conclude about each connection of a window of records, when the
shape of its records leaves no doubt: the conditions of :func:`recognise`, which follow
:mod:`teardown_analyzer.flows` step by step, checked with array operations on the columns
:mod:`teardown_analyzer.columnar` gathers (one row per record: ``key``, the two endpoints
as :func:`~teardown_analyzer.columnar.gather` packs them; ``packet``, ``ts``, ``seq``,
``ack``, ``flags``, ``plen``, ``window``, ``checksum``, ``ipid``, ``opt``, ``regular``; and
``hash``, each record's connection's :func:`key_hash`, made as its batch is gathered).

Every condition here is one the tracker's verdict depends on, or stricter; each has an
edited capture in tests/test_columnar.py that breaks it alone and changes what the
tracker concludes.  Some conditions are stricter than the verdict needs (no data on the
SYN, the handshake's ACK exactly at the SYN-ACK's sequence number plus one, no duplicate
whatever the time between the two copies, the two last ACKs of a simultaneous close as
the last two records): a connection they turn away is fed to the tracker, with the same
result.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .flows import ACK, FIN, RST, SLACK_NS, SYN
from .results import (FIN_RETX_CAP, FIN_RETX_SHIFT, HALF_NONE, INITIATOR_SHIFT,
                      KINDS, RSTS_SHIFT, TW_SHIFT, UNUSUAL_BIT)

_M32 = 0xFFFFFFFF
_BIG = np.iinfo(np.int64).max


def _after(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """``a`` at or after ``b`` in 32-bit sequence space (the tracker's seq_geq)."""
    return ((a - b) & _M32) < 0x80000000


class Groups(NamedTuple):
    """A window's records by connection (:func:`recognise`)."""

    order: np.ndarray
    """Record indices, grouped by connection, each group in capture order."""
    starts: np.ndarray
    """Where each group begins in ``order``."""
    ends: np.ndarray
    group_of: np.ndarray
    """Per record, in ``order``: its group's number."""
    sender: np.ndarray
    """Per record, in ``order``: 0 if its group's endpoint 0 sent it, else 1."""
    clean: np.ndarray
    """Per group: a complete clean close (FINs, an RST, or FINs then an RST)."""
    promising: np.ndarray
    """Per group: the beginning of one (what there is breaks none of the conditions)."""
    unclosed: np.ndarray
    """Per group: a handshake and what follows it, still open (no FIN) or half-open (one
    FIN), or only the beginning of a handshake, breaking none of the conditions: what the
    tracker makes of it if nothing more of its 4-tuple comes."""
    meta: np.ndarray
    """Per clean or unclosed group: its verdict, coded as
    :class:`~teardown_analyzer.results.ResultSink` codes it (kind, RSTs, TIME_WAIT side,
    unusual, initiator)."""
    half: np.ndarray
    """Per clean or unclosed group: its half-close, coded as
    :class:`~teardown_analyzer.results.ResultSink` codes it (``Facts.half_close_ns``)."""
    due: np.ndarray
    """Per clean group: when a sweep would let it go (its TIME_WAIT timer; for an RST, a
    second after it): until then a segment of its 4-tuple takes it back.  An unclosed
    group waits for one until the end of the capture."""
    hash: np.ndarray
    """Per group: the hash of its two endpoints (:func:`pair_hash`)."""


_FOUR_WAY, _THREE_WAY, _SIMULTANEOUS, _RST, _FIN_THEN_RST, _HALF_OPEN, _NONE = (
    KINDS.index(k) for k in ("four-way", "three-way", "simultaneous", "rst", "fin-then-rst",
                             "half-open", "none"))


def recognise(cols: dict[str, np.ndarray], time_wait_ns: int, grace_ns: int) -> Groups:
    """Group the records by connection (``cols["hash"]``: each one's :func:`key_hash`);
    which groups are complete clean closes, and which are the beginning of one.

    The conditions, in the tracker's terms (flows.py ``_segment``):

    * records 0, 1, 2: a SYN (no ACK, FIN, RST, no data) from endpoint 0, the client; a
      SYN-ACK from endpoint 1 acknowledging it; an ACK from the client acknowledging the
      SYN-ACK (no SYN, FIN, RST).  Both sides are ESTABLISHED after it.
    * no SYN after record 1, no RST at all, and no record the tracker would skip or that
      was not read from the common layouts;
    * one FIN from Y, one or more from X.  The first (from X) moves X to FIN_WAIT1 and
      the peer Y to CLOSE_WAIT; X sends no data after it, and its FIN's time is before
      Y's.  X's other FINs come before Y acknowledges the first (a retransmission, or one
      with another sequence number: an anomaly, the close unusual, nothing more for the
      verdict, though a copy after Y's delayed ACK of the first was due moves Y's
      CLOSE_WAIT to it, flows.py ``_delayed_ack_overdue``; one after it would take back
      that acknowledgment, flows.py ``_revoke_ack``).
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
    second before the first one's TIME_WAIT is over; X's FIN only once (sent again, the
    tracker may find Y took the copy, flows.py ``_fin_taken``).

    Or, after the handshake and instead of Y's FIN: an RST without data or FIN as the
    last record, acceptable (its sequence number at or after everything its sender sent, the
    ends within 2**31 of the sender's ISN: the tracker's next_seq, flows.py ``_rst``).
    Both sides go to CLOSED: an ``rst`` close by its sender, or with X's FINs before it
    (and the RST's time not before X's first FIN), ``fin-then-rst`` by X; either has one
    RST and is unusual by kind.  Not an RST from X after a segment of Y's that leaves X's
    FIN out of its ACK field from a millisecond before the round trip between the capture
    point and Y (the fastest Y answered, :func:`_fastest`) after it (later than that round trip plus a millisecond, or a pure ACK
    repeating Y's last, it shows the FIN lost after the capture point or out of order):
    Y's rcv_nxt is then short of what X sent.

    Or a SYN refused: the SYN, then an RST+ACK from the other endpoint, without data,
    acknowledging it (acceptable in SYN_SENT): both go to CLOSED, an ``rst`` close by it.
    Or the SYN, the SYN-ACK and an RST as above (a handshake aborted).

    Or *unclosed*: the handshake, then no RST and no FIN from Y, breaking none of the
    conditions above (duplicates, data after X's own FIN, SYNs ...): with nothing more,
    the tracker leaves both sides ESTABLISHED (kind ``none``, nothing unusual) or X in
    FIN_WAIT1/2 and Y in CLOSE_WAIT (``half-open``, unusual by kind).  Or only the
    beginning of a handshake: the SYN, then nothing, or the SYN again (its ISN, no data)
    any number of times, or the SYN-ACK: the client stays in SYN_SENT or goes to
    ESTABLISHED, the server in SYN_RECV (kind ``none``, nothing unusual).
    """
    n = len(cols["key"])
    hashes = cols["hash"]
    order, starts, ends, group_of, sender, odd = _group(cols["key"], hashes)
    ngroups = len(starts)
    size = ends - starts
    first_row = starts[group_of]  # each record's group's first
    pos = np.arange(n) - first_row  # position in its group
    # (take: about a fifth faster than indexing)
    flags, seq, ack, plen, ts, regular, opt = (cols[c].take(order) for c in (
        "flags", "seq", "ack", "plen", "ts", "regular", "opt"))

    def first(mask: np.ndarray) -> np.ndarray:  # each group's first record in mask, or _BIG
        rows = np.flatnonzero(mask)
        g = group_of[rows]
        new = np.ones(len(rows), bool)
        new[1:] = g[1:] != g[:-1]
        out = np.full(ngroups, _BIG)
        out[g[new]] = pos[rows[new]]
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
    last_row = np.zeros(n, bool)
    last_row[ends - 1] = True
    has_rst = anyg(rst)
    bad = ~regular | odd | (rst & ~last_row)
    # a SACK block (data held out of order, behind a hole): the tracker reads it (flows.py
    # Tracker._segment, _hole)
    bad |= (opt >= 0) & ((flags & SYN) == 0)
    # duplicates: each record against the one before it in its direction.  Records in a
    # row from one sender of one group make a run; in a run that record is the one right
    # before; for a run's first, the last of the run before the one before it, if that
    # is in the group.  (Compared on seq, ack and flags first: few pairs are left.)
    turn = (sender[1:] != sender[:-1]) | (group_of[1:] != group_of[:-1])
    alike = (seq[1:] == seq[:-1]) & (ack[1:] == ack[:-1]) & (flags[1:] == flags[:-1])
    inner = np.flatnonzero(~turn & alike) + 1
    run = np.flatnonzero(turn) + 1  # each run's first record (but the window's first)
    later, ended = run[1:], run[:-1] - 1
    ok = (ended >= first_row[later]) & (seq[ended] == seq[later]) \
        & (ack[ended] == ack[later]) & (flags[ended] == flags[later])
    cur, prev = np.concatenate((inner, later[ok])), np.concatenate((inner - 1, ended[ok]))
    for c in ("window", "checksum", "ipid"):
        same = cols[c][order[prev]] == cols[c][order[cur]]
        prev, cur = prev[same], cur[same]
    bad[cur] = True
    # --- the FINs -------------------------------------------------------------------------
    last = ends - 1
    fin = (flags & FIN) != 0
    f1 = first(fin)
    f1r = starts + np.where(f1 < _BIG, f1, 0)
    x = sender[f1r]                          # who closed first (sent the first FIN)
    from_x = sender == x[group_of]           # sent by X (or by Y: ~from_x)
    from_y = ~from_x
    fin_by_x, fin_by_y = fin & from_x, fin & from_y
    fins_x = np.bincount(group_of[fin_by_x], minlength=ngroups)
    fins_y = np.bincount(group_of[fin_by_y], minlength=ngroups)
    f2 = first(fin_by_y)
    two_fins = (fins_x >= 1) & (fins_y == 1)
    f2r = starts + np.where(two_fins, f2, 0)
    fin_x = (seq[f1r] + plen[f1r]) & _M32
    fin_y = (seq[f2r] + plen[f2r]) & _M32
    after_f1 = pos > f1[group_of]
    after_f2 = pos > np.where(two_fins, f2, _BIG)[group_of]
    data = plen > 0
    bad |= after_f1 & from_x & data
    bad |= after_f2 & from_y & data
    has_ack = (flags & ACK) != 0
    # the first of Y's segments that covers X's FIN (X to FIN_WAIT2)
    acks_x = after_f1 & from_y & has_ack & _after(ack, (fin_x + 1)[group_of])
    a1 = first(acks_x)
    # a FIN from X again, before Y acknowledged its first: unusual (retransmitted, or with
    # another sequence number), nothing more
    again = fin_by_x & after_f1
    bad |= again & (pos > a1[group_of])
    retransmitted = anyg(again)
    y_fin_acks = ((flags[f2r] & ACK) != 0) & _after(ack[f2r], (fin_x + 1) & _M32)
    # the ACK of Y's FIN: X's first segment after it that covers it, the group's last
    acks_y = after_f2 & from_x & has_ack & _after(ack, (fin_y + 1)[group_of])
    a2 = first(acks_y)
    # ... before X's TIME_WAIT (from Y's FIN, or Y's last segment) is over at its time
    tw_over = ts[last] >= np.maximum(ts[f2r], ts[np.maximum(last - 1, 0)]) + time_wait_ns
    closes = two_fins & (ts[f1r] < ts[f2r]) & y_fin_acks & (a2 == size - 1) & ~tw_over
    three = a1 == f2  # Y's FIN is the first of its segments that covers X's
    # what breaks none of the conditions; a SYN after the handshake's first two records
    # breaks one, but in a group of only the client's SYN, sent again (``opening``)
    sound_but_syns = ~anyg(bad)
    sound = sound_but_syns & ~anyg(((flags & SYN) != 0) & (pos >= 2))
    begun = opens & sound & synack & est
    fin_close = begun & closes & ~has_rst
    # --- or the FINs crossed: the first of Y's segments that covers X's FIN comes after
    # Y's FIN (X FIN_WAIT1 -> CLOSING, Y's CLOSE_WAIT rewritten as FIN_WAIT1 -> CLOSING);
    # it and X's first that covers Y's FIN are the last two records (both to TIME_WAIT),
    # the second before the first one's TIME_WAIT is over; X's FIN not sent again (Y, in
    # FIN_WAIT1, ACKs it at once: the tracker may find it took a later copy, _fin_taken)
    crossed = begun & two_fins & ~has_rst & (a1 > f2) & ~retransmitted \
        & (np.minimum(a1, a2) == size - 2) & (np.maximum(a1, a2) == size - 1) \
        & (ts[last] < ts[np.maximum(last - 1, 0)] + time_wait_ns)
    # --- or an RST, acceptable, as the last record, with no FIN or after X's ------------
    rst_sender = sender[last]
    # (after the handshake, or right after the SYN-ACK: a handshake aborted, as a SYN scan
    # of an open port does)
    aborted = opens & sound & synack & (size == 3)
    rst_ends = (begun | aborted) & has_rst & (fins_y == 0) & (plen[last] == 0) & ~fin[last]
    g = np.flatnonzero(rst_ends)  # acceptable? (their records only, group by group)
    if len(g):
        sizes = size[g]
        offs = np.cumsum(sizes) - sizes
        member = np.repeat(np.arange(len(g)), sizes)
        rows = np.arange(len(member)) + (starts[g] - offs)[member]
        by = sender[rows]
        isn = np.where(by == 0, isn_c[g][member], isn_s[g][member])
        rel_end = (seq[rows] + plen[rows] + ((flags[rows] & SYN) != 0) + fin[rows] - isn) \
            & _M32
        far = np.maximum.reduceat(rel_end, offs) >= 1 << 31
        mine_before = (by == rst_sender[g][member]) & ~last_row[rows]
        sent = np.maximum.reduceat(np.where(mine_before, rel_end, 0), offs)
        rel_rst = (seq[last[g]] - np.where(rst_sender[g] == 0, isn_c[g], isn_s[g])) & _M32
        rst_ends[g] = ~far & (rel_rst >= sent)
    rst_close = rst_ends & (fins_x == 0)
    fin_then_rst = rst_ends & (fins_x > 0) & (ts[last] >= ts[f1r])
    # ... but not X's RST after a segment of Y's that shows X's FIN lost, with no ACK of
    # it since: one that leaves it out, more than the round trip between the capture point
    # and Y (plus a millisecond) after it, or a pure ACK repeating Y's last as it arrives,
    # from a millisecond before that round trip (flows.py _ack_overdue; here any segment
    # from then on); Y's rcv_nxt is then short of what X sent, and it takes the RST only
    # there (flows.py _rst)
    if fin_then_rst.any():
        g = np.flatnonzero(fin_then_rst)  # (their records only)
        sizes = size[g]
        offs = np.cumsum(sizes) - sizes
        member = np.repeat(np.arange(len(g)), sizes)
        rows = np.arange(len(member)) + (starts[g] - offs)[member]
        fastest = _fastest(sender[rows], flags[rows], seq[rows], ack[rows], plen[rows],
                           ts[rows], member, offs, isn_c[g], isn_s[g])
        y = 1 - x[g]
        handshake_y = np.where(y == 0, at(ts, r2[g]) - at(ts, r1[g]),
                               at(ts, r1[g]) - ts[r0[g]])
        there_y = np.zeros(ngroups, np.int64)
        there_y[g] = np.maximum(0, np.minimum(handshake_y, fastest[np.arange(len(g)), y]))
        stale = after_f1 & from_y & has_ack & ~_after(ack, (fin_x + 1)[group_of]) \
            & (ts >= (ts[f1r] + there_y - SLACK_NS)[group_of]) & (pos < a1[group_of])
        fin_then_rst &= ~(anyg(stale) & (rst_sender == x))
    # or a SYN refused (a scan of closed ports): an RST+ACK from the other endpoint that
    # acknowledges it (acceptable in SYN_SENT), both CLOSED, an rst close by the server
    refused = opens & sound & (size == 2) & (at(sender, r1) == 1) \
        & ((at(flags, r1) & ctl) == RST | ACK) & (at(plen, r1) == 0) \
        & (at(ack, r1) == (isn_c + 1) & _M32)
    clean = fin_close | crossed | rst_close | fin_then_rst | refused
    # could still become one: what there is so far breaks none of the conditions
    promising = opens & sound & ((size < 2) | synack) & ((size < 3) | est) & ~clean \
        & ~has_rst & (fins_y <= 1)
    # or only the beginning of a handshake: the client's SYN (sent again with its ISN, any
    # number of times, or not), or the SYN and its SYN-ACK (a SYN flood, a scan, a server
    # that does not answer)
    def syn_again(rows: np.ndarray) -> np.ndarray:
        return ((flags[rows] & ctl) == SYN) & (sender[rows] == 0) & (plen[rows] == 0) \
            & (seq[rows] == isn_c[group_of[rows]])
    opening = opens & sound & ((size == 1)
                               | (size == 2) & (synack | syn_again(np.minimum(r1, n - 1))))
    # (three SYNs or more: the groups a SYN after the first two records turned away)
    more = opens & sound_but_syns & ~sound
    if more.any():
        rows = np.flatnonzero(more[group_of])
        others = np.bincount(group_of[rows[~syn_again(rows)]], minlength=ngroups)
        opening |= more & (others == 0)
    promising |= opening
    # or, if nothing follows, stays open (no FIN; the client in SYN_SENT if the handshake
    # is not over) or half-open (FINs from one side)
    unclosed = begun & ~has_rst & (fins_y == 0) | opening
    # the verdicts, coded as ResultSink codes them; when a sweep would let each go
    # (the client, who sent the SYN, is sender 0: 1 for the client, 2 for the server)
    role_x = x.astype(np.int64) + 1
    closer = role_x << INITIATOR_SHIFT  # who sent the first FIN
    tw_side = role_x << TW_SHIFT  # the TIME_WAIT is the first closer's
    one_rst = 1 << RSTS_SHIFT | UNUSUAL_BIT
    # X's FIN sent again: its copies (the same sequence number; one with another is an
    # anomaly, not a retransmission, flows.py Tracker._segment)
    copies = np.bincount(group_of[again & ((seq + plen) & _M32 == fin_x[group_of])],
                         minlength=ngroups)
    meta = np.where(three, _THREE_WAY, _FOUR_WAY) | tw_side | closer \
        | retransmitted.astype(np.int64) * UNUSUAL_BIT
    both = 3 << TW_SHIFT | 3 << INITIATOR_SHIFT
    meta = np.where(crossed, _SIMULTANEOUS | both | UNUSUAL_BIT, meta)
    by_rst = (rst_sender.astype(np.int64) + 1) << INITIATOR_SHIFT
    meta = np.where(rst_close | refused, _RST | one_rst | by_rst, meta)
    meta = np.where(fin_then_rst, _FIN_THEN_RST | one_rst | closer, meta)
    meta = np.where(unclosed, np.where(fins_x > 0, _HALF_OPEN | UNUSUAL_BIT | closer, _NONE),
                    meta)
    meta |= np.minimum(copies, FIN_RETX_CAP) << FIN_RETX_SHIFT
    # the half-close: from the first FIN to the other's (the FINs in time order, as a
    # summary takes them), or to the RST; to the end of the capture if half-open
    half = np.where(fin_then_rst, ts[last] - ts[f1r], np.abs(ts[f2r] - ts[f1r]))
    half = np.where(fins_x > 0, half, HALF_NONE)
    # (coded as results.running_half codes it: ts is int64, below HALF_CAP)
    half = np.where(unclosed & (fins_x > 0), ~ts[f1r], half)
    due = np.where(rst_ends | refused, ts[last] + grace_ns,
                   np.maximum(np.where(crossed, ts[np.maximum(last - 1, 0)], ts[f2r]),
                              ts[last]) + time_wait_ns)
    return Groups(order, starts, ends, group_of, sender, clean, promising, unclosed, meta,
                  half, due, hashes[order[starts]])


def _fastest(by: np.ndarray, flags: np.ndarray, seq: np.ndarray, ack: np.ndarray,
             plen: np.ndarray, ts: np.ndarray, member: np.ndarray, offs: np.ndarray,
             isn_c: np.ndarray, isn_s: np.ndarray) -> np.ndarray:
    """Per group (its records in a row, ``member`` each one's group, ``offs`` where each
    group begins; a handshake first, no duplicates, each sender's sequence numbers within
    2**31 of its ISN) and per sender (0, 1): the fastest it answered (flows.py
    ``round_trip``; ``Direction.answer_ns``), or _BIG.  An answer: a segment with a new
    ACK field (unlike its sender's segment before it, or that one had no ACK) equal to
    the end of what the peer sent before it, from when that end was first captured."""
    seq, ack, plen, flags = (a.astype(np.int64) for a in (seq, ack, plen, flags))
    idx = np.arange(len(by))
    head = idx == offs[member]  # each group's first record
    prev = np.maximum(idx - 1, 0)
    shift = member.astype(np.int64) << 33  # (keeps each group's running maxima apart)
    syn = (flags & SYN) != 0
    fin = (flags & FIN) != 0
    isn = np.where(by == 0, isn_c[member], isn_s[member]).astype(np.int64)
    rel_end = (seq + plen + syn + fin - isn) & _M32
    # per sender p: the end of what it sent before each record, and when that was first
    # captured
    high, when = [], []
    for p in (0, 1):
        mine = by == p
        top = np.maximum.accumulate(np.where(mine, rel_end, -1) + shift) - shift
        raised = mine & (rel_end > np.where(head, -1, top[prev]))
        last_raise = np.maximum.accumulate(np.where(raised, idx, -1))
        high.append(np.where(head, -1, top[prev]))
        when.append(ts[last_raise[prev]])
    peer_high = np.where(by == 0, high[1], high[0])
    peer_when = np.where(by == 0, when[1], when[0])
    rel_ack = (ack - np.where(by == 0, isn_s[member], isn_c[member]).astype(np.int64)) \
        & _M32
    # each record's sender's record before it in the group
    same = [np.maximum.accumulate(np.where(by == b, idx, -1))[prev] for b in (0, 1)]
    before = np.where(by == 0, same[0], same[1])
    first = head | (before < offs[member])
    before = np.maximum(before, 0)
    has_ack = (flags & ACK) != 0
    new = first | (ack != ack[before]) | ((flags[before] & ACK) == 0)
    hit = has_ack & new & (peer_high >= 0) & (rel_ack == peer_high)
    took = np.where(hit, ts - peer_when, _BIG)
    return np.stack([np.minimum.reduceat(np.where(by == b, took, _BIG), offs)
                     for b in (0, 1)], axis=1)


_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                 0x27D4EB2F165667C5], np.uint64)


def _pair_hash(words: list[np.ndarray], version: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each record's connection (``words``: the two endpoints as three
    64-bit words each, word by word): the same for both directions (the two endpoints'
    hashes added); different connections almost never alike (and when they are,
    :func:`_group` notices).  :func:`pair_hash` is the same for one 4-tuple."""
    def endpoint(w: list[np.ndarray]) -> np.ndarray:
        h = w[0] * _MIX[0] + w[1] * _MIX[1] + w[2] * _MIX[2]
        return (h ^ (h >> np.uint64(29))) * _MIX[3]
    h = endpoint(words[:3]) + endpoint(words[3:]) + version.astype(np.uint64) * _MIX[0]
    return h ^ (h >> np.uint64(32))


_M64 = (1 << 64) - 1
_MIXED = [int(m) for m in _MIX]


def pair_hash(four: tuple[bytes, int, bytes, int]) -> int:
    """:func:`_pair_hash` of a 4-tuple as the tracker has it (an IPv4 address is 4 bytes,
    an IPv6 one 16), computed with Python's integers."""
    def endpoint(addr: bytes, port: int) -> int:
        h = (int.from_bytes(addr[:8], "little") * _MIXED[0]
             + int.from_bytes(addr[8:16], "little") * _MIXED[1]
             + ((port & 0xFF) << 8 | port >> 8) * _MIXED[2]) & _M64  # (read as stored)
        return ((h ^ h >> 29) * _MIXED[3]) & _M64
    src, sport, dst, dport = four
    h = (endpoint(src, sport) + endpoint(dst, dport)
         + (4 if len(src) == 4 else 6) * _MIXED[0]) & _M64
    return h ^ h >> 32


def _words(key: np.ndarray) -> list[np.ndarray]:
    """The two endpoints of each key as three 64-bit words each: address, address, port."""
    n = len(key)
    key = np.ascontiguousarray(key)

    def word(at: int, dtype: str) -> np.ndarray:  # the item at ``at`` of every key
        return np.ndarray((n,), dtype, key, at, (key.shape[1],)).astype(np.uint64)
    return [word(1, "<u8"), word(9, "<u8"), word(17, "<u2"),
            word(19, "<u8"), word(27, "<u8"), word(35, "<u2")]


def key_hash(key: np.ndarray) -> np.ndarray:
    """:func:`_pair_hash` of each record's connection (``key``: as
    :func:`~teardown_analyzer.columnar.gather` packs them)."""
    return _pair_hash(_words(key), key[:, 0])


def _group(key: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, ...]:
    """Records by connection (``h``: each one's :func:`key_hash`; each connection's records
    in capture order): (order, starts, ends, group_of, sender, odd), where ``order`` lists
    the records group by group, each group in capture order, from ``starts`` to ``ends``
    (``group_of``: each one's group);
    ``sender`` (in ``order``) is 0 for a record sent by the group's first record's sender
    (endpoint 0), else 1; ``odd`` marks the records of groups left to the tracker (whose
    ``sender`` means nothing): an endpoint talking to itself, or records of another
    connection whose hash is alike (the group is then not one connection)."""
    n = len(key)
    key = np.ascontiguousarray(key)
    version = key[:, 0]
    # sort on the hash's top bits and the record's place in the window (unique; each
    # connection's records are in capture order in it)
    bits = max(n.bit_length(), 1)
    rank = np.arange(n, dtype=np.uint64)
    sortkey = np.sort((h >> np.uint64(bits)) << np.uint64(bits) | rank)
    order = (sortkey & np.uint64((1 << bits) - 1)).astype(np.int64)
    top = sortkey >> np.uint64(bits)
    new_group = np.ones(n + 1, bool)
    new_group[1:-1] = top[1:] != top[:-1]
    bounds = np.flatnonzero(new_group)
    starts, ends = bounds[:-1], bounds[1:]
    # each record's endpoints against the record before it in its group: the same, or
    # swapped (the other endpoint sent it: a turn); a group's first record: endpoint 0's.
    # An IPv4 endpoint is one 64-bit word (the address, the port above it: an IPv4 key's
    # second word is zero); an IPv6 record's endpoints are then compared word by word
    # (its first record is taken for a loop if its two words alike: left to the tracker)
    def endpoint(at: int) -> np.ndarray:  # address (its first 8 bytes), port above it
        return (np.ndarray((n,), "<u8", key, at, (key.shape[1],))
                | np.ndarray((n,), "<u2", key, at + 16, (key.shape[1],)).astype(np.uint64)
                << np.uint64(32)).take(order)
    a, z = endpoint(1), endpoint(19)
    same = (a[1:] == a[:-1]) & (z[1:] == z[:-1])
    swapped = (a[1:] == z[:-1]) & (z[1:] == a[:-1])
    loop = a[starts] == z[starts]
    v = version.take(order)
    six = np.flatnonzero(v == 6)
    at = six[six > 0]  # an IPv6 record and the one before it
    if len(at):
        cur = _words(key.take(order[at], axis=0))  # (IPv6 records: their words only)
        prev = _words(key.take(order[at - 1], axis=0))
        same6, swapped6 = np.ones(len(at), bool), np.ones(len(at), bool)
        for i in range(3):
            a6, z6, pa, pz = cur[i], cur[i + 3], prev[i], prev[i + 3]
            same6 &= (a6 == pa) & (z6 == pz)
            swapped6 &= (a6 == pz) & (z6 == pa)
        same[at - 1], swapped[at - 1] = same6, swapped6
    # odd: neither (another connection), both (an endpoint talking to itself: so is a
    # group's first record whose two endpoints are one), or another IP version
    odd_rec = np.zeros(n, bool)
    odd_rec[1:] = (same == swapped) | (v[1:] != v[:-1])
    odd_rec[starts] = loop
    turns = np.zeros(n, np.int64)
    turns[1:] = swapped
    turns = np.cumsum(turns)  # a group's first record's turn is taken off below
    group_of = np.repeat(np.arange(len(starts)), ends - starts)
    odd = np.bincount(group_of[odd_rec], minlength=len(starts))[group_of] > 0
    return order, starts, ends, group_of, (turns - turns[starts][group_of]) & 1, odd
