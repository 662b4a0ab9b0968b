"""Plain data segments of open connections, counted a batch at a time with numpy.

Most packets of a long connection change nothing but counters: a segment without SYN, FIN
or RST of a connection that is open and not closing (the tracker's short path).  Among the
records of a batch, gathered as columns (:func:`teardown_analyzer.columnar.gather`), this
module finds with array operations the segments that are exactly that, and applies them
to the tracker per connection direction (packets, bytes, highest sequence number and when
it was first captured, the fastest answer, the last segment for duplicate detection), so
that only the others go through :meth:`Tracker.feed
<teardown_analyzer.flows.Tracker.feed>` one by one.

The result is identical to feeding every packet, because a segment is counted here only
when feeding it would have taken the short path with the same effect:

* its connection was already tracked, open and not closing when the batch began, and no
  other packet of that connection comes before it in the batch except such segments (the
  first other one, a SYN, a FIN, an RST, anything not read from the common layouts, ends
  the run: from there on the connection's packets are fed in order);
* it is not the same segment captured twice (compared with the segment before it in its
  direction, as the tracker does; the first such one also ends the run);
* the sequence numbers of the run lie within 2**31 of each other, so that "highest" is the
  same in sequence space as on the number line (otherwise the run is fed instead);
* it is not a probe, nor after one: a pure ACK numbered one before the highest sequence
  number its direction sent before it, which the tracker counts (the first ends the run).

Sweeps happen between batches instead of at an exact packet number; results do not depend
on when connections are swept (tested).  With ``--max-connections`` the whole batch is
fed packet by packet, since which connection is evicted depends on the order of updates.
The analysis counts a batch here only after a batch that was mostly such segments
(:data:`teardown_analyzer.analysis.VECTORISED_SHARE`): on short connections it does not pay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .flows import ACK, DUPLICATE_NS, FIN, RST, SYN, Tracker

_M32 = 0xFFFFFFFF
_NONE = np.iinfo(np.int64).min
_NOTHING = (np.zeros(0, np.int64),) * 3


def count_plain(tracker: Tracker, cols: dict[str, np.ndarray]) -> np.ndarray:
    """Apply the plain segments among gathered records (``cols``, in capture order, as
    :func:`teardown_analyzer.columnar.gather` makes them) to ``tracker``.

    Returns the rows the caller must still feed one by one, in order.
    """
    count = len(cols["packet"])
    if count == 0:
        return np.zeros(0, np.int64)
    pos = np.arange(count)
    ts, seq, ack = cols["ts"], cols["seq"].astype(np.int64), cols["ack"].astype(np.int64)
    word, window = cols["word"].astype(np.int64), cols["window"].astype(np.int64)
    checksum, ipid = cols["checksum"].astype(np.int64), cols["ipid"].astype(np.int64)
    plen = cols["plen"].astype(np.int64)
    # read from the common layouts (so with a header length that fits), no SYN, FIN, RST
    plain = cols["regular"] & ((cols["flags"] & (SYN | FIN | RST)) == 0)
    # --- which connection each record belongs to ------------------------------------------
    keys = np.ascontiguousarray(cols["key"]).view("V37").ravel()
    uniq, record_key = np.unique(keys, return_inverse=True)
    record_key = record_key.ravel()
    conns = tracker.conns
    conn_index: dict[int, int] = {}
    objects: list[Any] = []  # the connection of each connection index
    key_conn = np.full(len(uniq), -1, np.int64)
    key_side = np.zeros(len(uniq), np.int64)
    for u, raw in enumerate(uniq.tolist()):
        width = 16 if raw[0] == 6 else 4
        found = conns.get((raw[1:1 + width], raw[17] << 8 | raw[18], raw[19:19 + width],
                           raw[35] << 8 | raw[36]))
        if found is None:
            continue
        conn, side = found
        ci = conn_index.setdefault(id(conn), len(objects))
        if ci == len(objects):
            objects.append(conn)
        key_conn[u], key_side[u] = ci, side
    record_conn = key_conn[record_key]
    # --- the runs: plain segments before a connection's first other record ------------
    nconn = len(objects)
    if nconn == 0:
        return pos
    open_ok = np.array([not c.slow and c.pending_old is None for c in objects], bool)
    cut = np.where(open_ok, count, -1).astype(np.int64)
    breaks = np.flatnonzero((record_conn >= 0) & ~plain)
    np.minimum.at(cut, record_conn[breaks], breaks)

    def runs() -> np.ndarray:
        return plain & (record_conn >= 0) & (pos < cut[np.maximum(record_conn, 0)])

    run = runs()
    # duplicates: each run segment against the segment before it in its direction
    idx = np.flatnonzero(run)
    if len(idx):
        order = idx[np.argsort(record_key[idx], kind="stable")]
        prev, cur = order[:-1], order[1:]
        same = record_key[prev] == record_key[cur]
        dup = same & (seq[prev] == seq[cur]) & (ack[prev] == ack[cur]) \
            & (word[prev] == word[cur]) & (window[prev] == window[cur]) \
            & (checksum[prev] == checksum[cur]) & (ipid[prev] == ipid[cur]) \
            & (ts[cur] - ts[prev] <= DUPLICATE_NS)
        dups = cur[dup]
        np.minimum.at(cut, record_conn[dups], dups)
        heads = order[np.concatenate(([True], ~same))]
        for p in heads.tolist():  # the first of each direction: against the tracker's
            u = int(record_key[p])
            d = objects[key_conn[u]].dirs[key_side[u]]
            if (int(seq[p]), int(ack[p]), int(word[p]), int(window[p]), int(checksum[p]),
                    int(ipid[p])) == (d.last_seq, d.last_ackno, d.last_word, d.last_window,
                                      d.last_checksum, d.last_ipid) \
                    and int(ts[p]) - d.last_ts_ns <= DUPLICATE_NS:
                cut[record_conn[p]] = min(cut[record_conn[p]], p)
        run = runs()
    # --- each direction's run, unless its sequence numbers span 2**31 or more --------------
    # (and up to its first probe: a pure ACK one before the highest sequence number sent
    # before it, which the tracker counts, Tracker._probe)
    ends = (seq + plen) & _M32
    pure = ((word & 0x1FF) == ACK) & (plen == 0)
    groups = _directions(run, record_key)
    for seg in groups:
        u = int(record_key[seg[0]])
        d = objects[key_conn[u]].dirs[key_side[u]]
        rel = _relative(ends[seg], d.next_seq)
        if int(rel.max()) - min(int(rel.min()), 0) >= 1 << 31 \
                or not (word[seg] & ACK).all():  # (or one without ACK: prev_ackno)
            cut[key_conn[u]] = -1  # the whole connection is fed one by one instead
            continue
        probe = pure[seg]
        if probe.any():
            before = np.maximum.accumulate(np.concatenate(([0], rel[:-1])))
            hit = np.flatnonzero(probe & (rel == before - 1))
            if len(hit):
                cut[key_conn[u]] = min(int(cut[key_conn[u]]), int(seg[hit[0]]))
    run = runs()
    applied = np.zeros(count, bool)
    # each direction's highest sequence number sent (+ 1) after each of its records, and
    # when that was first captured (Direction.next_seq, next_ts_ns)
    sent: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    groups = _directions(run, record_key)
    for seg in groups:
        u = int(record_key[seg[0]])
        d = objects[key_conn[u]].dirs[key_side[u]]
        sent[int(key_conn[u]), int(key_side[u])] = _highs(seg, ends[seg], ts[seg], d)
    for seg in groups:
        u = int(record_key[seg[0]])
        conn, side = objects[key_conn[u]], int(key_side[u])
        d, peer = conn.dirs[side], conn.dirs[1 - side]
        # the fastest this side answered (Tracker.feed, Direction.answer_ns): a new ACK
        # field equal to the end of what the peer sent before it
        now = peer.next_seq if peer.next_seq is not None else -1
        then = peer.next_ts_ns if peer.next_ts_ns is not None else _NONE
        peer_seg, peer_high, peer_when = sent.get((int(key_conn[u]), 1 - side), _NOTHING)
        k = np.searchsorted(peer_seg, seg)  # (the peer's records before each, +1)
        acks = ack[seg]
        new = np.ones(len(seg), bool)
        new[1:] = acks[1:] != acks[:-1]
        new[0] = int(acks[0]) != d.last_ackno or not d.last_word & ACK
        hit = new & (acks == np.concatenate(([now], peer_high))[k])  # (none yet: -1)
        if hit.any():
            took = int((ts[seg[hit]] - np.concatenate(([then], peer_when))[k[hit]]).min())
            if d.answer_ns is None or took < d.answer_ns:
                d.answer_ns = took
    for seg in groups:
        u = int(record_key[seg[0]])
        conn, side = objects[key_conn[u]], int(key_side[u])
        d = conn.dirs[side]
        _, high, when = sent[int(key_conn[u]), side]
        d.next_seq = int(high[-1])
        d.next_ts_ns = None if when[-1] == _NONE else int(when[-1])
        last = int(seg[-1])
        d.packets += len(seg)
        d.payload_bytes += int(plen[seg].sum())
        acks = ack[seg]
        final = int(acks[-1])
        before = np.flatnonzero(acks != final)  # (each has ACK: see above)
        if len(before):
            d.prev_ackno = int(acks[before[-1]])
        elif final != d.last_ackno and d.last_word >= 0 and d.last_word & ACK:
            d.prev_ackno = d.last_ackno
        d.last_seq, d.last_ackno, d.last_word = int(seq[last]), final, int(word[last])
        d.last_ts_ns = int(ts[last])
        d.last_window, d.last_checksum = int(window[last]), int(checksum[last])
        d.last_ipid = int(ipid[last])
        conn.packets += len(seg)
        applied[seg] = True
    done = np.flatnonzero(applied)
    if len(done):
        last_of_conn = np.full(nconn, -1, np.int64)
        np.maximum.at(last_of_conn, record_conn[done], done)
        for ci in np.flatnonzero(last_of_conn >= 0).tolist():
            objects[ci].last_ts_ns = int(ts[last_of_conn[ci]])
        tracker.tcp_packets += len(done)
        top_ts = int(ts[done].max())
        if top_ts > tracker.last_ts_ns:
            tracker.last_ts_ns = top_ts
    return np.flatnonzero(~applied)


def _directions(run: np.ndarray, record_key: np.ndarray) -> list[np.ndarray]:
    """The positions in ``run``, grouped by direction, each group in batch order."""
    idx = np.flatnonzero(run)
    if not len(idx):
        return []
    order = idx[np.argsort(record_key[idx], kind="stable")]
    keys = record_key[order]
    bounds = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1], [True])))
    return [order[a:z] for a, z in zip(bounds[:-1].tolist(), bounds[1:].tolist())]


def _highs(seg: np.ndarray, ends: np.ndarray, ts: np.ndarray, d: Any
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a direction's records ``seg`` of a run (their ends and times), applied to what
    it sent before (``d``, a :class:`~teardown_analyzer.flows.Direction`): ``seg``, its
    ``next_seq`` after each, and when that was first captured (``next_ts_ns``, or _NONE).
    The run's sequence numbers lie within 2**31 of each other and of ``next_seq``."""
    rel = _relative(ends, d.next_seq)
    known = d.next_seq is not None
    base = d.next_seq if known else int(ends[0])
    floor = 0 if known else -1  # (not known: the first, at 0, sets it)
    top = np.maximum.accumulate(np.maximum(rel, floor))
    raised = rel > np.concatenate(([floor], top[:-1]))
    last = np.maximum.accumulate(np.where(raised, np.arange(len(seg)), -1))
    before = d.next_ts_ns if d.next_ts_ns is not None else _NONE
    if not -1 << 63 <= before < 1 << 63:  # (a corrupt pcapng clock: beyond int64 ns)
        ts = ts.astype(object)
    when = np.where(last >= 0, ts[np.maximum(last, 0)], before)
    return seg, (base + top) & _M32, when


def _relative(ends: np.ndarray, next_seq: int | None) -> np.ndarray:
    """Each end's signed distance in sequence space from ``next_seq`` (or the first end)."""
    base = next_seq if next_seq is not None else int(ends[0])
    rel = (ends - base) & _M32
    return np.where(rel >= 1 << 31, rel - (1 << 32), rel)
