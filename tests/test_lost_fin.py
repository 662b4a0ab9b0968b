"""A FIN that a side in FIN_WAIT1 never ACKs, though it would have at once (states.py rule
11), on edited copies of sample_pcaps/lost_fin_crossing_server_side.pcap: records cut off
or added, so these are edited captures, not real ones.  The run itself is checked against
the kernel's record in test_accuracy.py and test_sample_truth.py.

Its records (0-based): 7 the server's FIN, 8 the client's FIN (they cross), 9 the server's
ACK of the client's FIN, 10 the server's FIN again (the first was lost on its way into the
client, after the capture point), 11 the client's ACK of it.  Captured on the server's
interface: the client's ACK of a FIN would show up a round trip (20 ms) after the FIN.
"""
from __future__ import annotations

import pcapbuild as pb
import pytest

from teardown_analyzer.analysis import Options, analyze
from teardown_analyzer.flows import FIN_LOST

_, R = pb.read_pcap(pb.SAMPLES / "lost_fin_crossing_server_side.pcap")
# a SYN of another connection (198.18.3.1:40351 -> 198.18.3.2:5035, another run)
OTHER = pb.read_pcap(pb.SAMPLES / "fin_ack_lost_server_side.pcap")[1][0]
CUT = R[:10]  # up to the server's ACK of the client's FIN: 11.5 ms after the server's FIN


def _client(records, tmp_path, **options):
    path = tmp_path / "edited.pcap"
    path.write_bytes(pb.pcap(records, linktype=1))
    report = analyze([str(path)], Options(**options))
    (c,) = [c for c in report.connections if c.client[1] == 40331]
    return c


def _ladder_agrees(c):
    """Each ladder step shows the client as its transitions have it (test_accuracy.py)."""
    for step in c.ladder:
        before = [e for e in c.client_states if 0 < e.packet <= step["packet"]]
        if before:
            assert step["states"]["client"] == before[-1].state, step


@pytest.mark.parametrize("vectorised", [True, False])
def test_no_ack_due_before_the_capture_ends(tmp_path, vectorised):
    """The capture ends before the client's ACK of the server's FIN was due: nothing shows
    the FIN lost, so the client took it in FIN_WAIT1 (CLOSING), then the ACK of its own;
    nor does anything show it took it: CLOSING is noted not shown (as it was not: the
    whole capture shows the FIN lost, below).  The whole capture has no such note."""
    c = _client(CUT, tmp_path, vectorised=vectorised)
    assert [s.state for s in c.client_states][2:] == ["FIN_WAIT1", "CLOSING", "TIME_WAIT"]
    assert FIN_LOST not in c.anomalies
    assert c.client_states[3].note.startswith(
        "not shown: the capture ends 11.5 ms after the FIN, before this side's ACK of it, "
        "sent at once, could show (the round trip to it is 20.1 ms)")
    assert "(it would have stayed in FIN_WAIT1, and gone to FIN_WAIT2 at packet 10)" \
        in c.client_states[3].note
    whole = _client(R, tmp_path, vectorised=vectorised)
    assert not any(s.note.startswith("not shown") for s in whole.client_states)


@pytest.mark.parametrize("keep_ladder", [True, False])
def test_a_capture_that_goes_on_shows_the_ack_overdue(tmp_path, keep_ladder):
    """A second later the capture goes on (another connection's SYN): the client's ACK
    never came, so the FIN never reached it: FIN_WAIT1, FIN_WAIT2 on the ACK of its own,
    and no TIME_WAIT."""
    later = pb.Rec(R[9].ts_ns + 10**9, OTHER.data)
    c = _client(CUT + [later], tmp_path, keep_ladder=keep_ladder)
    assert [(s.state, s.packet) for s in c.client_states][2:] == [
        ("FIN_WAIT1", 9), ("FIN_WAIT2", 10)]
    assert c.time_wait is None and FIN_LOST in c.anomalies
    assert any("the capture went on past when it was due with no ACK of it" in n
               for n in c.notes)
    _ladder_agrees(c)


def test_an_ack_late_but_with_no_copy_to_answer_takes_the_first(tmp_path):
    """After the ACK was due the server sends again (an ACK, edited in 100 ms later), so
    the FIN seems lost; then the client ACKs it, with no copy of the FIN sent in between
    for that ACK to answer: it had taken the first after all, its ACK late.  What was said
    of a loss is taken back."""
    again = pb.Rec(R[9].ts_ns + 10**8, _edited_ack(R[9].data))
    c = _client(CUT + [again, R[11]], tmp_path, keep_ladder=True)
    assert [(s.state, s.packet) for s in c.client_states][2:] == [
        ("FIN_WAIT1", 9), ("CLOSING", 8), ("TIME_WAIT", 10)]
    assert FIN_LOST not in c.anomalies
    assert not any("never reached" in n for n in c.notes)
    assert "late" in c.client_states[-2].note
    _ladder_agrees(c)


def test_the_copy_the_ack_answers(tmp_path):
    """The run as captured: the client takes the server's FIN sent again (packet 11)."""
    c = _client(R, tmp_path, keep_ladder=True)
    assert [(s.state, s.packet) for s in c.client_states][2:] == [
        ("FIN_WAIT1", 9), ("FIN_WAIT2", 10), ("TIME_WAIT", 11)]
    assert FIN_LOST in c.anomalies
    assert not any("never reached" in n for n in c.notes)  # (said, then made precise)
    assert any(n.startswith("packet 11: the peer's FIN reached this side only with the "
                            "copy in packet 11") for n in c.notes)
    _ladder_agrees(c)


def _edited_ack(frame: bytes) -> bytes:
    """The same segment with the next IP ID: sent again, not captured twice."""
    ident = int.from_bytes(frame[18:20], "big") + 1
    src, dst, seg = pb.split_ipv4(frame[14:])
    return pb.ethernet(pb.ipv4(pb.retarget_tcp(seg, src, dst), src, dst, ident=ident))
