"""Plain data segments of open connections, counted a batch at a time with numpy.

Most packets of a long connection change nothing but counters: a segment without SYN, FIN
or RST of a connection that is open and not closing (the tracker's short path).  For a
batch of records (:class:`teardown_analyzer.capture.Batch`) this module finds, with array
operations, the IPv4 and IPv6 segments (behind the link headers
:data:`teardown_analyzer.columnar.LAYOUTS` knows) that are exactly that, and
applies them to the tracker per connection direction (packets, bytes, highest sequence
number, the last segment for duplicate detection), so that only the others go through
:meth:`Tracker.feed <teardown_analyzer.flows.Tracker.feed>` one by one.

The result is identical to feeding every packet, because a segment is counted here only
when feeding it would have taken the short path with the same effect:

* its connection was already tracked, open and not closing when the batch began, and no
  other packet of that connection comes before it in the batch except such segments (the
  first other one, a SYN, a FIN, an RST, anything this module cannot decode, ends the run:
  from there on the connection's packets are fed in order);
* it is not the same segment captured twice (compared with the segment before it in its
  direction, as the tracker does; the first such one also ends the run);
* the sequence numbers of the run lie within 2**31 of each other, so that "highest" is the
  same in sequence space as on the number line (otherwise the run is fed instead).

Sweeps happen between batches instead of at an exact packet number; results do not depend
on when connections are swept (tested).  With ``--max-connections`` the whole batch is
fed packet by packet, since which connection is evicted depends on the order of updates.
The analysis counts a batch here only after a batch that was mostly such segments
(:data:`teardown_analyzer.analysis.VECTORISED_SHARE`): on short connections it does not pay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .columnar import KEY4, KEY6, LAYOUTS, first_bytes
from .flows import DUPLICATE_NS, Tracker
from .link import TcpPacket, tcp_packet_at

_M32 = 0xFFFFFFFF
_KEY4 = np.where(KEY4 == 0, 14, KEY4) - 14
_KEY6 = KEY6 - 14
"""Where :data:`~teardown_analyzer.columnar.KEY4` and ``KEY6`` are from the IP header
(the bytes of an IPv4 key that are padding read the header's first byte, then zeroed)."""


def _u16(b: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (b[at].astype(np.int64) << 8) | b[at + 1]


def _u32(b: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (_u16(b, at) << 16) | _u16(b, at + 2)


def count_plain(tracker: Tracker, buf: bytes, starts: np.ndarray, lens: np.ndarray,
                stamps: np.ndarray, linktype: int,
                owner: tuple[int, int] = (0, 1),
                decoded: dict[int, TcpPacket | str] | None = None) -> list[int]:
    """Apply the plain segments of a batch to ``tracker``.

    Returns the positions (0-based, in batch order) of the records the caller must still
    decode and feed one by one; records whose connection another process owns (``owner``
    = (k, n): the port sum modulo n picks the process) are left out.  Records this
    function had to decode one by one are put in ``decoded`` (position -> what
    :func:`~teardown_analyzer.link.tcp_packet_at` returned), so they need not be again.
    """
    count = len(starts)
    layouts = LAYOUTS.get(linktype)
    if layouts is None or count == 0:
        return list(range(count))
    b = np.frombuffer(buf, np.uint8)
    st = np.asarray(starts, np.int64)
    ln = np.asarray(lens, np.int64)
    try:
        ts = np.asarray(stamps, np.int64)
    except OverflowError:  # a corrupt pcapng resolution or offset: beyond int64 ns
        return list(range(count))
    pos = np.arange(count)
    top = max(layout.ip_at for layout in layouts)
    if len(b) < top + 60:
        return list(range(count))
    # --- the link header (each record's: the first of the link type's layouts whose link
    # header says IP), then IPv4 without options or IPv6 without extension headers, then
    # TCP (not a fragment): the fields of every record at once.  Records too short to
    # hold the headers read the buffer's first bytes instead, and are not used.
    link = first_bytes(b, st, top + 1)
    ip = np.full(count, layouts[0].ip_at, np.int64)  # where each one's IP header begins
    link4, link6 = layouts[0].versions(link)
    for layout in layouts[1:]:
        more4, more6 = layout.versions(link)
        other = (more4 | more6) & ~(link4 | link6)
        ip[other] = layout.ip_at
        link4, link6 = link4 | (more4 & other), link6 | (more6 & other)
    at = np.where(ln >= ip + 40, st, 0) + ip
    at6 = np.where(ln >= ip + 60, st, 0) + ip
    total_len = _u16(b, at + 2)
    v4 = (ln >= ip + 40) & link4 & (b[at] == 0x45) & (b[at + 9] == 6) \
        & ((_u16(b, at + 6) & 0x1FFF) == 0) & (total_len >= 20)
    v6 = (ln >= ip + 60) & link6 & (b[at6] >> 4 == 6) & (b[at6 + 6] == 6)
    fast = v4 | v6
    tcp = np.where(v6, at6 + 40, at + 20)
    payload_len = _u16(b, at6 + 4)
    tcp_len = np.where(v6, np.where(payload_len > 0, payload_len, ln - ip - 40),
                       total_len - 20)
    sport, dport = _u16(b, tcp), _u16(b, tcp + 2)
    k, n = owner
    foreign = fast & ((sport + dport) % n != k) if n > 1 else np.zeros(count, bool)
    word = _u16(b, tcp + 12)
    hlen = (word >> 12) * 4
    plen = tcp_len - hlen
    plain = fast & ~foreign & ((word & 0x07) == 0) & (hlen >= 20) & (plen >= 0)
    # --- which connection each decodable record belongs to -----------------------------
    raw_keys = np.empty((count, 37), np.uint8)
    raw_keys[:, 0] = np.where(v6, 6, 4)  # the IP version first: no IPv4 key is an IPv6 one
    raw_keys[:, 1:] = b[np.where(v6[:, None], at6[:, None] + _KEY6, at[:, None] + _KEY4)]
    raw_keys[:, 1:][v4[:, None] & (KEY4 == 0)] = 0  # an IPv4 address fills 4 of 16 bytes
    keys = raw_keys.view("V37").ravel()
    mine = fast & ~foreign
    uniq, inverse = np.unique(keys[mine], return_inverse=True)
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
    record_conn = np.full(count, -1, np.int64)
    record_key = np.full(count, -1, np.int64)
    record_key[mine] = inverse
    record_conn[mine] = key_conn[inverse]
    # records decoded one by one (IPv6, options, other link layers): their connection too
    slow_other = np.flatnonzero(~fast)
    for p, start, incl in zip(slow_other.tolist(), st[slow_other].tolist(),
                              ln[slow_other].tolist()):
        tcp_p = tcp_packet_at(buf, start, incl, linktype)
        if decoded is not None:
            decoded[p] = tcp_p
        if not isinstance(tcp_p, str):
            found = conns.get((tcp_p[1], tcp_p[5], tcp_p[2], tcp_p[6]))
            if found is not None and id(found[0]) in conn_index:
                record_conn[p] = conn_index[id(found[0])]
    # --- the runs: plain segments before a connection's first other record ------------
    nconn = len(objects)
    if nconn == 0:
        return np.flatnonzero(~foreign).tolist()
    open_ok = np.array([not c.slow and c.pending_old is None for c in objects], bool)
    cut = np.where(open_ok, count, -1).astype(np.int64)
    breaks = np.flatnonzero((record_conn >= 0) & ~plain)
    np.minimum.at(cut, record_conn[breaks], breaks)
    seq, ack = _u32(b, tcp + 4), _u32(b, tcp + 8)
    window, checksum = _u16(b, tcp + 14), _u16(b, tcp + 16)
    ipid = np.where(v6, -1, _u16(b, at + 4))

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
    ends = (seq + plen) & _M32
    groups = _directions(run, record_key)
    for seg in groups:
        u = int(record_key[seg[0]])
        d = objects[key_conn[u]].dirs[key_side[u]]
        rel = _relative(ends[seg], d.next_seq)
        if int(rel.max()) - min(int(rel.min()), 0) >= 1 << 31:
            cut[key_conn[u]] = -1  # the whole connection is fed one by one instead
    run = runs()
    applied = np.zeros(count, bool)
    for seg in _directions(run, record_key):
        u = int(record_key[seg[0]])
        conn, side = objects[key_conn[u]], int(key_side[u])
        d = conn.dirs[side]
        rel = _relative(ends[seg], d.next_seq)
        base = d.next_seq if d.next_seq is not None else int(ends[seg[0]])
        top = int(rel.max())
        if d.next_seq is None or top > 0:
            d.next_seq = (base + max(top, 0)) & _M32
        last = int(seg[-1])
        d.packets += len(seg)
        d.payload_bytes += int(plen[seg].sum())
        d.last_seq, d.last_ackno, d.last_word = int(seq[last]), int(ack[last]), int(word[last])
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
    return np.flatnonzero(~applied & ~foreign).tolist()


def _directions(run: np.ndarray, record_key: np.ndarray) -> list[np.ndarray]:
    """The positions in ``run``, grouped by direction, each group in batch order."""
    idx = np.flatnonzero(run)
    if not len(idx):
        return []
    order = idx[np.argsort(record_key[idx], kind="stable")]
    keys = record_key[order]
    bounds = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1], [True])))
    return [order[a:z] for a, z in zip(bounds[:-1].tolist(), bounds[1:].tolist())]


def _relative(ends: np.ndarray, next_seq: int | None) -> np.ndarray:
    """Each end's signed distance in sequence space from ``next_seq`` (or the first end)."""
    base = next_seq if next_seq is not None else int(ends[0])
    rel = (ends - base) & _M32
    return np.where(rel >= 1 << 31, rel - (1 << 32), rel)
