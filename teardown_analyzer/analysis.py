"""From tracked connections to results: kind of close, initiator, half-close, TIME_WAIT.

:func:`analyze` is the library's main entry: capture paths in, a
:class:`~teardown_analyzer.results.Report` out (see :mod:`teardown_analyzer.results`
for the records).  Reports of several captures merge, so captures can be analysed
apart (``jobs``) and combined.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .capture import earlier_warning, open_capture
from .flows import Conn, LadderStep, Tracker, round_trip
from .link import tcp_packet_at
from .parking import blob_endpoints, freeze, thaw
from .results import (HALF_CAP, HALF_NONE, KINDS, UNUSUAL, ConnectionResult, ConnFacts,
                      Report, ResultSink, ResultStore, StateEntry, address, direction_dict,
                      fin_dict, running_half, time_wait_end, vantage)
from .spill import Spill, close_shared, open_shared, shared_spill
from .states import Event, SideState

if TYPE_CHECKING:
    import numpy as np

_LISTEN, _CLOSED, _CLOSING = SideState.LISTEN, SideState.CLOSED, SideState.CLOSING
_RESETS = (Event.RECV_RST, Event.SEND_RST)


def _resets(conn: Conn) -> list[tuple[int, int]]:
    """When an RST closed a side, sent or received (at a segment of its that crossed the
    peer's RST, if one did), in order, each with the side that sent that RST."""
    return sorted((t.ts_ns, i if t.event is Event.SEND_RST else 1 - i)
                  for i, side in enumerate(conn.sides) for t in side.transitions
                  if t.event in _RESETS)


LINUX_TIME_WAIT_S = 60.0
VECTORISED_SWEEP = 4096
"""Plain segments are counted a batch at a time only when sweeps are this far apart."""
VECTORISED_SHARE = 0.7
"""A batch's plain segments are counted at once (:mod:`teardown_analyzer.plain`) after a
batch in which at least this share of the records were plain segments of open
connections; after one in which they were fewer, the records go to a window of
connections recognised whole (:mod:`teardown_analyzer.columnar`), which pays more on a
capture of short connections.  Both give the same results."""

EPHEMERAL = range(32768, 61000)  # Linux net.ipv4.ip_local_port_range default


@dataclass(frozen=True, slots=True)
class Options:
    time_wait_s: float = LINUX_TIME_WAIT_S
    keep_ladder: bool = False
    """Keep every connection's handshake and teardown packets (the ladder view)."""
    sweep_every: int = 65536
    """Finished connections leave the tracker every this many packets."""
    max_connections: int | None = None
    """Cap on connections tracked at once (``--max-connections``)."""
    quiet_s: float = 1.0
    """A closed connection quiet this long leaves memory: summarised when both sides are
    CLOSED, parked on disk when one is in TIME_WAIT (late segments still attach)."""
    idle_s: float | None = 10.0
    """An open connection quiet this long leaves memory too (parked on disk; its next
    segment takes it back); None: open connections stay in memory."""
    vectorised: bool = True
    """Take connections whose verdict is known a window of records at a time
    (:mod:`teardown_analyzer.columnar`) and count plain data segments a batch at a time
    (:mod:`teardown_analyzer.plain`), with numpy; the results are identical.  Off with
    ``max_connections``, or with ``sweep_every`` below a batch (tests that sweep after
    every packet)."""


# --- driving a capture through the tracker ---------------------------------------------

def analyze_capture(path: str, options: Options = Options(), part: tuple[int, int] = (0, 1),
                    progress: Callable[[int, int], None] | None = None,
                    spill: Spill | None = None, shares: Any = None) -> Report:
    """Read one capture in one streaming pass; every connection is kept, to be summarised
    when the report is read.

    ``part`` ``(k, n)``: track only the connections whose port sum is k modulo n, so n
    processes can share one capture; part 0 also counts the packets no connection owns.
    ``progress(packets, bytes)`` is called now and then.  Connection ids are the first
    packet's number here; :func:`analyze` renumbers them.  Results and parked
    connections go to ``spill`` (a new one by default).  ``shares``
    (:class:`~teardown_analyzer.pcapsplit.Shares`): the capture's records as processes
    that walked its ranges gathered them; share k is read instead of the file.
    """
    gc_was_on = gc.isenabled()
    # The connections and results are trees without reference cycles: reference counting
    # frees them, and the cycle collector would only walk the ever-growing set of live
    # objects again and again (a fifth of the time on a large capture).
    gc.disable()
    try:
        return _analyze_capture(path, options, part, progress, spill or Spill(), shares)
    finally:
        if gc_was_on:
            gc.enable()


def _analyze_capture(path: str, options: Options, part: tuple[int, int],
                     progress: Callable[[int, int], None] | None, spill: Spill,
                     shares: Any) -> Report:
    cap = open_capture(path) if shares is None else None
    info = cap.info if cap is not None else shares.info
    read = [0]  # with shares: bytes of the file the walks had read by the rows taken

    def bytes_read() -> int:
        return cap.bytes_read if cap is not None else read[0]

    results = ResultSink(spill)
    keeper = _Keeper(results, options.keep_ladder)
    keep = keeper.keep
    tw_ns = int(options.time_wait_s * 1e9)
    quiet_ns = int(options.quiet_s * 1e9)
    tracker = Tracker(keep_ladder=options.keep_ladder,
                      max_connections=options.max_connections, parking=keeper,
                      time_wait_ns=tw_ns, grace_ns=quiet_ns)
    feed = tracker.feed
    skip = tracker.skip
    k, n = part
    idle_ns = None if options.idle_s is None else int(options.idle_s * 1e9)
    sweep_every = max(1, options.sweep_every)

    def sweep(index: int) -> None:
        tracker.sweep(tracker.last_ts_ns, tw_ns, quiet_ns, idle_ns)
        for c in tracker.finished:
            keep(c)
        tracker.finished.clear()
        if progress is not None:
            progress(index, bytes_read())

    vectorise = options.vectorised and options.max_connections is None \
        and options.sweep_every >= VECTORISED_SWEEP
    keep_rows = results.add_rows
    window: Any = None  # columnar.Window, when connections are taken a window at a time
    window_rows = 0  # columnar.FIRST_WINDOW records, then twice the last, up to WINDOW_ROWS
    batched = False
    if vectorise or shares is not None:
        from .columnar import FIRST_WINDOW, WINDOW_ROWS, Window, feed_rows, gathered
        from .plain import count_plain
        window = Window()
        window_rows = min(FIRST_WINDOW, WINDOW_ROWS)

    def analyse_window(final: bool) -> bool:
        """Analyse the gathered window; whether it was mostly plain segments of open
        connections (then the next batches are counted at once instead)."""
        from .columnar import analyse_window
        before, size = tracker.plain, window.size
        analyse_window(tracker, window, keep_rows, results.head, tw_ns, quiet_ns, final)
        return tracker.plain - before >= size * VECTORISED_SHARE

    def take(cols: dict[str, Any], first: int, last: int, count: int) -> None:
        """Gathered records (of ``count`` records, packets ``first`` to ``last``): into the
        window, or, after a batch that was mostly plain segments of open connections,
        those counted at once and the rest fed one by one, in order."""
        nonlocal batched, window_rows
        if not batched:
            window.add(cols, first)
            if window.size >= window_rows:
                window_rows = min(2 * window.size, WINDOW_ROWS)
                batched = analyse_window(False)
                sweep(last)
            elif progress is not None:
                progress(last, bytes_read())
            return
        if window.size:
            analyse_window(True)  # what was gathered goes first: capture order
        rest = count_plain(tracker, cols)
        batched = len(rest) <= count * (1 - VECTORISED_SHARE)
        feed_rows(tracker, cols, rest)
        if last // sweep_every != (first - 1) // sweep_every:
            sweep(last)

    prev_ts = backwards = 0
    if shares is not None:  # the records as gathered by the walks of the file's ranges
        for cols, first, last, read[0] in shares.rows(k):
            take(cols, first, last, last - first + 1)
        prev_ts = shares.end_ns
    for batch in cap.batches() if cap is not None else ():
        buf, linktype, first = batch.buf, batch.linktype, batch.first
        starts, lens, stamps = batch.starts, batch.lens, batch.ts_ns
        last = first + len(starts) - 1
        cols = gathered(batch, part, skip) if vectorise else None
        if cols is not None:
            prev_ts, late = _clock(stamps, prev_ts)
            backwards += late
            take(cols, first, last, len(starts))
            continue
        if window is not None and window.size:
            analyse_window(True)  # what was gathered goes first: capture order
        # a link type not gathered (or a clock beyond 64 bits): packet by packet
        plain_before = tracker.plain
        index = first - 1
        for start, incl, ts_ns in zip(starts.tolist(), lens.tolist(), stamps.tolist()):
            index += 1
            if ts_ns < prev_ts:
                backwards += 1
            else:
                prev_ts = ts_ns
            tcp = tcp_packet_at(buf, start, incl, linktype)
            if isinstance(tcp, str):
                if k == 0:
                    skip(tcp)
            elif n == 1 or (tcp[5] + tcp[6]) % n == k:  # the port sum picks the process
                feed(index, ts_ns, tcp)
            if index % sweep_every == 0:
                sweep(index)
        # mostly plain segments of open connections: count the next batch at once
        if vectorise and tracker.plain - plain_before >= len(starts) * VECTORISED_SHARE:
            batched = True
    if window is not None and window.size:
        analyse_window(True)
    if backwards and k == 0:
        info.warnings.append(earlier_warning(backwards))
    # the latest time seen (not the last record's), or later, as recorded (CaptureInfo.end_ns)
    end_ns = max(prev_ts, info.end_ns)
    for c in tracker.finish(end_ns):
        keep(c)
    spill.flush()  # a full disk is told now, before any output is written
    skipped = {info.source: dict(tracker.skipped)}
    if tracker.evicted and n == 1:  # (of a part, said once the parts are joined: _join)
        info.warnings.append(evicted_warning(tracker.evicted))
    return Report([info], results.store(partial(_decode, options, info.source, end_ns), end_ns),
                  skipped, {info.source: tracker.evicted})


def evicted_warning(count: int) -> str:
    return (f"--max-connections: {count} connections evicted before they ended (the longest "
            f"idle); their records are incomplete")


def _clock(stamps: np.ndarray, prev_ts: int) -> tuple[int, int]:
    """A batch's times against the latest before it: the latest after it, and how many
    were earlier than the latest before them."""
    if len(stamps) and stamps[0] >= prev_ts and (stamps[1:] >= stamps[:-1]).all():
        return int(stamps[-1]), 0  # in order (the rule): no loop needed
    late = 0
    for ts_ns in stamps.tolist():
        if ts_ns < prev_ts:
            late += 1
        else:
            prev_ts = ts_ns
    return prev_ts, late


class _Keeper:
    """Finished connections, and TIME_WAITs the tracker parks, are kept as they are (frozen,
    :mod:`teardown_analyzer.parking`) with the few facts totals and folding need, and
    summarised only when the output reads them (:func:`_decode`).  A parked connection a
    late segment takes back is withdrawn and thawed."""

    __slots__ = ("results", "keep_ladder")

    def __init__(self, results: ResultSink, keep_ladder: bool) -> None:
        self.results = results
        self.keep_ladder = keep_ladder

    def keep(self, conn: Conn) -> int:
        return self.results.add(conn.id, freeze(conn), _facts(conn))

    def take_back(self, handle: int) -> Conn:
        return thaw(self.results.withdraw(handle), self.keep_ladder)


_SHAPED = frozenset(KINDS.index(k) for k in ("four-way", "three-way", "none", "half-open",
                                              "rst"))
"""Kinds :mod:`teardown_analyzer.cleanclose` summarises (or tells it cannot)."""


def _decode(options: Options, source: str, end_ns: int, blob: bytes,
            meta: int) -> ConnectionResult:
    """A kept connection's summary, at the end of its capture: for a clean FIN or RST
    close, or a connection still open or half-open, kept as its packets (its coded facts,
    ``meta``, say so), made from them (:mod:`teardown_analyzer.cleanclose`), else by
    summarising what a tracker makes of it."""
    if not blob[0] and not options.keep_ladder and meta & 7 in _SHAPED:
        from .cleanclose import clean_close  # (numpy with it: not every command needs it)
        result = clean_close(blob, end_ns, options.time_wait_s, source)
        if result is not None:
            return result
    return summarize(thaw(blob, options.keep_ladder), end_ns, options, source)


_WORKER_SPILL: Spill | None = None
"""In a --jobs worker: the spill it writes every capture part it analyses to."""
_WORKER_PROGRESS: Any = None
"""In a --jobs worker: the shared array of (packets, bytes read) per task."""


def _start_worker(tokens: Any, progress: Any, stdin_fd: int | None) -> None:
    """Pool initializer: take one of the spills the parent opened before forking (a
    spawned worker inherits none and makes its own, which pickles back with its
    contents), and the array progress is reported in; and standard input back (a copy
    of the parent's descriptor, ``stdin_fd``: multiprocessing closes a worker's own) for
    a capture read from it."""
    global _WORKER_SPILL, _WORKER_PROGRESS
    _WORKER_SPILL = shared_spill(tokens.get())
    _WORKER_PROGRESS = progress
    if stdin_fd is not None:
        sys.stdin = open(stdin_fd, closefd=False)


def _run_part(args: tuple[int, str, Options, tuple[int, int], Any]) -> Report:
    i, path, options, part, shares = args
    shared = _WORKER_PROGRESS

    def report(packets: int, offset: int) -> None:
        shared[2 * i], shared[2 * i + 1] = packets, offset

    return analyze_capture(path, options, part, report if shared is not None else None,
                           _WORKER_SPILL, shares)


def _walk_range(args: tuple[str, Any, int]) -> Any:
    from .pcapsplit import walk
    path, span, shares = args
    assert _WORKER_SPILL is not None
    return walk(path, span, shares, _WORKER_SPILL)


def _walked(pool: Any, paths: list[str], splits: list[int], options: Options) -> list[Any]:
    """For each capture, its :class:`~teardown_analyzer.pcapsplit.Shares` if it is a
    large capture file walked by byte range in ``pool`` (which writes to spills this
    process shares) for its ``splits`` parts, else None: split by connection only."""
    from .capture import Span
    from .pcapsplit import boundaries, merged, splittable
    found: list[Any] = [None] * len(paths)
    if not (options.vectorised and options.max_connections is None
            and options.sweep_every >= VECTORISED_SWEEP):
        return found
    for i, (path, split) in enumerate(zip(paths, splits)):
        head = splittable(path) if split > 1 else None
        if head is None:
            continue
        starts = boundaries(path, head, split)
        if len(starts) > 1:
            ends = starts[1:] + [os.path.getsize(path) + 1]
            spans = [Span(a, z, state=head.state if k else None)
                     for k, (a, z) in enumerate(zip(starts, ends))]
            walks = pool.map(_walk_range, [(path, s, split) for s in spans], chunksize=1)
            found[i] = merged(path, walks)
    return found


def _read_so_far(shared: Any, firsts: list[int], splits: list[int]) -> tuple[int, int]:
    """(packets, bytes) read so far, over all the captures, from what each part put in
    ``shared`` (its packets and bytes at ``2 * part``, ``2 * part + 1``): every part of a
    capture reads all of it, so a capture's are its parts' average."""
    packets = read = 0
    for first, n in zip(firsts, splits):
        packets += sum(shared[2 * (first + k)] for k in range(n)) // n
        read += sum(shared[2 * (first + k) + 1] for k in range(n)) // n
    return packets, read


def _forks() -> bool:
    import multiprocessing
    return "fork" in multiprocessing.get_all_start_methods()


def _rereadable(path: str) -> bool:
    """Whether the capture at ``path`` can be read more than once (by each part of it):
    a regular file, not standard input nor a pipe."""
    return path != "-" and os.path.isfile(path)


def _share_of(options: Options, parts: int) -> Options:
    """``options`` for one of ``parts`` parts of a capture: its share of the cap on
    connections tracked at once."""
    return options if parts == 1 or options.max_connections is None else \
        replace(options, max_connections=max(1, options.max_connections // parts))


def _size(path: str) -> int:
    return os.path.getsize(path) if path != "-" and os.path.isfile(path) else 0


def analyze(paths: Iterable[str], options: Options = Options(), jobs: int = 1,
            progress: Callable[[int, int], None] | None = None) -> Report:
    """Analyse several captures; connection ids run 1, 2, 3 ... across them.

    ``jobs`` > 1 uses that many processes: one capture is split by connection, several
    captures are shared out; the result is identical to ``jobs=1`` (with
    ``max_connections``, each process holds its share of the cap).  One spill file per
    process holds the results, whatever the number of captures.  ``progress(packets,
    bytes)`` is called now and then with the packets and bytes read so far, over all
    the captures.
    """
    paths = list(paths)
    if jobs > 1 and "-" in paths and not _forks():
        jobs = 1  # (a spawned worker could not read this process's standard input)
    if jobs <= 1:
        spill = Spill()
        parts = []
        done_packets = done_bytes = 0
        for p in paths:
            tick = None if progress is None else \
                (lambda n, b, base=(done_packets, done_bytes):  # type: ignore[misc]
                 progress(base[0] + n, base[1] + b))
            parts.append(analyze_capture(p, options, (0, 1), tick, spill))
            done_packets += parts[-1].captures[0].packets
            done_bytes += _size(p)
    else:
        import multiprocessing
        split = 1 if len(paths) >= jobs else jobs
        # each capture in as many parts, each part reading all of it: one read from a
        # pipe (standard input, a FIFO) can be read only once, so in one part
        splits = [split if _rereadable(p) else 1 for p in paths]
        firsts = [sum(splits[:i]) for i in range(len(paths))]  # each one's first part
        workers = min(jobs, sum(splits))
        # fork where there is one: no re-import of __main__ (a script read from stdin
        # cannot be re-imported by a spawned worker), a faster start, and the workers
        # write their results to spills opened here
        ctx = multiprocessing.get_context("fork" if _forks() else "spawn")
        if ctx.get_start_method() == "fork":
            # what every worker imports to read a capture (numpy, about 0.1 s) is imported
            # once, here, before the fork, instead of by each worker after it
            for name in ("columnar", "pcapsplit"):
                importlib.import_module(f"{__package__}.{name}")
        spills = open_shared(workers)
        tokens = ctx.SimpleQueue()
        for s in spills:
            tokens.put(s.token)
        shared = ctx.Array("q", 2 * sum(splits), lock=False)
        stdin_fd = os.dup(sys.stdin.fileno()) if "-" in paths else None
        try:
            with ctx.Pool(workers, initializer=_start_worker,
                          initargs=(tokens, shared, stdin_fd)) as pool:
                # a large pcap file is first walked by byte range (fork only: the walks
                # are read back from the spills opened here)
                walked = _walked(pool, paths, splits, options) \
                    if ctx.get_start_method() == "fork" else [None] * len(paths)
                tasks = [(firsts[i] + k, p, _share_of(options, n), (k, n), walked[i])
                         for i, (p, n) in enumerate(zip(paths, splits)) for k in range(n)]
                pending = pool.map_async(_run_part, tasks, chunksize=1)
                while progress is not None:
                    ready = pending.ready()
                    progress(*_read_so_far(shared, firsts, splits))
                    if ready:
                        break
                    pending.wait(0.25)
                done = pending.get()
        finally:
            close_shared(spills)
            if stdin_fd is not None:
                os.close(stdin_fd)
        parts = [_join(done[a:a + n], walked[i])
                 for i, (a, n) in enumerate(zip(firsts, splits))]
    return renumbered(parts)


def renumbered(parts: list[Report]) -> Report:
    """Reports of captures merged; ids run 1, 2, 3 ... in the order first seen (the store
    numbers results by position, see :class:`ResultStore`)."""
    report = Report()
    for part in parts:
        report = report.merge(part)
    return report


def _join(parts: list[Report], shares: Any = None) -> Report:
    """The parts of one capture, split by connection, as one report (``shares``: the
    capture's :class:`~teardown_analyzer.pcapsplit.Shares`, whose walks counted the
    packets that are not TCP)."""
    first = parts[0]
    info = first.captures[0]
    skipped: dict[str, int] = {}
    counts = [p.skipped[info.source] for p in parts]
    if shares is not None:
        counts += [walk.skipped for walk, _before in shares.ranges]
    store = ResultStore()
    for p in parts:
        store = store + p.connections
        for w in p.captures[0].warnings:  # (the same from each walk of the whole file)
            if w not in info.warnings:
                info.warnings.append(w)
    for found in counts:
        for reason, count in found.items():
            skipped[reason] = skipped.get(reason, 0) + count
    evicted = sum(p.evicted.get(info.source, 0) for p in parts)
    if evicted:
        info.warnings.append(evicted_warning(evicted))
    return Report([info], store.joined(), {info.source: skipped}, {info.source: evicted})


# --- summarising one connection --------------------------------------------------------

def _roles(conn: Conn) -> tuple[int, str]:
    """Index of the client endpoint, and the evidence."""
    if conn.client is not None:
        return conn.client, "handshake" if conn.syn_seen else "SYN-ACK"
    p0, p1 = conn.addrs[0][1], conn.addrs[1][1]
    if (p0 < 1024) != (p1 < 1024):
        return (1 if p0 < 1024 else 0), "port heuristic: the well-known port is the server"
    if (p0 in EPHEMERAL) != (p1 in EPHEMERAL):
        return (0 if p0 in EPHEMERAL else 1), ("port heuristic: the port in Linux's "
                                                "ephemeral range is the client")
    return (0 if p0 > p1 else 1), "port heuristic: the higher port is the client"


def _states(conn: Conn, i: int,
            timer: tuple[int, StateEntry] | None) -> tuple[StateEntry, ...]:
    """Side ``i``'s states, and the CLOSED its TIME_WAIT timer implies (``timer``)."""
    side = conn.sides[i]
    out: list[StateEntry] = []
    first = side.transitions[0].old if side.transitions else side.state
    if first is not _LISTEN and first is not _CLOSED:
        out.append(StateEntry(first._value_, conn.first_ts_ns / 1e9, conn.first_packet,
                              "state when the capture first saw the connection"))
    unshown = {k: note for j, k, note in conn.unshown if j == i}
    for k, t in enumerate(side.transitions):
        note = unshown.get(k, "")
        note = f"{note}; {t.note}" if note and t.note else note or t.note
        out.append(StateEntry(t.new._value_, t.ts_ns / 1e9, t.packet, note, t.inferred,
                              t.old._value_, t.event._value_))
    if timer is not None and timer[0] == i:
        out.append(timer[1])
    return tuple(out)


def summarize(conn: Conn, end_ns: int, options: Options, source: str = "") -> ConnectionResult:
    """What ``conn`` tells, at ``end_ns`` (the end of its capture).  ``conn`` is not
    changed."""
    ci, roles_from = _roles(conn)
    si = 1 - ci
    role = {ci: "client", si: "server"}
    # TIME_WAIT: its timer, which the end of the capture may or may not reach
    tw_dict = None
    timer = None  # (side, the CLOSED its timer implies) when the capture ran past it
    for tw in conn.time_wait:
        side = conn.sides[tw.side]
        # the timer restarts on every retransmitted FIN it re-ACKs (kernel-teardown 2.3)
        last_restart = max([tw.entered_ts_ns] + [ts for ts, _ in
                                                 conn.dirs[1 - tw.side].fin_retx])
        expired = None
        out = next((t for t in side.transitions if t.old is SideState.TIME_WAIT), None)
        if tw.reuse and tw.reuse.get("killed_by_rst"):
            expired = (f"killed by the RST in packet {tw.reuse['killed_by_rst']}, the new "
                       f"SYN's sender's answer to its ACK (RFC 1337 assassination; "
                       f"tcp_rfc1337=0)")
        elif tw.reuse and tw.reuse.get("ended_time_wait"):
            expired = f"ended by the new SYN on the 4-tuple (packet {tw.reuse['packet']})"
        elif out is not None and out.event is Event.RECV_RST:
            expired = (f"killed by the RST in packet {out.packet} (RFC 1337 assassination; "
                       f"tcp_rfc1337=0)")
        elif side.state is SideState.TIME_WAIT:
            closed, expired = time_wait_end(tw.entered_ts_ns, last_restart, end_ns,
                                            options.time_wait_s)
            if closed is not None:
                timer = (tw.side, closed)
        tw_dict = {
            "side": role[tw.side], "entered_ts": tw.entered_ts_ns / 1e9,
            "entered_packet": tw.entered_packet,
            "fin_reacks": len(tw.fin_reacks), "fin_reack_packets": list(tw.fin_reacks),
            "arrivals": tw.arrivals, "reuse": tw.reuse, "end": expired,
        }
        break  # one TIME_WAIT per connection except in a simultaneous close
    if len(conn.time_wait) == 2 and tw_dict is not None:
        tw_dict["side"] = "both"
    kind, initiator = _classify(conn, ci)
    d_c, d_s = conn.dirs[ci], conn.dirs[si]
    half_s = None
    half_bytes = half_segs = 0
    half = _half_close(conn)
    if half is not None:
        first_ts, end, first_i = half
        half_s = round(max(0, (end_ns if end is None else end) - first_ts) / 1e9, 9)
        other = conn.dirs[1 - first_i]
        half_bytes, half_segs = other.data_after_peer_fin, other.segs_after_peer_fin
    anomalies = _anomalies(conn, role)
    notes = list(conn.notes)
    if conn.reuse_isn_note:
        notes.append(conn.reuse_isn_note)
    notes.extend(_held_at_the_end(conn, role))
    handshake = "seen" if conn.syn_seen and conn.synack_seen and len(conn.handshake) == 3 \
        else "partial" if conn.syn_seen or conn.synack_seen else "missing"
    rsts = tuple({"from": role[r.sender], "ts": r.ts_ns / 1e9, "packet": r.packet,
                  "in_window": r.acceptable, "bare": r.bare, "note": r.note}
                 for r in conn.rsts)
    return ConnectionResult(
        id=conn.id,
        client=(address(conn.addrs[ci][0]), conn.addrs[ci][1]),
        server=(address(conn.addrs[si][0]), conn.addrs[si][1]),
        incarnation=conn.incarnation,
        first_ts=conn.first_ts_ns / 1e9, last_ts=conn.last_ts_ns / 1e9,
        packets=conn.packets, handshake=handshake, roles_from=roles_from,
        kind=kind, initiator=initiator, half_close_s=half_s,
        half_close_bytes=half_bytes, half_close_segments=half_segs,
        client_states=_states(conn, ci, timer), server_states=_states(conn, si, timer),
        time_wait=tw_dict, rsts=rsts, anomalies=tuple(anomalies), notes=tuple(notes),
        zeek_state=zeek_state(conn, ci),
        directions={"client": _direction(d_c), "server": _direction(d_s)},
        vantage=_vantage(conn),
        ladder=tuple(_step(st, role) for st in conn.ladder),
        source=source,
        reused_from=conn.reused_from,
    )


def _held_at_the_end(conn: Conn, role: dict[int, str]) -> list[str]:
    """A side that sent no FIN and was still probing the peer's zero window when the
    capture ended: whether it had called close() or shutdown() by then no segment tells,
    its FIN waiting behind the data (flows.held_fin_note)."""
    return [f"at the end of the capture the {role[i]}'s data was still held back by the "
            f"{role[1 - i]}'s zero window ({d.window_probes} zero-window probe"
            f"{'s' if d.window_probes > 1 else ''}): a close() or shutdown() by then would "
            f"not show, its FIN waiting behind the data"
            for i, d in enumerate(conn.dirs)
            if d.window_probes and d.fin_seq is None and conn.dirs[1 - i].last_window == 0
            and conn.sides[i].state is not _CLOSED]


def _anomalies(conn: Conn, role: dict[int, str]) -> list[str]:
    anomalies = list(conn.anomalies)
    for i in (0, 1):
        for a in conn.sides[i].anomalies:
            anomalies.append(f"{role[i]}: {a}")
    for i, d in enumerate(conn.dirs):
        if d.fin_seq is not None and d.fin_acked_ts_ns is None and not conn.rsts:
            anomalies.append(f"ACK of the {role[i]}'s FIN not captured")
    if not conn.syn_seen and not conn.synack_seen:
        anomalies.append("capture started mid-connection")
    return anomalies


def endpoints(blob: bytes) -> tuple[tuple[str, int], tuple[str, int]]:
    """(client, server) of the connection a stored blob holds, as its summary names them
    (``ConnectionResult.client``, ``.server``), without summarising it: what a check's
    rule scoped by port or address needs of every connection."""
    if not blob[0]:  # kept as its packets, the first the client's SYN (recognise.py)
        (a_0, port_0), (a_1, port_1) = blob_endpoints(blob)
        return (address(a_0), port_0), (address(a_1), port_1)
    conn = thaw(blob)
    ci = _roles(conn)[0]
    (a_c, port_c), (a_s, port_s) = conn.addrs[ci], conn.addrs[1 - ci]
    return (address(a_c), port_c), (address(a_s), port_s)


def _half_close(conn: Conn) -> tuple[int, int | None, int] | None:
    """When ``conn``'s half-close began (its first FIN), when it ended (the second FIN, or
    the RST that ended the connection; None: it runs to the end of the capture, half-open)
    and which direction sent that first FIN; None if no FIN was sent."""
    fins = sorted([(d.fin_ts_ns, i) for i, d in enumerate(conn.dirs)
                   if d.fin_ts_ns is not None])
    if not fins:
        return None
    first_ts, first_i = fins[0]
    rst_after = [t for t, _ in _resets(conn) if t >= first_ts]
    # (a socket connected to itself received its one FIN as it sent it: no half-close)
    end = fins[1][0] if len(fins) > 1 else first_ts if conn.self_connected \
        else min(rst_after) if rst_after else None
    return first_ts, end, first_i


def _facts(conn: Conn) -> ConnFacts:
    """What :func:`summarize` would say of the facts a store codes (kind, RSTs, TIME_WAIT
    side, unusual, initiator, FIN retransmissions, half-close), for the totals, the folded
    table and a check's rules, without the rest of the summary."""
    ci = _roles(conn)[0]
    role = {ci: "client", 1 - ci: "server"}
    kind, initiator = _classify(conn, ci)
    tws = conn.time_wait
    side = None if not tws else "both" if len(tws) == 2 else role[tws[0].side]
    half = _half_close(conn)
    half_ns = HALF_NONE if half is None else running_half(half[0]) if half[1] is None \
        else min(max(0, half[1] - half[0]), HALF_CAP)
    return (kind, len(conn.rsts), side, kind in UNUSUAL or bool(_anomalies(conn, role)),
            initiator, max(len(d.fin_retx) for d in conn.dirs), half_ns)


def _direction(d: Any) -> dict[str, Any]:
    fin = None
    if d.fin_seq is not None:
        fin = fin_dict(d.fin_seq, d.fin_ts_ns, d.fin_packet, d.fin_with_data,
                       [{"ts": ts / 1e9, "packet": p} for ts, p in d.fin_retx],
                       d.fin_acked_ts_ns, d.fin_acked_packet, d.fin_acked_by_fin)
    return direction_dict(d.isn, d.packets, d.payload_bytes, d.next_seq, d.wscale, fin,
                          d.data_after_peer_fin, d.data_after_own_fin, d.keepalives,
                          d.window_probes)


def _step(st: LadderStep, role: dict[int, str]) -> dict[str, Any]:
    """A ladder step as the results carry it.  A side still LISTEN has no state claimed
    (states.py rule 8: no answer yet from a socket of its own): null."""
    from .fields import flag_names
    return {"packet": st.packet, "ts": st.ts_ns / 1e9, "from": role[st.sender],
            "flags": flag_names(st.flags), "seq": st.seq, "ack": st.ack, "len": st.length,
            "states": {role[i]: None if st.states[i] is _LISTEN else st.states[i]._value_
                       for i in (0, 1)},
            "note": st.note}


def _classify(conn: Conn, ci: int) -> tuple[str, str | None]:
    role = {ci: "client", 1 - ci: "server"}
    t0, t1 = conn.dirs[0].fin_ts_ns, conn.dirs[1].fin_ts_ns
    fins = sorted([(t, i) for i, t in ((0, t0), (1, t1)) if t is not None])
    resets = _resets(conn)
    if not fins:
        if resets:
            return "rst", role[resets[0][1]]
        return "none", None
    first_ts, first = fins[0]
    closing = [any(t.new is _CLOSING for t in s.transitions) for s in conn.sides]
    crossed = any(closing)
    both = all(closing) and len(fins) == 2
    v = _vantage(conn) if crossed and not both and len(fins) == 2 else None
    if v is not None:
        # FINs that crossed, one side not through CLOSING (an RST, or the other FIN lost):
        # the first closer is the one whose FIN left first, the far side's one one-way
        # delay before the capture point saw it
        near = {"near the client": ci, "near the server": 1 - ci}.get(v["point"])
        if near is not None:
            sent = sorted((t - (0 if i == near else round(v["one_way_s"] * 1e9)), i)
                          for t, i in fins)
            first = sent[0][1]
    if resets and resets[-1][0] >= first_ts:
        if all(closing):
            return "fin-then-rst", "both"  # (a simultaneous close, then an RST)
        return "fin-then-rst", role[first]
    if crossed:
        # (one FIN only: a socket connected to itself, which received the FIN it sent)
        return "simultaneous", "both" if both else role[first]
    if len(fins) == 1:
        return "half-open", role[first]
    d_first = conn.dirs[first]
    if d_first.fin_acked_by_fin:
        return "three-way", role[first]
    return "four-way", role[first]


def _vantage(conn: Conn) -> dict[str, Any] | None:
    """Where the capture was taken, from the handshake's timing (a SYN, its SYN-ACK and the
    ACK of that; a simultaneous open's timing tells nothing of the kind)."""
    h = conn.handshake
    if len(h) < 3 or conn.simultaneous_open:
        return None
    ci = conn.client if conn.client is not None else 0
    return vantage(h[0], h[1], h[2], (round_trip(h[2] - h[1], conn.dirs[ci].answer_ns),
                                      round_trip(h[1] - h[0], conn.dirs[1 - ci].answer_ns)))


def zeek_state(conn: Conn, ci: int) -> str:
    """Zeek's conn_state for this connection, by Zeek's documented definitions."""
    si = 1 - ci
    syn = conn.syn_seen
    # (Zeek tells the originator's packets by their source address and port: a socket
    # connected to itself sends only those, its SYN-ACK too, so no reply is ever seen)
    synack = conn.synack_seen and not conn.self_connected
    o_rst = any(r.sender == ci for r in conn.rsts)
    r_rst = any(r.sender == si for r in conn.rsts)
    o_fin = conn.dirs[ci].fin_seq is not None
    r_fin = conn.dirs[si].fin_seq is not None
    if syn and not synack:
        if r_rst:
            return "REJ"
        if o_rst:
            return "RSTOS0"
        if o_fin:
            return "SH"
        return "S0" if conn.dirs[si].packets == 0 else "OTH"
    if synack and not syn:
        if r_rst:
            return "RSTRH"
        if r_fin:
            return "SHR"
    if o_rst:
        return "RSTO"
    if r_rst:
        return "RSTR"
    if o_fin and r_fin:
        return "SF"
    if not syn and not synack:
        return "OTH"  # midstream traffic that was not closed
    if o_fin:
        return "S2"
    if r_fin:
        return "S3"
    return "S1"


__all__ = ["analyze", "analyze_capture", "renumbered", "summarize", "zeek_state", "Options",
           "Report", "ConnectionResult", "StateEntry", "KINDS"]
