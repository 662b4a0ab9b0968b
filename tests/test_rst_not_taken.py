"""An RST that its receiver did not take because it was not at its rcv_nxt (RFC 5961
section 3.2), on edited copies of two real runs (records changed, added or moved, so
these are edited captures, not real ones; the runs themselves are checked against the
kernel's record in test_accuracy.py and test_sample_truth.py).

sample_pcaps/challenge_ack_after_lost_data_client_side.pcap, records (0-based): 8 the
client's FIN, 9 the server's 300 bytes that ACK it (lost on their way into the client,
after the capture point), 10 the server's RST+ACK after them, 11 the client's challenge
ACK (it repeats its last ACK field, leaving the bytes out), 12 the server's listener's
bare RST at that number.  Captured on the client's interface: the round trip to the
client is 0.06 ms.

sample_pcaps/abort_past_lost_fin_client_side.pcap: 7 the client's FIN (lost on its way
into the server), 8 the client's RST+ACK numbered past it, 9 the server's 300 bytes that
leave the FIN out, 21 ms after it (more than the round trip to the server, 20 ms), 10 the
client's bare RST answering them, 11 the server's challenge ACK, 12 the client's bare RST
answering that.  The
same run captured on the server's interface: 7 the client's FIN, 8 the server's bytes,
0.9 ms after it, 9 the RST+ACK.

And a bare RST numbered short of the FIN of the side that sent it, which answers a segment
sent before its FIN was ACKed: sample_pcaps/abort_on_data_behind_lost_data_client_side.pcap,
8 the server's FIN, 10-12 the client's data acknowledging only up to bytes of the server's
that were lost, 13 the client's FIN, 15 the client's ACK of the server's FIN, 16-19 the
server's bare RSTs numbered as the data's ACK field.

And an RST at a hole: sample_pcaps/reset_at_a_hole_client_side.pcap, 7 the client's 300
bytes (lost on their way into the server), 8 its FIN, 9, 11, 13 the server's data
acknowledging only up to the lost bytes, 10, 12, 14 the client's bare RSTs at that number,
15 the server's pure ACK repeating its last, 20.06 ms after the FIN (the round trip to the
server is 20.1 ms), 16 another RST.

And an RST one past the rcv_nxt of a side in FIN_WAIT2:
sample_pcaps/orphan_fin_wait2_takes_rst_client_side.pcap, 9 the client's FIN (lost on its
way into the server), 10 the server's FIN after close(), leaving it out, 11 the client's ACK
of that (the server, orphaned, to FIN_WAIT2), 12 the client's RST+ACK one past its FIN.
sample_pcaps/half_closed_fin_wait2_challenges_rst_client_side.pcap: the same run with the
server shutdown() instead of close(), and after 12, 13 the server's challenge ACK (at the
client's FIN), 14 the client's bare RST answering it.
"""
from __future__ import annotations

import pytest

import pcapbuild as pb

from teardown_analyzer.analysis import analyze
from teardown_analyzer.flows import ACK, FIN

_, CHALLENGE = pb.read_pcap(pb.SAMPLES / "challenge_ack_after_lost_data_client_side.pcap")
_, PAST_FIN = pb.read_pcap(pb.SAMPLES / "abort_past_lost_fin_client_side.pcap")
_, PAST_FIN_THERE = pb.read_pcap(pb.SAMPLES / "abort_past_lost_fin_server_side.pcap")
_, ON_DATA = pb.read_pcap(pb.SAMPLES / "abort_on_data_behind_lost_data_client_side.pcap")
_, HOLE = pb.read_pcap(pb.SAMPLES / "reset_at_a_hole_client_side.pcap")
_, ORPHAN = pb.read_pcap(pb.SAMPLES / "orphan_fin_wait2_takes_rst_client_side.pcap")
_, HALF_CLOSED = pb.read_pcap(pb.SAMPLES / "half_closed_fin_wait2_challenges_rst_client_side.pcap")


def _edited(rec: pb.Rec, *, ts_ns: int | None = None, seq: int | None = None,
            ack: int | None = None, flags: int | None = None, ipid: int = 0) -> pb.Rec:
    """``rec`` (Ethernet, IPv4, TCP) with TCP fields replaced, its IP ID moved by
    ``ipid`` (sent again, not captured twice)."""
    frame = bytearray(rec.data)
    tcp = 14 + (frame[14] & 0xF) * 4
    if seq is not None:
        frame[tcp + 4:tcp + 8] = (seq & 0xFFFFFFFF).to_bytes(4, "big")
    if ack is not None:
        frame[tcp + 8:tcp + 12] = (ack & 0xFFFFFFFF).to_bytes(4, "big")
    if flags is not None:
        frame[tcp + 13] = flags
    frame[18:20] = ((int.from_bytes(frame[18:20], "big") + ipid) & 0xFFFF).to_bytes(2, "big")
    return pb.Rec(rec.ts_ns if ts_ns is None else ts_ns, bytes(frame))


def _with_window(rec: pb.Rec, window: int) -> pb.Rec:
    frame = bytearray(rec.data)
    tcp = 14 + (frame[14] & 0xF) * 4
    frame[tcp + 14:tcp + 16] = window.to_bytes(2, "big")
    return pb.Rec(rec.ts_ns, bytes(frame))


def _without_sack(rec: pb.Rec) -> pb.Rec:
    """``rec`` (Ethernet, IPv4, TCP) with its SACK option made NOPs."""
    frame = bytearray(rec.data)
    tcp = 14 + (frame[14] & 0xF) * 4
    at, end = tcp + 20, tcp + (frame[tcp + 12] >> 4) * 4
    while at < end and frame[at]:
        size = 1 if frame[at] == 1 else frame[at + 1]
        if frame[at] == 5:
            frame[at:at + size] = b"\x01" * size
        at += size
    assert bytes(frame) != rec.data
    return pb.Rec(rec.ts_ns, bytes(frame))


def _seq(rec: pb.Rec) -> int:
    tcp = 14 + (rec.data[14] & 0xF) * 4
    return int.from_bytes(rec.data[tcp + 4:tcp + 8], "big")


def _only(records, tmp_path):
    path = tmp_path / "edited.pcap"
    path.write_bytes(pb.pcap(records, linktype=1))
    (c,) = analyze([str(path)]).connections
    return c


def _states(c, role):
    return [(s.state, s.packet) for s in (c.client_states if role == "client"
                                          else c.server_states)][2:]


def test_the_run_as_captured(tmp_path):
    """The challenge ACK: the RST+ACK not taken, the lost bytes' ACK of the FIN taken back,
    the bare RST at the ACK's number taken."""
    c = _only(CHALLENGE, tmp_path)
    assert _states(c, "client") == [("FIN_WAIT1", 9), ("CLOSED", 13)]
    assert [(r["packet"], r["in_window"]) for r in c.rsts] == [(11, False), (13, True)]
    assert "challenge ACK (packet 12" in c.rsts[0]["note"]


def test_an_rst_after_the_challenged_one_is_judged_again(tmp_path):
    """A bare RST at the challenge ACK's number edited in 10 us after the RST+ACK, before
    the challenge ACK: it came while we had the client closed by the RST+ACK (no socket
    to take it); once the challenge ACK shows the RST+ACK not taken, it is at the client's
    rcv_nxt and closes it, and the listener's RST after it finds the client closed."""
    from teardown_analyzer.flows import TO_CLOSED_NOTE
    early = _edited(CHALLENGE[12], ts_ns=CHALLENGE[10].ts_ns + 10_000, ipid=-1)
    c = _only(CHALLENGE[:11] + [early] + CHALLENGE[11:], tmp_path)
    assert _states(c, "client") == [("FIN_WAIT1", 9), ("CLOSED", 12)]
    assert [(r["packet"], r["in_window"]) for r in c.rsts] == [(11, False), (12, True),
                                                                (14, False)]
    assert c.rsts[2]["note"] == TO_CLOSED_NOTE


def test_an_ack_that_covers_the_rst_is_no_challenge(tmp_path):
    """The client's ACK edited to cover the bytes (the RST's number): nothing was missing,
    so it crossed the RST, which the client took: FIN_WAIT2 on the bytes, CLOSED at it."""
    rsts = _seq(CHALLENGE[10])
    c = _only(CHALLENGE[:11] + [_edited(CHALLENGE[11], ack=rsts)] + CHALLENGE[12:], tmp_path)
    assert _states(c, "client") == [("FIN_WAIT1", 9), ("FIN_WAIT2", 10), ("CLOSED", 11)]
    assert c.rsts[0]["in_window"]


def test_an_ack_long_after_the_rst_is_no_challenge(tmp_path):
    """The client's ACK edited to come 5 ms after the RST, not a round trip to the client
    (plus a millisecond): it does not answer the RST."""
    late = CHALLENGE[10].ts_ns + 5_000_000
    c = _only(CHALLENGE[:11] + [_edited(CHALLENGE[11], ts_ns=late),
                                _edited(CHALLENGE[12], ts_ns=late + 20_000_000)], tmp_path)
    assert c.rsts[0]["in_window"]
    assert ("CLOSED", 11) in _states(c, "client")


def test_what_was_missing_comes_after_all(tmp_path):
    """After the challenge ACK the bytes come again (edited in: the server's segment sent
    again) and the client ACKs them: its rcv_nxt is past the number it showed, so the bare
    RST at that number is out of its window; the bytes took it to FIN_WAIT2."""
    t = CHALLENGE[11].ts_ns
    again = _edited(CHALLENGE[9], ts_ns=t + 1_000_000, ipid=7)
    acked = _edited(CHALLENGE[11], ts_ns=t + 1_050_000, ack=_seq(CHALLENGE[10]), ipid=1)
    c = _only(CHALLENGE[:12] + [again, acked, _edited(CHALLENGE[12], ts_ns=t + 2_000_000)],
              tmp_path)
    assert _states(c, "client") == [("FIN_WAIT1", 9), ("FIN_WAIT2", 13)]
    assert [r["in_window"] for r in c.rsts] == [False, False]


def test_a_fin_past_what_was_missing_was_not_taken(tmp_path):
    """A FIN from the server edited in after the lost bytes, and the RST+ACK numbered after
    it: the client took neither the bytes (FIN_WAIT2) nor the FIN (TIME_WAIT), which came
    after the first byte its challenge ACK shows missing."""
    fin_seq = _seq(CHALLENGE[10])
    fin = _edited(CHALLENGE[10], ts_ns=CHALLENGE[10].ts_ns - 100_000, flags=FIN | ACK, ipid=-1)
    rst = _edited(CHALLENGE[10], seq=fin_seq + 1)
    c = _only(CHALLENGE[:10] + [fin, rst] + CHALLENGE[11:], tmp_path)
    assert _states(c, "client") == [("FIN_WAIT1", 9), ("CLOSED", 14)]
    assert not c.rsts[0]["in_window"] and c.rsts[1]["in_window"]


def test_the_first_bare_rst_at_the_lost_fin_closes_the_server(tmp_path):
    """As captured (the kernel's record: abort_past_lost_fin_client_side.truth.json): the
    client's RST+ACK past its lost FIN draws a challenge ACK; of the client's two bare RSTs
    at the FIN's number, the server's rcv_nxt, the first (packet 11, answering the server's
    bytes) closes it, 10 ms (one way) before the kernel recorded ESTABLISHED -> CLOSED; the
    second (packet 13, answering the challenge ACK) finds no socket.  Both came while we
    had the server closed by the RST+ACK, or in CLOSE_WAIT: once the challenge ACK shows
    it took neither the FIN nor that RST, the RSTs after it are judged again."""
    import json
    from teardown_analyzer.flows import TO_CLOSED_NOTE
    truth = json.loads((pb.SAMPLES / "abort_past_lost_fin_client_side.truth.json").read_text())
    (kernel,) = [t for t in truth["connections"][0]["sides"]["server"]["transitions"]
                 if t["to"] == "CLOSED"]
    c = _only(PAST_FIN, tmp_path)
    assert _states(c, "server") == [("CLOSED", 11)]
    assert [(r["packet"], r["in_window"]) for r in c.rsts] == [(9, False), (11, True),
                                                                (13, False)]
    assert c.rsts[2]["note"] == TO_CLOSED_NOTE
    assert 9.5 < (kernel["ts"] - c.server_states[-1].ts) * 1e3 < 10.5


def test_an_rst_at_the_fin_is_taken_without_it(tmp_path):
    """The client's RST+ACK edited to carry its FIN's own number: when the server's ACK
    after it shows the FIN lost, that number is still the server's rcv_nxt, so the server
    took the RST, from ESTABLISHED, not CLOSE_WAIT (CLOSED stamped at the server's bytes,
    which crossed it)."""
    rst = _edited(PAST_FIN[8], seq=_seq(PAST_FIN[8]) - 1)
    c = _only(PAST_FIN[:8] + [rst] + PAST_FIN[9:], tmp_path)
    assert _states(c, "server") == [("CLOSED", 10)]
    assert c.rsts[0]["in_window"]


def test_an_rst_short_of_the_fin_undoes_fin_wait2(tmp_path):
    """Without the client's FIN (edited out) the server is in FIN_WAIT2, from the client's
    ACK of its FIN, when its RSTs come: numbered short of that ACK, they answer the data
    the client sent before it, which reached the server first and found it in FIN_WAIT1
    after close(): no FIN_WAIT2."""
    c = _only(ON_DATA[:13] + ON_DATA[14:], tmp_path)
    assert _states(c, "server") == [("FIN_WAIT1", 9), ("CLOSED", 16)]
    assert any("it answers that segment" in n for n in c.notes)


def test_an_abort_not_taken_still_closes_its_sender(tmp_path):
    """The server's bytes edited to pass 2 ms after the client's FIN (more than the round
    trip to the server plus a millisecond): the FIN is known lost before the client's
    RST+ACK comes, which is then not taken; the client, whose own abort it is, is CLOSED
    all the same."""
    fin = PAST_FIN_THERE[7]
    data = pb.Rec(fin.ts_ns + 2_000_000, PAST_FIN_THERE[8].data)
    c = _only(PAST_FIN_THERE[:8] + [data] + PAST_FIN_THERE[9:], tmp_path)
    assert _states(c, "client") == [("FIN_WAIT1", 8), ("CLOSED", 10)]
    assert _states(c, "server") == [("CLOSED", 12)]
    assert not c.rsts[0]["in_window"]


@pytest.mark.parametrize("sack", [True, False])
def test_an_ack_repeated_as_the_fin_arrives_shows_a_hole(tmp_path, sack):
    """As captured: the server's ACK repeats its last as the client's FIN arrives, short of
    it, and SACKs the FIN: the FIN came out of order, the server's rcv_nxt is where the lost
    bytes began, and the first RST there, before that ACK on this capture, closed it from
    ESTABLISHED.  The RSTs after it, judged out of window as they came, reached a side it
    had closed: not taken, and no anomaly once the first is known taken.  The SACK block
    (365:366, the FIN) shows the FIN held, behind data lost; edited out, the repeated ACK
    alone shows the FIN did not arrive in order: lost, or held."""
    from teardown_analyzer.flows import TO_CLOSED_NOTE
    c = _only(HOLE if sack else HOLE[:15] + [_without_sack(HOLE[15])] + HOLE[16:], tmp_path)
    assert _states(c, "server") == [("CLOSED", 11)]
    assert c.rsts[0]["in_window"] and c.rsts[0]["packet"] == 11
    assert any("the RST was at the receiver's rcv_nxt" in n for n in c.notes)
    assert [(r["in_window"], r["note"]) for r in c.rsts[1:]] == [(False, TO_CLOSED_NOTE)] * 3
    assert c.anomalies == ("data before a FIN lost after the capture point" if sack else
                           "FIN lost after the capture point",)
    assert any("SACKs it" in n for n in c.notes) == sack


def test_a_window_update_is_no_repeated_ack(tmp_path):
    """The server's ACK edited to open its window (a window update, sent whatever came) and
    without its SACK block: nothing shows the FIN out of order, so the server took it
    (CLOSE_WAIT).  With the SACK block, that shows it held."""
    update = _with_window(HOLE[15], 1)
    c = _only(HOLE[:15] + [_without_sack(update)] + HOLE[16:], tmp_path)
    assert _states(c, "server") == [("CLOSE_WAIT", 9)]
    c = _only(HOLE[:15] + [update] + HOLE[16:], tmp_path)
    assert _states(c, "server") == [("CLOSED", 11)]


def test_an_ack_repeated_before_the_fin_could_arrive_shows_nothing(tmp_path):
    """The server's ACK edited to pass 2 ms earlier, more than a millisecond before the FIN
    could have reached the server and its answer come back, and without its SACK block:
    it answers something else.  With the SACK block, which covers the FIN, the FIN had
    arrived after all (the capture's times are off), out of order."""
    early = pb.Rec(HOLE[15].ts_ns - 2_000_000, HOLE[15].data)
    c = _only(HOLE[:15] + [_without_sack(early)] + HOLE[16:], tmp_path)
    assert _states(c, "server") == [("CLOSE_WAIT", 9)]
    c = _only(HOLE[:15] + [early] + HOLE[16:], tmp_path)
    assert _states(c, "server") == [("CLOSED", 11)]


def test_an_orphaned_fin_wait2_takes_an_rst_past_its_rcv_nxt(tmp_path):
    """As captured (the kernel's record: orphan_fin_wait2_takes_rst_client_side.truth.json,
    checked in test_accuracy): the client's RST+ACK, one past the server's rcv_nxt (its
    FIN never arrived), is in the window of the server in FIN_WAIT2, which close() made a
    timewait mini-socket: taken, no anomaly for it."""
    from teardown_analyzer.flows import ORPHAN_WINDOW_NOTE
    c = _only(ORPHAN, tmp_path)
    assert _seq(ORPHAN[12]) == _seq(ORPHAN[8]) + 1
    assert _states(c, "server") == [("FIN_WAIT1", 11), ("FIN_WAIT2", 12), ("CLOSED", 13)]
    assert [(r["packet"], r["in_window"], r["note"]) for r in c.rsts] == \
        [(13, True, ORPHAN_WINDOW_NOTE)]
    assert c.anomalies == ("FIN lost after the capture point",)


def _window(rec: pb.Rec) -> int:
    tcp = 14 + (rec.data[14] & 0xF) * 4
    return int.from_bytes(rec.data[tcp + 14:tcp + 16], "big")


def test_the_orphan_s_window_ends_at_what_it_advertised(tmp_path):
    """The RST+ACK edited to the right edge of the window the server last advertised (64
    << 10, its FIN's): still in it (tcp_in_window takes a segment without payload there);
    one more and it is out: not taken, the server left in FIN_WAIT2."""
    fin = _seq(ORPHAN[8])
    assert _window(ORPHAN[10]) == 64
    edge = _only(ORPHAN[:12] + [_edited(ORPHAN[12], seq=fin + (64 << 10))], tmp_path)
    assert edge.rsts[0]["in_window"] and edge.server_final == "CLOSED"
    past = _only(ORPHAN[:12] + [_edited(ORPHAN[12], seq=fin + (64 << 10) + 1)], tmp_path)
    assert not past.rsts[0]["in_window"] and past.server_final == "FIN_WAIT2"
    assert "RST out of window" in past.anomalies


def test_a_fin_wait2_that_challenged_takes_only_at_its_rcv_nxt(tmp_path):
    """As captured (half_closed_fin_wait2_challenges_rst_client_side.truth.json): the
    server's challenge ACK shows it a full socket (shutdown(), not close()), which did not
    take the RST+ACK; the bare RST at its rcv_nxt closes it.  That RST edited one past
    (as the RST+ACK): a full socket takes it no more than the first, so the server stays
    in FIN_WAIT2."""
    c = _only(HALF_CLOSED, tmp_path)
    assert _states(c, "server") == [("FIN_WAIT1", 11), ("FIN_WAIT2", 12), ("CLOSED", 15)]
    assert [(r["packet"], r["in_window"]) for r in c.rsts] == [(13, False), (15, True)]
    assert "challenge ACK (packet 14" in c.rsts[0]["note"]
    c = _only(HALF_CLOSED[:14] + [_edited(HALF_CLOSED[14], seq=_seq(HALF_CLOSED[12]))],
              tmp_path)
    assert [r["in_window"] for r in c.rsts] == [False, False]
    assert c.server_final == "FIN_WAIT2"
