"""Reading capture files: classic pcap, pcapng, gzip-compressed, or standard input.

The only module that opens files.  It yields :class:`Frame` records (packet number,
integer-nanosecond timestamp, link type, bytes), or the same as :class:`Batch` columns
(numpy arrays of offsets, lengths and times into one buffer), and nothing else; decoding
starts in :mod:`teardown_analyzer.link`.

The format is told by the magic number, never by the file name.  The record walkers
are our own (``struct``, and numpy for a whole chunk of pcap records at once: only
following the chain of record lengths is a loop per record), because of dpkt's quirks
(dpkt 1.9.8): its readers round nanosecond timestamps through ``float``/``Decimal``,
know only the first pcapng interface, raise ``NeedData`` in the middle of iteration,
and its pcapng option parser fails on an interface comment that is not UTF-8.  The
numbers the walker looks for (block types, option codes) are written out here, with
the names dpkt gives them (tests/test_capture.py checks they are dpkt's), so that
reading a capture does not import dpkt (a twentieth of a second at every start).

A capture that breaks off part-way (a record cut short, a corrupt block length)
stops the iteration; the frames read so far stand, and the problem is kept in
:attr:`CaptureInfo.error` for the caller to report.  Only a file that cannot be
read at all raises :class:`~teardown_analyzer.errors.CaptureError` from
:func:`open_capture`.
"""

from __future__ import annotations

import gzip
import io
import struct
import sys
import weakref
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator, NamedTuple, cast

from .errors import CaptureError, printable

if TYPE_CHECKING:
    import numpy as np

# pcap magic numbers (as read little-endian) -> (byte order, ns resolution, record header)
PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", False, 16),
    b"\xa1\xb2\xc3\xd4": (">", False, 16),
    b"\x4d\x3c\xb2\xa1": ("<", True, 16),
    b"\xa1\xb2\x3c\x4d": (">", True, 16),
    # Kuznetzov's modified pcap (old Red Hat tcpdump): 8 extra bytes per record header
    b"\x34\xcd\xb2\xa1": ("<", False, 24),
    b"\xa1\xb2\xcd\x34": (">", False, 24),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_GZIP_MAGIC = b"\x1f\x8b"

# pcapng block types (draft-ietf-opsawg-pcapng section 11.1) and the interface options
# read, as dpkt.pcapng names them (PCAPNG_BT_IDB ..., PCAPNG_OPT_IF_TSRESOL ...); the
# interface statistics block and its options (section 4.6), which dpkt does not name
BT_IDB, BT_PB, BT_SPB, BT_ISB, BT_EPB = 1, 2, 3, 5, 6
OPT_IF_TSRESOL, OPT_IF_TSOFFSET = 9, 14
OPT_ISB_ENDTIME, OPT_ISB_IFRECV, OPT_ISB_IFDROP, OPT_ISB_OSDROP = 3, 4, 5, 7

# A record larger than this is taken as corruption, whatever the snap length says:
# it keeps a crafted 2**31 caplen from being allocated.  (libpcap's own limit for
# reading is 256 KiB for most link types; pcapng writers use up to 256 MiB.)
MAX_RECORD = 16 * 1024 * 1024
CHUNK = 1 << 20
"""Bytes of a pcap file read at a time, at least; ..."""
CHUNK_RECORDS = 8192
"""... or as many as this many records take, at their mean size so far, up to
:data:`MAX_CHUNK`: each batch has enough records for numpy's work on it to outweigh its
cost per call, and a capture of small packets keeps its small batches (memory)."""
MAX_CHUNK = 8 << 20
MAX_BLOCK = MAX_RECORD + 4096


class Frame(NamedTuple):
    """One captured packet (a named tuple: cheap to make, millions of times)."""

    index: int  # type: ignore[assignment]  # (the name hides tuple.index, never called)
    """Packet number, counted from 1 as Wireshark does."""
    ts_ns: int
    """Capture time, integer nanoseconds since the epoch."""
    linktype: int
    """LINKTYPE_/DLT_ value of the interface it was captured on."""
    data: bytes
    """The captured bytes (possibly fewer than were on the wire)."""
    orig_len: int
    """Length of the packet on the wire."""
    interface: int = 0
    """pcapng interface id (0 for classic pcap)."""

    @property
    def truncated(self) -> bool:
        return len(self.data) < self.orig_len


class Batch(NamedTuple):
    """Consecutive records of one interface, as offsets into one buffer: what the
    analysis reads, without an object or a copy per packet (:meth:`Capture.batches`).
    The columns are numpy arrays (int64; ``ts_ns`` holds Python ints, dtype object, in
    the rare pcapng batch whose clock goes beyond 64 bits)."""

    buf: "bytes | memoryview"
    linktype: int
    first: int
    """Packet number of the first record."""
    starts: "np.ndarray"
    """Where each record's captured bytes begin in ``buf``."""
    lens: "np.ndarray"
    """Captured length of each record."""
    origs: "np.ndarray"
    """Length on the wire of each record."""
    ts_ns: "np.ndarray"
    interface: int = 0

    def frames(self) -> Iterator[Frame]:
        buf, lt, iface = self.buf, self.linktype, self.interface
        for i, (start, incl, orig, ts) in enumerate(zip(
                self.starts.tolist(), self.lens.tolist(), self.origs.tolist(),
                self.ts_ns.tolist()), self.first):
            yield Frame(i, ts, lt, bytes(buf[start:start + incl]), orig, iface)


BATCH = 8192
"""Records per batch made of pcapng blocks read one by one, at most (classic pcap batches
are the records of one chunk read, and so are runs of pcapng packet blocks:
:data:`RUN`)."""
RUN = MAX_CHUNK // 32
"""Packet blocks a run takes at most (:func:`_packet_run`): as many as a chunk can hold,
so that a chunk of packet blocks is one batch, as a chunk of pcap records is."""


@dataclass(slots=True)
class CaptureInfo:
    """What is known about a capture file; filled in while it is read."""

    source: str
    format: str = ""
    """``pcap``, ``pcap-ns`` or ``pcapng``."""
    compressed: bool = False
    linktypes: dict[int, int] = field(default_factory=dict)
    """Interface id -> link type."""
    packets: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    warnings: list[str] = field(default_factory=list)
    error: CaptureError | None = None
    """Set when reading stopped early; the frames before it were delivered."""
    stopped_ts_ns: int | None = None
    """When the capture stopped, if its pcapng interface statistics say (``isb_endtime``,
    the latest; dumpcap writes it), and the file holds every packet they count received
    (:func:`use_statistics`): the capture went on until then, though the packets of its
    last moments may be missing (:data:`STOP_MARGIN_NS`)."""
    dropped: int | None = None
    """Packets the capture lost, if its pcapng interface statistics say (``isb_ifdrop``
    and ``isb_osdrop`` of every interface)."""

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "format": self.format,
            "compressed": self.compressed,
            "linktypes": sorted(set(self.linktypes.values())),
            "packets": self.packets,
            "first_ts": None if self.first_ts_ns is None else self.first_ts_ns / 1e9,
            "last_ts": None if self.last_ts_ns is None else self.last_ts_ns / 1e9,
            "stopped_ts": None if self.stopped_ts_ns is None else self.stopped_ts_ns / 1e9,
            "dropped": self.dropped,
            "warnings": list(self.warnings),
            "error": None if self.error is None else str(self.error),
        }

    @property
    def end_ns(self) -> int:
        """Until when the capture is known to have gone on with every packet kept: its
        latest packet's time (0 if none), or :data:`STOP_MARGIN_NS` before it stopped if
        that is later."""
        stopped = 0 if self.stopped_ts_ns is None else self.stopped_ts_ns - STOP_MARGIN_NS
        return max(self.last_ts_ns or 0, stopped)


STOP_MARGIN_NS = 1_000_000_000
"""How long before a capture stopped (``isb_endtime``) its packets may be missing from the
file: libpcap on Linux (TPACKET_V3) hands packets over a block at a time, at most its read
timeout late (dumpcap's 250 ms, tcpdump's 1 s), and a capture stopped by a signal
(pcap_breakloop) writes none of the block then filling (seen with dumpcap 4.0 on this
machine: the packets of its last 200 ms or so)."""


class Capture:
    """An open capture: iterate it for :class:`Frame` objects, then read :attr:`info`."""

    def __init__(self, stream: BinaryIO, info: CaptureInfo, walker: Iterator[Batch],
                 owned: BinaryIO | None) -> None:
        self._stream = stream
        self._owned = owned
        self.info = info
        self._walker = walker

    @property
    def bytes_read(self) -> int:
        """How far into the file (compressed bytes for gzip) reading has got, or 0."""
        try:
            return self._owned.tell() if self._owned is not None else 0
        except (OSError, ValueError):
            return 0

    def __iter__(self) -> Iterator[Frame]:
        for batch in self.batches():
            yield from batch.frames()

    def batches(self) -> Iterator[Batch]:
        """The records in batches; a read error ends them and is kept in ``info.error``."""
        info = self.info
        try:
            for batch in self._walker:
                info.packets = batch.first + len(batch.starts) - 1
                if info.first_ts_ns is None:
                    info.first_ts_ns = int(batch.ts_ns[0])
                info.last_ts_ns = int(batch.ts_ns[-1])
                yield batch
        except CaptureError as exc:
            info.error = exc
        except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            info.error = CaptureError(
                f"read failed after packet {info.packets}: {exc}", source=info.source)
        finally:
            self.close()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class Span:
    """A part of a capture file to walk (:mod:`teardown_analyzer.pcapsplit`): the packets
    from the record or block at byte ``start`` to the last that begins before byte
    ``stop``, numbered from ``first_index + 1``.  The walk says what it says of those
    packets, but not what the file as a whole warrants: a classic pcap file's version
    warning only if ``start`` is its first record, and the records longer than the snap
    length are counted in ``over_snap``, a pcapng file's blocks of other types in
    ``unknown_blocks``, instead of said.  A pcapng walk after the file's start begins in
    the state of its first packet block (``state``).  The walk sets ``stopped_at``."""

    start: int
    stop: int
    first_index: int = 0
    state: tuple[str, list["_Interface"], int] | None = None
    """pcapng: the byte order, interfaces and number of interfaces of earlier sections
    that the walk begins with (None: from the start of the file); the walk leaves the
    state it met its first packet block in here."""
    stopped_at: int | None = None
    """Where the walk stopped: the first record header or packet block at or after
    ``stop``, or where an error or the end of the file stopped it."""
    over_snap: list[int] = field(default_factory=lambda: [0, 0])
    """Records longer than the snap length: how many, the first's number."""
    snaplen: int = 0
    """A classic pcap file's snap length (for the warning of ``over_snap``)."""
    unknown_blocks: int = 0
    """pcapng: blocks of other types met (their warning is the caller's)."""
    statistics: dict[int, "IfaceStats"] = field(default_factory=dict)
    """pcapng: what the interface statistics blocks met say (the caller's to use, with
    those of the other parts: :func:`use_statistics`)."""
    sections: bool = False
    """pcapng: whether a section header or interface description came after a packet
    block (the state of the file changes in its middle)."""


def open_capture(path: str, span: Span | None = None) -> Capture:
    """Open ``path`` (``-`` for standard input) and tell its format from the magic.

    ``span``: walk only that part of a classic pcap or pcapng file (:class:`Span`).

    Raises:
        CaptureError: the file cannot be opened, is empty, or is not a capture.
    """
    name = "<stdin>" if path == "-" else printable(path)
    owned: BinaryIO | None = None
    try:
        if path == "-":
            raw: BinaryIO = sys.stdin.buffer
        else:
            raw = owned = open(path, "rb")
    except OSError as exc:
        raise CaptureError(exc.strerror or str(exc), source=name) from exc
    return _open_stream(raw, name, owned, span)


def open_bytes(data: bytes, name: str = "<bytes>") -> Capture:
    """Open a capture held in memory (tests, and hex helpers)."""
    return _open_stream(io.BufferedReader(io.BytesIO(data)), name, None)  # type: ignore[arg-type]


class _Prepend(io.RawIOBase):
    """``head`` (already read), then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        stream = self._stream
        return (getattr(stream, "readinto1", None) or getattr(stream, "readinto"))(b)


def _read_head(stream: BinaryIO) -> tuple[bytes, BinaryIO]:
    """The first 4 bytes (waiting for them: pipes, gzip members) and a stream from byte 0:
    the same one, moved back, if it can seek (a file: its chunks are then not copied
    once more through :class:`_Prepend`)."""
    head = stream.read(4)
    try:
        if stream.seekable():
            stream.seek(-len(head), io.SEEK_CUR)
            return head, stream
    except OSError:
        pass
    return head, io.BufferedReader(_Prepend(head, stream))  # type: ignore[return-value]


def _open_stream(raw: BinaryIO, name: str, owned: BinaryIO | None,
                 span: Span | None = None) -> Capture:
    info = CaptureInfo(source=name)
    stream: BinaryIO = raw if hasattr(raw, "peek") else \
        io.BufferedReader(cast(io.RawIOBase, raw))  # type: ignore[assignment]
    try:
        head, stream = _read_head(stream)
        if head[:2] == _GZIP_MAGIC:
            info.compressed = True
            stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
            head, stream = _read_head(stream)
    except (OSError, EOFError, zlib.error) as exc:
        _close(owned)
        raise CaptureError(f"cannot read the gzip stream: {exc}", source=name,
                           where="byte 0") from exc
    try:
        if not head:
            raise CaptureError("empty file, not a capture", source=name)
        if len(head) < 4:
            raise CaptureError(f"only {len(head)} bytes, too short for a capture",
                               source=name)
        if head in PCAP_MAGICS:
            walker = _pcap_records(stream, info, span)
        elif head == _PCAPNG_SHB:
            walker = _pcapng_blocks(stream, info, span)
        else:
            raise CaptureError(
                f"not a pcap or pcapng capture (magic {head.hex(' ')})", source=name,
                where="byte 0")
        next_frame = _prime(walker)
    except CaptureError:
        _close(owned)
        raise
    except (OSError, EOFError, zlib.error) as exc:
        _close(owned)
        raise CaptureError(f"cannot read: {exc}", source=name, where="byte 0") from exc
    return Capture(stream, info, next_frame, owned)


def _close(stream: BinaryIO | None) -> None:
    if stream is not None:
        stream.close()


def _prime(walker: Iterator[Batch]) -> Iterator[Batch]:
    """Run the walker up to its first batch so that file-header errors raise now."""
    try:
        first = next(walker)
    except StopIteration:
        return iter(())

    def chained() -> Iterator[Batch]:
        yield first
        yield from walker

    return chained()


class _Reader:
    """Reads from the stream and tracks the byte offset for error messages.

    From the second chunk (:meth:`extend`) on, chunks of :data:`READ_AHEAD_FROM` bytes or
    more are read ahead: a thread reads the next one, of the size asked for last, while
    the caller walks the one it has.  A file's or a pipe's read lets go of the interpreter
    lock (a copy out of the page cache), so the caller pays only for what is not there yet
    when it asks.  (A gzip stream gains little: GzipFile inflates a few kB a call, and
    each call needs the lock.)"""

    __slots__ = ("stream", "offset", "source", "readinto1", "broken", "_ahead", "_chunks",
                 "_ended", "__weakref__")

    def __init__(self, stream: BinaryIO, source: str) -> None:
        self.stream = stream
        self.offset = 0
        self.source = source
        self.readinto1 = getattr(stream, "readinto1", None) or getattr(stream, "readinto")
        self.broken: Exception | None = None
        """A read that failed after others of the same chunk: raised at the next."""
        self._ahead: _ReadAhead | None = None
        self._chunks = 0
        self._ended = False

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer at the end of the stream (before any
        :meth:`extend`)."""
        assert not self._chunks
        data = self.stream.read(n)
        self.offset += len(data)
        return data

    def extend(self, tail: "bytes | memoryview", n: int, after: int) -> memoryview:
        """``tail`` (what is left of the chunk before), then up to ``n`` bytes more (at
        least half of them, unless the stream ends first; none only at the end), in new
        memory: the bytes are read into it, not copied once more to join them to
        ``tail`` (unless it is longer than :data:`HEADROOM`).  A pipe or a gzip stream
        hands out a few kB a read: the chunk is made of several, not a batch of each.
        A chunk read ahead is as long as the one asked for before it: a walker that
        wants more (a record longer than that) is handed less, and asks again.

        A broken gzip stream raises only after the data decompressed before the break
        was handed out, so the packets before it are still analysed.
        """
        import numpy as np
        if self.broken is not None:
            exc, self.broken = self.broken, None
            raise self._failed(exc, after) from exc
        if self._ended:
            return memoryview(bytes(tail))
        ahead = self._ahead
        if ahead is None and self._chunks and n >= READ_AHEAD_FROM:  # (a second chunk)
            ahead = self._ahead = _ReadAhead(self.readinto1)
            weakref.finalize(self, ahead.stop)  # (a walk given up: the thread ends too)
            ahead.ask(n)
        self._chunks += 1
        # the first chunk is read here: a capture read no further (the walk up to its
        # first packet, before a --jobs split) starts no thread
        space, got, stop = ahead.take() if ahead is not None else _fill(self.readinto1, n)
        asked = ahead.size if ahead is not None else n  # (what that chunk was asked for)
        if stop is not None and not isinstance(
                stop, (EOFError, zlib.error, gzip.BadGzipFile, OSError)):
            raise stop
        kept = len(tail)
        if kept <= HEADROOM:
            out = space[HEADROOM - kept:HEADROOM + got]
        else:  # (the rest of a record longer than the room kept for it: copied)
            out = np.empty(kept + got, np.uint8).data
            out[kept:] = space[HEADROOM:HEADROOM + got]
        out[:kept] = tail
        self.offset += got
        if stop is not None:
            if not got:
                raise self._failed(stop, after) from stop
            self.broken = stop
            self._end()
        elif got < (asked + 1) // 2:
            self._end()  # the end of the stream
        elif ahead is not None:
            ahead.ask(n)
        return out

    def _end(self) -> None:
        self._ended = True
        if self._ahead is not None:
            self._ahead.stop()

    def _failed(self, exc: Exception, after: int) -> CaptureError:
        return CaptureError(f"read failed after packet {after}: the compressed stream "
                            f"breaks off ({exc})", source=self.source,
                            where=f"byte {self.offset} (uncompressed)")


READ_AHEAD_FROM = 1 << 19
"""Chunks are read ahead when at least this long (:data:`CHUNK` is): a shorter one takes
less to read than handing it to the thread and back does."""
HEADROOM = 1 << 18
"""Bytes left free before each chunk read, for the tail of the chunk before it (the record
that goes on into it): joined to it without copying the chunk, when it fits."""


def _fill(readinto: Callable[[memoryview], int], n: int
          ) -> tuple[memoryview, int, BaseException | None]:
    """Up to ``n`` bytes read into new memory, after :data:`HEADROOM` bytes left free: at
    least half of them, unless the stream ends or fails first.  The memory, the bytes
    read, and what stopped the reading early (None at the end of the stream)."""
    import numpy as np
    space, got = memoryview(b""), HEADROOM
    try:
        space = np.empty(HEADROOM + n, np.uint8).data
        while got - HEADROOM < (n + 1) // 2:
            more = readinto(space[got:])
            if not more:
                break
            got += more
    except BaseException as exc:  # handed to the reader, which raises it
        return space, got - HEADROOM if len(space) else 0, exc
    return space, got - HEADROOM, None


class _ReadAhead:
    """A thread that reads (:func:`_fill`) the chunks of a stream asked for, one at a
    time."""

    def __init__(self, readinto: Callable[[memoryview], int]) -> None:
        import queue
        import threading
        self.size = 0
        """The size of the chunk asked for last."""
        self._asked: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._started: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[memoryview, int, BaseException | None]] = \
            queue.SimpleQueue()
        self._readinto = readinto
        self._pending = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="teardown-analyzer read-ahead")
        self._thread.start()

    def ask(self, n: int) -> None:
        """Read ``n`` bytes more.  Returns once the thread has begun: a thread waiting for
        the interpreter lock gets it from a busy one only every few ms
        (``sys.getswitchinterval()``), later than the read is wanted."""
        self.size = n
        self._pending = True
        self._asked.put(n)
        self._started.get()

    def take(self) -> tuple[memoryview, int, BaseException | None]:
        """The chunk asked for last, as :func:`_fill` reads it (waiting for it)."""
        self._pending = False
        return self._done.get()

    def stop(self) -> None:
        """End the thread: now, or after the read it is doing (not waited for: on a pipe
        it may not end)."""
        self._asked.put(None)
        if not self._pending:
            self._thread.join()

    def _run(self) -> None:
        while (n := self._asked.get()) is not None:
            self._started.put(None)
            self._done.put(_fill(self._readinto, n))


def items_at(buf: "bytes | memoryview | np.ndarray", dtype: "np.dtype", at: "np.ndarray"
             ) -> "np.ndarray":
    """The item of ``dtype`` that begins at each offset ``at`` of ``buf`` (all within it),
    copied: one array viewing an item at every byte offset, indexed (about three times
    faster than indexing the rows of numpy's ``sliding_window_view``), as plain bytes
    (copied about four times faster than items of a structured type)."""
    import numpy as np
    size = dtype.itemsize
    return np.ndarray((len(buf) - size + 1,), f"V{size}", buf, strides=(1,))[at].view(dtype)


def _pcap_records(stream: BinaryIO, info: CaptureInfo, span: Span | None = None
                  ) -> Iterator[Batch]:
    rd = _Reader(stream, info.source)
    header = rd.read(24)
    if len(header) < 24:
        raise CaptureError(f"pcap file header cut off after {len(header)} of 24 bytes",
                           source=info.source, where=f"byte {len(header)}")
    order, nano, rec_len = PCAP_MAGICS[header[:4]]
    info.format = "pcap-ns" if nano else "pcap"
    major, _minor, _zone, _sigfigs, snaplen, linktype = struct.unpack(order + "HHiIII",
                                                                      header[4:])
    if major != 2 and (span is None or span.start == 24):
        info.warnings.append(f"pcap version {major} (expected 2); reading it as 2")
    linktype &= 0x0FFFFFFF  # the top bits carry FCS information (pcap spec, LinkType)
    info.linktypes[0] = linktype
    if span is not None:
        span.snaplen = snaplen
        stream.seek(span.start)
        rd.offset = span.start
        yield from _pcap_loop(rd, info, order, rec_len, nano, snaplen, linktype,
                              span.over_snap, span)
        return
    over_snap = [0, 0]  # records longer than the snap length (count, first): read, but said
    try:
        yield from _pcap_loop(rd, info, order, rec_len, nano, snaplen, linktype, over_snap)
    finally:
        if over_snap[0]:
            info.warnings.append(over_snap_warning(over_snap[0], over_snap[1], snaplen))


def _chunk(read: int, records: int) -> int:
    """Bytes to read next, having read ``records`` records in ``read`` bytes: :data:`CHUNK`,
    or :data:`CHUNK_RECORDS` records of their mean size, up to :data:`MAX_CHUNK`."""
    mean = read // records if records else 0
    return max(CHUNK, min(mean * CHUNK_RECORDS, MAX_CHUNK))


def over_snap_warning(count: int, first: int, snaplen: int) -> str:
    return (f"{count} packets longer than the snap length {snaplen} (first: packet {first}); "
            f"read in full, as libpcap does")


def earlier_warning(count: int) -> str:
    """What the analysis says of a capture whose clock goes back ``count`` times."""
    return (f"{count} packets have a timestamp earlier than the packet before; times and "
            f"durations around them are unreliable")


def _pcap_loop(rd: "_Reader", info: CaptureInfo, order: str, rec_len: int, nano: bool,
               snaplen: int, linktype: int, over_snap: list[int],
               span: Span | None = None) -> Iterator[Batch]:
    import numpy as np  # imported here: not every command reads a capture

    limit = min(max(snaplen, 262144), MAX_RECORD)
    incl_at = struct.Struct(order + "8xI").unpack_from
    unpack = struct.Struct(order + "IIII").unpack_from
    header = np.dtype([(f, order + "u4") for f in ("sec", "frac", "incl", "orig")])
    scale = 1 if nano else 1000
    frac_limit = 1_000_000_000 if nano else 1_000_000
    index = index0 = 0 if span is None else span.first_index
    end = None if span is None else span.stop
    # Records are cut from large chunks rather than read one by one (two read() calls
    # per packet cost more than the rest of the reading), and handed out as one batch
    # per chunk: offsets into it, no object or copy per packet.  The only loop per
    # record follows the chain of record lengths; everything else about the records
    # (times, lengths, checks) is read for the whole chunk at once.
    buf: bytes | memoryview = b""
    pos, base = 0, rd.offset  # base: file offset of buf[0]
    start = base
    while True:
        size = len(buf)
        first = index + 1
        heads: list[int] = []  # where each record header begins, as the lengths chain
        add = heads.append
        p, last = pos, size - rec_len
        if end is not None:
            last = min(last, end - base - 1)
        while p <= last:
            add(p)
            p += rec_len + incl_at(buf, p)[0]
        error = None
        need = 0
        if heads:
            at = np.fromiter(heads, np.int64, len(heads))  # (a third faster than asarray)
            h = items_at(buf, header, at)
            incl = h["incl"].astype(np.int64)
            ends = at + rec_len + incl
            # the first record that is corrupt or goes on in the next chunk ends the
            # batch (the chain after a corrupt length is garbage, and is not used)
            bad = incl > limit
            stop = np.flatnonzero(bad | (ends > size))
            count = int(stop[0]) if len(stop) else len(heads)
            if count < len(heads):
                if bad[count]:
                    error = CaptureError(
                        f"packet {index + count + 1} claims {int(incl[count])} captured "
                        f"bytes, more than the snap length {snaplen}; the file is corrupt "
                        f"from here", source=info.source, where=f"byte {base + heads[count]}")
                else:
                    need = int(ends[count]) - size
            if count:
                h, incl = h[:count], incl[:count]
                if snaplen > 0:
                    over = np.flatnonzero(incl > snaplen)
                    if len(over):
                        over_snap[0] += len(over)
                        over_snap[1] = over_snap[1] or index + 1 + int(over[0])
                frac = h["frac"].astype(np.int64)
                for i in np.flatnonzero(frac >= frac_limit).tolist():
                    info.warnings.append(f"packet {index + 1 + i}: sub-second field "
                                         f"{int(frac[i])} out of range")
                stamps = h["sec"].astype(np.int64) * 1_000_000_000 + frac * scale
                yield Batch(buf, linktype, first, at[:count] + rec_len, incl,
                            np.maximum(h["orig"], incl), stamps)
                index += count
                pos = int(ends[count - 1])
        if error is not None:
            raise error
        if end is not None and base + pos >= end:
            span.stopped_at = base + pos  # type: ignore[union-attr]
            return
        more = rd.extend(buf[pos:], max(_chunk(base + pos - start, index - index0), need),
                         index)
        if len(more) == size - pos:  # nothing more
            if pos == size:
                if span is not None:
                    span.stopped_at = base + pos
                return
            if size - pos < rec_len:
                raise CaptureError(
                    f"capture cut off mid-record: packet {index + 1}'s record header has "
                    f"{size - pos} of {rec_len} bytes", source=info.source,
                    where=f"byte {base + pos}")
            incl = unpack(buf, pos)[2]
            if incl > snaplen > 0:
                over_snap[0] += 1
                over_snap[1] = over_snap[1] or index + 1
            raise CaptureError(
                f"capture cut off mid-record: packet {index + 1} has "
                f"{size - pos - rec_len} of {incl} bytes", source=info.source,
                where=f"byte {base + pos}")
        buf, base, pos = more, base + pos, 0


@dataclass(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    units_per_s: int = 1_000_000
    offset_ns: int = 0


def _pcapng_blocks(stream: BinaryIO, info: CaptureInfo, span: Span | None = None
                   ) -> Iterator[Batch]:
    """The packets of a pcapng stream, in batches of records of one interface (a run of
    packet blocks, or up to :data:`BATCH` blocks read one by one), as offsets into the
    chunk read (no object or copy per packet); the batches before an error are delivered
    first."""
    import numpy as np  # imported here, as the pcap walker does

    rd = _Reader(stream, info.source)
    info.format = "pcapng"
    order = "<"
    interfaces: list[_Interface] = []
    iface_base = 0  # interfaces of earlier sections: info.linktypes numbers them on
    index = index0 = 0 if span is None else span.first_index
    first = True
    unknown_blocks = 0
    statistics: dict[int, IfaceStats] = {}
    stop = None if span is None else span.stop
    if span is not None and span.state is not None:
        stream.seek(span.start)
        rd.offset = span.start
        order, interfaces, iface_base = span.state[0], list(span.state[1]), span.state[2]
        first = False
        for i, iface in enumerate(interfaces):
            info.linktypes[iface_base + i] = iface.linktype
    buf: bytes | memoryview = b""
    pos, base = 0, rd.offset  # base: file offset of buf[0]
    start = origin = base
    state = None if span is None else span.state  # (when the first packet block came)
    # the batch being made: records of one interface in buf
    starts: list[int] = []
    lens: list[int] = []
    origs: list[int] = []
    stamps: list[int] = []
    batch_iface = batch_linktype = batch_first = -1
    most = RUN  # blocks the next run of packet blocks looks ahead at most (_packet_run)

    def chunk() -> int:
        return _chunk(base - origin, index - index0)

    def made() -> Batch:
        try:
            ts = np.array(stamps, np.int64)
        except OverflowError:  # a corrupt resolution or offset: beyond int64 ns
            ts = np.array(stamps, object)
        batch = Batch(buf, batch_linktype, batch_first, np.array(starts, np.int64),
                      np.array(lens, np.int64), np.array(origs, np.int64), ts, batch_iface)
        for column in (starts, lens, origs, stamps):
            column.clear()
        return batch

    try:
        while True:
            if len(buf) - pos < 12:  # a block's header (and a section header's magic)
                if starts:
                    yield made()
                buf, base, pos = buf[pos:], base + pos, 0
                while len(buf) < 12:
                    more = rd.extend(buf, chunk(), index)
                    if len(more) == len(buf):
                        break
                    buf = more
            run = None if first else _packet_run(buf, pos, order, interfaces, most,
                                                 None if stop is None else stop - base)
            if run is not None:
                at, incl, orig, ts, iface_id, end, cut = run
                # how far the next run looks ahead: back to a few blocks after one that
                # stopped at a block it could not take (so that such blocks, again and
                # again, do not make each run look far ahead for nothing), then twice as
                # far each time
                most = 16 if cut else min(2 * most, RUN)
                if len(at):  # a run of packet blocks read at once
                    if starts:
                        yield made()
                    yield Batch(buf, interfaces[iface_id].linktype, index + 1, at + 28, incl,
                                orig, ts, iface_id)
                    index += len(at)
                    pos = end
                    continue
            start = base + pos
            avail = len(buf) - pos
            if not avail:
                break
            if avail < 8:
                raise CaptureError(f"pcapng cut off inside a block header ({avail} of 8 "
                                   f"bytes)", source=info.source, where=f"byte {start}")
            shb = buf[pos:pos + 4] == _PCAPNG_SHB
            if shb:
                bom = buf[pos + 8:pos + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    raise CaptureError("pcapng section header has no valid byte-order magic",
                                       source=info.source, where=f"byte {start + 8}")
                (blen,) = struct.unpack_from(order + "I", buf, pos + 4)
                _check_block_len(blen, 28, start, info)
            elif first:
                raise CaptureError("pcapng file does not start with a section header block",
                                   source=info.source, where=f"byte {start}")
            else:
                btype, blen = struct.unpack_from(order + "II", buf, pos)
                _check_block_len(blen, 12, start, info)
            if avail < blen:  # the block goes on in the next chunks
                if starts:
                    yield made()
                buf, base, pos = buf[pos:], start, 0
                while len(buf) < blen:
                    more = rd.extend(buf, max(chunk(), blen - len(buf)), index)
                    if len(more) == len(buf):
                        done = 12 if shb else 8
                        raise CaptureError(f"capture cut off mid-block: {len(buf) - done} of "
                                           f"{blen - done} bytes", source=info.source,
                                           where=f"byte {start}")
                    buf = more
                continue  # (a packet block begins the next run, not a batch of its own)
            (trailer,) = struct.unpack_from(order + "I", buf, pos + blen - 4)
            if trailer != blen:
                what = "section header block" if shb else f"block of type 0x{btype:08x}"
                raise CaptureError(f"pcapng {what} has length {blen} but trailer {trailer}; "
                                   f"the file is corrupt from here", source=info.source,
                                   where=f"byte {start}")
            if span is not None and (shb or btype == BT_IDB) and state is not None:
                span.sections = True
            if shb:
                iface_base += len(interfaces)
                interfaces = []  # a new section starts a new interface list
                first = False
            elif btype == BT_IDB:
                interfaces.append(_parse_idb(buf[pos:pos + blen], order, start, info))
                info.linktypes[iface_base + len(interfaces) - 1] = interfaces[-1].linktype
            elif btype in (BT_EPB, BT_PB, BT_SPB):
                if span is not None:
                    if state is None:
                        state = (order, list(interfaces), iface_base)
                    if start >= stop:  # type: ignore[operator]
                        break
                index += 1
                size = blen - 12  # the body's
                if btype == BT_SPB:
                    if size < 4:
                        raise _short_block("simple packet block", start, info)
                    (orig,) = struct.unpack_from(order + "I", buf, pos + 8)
                    iface_id, ts_units = 0, None
                    if not interfaces:
                        raise _no_interface(index, 0, start, info)
                    incl = min(orig, size - 4, interfaces[0].snaplen or orig)
                    at = pos + 12
                else:
                    if size < 20:
                        raise _short_block("packet block", start, info)
                    if btype == BT_EPB:
                        iface_id, hi, lo, incl, orig = struct.unpack_from(order + "IIIII", buf,
                                                                          pos + 8)
                    else:
                        iface_id, _drops, hi, lo, incl, orig = struct.unpack_from(
                            order + "HHIIII", buf, pos + 8)
                    ts_units = (hi << 32) | lo
                    if incl > size - 20:
                        raise CaptureError(
                            f"packet {index} claims {incl} captured bytes but its block holds "
                            f"{size - 20}; the file is corrupt from here",
                            source=info.source, where=f"byte {start}")
                    at = pos + 28
                if iface_id >= len(interfaces):
                    raise _no_interface(index, iface_id, start, info)
                iface = interfaces[iface_id]
                if starts and (len(starts) >= BATCH or iface_id != batch_iface
                               or iface.linktype != batch_linktype):
                    yield made()
                if not starts:
                    batch_iface, batch_linktype, batch_first = iface_id, iface.linktype, index
                starts.append(at)
                lens.append(incl)
                origs.append(orig if orig > incl else incl)
                stamps.append(0 if ts_units is None else (
                    ts_units * 1_000_000_000 // iface.units_per_s + iface.offset_ns))
            elif not (btype == BT_ISB and _parse_isb(buf[pos:pos + blen], order,
                                                     interfaces, iface_base, statistics)):
                unknown_blocks += 1  # name resolution, custom blocks: not needed
            pos += blen
    except Exception:
        if starts:  # the packets before the break are delivered first
            yield made()
        raise
    if starts:
        yield made()
    if span is not None:
        span.stopped_at, span.state = base + pos, state
        span.unknown_blocks, span.statistics = unknown_blocks, statistics
    else:
        if unknown_blocks:
            info.warnings.append(unknown_blocks_warning(unknown_blocks))
        use_statistics(info, statistics, index)


class IfaceStats(NamedTuple):
    """What an interface's latest statistics block says (None: not recorded)."""

    end: int | None
    """``isb_endtime``: when the capture on it stopped, in units of the interface's
    clock or in microseconds (:func:`_stopped_ns`)."""
    units_per_s: int
    offset_ns: int
    received: int | None
    """``isb_ifrecv``: packets the interface received, as the capture counts them (dumpcap:
    libpcap's ps_recv, which leaves out those of a last block never written,
    :data:`STOP_MARGIN_NS`)."""
    dropped: int | None
    """``isb_ifdrop`` + ``isb_osdrop``: packets lost by the interface or the system."""


def _parse_isb(block: "bytes | memoryview", order: str, interfaces: list[_Interface],
               iface_base: int, statistics: dict[int, IfaceStats]) -> bool:
    """Read an interface statistics block into ``statistics`` (by interface number over
    the file; the counters are since the capture started, so a later block replaces an
    earlier one); False if it is too short or names no interface described (then it is
    skipped as a block of another type).  The block's own time is not read (dumpcap 4.0
    writes it in microseconds whatever the interface's resolution, as ``isb_endtime``,
    :func:`_stopped_ns`)."""
    if len(block) < 24:
        return False
    (iface_id,) = struct.unpack_from(order + "I", block, 8)
    if iface_id >= len(interfaces):
        return False
    iface = interfaces[iface_id]
    stop = received = None
    drops: list[int] = []
    pos, end = 20, len(block) - 4
    while pos + 4 <= end:
        code, length = struct.unpack_from(order + "HH", block, pos)
        at, pos = pos + 4, pos + 4 + ((length + 3) & ~3)
        if code == 0 or at + length > end:
            break
        if length != 8:
            continue
        value = bytes(block[at:at + 8])
        if code == OPT_ISB_ENDTIME:
            hi, lo = struct.unpack(order + "II", value)
            stop = hi << 32 | lo
        elif code == OPT_ISB_IFRECV:
            (received,) = struct.unpack(order + "Q", value)
        elif code in (OPT_ISB_IFDROP, OPT_ISB_OSDROP):
            drops.append(struct.unpack(order + "Q", value)[0])
    statistics.update(merged_statistics(statistics, {iface_base + iface_id: IfaceStats(
        stop, iface.units_per_s, iface.offset_ns, received, sum(drops) if drops else None)}))
    return True


def merged_statistics(earlier: dict[int, IfaceStats], later: dict[int, IfaceStats]
                      ) -> dict[int, IfaceStats]:
    """The statistics of interfaces as blocks in a file say them, ``earlier`` then
    ``later``: of each interface, the later block's counters (counted since the capture
    began) and the latest end either records."""
    out = dict(earlier)
    for number, stats in later.items():
        before = out.get(number)
        if before is not None and before.end is not None:
            stats = stats._replace(end=before.end if stats.end is None
                                   else max(stats.end, before.end))
        out[number] = stats
    return out


DUMPCAP_GUESS_S = 86400
"""How long after the last packet an ``isb_endtime`` read in microseconds (dumpcap's way,
:func:`_stopped_ns`) may fall and be taken: a capture left running idle for a day."""


def _stopped_ns(stats: IfaceStats, first_ns: int, last_ns: int) -> int | None:
    """An interface's ``isb_endtime`` as a packet's time, or None: read in the units of
    the interface's clock, as the format says, if that is not before the capture's last
    packet (``last_ns``).  If it is before its first (``first_ns``), read in
    microseconds, as dumpcap 4.0 writes it whatever the resolution it gives its packets
    (a time in nanoseconds then reads as one in 1970), if that is not before the last
    packet and no more than :data:`DUMPCAP_GUESS_S` after it."""
    if stats.end is None:
        return None
    stop = stats.end * 1_000_000_000 // stats.units_per_s + stats.offset_ns
    if stop >= last_ns:
        return stop
    if stop >= first_ns:
        return None
    stop = stats.end * 1000 + stats.offset_ns
    return stop if last_ns <= stop <= last_ns + DUMPCAP_GUESS_S * 10**9 else None


def use_statistics(info: CaptureInfo, statistics: dict[int, IfaceStats],
                   packets: int) -> None:
    """What the interface statistics of a whole pcapng file (``packets`` packets) say of
    it, into ``info``: how many packets it lost (a warning if any), and when the capture
    stopped (:attr:`CaptureInfo.stopped_ts_ns`): not if the statistics count more
    packets received than the file holds and lost, a file cut or filtered after the
    capture (editcap and tshark of Wireshark 4.0 write no statistics then, but a
    writer may copy them); then a warning says why."""
    counted = [s.dropped for s in statistics.values() if s.dropped is not None]
    info.dropped = sum(counted) if counted else None
    if info.dropped:
        info.warnings.append(
            f"the capture lost {info.dropped} packets (pcapng interface statistics: "
            f"isb_ifdrop, isb_osdrop): any segment may be missing, and what is concluded "
            f"from one's absence may be wrong")
    first, last = info.first_ts_ns, info.last_ts_ns
    ends = [] if first is None or last is None else [
        stop for stop in (_stopped_ns(s, first, last) for s in statistics.values())
        if stop is not None]
    if not ends:
        return
    received = sum(s.received for s in statistics.values() if s.received is not None)
    if received - (info.dropped or 0) > packets:
        info.warnings.append(
            f"the pcapng interface statistics count {received - (info.dropped or 0)} "
            f"packets captured, the file holds {packets}: it was cut or filtered after "
            f"the capture, and the end they record (isb_endtime) is not used")
        return
    info.stopped_ts_ns = max(ends)


def unknown_blocks_warning(count: int) -> str:
    return f"{count} pcapng blocks of other types skipped"


def _packet_run(buf: "bytes | memoryview", pos: int, order: str, interfaces: list[_Interface],
                most: int, stop: int | None = None) -> tuple | None:
    """The enhanced packet blocks of one interface from ``pos`` on, up to ``most``, that
    are whole in ``buf`` and that the block-by-block reading would take without a word:
    their chain of lengths followed in one loop, everything else read with numpy.
    (records' offsets, captured and wire lengths, times, interface, where the run ends,
    whether it stopped at a packet block it could not take: an error, a time too large),
    or None: the block at ``pos`` is not a packet block a run can take (another type, an
    interface whose times need Python's integers).  Blocks the run does not take are read
    the slow way."""
    import numpy as np

    peek = struct.Struct(order + "III").unpack_from
    last = len(buf) - 32 if stop is None else min(len(buf) - 32, stop - 1)
    if pos > last:
        return None
    btype, blen, iface_id = peek(buf, pos)
    if btype != BT_EPB or iface_id >= len(interfaces):
        return None
    found = interfaces[iface_id]
    factor = 1_000_000_000 // found.units_per_s
    if factor * found.units_per_s != 1_000_000_000 or abs(found.offset_ns) >= 1 << 62:
        return None  # times that need Python's integers
    # The chain of block lengths, whatever the blocks (every block begins with its type
    # and length); which of them the run takes is then seen for all at once.
    heads: list[int] = []
    add = heads.append
    length_at = struct.Struct(order + "4xI").unpack_from
    p = pos
    for _ in range(most):
        if p > last:
            break
        add(p)
        p += length_at(buf, p)[0]
    at = np.fromiter(heads, np.int64, len(heads))
    fields = np.dtype([(f, order + "u4") for f in
                       ("btype", "blen", "iface", "hi", "lo", "incl", "orig")])
    h = items_at(buf, fields, at)
    blen = h["blen"].astype(np.int64)
    end = at + blen
    # the run ends at a block of another type or interface, or one that goes on in the
    # next chunk (read after it) ...
    ends = np.flatnonzero((h["btype"] != BT_EPB) | (blen < 32) | (h["iface"] != iface_id)
                          | (end > len(buf)))
    taken = int(ends[0]) if len(ends) else len(at)
    at, h, blen, end = at[:taken], h[:taken], blen[:taken], end[:taken]
    # ... or is cut at a packet block it cannot take
    trailer = items_at(buf, np.dtype(order + "u4"), end - 4)
    units = h["hi"].astype(np.uint64) << np.uint64(32) | h["lo"].astype(np.uint64)
    incl = h["incl"].astype(np.int64)
    ok = (blen % 4 == 0) & (blen <= MAX_BLOCK) & (trailer == blen) \
        & (incl <= blen - 32) & (units < np.uint64((1 << 62) // factor))
    bad = np.flatnonzero(~ok)
    count = int(bad[0]) if len(bad) else taken
    incl = incl[:count]
    return (at[:count], incl, np.maximum(h["orig"][:count], incl),
            units[:count].astype(np.int64) * factor + found.offset_ns, iface_id,
            int(end[count - 1]) if count else pos, count < taken)


def _check_block_len(blen: int, minimum: int, start: int, info: CaptureInfo) -> None:
    if blen < minimum or blen % 4 or blen > MAX_BLOCK:
        raise CaptureError(f"pcapng block length {blen} is invalid; the file is corrupt "
                           f"from here", source=info.source, where=f"byte {start}")


def _short_block(what: str, start: int, info: CaptureInfo) -> CaptureError:
    return CaptureError(f"pcapng {what} too short", source=info.source, where=f"byte {start}")


def _no_interface(index: int, iface_id: int, start: int, info: CaptureInfo) -> CaptureError:
    return CaptureError(f"packet {index} names interface {iface_id}, which no interface "
                        f"description block defined", source=info.source,
                        where=f"byte {start}")


def _parse_idb(block: "bytes | memoryview", order: str, start: int, info: CaptureInfo
               ) -> _Interface:
    """Parse an interface description block and the two options we need."""
    if len(block) < 20:
        raise CaptureError("pcapng interface description block is too short",
                           source=info.source, where=f"byte {start}")
    linktype, _res, snaplen = struct.unpack_from(order + "HHI", block, 8)
    iface = _Interface(linktype=linktype, snaplen=snaplen)
    pos, end = 16, len(block) - 4
    while pos + 4 <= end:
        code, length = struct.unpack_from(order + "HH", block, pos)
        value = block[pos + 4:pos + 4 + length]
        pos += 4 + ((length + 3) & ~3)
        if code == 0:
            break
        if code == OPT_IF_TSRESOL and value:
            v = value[0]
            iface.units_per_s = (2 ** (v & 0x7F)) if v & 0x80 else (10 ** (v & 0x7F))
        elif code == OPT_IF_TSOFFSET and len(value) >= 8:
            iface.offset_ns = struct.unpack(order + "q", value[:8])[0] * 1_000_000_000
    return iface
