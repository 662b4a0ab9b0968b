"""Records kept on disk instead of in memory: an anonymous temporary file.

Hundreds of thousands of connections outlive their packets: finished ones until the output
reads (and summarises) them, and connections in TIME_WAIT that only a late segment could
still change.  Both go, frozen (:mod:`teardown_analyzer.parking`), to a :class:`Spill`, so
memory stays proportional to the connections still open.

The file has no name (``tempfile.TemporaryFile``): nothing is left behind, whatever
way the process ends.  Writes are buffered and positioned (``pwrite``), so a worker
process forked after the file was opened can write to it and the parent reads what it
wrote (:func:`teardown_analyzer.analysis.analyze` with ``jobs``: one spill per worker).
A buffer of :data:`FLUSH_AT` bytes or more is written by a thread (:class:`_Writer`)
while the analysis goes on; :meth:`Spill.flush` waits for it.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import weakref
from typing import Any

from .errors import StorageError, printable

FLUSH_AT = 1 << 20


class Spill:
    """Write-once records in a temporary file, read back by (offset, length)."""

    __slots__ = ("token", "_file", "_fd", "_pending", "_pending_size", "_flushed", "_written",
                 "_writer")

    def __init__(self, token: int | None = None) -> None:
        self.token = token
        """Set for a spill shared with forked workers: pickles as this number, which the
        parent resolves to its own object (:func:`shared`)."""
        try:
            self._file = tempfile.TemporaryFile()
        except OSError as exc:
            raise _storage_error("cannot create a temporary file", exc) from exc
        self._fd = self._file.fileno()
        self._pending: list[bytes | memoryview] = []
        self._pending_size = 0
        self._flushed = 0
        """Bytes written, or given to :attr:`_writer`."""
        self._written = 0
        """Bytes written: in the file."""
        self._writer: _Writer | None = None

    def put(self, blob: "bytes | memoryview") -> int:
        """Append ``blob``; its offset."""
        offset = self._flushed + self._pending_size
        self._pending.append(blob)
        self._pending_size += len(blob)
        if self._pending_size >= FLUSH_AT:
            self._write(behind=True)
        return offset

    def get(self, offset: int, length: int) -> bytes:
        if offset + length > self._written:
            self.flush()
        try:
            data = os.pread(self._fd, length, offset)
        except OSError as exc:
            raise _storage_error("cannot read the temporary file back", exc) from exc
        if len(data) != length:
            raise _storage_error("the temporary file is shorter than what was written "
                                 f"({offset + len(data)} of {offset + length} bytes)")
        return data

    def flush(self) -> None:
        """Write what was put, and wait for what the thread is writing."""
        self._write(behind=False)

    def _write(self, behind: bool) -> None:
        """Write what was put: by the thread (``behind``), once it has written what it was
        given before; or here."""
        writer = self._writer
        if writer is not None:
            error = writer.wait()
            if error is not None:
                raise _storage_error("cannot write the temporary file", error) from error
        self._written = self._flushed
        if not self._pending:
            return
        # one blob (a window's connections, teardown_analyzer.columnar) is written as it
        # is, without a copy
        data = memoryview(self._pending[0] if len(self._pending) == 1
                          else b"".join(self._pending))
        if behind:
            if writer is None or not writer.alive:  # (a fork ended it: _stop_writers)
                writer = self._writer = _Writer(self._fd)
            writer.write(data, self._flushed)
        else:
            error = _pwrite(self._fd, data, self._flushed)
            if error is not None:
                raise _storage_error("cannot write the temporary file", error) from error
            self._written += len(data)
        self._flushed += len(data)
        self._pending.clear()
        self._pending_size = 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.wait()
        self._file.close()

    def __reduce__(self) -> Any:
        self.flush()
        if self.token is not None and self.token in _SHARED:
            return _shared, (self.token, self._flushed)
        # not shared with the receiving process: send the contents
        return _restored, (os.pread(self._fd, self._flushed, 0) if self._flushed else b"",)


def _pwrite(fd: int, data: memoryview, offset: int) -> OSError | None:
    """Write all of ``data`` at ``offset``; the error, if any."""
    done = 0
    try:
        while done < len(data):
            done += os.pwrite(fd, data[done:], offset + done)
    except OSError as exc:
        return exc
    return None


class _Writer:
    """A thread that writes (:func:`_pwrite`, which lets go of the interpreter lock) what a
    spill gives it while the analysis goes on: the copy into the page cache (about 0.13 s
    for the 116 MB the benchmark's capture keeps) is done on the other core.  It writes
    one buffer at a time: a spill waits (:meth:`wait`) before it gives the next.  Before
    the process forks, every writer finishes and its thread ends (:func:`_stop_writers`):
    no thread is copied into the child mid-write, and the child may read what it wrote."""

    def __init__(self, fd: int) -> None:
        import queue
        import threading
        self._jobs: queue.SimpleQueue[tuple[memoryview, int] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[OSError | None] = queue.SimpleQueue()
        self._busy = False
        self._error: OSError | None = None
        self._thread = threading.Thread(target=_write_jobs, args=(fd, self._jobs, self._done),
                                        daemon=True, name="teardown-analyzer spill writer")
        self._thread.start()
        weakref.finalize(self, self._jobs.put, None)  # (ends the thread)
        _WRITERS.add(self)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def write(self, data: memoryview, offset: int) -> None:
        self._jobs.put((data, offset))
        self._busy = True

    def wait(self) -> OSError | None:
        """Wait for what it was given; the first error it met, if any."""
        if self._busy:
            self._busy = False
            self._error = self._error or self._done.get()
        return self._error

    def stop(self) -> None:
        """End the thread, after what it was given."""
        self._jobs.put(None)
        self._thread.join()


def _write_jobs(fd: int, jobs: Any, done: Any) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        error = _pwrite(fd, *job)
        job = None  # (the buffer is let go before the next comes)
        done.put(error)


_WRITERS: "weakref.WeakSet[_Writer]" = weakref.WeakSet()


def _stop_writers() -> None:
    for writer in list(_WRITERS):
        if writer.alive:
            writer.stop()


os.register_at_fork(before=_stop_writers)


def _storage_error(what: str, exc: OSError | None = None) -> StorageError:
    reason = f": {exc.strerror or exc}" if exc is not None else ""
    return StorageError(f"{what} in {printable(tempfile.gettempdir())}{reason} (finished "
                        f"connections are kept there until the output is written, about "
                        f"1 KB each; TMPDIR chooses another directory)")


_SHARED: dict[int, Spill] = {}
_TOKENS = itertools.count(1)


def open_shared(n: int) -> list[Spill]:
    """``n`` spills that processes forked from now on write to and this one reads."""
    spills = [Spill(token=next(_TOKENS)) for _ in range(n)]
    for s in spills:
        _SHARED[s.token] = s  # type: ignore[index]
    return spills


def close_shared(spills: list[Spill]) -> None:
    """Forget ``spills`` as shared (their files stay open while results refer to them)."""
    for s in spills:
        _SHARED.pop(s.token, None)  # type: ignore[arg-type]
        s.token = None


def shared_spill(token: int | None) -> Spill:
    """The spill ``token`` names, as inherited from the parent; a new one if there is none
    (a spawned worker inherits nothing)."""
    found = _SHARED.get(token) if token is not None else None
    return found if found is not None else Spill()


def _shared(token: int, size: int) -> Spill:
    spill = _SHARED[token]
    spill._flushed = max(spill._flushed, size)
    return spill


def _restored(data: bytes) -> Spill:
    spill = Spill()
    if data:
        spill.put(data)
        spill.flush()
    return spill
