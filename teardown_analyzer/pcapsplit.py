"""One large capture file (classic pcap or pcapng) shared by several processes
(``--jobs``): walked by byte range, analysed by connection.

Reading a capture is a walk along the chain of record lengths (a loop per record) and a
gathering of each record's fields (:func:`teardown_analyzer.columnar.gather`).  Split only
by connection, every process would do both for the whole file, to find its connections
among all the records.  Instead, for N processes:

1. the file is cut into N byte ranges; each range after the first begins at the first
   place after its cut that looks like a run of record headers, or of pcapng blocks
   beginning with a packet block (:func:`boundaries`: a guess, checked in step 3); a
   pcapng range begins in the state (byte order, interfaces) the file's first packet
   block is in (:func:`splittable`), so a file whose state changes after that (a section
   header or interface description among the packets) is not split this way;
2. each process walks one range (:func:`walk`, a :class:`~teardown_analyzer.capture.Span`
   of the file) and gathers its records, and writes them, as rows of :data:`ROWS`, to its
   spill file, in N shares by connection (the port sum modulo N); it also notes what the
   walk said and what the clock did;
3. the guesses are checked: the walk of each range must stop exactly where the next one
   began (the chain of lengths, followed from the first record, leads there).  If one does
   not, the file is analysed by connection only, as without this module;
4. each process analyses one share: the rows of its connections, range after range,
   which is every record of its connections in capture order
   (:func:`teardown_analyzer.analysis.analyze_capture` with ``shares``).

Packet numbers, warnings, errors, the clock's "earlier than the packet before" count and
the packets skipped are those of one walk from the first record to the last
(:func:`merged`): ranges are numbered from 1 in step 2 and renumbered after; a range whose
walk said anything (a warning naming a packet, an error) is walked again, with its true
numbers, to say it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from .capture import BT_EPB, BT_PB, BT_SPB, CHUNK, MAX_BLOCK, MAX_RECORD, PCAP_MAGICS, \
    CaptureInfo, IfaceStats, Span, earlier_warning, merged_statistics, open_capture, \
    over_snap_warning, unknown_blocks_warning, use_statistics
from .columnar import COLUMNS, LAYOUTS, gathered
from .errors import CaptureError

if TYPE_CHECKING:
    from .spill import Spill

SPLIT_BYTES = 32 << 20
"""Files smaller than this are split by connection only (walking them is quick)."""
RUN = 8
"""Record headers (pcapng: blocks) in a row :func:`boundaries` wants before it takes a
place for the beginning of a range."""
NEAR = 1 << 16
"""Bytes after a cut :func:`boundaries` looks in first, before :data:`CHUNK` bytes."""
YEAR = 366 * 86400
"""How far from the first record's time a classic pcap record header's may be to look
like one."""
RISING = 4096
"""The first times at which a range's clock reached a new high that a walk keeps: the
records that are "earlier than the packet before" only because of the ranges before it
are among them (if there are more of those, the file is not split this way)."""
ROWS = np.dtype([("packet", "<i8"), ("ts", "<i8"), ("key", "u1", (37,)), ("seq", "<u4"),
                 ("ack", "<u4"), ("word", "<u2"), ("flags", "<u2"), ("tcp_len", "<i4"),
                 ("plen", "<i4"), ("window", "<u2"), ("checksum", "<i4"), ("ipid", "<i4"),
                 ("opt", "<i4"), ("regular", "?")])
"""A gathered record (:func:`~teardown_analyzer.columnar.gather`'s columns): what is
written to a spill between the two steps, a batch's records column after column."""
assert ROWS.names == COLUMNS


def _bytes(cols: dict[str, np.ndarray], column: str, rows: np.ndarray) -> memoryview:
    """A column of the records ``rows``, as :data:`ROWS` has it, as bytes (no copy)."""
    return np.asarray(cols[column][rows], ROWS[column].base).reshape(-1).view(
        np.uint8).data


def splittable(path: str) -> Span | None:
    """Whether ``path`` can be walked by range: an uncompressed classic pcap or pcapng file
    of :data:`SPLIT_BYTES` or more (a regular file: it is read from several places at
    once) whose link types are gathered (:data:`~teardown_analyzer.columnar.LAYOUTS`).
    If so, the walk of its beginning up to its first packet (:class:`Span`; for pcapng,
    its ``state`` is what every range after the first begins with)."""
    try:
        with open(path, "rb") as f:
            if not os.path.isfile(path) or os.fstat(f.fileno()).st_size < SPLIT_BYTES:
                return None
            magic = f.read(4)
        head = Span(0, 0)  # up to the first packet
        cap = open_capture(path, head)
        for _ in cap.batches():
            pass
    except (OSError, CaptureError):
        return None
    if cap.info.error is not None or cap.info.compressed or (
            magic not in PCAP_MAGICS and head.state is None):
        return None
    linktypes = [i.linktype for i in head.state[1]] if head.state else \
        list(cap.info.linktypes.values())
    return head if linktypes and all(lt in LAYOUTS for lt in linktypes) else None


def boundaries(path: str, head: Span, parts: int) -> list[int]:
    """Where each range begins: the file's first record (or byte 0 of a pcapng file), then,
    for each k/parts of the file, the first place after it where :data:`RUN` records (or
    blocks, the first a packet block) chain that look like ones (:func:`_pcap_like`,
    :func:`_pcapng_like`), looked for within :data:`NEAR` bytes, then :data:`CHUNK`
    bytes; a cut with none is left out."""
    with open(path, "rb") as f:
        header = f.read(28)
        size = os.fstat(f.fileno()).st_size
        likely = _pcapng_like(head.state[0]) if head.state else _pcap_like(header)
        starts = [0 if head.state else 24]
        for k in range(1, parts):
            at = max(size * k // parts, starts[-1] + 1)
            for length in (NEAR, CHUNK):  # (a run of short records: found in the first kB)
                found = likely(os.pread(f.fileno(), length, at))
                if found is not None:
                    break
            if found is not None:
                starts.append(at + found)
    return starts


def _pcap_like(header: bytes) -> Callable[[bytes], int | None]:
    """A finder of the first offset in a buffer where :data:`RUN` record headers chain that
    look like ones: a captured length no larger than the walk accepts nor than the length
    on the wire, a sub-second field in range, a time within a year of the first
    record's."""
    order, nano, rec_len = PCAP_MAGICS[header[:4]]
    snaplen = struct.unpack(order + "I", header[16:20])[0]
    limit = min(max(snaplen, 262144), MAX_RECORD)  # as capture._pcap_loop has it
    frac_limit = 1_000_000_000 if nano else 1_000_000
    first_sec = struct.unpack(order + "I", header[24:28])[0] if len(header) == 28 else 0
    fields = np.dtype([(f, order + "u4") for f in ("sec", "frac", "incl", "orig")])

    def find(buf: bytes) -> int | None:
        n = len(buf) - rec_len + 1
        if n <= 0:
            return None
        h = np.ndarray((n,), fields, buf, strides=(1,))  # a record header at every offset
        incl = h["incl"].astype(np.int64)
        likely = (incl <= limit) & (incl <= h["orig"]) & (h["frac"] < frac_limit) \
            & (np.abs(h["sec"].astype(np.int64) - first_sec) <= YEAR)
        return _chained(np.flatnonzero(likely), likely, rec_len + incl)
    return find


def _pcapng_like(order: str) -> Callable[[bytes], int | None]:
    """A finder of the first offset in a buffer where a packet block (enhanced, simple or
    obsolete) begins a chain of :data:`RUN` blocks that look like ones: a length that is a
    multiple of 4 and within bounds, and the same length again at the block's end."""
    head = np.dtype([("type", order + "u4"), ("len", order + "u4")])
    word = np.dtype(order + "u4")

    def find(buf: bytes) -> int | None:
        n = len(buf) - 12 + 1
        if n <= 0:
            return None
        h = np.ndarray((n,), head, buf, strides=(1,))  # a block header at every offset
        blen = h["len"].astype(np.int64)
        fits = (blen >= 12) & (blen % 4 == 0) & (blen <= MAX_BLOCK) \
            & (np.arange(n) + blen <= len(buf))
        trailer = np.zeros(n, np.int64)
        at = np.flatnonzero(fits)
        trailer[at] = np.ndarray((len(buf) - 3,), word, buf, strides=(1,))[at + blen[at] - 4]
        likely = fits & (trailer == blen)
        packet = likely & np.isin(h["type"], [BT_EPB, BT_SPB, BT_PB])
        return _chained(np.flatnonzero(packet), likely, blen)
    return find


def _chained(candidates: np.ndarray, likely: np.ndarray, step: np.ndarray) -> int | None:
    """The first of ``candidates`` from which :data:`RUN` offsets that are ``likely``
    chain, each ``step`` after the one before."""
    for p in candidates.tolist():
        q, run = p, 0
        while run < RUN and q < len(likely) and likely[q]:
            q, run = q + int(step[q]), run + 1
        if run == RUN:
            return p
    return None


@dataclass
class Walked:
    """What the walk of one range (:func:`walk`) found."""

    span: Span
    info: CaptureInfo
    shares: list[list[tuple[Any, int, int, int, int, int]]]
    """Per share: its rows, batch by batch, as (spill, where, how many rows, the batch's
    first and last packet number, the byte the batch ends at)."""
    skipped: dict[str, int] = field(default_factory=dict)
    late: int = 0
    """Records earlier than the latest before them in the range."""
    top: int = 0
    """The latest time in the range."""
    rising: list[int] = field(default_factory=list)
    """The first :data:`RISING` times at which the range's clock reached a new high."""
    gathered: bool = True
    """False if a batch could not be gathered (a pcapng interface of another link type,
    a clock beyond 64 bits): the file is then split by connection only."""


def walk(path: str, span: Span, shares: int, spill: "Spill") -> Walked:
    """Walk the packets of ``path`` in ``span``; write the TCP ones, gathered, to
    ``spill``, in ``shares`` shares by connection."""
    begun = replace(span)
    try:
        cap = open_capture(path, span)
    except CaptureError as exc:  # in its first records
        if span.start <= 24:
            raise  # the file's header: as without a split
        return Walked(begun, CaptureInfo(path, error=exc), [[] for _ in range(shares)])
    done = Walked(begun, cap.info, [[] for _ in range(shares)])
    skipped = done.skipped

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    top = 0
    for batch in cap.batches():
        cols = gathered(batch, (0, 1), skip)
        if cols is None:
            done.gathered = False
            break
        ts = batch.ts_ns
        highs = np.maximum.accumulate(np.concatenate(([top], ts)))
        new_high = ts >= highs[:-1]
        done.late += int(len(ts) - new_high.sum())
        if len(done.rising) < RISING:
            done.rising += ts[new_high][:RISING - len(done.rising)].tolist()
        top = int(highs[-1])
        key = cols["key"]
        share = ((key[:, 17].astype(np.int64) << 8 | key[:, 18])
                 + (key[:, 35].astype(np.int64) << 8 | key[:, 36])) % shares
        last = batch.first + len(batch.starts) - 1
        for j in range(shares):
            rows = np.flatnonzero(share == j)
            where = spill.put(_bytes(cols, COLUMNS[0], rows))
            for c in COLUMNS[1:]:  # column after column
                spill.put(_bytes(cols, c, rows))
            done.shares[j].append((spill, where, len(rows), batch.first, last, cap.bytes_read))
    spill.flush()
    done.top = top
    done.span.stopped_at, done.span.over_snap = span.stopped_at, span.over_snap
    done.span.snaplen, done.span.unknown_blocks = span.snaplen, span.unknown_blocks
    done.span.statistics = span.statistics
    done.span.sections = span.sections
    return done


def _walked_only(path: str, span: Span) -> CaptureInfo:
    """What the walk of ``span`` says (an error in its first packets too)."""
    try:
        cap = open_capture(path, span)
    except CaptureError as exc:
        return CaptureInfo(path, error=exc)
    for _ in cap.batches():
        pass
    return cap.info


@dataclass
class Shares:
    """A capture's records as :func:`walk` wrote them, ranges checked and renumbered
    (:func:`merged`): what :func:`~teardown_analyzer.analysis.analyze_capture` reads
    instead of the file."""

    info: CaptureInfo
    end_ns: int
    ranges: list[tuple[Walked, int]]
    """Each range's walk and the number of packets before it."""

    def rows(self, share: int) -> Iterator[tuple[dict[str, np.ndarray], int, int, int]]:
        """The records of one share, batch by batch: (columns, first and last packet
        number of the batch, bytes read by then)."""
        for walked, before in self.ranges:
            for spill, where, count, first, last, read in walked.shares[share]:
                data = spill.get(where, count * ROWS.itemsize)
                cols, at = {}, 0
                for c in COLUMNS:  # (read-only: the window copies them)
                    item = ROWS[c]
                    cols[c] = np.frombuffer(data, item.base, count * item.itemsize
                                            // item.base.itemsize, at).reshape(-1, *item.shape)
                    at += count * item.itemsize
                cols["packet"] = cols["packet"] + before
                yield cols, first + before, last + before, read


def merged(path: str, walks: list[Walked]) -> Shares | None:
    """The walks of a file's ranges as one: None if a range's walk did not stop where
    the next one began (a guessed beginning that was no record header), if a batch could
    not be gathered, or if a pcapng file's state changes in its middle (a section header
    or interface description after a packet block)."""
    ranges: list[tuple[Walked, int]] = []
    before = 0
    for k, w in enumerate(walks):
        if not w.gathered or w.span.sections:
            return None
        ranges.append((w, before))
        before += w.info.packets
        if w.info.error is not None:
            break  # the walk of the whole file stops there too
        if k + 1 < len(walks) and w.span.stopped_at != walks[k + 1].span.start:
            return None
    head = ranges[0][0].info
    info = replace(head, warnings=[], linktypes=dict(head.linktypes))
    over, first_over, snaplen = 0, 0, ranges[0][0].span.snaplen
    late = top = unknown = 0
    statistics: dict[int, IfaceStats] = {}
    for w, before in ranges:
        said = w.info
        if before and (said.warnings or said.error is not None):
            # said with the range's own numbers: walked again to say it with the true ones
            said = _walked_only(path, Span(w.span.start, w.span.stop, before, w.span.state))
        info.warnings += said.warnings
        info.error = said.error
        unknown += w.span.unknown_blocks
        statistics = merged_statistics(statistics, w.span.statistics)
        count, first = w.span.over_snap
        over, first_over = over + count, first_over or (first and first + before)
        late += w.late + sum(1 for t in w.rising if t < top)
        if w.rising and w.rising[-1] < top and len(w.rising) == RISING:
            return None  # more of them than were kept
        top = max(top, w.top)
        if w.info.packets:
            info.packets = before + w.info.packets
            if info.first_ts_ns is None:
                info.first_ts_ns = w.info.first_ts_ns
            info.last_ts_ns = w.info.last_ts_ns
    if over:
        info.warnings.append(over_snap_warning(over, first_over, snaplen))
    if unknown and info.error is None:  # (a walk that fails says nothing of them)
        info.warnings.append(unknown_blocks_warning(unknown))
    if late:
        info.warnings.append(earlier_warning(late))
    if info.error is None:  # (as one walk, stopped by the error, would not say it)
        use_statistics(info, statistics, info.packets)
    return Shares(info, max(top, info.end_ns), ranges)
