"""The summary made straight from the records of a clean FIN close, or of a connection
still open or half-open (teardown_analyzer.cleanclose), is the tracker's summary of the
same records, field for field; it is made for every such connection kept as its packets,
and for nothing else.

(Whole analyses with and without the vectorised path are compared in
tests/test_columnar.py, which goes through it too; here each connection is compared
directly, at a capture end before and after its TIME_WAIT timer.)"""

from __future__ import annotations

import pytest

from conftest import sample_captures
from teardown_analyzer import columnar, parking
from teardown_analyzer.analysis import Options, analyze, summarize
from teardown_analyzer.cleanclose import clean_close
from teardown_analyzer.flows import ACK, DUPLICATE_NS, FIN, RST, SYN

SAMPLES = {p.name: p for p in sample_captures()}
ROW = columnar._ROW_STRUCT


def _kept(path):
    """The blob of each connection of a capture kept as its packets."""
    report = analyze([str(path)])
    return [blob for seg in report.connections._segments
            for blob in map(seg.blob, range(len(seg.ids))) if not blob[0]]


def _tracker(blob, end_ns):
    return summarize(parking.thaw(blob), end_ns, Options(), "capture")


def _ends(blob):
    """A capture end one second after the connection's last record (in TIME_WAIT), and
    one past its timer (the CLOSED the timer implies)."""
    last_ts = ROW.unpack_from(blob, len(blob) - ROW.size)[1]
    return last_ts + 10**9, last_ts + 61 * 10**9


def _shaped(c):
    """Whether the tracker's summary ``c`` is of a shape cleanclose makes: open, or reset
    with no FIN, after a handshake, with no anomaly; a four-way or three-way close, or
    half-open, with no anomaly but its FIN sent again (before the ACK of it) and, half-open,
    the ACK of its FIN not captured."""
    if c.kind in ("none", "rst"):
        return c.handshake == "seen" and not c.anomalies
    return c.kind in ("four-way", "three-way", "half-open") and set(c.anomalies) <= {
        "FIN retransmitted", f"ACK of the {c.initiator}'s FIN not captured"}


def _compare(kept, both_ends=True):
    """Per kind, how many connections were made straight from their records; each equal
    to the tracker's summary, and made if and only if of such a shape.  At both capture
    ends of :func:`_ends`, or (``both_ends`` false) at each in turn."""
    made = {}
    for k, blob in enumerate(kept):
        for end_ns in _ends(blob) if both_ends else _ends(blob)[k % 2:k % 2 + 1]:
            tracker = _tracker(blob, end_ns)
            fast = clean_close(blob, end_ns, 60.0, "capture")
            if _shaped(tracker):
                assert fast == tracker
                made[tracker.kind] = made.get(tracker.kind, 0) + 1
            else:
                assert fast is None, tracker.kind
    return made


@pytest.mark.parametrize("name, kinds", [
    ("four_way.pcap", {"four-way"}), ("three_way.pcap", {"three-way"}),
    ("half_close.pcap", {"four-way"}), ("server_first.pcap", {"four-way"}),
    ("ipv6.pcap", {"four-way"}), ("close_wait_leak.pcap", {"half-open"}),
    ("mixed_200.pcap", {"four-way", "three-way", "half-open", "rst"}),
    ("rst_linger0.pcap", {"rst"}), ("rst_unread.pcap", {"rst"}), ("socket_gone.pcap", {"rst"}),
    ("pcapng_server_first.pcapng", {"four-way"}), ("vantage_server.pcap", {"four-way"})])
def test_real_captures(name, kinds):
    assert set(_compare(_kept(SAMPLES[name]))) == kinds


def test_the_benchmark_mix(mix):
    """Every kind of close, open and half-open connections, FINs sent again, IPv6,
    sequence numbers that wrap."""
    kept = _kept(mix)
    made = _compare(kept, both_ends=False)
    assert len(kept) > 1400 and sum(made.values()) > 1000
    assert set(made) == {"four-way", "three-way", "half-open", "none", "rst"}


def _rows(blob):
    return list(ROW.iter_unpack(blob[ROW.size:]))


def _blob(head, rows):
    return head + b"".join(ROW.pack(*r) for r in rows)


def _with(row, **changes):
    names = ("packet", "ts", "sender", "ipid", "tcp_len", "seq", "ack", "word", "window",
             "checksum", "opt")
    values = dict(zip(names, row))
    values.update(changes)
    return tuple(values[n] for n in names)


def _edits():
    """The real four-way close of four_way.pcap kept as its packets, edited to break one
    condition each (edited records, not real ones).  Its records: 0-2 the handshake, 3-6
    data and ACKs, 7 the client's FIN, 8 the server's ACK of it, 9 the server's FIN, 10
    the client's last ACK."""
    (blob,) = _kept(SAMPLES["four_way.pcap"])
    head, r = blob[:ROW.size], _rows(blob)
    fin, ack = r[7][7], r[8][7]  # (their words: data offset and flags)
    yield "as captured", blob
    yield "a segment captured twice", _blob(head, r[:4] + [_with(r[3], ts=r[3][1] + 1)]
                                           + r[4:])
    # a copy of the client's data segment that differs from it in one field: not a
    # segment captured twice, but one more the tracker counts (sent again, or a window
    # update, or a reordered copy)
    dup = _with(r[3], ts=r[3][1] + 1)
    for field, value in (("ack", dup[6] + 1), ("word", dup[7] ^ 0x08), ("window", 1),
                         ("checksum", dup[9] ^ 1), ("ipid", dup[3] + 1),
                         ("ts", r[3][1] + DUPLICATE_NS + 1)):
        yield f"a copy with another {field}", _blob(head, r[:4] + [_with(dup, **{field: value})]
                                                    + r[4:])
    # the client's sequence numbers (and the server's ACKs of them) moved to wrap past
    # 2**32 after its SYN
    shift = (1 << 32) - r[0][5] - 2
    yield "the client's sequence numbers wrapping", _blob(head, [
        _with(x, seq=(x[5] + shift) % (1 << 32)) if x[2] == 0 else
        _with(x, ack=(x[6] + shift) % (1 << 32)) if x[7] & ACK else x for x in r])
    # the server's segments after its SYN-ACK numbered 300 before it, and the client's
    # ACKs after the handshake likewise: the SYN-ACK's end (its ISN + 1) stays the highest
    yield "the server's sequence numbers going back", _blob(head, r[:3] + [
        _with(x, seq=x[5] - 300) if x[2] == 1 else _with(x, ack=x[6] - 300) for x in r[3:]])
    # reset after the data (no FIN): an RST+ACK from the client, numbered where its FIN
    # was; a bare RST from the server, numbered where its FIN was
    def reset(row, flags, **changes):
        return _with(row, word=row[7] & ~0x1FF | flags, tcp_len=(row[7] >> 12) * 4,
                     **changes)
    yield "reset by the client", _blob(head, r[:7] + [reset(r[7], RST | ACK)])
    yield "reset by the server, bare", _blob(head, r[:7] + [reset(r[9], RST, ack=0)])
    # ... answering the client's data 0.2 ms after the server's own (it may have close()d
    # with more queued behind that, FIN_WAIT1, and aborted on the client's data)
    more = _with(r[3], packet=r[6][0] + 1, ts=r[5][1] + 100_000, ipid=r[6][3] + 1,
                 seq=r[6][5], ack=r[6][6])
    yield "reset by the server, bare, answering data while it sent its own", _blob(
        head, r[:6] + [more, reset(r[9], RST, ack=0, ts=more[1] + 100_000,
                                   seq=more[6], packet=more[0] + 1)])
    # ... twice, the same bytes: the reply path answering two segments, not one RST
    # captured twice (no other segment was)
    bare = reset(r[9], RST, ack=0)
    yield "reset by the server, bare, twice", _blob(head, r[:7] + [bare, _with(bare,
                                                                           ts=bare[1] + 1)])
    yield "reset out of window", _blob(head, r[:7] + [reset(r[7], RST | ACK,
                                                            seq=r[7][5] - 1)])
    yield "reset with data", _blob(head, r[:7] + [_with(reset(r[7], RST | ACK),
                                                        tcp_len=r[7][4] + 5)])
    yield "a segment after the reset", _blob(head, r[:7] + [reset(r[7], RST | ACK), r[8]])
    yield "the server's FIN captured twice", _blob(head, r[:10] + [_with(r[9], ts=r[9][1] + 1)]
                                                  + r[10:])
    yield "an RST", _blob(head, r[:10] + [_with(r[10], word=r[10][7] | RST)])
    yield "a SYN after the handshake", _blob(head, r[:4] + [_with(
        r[0], ts=r[3][1] + 1, seq=r[0][5] + 10**6, ipid=r[0][3] + 1)] + r[4:])
    yield "the client's FIN sent again", _blob(
        head, r[:8] + [_with(r[7], ts=r[7][1] + 10**6, ipid=r[7][3] + 1)] + r[8:])
    yield "the FINs crossed", _blob(head, r[:9] + [_with(r[9], ack=r[7][5])] + r[10:])
    yield "data after the client's FIN", _blob(head, r[:10] + [_with(r[10],
                                                                    tcp_len=r[10][4] + 5)])
    yield "data from the server after its FIN", _blob(
        head, r[:10] + [_with(r[8], ts=r[9][1] + 1, tcp_len=r[8][4] + 5, seq=r[9][5] + 1)]
        + r[10:])
    yield "no ACK of the server's FIN", _blob(head, r[:10])
    yield "the handshake alone", _blob(head, r[:3])
    yield "no FIN", _blob(head, r[:7])
    yield "the client's FIN alone", _blob(head, r[:8])
    yield "the client's FIN and the server's ACK of it", _blob(head, r[:9])
    yield "the client's FIN alone, sent again", _blob(
        head, r[:8] + [_with(r[7], ts=r[7][1] + 10**6, ipid=r[7][3] + 1)])
    # ... later, the server's segments from its ACK of it on as late: 150 ms after the
    # first, within the delayed ACK the server (ESTABLISHED) may owe it (the round trip
    # to it plus 200 ms); 250 ms after it, past that, with no ACK of it before: the first
    # never reached the server, which took the copy (flows.py _delayed_ack_overdue)
    for ms in (150, 250):
        yield f"the client's FIN sent again {ms} ms later", _blob(
            head, r[:8] + [_with(r[7], ts=r[7][1] + ms * 10**6, ipid=r[7][3] + 1)]
            + [_with(x, ts=x[1] + ms * 10**6) for x in r[8:]])
    # a keepalive probe from the client before its FIN: a pure ACK numbered one before its
    # next sequence number (the tracker counts it, Tracker._probe)
    yield "a keepalive probe from the client", _blob(
        head, r[:7] + [_with(r[6] if r[6][2] == 0 else r[5], ts=r[7][1] - 1, ipid=r[7][3] - 1,
                             tcp_len=(r[7][7] >> 12) * 4, word=r[7][7] & ~0x1FF | ACK,
                             seq=r[7][5] - 1)] + r[7:])
    yield "the server's FIN sent again", _blob(
        head, r[:10] + [_with(r[9], ts=r[9][1] + 10**6, ipid=r[9][3] + 1)] + r[10:])
    yield "the client's FIN sent again after the server's ACK of it", _blob(
        head, r[:9] + [_with(r[7], ts=r[8][1] + 1, ipid=r[7][3] + 1)] + r[9:])
    yield "the client's FIN sent again with another sequence number", _blob(
        head, r[:8] + [_with(r[7], ts=r[7][1] + 10**6, ipid=r[7][3] + 1, seq=r[7][5] + 1)]
        + r[8:])
    yield "the client's FIN, then data from it", _blob(
        head, r[:9] + [_with(r[8], sender=0, seq=r[8][6], ack=r[8][5],
                             tcp_len=r[8][4] + 5)])
    yield "the client ACKs the server's FIN twice", _blob(
        head, r + [_with(r[10], ts=r[10][1] + 10**6, ipid=r[10][3] + 1, window=1)])
    yield "the server's FIN stamped before the client's", _blob(
        head, r[:9] + [_with(r[9], ts=r[7][1] - 1)] + r[10:])
    yield "the FINs stamped at the same time", _blob(
        head, r[:9] + [_with(r[9], ts=r[7][1])] + r[10:])
    yield "the SYN-ACK with data", _blob(head, r[:1] + [_with(r[1], tcp_len=r[1][4] + 5)]
                                         + r[2:])
    yield "a header shorter than 20 bytes", _blob(
        head, r[:4] + [_with(r[4], word=r[4][7] & 0x0FFF | 4 << 12)] + r[5:])
    yield "only the SYN and the SYN-ACK", _blob(head, r[:2])
    yield "the client's SYN with ACK", _blob(head, [_with(r[0], word=r[0][7] | ACK)] + r[1:])
    yield "the server's SYN-ACK without SYN", _blob(
        head, r[:1] + [_with(r[1], word=r[1][7] & ~SYN)] + r[2:])
    yield "the SYN-ACK from the client", _blob(head, r[:1] + [_with(r[1], sender=0)] + r[2:])
    yield "the handshake's ACK from the server", _blob(head, r[:2] + [_with(r[2], sender=1)]
                                                       + r[3:])
    yield "the handshake's ACK without ACK", _blob(head, r[:2] + [_with(r[2],
                                                                      word=r[2][7] & ~ACK)]
                                                   + r[3:])
    yield "the client's last ACK short of the server's FIN", _blob(
        head, r[:10] + [_with(r[10], ack=r[9][5])])
    yield "the client's last segment without ACK", _blob(head, r[:10] + [_with(
        r[10], word=r[10][7] & ~ACK)])
    yield "the handshake's ACK an RST+ACK", _blob(head, r[:2] + [_with(r[2],
                                                                    word=r[2][7] | RST)])
    yield "the handshake's ACK short of the SYN-ACK", _blob(
        head, r[:2] + [_with(r[2], ack=r[1][5])] + r[3:])
    yield "the server's SYN-ACK first", _blob(head, [r[1], r[0]] + r[2:])
    yield "no FIN from the server", _blob(head, r[:9] + [_with(r[9], word=r[9][7] & ~FIN)]
                                          + r[10:])
    yield "a FIN without ACK from the server", _blob(
        head, r[:9] + [_with(r[9], word=r[9][7] & ~ACK)] + r[10:])
    # more than the round trip to a side (13 or 22 us here) plus a millisecond after the
    # FIN it takes: a server ACK that leaves the client's FIN out, or the client's last ACK
    # (owed at once in FIN_WAIT2) only then; the tracker first has the FIN lost, then late
    yield "an ACK of the server's leaving out the client's FIN 2 ms after it", _blob(
        head, r[:8] + [_with(r[8], ts=r[7][1] + 2 * 10**6, ack=r[7][5], window=1)] + r[8:])
    yield "the client's last ACK 2 ms after the server's FIN", _blob(
        head, r[:10] + [_with(r[10], ts=r[9][1] + 2 * 10**6)])
    # the server's data edited to ACK 10 bytes less of the client's; then, as the client's
    # FIN arrives (20 us after it), a pure ACK of the server's that repeats that ACK field
    # and window: the FIN came out of order, behind bytes lost after the capture point
    short = _with(r[5], ack=r[5][6] - 10)
    hdr = (short[7] >> 12) * 4
    repeat = _with(short, ts=r[7][1] + 20_000, tcp_len=hdr, seq=short[5] + short[4] - hdr,
                   word=short[7] & ~0x1FF | ACK, ipid=short[3] + 1)
    yield "the server's data short of the client's", _blob(head, r[:5] + [short] + r[6:])
    yield "a pure ACK of the server's repeating its last as the client's FIN arrives", _blob(
        head, r[:5] + [short] + r[6:8] + [repeat] + r[8:])
    # ... or, as the client's FIN arrives, a pure ACK of the server's 10 bytes short of it,
    # SACKing from 5 bytes on to past it: the FIN came out of order (flows.py _segment)
    sacking = _with(r[8], ts=r[7][1] + 20_000, ipid=r[8][3] - 1, ack=r[7][5] - 10, opt=11)
    yield "a SACK block of the server's past the client's FIN", _blob(
        head, r[:8] + [sacking] + r[8:])
    assert fin & FIN and ack & ACK and not ack & FIN


EDITS = dict(_edits())


MADE = ("as captured", "a segment captured twice", "the server's FIN captured twice",
        "the SYN-ACK with data", "the client's sequence numbers wrapping",
        "the handshake alone", "no FIN", "the client's FIN alone",
        "the client's FIN and the server's ACK of it", "no FIN from the server",
        "reset by the client", "reset by the server, bare", "the client's FIN sent again",
        "the client's FIN alone, sent again", "the client's FIN sent again 150 ms later",
        "the server's sequence numbers going back", "the server's data short of the client's",
        *(n for n in EDITS if n.startswith("a copy with another")))
"""The close as captured; with a segment the tracker skips as a copy of the one before it
in its direction, or one it counts; with data on the SYN-ACK (counted as the server's);
with sequence numbers that wrap, or go back; cut short, open or half-open; reset; with the
client's FIN sent again before the server's ACK of it."""


@pytest.mark.parametrize("name", sorted(EDITS))
def test_each_condition(name):
    """Each edit breaks one condition of the shape: no summary is made, and the tracker's
    summary of the edited records differs from that of the close as captured (so the
    edit matters).  The close as captured is made, and equals the tracker's; so are the
    edits of :data:`MADE`, which keep the shape."""
    blob = EDITS[name]
    end_ns = _ends(blob)[0]
    fast = clean_close(blob, end_ns, 60.0, "capture")
    if name in MADE:
        assert fast is not None and fast == _tracker(blob, end_ns)
    else:
        assert fast is None
        assert _tracker(blob, end_ns) != _tracker(EDITS["as captured"], end_ns)


def test_a_bare_rst_answering_data_while_its_sender_still_sent_may_follow_a_queued_fin():
    """The edit above (edited records): the server's bare RST answers the client's data
    0.2 ms after the server last sent data of its own, all of it acknowledged by then.  It
    may have close()d with more queued behind that data (its windows full), the FIN never
    on the wire, and aborted on the client's data (the kernel's record of explorer run
    veth 1011/49, not kept: 100 records): FIN_WAIT1 not shown, at the RST.  The same RST
    60 ms later, when the server had long stopped sending (and a FIN would have gone out
    at close(), whatever its windows): its socket was gone, no FIN_WAIT1."""
    from teardown_analyzer.flows import QUEUED_FIN_NOTE
    from teardown_analyzer.states import NOT_SHOWN
    blob = EDITS["reset by the server, bare, answering data while it sent its own"]
    c = _tracker(blob, _ends(blob)[0])
    fin_wait1, closed = c.server_states[-2:]
    assert (fin_wait1.state, fin_wait1.packet, fin_wait1.note) == \
        ("FIN_WAIT1", closed.packet, QUEUED_FIN_NOTE)
    assert QUEUED_FIN_NOTE.startswith(NOT_SHOWN) and closed.inferred
    head, rows = blob[:ROW.size], _rows(blob)
    later = _blob(head, rows[:-1] + [_with(rows[-1], ts=rows[-1][1] + 60_000_000)])
    c = _tracker(later, _ends(later)[0])
    assert [s.state for s in c.server_states] == ["SYN_RECV", "ESTABLISHED", "CLOSED"]
    assert clean_close(later, _ends(later)[0], 60.0, "capture") == c
