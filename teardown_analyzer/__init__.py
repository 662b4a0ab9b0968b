"""teardown-analyzer: reconstruct how every TCP connection in a packet capture was closed.

Layers, each importing only those before it:
capture (files -> batches of records, frames) -> link/tcp (bytes -> segments, headers) ->
flows (per-side state machines; finished connections frozen by parking into a spill file)
-> analysis (summaries) -> results (the store) -> render/report (rich/JSON) -> cli (click).
"""

from .capture import Capture, CaptureInfo, Frame, open_bytes, open_capture
from .errors import (CaptureError, CheckFailed, DecodeError, StorageError, TeardownError,
                     UsageError)
from .tcp import TcpHeader, TcpOption, decode_tcp

__all__ = [
    "Capture", "CaptureInfo", "Frame", "open_capture", "open_bytes",
    "TeardownError", "CaptureError", "DecodeError", "UsageError", "CheckFailed", "StorageError",
    "TcpHeader", "TcpOption", "decode_tcp",
]
__version__ = "0.1.0"
