"""The transition table, step by step and over every (state, event) pair."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from teardown_analyzer.states import TRANSITIONS, Event, SideMachine, SideState

S, E = SideState, Event


def _walk(start, events):
    m = SideMachine(start)
    seen = []
    for i, ev in enumerate(events, 1):
        assert m.feed(ev, i * 1000, i), (m.state, ev)
        seen.append(m.state)
    assert not m.anomalies
    return seen


def test_active_closer_four_way():
    assert _walk(S.CLOSED, [E.SEND_SYN, E.RECV_SYNACK, E.SEND_FIN, E.RECV_ACK_OF_FIN,
                            E.RECV_FIN, E.TIMER]) == [
        S.SYN_SENT, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT, S.CLOSED]


def test_passive_closer():
    assert _walk(S.LISTEN, [E.RECV_SYN, E.RECV_ACK_OF_SYN, E.RECV_FIN, E.SEND_FIN,
                            E.RECV_ACK_OF_FIN]) == [
        S.SYN_RECV, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK, S.CLOSED]


def test_simultaneous_close():
    assert _walk(S.ESTABLISHED, [E.SEND_FIN, E.RECV_FIN, E.RECV_ACK_OF_FIN]) == [
        S.FIN_WAIT1, S.CLOSING, S.TIME_WAIT]


def test_fin_and_ack_in_one_segment():
    assert _walk(S.ESTABLISHED, [E.SEND_FIN, E.RECV_FIN_ACK_OF_FIN]) == [S.FIN_WAIT1, S.TIME_WAIT]


def test_time_wait_ends_only_on_evidence():
    assert TRANSITIONS[(S.TIME_WAIT, E.REUSED)] is S.CLOSED
    assert TRANSITIONS[(S.TIME_WAIT, E.TIMER)] is S.CLOSED
    assert (S.TIME_WAIT, E.RECV_FIN) not in TRANSITIONS   # a retransmitted FIN is re-ACKed
    assert (S.FIN_WAIT2, E.TIMER) not in TRANSITIONS


def test_rst_closes_every_open_state():
    for state in S:
        if state in (S.CLOSED, S.LISTEN):
            assert (state, E.RECV_RST) not in TRANSITIONS
        else:
            assert TRANSITIONS[(state, E.RECV_RST)] is S.CLOSED
            assert TRANSITIONS[(state, E.SEND_RST)] is S.CLOSED


def test_disallowed_move_is_an_anomaly_not_an_exception():
    m = SideMachine(S.CLOSE_WAIT)
    assert not m.feed(E.RECV_ACK_OF_FIN, 5, 42)
    assert m.state is S.CLOSE_WAIT and m.transitions == []
    assert m.anomalies == ["RECV_ACK_OF_FIN in CLOSE_WAIT (packet 42): not a move TCP allows"]


def test_every_pair_exhaustively():
    for state, event in itertools.product(S, E):
        m = SideMachine(state)
        moved = m.feed(event, 1, 1)
        assert moved == ((state, event) in TRANSITIONS)
        if moved:
            assert m.state is TRANSITIONS[(state, event)]
            assert m.transitions[-1].old is state and m.transitions[-1].event is event
        else:
            assert m.state is state and len(m.anomalies) == 1


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(S)), st.lists(st.sampled_from(list(E)), max_size=30))
def test_random_event_sequences_never_raise(start, events):
    m = SideMachine(start)
    for i, ev in enumerate(events):
        before = m.state
        if m.feed(ev, i, i):
            assert m.state is TRANSITIONS[(before, ev)]
        else:
            assert m.state is before
    assert len(m.transitions) + len(m.anomalies) == len(events)
