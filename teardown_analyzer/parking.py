"""A tracked connection as bytes and back, to park it on disk while it waits.

A connection in TIME_WAIT (and its peer CLOSED) can change only if a late segment
arrives: a retransmitted FIN, an RST, a new SYN on its 4-tuple.  It waits for that, for
its timer, or for the end of the capture, for up to a minute, so on a busy capture most
tracked connections are such TIME_WAITs.  The tracker writes them to its
:class:`~teardown_analyzer.spill.Spill` with :func:`freeze` and reads one back with
:func:`thaw` when a segment of its 4-tuple arrives or when it is summarised.

Each record becomes a tuple of its fields in declaration order (read from the dataclass,
so a new field is carried without touching this module), enum members become their
index, and :mod:`marshal` turns the nested tuples into bytes: several times faster than
pickling the objects, and under half the size.
"""

from __future__ import annotations

import marshal
from dataclasses import fields
from operator import attrgetter
from typing import Any, Callable

from .flows import Conn, Direction, LadderStep, RstRecord, TimeWait
from .states import Event, SideMachine, SideState, Transition

_STATES = tuple(SideState)
_STATE_CODE = {m: i for i, m in enumerate(_STATES)}
_EVENTS = tuple(Event)
_EVENT_CODE = {m: i for i, m in enumerate(_EVENTS)}


def _getter(cls: type, nested: tuple[str, ...] = ()) -> tuple[Callable[[Any], tuple[Any, ...]],
                                                              list[int]]:
    """All of ``cls``'s fields at once, and the positions of the ``nested`` ones."""
    names = [f.name for f in fields(cls)]
    return attrgetter(*names), [names.index(n) for n in nested]


_DIR_GET, _ = _getter(Direction)
_RST_GET, _ = _getter(RstRecord)
_TW_GET, _ = _getter(TimeWait)
_STEP_GET, (_STEP_STATES,) = _getter(LadderStep, ("states",))
_CONN_GET, _CONN_NESTED = _getter(Conn, ("dirs", "sides", "rsts", "time_wait", "ladder",
                                         "pending_old"))
_SIDE_FIELDS = ("state", "start_ts_ns", "start_packet", "transitions", "anomalies")
assert tuple(f.name for f in fields(SideMachine)) == _SIDE_FIELDS, "update _side()/_unside()"


def _side(m: SideMachine) -> tuple[Any, ...]:
    return (_STATE_CODE[m.state], m.start_ts_ns, m.start_packet,
            [(_STATE_CODE[old], _STATE_CODE[new], _EVENT_CODE[event], ts, pkt, note, inf)
             for old, new, event, ts, pkt, note, inf in m.transitions], m.anomalies)


def _unside(v: tuple[Any, ...]) -> SideMachine:
    return SideMachine(_STATES[v[0]], v[1], v[2],
                       [Transition(_STATES[t[0]], _STATES[t[1]], _EVENTS[t[2]], *t[3:])
                        for t in v[3]], v[4])


def _step(st: LadderStep) -> tuple[Any, ...]:
    v = list(_STEP_GET(st))
    v[_STEP_STATES] = (_STATE_CODE[st.states[0]], _STATE_CODE[st.states[1]])
    return tuple(v)


def _unstep(v: tuple[Any, ...]) -> LadderStep:
    w = list(v)
    a, b = w[_STEP_STATES]
    w[_STEP_STATES] = (_STATES[a], _STATES[b])
    return LadderStep(*w)


def freeze(conn: Conn) -> bytes:
    """``conn`` as bytes (it must not await a reuse's answer: ``pending_old`` is None)."""
    if conn.pending_old is not None:
        raise ValueError("a connection awaiting the answer to a reuse cannot be parked")
    v = list(_CONN_GET(conn))
    dirs, sides, rsts, tws, ladder, _ = _CONN_NESTED
    v[dirs] = (_DIR_GET(conn.dirs[0]), _DIR_GET(conn.dirs[1]))
    v[sides] = (_side(conn.sides[0]), _side(conn.sides[1]))
    v[rsts] = [_RST_GET(r) for r in conn.rsts]
    v[tws] = [_TW_GET(t) for t in conn.time_wait]
    v[ladder] = [_step(st) for st in conn.ladder]
    return marshal.dumps(v)


def blob_endpoints(blob: bytes) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
    """The two endpoints (address, port) of the connection a blob of its packets holds
    (:func:`teardown_analyzer.columnar._keep`'s, starting with a zero byte): endpoint 0,
    the sender of its first record, then endpoint 1."""
    raw = blob[1:38]  # (the IP version, then each endpoint: 16 address bytes, the port)
    width = 16 if raw[0] == 6 else 4
    return ((raw[1:1 + width], raw[17] << 8 | raw[18]),
            (raw[19:19 + width], raw[35] << 8 | raw[36]))


def thaw(blob: bytes, keep_ladder: bool = False) -> Conn:
    """The connection :func:`freeze` made ``blob`` of, equal field for field; or, for a
    connection kept as its packets (one recognised, :mod:`teardown_analyzer.columnar`:
    such a blob starts with a zero byte, which no marshal output does), what a tracker
    makes of them (with the ladder if ``keep_ladder``)."""
    if not blob[0]:
        from .columnar import replay
        return replay(blob, keep_ladder)
    v = marshal.loads(blob)
    dirs, sides, rsts, tws, ladder, _ = _CONN_NESTED
    v[dirs] = (Direction(*v[dirs][0]), Direction(*v[dirs][1]))
    v[sides] = (_unside(v[sides][0]), _unside(v[sides][1]))
    v[rsts] = [RstRecord(*r) for r in v[rsts]]
    v[tws] = [TimeWait(*t) for t in v[tws]]
    v[ladder] = [_unstep(st) for st in v[ladder]]
    return Conn(*v)
