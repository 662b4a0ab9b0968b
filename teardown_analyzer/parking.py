"""A tracked connection as bytes and back, to park it on disk while it waits.

A connection in TIME_WAIT (and its peer CLOSED) can change only if a late segment
arrives: a retransmitted FIN, an RST, a new SYN on its 4-tuple.  It waits for that, for
its timer, or for the end of the capture, for up to a minute, so on a busy capture most
tracked connections are such TIME_WAITs.  The tracker writes them to its
:class:`~teardown_analyzer.spill.Spill` with :func:`freeze` and reads one back with
:func:`thaw` when a segment of its 4-tuple arrives or when it is summarised.

Each record class becomes a tuple of its fields in declaration order (taken from the
dataclass, so a new field is carried without touching this module), enum members become
their index, and :mod:`marshal` turns the nested tuples into bytes: several times faster
than pickling the objects, and a third of the size.
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


class _Codec:
    """One record class: its fields as a tuple, with converters for the nested ones."""

    def __init__(self, cls: type, special: dict[str, tuple[Callable[[Any], Any],
                                                          Callable[[Any], Any]]]) -> None:
        names = [f.name for f in fields(cls)]
        unknown = set(special) - set(names)
        assert not unknown, unknown
        self.cls = cls
        self.get = attrgetter(*names)
        self.special = [(names.index(n), enc, dec) for n, (enc, dec) in special.items()]

    def enc(self, obj: Any) -> tuple[Any, ...]:
        vals = list(self.get(obj))
        for i, enc, _ in self.special:
            vals[i] = enc(vals[i])
        return tuple(vals)

    def dec(self, vals: tuple[Any, ...]) -> Any:
        if self.special:
            vals = list(vals)  # type: ignore[assignment]
            for i, _, dec in self.special:
                vals[i] = dec(vals[i])  # type: ignore[index]
        return self.cls(*vals)


def _seq(enc: Callable[[Any], Any], dec: Callable[[Any], Any], kind: type = list
         ) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    return (lambda items: kind(map(enc, items))), (lambda items: kind(map(dec, items)))


_STATE = (_STATE_CODE.__getitem__, _STATES.__getitem__)


def _enc_transition(t: Transition) -> tuple[Any, ...]:
    return (_STATE_CODE[t.old], _STATE_CODE[t.new], _EVENT_CODE[t.event]) + t[3:]


def _dec_transition(v: tuple[Any, ...]) -> Transition:
    return Transition(_STATES[v[0]], _STATES[v[1]], _EVENTS[v[2]], *v[3:])


_DIRECTION = _Codec(Direction, {})
_SIDE = _Codec(SideMachine, {"state": _STATE,
                             "transitions": _seq(_enc_transition, _dec_transition)})
_RST = _Codec(RstRecord, {})
_TIME_WAIT = _Codec(TimeWait, {})
_LADDER = _Codec(LadderStep, {"states": _seq(*_STATE, tuple)})


def _no_pending(old: Any) -> None:
    if old is not None:
        raise ValueError("a connection awaiting the answer to a reuse cannot be parked")


_CONN = _Codec(Conn, {
    "dirs": _seq(_DIRECTION.enc, _DIRECTION.dec, tuple),
    "sides": _seq(_SIDE.enc, _SIDE.dec, tuple),
    "rsts": _seq(_RST.enc, _RST.dec),
    "time_wait": _seq(_TIME_WAIT.enc, _TIME_WAIT.dec),
    "ladder": _seq(_LADDER.enc, _LADDER.dec),
    "pending_old": (_no_pending, lambda v: None),
})


def freeze(conn: Conn) -> bytes:
    """``conn`` as bytes (it must not await a reuse's answer: ``pending_old`` is None)."""
    return marshal.dumps(_CONN.enc(conn))


def thaw(blob: bytes) -> Conn:
    """The connection :func:`freeze` made ``blob`` of, equal field for field."""
    conn: Conn = _CONN.dec(marshal.loads(blob))
    return conn
