"""The TCP header decoder: every field, every option, and the checksum.

Sans-I/O: bytes in, a frozen :class:`TcpHeader` out.  Field positions come from
:data:`teardown_analyzer.fields.TCP_FIELDS`; option kinds from
:data:`teardown_analyzer.fields.TCP_OPTIONS`.

A header cut short (snap length) decodes as far as its bytes go and says so in
``truncated``; nothing is invented.  Inconsistencies (data offset below 5 or past
the captured bytes, an option whose length is below 2 or runs past the header)
are reported in ``problems`` and on the option itself, never raised.  The only
exception is :class:`~teardown_analyzer.errors.DecodeError`, for a buffer too
short to hold even the ports.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Any, Iterator

from .errors import DecodeError
from .fields import (MPTCP_SUBTYPES, TCP_FIELDS, TCP_MIN_HEADER, TCP_OPTIONS,
                     TFO_EXPERIMENT_ID, UNKNOWN_OPTION, OptionSpec, flag_names)

CHECKSUM_OK = "ok"
CHECKSUM_BAD = "bad"
CHECKSUM_TRUNCATED = "unverifiable: truncated"
CHECKSUM_NO_ADDRESSES = "unverifiable: no IP addresses"
CHECKSUM_OVERSIZE = "unverifiable: segment longer than 65535 bytes (TSO/BIG TCP)"


@dataclass(frozen=True, slots=True)
class TcpOption:
    """One option as found in the header."""

    offset: int
    """Byte offset from the start of the TCP header."""
    kind: int
    length: int
    """Bytes the option occupies (1 for EOL/NOP; for a malformed one, what is shown)."""
    raw: bytes
    spec: OptionSpec
    values: tuple[tuple[str, Any], ...] = ()
    malformed: str = ""
    """Why the option is malformed, or empty."""
    cut: bool = False
    """The capture ended inside the option (snap length); ``values`` has what was captured."""

    @property
    def name(self) -> str:
        return self.spec.name

    def value(self, key: str, default: Any = None) -> Any:
        for k, v in self.values:
            if k == key:
                return v
        return default

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"offset": self.offset, "kind": self.kind, "length": self.length,
                             "name": self.name, "bytes": self.raw.hex(" ")}
        d.update({k: (list(map(list, v)) if k == "blocks" else v) for k, v in self.values})
        if self.malformed:
            d["malformed"] = self.malformed
        return d


@dataclass(frozen=True, slots=True)
class TcpHeader:
    """A decoded TCP header."""

    values: dict[str, int]
    """Field name (as in ``TCP_FIELDS``) -> value, for every field the bytes cover."""
    captured: int
    """How many bytes of the segment were available."""
    header_len: int
    """Data offset x 4 (may exceed ``captured`` when truncated)."""
    tcp_len: int | None
    """Header + payload length the IP header declares, when known."""
    options: tuple[TcpOption, ...] = ()
    checksum_status: str = CHECKSUM_NO_ADDRESSES
    checksum_expected: int | None = None
    problems: tuple[str, ...] = field(default=())

    @property
    def truncated(self) -> bool:
        if self.captured < TCP_MIN_HEADER or self.captured < self.header_len:
            return True
        return self.tcp_len is not None and self.captured < self.tcp_len

    @property
    def flags(self) -> int:
        return (self.values.get("AE", 0) << 8) | sum(
            self.values.get(n, 0) << (7 - i) for i, n in enumerate(
                ("CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")))

    @property
    def flag_names(self) -> list[str]:
        return flag_names(self.flags)

    @property
    def payload_len(self) -> int | None:
        if self.tcp_len is None:
            return None
        return max(0, self.tcp_len - self.header_len)

    def option(self, name: str) -> TcpOption | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.values)
        d.update({
            "header_len": self.header_len, "captured": self.captured,
            "tcp_len": self.tcp_len, "payload_len": self.payload_len,
            "flags": self.flag_names, "truncated": self.truncated,
            "checksum_status": self.checksum_status,
            "checksum_expected": self.checksum_expected,
            "options": [o.to_dict() for o in self.options],
            "problems": list(self.problems),
        })
        return d


def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum, folded, not inverted."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def pseudo_header(src: bytes, dst: bytes, tcp_len: int) -> bytes:
    """IPv4 (RFC 9293 section 3.1) or IPv6 (RFC 8200 section 8.1) pseudo-header."""
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, 6, tcp_len)
    return src + dst + struct.pack("!I3xB", tcp_len, 6)


def parse_address(text: str) -> bytes:
    """Packed bytes of an IPv4 or IPv6 address given as text."""
    return ipaddress.ip_address(text.strip()).packed


def decode_tcp(buf: bytes, *, src: bytes | None = None, dst: bytes | None = None,
               tcp_len: int | None = None) -> TcpHeader:
    """Decode the TCP header at the start of ``buf``.

    Args:
        buf: the segment's captured bytes (header first, then any payload).
        src, dst: packed IP addresses, to verify the checksum.
        tcp_len: header + payload length from the IP header; defaults to ``len(buf)``
            when addresses are given (a header copied from a document).

    Raises:
        DecodeError: fewer than 4 bytes (not even the ports).
    """
    captured = len(buf)
    if captured < 4:
        raise DecodeError(f"TCP header needs at least 4 bytes, got {captured}", offset=0)
    values = {f.name: f.extract(buf) for f in TCP_FIELDS if f.end_byte <= captured}
    problems: list[str] = []
    if "data_offset" in values:
        header_len = values["data_offset"] * 4
        if header_len < TCP_MIN_HEADER:
            problems.append(f"data offset {values['data_offset']} is below 5 "
                            f"(a header is at least 20 bytes)")
    else:
        header_len = TCP_MIN_HEADER
    if captured < min(header_len, TCP_MIN_HEADER) or captured < header_len:
        problems.append(f"truncated: {captured} of {max(header_len, TCP_MIN_HEADER)} "
                        f"header bytes captured")
    if tcp_len is None and src is not None and dst is not None:
        tcp_len = captured
    if tcp_len is not None and header_len > tcp_len:
        problems.append(f"data offset says {header_len} bytes but the IP header leaves "
                        f"{tcp_len} for TCP")
    options = tuple(_decode_options(buf, min(header_len, captured), header_len))
    status, expected = _check(buf, src, dst, tcp_len, values.get("checksum"))
    return TcpHeader(values, captured, header_len, tcp_len, options, status, expected,
                     tuple(problems))


def _check(buf: bytes, src: bytes | None, dst: bytes | None, tcp_len: int | None,
           stored: int | None) -> tuple[str, int | None]:
    if src is None or dst is None or tcp_len is None:
        return CHECKSUM_NO_ADDRESSES, None
    if stored is None or len(buf) < tcp_len:
        return CHECKSUM_TRUNCATED, None
    if len(src) == 4 and tcp_len > 0xFFFF:
        return CHECKSUM_OVERSIZE, None
    seg = buf[:tcp_len]
    if internet_checksum(pseudo_header(src, dst, tcp_len) + seg) == 0xFFFF:
        return CHECKSUM_OK, stored
    zeroed = seg[:16] + b"\0\0" + seg[18:]
    expected = 0xFFFF - internet_checksum(pseudo_header(src, dst, tcp_len) + zeroed)
    return CHECKSUM_BAD, expected or 0xFFFF


def _decode_options(buf: bytes, end: int, header_end: int) -> list[TcpOption]:
    """Options from byte 20 up to ``end`` (RFC 9293 section 3.2)."""
    out: list[TcpOption] = []
    pos = TCP_MIN_HEADER
    while pos < end:
        kind = buf[pos]
        spec = TCP_OPTIONS.get(kind, UNKNOWN_OPTION)
        if kind == 0:
            out.append(TcpOption(pos, 0, 1, buf[pos:pos + 1], spec))
            if pos + 1 < end:  # everything after EOL is padding
                out.append(TcpOption(pos + 1, -1, end - pos - 1, buf[pos + 1:end],
                                     _PADDING))
            break
        if kind == 1:
            out.append(TcpOption(pos, 1, 1, buf[pos:pos + 1], spec))
            pos += 1
            continue
        if pos + 1 >= end:
            out.append(TcpOption(pos, kind, end - pos, buf[pos:end], spec,
                                 malformed=f"option kind {kind} at offset {pos} has no "
                                           f"length byte"))
            break
        length = buf[pos + 1]
        if length < 2:
            out.append(TcpOption(pos, kind, end - pos, buf[pos:end], spec,
                                 malformed=f"option kind {kind} at offset {pos} has "
                                           f"length {length}, below 2"))
            break
        if end < pos + length <= header_end:  # cut by the capture, not malformed
            raw = buf[pos:end]
            out.append(TcpOption(pos, kind, end - pos, raw, spec,
                                 _partial_values(kind, raw[2:]), cut=True))
            break
        if pos + length > end:
            out.append(TcpOption(pos, kind, end - pos, buf[pos:end], spec,
                                 malformed=f"option kind {kind} at offset {pos} has "
                                           f"length {length}, past the header end at "
                                           f"{end}"))
            break
        raw = buf[pos:pos + length]
        malformed = ""
        if spec.length is not None and length != spec.length:
            malformed = (f"{spec.en} at offset {pos} has length {length}, "
                         f"expected {spec.length}")
            values: tuple[tuple[str, Any], ...] = ()
        else:
            spec, values, malformed = _option_values(spec, kind, raw, pos)
        out.append(TcpOption(pos, kind, length, raw, spec, values, malformed))
        pos += length
    return out


def _partial_values(kind: int, body: bytes) -> tuple[tuple[str, Any], ...]:
    """The complete sub-fields of an option the capture cut short."""
    if kind == 8 and len(body) >= 4:
        return (("tsval", int.from_bytes(body[:4], "big")),)
    if kind == 5 and len(body) >= 8:
        return (("blocks", tuple(struct.unpack_from("!II", body, i)
                                 for i in range(0, len(body) - 7, 8))),)
    return ()


_PADDING = OptionSpec(-1, "padding", "Padding after EOL", "填充", None)
_TFO_EXP = OptionSpec(254, "tfo", "TCP Fast Open cookie (experimental kind)",
                      "TCP快速打开(TFO, 实验选项)", None)


def _option_values(spec: OptionSpec, kind: int, raw: bytes, pos: int
                   ) -> tuple[OptionSpec, tuple[tuple[str, Any], ...], str]:
    body = raw[2:]
    if kind == 2:
        return spec, (("mss", int.from_bytes(body, "big")),), ""
    if kind == 3:
        shift = body[0]
        bad = f"window scale {shift} above 14 (RFC 7323 section 2.3)" if shift > 14 else ""
        return spec, (("shift", shift), ("multiplier", 1 << min(shift, 14))), bad
    if kind == 5:
        if len(body) % 8:
            return spec, (), f"SACK option at offset {pos} has length {len(raw)}, not 2 + 8n"
        blocks = tuple(struct.unpack_from("!II", body, i) for i in range(0, len(body), 8))
        return spec, (("blocks", blocks),), ""
    if kind == 8:
        tsval, tsecr = struct.unpack("!II", body)
        return spec, (("tsval", tsval), ("tsecr", tsecr)), ""
    if kind == 19:
        return spec, (("digest", body.hex()),), ""
    if kind == 29:
        if len(body) < 2:
            return spec, (), f"TCP-AO at offset {pos} is shorter than 4 bytes"
        return spec, (("key_id", body[0]), ("rnext_key_id", body[1]),
                      ("mac", body[2:].hex())), ""
    if kind == 30:
        if not body:
            return spec, (), f"MPTCP option at offset {pos} has no subtype"
        sub = body[0] >> 4
        return spec, (("subtype", sub), ("subtype_name", MPTCP_SUBTYPES.get(sub, "unknown")),
                      ("data", body.hex())), ""
    if kind == 34:
        return spec, (("cookie", body.hex()),), ""
    if kind in (253, 254) and len(body) >= 2:
        exid = int.from_bytes(body[:2], "big")
        if exid == TFO_EXPERIMENT_ID:
            return _TFO_EXP, (("exid", exid), ("cookie", body[2:].hex())), ""
        return spec, (("exid", exid), ("data", body[2:].hex())), ""
    return spec, (("data", body.hex()),), ""


# --- fast path ------------------------------------------------------------------------

FIXED_HEADER = struct.Struct("!HHIIHH")
"""src_port, dst_port, seq, ack, data offset/reserved/flags word, window: the fields
the flow tracker needs, in the byte layout of ``TCP_FIELDS`` (tested against it)."""


def word_of(buf: bytes, off: int) -> int:
    """The data-offset/flags word (bytes 12-13) of the TCP header at ``off``."""
    return (buf[off + 12] << 8) | buf[off + 13]


def _walk_options(buf: bytes | memoryview, off: int, hlen: int,
                  limit: int | None) -> Iterator[tuple[int, int, int]]:
    """(position, kind, length) of each option but NOPs of the TCP header at ``off`` (a
    short scan, no objects), up to an EOL or an option without a valid length, or the
    header's end; ``limit``: where the captured bytes of the packet end in ``buf``
    (default: its end)."""
    pos, end = off + TCP_MIN_HEADER, min(off + hlen, len(buf) if limit is None else limit)
    while pos < end:
        kind = buf[pos]
        if kind == 0:
            return
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= end or buf[pos + 1] < 2:
            return
        yield pos, kind, min(buf[pos + 1], end - pos)
        pos += buf[pos + 1]


def window_scale(buf: bytes | memoryview, off: int, hlen: int,
                 limit: int | None = None) -> int | None:
    """The window-scale shift in a SYN's options, or None; ``limit`` as
    :func:`_walk_options` has it."""
    for pos, kind, size in _walk_options(buf, off, hlen, limit):
        if kind == 3 and size == 3 and buf[pos + 1] == 3:
            return int(buf[pos + 2])
    return None


def sack_top(buf: bytes | memoryview, off: int, hlen: int, ack: int,
             limit: int | None = None) -> int | None:
    """The right edge of the SACK block furthest past the ACK field ``ack`` (RFC 2018:
    data the receiver holds out of order, behind a hole), or None: no SACK option, or
    none of its blocks past ``ack`` (a D-SACK, RFC 2883, reports data below it); the
    first SACK option only, its blocks as far as they were captured; ``limit`` as
    :func:`_walk_options` has it."""
    for pos, kind, size in _walk_options(buf, off, hlen, limit):
        if kind == 5:
            top = best = None
            for at in range(pos + 6, pos + size - 3, 8):
                edge = int.from_bytes(buf[at:at + 4], "big")
                past = (edge - ack) & 0xFFFFFFFF
                if 0 < past < 0x80000000 and (best is None or past > best):
                    top, best = edge, past
            return top
    return None
