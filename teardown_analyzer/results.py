"""The results: one immutable record per connection, and the report that holds them.

:class:`ConnectionResult` is what the analysis concludes about one connection (one
incarnation of a 4-tuple); :class:`Report` is what one run found, captures and connections,
and merges with the report of another capture.  Finished connections go through a
:class:`ResultSink` to a spill file and are read back from the :class:`ResultStore` it
makes.
"""

from __future__ import annotations

import bisect
import socket
from array import array
from functools import partial
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence, TypeVar

from .capture import CaptureInfo
from .link import LINKTYPE_NAMES
from .spill import Spill

KINDS = ("four-way", "three-way", "simultaneous", "fin-then-rst", "rst", "half-open", "none")
UNUSUAL = {"fin-then-rst", "rst", "half-open", "simultaneous"}


class StateEntry(NamedTuple):
    state: str
    ts: float
    packet: int
    note: str = ""
    inferred: bool = False
    old: str = ""
    event: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"state": self.state, "ts": self.ts, "packet": self.packet}
        if self.event:
            d["from"], d["event"] = self.old, self.event
        if self.note:
            d["note"] = self.note
        if self.inferred:
            d["inferred"] = True
        return d


class ConnectionResult(NamedTuple):
    """How one connection (one incarnation of a 4-tuple) was closed.

    Results are immutable named tuples: hundreds of thousands of them are made, and a
    tuple is the cheapest record Python has.
    """

    id: int
    client: tuple[str, int]
    server: tuple[str, int]
    incarnation: int
    first_ts: float
    last_ts: float
    packets: int
    handshake: str
    """seen / partial / missing."""
    roles_from: str
    """What told client from server: handshake, SYN-ACK, or a port heuristic."""
    kind: str
    initiator: str | None
    half_close_s: float | None
    half_close_bytes: int
    half_close_segments: int
    client_states: tuple[StateEntry, ...]
    server_states: tuple[StateEntry, ...]
    time_wait: dict[str, Any] | None
    rsts: tuple[dict[str, Any], ...]
    anomalies: tuple[str, ...]
    notes: tuple[str, ...]
    zeek_state: str
    directions: dict[str, Any]
    vantage: dict[str, Any] | None
    ladder: tuple[dict[str, Any], ...] = ()
    source: str = ""
    reused_from: int | None = None
    """Id of the incarnation of the same 4-tuple before this one."""
    @property
    def client_final(self) -> str:
        return self.client_states[-1].state if self.client_states else "CLOSED"

    @property
    def server_final(self) -> str:
        return self.server_states[-1].state if self.server_states else "CLOSED"

    @property
    def unusual(self) -> bool:
        return self.kind in UNUSUAL or bool(self.anomalies)

    def to_dict(self, ladder: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "capture": self.source,
            "client": {"ip": self.client[0], "port": self.client[1]},
            "server": {"ip": self.server[0], "port": self.server[1]},
            "incarnation": self.incarnation, "reused_from": self.reused_from,
            "first_ts": self.first_ts, "last_ts": self.last_ts, "packets": self.packets,
            "handshake": self.handshake, "roles_from": self.roles_from,
            "close": {"kind": self.kind, "initiator": self.initiator,
                      "half_close_s": self.half_close_s,
                      "half_close_bytes": self.half_close_bytes,
                      "half_close_segments": self.half_close_segments},
            "sides": {
                "client": {"states": [s.to_dict() for s in self.client_states],
                           "final_state": self.client_final},
                "server": {"states": [s.to_dict() for s in self.server_states],
                           "final_state": self.server_final},
            },
            "time_wait": self.time_wait,
            "rsts": list(self.rsts),
            "anomalies": list(self.anomalies),
            "notes": list(self.notes),
            "zeek_state": self.zeek_state,
            "directions": self.directions,
            "vantage": self.vantage,
        }
        if ladder:
            d["ladder"] = list(self.ladder)
        return d


# -- the pieces of a result, as summarize (analysis.py) and cleanclose.py write them --

TURNAROUND_S = 100e-6
"""Below this, a gap in the handshake is a host's processing time, not a path."""


def address(packed: bytes) -> str:
    """An IPv4 or IPv6 address, packed as the capture has it, as text."""
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


def time_wait_end(entered_ns: int, last_restart_ns: int, end_ns: int,
                  time_wait_s: float) -> tuple[StateEntry | None, str]:
    """How a TIME_WAIT entered at ``entered_ns``, its timer last restarted at
    ``last_restart_ns``, ended by ``end_ns`` (the end of the capture): the CLOSED its timer
    implies if the capture ran past it (else None), and the summary's ``end``."""
    expire_ns = last_restart_ns + int(time_wait_s * 1e9)
    if end_ns >= expire_ns:
        return (StateEntry("CLOSED", expire_ns / 1e9, 0, f"TIME_WAIT timer ({time_wait_s:g} "
                           f"s) expired: inferred, not seen", True, "TIME_WAIT", "TIMER"),
                "inferred from the timer")
    return None, (f"capture ended {(end_ns - entered_ns) / 1e9:.3f} s into TIME_WAIT, "
                  f"before the {time_wait_s:g} s timer")


def fin_dict(seq: int, ts_ns: int, packet: int | None, with_data: bool,
             retransmissions: list[dict[str, Any]], acked_ts_ns: int | None,
             acked_packet: int | None, acked_by_fin: bool) -> dict[str, Any]:
    """A direction's FIN as the results carry it (``directions.*.fin``)."""
    return {"seq": seq, "ts": ts_ns / 1e9, "packet": packet, "with_data": with_data,
            "retransmissions": retransmissions,
            "acked_ts": None if acked_ts_ns is None else acked_ts_ns / 1e9,
            "acked_packet": acked_packet, "acked_by_fin": acked_by_fin}


def direction_dict(isn: int | None, packets: int, payload: int, highest: int | None,
                   wscale: int | None, fin: dict[str, Any] | None, after_peer_fin: int,
                   after_own_fin: int, keepalives: int, window_probes: int
                   ) -> dict[str, Any]:
    """What one side sent, as the results carry it (``directions.client``, ``.server``)."""
    return {"isn": isn, "packets": packets, "bytes": payload, "highest_seq": highest,
            "window_scale": wscale, "fin": fin, "data_after_peer_fin": after_peer_fin,
            "data_after_own_fin": after_own_fin, "keepalive_probes": keepalives,
            "window_probes": window_probes}


def vantage(syn: int, synack: int, ack: int, round_trips: tuple[int, int]
            ) -> dict[str, Any]:
    """Where the capture was taken: from the round trips between the capture point and the
    client and the server that the analysis used (``round_trips``, ns: the fastest each
    answered, :func:`teardown_analyzer.flows.round_trip`), near a side whose round trip is
    a fifth of the two's sum or less (as ``Tracker._near`` has it); with the times of the
    handshake's SYN, SYN-ACK and ACK."""
    rtt = (ack - syn) / 1e9
    to_server = (synack - syn) / 1e9   # SYN -> SYN-ACK at the capture point
    to_client = (ack - synack) / 1e9   # SYN-ACK -> ACK at the capture point
    rt_client, rt_server = round_trips[0] / 1e9, round_trips[1] / 1e9
    both = rt_client + rt_server
    if rtt <= 0:
        point = "unknown"
    elif max(rt_client, rt_server) < TURNAROUND_S:
        point = "indeterminate (RTT too small: host turnaround dominates)"
    elif rt_client <= 0.2 * both:
        point = "near the client"
    elif rt_server <= 0.2 * both:
        point = "near the server"
    else:
        point = "in between"
    return {"point": point, "rtt_s": rtt, "syn_to_synack_s": to_server,
            "synack_to_ack_s": to_client,
            "round_trip_s": {"client": rt_client, "server": rt_server},
            "lag": ("times are capture times: a far-side transition caused by a segment "
                    "it receives happens about one one-way delay after the time shown "
                    "(CLOSE_WAIT, FIN_WAIT2, TIME_WAIT, CLOSED); one caused by its own "
                    "application (SYN_SENT, FIN_WAIT1, LAST_ACK) about one one-way delay "
                    "before the SYN or FIN shows up here"),
            "one_way_s": both / 2}


TIME_WAIT_SIDES = (None, "client", "server", "both")
INITIATORS = (None, "client", "server", "both")
# The facts of a connection coded in one 64-bit word (what ResultSink keeps of each, with
# its half-close): bits 0-2 its kind, 3-4 its TIME_WAIT side, 5 unusual, 6-7 its initiator
# (indices into KINDS, TIME_WAIT_SIDES, INITIATORS), 8-15 how many times its FIN was sent
# again (the more of the two sides'; FIN_RETX_CAP: that many or more), 16 on: how many
# RSTs.
TW_SHIFT, UNUSUAL_BIT, INITIATOR_SHIFT, FIN_RETX_SHIFT, RSTS_SHIFT = 3, 1 << 5, 6, 8, 16
FIN_RETX_CAP = 255
HALF_NONE, HALF_CAP = -2**63, 2**63 - 1
"""A connection's coded half-close (ns) when it had none (no FIN), and the most it codes
(that long or longer: timestamps can be that far apart).  While a sink holds them, the
half-close of one that runs to the end of the capture (half-open) is coded as
:func:`running_half` codes it, made the nanoseconds to that end by :meth:`ResultSink.store`."""


def running_half(first_fin_ns: int) -> int:
    """The coded half-close of a connection half-closed since ``first_fin_ns`` until the end
    of its capture, not known yet: ``~`` that time (negative, not :data:`HALF_NONE`), or
    :data:`HALF_CAP` for a time too late to code so."""
    return ~first_fin_ns if first_fin_ns < HALF_CAP else HALF_CAP
_TW_CODE = {side: i for i, side in enumerate(TIME_WAIT_SIDES)}
_KIND_CODE = {kind: i for i, kind in enumerate(KINDS)}
_BY_CODE = {who: i for i, who in enumerate(INITIATORS)}

ConnFacts = tuple[str, int, str | None, bool, str | None, int, int]
"""(kind, RSTs, TIME_WAIT side, unusual, initiator, FIN retransmissions, half-close ns):
what :class:`ResultSink` keeps of a connection besides its blob."""


def _meta_code(kind: str, rsts: int, tw_side: str | None, unusual: bool,
               initiator: str | None, fin_retx: int) -> int:
    return _KIND_CODE[kind] | _TW_CODE[tw_side] << TW_SHIFT | unusual * UNUSUAL_BIT \
        | _BY_CODE[initiator] << INITIATOR_SHIFT \
        | min(fin_retx, FIN_RETX_CAP) << FIN_RETX_SHIFT | rsts << RSTS_SHIFT


_WITHDRAWN = 2**64 - 1


def _meta(code: int) -> tuple[str, int, str | None, bool, str | None, int]:
    return (KINDS[code & 7], code >> RSTS_SHIFT, TIME_WAIT_SIDES[code >> TW_SHIFT & 3],
            bool(code & UNUSUAL_BIT), INITIATORS[code >> INITIATOR_SHIFT & 3],
            code >> FIN_RETX_SHIFT & FIN_RETX_CAP)


class Facts(NamedTuple):
    """The facts coded for every connection (:meth:`ResultStore.facts`), as numpy arrays
    in the store's order: what the totals, the folded table and the rules of a check
    read without decoding a connection."""

    kind: Any
    """Index into :data:`KINDS`."""
    time_wait: Any
    """Index into :data:`TIME_WAIT_SIDES` (0: no TIME_WAIT)."""
    unusual: Any
    """Bool: an unusual kind, or an anomaly."""
    initiator: Any
    """Index into :data:`INITIATORS` (0: nobody closed)."""
    rsts: Any
    """How many RSTs (``ConnectionResult.rsts``)."""
    fin_retransmits: Any
    """How many times the side whose FIN was sent again more often sent it again (the
    ``retransmissions`` of each ``directions[side].fin``; :data:`FIN_RETX_CAP`: that many
    or more)."""
    half_close_ns: Any
    """``ConnectionResult.half_close_s`` in nanoseconds; :data:`HALF_NONE` with no FIN,
    :data:`HALF_CAP`: that long or longer."""


class _Segment(NamedTuple):
    """The finished connections of one capture, sorted by provisional id, as arrays."""

    ids: array
    """Provisional ids: the number of each connection's first packet."""
    where: array
    """Each connection's blob: its offset in a spill << 8 | the spill's index in ``spills``."""
    sizes: array
    meta: array
    """(kind, RSTs, TIME_WAIT side, unusual, initiator, FIN retransmissions) of each,
    coded: totals without decoding."""
    half: array
    """The half-close of each (:attr:`Facts.half_close_ns`)."""
    spills: tuple[Spill, ...]
    decode: Callable[[bytes, int], ConnectionResult]
    """(blob, coded facts) -> result (picklable: segments made by --jobs workers cross to
    the parent)."""

    def blob(self, i: int) -> bytes:
        w = self.where[i]
        return self.spills[w & 0xFF].get(w >> 8, self.sizes[i])


class ResultSink:
    """Where an analysis keeps finished connections: as blobs in a spill file, indexed,
    with the facts totals need; the store it makes decodes a blob (with its coded facts)
    into a result."""

    __slots__ = ("spill", "ids", "where", "sizes", "meta", "half")

    def __init__(self, spill: Spill) -> None:
        self.spill = spill
        self.ids, self.where, self.half = array("q"), array("q"), array("q")
        self.sizes, self.meta = array("L"), array("Q")

    def add(self, conn_id: int, blob: bytes, facts: ConnFacts) -> int:
        """Keep one connection (its provisional id, its blob, and its :data:`ConnFacts`); a
        handle for :meth:`withdraw`."""
        self.ids.append(conn_id)
        self.where.append(self.spill.put(blob) << 8)
        self.sizes.append(len(blob))
        self.meta.append(_meta_code(*facts[:6]))
        self.half.append(facts[6])
        return len(self.ids) - 1

    def add_rows(self, ids: Any, blob: "bytes | memoryview", offsets: Any, sizes: Any,
                 meta: Any, half: Any) -> int:
        """Keep many connections at once, all in ``blob``, each at its offset in it with its
        size (numpy arrays; ``meta`` coded as :meth:`add` codes it, ``half`` their
        half-closes); the first's handle (the others' follow)."""
        import numpy as np
        first = len(self.ids)
        base = self.spill.put(blob)
        self.ids.frombytes(np.asarray(ids, np.int64).tobytes())
        self.where.frombytes(((np.asarray(offsets, np.int64) + base) << 8).tobytes())
        self.sizes.frombytes(np.asarray(sizes, f"u{self.sizes.itemsize}").tobytes())
        self.meta.frombytes(np.asarray(meta, np.uint64).tobytes())
        self.half.frombytes(np.asarray(half, np.int64).tobytes())
        return first

    def head(self, handle: int, n: int) -> bytes:
        """The first ``n`` bytes (at most) of a connection's blob."""
        return self.spill.get(self.where[handle] >> 8, min(n, self.sizes[handle]))

    def withdraw(self, handle: int) -> bytes:
        """A connection kept too early (it changed after all): forget it; its blob."""
        self.meta[handle] = _WITHDRAWN
        return self.spill.get(self.where[handle] >> 8, self.sizes[handle])

    def store(self, decode: Callable[[bytes, int], ConnectionResult],
              end_ns: int) -> "ResultStore":
        """The connections kept, which ``decode`` turns into results (from each one's blob
        and coded facts); ``end_ns``: the end of the capture, where a half-close that ran
        to it ended."""
        import numpy as np
        half = np.frombuffer(self.half, np.int64).copy()
        running = np.flatnonzero((half < 0) & (half != HALF_NONE))
        # (a few, in Python ints: the end of a capture may be past what int64 holds)
        half[running] = [min(max(0, end_ns - ~h), HALF_CAP) for h in half[running].tolist()]
        return ResultStore._sorted([_Segment(self.ids, self.where, self.sizes, self.meta,
                                             array("q", half.tobytes()), (self.spill,),
                                             decode)])


_R = TypeVar("_R")


class ResultStore(Sequence[ConnectionResult]):
    """Finished connections, kept in a spill file and summarised on access.

    Each costs 40 bytes of memory here (ids, offsets, sizes, coded facts and half-close in
    arrays) and about 1 KB on disk.  Each capture is a segment sorted by first packet; the
    id of the n-th result overall is n (1, 2, 3 ... in the order connections were first
    seen, capture after capture), and the ids that results name (the incarnation before,
    the one that reused a TIME_WAIT 4-tuple) are mapped the same way when a result is
    decoded.
    """

    __slots__ = ("_segments", "_starts")

    def __init__(self, segments: Iterable[_Segment] = ()) -> None:
        self._segments = [seg for seg in segments if seg.ids]
        self._starts: list[int] = []
        total = 0
        for seg in self._segments:
            self._starts.append(total)
            total += len(seg.ids)

    @classmethod
    def _sorted(cls, parts: list[_Segment]) -> "ResultStore":
        """``parts`` (of one capture, in any order) as one segment sorted by id."""
        import numpy as np
        spills: list[Spill] = []
        for seg in parts:
            spills.extend(s for s in seg.spills if s not in spills)
        out = _Segment(array("q"), array("q"), array("L"), array("Q"), array("q"),
                       tuple(spills), parts[0].decode if parts else _no_decode)
        columns = [np.concatenate([np.frombuffer(getattr(seg, name), f"u{width}")
                                   for seg in parts] or [np.zeros(0, f"u{width}")])
                   for name, width in (("ids", 8), ("where", 8),
                                       ("sizes", out.sizes.itemsize), ("meta", 8),
                                       ("half", 8))]
        # each one's spill, as an index into the spills of all the parts
        spill_of = np.concatenate([np.array([spills.index(s) for s in seg.spills], "u8")[
            np.frombuffer(seg.where, "u8") & 0xFF] for seg in parts] or [np.zeros(0, "u8")])
        ids, where, sizes, meta, half = columns
        kept = np.flatnonzero(meta != _WITHDRAWN)
        rows = kept[np.argsort(ids.view(np.int64)[kept], kind="stable")]
        out.ids.frombytes(ids[rows].tobytes())
        out.where.frombytes((where[rows] >> np.uint64(8) << np.uint64(8)
                             | spill_of[rows]).tobytes())
        out.sizes.frombytes(sizes[rows].tobytes())
        out.meta.frombytes(meta[rows].tobytes())
        out.half.frombytes(half[rows].tobytes())
        return cls([out])

    def meta(self) -> Iterator[ConnFacts]:
        """Each connection's coded facts, in order."""
        for seg in self._segments:
            for code, half in zip(seg.meta, seg.half):
                yield _meta(code) + (half,)

    def facts(self) -> Facts:
        """What :meth:`meta` gives, as arrays (:class:`Facts`), in order."""
        import numpy as np
        codes = np.concatenate([np.frombuffer(seg.meta, np.uint64) for seg in self._segments]
                               or [np.zeros(0, np.uint64)]).astype(np.int64)
        half = np.concatenate([np.frombuffer(seg.half, np.int64) for seg in self._segments]
                              or [np.zeros(0, np.int64)])
        return Facts(codes & 7, codes >> TW_SHIFT & 3, (codes & UNUSUAL_BIT).astype(bool),
                     codes >> INITIATOR_SHIFT & 3, codes >> RSTS_SHIFT,
                     codes >> FIN_RETX_SHIFT & FIN_RETX_CAP, half)

    def __len__(self) -> int:
        return self._starts[-1] + len(self._segments[-1].ids) if self._segments else 0

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = bisect.bisect_right(self._starts, index) - 1
        seg, start = self._segments[k], self._starts[k]
        i = index - start
        return _unpack(seg.decode(seg.blob(i), seg.meta[i]), partial(self._final, k), index + 1)

    def __iter__(self) -> Iterator[ConnectionResult]:
        for k, (seg, start) in enumerate(zip(self._segments, self._starts)):
            final = partial(self._final, k)
            for i in range(len(seg.ids)):
                yield _unpack(seg.decode(seg.blob(i), seg.meta[i]), final, start + i + 1)

    def blobs(self) -> Iterator[bytes]:
        """Each connection's blob, in order, undecoded."""
        for seg in self._segments:
            for i in range(len(seg.ids)):
                yield seg.blob(i)

    def rendered(self, render: Callable[[ConnectionResult], _R], jobs: int = 1,
                 progress: Callable[[int], None] | None = None,
                 indices: Sequence[int] | None = None) -> Iterator[_R]:
        """``render`` of each result (or of those at ``indices``), in order; with ``jobs``
        > 1, in that many forked processes, which read the spill files this one wrote
        (decoding a result is most of the cost of writing it out).  ``progress``, if
        given, is told how many results have been handed out, every
        :data:`RENDER_SLICE` and at the last."""
        import multiprocessing
        at: Sequence[int] = range(len(self)) if indices is None else indices
        n = len(at)
        if jobs <= 1 or n < 2 * RENDER_SLICE or \
                "fork" not in multiprocessing.get_all_start_methods():
            for done, c in enumerate(self if indices is None
                                     else map(self.__getitem__, indices), 1):
                yield render(c)
                if progress is not None and (done % RENDER_SLICE == 0 or done == n):
                    progress(done)
            return
        global _RENDERING
        for seg in self._segments:
            for spill in seg.spills:
                spill.flush()
        _RENDERING = (self, render, at)
        try:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(jobs) as pool:
                slices = pool.imap(_render_slice, range(0, n, RENDER_SLICE))
                for k, lines in enumerate(slices, 1):
                    yield from lines
                    if progress is not None:
                        progress(min(k * RENDER_SLICE, n))
        finally:
            _RENDERING = None

    def _final(self, k: int, old: int) -> int | None:
        ids = self._segments[k].ids
        i = bisect.bisect_left(ids, old)
        return self._starts[k] + i + 1 if i < len(ids) and ids[i] == old else None

    def __add__(self, other: "ResultStore") -> "ResultStore":
        return ResultStore(self._segments + other._segments)

    def joined(self) -> "ResultStore":
        """The segments (parts of one capture, split by connection) as one, re-sorted."""
        return ResultStore._sorted(self._segments)


RENDER_SLICE = 2000
"""Results rendered per task by :meth:`ResultStore.rendered` with several processes."""
_RENDERING: "tuple[ResultStore, Callable[[ConnectionResult], Any], Sequence[int]] | None" \
    = None


def _render_slice(start: int) -> list[Any]:
    """In a forked process: the results from the ``start``-th of those to render on,
    rendered."""
    assert _RENDERING is not None
    store, render, at = _RENDERING
    return [render(store[i]) for i in at[start:start + RENDER_SLICE]]


def _no_decode(blob: bytes, meta: int) -> ConnectionResult:
    raise IndexError("no connections")


def _unpack(c: ConnectionResult, final: Callable[[int], int | None],
            new_id: int) -> ConnectionResult:
    """A decoded result with its final id, and the ids it names mapped likewise."""
    tw = c.time_wait
    if tw and tw.get("reuse") and tw["reuse"].get("new_connection") is not None:
        tw = {**tw, "reuse": {**tw["reuse"],
                              "new_connection": final(tw["reuse"]["new_connection"])}}
    return c._replace(id=new_id, time_wait=tw,
                      reused_from=None if c.reused_from is None else final(c.reused_from))


@dataclass(slots=True)
class Report:
    """Everything one run found; reports of several captures merge."""

    captures: list[CaptureInfo] = field(default_factory=list)
    connections: ResultStore = field(default_factory=ResultStore)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    """Capture source -> skip reason -> count."""
    evicted: dict[str, int] = field(default_factory=dict)
    """Capture source -> connections evicted before they ended (``--max-connections``)."""

    def merge(self, other: "Report") -> "Report":
        return Report(self.captures + other.captures, self.connections + other.connections,
                      {**self.skipped, **other.skipped}, {**self.evicted, **other.evicted})

    def totals(self) -> dict[str, Any]:
        import numpy as np
        facts = self.connections.facts()
        per_kind = np.bincount(facts.kind, minlength=len(KINDS))
        per_side = np.bincount(facts.time_wait, minlength=len(TIME_WAIT_SIDES))
        kinds = {k: int(per_kind[i]) for i, k in enumerate(KINDS)}
        time_wait = {side: int(per_side[i]) for i, side in enumerate(TIME_WAIT_SIDES) if side}
        rsts = int(facts.rsts.sum())
        return {"connections": len(self.connections), "kinds": kinds, "rsts": rsts,
                "half_open": kinds["half-open"], "time_wait": time_wait}

    def to_dict(self, ladder: bool = False, connections: bool = True) -> dict[str, Any]:
        caps = []
        for info in self.captures:
            d = info.to_dict()
            d["skipped"] = dict(sorted(self.skipped.get(info.source, {}).items()))
            d["linktype_names"] = [LINKTYPE_NAMES.get(lt, str(lt))
                                   for lt in sorted(set(info.linktypes.values()))]
            caps.append(d)
        return {"schema": "teardown-analyzer/1", "captures": caps,
                "connections": [c.to_dict(ladder) for c in self.connections]
                if connections else [],
                "totals": self.totals()}
