"""The flow tracker: segments in, per-connection records with both sides' state machines.

One streaming pass.  Each segment is matched to its connection by 4-tuple (a new
SYN on a 4-tuple already in use starts a new *incarnation*) and turned into events
for the sending and the receiving side (:mod:`teardown_analyzer.states`).  A plain
data segment of a connection that is not closing takes the short path: counters
only, no events.

Times are capture times: a transition is stamped when the segment that causes it
passes the capture point.  The far side's transitions therefore lag by about its
one-way delay (:mod:`teardown_analyzer.analysis` reports the vantage point).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Iterator, Protocol

from .link import TcpPacket
from .states import NOT_SHOWN, Event, SideMachine, SideState, Transition


# Enum members as module constants: attribute access on an Enum class is slow (3.11).
(CLOSED, CLOSE_WAIT, CLOSING, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, LAST_ACK, LISTEN, SYN_RECV,
 SYN_SENT, TIME_WAIT) = (
    SideState.CLOSED, SideState.CLOSE_WAIT, SideState.CLOSING, SideState.ESTABLISHED,
    SideState.FIN_WAIT1, SideState.FIN_WAIT2, SideState.LAST_ACK, SideState.LISTEN,
    SideState.SYN_RECV, SideState.SYN_SENT, SideState.TIME_WAIT)
(RECV_ACK_OF_FIN, RECV_ACK_OF_SYN, RECV_FIN, RECV_FIN_ACK_OF_FIN, RECV_RST, RECV_SYN,
 RECV_SYNACK, REUSED, SEND_FIN, SEND_RST, SEND_SYN) = (
    Event.RECV_ACK_OF_FIN, Event.RECV_ACK_OF_SYN, Event.RECV_FIN, Event.RECV_FIN_ACK_OF_FIN,
    Event.RECV_RST, Event.RECV_SYN, Event.RECV_SYNACK, Event.REUSED, Event.SEND_FIN,
    Event.SEND_RST, Event.SEND_SYN)
_ENDED = (TIME_WAIT, CLOSED)
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_M32 = 0xFFFFFFFF
DUPLICATE_NS = 50_000_000
"""An identical segment seen again within 50 ms is one packet captured twice."""
DELACK_MAX_NS = 200_000_000
"""The longest a Linux side delays an ACK (``TCP_DELACK_MAX``, HZ/5)."""
SLACK_NS = 1_000_000
"""What a round trip from the handshake is allowed beyond itself (jitter, turnaround): a
segment within it of another may not have been sent after that one arrived."""
FIN_AND_ACK_NOTE = "FIN and the ACK of ours in one segment (Linux passes through FIN_WAIT2 " \
    "for no time)"
"""The note on a side's TIME_WAIT entered from FIN_WAIT1 (states.py rule 4)."""
RST_INSTEAD_OF_FIN = "RST instead of a FIN: close() with unread data, SO_LINGER 0, or an " \
    "abort (tcp_send_active_reset)"
"""The note on an RST+ACK from ESTABLISHED or CLOSE_WAIT before the side's FIN."""

KEEPALIVE_GAVE_UP = "the keepalive timer gave up"
"""In the note on an RST+ACK after keepalive probes unanswered
(:func:`keepalive_timeout_note`)."""


def keepalive_timeout_note(probes: int, since_ns: int) -> str:
    """The note on an RST+ACK after ``probes`` keepalive probes, the first ``since_ns``
    before it, that the peer did not answer."""
    return (f"RST after {probes} keepalive probe{'s' if probes > 1 else ''} unanswered for "
            f"{since_ns / 1e9:.3f} s: {KEEPALIVE_GAVE_UP} (tcp_keepalive_timer: TCP_KEEPCNT "
            f"probes, or TCP_USER_TIMEOUT, unanswered; tcp_send_active_reset); the peer, or "
            f"the path to it, was gone")


def _ms(ns: int) -> str:
    """A duration in milliseconds, to a tenth; to a hundredth under one (a LAN's, a
    loopback's round trip)."""
    return f"{ns / 1e6:.1f} ms" if ns >= 1_000_000 else f"{ns / 1e6:.2f} ms"


def held_fin_note(d: Direction) -> str:
    """The note on the close stamped at ``d``'s FIN, if its sender probed the peer's zero
    window before it: the FIN waited behind data, and close() came at or before it (an
    upper bound, so marked inferred, as states.py rule 7 marks an RST's)."""
    if not d.window_probes:
        return ""
    return (f"stamped at the FIN, an upper bound: before it this side probed the peer's "
            f"zero window {d.window_probes} time{'s' if d.window_probes > 1 else ''} "
            f"(tcp_send_probe0), so the FIN waited behind data the window held back; "
            f"close() or shutdown() may have come long before")


def gone_note(state: SideState) -> str:
    """The note on a bare RST from a side in ``state`` (ESTABLISHED, CLOSE_WAIT, CLOSING or
    LAST_ACK): its socket was gone (states.py rule 7)."""
    silent = ("" if state not in (CLOSING, LAST_ACK) else
              f"; from {state._value_}, close() with SO_LINGER 0 sends none, tcp_disconnect, "
              f"and an orphan whose FIN was sent again until its retries ran out closes "
              f"silently")
    return (f"bare RST from {state._value_}: a socket in {state._value_} resets with RST+ACK "
            f"(tcp_send_active_reset); a bare RST comes from the reply path "
            f"(tcp_v4_send_reset), for a segment that found no socket. The side's socket "
            f"was gone by then: closed with no RST or FIN the capture saw (lost, or dropped "
            f"before the capture point{silent}), or lost with its host (a restart) or a "
            f"NAT's mapping. CLOSED is stamped here as an upper bound")


DATA_AFTER_CLOSE_NOTE = (
    "bare RST from FIN_WAIT1: the side had called close() and its FIN was not yet "
    "acknowledged when the peer's data came (sent before the FIN arrived). Data after "
    "close() aborts the connection (TCPAbortOnData): CLOSED, and this RST from the reply "
    "path (tcp_v4_send_reset), numbered as the data's ACK field")
"""The note on a bare RST from FIN_WAIT1 (data after close(), kernel-teardown.md 4.1)."""
ABORT_ON_FIN_NOTE = (
    "bare RST from FIN_WAIT2: the side had called close(), and the peer's FIN came with "
    "data, or out of order (past the ACK field the side last sent: behind data that never "
    "reached it), on the segment that ACKed the side's FIN. After close() that aborts the "
    "connection as soon as the ACK has taken it to FIN_WAIT2 (TCPAbortOnData, "
    "tcp_rcv_state_process): CLOSED, and this RST from the reply path (tcp_v4_send_reset), "
    "numbered as the FIN's ACK field")
"""The note on a bare RST answering the peer's FIN that ACKed the side's own, when that
FIN was past the side's rcv_nxt (:attr:`Direction.fin_ahead`; states.py rule 7)."""
FIN_WAIT1_GONE_NOTE = (
    "bare RST answering the segment that brought the peer's FIN at this side's rcv_nxt and "
    "ACKed its own: a socket in FIN_WAIT1 takes that to TIME_WAIT and answers nothing "
    "(unless TCP_LINGER2 < 0 aborts it), so no socket took it. The side's socket was gone "
    "by then (an orphan killed, or lost with its host); the RST comes from the reply path "
    "(tcp_v4_send_reset). CLOSED is stamped here as an upper bound")
"""The note on a bare RST answering an in-order FIN that ACKed the side's FIN (rule 7)."""


def crossed_note(copy: int, ack: int | None) -> str:
    """The note on a FIN sent again (packet ``copy``) that crossed the peer's ACK of it
    (packet ``ack``)."""
    return (f"this side's FIN sent again (packet {copy}) crossed the peer's ACK of it in "
            f"packet {ack}: its retransmission timer fired before that ACK arrived")


QUEUED_FIN_NOTE = (
    f"{NOT_SHOWN} close() with data of its own still unsent queues the FIN behind it "
    f"(tcp_send_fin), so FIN_WAIT1 shows nothing on the wire; stamped at the RST that "
    f"followed, an upper bound. Or the socket was gone (the RST's note), never FIN_WAIT1")
"""The note on a FIN_WAIT1 no segment shows: ``ABORT_BEHIND_DATA_NOTE``'s reading."""
ABORT_BEHIND_DATA_NOTE = (
    "Or, the side's data not all acknowledged (or only by the peer's data, sent while the "
    "side still sent its own) and the RST numbered as the ACK field of the "
    "peer's data: it had called close() with data unsent, its FIN queued behind it "
    "(FIN_WAIT1), and the peer's data after close() aborted it (TCPAbortOnData, "
    "tcp_rcv_state_process), this RST from the reply path")
"""The other reading of a bare RST from ESTABLISHED answering the peer's data while the
side's own was in flight, or until that data (:meth:`Tracker._sending`; states.py rule 7)."""
LAST_ACK_GONE_NOTE = (
    "bare RST answering the ACK of this side's FIN: a socket in LAST_ACK takes that ACK "
    "silently (CLOSED), so no socket took it. The side's socket was gone by then (close() "
    "with SO_LINGER 0 in LAST_ACK sends no RST, tcp_disconnect; or lost with its host); the "
    "RST comes from the reply path (tcp_v4_send_reset). CLOSED is stamped here as an upper "
    "bound")
"""The note on a bare RST answering the ACK that would have closed a LAST_ACK side."""


_CHALLENGING = (SideState.ESTABLISHED, SideState.FIN_WAIT1, SideState.FIN_WAIT2,
                SideState.CLOSING, SideState.CLOSE_WAIT, SideState.LAST_ACK)
"""States whose socket answers a SYN on its 4-tuple with a challenge ACK of its own
numbers (RFC 5961 section 4.2: ``tcp_validate_incoming``; an orphaned FIN_WAIT2's
mini-socket, out of its window, with an ACK too: ``tcp_timewait_state_process``)."""
CHALLENGE_ACK_NOTE = ("challenge ACK of the old connection's socket, still open, to the new "
                      "SYN (RFC 5961 section 4.2, tcp_send_challenge_ack)")


def syn_sender_gone_note(state: SideState) -> str:
    """The note on the CLOSED of a side's old incarnation that its new SYN on the same
    4-tuple ends (``state``: where it was)."""
    how = ("an orphaned FIN_WAIT2's mini-socket, taken over by connect() "
           "(tcp_tw_reuse: __inet_check_established -> tcp_twsk_unique), or timed out "
           "before (tcp_fin_timeout)" if state is SideState.FIN_WAIT2 else
           "closed with nothing the capture saw, or lost with its host (a restart), or "
           "another host's behind a NAT")
    return (f"a new SYN from this side on the same 4-tuple: the old socket "
            f"({state._value_}) was gone by then ({how}). CLOSED is stamped at the SYN as "
            f"an upper bound")


def challenger_gone_note(state: SideState) -> str:
    """The note on the CLOSED of the old incarnation's side that answered a new SYN on
    its 4-tuple with a SYN-ACK (``state``: where we had it)."""
    return (f"the new SYN was answered with a SYN-ACK, a listener's: a socket in "
            f"{state._value_} would have answered it with a challenge ACK (RFC 5961 section "
            f"4.2), so the old one was gone by then (closed with nothing the capture saw, or "
            f"lost with its host). CLOSED is stamped at the SYN as an upper bound")


def reset_before_fin_note(packet: int) -> str:
    """The note on a side's bare RST once its RST+ACK after it (``packet``) shows it had
    reset before the peer's FIN came (:meth:`Tracker._reset_before_fin`)."""
    return (f"bare RST from the reply path, answering a segment of the peer's that found no "
            f"socket: the side's RST+ACK after it (packet {packet}), its socket's own reset "
            f"(tcp_send_active_reset), leaves the peer's FIN out of its ACK field (rcv_nxt), "
            f"so the socket never had that FIN. It had reset (close() with SO_LINGER 0, or "
            f"an abort) just before the FIN came: tcp_disconnect takes the socket out of the "
            f"lookup table before it sends its RST, and the reply path's answer left first. "
            f"CLOSED is stamped here as an upper bound")


_RECEIPTS = (Event.RECV_FIN, Event.RECV_FIN_ACK_OF_FIN, Event.RECV_ACK_OF_FIN)
"""What a side takes from the peer's FIN and the ACK of its own, in its closing states."""
LOST_WITH_ACK = "lost with the ACK it carried"
FIN_LOST = "FIN lost after the capture point"
DATA_BEFORE_FIN_LOST = "data before a FIN lost after the capture point"
IGNORED_NOTE = ". Out of window for the peer, which had moved on: it ignores it"
"""Added to a side's note on its bare RST when the peer does not take it."""
OUT_OF_WINDOW_NOTE = "RST out of window: ignored by the receiver (or answered with a " \
                     "challenge ACK)"
TO_CLOSED_NOTE = "RST to a side already CLOSED by an RST before it: no socket left to take it"
"""An RST that reaches a side an earlier RST closed: its sender's (as the reply path's RST
to each segment after the first of a burst), or the side's own, which the two crossed.
Not taken, and no anomaly."""
ORPHAN_WINDOW_NOTE = "RST in the receiver's window though past its rcv_nxt: taken in " \
                     "FIN_WAIT2, where after close() the receiver is a timewait " \
                     "mini-socket, which takes any RST in its window " \
                     "(tcp_timewait_state_process); a full socket, after shutdown(), would " \
                     "answer it with a challenge ACK (RFC 5961 section 3.2)"
"""Why an RST past its receiver's rcv_nxt was taken (:meth:`Tracker._orphan_takes`)."""
TO_CLOSED_SUFFIX = ". The peer was already CLOSED: nothing takes it"
"""Added instead of :data:`IGNORED_NOTE` when that is why."""

LADDER_LIMIT = 200
"""Packets kept per connection for the ladder view (handshake and teardown)."""


def round_trip(handshake_ns: int, answer_ns: int | None) -> int:
    """The round trip between the capture point and a side, to it and back with its
    turnaround: the fastest it answered (``Direction.answer_ns``: any segment of its that
    acknowledged just all the peer had sent, since the last of that was captured; its turn
    of the handshake is one), or its turn of the handshake (``handshake_ns``) if that was
    faster (a SYN sent again: the answer counts from the first).  A turnaround of
    milliseconds in the handshake alone does not make the side seem farther than it is.
    No less than nothing (a clock that went back)."""
    return max(0, handshake_ns if answer_ns is None or answer_ns > handshake_ns
               else answer_ns)


def seq_after(a: int, b: int) -> bool:
    """``a`` is later than ``b`` in 32-bit sequence space (RFC 9293 section 3.4)."""
    return 0 < ((a - b) & _M32) < 0x80000000


def seq_geq(a: int, b: int) -> bool:
    return a == b or seq_after(a, b)


@dataclass(slots=True)
class LadderStep:
    """One packet of the ladder view."""

    packet: int
    ts_ns: int
    sender: int
    flags: int
    seq: int
    ack: int
    length: int
    states: tuple[SideState, SideState] = (CLOSED, CLOSED)
    note: str = ""


@dataclass(slots=True)
class RstRecord:
    sender: int
    ts_ns: int
    packet: int
    acceptable: bool
    bare: bool
    """No ACK bit: the reply path (no socket, or a timewait socket)."""
    seq: int
    note: str = ""
    peer_ack: int = -1
    """The ACK field of the receiver's last segment before it (-1: none)."""
    to_closed: bool = False
    """Its receiver was CLOSED already (:data:`TO_CLOSED_NOTE`)."""


@dataclass(slots=True)
class Direction:
    """What one side sent."""

    isn: int | None = None
    next_seq: int | None = None
    """Highest sequence number sent so far + 1 (SYN and FIN count)."""
    next_ts_ns: int | None = None
    """When ``next_seq`` was first captured (the segment that raised it to that)."""
    answer_ns: int | None = None
    """The fastest this side answered: the least time from the capture of what the peer
    had sent up to the peer's ``next_seq`` to a segment of this side's acknowledging just
    that (:meth:`Tracker._there`)."""
    wscale: int | None = None
    packets: int = 0
    payload_bytes: int = 0
    fin_seq: int | None = None
    fin_ts_ns: int | None = None
    fin_packet: int | None = None
    fin_with_data: bool = False
    fin_ahead: bool = False
    """The FIN (its last copy) brought data, or came past the peer's last ACK field: past
    the peer's rcv_nxt if the peer had called close(), which stops its rcv_nxt there
    (data after close() aborts it).  Such a peer, taking the ACK of its own FIN with it
    in FIN_WAIT1, aborts in FIN_WAIT2 (:data:`ABORT_ON_FIN_NOTE`)."""
    fin_retx: list[tuple[int, int]] = field(default_factory=list)
    """(ts_ns, packet) of each retransmission of the FIN."""
    data_resent: list[tuple[int, int]] | None = None
    """(ts_ns, packet) of each segment after the FIN that sends data before it again."""
    sacked: int | None = None
    """The furthest SACK right edge this side sent while its connection was closing: what
    it held, out of order, behind a hole (:meth:`Tracker._hole`)."""
    fin_held: int | None = None
    """The packet of the peer's that SACKed this side's FIN, with its ACK field short of
    it: the FIN reached it out of order (:meth:`Tracker._ack_overdue`), until its first
    ACK of it (:meth:`Tracker._fin_taken`)."""
    fin_answered: bool = False
    """The peer has sent an ACK of the FIN (if lost after the capture point, a later one
    counts for the peer's state: ``fin_acked_*``)."""
    ack_due_ns: int | None = None
    """If the peer took the FIN in FIN_WAIT1 or FIN_WAIT2 (which ACK it at once): when its
    ACK must have passed the capture point (:meth:`Tracker._ack_overdue`)."""
    fin_lost: str = ""
    """Non-empty when the peer's receipt of the FIN was taken back: the note that said so
    (:meth:`Tracker._ack_overdue`), or :data:`LOST_WITH_ACK` (:meth:`Tracker._revoke_ack`).
    Its first ACK of the FIN answers a later copy (:meth:`Tracker._fin_taken`)."""
    fin_acked_ts_ns: int | None = None
    fin_acked_packet: int | None = None
    fin_acked_span: tuple[int, int] | None = None
    """The sequence numbers the segment that ACKed the FIN took up, from and to (equal if
    it carried neither data nor a FIN)."""
    fin_acked_by_fin: bool = False
    """The ACK of this FIN arrived on the peer's FIN (a three-way close)."""
    fin_acked_last: tuple[int, int, tuple[int, int], bool] | None = None
    """The peer's latest segment that covers this FIN: its time, packet, span and whether
    it was a FIN (as ``fin_acked_*``): the ACK that counts if the one before it was lost
    and it crossed the FIN sent again (:meth:`Tracker._ack_crossed`)."""
    rcv_nxt_shown: int | None = None
    """The peer's rcv_nxt, short of what was sent this way, as an ACK of its showed it (its
    challenge ACK, :meth:`Tracker._challenged`, or one that showed a FIN lost,
    :meth:`Tracker._ack_overdue`): what came from there on never reached it, and an RST
    must carry that number to be taken (:meth:`Tracker._hole`).  None once it ACKs past it
    or this side sends that byte again."""
    full_socket: bool = False
    """This side answered an RST in its window with a challenge ACK (:meth:`Tracker.
    _challenged`): a full socket, not an orphaned FIN_WAIT2's mini-socket; only an RST at its
    rcv_nxt closes it (:meth:`Tracker._orphan_takes`)."""
    data_after_peer_fin: int = 0
    segs_after_peer_fin: int = 0
    data_after_own_fin: int = 0
    syn_retx: int = 0
    syn_at: tuple[int, int] | None = None
    """(ts_ns, packet) of the last SYN (without ACK) sent this way."""
    # the last segment, to tell a segment captured twice from a retransmission
    last_seq: int = -1
    last_ackno: int = -1
    last_word: int = -1
    last_ts_ns: int = 0
    last_window: int = -1
    last_checksum: int = -1
    last_ipid: int = -1
    prev_ackno: int = -1
    """The ACK field this way before ``last_ackno``, the last that differed (-1: none): a
    bare RST from the peer may answer that earlier segment (:meth:`Tracker._rst`)."""
    keepalives: int = 0
    """Keepalive probes sent this way (:meth:`Tracker._probe`)."""
    window_probes: int = 0
    """Zero-window probes sent this way (:meth:`Tracker._probe`)."""
    probes_since: int | None = None
    """When the first of the probes sent since the peer last sent anything was sent."""
    probes_unanswered: int = 0
    """How many probes this way since the peer last sent anything (at ``probes_since``
    and after): unanswered, if the peer sends nothing more."""


@dataclass(slots=True)
class TimeWait:
    side: int
    entered_ts_ns: int
    entered_packet: int
    fin_reacks: list[int] = field(default_factory=list)
    """Packet numbers of ACKs that answered a retransmitted FIN."""
    arrivals: int = 0
    rsts: int = 0
    reuse: dict[str, object] | None = None
    pending_reack: bool = False


@dataclass(slots=True)
class Conn:
    """A connection (one incarnation of a 4-tuple) while it is tracked."""

    id: int
    addrs: tuple[tuple[bytes, int], tuple[bytes, int]]
    """Endpoint 0 and 1: (packed IP, port).  Endpoint 0 sent the first packet seen."""
    first_ts_ns: int
    first_packet: int
    ip_version: int
    incarnation: int = 0
    last_ts_ns: int = 0
    client: int | None = None
    """Endpoint index of the client, when the handshake told it."""
    handshake: list[int] = field(default_factory=list)
    """Capture times of SYN, SYN-ACK, ACK (as far as seen)."""
    syn_seen: bool = False
    synack_seen: bool = False
    dirs: tuple[Direction, Direction] = field(default_factory=lambda: (Direction(), Direction()))
    sides: tuple[SideMachine, SideMachine] = field(
        default_factory=lambda: (SideMachine(ESTABLISHED),
                                 SideMachine(ESTABLISHED)))
    slow: bool = False
    """Every segment takes the full path: during the handshake and from the first FIN/RST."""
    rsts: list[RstRecord] = field(default_factory=list)
    time_wait: list[TimeWait] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ladder: list[LadderStep] = field(default_factory=list)
    ladder_dropped: int = 0
    packets: int = 0
    reused_from: int | None = None
    reuse_isn_note: str = ""
    pending_old: "Conn | None" = None
    """While a new SYN on a TIME_WAIT 4-tuple, or on one whose receiver's socket was still
    open, awaits its answer: the old incarnation."""
    challenger: int | None = None
    """While a new SYN on its 4-tuple awaits its answer: the side of this (old) incarnation
    that received it, still in a synchronized state, whose socket answers it with a
    challenge ACK (:meth:`Tracker._reincarnate`)."""
    simultaneous_open: bool = False
    """Both endpoints sent a SYN: both connect()ed (states.py rule 10)."""
    duplicates: int = 0
    """Segments skipped as the one before them captured twice."""
    unshown: list[tuple[int, int, str]] = field(default_factory=list)
    """(side, index of its transition, note): transitions no segment shows, each note
    starting with :data:`~teardown_analyzer.states.NOT_SHOWN`.  Made afresh each time the
    connection leaves the table (:meth:`Tracker._settle`), as it stood then."""

    def anomaly(self, text: str) -> None:
        if text not in self.anomalies:
            self.anomalies.append(text)

    @property
    def self_connected(self) -> bool:
        """One endpoint at both ends: a socket connected to itself (states.py rule 9)."""
        return self.addrs[0] == self.addrs[1]


SELF_CONNECTED = ("a socket connected to itself (one endpoint at both ends: a simultaneous "
                  "open with itself, or forged segments): one socket that receives every "
                  "segment it sends; its states are the client's")


class Parking(Protocol):
    """What the tracker's owner does with a connection it parks (:meth:`Tracker.sweep`)."""

    def keep(self, conn: Conn) -> int:
        """Keep ``conn`` as finished (out of memory); a handle."""

    def take_back(self, handle: int) -> Conn:
        """A segment of a parked connection arrived: it is not finished after all."""


class Kept(Protocol):
    """Connections the owner parked in bulk, without feeding them here (recognised a window
    at a time, :class:`teardown_analyzer.keptindex.KeptIndex`): looked for after
    :attr:`Tracker.parked`, let go as it lets go of its own."""

    def __len__(self) -> int:
        """How many (0: none to look for)."""

    def take(self, key: tuple[bytes, int, bytes, int], due_by: int | None) -> int | None:
        """The handle of the one parked under ``key`` (as either endpoint sends), which
        is no longer parked after; None if there is none, or if it is due at ``due_by``
        (then it is let go)."""

    def expire(self, now_ns: int) -> None:
        """Let go of those due at ``now_ns``."""


def _time_wait_due(conn: Conn, time_wait_ns: int) -> int:
    """When a connection with a side in TIME_WAIT can be let go: its timer, from the last
    TIME_WAIT entry or the last segment, whichever is later."""
    return max([tw.entered_ts_ns for tw in conn.time_wait] + [conn.last_ts_ns]) \
        + time_wait_ns


def _over(conn: Conn, now_ns: int, time_wait_ns: int, grace_ns: int) -> bool:
    """Whether a connection can no longer change at ``now_ns``: a TIME_WAIT whose timer
    has run out, or both sides CLOSED and quiet for ``grace_ns`` (late retransmissions
    and their RSTs still attach)."""
    a, b = conn.sides[0].state, conn.sides[1].state
    if a is TIME_WAIT or b is TIME_WAIT:
        return now_ns >= _time_wait_due(conn, time_wait_ns)
    return a is CLOSED and b is CLOSED and now_ns - conn.last_ts_ns >= grace_ns


class Tracker:
    """Feed it segments in capture order; iterate :meth:`finish` for the connections."""

    def __init__(self, keep_ladder: bool = False, max_connections: int | None = None,
                 parking: Parking | None = None, time_wait_ns: int | None = None,
                 grace_ns: int = 1_000_000_000) -> None:
        self.keep_ladder = keep_ladder
        """Keep each connection's handshake and teardown packets (for the ladder view)."""
        self.max_connections = max_connections
        """Cap on connections tracked at once; the longest idle are evicted beyond it."""
        self.conns: dict[tuple[bytes, int, bytes, int], tuple[Conn, int]] = {}
        """4-tuple as sent -> (connection, index of the sending endpoint)."""
        self.parking = parking
        """Where quiet TIME_WAITs and idle open connections are parked (:meth:`sweep`); None:
        they stay in memory."""
        self.time_wait_ns = time_wait_ns
        """When a segment's 4-tuple finds a connection that :meth:`sweep`, with this
        TIME_WAIT length and ``grace_ns``, would let go at the segment's time, the
        connection is let go first (the segment starts a new one): so, while the clock
        does not go back, what a segment finds does not depend on when sweeps ran.  None:
        connections stay until a sweep lets them go."""
        self.grace_ns = grace_ns
        self.parked: dict[tuple[bytes, int, bytes, int], tuple[int | None, int]] = {}
        """4-tuple as endpoint 0 sends -> (TIME_WAIT expiry, handle) of a parked
        connection (no expiry: an idle open one)."""
        self.kept: Kept | None = None
        """Connections the owner parked in bulk (it sets this)."""
        self.entered: list[tuple[bytes, int, bytes, int]] | None = None
        """If a list (the owner sets one): the 4-tuple of every connection that enters
        the table (new, or taken back), appended for the owner to read."""
        self._idle_scan_ns = 0
        self._closing: dict[int, Conn] = {}
        """Tracked connections with a side in TIME_WAIT or CLOSED: the only ones a sweep
        can finish or park (the open ones are not looked at)."""
        self._due: list[tuple[int, tuple[bytes, int, bytes, int]]] = []
        """Heap of (TIME_WAIT expiry, 4-tuple) of parked connections; an entry whose
        connection was taken back (or parked again, with a later expiry) is stale."""
        self.finished: list[Conn] = []
        """Connections that left the table (finished, evicted, or replaced by a new
        incarnation); the caller drains and summarises them."""
        self.evicted = 0
        self.skipped: dict[str, int] = {}
        self.last_ts_ns = 0
        self._now_ns = 0
        """How far the capture has gone, as far as the tracker knows: the segment fed, the
        time a sweep was told, the end of the capture (:meth:`_settle`)."""
        self.tcp_packets = 0
        self.plain = 0
        """Segments that took the short path (:mod:`teardown_analyzer.plain` counts such
        segments a batch at a time when they are most of the traffic)."""

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    # -- per packet ------------------------------------------------------------------

    def feed(self, packet: int, ts_ns: int, tcp: TcpPacket) -> None:
        """Process one TCP packet, as :func:`teardown_analyzer.link.tcp_packet` read it."""
        (version, src, dst, ipid, tcp_len, sport, dport, seq, ack, word, window, checksum,
         opt) = tcp
        hlen = (word >> 12) * 4
        if hlen < 20:
            self.skip("TCP data offset below 5")
            return
        plen = tcp_len - hlen
        if plen < 0:
            self.skip("TCP data offset past the packet")
            return
        flags = word & 0x1FF
        if ts_ns > self.last_ts_ns:
            self.last_ts_ns = ts_ns
        self._now_ns = ts_ns
        self.tcp_packets += 1
        key = (src, sport, dst, dport)
        found = self.conns.get(key)
        if found is not None and found[0].id in self._closing \
                and self.time_wait_ns is not None and self._over_at(found[0], ts_ns):
            self._drop(found[0])
            found = None
        if found is None and (self.parked or self.kept):
            found = self._unpark(key, ts_ns)
        if found is None:
            conn, s = self._new(key, packet, ts_ns, version), 0
        else:
            conn, s = found
            if flags & (SYN | ACK) == SYN and conn.syn_seen:
                isn = conn.dirs[s].isn
                if isn is not None and seq != isn:
                    conn = self._reincarnate(conn, key, packet, ts_ns, version, s)
                    s = 0
        reused, reuser = conn.pending_old, conn
        if reused is not None:  # (a reuse of a TIME_WAIT 4-tuple being decided)
            if self._reuse_owner(conn, reused, s, flags, ack, packet) is reused:
                conn, s = reused, s if reused.addrs[0] == conn.addrs[0] else 1 - s
        d = conn.dirs[s]
        # The same segment captured twice (two interfaces merged, a bridge and its port):
        # identical seq, ack, flags, window, checksum and IP ID within DUPLICATE_NS.  A
        # retransmission differs: a new IP ID, and a new TSval in the checksum.  Not a bare
        # RST, unless the connection's other segments were captured twice too: the reply
        # path answers each segment that finds no socket with the same bytes (IP ID 0).
        if seq == d.last_seq and ack == d.last_ackno and word == d.last_word \
                and ts_ns - d.last_ts_ns <= DUPLICATE_NS and window == d.last_window \
                and checksum == d.last_checksum and ipid == d.last_ipid \
                and (conn.duplicates or word & 0x1FF != RST):
            conn.duplicates += 1
            self.skip("duplicate (the same segment captured twice)")
            return
        # (a pure ACK at the next sequence number, with the ACK field and window of the
        # segment before it: something came that did not move rcv_nxt, _segment)
        repeat = flags == ACK and not plen and conn.slow and ack == d.last_ackno \
            and window == d.last_window and seq == d.next_seq
        if flags & ACK and (ack != d.last_ackno or not d.last_word & ACK):
            if ack != d.last_ackno and d.last_word >= 0 and d.last_word & ACK:
                d.prev_ackno = d.last_ackno
            # (a new ACK field: a round trip to this side and back, if it acknowledges
            # just what the peer had sent, since the last of that was captured)
            peer = conn.dirs[1 - s]
            if ack == peer.next_seq and peer.next_ts_ns is not None \
                    and (d.answer_ns is None or ts_ns - peer.next_ts_ns < d.answer_ns):
                d.answer_ns = ts_ns - peer.next_ts_ns
        d.last_seq, d.last_ackno, d.last_word, d.last_ts_ns = seq, ack, word, ts_ns
        d.last_window, d.last_checksum, d.last_ipid = window, checksum, ipid
        conn.packets += 1
        conn.last_ts_ns = ts_ns
        d.packets += 1
        d.payload_bytes += plen
        end = (seq + plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) & _M32
        nxt = d.next_seq
        if nxt is None or 0 < ((end - nxt) & _M32) < 0x80000000:
            d.next_seq = end
            d.next_ts_ns = ts_ns
        elif flags == ACK and not plen and seq == (nxt - 1) & _M32:
            self._probe(conn, s, ts_ns)
        if not (flags & (SYN | FIN | RST)) and not conn.slow:
            self.plain += 1
            return  # the short path: a plain segment of an open connection
        self._segment(conn, s, packet, ts_ns, flags, seq, ack, plen, opt, repeat)
        if reused is not None and conn is reused:
            self._old_segment(reused, reuser, s, packet, flags)

    @staticmethod
    def _probe(conn: Conn, s: int, ts_ns: int) -> None:
        """``s`` sent a pure ACK numbered one before its next sequence number: a probe
        (``tcp_xmit_probe_skb``, which sends only when nothing is in flight).  With the
        peer's window closed it is a zero-window probe (``tcp_send_probe0``, the persist
        timer: data waits for the window), counted apart.  With it open it is a keepalive
        probe (``tcp_keepalive_timer``); counted, and, since the peer last sent anything,
        how many and from when (:func:`keepalive_timeout_note`)."""
        d, peer = conn.dirs[s], conn.dirs[1 - s]
        if peer.last_window == 0:
            d.window_probes += 1
            return
        d.keepalives += 1
        if d.probes_since is None or peer.last_ts_ns >= d.probes_since:
            d.probes_since, d.probes_unanswered = ts_ns, 0
        d.probes_unanswered += 1

    def _new(self, key: tuple[bytes, int, bytes, int], packet: int, ts_ns: int,
             version: int) -> Conn:
        # The id is the first packet's number: unique in a capture, and the same whichever
        # worker tracks the connection; the analysis renumbers 1, 2, 3 ... in that order.
        conn = Conn(packet, ((key[0], key[1]), (key[2], key[3])), ts_ns, packet,
                    version, last_ts_ns=ts_ns)
        # under the 4-tuple as each endpoint sends (one, endpoint 0's, if an endpoint talks
        # to itself)
        self.conns[(key[2], key[3], key[0], key[1])] = (conn, 1)
        self.conns[key] = (conn, 0)
        if self.entered is not None:
            self.entered.append(key)
        if conn.self_connected:
            conn.anomaly(SELF_CONNECTED)
            conn.slow = True  # every segment to _own_segment
        if self.max_connections is not None and len(self.conns) > 2 * self.max_connections:
            self._evict()
        return conn

    def _evict(self) -> None:
        """Over --max-connections: summarise and drop the longest-idle tenth (at least one)."""
        live = {c.id: c for c, _ in self.conns.values()}
        assert self.max_connections is not None
        excess = len(live) - self.max_connections
        n = max(excess, self.max_connections // 10, 1)
        for conn in sorted(live.values(), key=lambda c: c.last_ts_ns)[:n]:
            conn.anomaly("evicted before it ended: --max-connections reached; later "
                         "packets of this 4-tuple start a new record")
            self._drop(conn)
            self.evicted += 1

    def _drop(self, conn: Conn) -> None:
        self._closing.pop(conn.id, None)
        a, b = conn.addrs
        for key in ((a[0], a[1], b[0], b[1]), (b[0], b[1], a[0], a[1])):
            found = self.conns.get(key)
            if found is not None and found[0] is conn:
                del self.conns[key]
        self._finish(conn)

    def _finish(self, conn: Conn) -> None:
        """``conn`` is done; so is the incarnation before it if it still waited for the
        answer to ``conn``'s SYN (its reuse stays "pending"), and so on."""
        done: Conn | None = conn
        while done is not None:
            # (an old incarnation that took segments while a new SYN's answer was awaited
            # went back among the closing: a sweep must not finish it again)
            self._closing.pop(done.id, None)
            self._settle(done)
            self.finished.append(done)
            done.pending_old, done = None, done.pending_old

    def _settle(self, conn: Conn) -> None:
        """``conn`` leaves the table: an ACK of a FIN still due shows it overdue if the
        capture went on past it (:meth:`_ack_overdue`).  How far it went is taken as where
        the capture is now, but no further than the connection's last segment plus
        ``grace_ns``: connections a sweep lets go, or parks, were quiet that long, so this
        is the same however the capture is shared between processes or when sweeps run."""
        now = min(conn.last_ts_ns + self.grace_ns, self._now_ns)
        conn.unshown = []
        for i, d in enumerate(conn.dirs):
            if d.ack_due_ns is not None and now > d.ack_due_ns:
                d.ack_due_ns = None
                self._ack_overdue(conn, 1 - i, None, now)
            elif d.ack_due_ns is not None:
                self._ack_unshown(conn, 1 - i, now)
        if conn.rsts:
            for s in (0, 1):
                self._reset_before_ack_unshown(conn, s)

    def _ack_unshown(self, conn: Conn, s: int, now: int) -> None:
        """``s`` took the peer's FIN in FIN_WAIT1 or FIN_WAIT2, and the capture ends before
        its ACK of it, sent at once, was due at the capture point (:meth:`_expect_ack`):
        nothing shows the FIN reached it.  The receipt stands, noted so (``unshown``)."""
        side, fin = conn.sides[s], conn.dirs[1 - s]
        took = self._fin_receipt(side)
        if took is None or fin.fin_ts_ns is None:
            return
        # (without the FIN, an ACK of its own FIN after it takes it to FIN_WAIT2 instead)
        acked = next((t for t in side.transitions[side.transitions.index(took) + 1:]
                      if t.event is RECV_ACK_OF_FIN), None)
        stayed = took.old.value if acked is None or took.old is not FIN_WAIT1 else \
            f"{took.old.value}, and gone to FIN_WAIT2 at packet {acked.packet}"
        note = (f"{NOT_SHOWN} the capture ends {_ms(now - fin.fin_ts_ns)} after the FIN, "
                f"before this side's ACK of it, sent at once, could show (the round trip to "
                f"it is {_ms(self._there(conn, s) or 0)}), so the FIN may as well have been "
                f"lost after the capture point (it would have stayed in {stayed})")
        conn.unshown.append((s, side.transitions.index(took), note))

    def _reset_before_ack_unshown(self, conn: Conn, s: int) -> None:
        """``s`` took the peer's FIN and was reset before it sent anything that ACKed the
        FIN, and before that ACK was due at the capture point: a side in FIN_WAIT1 or
        FIN_WAIT2 ACKs a FIN at once (``tcp_fin``: ``tcp_send_ack``), due a round trip to
        it plus a millisecond after the FIN passed (:meth:`_expect_ack`); one in
        ESTABLISHED delays that ACK (pingpong mode, up to ``TCP_DELACK_MAX``).  So the
        capture does not show that the FIN reached it.  The receipt stands (the FIN passed
        the capture point), noted so (``unshown``), with the other reading: the state it
        was in, until the RST.  (An RST after the ACK was due shows the FIN lost:
        :meth:`_ack_overdue` took the receipt back.)"""
        side, fin = conn.sides[s], conn.dirs[1 - s]
        if fin.fin_answered or fin.fin_ts_ns is None:
            return
        for k, (t, rst) in enumerate(zip(side.transitions, side.transitions[1:])):
            if t.event not in (RECV_FIN, RECV_FIN_ACK_OF_FIN) or rst.event is not RECV_RST:
                continue
            delayed = t.old is ESTABLISHED
            by = self._rst_record(conn, s, rst)
            if by is None or not (delayed or t.old is FIN_WAIT1 or t.old is FIN_WAIT2):
                continue
            late = by.ts_ns - fin.fin_ts_ns
            if late <= (self._there(conn, s) or 0) + (DELACK_MAX_NS if delayed else SLACK_NS):
                why = ("a side in ESTABLISHED delays the ACK of a FIN (tcp_fin: pingpong "
                       "mode, up to 200 ms)" if delayed else
                       f"a side in {t.old.value} ACKs a FIN at once (tcp_fin), and that ACK "
                       f"was not yet due here (the round trip to it is "
                       f"{_ms(self._there(conn, s) or 0)}, and a millisecond more)")
                note = (f"{NOT_SHOWN} the RST (packet {by.packet}) came {late / 1e6:.1f} "
                        f"ms after the FIN, before this side ACKed it; {why}, so the FIN may "
                        f"as well have been lost after the capture point (then "
                        f"{t.old.value} until the RST)")
                # (in place of the capture's end, _ack_unshown: the RST came first)
                conn.unshown = [u for u in conn.unshown if u[:2] != (s, k)] + [(s, k, note)]

    def _reincarnate(self, old: Conn, key: tuple[bytes, int, bytes, int], packet: int,
                     ts_ns: int, version: int, s: int) -> Conn:
        """A new SYN on a 4-tuple in use: close the old incarnation, start a new one."""
        self._closing.pop(old.id, None)  # no longer in the table
        new = self._new(key, packet, ts_ns, version)
        new.incarnation = old.incarnation + 1
        new.reused_from = old.id
        after = None
        for tw in old.time_wait:
            if old.sides[tw.side].state is TIME_WAIT:
                after = (ts_ns - tw.entered_ts_ns) / 1e9
                tw.reuse = {"after_s": after, "packet": packet, "outcome": "pending",
                            "by": "TIME_WAIT side" if tw.side == s else "peer",
                            "new_connection": new.id}
                new.notes.append(f"reuses the 4-tuple of the connection before it, "
                                 f"{after:.3f} s into its TIME_WAIT")
        sender, receiver = old.sides[s], old.sides[1 - s]
        if sender.state not in (CLOSED, LISTEN, TIME_WAIT):
            # (its TIME_WAIT ends when the SYN is answered, _reuse_outcome)
            sender.feed(REUSED, ts_ns, packet, syn_sender_gone_note(sender.state), True)
        if after is None and receiver.state in _CHALLENGING:
            # its socket answers the SYN with a challenge ACK, and the RST answering that
            # closes it (_reuse_owner, _old_segment); a SYN-ACK shows it gone
            old.challenger = 1 - s
            role = "server" if (old.client if old.client is not None else 0) == s \
                else "client"
            new.notes.append(f"reuses the 4-tuple of the connection before it, whose "
                             f"{role} was still in {receiver.state._value_}")
            new.pending_old = old
        elif after is None:
            new.notes.append("reuses the 4-tuple of the connection before it")
            self._finish(old)
        else:
            new.pending_old = old  # it leaves when the new SYN's answer is known
        return new

    def _segment(self, conn: Conn, s: int, packet: int, ts_ns: int, flags: int, seq: int,
                 ack: int, plen: int, opt: int | None, repeat: bool = False) -> None:
        """The full path: SYN, FIN, RST, and anything on a closing connection (``opt``:
        a SYN's window scale, how far past its ACK field another segment's SACK blocks
        reach, :func:`~teardown_analyzer.link.read_options`; ``repeat``: a pure ACK that
        repeats the one before it, :meth:`feed`)."""
        if conn.self_connected:
            self._own_segment(conn, packet, ts_ns, flags, seq, ack, plen, opt)
            return
        r = 1 - s
        ds, dr = conn.dirs[s], conn.dirs[r]
        side_s, side_r = conn.sides[s], conn.sides[r]
        note = ""
        # an ACK of a FIN that a side in FIN_WAIT1 or FIN_WAIT2 took, due at once: this
        # segment (from it, covering the FIN) brings it, or shows it overdue
        # (even that ACK, if late: _fin_taken then tells whether it answers a later copy)
        for d, sender in ((ds, r), (dr, s)) if ds.ack_due_ns or dr.ack_due_ns else ():
            due = d.ack_due_ns
            if due is not None:
                if ts_ns > due:
                    d.ack_due_ns = None
                    self._ack_overdue(conn, sender, packet, ts_ns)
                elif s == sender and flags & ACK and d.fin_seq is not None \
                        and seq_geq(ack, (d.fin_seq + 1) & _M32):
                    d.ack_due_ns = None
        sack = None if flags & SYN or opt is None else (ack + opt) & _M32
        if sack is not None and (ds.sacked is None or seq_after(sack, ds.sacked)):
            ds.sacked = sack
        # ... or, whatever its state, its ACK field leaves out a FIN it would have had; or
        # it repeats its ACK as the FIN arrives, short of it, or SACKs the FIN: the FIN
        # came out of order
        peer_fin = dr.fin_seq
        if flags & ACK and peer_fin is not None and dr.fin_ts_ns is not None \
                and not dr.fin_answered and not dr.fin_lost \
                and not seq_geq(ack, (peer_fin + 1) & _M32):
            there = self._there(conn, s)
            sacked = sack is not None and seq_geq(sack, (peer_fin + 1) & _M32)
            if sacked or there is not None and (
                    ts_ns - dr.fin_ts_ns > there + SLACK_NS or repeat and
                    seq_after(peer_fin, ack) and ts_ns - dr.fin_ts_ns >= there - SLACK_NS):
                self._ack_overdue(conn, s, packet, ts_ns, stale=True, ack=ack,
                                  sack=sack if sacked else None)
        if dr.rcv_nxt_shown is not None and flags & ACK and seq_after(ack, dr.rcv_nxt_shown):
            dr.rcv_nxt_shown = None  # (what was missing came after all)
        hole = ds.rcv_nxt_shown
        if hole is not None and plen and seq_geq(hole, seq) and seq_after(seq + plen, hole):
            ds.rcv_nxt_shown = None  # (sent again: it fills the hole when it arrives)
        if flags & (SYN | ACK | FIN | RST) == ACK and not plen and side_s.state is CLOSED \
                and side_s.transitions and side_s.transitions[-1].event is RECV_RST:
            self._challenged(conn, s, packet, ts_ns, seq, ack)
        crossed = None
        if not flags & (RST | SYN) and side_s.state is CLOSED \
                and side_s.transitions and side_s.transitions[-1].event is RECV_RST:
            # a segment from a side we closed at the peer's RST: it had not taken that RST
            # when it sent it.  Within a round trip of it, they crossed: a FIN or data
            # closes it again below, after them (a pure ACK is not a packet after CLOSED).
            # Later, the RST should have reached it before: lost after the capture point
            # (or not taken), and the side goes on; even a pure ACK comes from a socket
            # (the reply path sends only RSTs)
            rst = side_s.transitions[-1]
            if self._within_rtt(conn, rst, ts_ns):
                if flags & FIN or plen:
                    crossed = self._undo_last(conn, s, RECV_RST)
            else:
                self._undo_last(conn, s, RECV_RST)
                conn.anomaly("RST lost after the capture point")
                what = "FIN" if flags & FIN else "data" if plen else "ACK"
                conn.notes.append(f"packet {packet}: the {what} shows this side never took "
                                  f"the peer's RST (packet {rst.packet}), more than a round "
                                  f"trip before: lost after the capture point, or not taken")
        # (not a segment sent before the peer's RST reached it: within a round trip of it)
        was_closed = side_s.state is CLOSED and not flags & RST and not (
            side_s.transitions and side_s.transitions[-1].event is RECV_RST
            and self._within_rtt(conn, side_s.transitions[-1], ts_ns))
        bare_syn = flags & (SYN | ACK) == SYN
        if side_s.state is LISTEN and not flags & RST and not bare_syn:
            self._took_syn(conn, s)
        # -- handshake ---------------------------------------------------------------
        if flags & SYN:
            if flags & ACK:
                # a connecting socket's first SYN-ACK: it took the peer's SYN in SYN_SENT
                answers = conn.simultaneous_open and ds.syn_at is not None \
                    and not any(t.event is RECV_SYN for t in side_s.transitions)
                if answers:
                    self._met_syn(conn, s, ts_ns, packet)
                if answers or ds.isn is None or not conn.synack_seen:
                    ds.isn = seq
                    ds.wscale = opt
                    conn.synack_seen = True
                    conn.slow = True
                    if conn.client is None:
                        conn.client = r
                        side_s.state, side_r.state = SYN_RECV, SYN_SENT
                    if len(conn.handshake) < 3:
                        conn.handshake.append(ts_ns)
                    side_r.feed(RECV_SYNACK, ts_ns, packet)
                    if conn.pending_old is not None:
                        self._reuse_outcome(conn.pending_old, conn, "SYN-ACK", seq)
                else:
                    ds.syn_retx += 1
            else:
                if not conn.syn_seen:
                    if conn.packets > 1:
                        conn.anomaly("SYN captured after data of this connection "
                                     "(reordered capture?)")
                    conn.syn_seen = True
                    ds.isn = seq
                    ds.wscale = opt
                    conn.client = s
                    side_s.state, side_r.state = CLOSED, LISTEN
                    side_s.start_ts_ns = side_r.start_ts_ns = ts_ns
                    conn.handshake = [ts_ns]
                    conn.slow = True
                    side_s.feed(SEND_SYN, ts_ns, packet)
                    # the receiver's RECV_SYN waits for its answer (_took_syn, _rst)
                elif ds.isn is None and side_s.state is LISTEN:
                    # not a listener's answer but a SYN of its own: it connect()s too
                    ds.isn, ds.wscale = seq, opt
                    conn.simultaneous_open = True
                    side_s.state = CLOSED
                    side_s.feed(SEND_SYN, ts_ns, packet,
                                "this side connect()s too: a simultaneous open")
                    conn.notes.append(
                        f"packet {packet}: simultaneous open: the SYN's receiver sends a SYN "
                        f"of its own, so both endpoints connect()ed (TCP hole punching, or "
                        f"two peers dialling each other); the client is the one whose SYN "
                        f"came first")
                else:
                    ds.syn_retx += 1
                ds.syn_at = (ts_ns, packet)
        # -- acknowledgements ----------------------------------------------------------
        # (not an RST's: the receiver checks the RST before it processes any ACK, RFC 9293
        # section 3.10.7.4, tcp_validate_incoming; an RST+ACK acknowledging a FIN takes its
        # sender from FIN_WAIT1 to CLOSED, not through FIN_WAIT2)
        acks_fin = False
        if flags & ACK and not flags & RST:
            if (side_r.state is SYN_RECV and dr.isn is not None
                    and seq_geq(ack, (dr.isn + 1) & _M32) and not flags & SYN):
                if len(conn.handshake) == 2:
                    conn.handshake.append(ts_ns)
                side_r.feed(RECV_ACK_OF_SYN, ts_ns, packet)
            if dr.fin_seq is not None and seq_geq(ack, (dr.fin_seq + 1) & _M32):
                last = dr.fin_acked_last = (ts_ns, packet, (seq, (seq + plen + (
                    1 if flags & FIN else 0)) & _M32), bool(flags & FIN))
                if dr.fin_acked_ts_ns is None:
                    (dr.fin_acked_ts_ns, dr.fin_acked_packet, dr.fin_acked_span,
                     dr.fin_acked_by_fin) = last
                    acks_fin = True
                    if not dr.fin_answered:  # (its first: not one after an ACK lost)
                        dr.fin_answered = True
                        self._fin_taken(conn, s, ts_ns, packet)
        # -- data around FINs ------------------------------------------------------------
        if plen:
            if dr.fin_seq is not None:
                ds.data_after_peer_fin += plen
                ds.segs_after_peer_fin += 1
            if ds.fin_seq is not None and not flags & FIN:
                if seq_geq(seq, ds.fin_seq):
                    ds.data_after_own_fin += plen
                    conn.anomaly("data after FIN")
                else:  # sent again: a copy the peer may take the FIN with (_fin_taken)
                    if ds.data_resent is None:
                        ds.data_resent = []
                    ds.data_resent.append((ts_ns, packet))
        # -- FIN -----------------------------------------------------------------------
        new_fin = False
        if flags & FIN:
            fin_seq = (seq + plen) & _M32
            ds.fin_ahead = dr.packets > 0 and dr.last_word & ACK != 0 \
                and seq_after(fin_seq, dr.last_ackno)
            if ds.fin_seq is None:
                new_fin = True
                conn.slow = True
                ds.fin_seq, ds.fin_ts_ns, ds.fin_packet = fin_seq, ts_ns, packet
                ds.fin_with_data = plen > 0
                crossing = (side_s.state is CLOSE_WAIT and dr.fin_seq is not None
                            and not (flags & ACK and seq_geq(ack, (dr.fin_seq + 1) & _M32)))
                if not (crossing and self._uncross(conn, s, packet)):
                    held = held_fin_note(ds)
                    side_s.feed(SEND_FIN, ts_ns, packet, held, bool(held))
            elif fin_seq == ds.fin_seq:
                ds.fin_retx.append((ts_ns, packet))
                conn.anomaly("FIN retransmitted")
                acked = ds.fin_acked_packet
                if acked is not None and self._copy_crossed(conn, s, ts_ns, packet):
                    pass  # (the ACK stands: the copy left before it arrived)
                elif acked is not None and self._revoke_ack(conn, s):
                    note = "the ACK of this FIN was lost after the capture point"
                    self._ack_crossed(conn, s, ts_ns, packet, acked)
                elif not ds.fin_answered and not ds.fin_lost:
                    self._delayed_ack_overdue(conn, r, packet, ts_ns)
                for tw in conn.time_wait:
                    if tw.side == r and side_r.state is TIME_WAIT:
                        tw.pending_reack = True
                        tw.arrivals += 1
                        note = "retransmitted FIN: the TIME_WAIT side must re-ACK it"
            else:
                conn.anomaly("FIN with a different sequence number")
        # -- the receiver's events ---------------------------------------------------------
        if new_fin and side_r.state in (FIN_WAIT1, FIN_WAIT2):
            self._expect_ack(conn, r)
        if acks_fin and new_fin and side_r.state is FIN_WAIT1:
            side_r.feed(RECV_FIN_ACK_OF_FIN, ts_ns, packet, FIN_AND_ACK_NOTE)
        else:
            if acks_fin and side_r.state in (FIN_WAIT1, CLOSING,
                                             LAST_ACK):
                side_r.feed(RECV_ACK_OF_FIN, ts_ns, packet)
            if new_fin and side_r.state is not CLOSED:
                side_r.feed(RECV_FIN, ts_ns, packet)
        # TIME_WAIT bookkeeping: re-ACKs, arrivals
        for tw in conn.time_wait:
            if side_s.state is TIME_WAIT and tw.side == s and tw.pending_reack \
                    and flags & ACK and not flags & (FIN | SYN | RST) \
                    and ds.fin_seq is not None and dr.fin_seq is not None \
                    and ack == (dr.fin_seq + 1) & _M32:
                tw.fin_reacks.append(packet)
                tw.pending_reack = False
                note = "TIME_WAIT side re-ACKs the retransmitted FIN"
            elif tw.side == r and side_r.state is TIME_WAIT and not new_fin \
                    and not (flags & FIN):
                tw.arrivals += 1
        # -- RST -------------------------------------------------------------------------
        if flags & RST:
            note = self._rst(conn, s, packet, ts_ns, flags, seq, ack) or note
        if crossed is not None:
            by = self._rst_record(conn, s, crossed)  # (crossed may be an earlier crossing)
            side_s.feed(RECV_RST, ts_ns, packet,
                        f"the peer's RST (packet {by.packet if by else crossed.packet}) "
                        f"crossed this segment: "
                        f"it reached this side after it sent it; CLOSED is stamped here, "
                        f"before it arrived", inferred=True)
        if was_closed and side_s.state is CLOSED:
            conn.anomaly("packets after CLOSED")
        if side_s.state is TIME_WAIT or side_r.state is TIME_WAIT:
            self._enter_time_wait(conn)
        if side_s.state in _ENDED or side_r.state in _ENDED:
            self._closing[conn.id] = conn
        if conn.dirs[0].fin_seq is None and conn.dirs[1].fin_seq is None and not conn.rsts \
                and side_s.state is ESTABLISHED and side_r.state is ESTABLISHED:
            conn.slow = False  # handshake done: back to the short path
        self._ladder(conn, s, packet, ts_ns, flags, seq, ack, plen, note)

    def _own_segment(self, conn: Conn, packet: int, ts_ns: int, flags: int, seq: int,
                     ack: int, plen: int, opt: int | None) -> None:
        """A segment of a socket connected to itself (states.py rule 9): it sends it, then
        receives it.  Its SYN comes back to it in SYN_SENT (a simultaneous open: SYN_RECV),
        its SYN-ACK completes the open, its FIN comes back to it in FIN_WAIT1 (CLOSING), and
        the ACK of that FIN, its own too, ends in TIME_WAIT.  It is side 0, the client; the
        server side (side 1) stays as it began, with no states."""
        side, d = conn.sides[0], conn.dirs[0]
        note = ""
        if flags & RST:
            note = "RST to itself: the socket's own abort, received by no other socket"
            conn.rsts.append(RstRecord(0, ts_ns, packet, True, not flags & ACK, seq, note))
            if side.state not in (CLOSED, LISTEN):
                side.feed(SEND_RST, ts_ns, packet, note)
        elif flags & SYN:
            if not conn.syn_seen:
                conn.syn_seen = True
                conn.client = 0
                d.isn, d.wscale = seq, opt
                side.state, conn.sides[1].state = CLOSED, LISTEN
                side.start_ts_ns = conn.sides[1].start_ts_ns = ts_ns
                conn.handshake = [ts_ns]
                side.feed(SEND_SYN, ts_ns, packet)
                side.feed(RECV_SYN, ts_ns, packet,
                          "its own SYN came back to it: a simultaneous open with itself")
            elif flags & ACK and not conn.synack_seen and side.state is SYN_RECV:
                conn.synack_seen = True
                conn.handshake.append(ts_ns)
                side.feed(RECV_SYNACK, ts_ns, packet, "its own SYN-ACK came back to it")
            else:
                d.syn_retx += 1
        elif flags & FIN:
            fin_seq = (seq + plen) & _M32
            if d.fin_seq is None:
                d.fin_seq, d.fin_ts_ns, d.fin_packet = fin_seq, ts_ns, packet
                d.fin_with_data = plen > 0
                side.feed(SEND_FIN, ts_ns, packet)
                side.feed(RECV_FIN, ts_ns, packet, "its own FIN came back to it")
            elif fin_seq == d.fin_seq:
                d.fin_retx.append((ts_ns, packet))
                conn.anomaly("FIN retransmitted")
        elif flags & ACK and d.fin_seq is not None and d.fin_acked_ts_ns is None \
                and seq_geq(ack, (d.fin_seq + 1) & _M32):
            d.fin_acked_ts_ns, d.fin_acked_packet = ts_ns, packet
            side.feed(RECV_ACK_OF_FIN, ts_ns, packet, "the ACK of its FIN, its own too")
        if side.state is TIME_WAIT:
            self._enter_time_wait(conn)
        if side.state in _ENDED:
            self._closing[conn.id] = conn
        self._ladder(conn, 0, packet, ts_ns, flags, seq, ack, plen, note)

    def _took_syn(self, conn: Conn, s: int) -> None:
        """Side ``s``, still LISTEN, sends something other than a RST (a SYN-ACK, or
        anything if the capture lost that): a socket took the SYN, so ``s`` entered
        SYN_RECV when the SYN came.  Until an answer shows that, no state is claimed for it:
        an unanswered SYN may not have reached it (lost, dropped by a filter, a full SYN
        queue), and a RST answering the SYN comes from no socket (:meth:`_rst`)."""
        syn = conn.sides[1 - s].transitions[0]  # the peer's SEND_SYN
        conn.sides[s].feed(RECV_SYN, syn.ts_ns, syn.packet)
        self._restate(conn, s, syn.packet)

    def _met_syn(self, conn: Conn, s: int, ts_ns: int, packet: int) -> None:
        """Side ``s``, which sent a SYN of its own (a simultaneous open, states.py rule 10),
        sends a SYN-ACK (at ``ts_ns``, ``packet``): the peer's SYN reached it in SYN_SENT
        (SYN_RECV), stamped at the peer's last SYN, or, if that was captured before ``s``
        connect()ed (the SYNs crossed beyond the capture point), at the SYN-ACK it answered
        with (Linux answers at once).  If the peer's SYN-ACK was captured first and took
        ``s`` to ESTABLISHED, that came after: ``s`` passed through SYN_RECV on the way."""
        undone = self._undo_last(conn, s, RECV_SYNACK)
        side = conn.sides[s]
        syn = conn.dirs[1 - s].syn_at
        assert syn is not None  # (the peer's SYN began the connection)
        connected = side.transitions[0].packet  # (its SEND_SYN)
        if syn[1] < connected:
            syn = (undone.ts_ns, undone.packet) if undone is not None else (ts_ns, packet)
        side.feed(RECV_SYN, syn[0], syn[1], "the peer's SYN reached this socket in SYN_SENT: "
                  "simultaneous open (tcp_rcv_synsent_state_process), answered with a "
                  "SYN-ACK")
        self._restate(conn, s, syn[1])
        if undone is not None:
            side.feed(RECV_SYNACK, undone.ts_ns, undone.packet, undone.note)
            self._restate(conn, s, undone.packet)

    def _undo_last(self, conn: Conn, s: int, *events: Event) -> Transition | None:
        """Take back side ``s``'s last transition if it was one of ``events``: later evidence
        shows the segment behind it never had that effect.  The ladder's states from that
        packet on are corrected, and a TIME_WAIT it began is dropped."""
        side = conn.sides[s]
        if not side.transitions or side.transitions[-1].event not in events:
            return None
        undone = side.transitions.pop()
        side.state = undone.old
        conn.time_wait = [tw for tw in conn.time_wait if tw.side != s]
        self._restate(conn, s, undone.packet)
        return undone

    def _restate(self, conn: Conn, s: int, from_packet: int) -> None:
        """Side ``s``'s state in the ladder steps from ``from_packet`` on, as its transitions
        now stand: after the last one stamped at or before the step."""
        side = conn.sides[s]
        for step in conn.ladder:
            if step.packet >= from_packet:
                state = side.state
                for t in reversed(side.transitions):
                    if t.packet <= step.packet:
                        break
                    state = t.old
                states = list(step.states)
                states[s] = state
                step.states = (states[0], states[1])

    def _uncross(self, conn: Conn, s: int, packet: int) -> bool:
        """``s`` sends a FIN that does not ACK the peer's earlier FIN: the FINs crossed.

        ``s`` built its FIN before it processed the peer's, so it was in FIN_WAIT1, not
        ESTABLISHED, when the peer's FIN reached it: rewrite the CLOSE_WAIT we assumed
        into FIN_WAIT1 -> CLOSING at the same moment (simultaneous close, rule 2).
        """
        recv = self._undo_last(conn, s, RECV_FIN)
        if recv is None:
            return False
        side = conn.sides[s]
        side.feed(SEND_FIN, recv.ts_ns, recv.packet,
                  f"close() came before the peer's FIN arrived: this side's FIN (packet "
                  f"{packet}) does not acknowledge it")
        side.feed(RECV_FIN, recv.ts_ns, recv.packet,
                  "the FINs crossed: simultaneous close")
        self._restate(conn, s, recv.packet)
        self._expect_ack(conn, s)
        return True

    def _revoke_ack(self, conn: Conn, s: int) -> bool:
        """``s`` retransmits a FIN whose ACK we saw: that ACK never reached it (lost after
        the capture point), so undo the move it caused; the next ACK counts instead.  If
        the ACK came on the peer's FIN, that FIN was lost with it: ``s`` takes the copy
        its first ACK of it answers (:meth:`_fin_taken`)."""
        undone = self._undo_last(conn, s, RECV_ACK_OF_FIN, RECV_FIN_ACK_OF_FIN)
        if undone is None:
            return False
        d = conn.dirs[s]
        d.fin_acked_ts_ns = d.fin_acked_packet = None
        d.fin_acked_by_fin = False
        if undone.event is RECV_FIN_ACK_OF_FIN:
            conn.dirs[1 - s].fin_lost = LOST_WITH_ACK
        conn.anomaly("ACK of a FIN lost after the capture point")
        return True

    def _copy_crossed(self, conn: Conn, s: int, ts_ns: int, packet: int) -> bool:
        """``s`` sent its FIN again (``packet``) less than the round trip to it (plus a
        millisecond) after the peer's ACK of it was captured: the copy may have left before
        that ACK arrived (its retransmission timer, or a tail loss probe, fired first), so it
        does not show the ACK lost.  Whether it is so, said in a note."""
        d = conn.dirs[s]
        there = self._there(conn, s)
        if d.fin_acked_ts_ns is None or there is None \
                or ts_ns - d.fin_acked_ts_ns > there + SLACK_NS:
            return False
        conn.notes.append(f"packet {packet}: {crossed_note(packet, d.fin_acked_packet)}")
        return True

    def _ack_crossed(self, conn: Conn, s: int, ts_ns: int, packet: int, lost: int) -> None:
        """``s`` sent its FIN again (``packet``): the ACK of it in packet ``lost`` never
        reached it (:meth:`_revoke_ack`).  A later segment of the peer's that covers the
        FIN, captured less than the round trip to ``s`` (plus a millisecond) before this
        copy, may have crossed it (``s``'s timer fired before it arrived): that ACK
        counts."""
        d = conn.dirs[s]
        last, there, side = d.fin_acked_last, self._there(conn, s), conn.sides[s]
        if last is None or last[1] <= lost or there is None \
                or ts_ns - last[0] > there + SLACK_NS \
                or side.state not in (FIN_WAIT1, CLOSING) \
                or side.transitions and side.transitions[-1].packet > last[1]:
            return
        d.fin_acked_ts_ns, d.fin_acked_packet, d.fin_acked_span, d.fin_acked_by_fin = last
        note = crossed_note(packet, last[1])
        side.feed(RECV_ACK_OF_FIN, last[0], last[1], note)
        conn.notes.append(f"packet {packet}: {note}")
        self._restate(conn, s, last[1])

    @staticmethod
    def _within_rtt(conn: Conn, t: Transition, ts_ns: int) -> bool:
        """Whether ``ts_ns`` is within the handshake's round trip (plus a millisecond) of
        transition ``t``: a segment its side sent before that transition's cause reached
        it can pass the capture point that late, wherever the capture point is."""
        if len(conn.handshake) < 3:
            return False
        return ts_ns - t.ts_ns <= conn.handshake[2] - conn.handshake[0] + SLACK_NS

    @staticmethod
    def _there(conn: Conn, s: int) -> int | None:
        """The round trip between the capture point and side ``s`` (to it and back, with
        its turnaround; :func:`round_trip`); None without a handshake."""
        h = conn.handshake
        if len(h) < 3:
            return None
        return round_trip(h[2] - h[1] if s == conn.client else h[1] - h[0],
                          conn.dirs[s].answer_ns)

    def _sending(self, conn: Conn, s: int, ts_ns: int) -> bool:
        """Whether ``s`` sent new data less than a round trip of the whole path (to the
        peer and back, then to ``s`` and back, plus a millisecond) before ``ts_ns``: still
        sending when the peer sent what reached it by then.  Unsent data may have been
        queued behind what it sent (its window or congestion window full); with none, a
        FIN goes out at close() whatever those windows (``tcp_cwnd_test``)."""
        sent, there = conn.dirs[s].next_ts_ns, (self._there(conn, 0), self._there(conn, 1))
        return sent is not None and None not in there \
            and ts_ns - sent <= there[0] + there[1] + SLACK_NS  # type: ignore[operator]

    def _expect_ack(self, conn: Conn, s: int) -> None:
        """``s``, in FIN_WAIT1 or FIN_WAIT2, takes the peer's FIN: it ACKs it at once
        (``tcp_fin``: ``tcp_send_ack``), so its ACK is due at the capture point a round
        trip to ``s`` (plus a millisecond) after the FIN passed it."""
        d = conn.dirs[1 - s]
        there = self._there(conn, s)
        if there is not None and d.fin_ts_ns is not None and not d.fin_answered:
            d.ack_due_ns = d.fin_ts_ns + there + SLACK_NS

    def _delayed_ack_overdue(self, conn: Conn, s: int, packet: int, ts_ns: int) -> None:
        """The peer sends its FIN again (``packet``), and ``s``, which we had take the first
        in ESTABLISHED, has sent nothing that ACKs it.  Such a side delays that ACK, but no
        more than ``TCP_DELACK_MAX`` (``tcp_fin``: pingpong mode), so it was due at the
        capture point a round trip to ``s`` plus 200 ms (plus a millisecond) after the FIN.
        A copy sent later shows the peer got no ACK either, so the missing ACK is not one
        the capture point failed to see: past that time, the FIN is overdue
        (:meth:`_ack_overdue`).  (Without the copy, the missing ACK alone would show
        nothing: a capture of one direction sees no ACK at all.)"""
        d = conn.dirs[1 - s]
        took = self._fin_receipt(conn.sides[s])
        there = self._there(conn, s)
        if took is not None and took.old is ESTABLISHED and there is not None \
                and d.fin_ts_ns is not None \
                and ts_ns - d.fin_ts_ns > there + DELACK_MAX_NS + SLACK_NS:
            self._ack_overdue(conn, s, packet, ts_ns, delayed=True)

    def _ack_overdue(self, conn: Conn, s: int, packet: int | None, ts_ns: int,
                     stale: bool = False, ack: int | None = None,
                     delayed: bool = False, sack: int | None = None) -> None:
        """``s`` took the peer's FIN in FIN_WAIT1 or FIN_WAIT2 (``delayed``: in ESTABLISHED,
        :meth:`_delayed_ack_overdue`) and has not ACKed it, and ``packet`` came after that
        ACK was due (None: the capture went on past it); or (``stale``) ``s`` sent
        ``packet``, in any state, after the FIN would have reached it, or as it arrived
        repeating its ACK, or SACKing the FIN (``sack``: the SACK block's right edge), and
        its ACK field ``ack`` (its rcv_nxt) leaves the FIN out.  The FIN never reached it
        (lost after the capture point, or held behind data that was; a SACK shows it
        held).  Its receipt is taken back (an ACK of its own FIN since still counts); its
        first ACK of the FIN answers a later copy.  Its rcv_nxt is the FIN's number, or
        ``ack`` if short of that; RSTs are judged again at it."""
        d = conn.dirs[1 - s]
        side = conn.sides[s]
        took = self._fin_receipt(side)
        owed_at_once = (ESTABLISHED,) if delayed else (FIN_WAIT1, FIN_WAIT2)
        if took is None or not stale and took.old not in owed_at_once or d.fin_seq is None:
            return
        hole = ack if ack is not None and seq_after(d.fin_seq, ack) else None
        rcv_nxt = d.fin_seq if hole is None else hole
        # an RST we had it take since: judged again at the rcv_nxt it had without the FIN
        rst = dropped = None
        if stale and side.transitions[-1].event is RECV_RST and all(
                t.event in _RECEIPTS for t in side.transitions[
                    side.transitions.index(took):-1]):
            rst = self._undo_last(conn, s, RECV_RST)
        if not self._move_fin_receipt(conn, s, None, ""):
            if rst is not None:
                side.feed(RECV_RST, rst.ts_ns, rst.packet, rst.note, rst.inferred)
                self._restate(conn, s, rst.packet)
            return
        if rst is not None:
            record = self._rst_record(conn, s, rst)
            if record is not None and (record.seq == rcv_nxt or self._orphan_takes(
                    conn, 1 - s, record.seq, rcv_nxt)):
                side.feed(RECV_RST, rst.ts_ns, rst.packet, rst.note, rst.inferred)
                self._restate(conn, s, rst.packet)
            elif record is not None:
                dropped = record
                self._not_taken(conn, record, f"the FIN before it (packet {took.packet}) "
                                              f"never reached the receiver, whose rcv_nxt "
                                              f"was short of what came before the RST (in "
                                              f"its window, such an RST is answered with a "
                                              f"challenge ACK)")
        elif stale and packet is not None:
            self._retake_rst(conn, s, took, rcv_nxt, packet, ts_ns)
        if hole is not None:
            self._hole(conn, s, hole)
        ms = f"{(ts_ns - took.ts_ns) / 1e6:.1f} ms"
        there = self._there(conn, s)
        if sack is not None:
            note = (f"the FIN reached this side out of order: packet {packet}, which it sent "
                    f"{ms} later, SACKs it (a block up to relative sequence number "
                    f"{sack - (d.isn or 0) & _M32}), and its ACK field, its rcv_nxt, is short of it: it waited "
                    f"behind data that never reached it")
        elif stale and there is not None and ts_ns - took.ts_ns <= there + SLACK_NS:
            note = (f"the FIN never reached this side in order: packet {packet}, which it "
                    f"sent as the FIN arrived, repeats the ACK field of its segment before "
                    f"it, short of the FIN: what arrived did not move its rcv_nxt")
        elif stale:
            note = (f"the FIN never reached this side: packet {packet}, which it sent {ms} "
                    f"later, after the FIN would have arrived, acknowledges only what came "
                    f"before it")
        elif delayed:
            note = (f"the FIN never reached this side: in {took.old.value} it would have "
                    f"ACKed it within 200 ms (a delayed ACK, tcp_fin: pingpong mode), and "
                    f"packet {packet}, the FIN sent again {ms} later, came before any ACK of "
                    f"it")
        else:
            after = f"packet {packet}, {ms} later, came before any" if packet is not None \
                else "the capture went on past when it was due with no"
            note = (f"the FIN never reached this side: in {took.old.value} it would have "
                    f"ACKed it at once, and {after} ACK of it")
        if sack is None:
            note += " (lost after the capture point, or held behind data that was)"
        if not stale and not self._near(conn, s):
            note += "; or its ACK was lost before the capture point"
        d.fin_lost = f"packet {took.packet}: {note}"
        if sack is None:
            conn.anomaly(FIN_LOST)
        else:
            d.fin_held = packet
            conn.anomaly(DATA_BEFORE_FIN_LOST)
        conn.notes.append(d.fin_lost)
        if dropped is not None:
            self._rejudge(conn, dropped)

    def _retake_rst(self, conn: Conn, s: int, fin: Transition, rcv_nxt: int, packet: int,
                    ts_ns: int) -> None:
        """``s``, whose rcv_nxt the peer's FIN (taken back, ``fin``) never moved, took the
        peer's first RST at that number after the FIN, which we had it not take: unless it
        sent something since, later than a round trip (plus a millisecond) after it; this
        segment (``packet``), sent within that, crossed it."""
        there = self._there(conn, s)
        record = next((r for r in conn.rsts if r.sender != s and r.ts_ns > fin.ts_ns
                       and not r.acceptable and (r.seq == rcv_nxt or self._orphan_takes(
                           conn, 1 - s, r.seq, rcv_nxt))), None)
        if record is None or there is None or ts_ns > record.ts_ns + there + SLACK_NS \
                or conn.sides[s].state in (CLOSED, LISTEN) \
                or conn.sides[s].transitions[-1].packet > record.packet:
            return
        conn.sides[s].feed(RECV_RST, record.ts_ns, record.packet)
        self._restate(conn, s, record.packet)
        record.acceptable = True
        taken = (f"at the receiver's rcv_nxt, which its packet {packet} showed short of the "
                 f"peer's FIN (packet {fin.packet}): taken")
        conn.notes.append(f"packet {record.packet}: the RST was {taken}")
        self._renote(conn, record, record.note[:-len(IGNORED_NOTE)]
                     if record.note.endswith(IGNORED_NOTE) else f"RST {taken}")
        self._rejudge(conn, record)

    @staticmethod
    def _rcv_nxt(conn: Conn, s: int) -> int | None:
        """The rcv_nxt of ``s``'s peer for what ``s`` sent: all of it; the FIN's own number
        if that FIN never reached it; the ACK field that showed it short of that."""
        ds = conn.dirs[s]
        if ds.rcv_nxt_shown is not None:
            return ds.rcv_nxt_shown
        return ds.fin_seq if ds.fin_lost else ds.next_seq

    def _at_rcv_nxt(self, conn: Conn, s: int, seq: int) -> bool:
        """Whether an RST of ``s``'s numbered ``seq`` is at its receiver's rcv_nxt
        (:meth:`_rcv_nxt`), or one less once the receiver has the FIN
        (``tcp_reset_check``), or else taken by an orphaned FIN_WAIT2
        (:meth:`_orphan_takes`)."""
        expected = self._rcv_nxt(conn, s)
        return expected is None or seq == expected or seq == conn.dirs[s].fin_seq \
            and conn.sides[1 - s].state in (CLOSE_WAIT, LAST_ACK, CLOSING) \
            or self._orphan_takes(conn, s, seq, expected)

    @staticmethod
    def _orphan_takes(conn: Conn, s: int, seq: int, rcv_nxt: int | None) -> bool:
        """Whether the peer of ``s``, in FIN_WAIT2, takes an RST of ``s``'s numbered
        ``seq``, past its ``rcv_nxt`` but within the window it last advertised: after
        close() it is a timewait mini-socket, which takes any RST in its window
        (:data:`ORPHAN_WINDOW_NOTE`).  The capture cannot tell close() from shutdown();
        a side seen answering such an RST with a challenge ACK (a full socket,
        ``full_socket``) takes none."""
        r = 1 - s
        dr = conn.dirs[r]
        if conn.sides[r].state is not FIN_WAIT2 or dr.full_socket or rcv_nxt is None \
                or dr.last_window < 0:
            return False
        scale = dr.wscale if dr.wscale is not None and conn.dirs[s].wscale is not None else 0
        return seq_after(seq, rcv_nxt) \
            and seq_geq((rcv_nxt + (dr.last_window << scale)) & _M32, seq)

    def _renote(self, conn: Conn, record: RstRecord, note: str) -> None:
        """``record``'s note, its sender's transition at it and the ladder's, as later
        evidence has it."""
        sender = conn.sides[record.sender].transitions
        for i, t in enumerate(sender):
            if t.packet == record.packet and t.note == record.note:
                sender[i] = t._replace(note=note)
        record.note = note
        self._ladder_note(conn, record.packet, note)

    def _rejudge(self, conn: Conn, record: RstRecord) -> None:
        """The RSTs ``record``'s sender sent after it, judged again now that we know
        whether its receiver took ``record``: one reaching it CLOSED finds no socket
        (:data:`TO_CLOSED_NOTE`); else the first at its rcv_nxt closes it; any other is out
        of window."""
        r = 1 - record.sender
        side = conn.sides[r]
        for rec in conn.rsts:
            if rec.sender != record.sender or rec.packet <= record.packet or rec.acceptable:
                continue
            closed = side.state is CLOSED
            if not closed and self._at_rcv_nxt(conn, rec.sender, rec.seq) \
                    and side.transitions[-1].packet <= rec.packet:
                side.feed(RECV_RST, rec.ts_ns, rec.packet)
                self._restate(conn, r, rec.packet)
                rec.acceptable, rec.to_closed = True, False
                self._renote(conn, rec, next(
                    (rec.note[:-len(x)] for x in (IGNORED_NOTE, TO_CLOSED_SUFFIX)
                     if rec.note.endswith(x)),
                    f"RST at the receiver's rcv_nxt: taken (the RST before it, packet "
                    f"{record.packet}, was not)"))
                continue
            for whole, suffix in ((OUT_OF_WINDOW_NOTE, IGNORED_NOTE),
                                  (TO_CLOSED_NOTE, TO_CLOSED_SUFFIX)):
                whole_to, suffix_to = (TO_CLOSED_NOTE, TO_CLOSED_SUFFIX) if closed \
                    else (OUT_OF_WINDOW_NOTE, IGNORED_NOTE)
                if rec.note == whole:
                    self._renote(conn, rec, whole_to)
                elif rec.note.endswith(suffix):
                    self._renote(conn, rec, rec.note[:-len(suffix)] + suffix_to)
                else:
                    continue
                rec.to_closed = closed
                if not closed:
                    conn.anomaly("RST out of window")
                break
        if all(r.acceptable or r.to_closed for r in conn.rsts) \
                and "RST out of window" in conn.anomalies:
            conn.anomalies.remove("RST out of window")

    @staticmethod
    def _ladder_note(conn: Conn, packet: int, note: str) -> None:
        """The ladder's note on ``packet``, as later evidence has it."""
        for step in conn.ladder:
            if step.packet == packet:
                step.note = note

    @staticmethod
    def _rst_record(conn: Conn, s: int, took: Transition) -> RstRecord | None:
        """The peer's RST behind side ``s``'s transition ``took`` (stamped at it, or at a
        segment of ``s``'s that crossed it, or at a later one that crossed it too): the last
        it took at or before that packet."""
        return next((r for r in reversed(conn.rsts)
                     if r.packet <= took.packet and r.sender != s and r.acceptable), None)

    def _not_taken(self, conn: Conn, record: RstRecord, why: str) -> None:
        """An RST we had its receiver take was not at its rcv_nxt: it did not take it."""
        record.acceptable = False
        self._renote(conn, record, f"RST not at the receiver's rcv_nxt, so not taken (RFC "
                                   f"5961 section 3.2): {why}")
        conn.anomaly("RST out of window")

    def _challenged(self, conn: Conn, s: int, packet: int, ts_ns: int, seq: int,
                    ack: int) -> None:
        """``s``, which we had take the peer's RST, sends a pure ACK at its next sequence
        number a round trip to it after the RST (within a millisecond), acknowledging
        nothing new since its segment before the RST, short of the RST's number: the
        challenge ACK a socket answers an RST in its window but not at its rcv_nxt with
        (RFC 5961 section 3.2).  It never took the RST.  Its rcv_nxt, the ACK field, shows
        what the peer sent from there on lost after the capture point: the ACK of its own
        FIN, if that segment held the first byte missing, and the peer's FIN are taken
        back, and an RST must carry that number to be taken."""
        took = conn.sides[s].transitions[-1]
        record = self._rst_record(conn, s, took)
        there = self._there(conn, s)
        ds, dp = conn.dirs[s], conn.dirs[1 - s]
        if record is None or there is None or ack != record.peer_ack \
                or seq_geq(ack, record.seq) or seq != ds.next_seq \
                or abs(ts_ns - record.ts_ns - there) > SLACK_NS:
            return
        self._undo_last(conn, s, RECV_RST)
        ds.full_socket = True
        self._not_taken(conn, record, f"the receiver answered it with a challenge ACK "
                                      f"(packet {packet}, tcp_send_challenge_ack), whose "
                                      f"ACK field, its rcv_nxt, shows what the RST's sender "
                                      f"sent from there on lost after the capture point")
        if dp.fin_seq is not None and seq_geq(dp.fin_seq, ack) and not dp.fin_lost:
            self._ack_overdue(conn, s, packet, ts_ns, stale=True, ack=ack)
        self._hole(conn, s, ack)
        self._rejudge(conn, record)

    def _hole(self, conn: Conn, s: int, rcv_nxt: int) -> None:
        """``s``'s rcv_nxt, as it showed it, is short of what the peer sent: the segment
        there never reached it (lost after the capture point).  If that segment ACKed its
        FIN, that ACK is taken back; an RST must carry that number to be taken (until it
        ACKs past it, or the peer sends it again)."""
        conn.dirs[1 - s].rcv_nxt_shown = rcv_nxt
        span, sacked = conn.dirs[s].fin_acked_span, conn.dirs[s].sacked
        if span is not None and seq_geq(rcv_nxt, span[0]) and seq_after(span[1], rcv_nxt) \
                and not (sacked is not None and seq_after(sacked, span[1])):
            # (unless it SACKed what came after that segment, with the same ACK)
            self._revoke_ack(conn, s)

    def _near(self, conn: Conn, s: int) -> bool:
        """Whether the capture point is near side ``s`` (what it sends shows up at once):
        its round trip is a fifth of the two sides' sum or less (as results.vantage has
        it)."""
        there, peer = self._there(conn, s), self._there(conn, 1 - s)
        return there is not None and peer is not None and there <= 0.2 * (there + peer)

    @staticmethod
    def _fin_receipt(side: SideMachine) -> Transition | None:
        for t in reversed(side.transitions):
            if t.event is RECV_FIN or t.event is RECV_FIN_ACK_OF_FIN:
                return t
        return None

    def _fin_taken(self, conn: Conn, s: int, ts_ns: int, packet: int) -> None:
        """``s`` acknowledges the peer's FIN for the first time, at ``ts_ns``.  If its
        receipt was taken back (``fin_lost``: its ACK was overdue, :meth:`_ack_overdue`, or
        the segment was lost whole, :meth:`_revoke_ack`), it took a later copy: the last
        one the peer sent (the FIN, or data before it, again) that this ACK can answer,
        captured before it less a round trip to ``s`` (plus a millisecond; none where the
        capture point is near ``s``: the handshake's turnaround, which that round trip
        counts, can be milliseconds).  With no such copy, it had taken the first after
        all, and ACKed it late; or, if it SACKed the FIN (``fin_held``), it took it when
        what was missing before it came, not captured again, at the latest at this ACK
        (``packet``), which it sends at once as the hole fills."""
        dr = conn.dirs[1 - s]
        lost, dr.fin_lost = dr.fin_lost, ""
        held, dr.fin_held = dr.fin_held, None
        if not lost or dr.fin_ts_ns is None or dr.fin_packet is None:
            return
        there = 0 if self._near(conn, s) else self._there(conn, s) or 0
        copies = [c for c in dr.fin_retx + (dr.data_resent or [])
                  if c[1] > dr.fin_packet and c[0] <= ts_ns - there + SLACK_NS]
        late = f"{(ts_ns - dr.fin_ts_ns) / 1e6:.1f} ms"
        if lost != LOST_WITH_ACK:
            # what _ack_overdue said gives way to what this ACK tells
            conn.notes.remove(lost)
            if held is None and conn.dirs[s].fin_lost in ("", LOST_WITH_ACK):
                conn.anomalies.remove(FIN_LOST)  # (if not said of the other FIN)
            if not copies and held is not None:
                self._move_fin_receipt(conn, s, (ts_ns, packet), (
                    f"the peer's FIN (packet {dr.fin_packet}) reached this side out of "
                    f"order (packet {held} SACKs it), behind data that then came with no "
                    f"copy captured (late, or sent again and not captured): taken at the "
                    f"latest here, its ACK of the FIN, sent at once as the hole filled"))
                return
            if not copies:
                # no copy for it to answer: it had taken the first, and ACKed it late
                self._move_fin_receipt(conn, s, (dr.fin_ts_ns, dr.fin_packet),
                                       f"its ACK of this FIN came {late} after it: late")
                return
        if not copies:
            return
        at = max(copies, key=lambda c: c[1])
        is_fin = at in dr.fin_retx
        owed = "at once" if conn.sides[s].state in (FIN_WAIT1, FIN_WAIT2) else \
            "within 200 ms as a delayed ACK"
        note = (f"the peer's FIN reached this side only with the copy in packet {at[1]}: "
                f"its first (packet {dr.fin_packet}) was lost after the capture point"
                + (f" {LOST_WITH_ACK}" if lost == LOST_WITH_ACK else
                   ("" if is_fin else ", or held behind data that was")
                   + f" (this side would have ACKed it {owed}; its first ACK of it came "
                     f"{late} after it)"))
        if held is not None:
            note = (f"the peer's FIN (packet {dr.fin_packet}) reached this side out of "
                    f"order, behind data lost after the capture point (packet {held} SACKs "
                    f"it): taken when packet {at[1]}, sent again, filled the hole (its "
                    f"first ACK of the FIN came {late} after the FIN)")
        if self._move_fin_receipt(conn, s, at, note):
            conn.anomaly(FIN_LOST if is_fin and held is None else DATA_BEFORE_FIN_LOST)
            if held is None and not self._near(conn, s):
                note += ("; or its ACK was lost before the capture point, and it had taken "
                         "the first")
            conn.notes.append(f"packet {at[1]}: {note}")
            self._ladder_note(conn, at[1], note)

    def _undo_fin_receipt(self, conn: Conn, s: int) -> list[Transition] | None:
        """Take back ``s``'s receipt of the peer's FIN and the receipts since (the ACK of its
        own FIN that ended a CLOSING); what was taken back, None if something else came
        since.  An empty list: it had not taken it."""
        side = conn.sides[s]
        took = [i for i, t in enumerate(side.transitions)
                if t.event is RECV_FIN or t.event is RECV_FIN_ACK_OF_FIN]
        if not took:
            return []
        undone = side.transitions[took[-1]:]
        if any(t.event not in _RECEIPTS for t in undone):
            return None
        while len(side.transitions) > took[-1]:
            self._undo_last(conn, s, *_RECEIPTS)
        return undone

    def _untake_fin(self, conn: Conn, s: int) -> bool:
        """``s`` shows it never had the peer's FIN, nor anything the peer sent after it:
        take back its receipt and the receipts since."""
        return bool(self._undo_fin_receipt(conn, s))

    def _reset_before_fin(self, conn: Conn, s: int, packet: int) -> None:
        """``s`` sends an RST+ACK (``packet``), its socket's own reset
        (tcp_send_active_reset), whose ACK field (its rcv_nxt) leaves out the peer's FIN,
        after a bare RST we read as its socket gone once it had taken that FIN: the
        socket never had the FIN.  It had reset just before the FIN came: tcp_disconnect
        takes the socket out of the lookup table (CLOSED) before it sends its RST, so a
        segment arriving between the two finds no socket, and the reply path's bare RST
        answering it leaves first.  The side goes from the state it was in before the FIN
        to CLOSED, still at the bare RST (an upper bound)."""
        side = conn.sides[s]
        last = side.transitions[-1] if side.transitions else None
        gone = next((r for r in conn.rsts if r.sender == s and r.bare), None)
        took = [i for i, t in enumerate(side.transitions)
                if t.event is RECV_FIN or t.event is RECV_FIN_ACK_OF_FIN]
        if last is None or last.event is not SEND_RST or gone is None \
                or gone.packet != last.packet or not took \
                or any(t.event not in _RECEIPTS for t in side.transitions[took[-1]:-1]):
            return
        self._undo_last(conn, s, SEND_RST)
        self._undo_fin_receipt(conn, s)
        note = reset_before_fin_note(packet)
        side.feed(SEND_RST, last.ts_ns, last.packet, note, True)
        self._restate(conn, s, side.transitions[-1].packet)
        conn.notes[:] = [n for n in conn.notes if n != f"packet {gone.packet}: {gone.note}"]
        conn.notes.append(f"packet {gone.packet}: {note}")
        gone.note = note
        self._ladder_note(conn, gone.packet, note)

    def _move_fin_receipt(self, conn: Conn, s: int, at: tuple[int, int] | None,
                          note: str) -> bool:
        """``s`` took the peer's FIN at a later copy (``at``: its time and packet), or not
        at all (None), not where we have it (the first was lost): its receipts from there
        on are fed again in order, the FIN's at ``at`` (the ACK of its own FIN, on the
        FIN's segment or after it, still counts)."""
        side = conn.sides[s]
        undone = self._undo_fin_receipt(conn, s)
        if undone is None or at is None and not undone:
            return False
        own = conn.dirs[s]
        close = side.transitions[-1] if side.transitions else None
        if undone and close is not None and close.event is SEND_FIN \
                and close.packet == undone[0].packet and own.fin_ts_ns is not None \
                and own.fin_packet is not None and own.fin_packet != close.packet:
            # its close() was stamped at the peer's FIN, which we had it take in FIN_WAIT1
            # (_uncross): that FIN never came, so its own FIN bounds it
            side.transitions.pop()
            side.state = close.old
            held = held_fin_note(own)
            side.feed(SEND_FIN, own.fin_ts_ns, own.fin_packet, held, bool(held))
            self._restate(conn, s, close.packet)
        if at is not None:
            # (receipts since the copy, or on it, the FIN's taken back already: fed again)
            while side.transitions and side.transitions[-1].event is RECV_ACK_OF_FIN \
                    and side.transitions[-1].packet >= at[1]:
                undone.insert(0, side.transitions[-1])
                self._undo_last(conn, s, RECV_ACK_OF_FIN)
        events = [(t.packet, t.ts_ns, RECV_ACK_OF_FIN, "") for t in undone
                  if t.event is not RECV_FIN]
        if at is not None:
            events.append((at[1], at[0], RECV_FIN, note))
        events.sort(key=lambda e: e[0])
        for i, (packet, ts_ns, event, text) in enumerate(events):
            if i + 1 < len(events) and events[i + 1][0] == packet:
                continue  # (the FIN and the ACK of ours in one segment: fed as one, below)
            if i and events[i - 1][0] == packet:
                if side.state is FIN_WAIT1:
                    side.feed(RECV_FIN_ACK_OF_FIN, ts_ns, packet, text)
                    continue
                side.feed(RECV_ACK_OF_FIN, ts_ns, packet)
            side.feed(event, ts_ns, packet, text)
        self._restate(conn, s, min([t.packet for t in undone] + [e[0] for e in events]))
        return True

    def _data_ack_lost(self, conn: Conn, s: int, fin: Transition, packet: int,
                       ts_ns: int) -> bool:
        """``s`` answers the peer's FIN (``fin``, its receipt already taken back), which came
        past its rcv_nxt, with a bare RST (``packet``): it had called close().  The segment
        that took it to FIN_WAIT2 before brought data too: after close() that data would
        have aborted it at once (``tcp_rcv_state_process``: TCPAbortOnData), its RST at the
        capture point within the round trip to it (plus a millisecond).  If this RST came
        later, that segment never reached it (lost after the capture point): it went to
        FIN_WAIT2 with the FIN's ACK instead, and the FIN aborted it (what
        :data:`ABORT_ON_FIN_NOTE` says).  Whether it did so."""
        side, ds = conn.sides[s], conn.dirs[s]
        fw2 = side.transitions[-1] if side.transitions else None
        span, there = ds.fin_acked_span, self._there(conn, s)
        if fw2 is None or fw2.event is not RECV_ACK_OF_FIN or fw2.packet != ds.fin_acked_packet \
                or span is None or span[0] == span[1] or there is None \
                or ts_ns - fw2.ts_ns <= there + SLACK_NS or not self._undo_last(
                    conn, s, RECV_ACK_OF_FIN):
            return False
        side.feed(RECV_ACK_OF_FIN, fin.ts_ns, fin.packet,
                  "the ACK of its FIN; the FIN with it, past its rcv_nxt, aborts it")
        self._restate(conn, s, fw2.packet)
        fin_seq = conn.dirs[1 - s].fin_seq
        ds.fin_acked_ts_ns, ds.fin_acked_packet, ds.fin_acked_by_fin = fin.ts_ns, fin.packet, True
        ds.fin_acked_span = None if fin_seq is None else (fin_seq, (fin_seq + 1) & _M32)
        note = (f"packet {fw2.packet}, which brought data and ACKed this side's FIN, never "
                f"reached it (lost after the capture point): after close() that data would "
                f"have aborted it at once (TCPAbortOnData), its RST here within "
                f"{(there + SLACK_NS) / 1e6:.1f} ms, and this RST came "
                f"{(ts_ns - fw2.ts_ns) / 1e6:.1f} ms later, answering the FIN (packet "
                f"{fin.packet})")
        if not self._near(conn, s):
            note += "; or it did abort there, and that RST was lost before the capture point"
        conn.anomaly(DATA_BEFORE_FIN_LOST)
        conn.notes.append(f"packet {packet}: {note}")
        return True

    def _revoke_receipt(self, conn: Conn, s: int) -> bool:
        """``s`` answers with a bare RST (the reply path): it had no socket to take the
        last segment, so the transition we assumed on receipt never happened (rule 7)."""
        return self._undo_last(conn, s, RECV_FIN, RECV_FIN_ACK_OF_FIN) is not None

    def _reuse_owner(self, conn: Conn, old: Conn, s: int, flags: int, ack: int,
                     packet: int) -> Conn:
        """While a SYN on a TIME_WAIT 4-tuple awaits its answer, which incarnation a
        segment of ``conn``'s (from ``s``) belongs to.  The TIME_WAIT side's ACK answers
        the SYN with the old connection's numbers (``tcp_timewait_state_process``,
        TCP_TW_ACK: the SYN rejected); the SYN's sender, in SYN_SENT, answers that ACK,
        which does not acknowledge its SYN, with a bare RST numbered as its ACK field
        (``tcp_rcv_synsent_state_process``), and stays in SYN_SENT: that RST is the old
        connection's too, and at the TIME_WAIT socket's rcv_nxt it kills it
        (:meth:`_old_segment`).  Anything else decides the reuse for the new one."""
        new_syn_isn = conn.dirs[conn.client if conn.client is not None else 0].isn
        so = s if old.addrs[0] == conn.addrs[0] else 1 - s  # the sender's index in ``old``
        if old.challenger is not None:
            # the SYN's receiver, still in a synchronized state: its challenge ACK (the old
            # connection's numbers, tcp_send_challenge_ack), then the bare RST of the SYN's
            # sender answering it, are the old connection's; a SYN-ACK shows its socket
            # gone (a listener took the SYN); anything else decides for the new one
            acks_syn = new_syn_isn is not None and ack == (new_syn_isn + 1) & _M32
            if so != old.challenger and flags & (SYN | ACK | RST) == SYN:
                return conn  # (the SYN, or a copy)
            if so == old.challenger and flags & (ACK | RST | SYN | FIN) == ACK \
                    and not acks_syn:
                return old
            if so != old.challenger and flags & (ACK | RST | SYN) == RST \
                    and old.dirs[old.challenger].last_word & ACK \
                    and old.dirs[old.challenger].last_ts_ns > conn.first_ts_ns:
                return old
            if so == old.challenger and flags & (SYN | ACK) == SYN | ACK and acks_syn:
                side = old.sides[so]
                side.feed(REUSED, conn.first_ts_ns, conn.first_packet,
                          challenger_gone_note(side.state), True)
            self._reuse_decided(old, conn)
            return conn
        if flags & RST and new_syn_isn is not None and flags & ACK \
                and ack == (new_syn_isn + 1) & _M32:
            self._reuse_outcome(old, conn, "RST", None)
            return conn
        for tw in old.time_wait:
            outcome = tw.reuse.get("outcome") if tw.reuse else None
            if outcome == "pending" and tw.side == so and flags & (ACK | RST | SYN) == ACK:
                tw.reuse["outcome"] = "ACK"  # type: ignore[index]
                old.notes.append(f"packet {packet}: the TIME_WAIT side answered the new "
                                 f"SYN with an ACK of the old connection (SYN rejected)")
                return old
            if outcome in ("pending", "ACK") and tw.side != so and flags & (RST | SYN) == RST:
                return old
        if any(tw.reuse and tw.reuse.get("outcome") == "ACK" for tw in old.time_wait):
            self._reuse_decided(old, conn)
        return conn

    def _old_segment(self, old: Conn, new: Conn, s: int, packet: int, flags: int) -> None:
        """``old`` took a segment of ``new``'s 4-tuple while its reuse by ``new`` was
        decided (:meth:`_reuse_owner`): the ACK of the SYN's receiver (its TIME_WAIT
        socket's, or the challenge ACK of its socket still open, RFC 5961 section 4.2),
        noted; or the RST answering it, which decides the reuse (the SYN is sent again).
        That RST is the new incarnation's, sent by its SYN_SENT socket (which stays there),
        and listed there.  At the old socket's rcv_nxt it killed a TIME_WAIT (RFC 1337
        assassination: the TIME_WAIT ends as at a reuse, not as an RST close of the old
        connection), or closed the socket still open (what :meth:`_rst` made of it)."""
        challenged = old.challenger is not None
        if not flags & RST:
            self._ladder_note(old, packet, CHALLENGE_ACK_NOTE if challenged else
                              "ACK for the old connection: new SYN rejected")
            return
        record = old.rsts.pop() if old.rsts and old.rsts[-1].packet == packet else None
        side = old.sides[1 - s]
        took = side.transitions[-1] if side.transitions \
            and side.transitions[-1].packet == packet else None
        ack = "the challenge ACK" if challenged else "the TIME_WAIT side's ACK"
        note = (f"the new SYN's sender answered {ack}, which did not acknowledge its SYN, "
                f"staying in SYN_SENT (tcp_rcv_synsent_state_process)")
        if took is not None and took.old is TIME_WAIT:
            side.transitions.pop()
            side.state = TIME_WAIT
            side.feed(REUSED, took.ts_ns, packet, (
                f"TIME_WAIT ended: killed by the RST (packet {packet}) the new SYN's sender "
                f"answered its ACK with, at its rcv_nxt (RFC 1337 assassination, "
                f"tcp_rfc1337=0)"))
            for tw in old.time_wait:
                if tw.side == 1 - s and tw.reuse:
                    tw.reuse["ended_time_wait"] = True
                    tw.reuse["killed_by_rst"] = packet
        elif took is not None and challenged and took.event is RECV_RST:
            side.transitions.pop()
            side.state = took.old
            side.feed(RECV_RST, took.ts_ns, packet,
                      f"reset by the RST (packet {packet}) the new SYN's sender answered its "
                      f"challenge ACK with, at its rcv_nxt")
        else:
            note += f"; not at the {'old' if challenged else 'TIME_WAIT'} socket's rcv_nxt, " \
                    f"which ignored it"
        self._ladder_note(old, packet, note)
        if record is not None:
            record.note, record.to_closed = note, False
            record.sender = s if new.addrs[0] == old.addrs[0] else 1 - s
            new.rsts.append(record)
        self._reuse_decided(old, new)

    def _reuse_decided(self, old: Conn, new: Conn) -> None:
        """The reuse of ``old``'s 4-tuple by ``new`` is decided: ``old`` is done."""
        if new.pending_old is old:
            new.pending_old = None
            self._finish(old)

    def _reuse_outcome(self, old: Conn, new: Conn, outcome: str, isn: int | None) -> None:
        for tw in old.time_wait:
            if tw.reuse and tw.reuse.get("outcome") == "pending":
                tw.reuse["outcome"] = outcome
                side = old.sides[tw.side]
                if outcome == "SYN-ACK" and side.state is TIME_WAIT:
                    pkt = int(tw.reuse["packet"])  # type: ignore[call-overload]
                    ts = new.first_ts_ns
                    how = ("this side connect()ed again from its TIME_WAIT 4-tuple "
                           "(tcp_tw_reuse: __inet_check_established -> tcp_twsk_unique)"
                           if tw.reuse.get("by") == "TIME_WAIT side" else
                           "the peer's new SYN was accepted (tcp_timewait_state_process -> "
                           "TCP_TW_SYN)")
                    side.feed(REUSED, ts, pkt, f"TIME_WAIT ended: {how}")
                    tw.reuse["ended_time_wait"] = True
                    same = new.addrs[0] == old.addrs[0]
                    isn_src = new.dirs[tw.side if same else 1 - tw.side].isn
                    tw_snd_nxt = old.dirs[tw.side].next_seq
                    if isn_src is not None and tw_snd_nxt is not None:
                        derived = (tw_snd_nxt + 65537) & _M32 or 1
                        tw.reuse["isn_from_time_wait"] = isn_src == derived
                        if isn_src == derived:
                            new.reuse_isn_note = (
                                "the new ISN is the old snd_nxt + 65537: the kernel "
                                "derived it from the TIME_WAIT socket")
        if outcome != "pending":
            self._reuse_decided(old, new)

    def _rst(self, conn: Conn, s: int, packet: int, ts_ns: int, flags: int, seq: int,
             ack: int) -> str:
        r = 1 - s
        ds, dr = conn.dirs[s], conn.dirs[r]
        side_s, side_r = conn.sides[s], conn.sides[r]
        # The receiver takes an RST at its rcv_nxt exactly (RFC 5961 section 3.2): all the
        # sender sent (next_seq already includes this RST's own seq), or, once it has taken
        # the sender's FIN (in CLOSE_WAIT, LAST_ACK or CLOSING), one less: the FIN's own
        # number (tcp_reset_check), that of a reply-path RST answering a segment sent
        # before the FIN arrived.  If the FIN never reached it (``fin_lost``), its rcv_nxt
        # is the FIN's number; if an ACK of its showed it short of that, that ACK field.
        acceptable = True
        note = ""
        if side_r.state is SYN_SENT:
            acceptable = bool(flags & ACK) and dr.isn is not None and \
                ack == (dr.isn + 1) & _M32
        else:
            acceptable = self._at_rcv_nxt(conn, s, seq)
        orphan = acceptable and self._orphan_takes(conn, s, seq, self._rcv_nxt(conn, s))
        # (closed by an earlier RST of the sender's: this one repeats it)
        to_closed = side_r.state is CLOSED and bool(side_r.transitions) \
            and side_r.transitions[-1].event in (RECV_RST, SEND_RST)
        if to_closed:
            acceptable, note = False, TO_CLOSED_NOTE
        elif not acceptable:
            note = OUT_OF_WINDOW_NOTE
            conn.anomaly("RST out of window")
        bare = not flags & ACK
        inferred = False
        # (numbered as the ACK field of the peer's last segment: the reply path's answer)
        answers = bare and dr.packets > 0 and dr.last_word & ACK != 0 and seq == dr.last_ackno
        # (the state it was in: before the peer's RST, if we had it take one)
        was = side_s.transitions[-1].old if side_s.state is CLOSED and side_s.transitions \
            and side_s.transitions[-1].event is RECV_RST else side_s.state
        if bare and was is FIN_WAIT1 and ds.fin_seq is not None \
                and seq_after((ds.fin_seq + 1) & _M32, seq) and (
                    seq == dr.prev_ackno or side_s.state is CLOSED
                    and (ds.isn is None or seq_after(seq, ds.isn))):
            # (numbered short of the end of its FIN, as the ACK field of the peer's segment
            # before its last: that segment found it after close(), and the last came
            # between; or, from a side we had closed at the peer's RST, as that of any
            # segment the peer sent before it had the FIN (an ACK field only grows): the
            # side's own answer, sent before the peer's RST reached it, below)
            answers = True
        if side_s.state is CLOSED and (not bare or answers and ds.fin_seq is not None and (
                side_s.transitions and self._within_rtt(conn, side_s.transitions[-1], ts_ns))) \
                and self._undo_last(conn, s, RECV_RST):
            # its own reset, or, within a round trip, its reply path's answer to the peer's
            # data after its close() (which aborts it): the socket was there, the peer's
            # RST had not reached it
            what = "a bare RST answering the peer's data after close()" if bare \
                else "an RST+ACK, the socket's own,"
            conn.notes.append(f"packet {packet}: {what} from a side we had closed at the "
                              f"peer's RST: the two RSTs crossed")
        short = not bare and dr.fin_seq is not None \
            and not seq_geq(ack, (dr.fin_seq + 1) & _M32)  # (of the peer's FIN)
        if short and side_s.state is CLOSED:
            self._reset_before_fin(conn, s, packet)
        if short and self._untake_fin(conn, s):
            # an RST+ACK is the socket's own (tcp_send_active_reset), its ACK field what it
            # had received (rcv_nxt): the peer's FIN had not reached it
            conn.notes.append(f"packet {packet}: the RST's ACK field does not cover the "
                              f"peer's FIN (packet {dr.fin_packet}): it had not "
                              f"reached this side when it reset (the FIN and the RST crossed)")
        span, there = ds.fin_acked_span, self._there(conn, s)
        if not bare and span is not None and side_s.transitions \
                and side_s.transitions[-1].packet == ds.fin_acked_packet \
                and ds.fin_acked_ts_ns is not None \
                and (span[0] != span[1] and seq_geq(ack, span[0]) and not seq_geq(ack, span[1])
                     or there is not None and ts_ns - ds.fin_acked_ts_ns < there) \
                and self._undo_last(conn, s, RECV_ACK_OF_FIN):
            # ... nor had the segment that ACKed its own FIN, if the RST's ACK field leaves
            # it out (nothing missing before it), or it came less than the round trip
            # between the capture point and this side before the RST (no FIN_WAIT2)
            conn.notes.append(f"packet {packet}: packet {ds.fin_acked_packet}, which ACKed "
                              f"this side's FIN, had not reached it when it reset (they "
                              f"crossed)")
        acked, peer_fin = ds.fin_acked_ts_ns, dr.fin_ts_ns
        aborted = gone = False
        if bare and side_s.state in (FIN_WAIT2, CLOSING, TIME_WAIT) and ds.fin_seq is not None \
                and seq_after((ds.fin_seq + 1) & _M32, seq) \
                and (ds.isn is None or seq_after(seq, ds.isn)):
            # numbered short of its FIN's end: it answers a segment the peer sent before it
            # had the FIN (an ACK field only grows), which came before whatever took the
            # side past FIN_WAIT1 and found it there after close() (data after close()), or
            # gone.  A socket that had taken the peer's FIN (CLOSING, TIME_WAIT) answers
            # such old data with an ACK: it had not taken it, nor what followed
            answers = True
            first = None
            while (t := self._undo_last(conn, s, *_RECEIPTS)) is not None:
                first = t
            if first is not None:
                conn.notes.append(f"packet {packet}: the RST is numbered short of the end of "
                                  f"this side's FIN, as the ACK field of a segment the peer "
                                  f"sent before it had the FIN: it answers that segment, "
                                  f"which came before packet {first.packet}; that found the "
                                  f"side closed")
        elif bare and side_s.state is TIME_WAIT and acked is not None \
                and peer_fin is not None and peer_fin > acked:
            fin = side_s.transitions[-1]
            if self._revoke_receipt(conn, s) and answers and dr.fin_ahead \
                    and dr.last_ts_ns == peer_fin:
                # (answering that FIN, past its rcv_nxt: if the data that took it to
                # FIN_WAIT2 never reached it, the FIN's ACK did, and the FIN aborted it)
                aborted = self._data_ack_lost(conn, s, fin, packet, ts_ns)
        elif bare and answers and side_s.state is TIME_WAIT \
                and side_s.transitions[-1].ts_ns == dr.last_ts_ns:
            # the reply path's answer to the very segment that put it in TIME_WAIT, which a
            # TIME_WAIT socket never answers with an RST: it had no socket to take it ...
            undone = self._undo_last(conn, s, *_RECEIPTS)
            if undone is not None and undone.event is RECV_FIN_ACK_OF_FIN and dr.fin_ahead:
                # ... unless that segment ACKed its FIN and brought data or a FIN past its
                # rcv_nxt: then, after close(), it took the ACK (FIN_WAIT2) and aborted
                # (tcp_rcv_state_process: TCPAbortOnData)
                side_s.feed(RECV_ACK_OF_FIN, undone.ts_ns, undone.packet,
                            "the ACK of its FIN; the FIN with it, past its rcv_nxt, aborts it")
                self._restate(conn, s, undone.packet)
                aborted = True
            elif undone is not None and undone.event is RECV_FIN_ACK_OF_FIN:
                gone = True
        elif bare and answers and side_s.state is CLOSED and side_s.transitions \
                and side_s.transitions[-1].event is RECV_ACK_OF_FIN \
                and side_s.transitions[-1].ts_ns == dr.last_ts_ns:
            # the reply path's answer to the very ACK that took it from LAST_ACK to CLOSED,
            # which a LAST_ACK socket takes silently: it had no socket to take it
            self._undo_last(conn, s, RECV_ACK_OF_FIN)
            gone = True
        if side_s.state is LISTEN and acceptable:
            # (acceptable in SYN_SENT: it ACKs the SYN)
            note = ("RST answering the SYN: no socket took it (nothing listening on the "
                    "port, or a firewall's reject): connection refused, ECONNREFUSED "
                    "(tcp_v4_send_reset, no socket)")
            side_s.state = CLOSED
            self._restate(conn, s, side_r.transitions[0].packet)  # from the SYN on
        elif bare and side_s.transitions and side_s.transitions[-1].event is RECV_SYNACK \
                and ds.isn is not None and seq == (ds.isn + 1) & _M32 \
                and side_r.state is SYN_RECV:
            # a socket in SYN_SENT takes a SYN-ACK that ACKs its SYN and answers with an
            # ACK; a RST with the SYN-ACK's ACK number comes from no socket (the reply path).
            # (Not once that ACK was seen, establishing the peer: then a socket took the
            # SYN-ACK, and was gone by the time of the RST.)
            syn_ack = self._undo_last(conn, s, RECV_SYNACK)
            assert syn_ack is not None
            note = (f"bare RST answering the SYN-ACK (packet {syn_ack.packet}): no socket "
                    f"took it. The SYN's socket was gone (close() in SYN_SENT, as when "
                    f"connect() times out: silent), or the SYN came from no socket (a SYN "
                    f"scan, a raw socket). The RST comes from the reply path "
                    f"(tcp_v4_send_reset); CLOSED is stamped here as an upper bound")
            conn.notes.append(f"packet {packet}: {note}")
            inferred = True
        elif gone:
            note = FIN_WAIT1_GONE_NOTE if side_s.state is FIN_WAIT1 else LAST_ACK_GONE_NOTE
            conn.notes.append(f"packet {packet}: {note}")
            inferred = True
        elif side_s.state is FIN_WAIT1 and bare and (acceptable or answers):
            note = DATA_AFTER_CLOSE_NOTE + ("" if acceptable else TO_CLOSED_SUFFIX if to_closed
                                            else IGNORED_NOTE)
        elif aborted:
            note = ABORT_ON_FIN_NOTE + ("" if acceptable else TO_CLOSED_SUFFIX if to_closed
                                        else IGNORED_NOTE)
        elif side_s.state is FIN_WAIT2 and bare:
            fin_acked = ds.fin_acked_ts_ns
            waited = "" if fin_acked is None else f" {(ts_ns - fin_acked) / 1e9:.3f} s after " \
                                                  f"its FIN was ACKed (packet {ds.fin_acked_packet})"
            note = (f"bare RST from FIN_WAIT2{waited}: the side had called close(); its "
                    f"orphaned FIN_WAIT2 had timed out silently (tcp_fin_timeout) or it "
                    f"refused data after close(). The RST comes from the reply path "
                    f"(tcp_v4_send_reset); CLOSED is stamped here as an upper bound")
            conn.notes.append(f"packet {packet}: {note}")
            inferred = True
        elif bare and side_s.state in (ESTABLISHED, CLOSE_WAIT, CLOSING, LAST_ACK):
            note = gone_note(side_s.state)
            if side_s.state is ESTABLISHED and answers and dr.next_seq is not None \
                    and seq_after(dr.next_seq, dr.last_seq) and ds.next_seq is not None \
                    and (seq_after(ds.next_seq, seq) or self._sending(conn, s, ts_ns)):
                # answering the peer's data while data of its own was in flight (or until
                # the peer's ACK of it, which that data brought): it may have called
                # close() with data still unsent, its FIN queued behind it (FIN_WAIT1,
                # nothing on the wire), and aborted on the peer's data
                side_s.feed(SEND_FIN, ts_ns, packet, QUEUED_FIN_NOTE)
                note = f"{note}. {ABORT_BEHIND_DATA_NOTE}"
            conn.notes.append(f"packet {packet}: {note}")
            inferred = True
        elif not bare and ds.probes_since is not None and dr.last_ts_ns < ds.probes_since:
            note = keepalive_timeout_note(ds.probes_unanswered, ts_ns - ds.probes_since)
        elif not bare and side_s.state in (ESTABLISHED, CLOSE_WAIT) \
                and ds.fin_seq is None:
            note = RST_INSTEAD_OF_FIN
        if orphan:
            note = f"{note}. {ORPHAN_WINDOW_NOTE}" if note else ORPHAN_WINDOW_NOTE
        conn.rsts.append(RstRecord(s, ts_ns, packet, acceptable, bare, seq, note,
                                   dr.last_ackno if dr.packets else -1, to_closed))
        conn.slow = True
        changed = False
        if acceptable or not bare or gone \
                or answers and side_s.state in (FIN_WAIT1, FIN_WAIT2):
            # (not taken: an RST+ACK is still its sender's own abort, tcp_send_active_reset;
            # a bare RST numbered as the ACK field of a segment of the peer's is the reply
            # path's answer to it, from a side that had called close(): its data after
            # close() aborted the side, whatever the peer makes of the RST)
            if side_s.state not in (CLOSED, LISTEN):
                changed |= side_s.feed(SEND_RST, ts_ns, packet, note, inferred)
        if acceptable:
            if side_r.state not in (CLOSED, LISTEN):
                tw_note = "TIME_WAIT killed by a RST (RFC 1337 assassination; " \
                          "tcp_rfc1337=0)" if side_r.state is TIME_WAIT else \
                    "an orphaned FIN_WAIT2's mini-socket takes an RST anywhere in its " \
                    "window" if orphan else ""
                changed |= side_r.feed(RECV_RST, ts_ns, packet, tw_note)
        conn.rsts[-1].note = note
        return note

    def _enter_time_wait(self, conn: Conn) -> None:
        """Record the TIME_WAIT a side has just entered."""
        for i, side in enumerate(conn.sides):
            if side.state is TIME_WAIT and not any(t.side == i for t in conn.time_wait):
                conn.time_wait.append(TimeWait(i, side.transitions[-1].ts_ns,
                                               side.transitions[-1].packet))

    def _ladder(self, conn: Conn, s: int, packet: int, ts_ns: int, flags: int, seq: int,
                ack: int, plen: int, note: str) -> None:
        if not self.keep_ladder:
            return
        if len(conn.ladder) >= LADDER_LIMIT:
            conn.ladder_dropped += 1
            return
        conn.ladder.append(LadderStep(packet, ts_ns, s, flags, seq, ack, plen,
                                      (conn.sides[0].state, conn.sides[1].state), note))

    # -- memory: finished connections leave the table ------------------------------------

    def sweep(self, now_ns: int, time_wait_ns: int, grace_ns: int = 1_000_000_000,
              idle_ns: int | None = None) -> None:
        """Move connections that can no longer change to :attr:`finished`.

        Both sides CLOSED and quiet for ``grace_ns`` (late retransmissions and their RSTs
        still attach), or a TIME_WAIT whose timer has run out at ``now_ns``.  A TIME_WAIT
        whose peer is CLOSED and that was quiet for ``grace_ns`` is *parked*: handed to
        :attr:`parking` as if finished, with a few hundred bytes left here until its timer
        runs out, so that a segment of its 4-tuple can take it back.  So is an open
        connection quiet for ``idle_ns`` (looked for every ``idle_ns / 2``), until the
        end of the capture: memory is bounded by the connections open and active.
        """
        self._now_ns = max(self._now_ns, now_ns)
        for conn in list(self._closing.values()):
            a, b = conn.sides[0].state, conn.sides[1].state
            if conn.pending_old is not None:
                continue
            if _over(conn, now_ns, time_wait_ns, grace_ns):
                self._drop(conn)
            elif (a is TIME_WAIT or b is TIME_WAIT) and self.parking is not None \
                    and now_ns - conn.last_ts_ns >= grace_ns and a in _ENDED and b in _ENDED:
                self._park(conn, _time_wait_due(conn, time_wait_ns))
        if idle_ns is not None and self.parking is not None \
                and now_ns - self._idle_scan_ns >= idle_ns // 2:
            self._idle_scan_ns = now_ns
            for conn in self._tracked():
                if now_ns - conn.last_ts_ns >= idle_ns and conn.pending_old is None \
                        and conn.id not in self._closing:
                    self._park(conn, None)
        due_heap = self._due
        while due_heap and due_heap[0][0] <= now_ns:
            due, key = heapq.heappop(due_heap)
            parked = self.parked.get(key)
            if parked is not None and parked[0] == due:
                del self.parked[key]  # finished: it was kept when it was parked
        if self.kept is not None:
            self.kept.expire(now_ns)

    def _over_at(self, conn: Conn, ts_ns: int) -> bool:
        """Whether a sweep at ``ts_ns`` would let ``conn`` go."""
        assert self.time_wait_ns is not None
        return conn.pending_old is None and _over(conn, ts_ns, self.time_wait_ns,
                                                  self.grace_ns)

    def _tracked(self) -> list[Conn]:
        """Every connection in the table, once (each is there as sent by each endpoint)."""
        return [c for c, s in self.conns.values() if not s]

    def _park(self, conn: Conn, due_ns: int | None) -> None:
        assert self.parking is not None
        self._closing.pop(conn.id, None)
        a, b = conn.addrs
        key = (a[0], a[1], b[0], b[1])
        for k in {key, (b[0], b[1], a[0], a[1])}:  # one if an endpoint talks to itself
            del self.conns[k]
        self._settle(conn)
        self.parked[key] = (due_ns, self.parking.keep(conn))
        if due_ns is not None:
            heapq.heappush(self._due, (due_ns, key))

    def _thaw(self, key: tuple[bytes, int, bytes, int]) -> Conn:
        assert self.parking is not None
        return self.parking.take_back(self.parked.pop(key)[1])

    def _unpark(self, key: tuple[bytes, int, bytes, int],
                ts_ns: int) -> tuple[Conn, int] | None:
        """A segment (at ``ts_ns``) of a parked connection's 4-tuple: track the connection
        again, unless its TIME_WAIT is over by then."""
        rev = (key[2], key[3], key[0], key[1])
        if self.time_wait_ns is not None:  # over, whether a sweep let it go or not
            for k in (key, rev):
                due = self.parked.get(k, (None,))[0]
                if due is not None and due <= ts_ns:
                    del self.parked[k]
        if key in self.parked:
            conn = self._thaw(key)
        elif rev in self.parked:
            conn = self._thaw(rev)
        else:
            handle = self.kept.take(key, ts_ns if self.time_wait_ns is not None else None) \
                if self.kept else None
            if handle is None:
                return None
            assert self.parking is not None
            conn = self.parking.take_back(handle)
        if self.entered is not None:
            self.entered.append(key)
        self.conns[rev if conn.addrs[0] == (key[0], key[1]) else key] = (conn, 1)
        self.conns[key if conn.addrs[0] == (key[0], key[1]) else rev] = (conn, 0)
        if conn.sides[0].state in _ENDED or conn.sides[1].state in _ENDED:
            self._closing[conn.id] = conn
        return self.conns[key]

    # -- the end -----------------------------------------------------------------------

    def finish(self, end_ns: int | None = None) -> Iterator[Conn]:
        """Everything still held, at the end of the capture (``end_ns``: its latest time,
        if the tracker saw only some of its segments), one at a time."""
        self._now_ns = max(end_ns or 0, self.last_ts_ns)
        yield from self.finished
        self.finished.clear()
        for conn in self._tracked():
            self._drop(conn)
            yield from self.finished
            self.finished.clear()
        self.parked.clear()  # kept when they were parked
        self._due.clear()
        self.kept = None
