"""The project's exceptions, each with the exit status the CLI turns it into.

Exit statuses (documented in the README and used by every command):

====  ==========================================================
0     success
1     a ``check`` rule was violated            (:class:`CheckFailed`)
2     usage error: bad option, value or rules   (:class:`UsageError`)
3     a capture could not be read              (:class:`CaptureError`)
4     the temporary file could not be written  (:class:`StorageError`)
====  ==========================================================

Foreign exceptions (dpkt's, ``struct.error``, ``OSError``) are converted at the
edge with ``raise ... from exc``; nothing else reaches the user.
"""

from __future__ import annotations

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def printable(text: str) -> str:
    """``text`` with every C0/C1 control character and DEL written as ``\\xNN``.

    Names that come from outside (file names, text in a capture) pass through this at the
    edge, so no escape sequence reaches a terminal, a CSV file or a JUnit report.
    """
    return text.translate(_CONTROL)


EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_CAPTURE = 3
EXIT_STORAGE = 4


class TeardownError(Exception):
    """Base of every error the project raises on purpose."""

    exit_code = EXIT_USAGE


class UsageError(TeardownError):
    """A bad option, a bad value on the command line, or a bad rules file."""

    exit_code = EXIT_USAGE


class CaptureError(TeardownError):
    """A capture file that cannot be read (or read any further).

    ``where`` names the place: a byte offset or a packet number.
    """

    exit_code = EXIT_CAPTURE

    def __init__(self, message: str, *, source: str = "", where: str = "") -> None:
        self.source = source
        self.where = where
        parts = [p for p in (source, where) if p]
        super().__init__(f"{': '.join(parts)}: {message}" if parts else message)


class DecodeError(TeardownError):
    """A header that cannot be decoded: too short, or inconsistent.

    ``offset`` is the byte offset, inside the buffer handed to the decoder,
    where decoding stopped.
    """

    exit_code = EXIT_CAPTURE

    def __init__(self, message: str, *, offset: int = 0) -> None:
        self.offset = offset
        super().__init__(message)


class StorageError(TeardownError):
    """The temporary file that holds finished connections could not be made, written or
    read back (a full or read-only temporary directory: TMPDIR chooses another)."""

    exit_code = EXIT_STORAGE


class CheckFailed(TeardownError):
    """A ``check`` rule of severity error did not hold."""

    exit_code = EXIT_CHECK_FAILED
