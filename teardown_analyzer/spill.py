"""Records kept on disk instead of in memory: an anonymous temporary file.

Hundreds of thousands of connections outlive their packets: finished ones until the output
reads (and summarises) them, and connections in TIME_WAIT that only a late segment could
still change.  Both go, frozen (:mod:`teardown_analyzer.parking`), to a :class:`Spill`, so
memory stays proportional to the connections still open.

The file has no name (``tempfile.TemporaryFile``): nothing is left behind, whatever
way the process ends.  Writes are buffered and positioned (``pwrite``), so a worker
process forked after the file was opened can write to it and the parent reads what it
wrote (:func:`teardown_analyzer.analysis.analyze` with ``jobs``: one spill per worker).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from typing import Any

from .errors import StorageError, printable

FLUSH_AT = 1 << 20


class Spill:
    """Write-once records in a temporary file, read back by (offset, length)."""

    __slots__ = ("token", "_file", "_fd", "_pending", "_pending_size", "_flushed")

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

    def put(self, blob: "bytes | memoryview") -> int:
        """Append ``blob``; its offset."""
        offset = self._flushed + self._pending_size
        self._pending.append(blob)
        self._pending_size += len(blob)
        if self._pending_size >= FLUSH_AT:
            self.flush()
        return offset

    def get(self, offset: int, length: int) -> bytes:
        if offset + length > self._flushed:
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
        if self._pending:
            # one blob (a window's connections, teardown_analyzer.columnar) is written as
            # it is, without a copy
            data = memoryview(self._pending[0] if len(self._pending) == 1
                              else b"".join(self._pending))
            done = 0
            try:
                while done < len(data):
                    done += os.pwrite(self._fd, data[done:], self._flushed + done)
            except OSError as exc:
                raise _storage_error("cannot write the temporary file", exc) from exc
            self._flushed += len(data)
            self._pending.clear()
            self._pending_size = 0

    def close(self) -> None:
        self._file.close()

    def __reduce__(self) -> Any:
        self.flush()
        if self.token is not None and self.token in _SHARED:
            return _shared, (self.token, self._flushed)
        # not shared with the receiving process: send the contents
        return _restored, (os.pread(self._fd, self._flushed, 0) if self._flushed else b"",)


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
