"""Each side's TCP state machine, as one transition table a reader can check.

Theory of operation
-------------------
We watch a connection from outside, so we never *drive* a state machine; we
infer one per endpoint (like h11's ``{CLIENT: state, SERVER: state}``).  The flow
tracker (:mod:`teardown_analyzer.flows`) turns every captured segment into
events for the side that sent it (``SEND_*``) and for the side that receives it
(``RECV_*``), and hands each event to :meth:`SideMachine.feed`, which looks up
``(state, event)`` in :data:`TRANSITIONS`:

* a hit moves the side and records a :class:`Transition` (old, new, event, time,
  packet number);
* a miss is **not** an error: the move is recorded as an anomaly and the side
  stays where it was (an observer must survive odd peers and lost packets).

Only *new* things become events: the first SYN, the first FIN in each direction,
the first ACK that covers a FIN, an acceptable RST.  Retransmissions and plain
data never reach the table, which keeps the per-packet path short.

Rules, each citing RFC 9293 section 3.10.7 ("SEGMENT ARRIVES") and the Linux
function that implements it (``../shared/kernel-teardown.md`` has the paths):

1. Sending a FIN from ESTABLISHED (or SYN_RECV) is FIN_WAIT1; from CLOSE_WAIT it is
   LAST_ACK (``tcp_close_state``'s ``new_state[]`` table).  The state changes when
   close() is called, which may be before the FIN is on the wire: a transition
   stamped at the FIN is an upper bound.
2. Receiving the peer's first FIN: ESTABLISHED/SYN_RECV -> CLOSE_WAIT, FIN_WAIT1 ->
   CLOSING (simultaneous close), FIN_WAIT2 -> TIME_WAIT (``tcp_fin``).  A side in
   ESTABLISHED delays its ACK of the FIN (``tcp_fin``: pingpong mode, up to 200 ms): reset
   before that ACK was due, it shows no sign of having had the FIN (lost after the capture
   point, it stayed ESTABLISHED until the RST).  Its CLOSE_WAIT stands, noted "not shown".
3. Receiving an ACK covering our FIN: FIN_WAIT1 -> FIN_WAIT2, CLOSING -> TIME_WAIT,
   LAST_ACK -> CLOSED (``tcp_rcv_state_process`` step 5).
4. One segment carrying both the peer's FIN and the ACK of ours: FIN_WAIT1 ->
   TIME_WAIT (RFC 9293: "if our FIN has been ACKed (perhaps in this segment), then
   enter TIME-WAIT").  Linux passes through FIN_WAIT2 for no time on the way.
5. An acceptable RST, received or sent, takes any state to CLOSED (``tcp_reset``,
   ``tcp_send_active_reset``).
6. TIME_WAIT ends (CLOSED) only on evidence: a new SYN on the 4-tuple that was
   accepted (``TCP_TW_SYN``, or ``tcp_tw_reuse`` on the TIME_WAIT side), a RST at
   ``rcv_nxt`` (TIME_WAIT assassination, RFC 1337), or the capture running past the
   TIME_WAIT timer (60 s on Linux), which is marked as inferred.
7. A side that answers late data or a late FIN with a bare RST from FIN_WAIT2 had
   timed out as an orphan: its FIN_WAIT2 had already ended silently.  Likewise from
   ESTABLISHED, CLOSE_WAIT, CLOSING or LAST_ACK: a socket there resets with RST+ACK
   (``tcp_send_active_reset``), a bare RST comes from the reply path
   (``tcp_v4_send_reset``) for a segment that found no socket, so the side's socket was
   already gone (closed with no RST or FIN the capture saw, as close() with SO_LINGER 0
   closes a CLOSING or LAST_ACK socket, or lost with its host); or, from ESTABLISHED,
   answering the peer's data while the side's own is unacknowledged (or was until that
   data, sent less than a round trip of the whole path after the side's), close() had queued
   its FIN behind unsent data (FIN_WAIT1, not shown) and the data aborted it.  Its
   CLOSED is stamped at the RST, an upper bound, and marked as inferred.  So too a bare RST
   answering the segment that took a side to TIME_WAIT (a TIME_WAIT socket answers with
   an ACK), or the ACK that took it from LAST_ACK to CLOSED (taken silently: close() with
   SO_LINGER 0 in LAST_ACK had closed it with no RST); but when that segment ACKed its FIN in FIN_WAIT1 and brought data, or a FIN
   past the last ACK field the side sent (which stays put once it has called close()),
   the side took the ACK (FIN_WAIT2) and aborted at once on the rest
   (``tcp_rcv_state_process``, TCPAbortOnData): CLOSED at the RST, not inferred.
8. A side's state is claimed only when a socket of its own takes part. The receiver of a
   SYN stays LISTEN (never shown: a ladder step shows no state for it) until it answers
   with something other than a RST; it then enters SYN_RECV, stamped at the SYN
   (``tcp_conn_request``). A RST answering the SYN comes from no socket
   (``tcp_v4_send_reset``: the connection is refused), so that side goes to CLOSED with no
   transition; a SYN never answered claims nothing. A bare RST answering a SYN-ACK that
   ACKs the SYN comes from no socket too (a SYN_SENT socket would ACK it,
   ``tcp_rcv_synsent_state_process``): the SYN's socket had been closed in SYN_SENT
   (silently: ``new_state[]``) or never existed, so its RECV_SYNACK is taken back and its
   CLOSED is stamped at the RST, inferred (as in rule 7). Not if that side's ACK of the
   SYN-ACK was seen (the peer ESTABLISHED): a socket took the SYN-ACK, and was gone by the
   time of the RST.
9. A socket connected to itself (one endpoint at both ends) is one socket that receives
   every segment it sends, just after sending it: its SYN in SYN_SENT (SYN_RECV, a
   simultaneous open), its SYN-ACK in SYN_RECV (ESTABLISHED), its FIN in FIN_WAIT1
   (CLOSING), the ACK of that FIN in CLOSING (TIME_WAIT).  Its states are the client's;
   the server side has no socket of its own, so no states (as in rule 8).
10. Two sockets that connect to each other (a simultaneous open, RFC 9293 section 3.5,
   figure 8; TCP hole punching): a SYN from the receiver of an earlier SYN, before any
   answer, is its own connect() (SYN_SENT), not a listener's.  When such a socket then
   sends a SYN-ACK, the peer's SYN had reached it in SYN_SENT (SYN_RECV,
   ``tcp_rcv_synsent_state_process``, "simultaneous connect"), stamped at the peer's last
   SYN before the SYN-ACK; or, if that was captured before its own first SYN (the SYNs
   crossed beyond the capture point), at the SYN-ACK, which Linux sends at once.  The
   peer's SYN-ACK or ACK then establishes it.  Where the SYNs crossed and the peer's
   SYN-ACK was captured before its own, that SYN-ACK reached it after the peer's SYN did
   (the peer sent them in that order): the ESTABLISHED it seemed to cause from SYN_SENT
   is rewritten as SYN_RECV, then ESTABLISHED.  The client is the one whose SYN was
   captured first.
11. A side in FIN_WAIT1 or FIN_WAIT2 ACKs the peer's FIN at once (``tcp_fin``:
   ``tcp_send_ack``): the ACK is due at the capture point the round trip between it and
   that side (from the handshake, plus 1 ms) after the FIN.  If any segment, or the end of
   the capture, comes later with no ACK of it, the FIN never reached the side (lost after
   the capture point, or queued out of order behind data that was): its receipt is taken
   back, and an ACK of its own FIN captured since takes it to FIN_WAIT2 instead (if the
   capture ends before the ACK was due, the receipt stands, noted "not shown").  Its first
   ACK of the FIN then answers a later copy (the FIN, or data before it, sent again): the
   last captured before that ACK, less the round trip; with none, it had taken the first
   after all and ACKed it late.  So too, in any state, when the side sends a segment after
   the FIN would have reached it whose ACK field (its rcv_nxt) leaves the FIN out, or, as
   the FIN arrives (from a millisecond before the round trip), a pure ACK at its next
   sequence number that repeats the ACK field and window of its segment before, short of
   the FIN: what arrived did not move its rcv_nxt (the FIN came out of order).  A
   FIN+ACK whose ACK is shown lost (the peer retransmits its FIN) was lost whole: its FIN
   is taken at a later copy too.  Until the side takes it, an RST numbered as the FIN is at
   its rcv_nxt: in window (rule 12).
12. An RST is taken only at the receiver's rcv_nxt (RFC 5961 section 3.2,
   ``tcp_validate_incoming``; or one less once it has the sender's FIN,
   ``tcp_reset_check``): all its sender sent; the FIN's own number if that FIN never
   reached it, or the ACK field that showed it lost if short of that (rule 11: an RST
   it seemed to take, or not, before is judged again), until the peer sends those bytes
   again or it ACKs past them; the ACK field of its challenge ACK if it answered the RST
   with one (``tcp_send_challenge_ack``: a pure ACK at its next sequence number a round
   trip, plus 1 ms, after the RST, repeating the ACK field of its segment before the RST,
   short of the RST's number).  That ACK field also shows what the RST's sender sent from there on
   lost after the capture point: an ACK of the receiver's FIN or a FIN there is taken back.
   An RST+ACK is its sender's own abort (``tcp_send_active_reset``): the sender is CLOSED
   whether or not the peer takes it.  A bare RST numbered short of the end of its sender's
   own FIN answers a segment the peer sent before it had that FIN (an ACK field only
   grows), which reached the sender before whatever took it past FIN_WAIT1: those receipts
   are taken back (data after close() closed it, or it was gone); from FIN_WAIT1, numbered
   as the ACK field of the peer's last segment or of the one before (another came between),
   it is that abort, whether or not the peer takes the RST.  An RST that reaches a
   side an earlier RST of its sender's closed (the reply path answers each segment of a
   burst) finds no socket: not taken, and not out of window.  When an RST it seemed to
   take is found not taken, or one it seemed not to take is found taken, the sender's
   RSTs after it are judged again.
13. A new SYN on a 4-tuple in use (another ISN) begins a new incarnation and ends the old
   one.  The SYN's sender had no socket left on that 4-tuple (connect() fails while one
   holds it): unless CLOSED or in TIME_WAIT (rule 6), its old side goes to CLOSED at the
   SYN (REUSED), an upper bound, marked as inferred (an orphaned FIN_WAIT2's mini-socket is
   taken over by connect() as a TIME_WAIT is, ``tcp_twsk_unique``).  The SYN's receiver,
   if still in ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSING, CLOSE_WAIT or LAST_ACK,
   answers it with a challenge ACK of the old connection's numbers (RFC 5961 section 4.2,
   ``tcp_send_challenge_ack``); the SYN's sender, in SYN_SENT, answers that with a bare
   RST numbered as its ACK field (``tcp_rcv_synsent_state_process``), which, at the old
   socket's rcv_nxt, closes it (rule 5; the RST is listed with the new incarnation, whose
   socket sent it), and sends its SYN again.  A SYN-ACK instead shows the receiver's old
   socket gone (a listener took the SYN): CLOSED at the SYN (REUSED), an upper bound.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple


NOT_SHOWN = "not shown:"
"""How the note of a state no segment shows begins (the note then gives the other
reading): tables mark that state ``?``."""


class SideState(enum.Enum):
    """A TCP endpoint's state, named as Linux and the write-ups name them."""

    __hash__ = object.__hash__  # members are singletons: the C hash, not Enum's by name

    LISTEN = "LISTEN"          # the server before the SYN; never shown in results
    SYN_SENT = "SYN_SENT"
    SYN_RECV = "SYN_RECV"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT1 = "FIN_WAIT1"
    FIN_WAIT2 = "FIN_WAIT2"
    CLOSING = "CLOSING"
    TIME_WAIT = "TIME_WAIT"
    CLOSE_WAIT = "CLOSE_WAIT"
    LAST_ACK = "LAST_ACK"
    CLOSED = "CLOSED"


class Event(enum.Enum):
    """What a segment (or the clock) means to one side."""

    __hash__ = object.__hash__

    SEND_SYN = "SEND_SYN"
    RECV_SYN = "RECV_SYN"
    SEND_SYNACK = "SEND_SYNACK"
    RECV_SYNACK = "RECV_SYNACK"
    RECV_ACK_OF_SYN = "RECV_ACK_OF_SYN"
    SEND_FIN = "SEND_FIN"
    RECV_FIN = "RECV_FIN"
    RECV_ACK_OF_FIN = "RECV_ACK_OF_FIN"
    RECV_FIN_ACK_OF_FIN = "RECV_FIN_ACK_OF_FIN"
    SEND_RST = "SEND_RST"
    RECV_RST = "RECV_RST"
    REUSED = "REUSED"          # a new SYN on the 4-tuple ended the old socket
    TIMER = "TIMER"            # the capture ran past the TIME_WAIT timer


S, E = SideState, Event
_ANY_OPEN = (S.SYN_SENT, S.SYN_RECV, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING,
             S.TIME_WAIT, S.CLOSE_WAIT, S.LAST_ACK)

TRANSITIONS: dict[tuple[SideState, Event], SideState] = {
    # Opening (RFC 9293 section 3.5): shown where the handshake was captured.
    (S.CLOSED, E.SEND_SYN): S.SYN_SENT,
    (S.LISTEN, E.RECV_SYN): S.SYN_RECV,
    (S.SYN_SENT, E.RECV_SYNACK): S.ESTABLISHED,
    (S.SYN_SENT, E.RECV_SYN): S.SYN_RECV,               # simultaneous open
    (S.SYN_RECV, E.RECV_ACK_OF_SYN): S.ESTABLISHED,
    (S.SYN_RECV, E.RECV_SYNACK): S.ESTABLISHED,         # simultaneous open, completed
    # Rule 1: the local close.
    (S.ESTABLISHED, E.SEND_FIN): S.FIN_WAIT1,
    (S.SYN_RECV, E.SEND_FIN): S.FIN_WAIT1,
    (S.CLOSE_WAIT, E.SEND_FIN): S.LAST_ACK,
    # Rule 2: the peer's FIN.
    (S.ESTABLISHED, E.RECV_FIN): S.CLOSE_WAIT,
    (S.SYN_RECV, E.RECV_FIN): S.CLOSE_WAIT,
    (S.FIN_WAIT1, E.RECV_FIN): S.CLOSING,
    (S.FIN_WAIT2, E.RECV_FIN): S.TIME_WAIT,
    # Rule 3: the ACK of our FIN.
    (S.FIN_WAIT1, E.RECV_ACK_OF_FIN): S.FIN_WAIT2,
    (S.CLOSING, E.RECV_ACK_OF_FIN): S.TIME_WAIT,
    (S.LAST_ACK, E.RECV_ACK_OF_FIN): S.CLOSED,
    # Rule 4: FIN and ACK of our FIN in one segment.
    (S.FIN_WAIT1, E.RECV_FIN_ACK_OF_FIN): S.TIME_WAIT,
    (S.FIN_WAIT2, E.RECV_FIN_ACK_OF_FIN): S.TIME_WAIT,
    (S.CLOSING, E.RECV_FIN_ACK_OF_FIN): S.TIME_WAIT,
    (S.ESTABLISHED, E.RECV_FIN_ACK_OF_FIN): S.CLOSE_WAIT,  # "our FIN" not yet sent: plain FIN
    # Rule 6: the end of TIME_WAIT, on evidence.
    (S.TIME_WAIT, E.REUSED): S.CLOSED,
    **{(s, E.REUSED): S.CLOSED for s in _ANY_OPEN if s is not S.TIME_WAIT},  # Rule 13
    (S.TIME_WAIT, E.TIMER): S.CLOSED,
    **{(s, E.RECV_RST): S.CLOSED for s in _ANY_OPEN},      # Rule 5
    **{(s, E.SEND_RST): S.CLOSED for s in _ANY_OPEN},
}



class Transition(NamedTuple):
    """One move of one side, with its cause (a named tuple: cheap to make and to copy)."""

    old: SideState
    new: SideState
    event: Event
    ts_ns: int
    packet: int
    """Packet number that triggered it (0 for the timer)."""
    note: str = ""
    inferred: bool = False

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"state": self.new.value, "from": self.old.value,
                                "event": self.event.value, "ts": self.ts_ns / 1e9,
                                "packet": self.packet}
        if self.note:
            d["note"] = self.note
        if self.inferred:
            d["inferred"] = True
        return d


@dataclass(slots=True)
class SideMachine:
    """One endpoint's inferred state machine."""

    state: SideState
    start_ts_ns: int = 0
    start_packet: int = 0
    transitions: list[Transition] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)

    def feed(self, event: Event, ts_ns: int, packet: int, note: str = "",
             inferred: bool = False) -> bool:
        """Apply ``event``; return whether the state changed.  Never raises."""
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            self.anomalies.append(f"{event.value} in {self.state.value} "
                                  f"(packet {packet}): not a move TCP allows")
            return False
        self.transitions.append(Transition(self.state, new, event, ts_ns, packet, note,
                                           inferred))
        self.state = new
        return True
