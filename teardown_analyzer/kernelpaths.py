"""The Linux code path behind each transition, for ``--kernel`` (as the write-ups cite them).

From ``../shared/kernel-teardown.md`` (v5.8.18 and a 6.18 mainline tree); where
mainline differs, the second entry says how.  Keyed by (old, new, event).
"""

from __future__ import annotations

from .states import Event, SideState

S, E = SideState, Event

_RCV = "tcp_v4_rcv -> tcp_v4_do_rcv -> tcp_rcv_state_process"

KERNEL_PATHS: dict[tuple[SideState, SideState, Event], tuple[str, str]] = {
    (S.CLOSED, S.SYN_SENT, E.SEND_SYN): (
        "tcp_v4_connect -> tcp_set_state(SYN_SENT); tcp_connect", "same"),
    (S.LISTEN, S.SYN_RECV, E.RECV_SYN): (
        "tcp_v4_rcv -> tcp_v4_do_rcv -> tcp_rcv_state_process(LISTEN) -> "
        "tcp_conn_request (request socket, TCP_NEW_SYN_RECV)", "same"),
    (S.SYN_SENT, S.ESTABLISHED, E.RECV_SYNACK): (
        _RCV + " -> tcp_rcv_synsent_state_process -> tcp_finish_connect -> "
        "tcp_set_state(ESTABLISHED)", "same"),
    (S.SYN_SENT, S.SYN_RECV, E.RECV_SYN): (
        _RCV + " -> tcp_rcv_synsent_state_process: a SYN without ACK (\"simultaneous "
        "connect with crossed SYNs. Particularly, it can be connect to self\") -> "
        "tcp_set_state(SYN_RECV); tcp_send_synack", "same"),
    (S.SYN_RECV, S.ESTABLISHED, E.RECV_SYNACK): (
        _RCV + " (a full socket in SYN_RECV: a simultaneous open) -> tcp_ack acceptable "
        "-> tcp_set_state(ESTABLISHED)", "same"),
    (S.SYN_RECV, S.ESTABLISHED, E.RECV_ACK_OF_SYN): (
        "tcp_v4_rcv -> tcp_check_req -> tcp_v4_syn_recv_sock (child in SYN_RECV) -> "
        "tcp_child_process -> tcp_rcv_state_process -> tcp_set_state(ESTABLISHED)", "same"),
    (S.ESTABLISHED, S.FIN_WAIT1, E.SEND_FIN): (
        "tcp_close -> tcp_close_state -> tcp_set_state(FIN_WAIT1); tcp_send_fin "
        "(or tcp_shutdown -> tcp_close_state)",
        "tcp_close -> __tcp_close -> tcp_close_state -> tcp_set_state(FIN_WAIT1); "
        "tcp_send_fin"),
    (S.ESTABLISHED, S.CLOSE_WAIT, E.RECV_FIN): (
        "tcp_v4_rcv -> tcp_v4_do_rcv -> tcp_rcv_established -> tcp_data_queue -> tcp_fin "
        "-> tcp_set_state(CLOSE_WAIT); inet_csk_schedule_ack (delayed ACK)", "same"),
    (S.FIN_WAIT1, S.FIN_WAIT2, E.RECV_ACK_OF_FIN): (
        _RCV + " -> tcp_ack; case TCP_FIN_WAIT1: tcp_set_state(FIN_WAIT2); orphan: "
        "tcp_time_wait(sk, TCP_FIN_WAIT2, tmo) (timewait socket, substate FIN_WAIT2)",
        "same; the keepalive timer is armed with tcp_reset_keepalive_timer"),
    (S.CLOSE_WAIT, S.LAST_ACK, E.SEND_FIN): (
        "tcp_close -> tcp_close_state -> tcp_set_state(LAST_ACK); tcp_send_fin",
        "tcp_close -> __tcp_close -> tcp_close_state -> tcp_set_state(LAST_ACK); "
        "tcp_send_fin"),
    (S.FIN_WAIT2, S.TIME_WAIT, E.RECV_FIN): (
        "full socket: " + _RCV + " -> tcp_data_queue -> tcp_fin -> tcp_send_ack; "
        "tcp_time_wait(sk, TCP_TIME_WAIT, 0). Timewait socket (orphan): tcp_v4_rcv -> "
        "do_time_wait -> tcp_timewait_state_process (tw_substate = TCP_TIME_WAIT, "
        "inet_twsk_reschedule) -> TCP_TW_ACK -> tcp_v4_timewait_ack",
        "same; tw_entry_stamp refreshed, tw_rcv_nxt via twsk_rcv_nxt_update"),
    (S.LAST_ACK, S.CLOSED, E.RECV_ACK_OF_FIN): (
        _RCV + "; case TCP_LAST_ACK: tcp_update_metrics; tcp_done -> tcp_set_state(CLOSE)",
        "same"),
    (S.FIN_WAIT1, S.CLOSING, E.RECV_FIN): (
        _RCV + " -> tcp_data_queue -> tcp_fin; case TCP_FIN_WAIT1: tcp_send_ack; "
        "tcp_set_state(CLOSING)", "same"),
    (S.CLOSING, S.TIME_WAIT, E.RECV_ACK_OF_FIN): (
        _RCV + "; case TCP_CLOSING: tcp_time_wait(sk, TCP_TIME_WAIT, 0) -> tcp_done",
        "same"),
    (S.FIN_WAIT1, S.TIME_WAIT, E.RECV_FIN_ACK_OF_FIN): (
        _RCV + ": step 5 tcp_ack -> tcp_set_state(FIN_WAIT2); step 7 tcp_data_queue -> "
        "tcp_fin -> tcp_send_ack; tcp_time_wait(sk, TCP_TIME_WAIT, 0)", "same"),
    (S.TIME_WAIT, S.CLOSED, E.TIMER): (
        "tw_timer_handler -> inet_twsk_kill (TCP_TIMEWAIT_LEN = 60 s)",
        "tw_timer_handler -> inet_twsk_kill (TimeWaited counted at schedule time)"),
    (S.TIME_WAIT, S.CLOSED, E.REUSED): (
        "tcp_v4_rcv -> do_time_wait -> tcp_timewait_state_process -> TCP_TW_SYN -> "
        "inet_twsk_deschedule_put; new ISN = tw_snd_nxt + 65537 (tcp_tw_isn); or, on "
        "the TIME_WAIT side, __inet_check_established -> tcp_twsk_unique (tcp_tw_reuse)",
        "same; ISN in the per-CPU tcp_tw_isn; tcp_tw_reuse_delay (1000 ms) applies"),
}

_RST_RECV = ("tcp_validate_incoming -> tcp_reset -> tcp_done -> tcp_set_state(CLOSE)",
             "tcp_validate_incoming -> tcp_reset -> tcp_done_with_error -> tcp_done")
_RST_SEND = ("tcp_close: data_was_unread or SO_LINGER 0 -> tcp_set_state(CLOSE); "
             "tcp_send_active_reset (RST|ACK); or the reply path tcp_v4_send_reset "
             "(bare RST) when no socket or a timewait socket answers",
             "__tcp_close -> tcp_send_active_reset(..., SK_RST_REASON_TCP_ABORT_ON_CLOSE "
             "/ ..._ON_LINGER); reply path tcp_v4_send_reset with an sk_rst_reason")


def kernel_path(old: SideState, new: SideState, event: Event) -> tuple[str, str] | None:
    """(v5.8 path, mainline path or "same") for a transition, if we know it."""
    if event is Event.RECV_RST:
        return _RST_RECV
    if event is Event.SEND_RST:
        return _RST_SEND
    return KERNEL_PATHS.get((old, new, event))
