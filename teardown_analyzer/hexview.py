"""The library side of ``teardown-analyze hex``: find a header, decode it, annotate it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .annotate import Row, ip_rows, tcp_rows
from .capture import Frame, open_capture
from .errors import CaptureError, UsageError
from .link import Segment, locate_tcp
from .tcp import TcpHeader, decode_tcp, parse_address

_HEX_TOKEN = re.compile(r"(?:0x)?([0-9a-fA-F]+)")


def parse_hex(text: str) -> bytes:
    """Bytes from hex copied out of a document: spaces, newlines, colons, ``0x`` allowed.

    Raises:
        UsageError: anything else in the text, or an odd number of hex digits.
    """
    cleaned = text.replace(":", " ").replace(",", " ").replace("-", " ")
    digits = []
    for token in cleaned.split():
        m = _HEX_TOKEN.fullmatch(token)
        if not m:
            raise UsageError(f"--raw: {token!r} is not hex")
        digits.append(m.group(1))
    joined = "".join(digits)
    if len(joined) % 2:
        raise UsageError(f"--raw: odd number of hex digits ({len(joined)})")
    if not joined:
        raise UsageError("--raw: no hex bytes given")
    return bytes.fromhex(joined)


@dataclass(frozen=True, slots=True)
class Annotated:
    """A decoded header and its rows, with where it came from."""

    header: TcpHeader
    rows: tuple[Row, ...]
    frame: Frame | None = None
    segment: Segment | None = None


def annotate_raw(data: bytes, src: str | None, dst: str | None, lang: str,
                 with_ip: bool = False) -> Annotated:
    """Annotate a TCP header (``with_ip``: an IP header followed by TCP) given as bytes."""
    try:
        s = parse_address(src) if src else None
        d = parse_address(dst) if dst else None
    except ValueError as exc:
        raise UsageError(f"--src/--dst: {exc}") from exc
    if (s is None) != (d is None):
        raise UsageError("--src and --dst go together")
    if s is not None and d is not None and len(s) != len(d):
        raise UsageError("--src and --dst must both be IPv4 or both IPv6")
    if with_ip:
        seg = locate_tcp(data, 101)  # raw IP
        if isinstance(seg, str):
            raise UsageError(f"--raw --with-ip: {seg}")
        return _annotate_segment(data, seg, lang, True)
    hdr = decode_tcp(data, src=s, dst=d)
    return Annotated(hdr, tuple(tcp_rows(data, hdr, lang)))


def _annotate_segment(data: bytes, seg: Segment, lang: str, with_ip: bool,
                      frame: Frame | None = None) -> Annotated:
    tcp = data[seg.tcp_offset:]
    complete = not seg.first_fragment
    hdr = decode_tcp(tcp, src=seg.src if complete else None,
                     dst=seg.dst if complete else None, tcp_len=seg.tcp_len)
    rows = tcp_rows(tcp, hdr, lang)
    if with_ip:
        rows = ip_rows(data[seg.ip_offset:seg.tcp_offset], lang) + rows
    return Annotated(hdr, tuple(rows), frame, seg)


def annotate_packet(path: str, number: int, lang: str, with_ip: bool) -> Annotated:
    """Annotate packet ``number`` (from 1) of a capture."""
    if number < 1:
        raise UsageError(f"--packet {number}: packets are numbered from 1")
    cap = open_capture(path)
    found = None
    for frame in cap:
        if frame.index == number:
            found = frame
            break
    cap.close()
    if found is None:
        if cap.info.error is not None:
            raise cap.info.error
        raise UsageError(f"{cap.info.source}: there is no packet {number} (the capture has "
                         f"{cap.info.packets})")
    seg = locate_tcp(found.data, found.linktype)
    if isinstance(seg, str):
        raise UsageError(f"{cap.info.source}: packet {number} is not a TCP segment we can "
                         f"decode ({seg})")
    return _annotate_segment(found.data, seg, lang, with_ip, found)


__all__ = ["parse_hex", "annotate_raw", "annotate_packet", "Annotated", "CaptureError"]
