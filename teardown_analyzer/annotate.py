"""Annotated rows for a header: offset, bytes as the write-ups show them, label, value, meaning.

Rows come from the field tables in :mod:`teardown_analyzer.fields` (one row per
``row_name``) and from the decoded options; the renderers in
:mod:`teardown_analyzer.render` turn them into a rich table, Markdown, JSON or SVG.
Labels exist in English (``en``) and Chinese (``zh``, the write-ups' wording).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable

from .fields import (IPV4_FIELDS, IPV4_ROWS, IPV6_FIELDS, IPV6_ROWS, TCP_FIELDS,
                     TCP_ROWS, FieldSpec, RowSpec)
from .tcp import (CHECKSUM_BAD, CHECKSUM_NO_ADDRESSES, CHECKSUM_OK, CHECKSUM_OVERSIZE,
                  CHECKSUM_TRUNCATED,
                  TcpHeader, TcpOption, internet_checksum)

LANGS = ("en", "zh")


@dataclass(frozen=True, slots=True)
class Row:
    """One line of an annotated header table."""

    section: str
    """``ip``, ``tcp`` or ``tcp-options``."""
    offset: int
    """Byte offset from the start of the section's header."""
    length: int
    """Number of bytes the row touches."""
    bytes: str
    """The row's bits in hex as the write-up shows them (``80 26``, ``8``, ``0 11``)."""
    field: str
    """Field name (JSON key of the field table)."""
    label: str
    value: str
    meaning: str
    bit_offset: int
    bits: int
    style: str = ""
    """Theme style name for renderers (``ta.flag``, ``ta.bad`` ...)."""

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.section, "offset": self.offset, "length": self.length,
                "bytes": self.bytes, "field": self.field, "label": self.label,
                "value": self.value, "meaning": self.meaning,
                "bit_offset": self.bit_offset, "bits": self.bits}


_TEXT = {
    "en": {
        "bytes_hdr": "{n} × 4 = {b} bytes",
        "ok": "correct",
        "bad": "incorrect, expected 0x{exp:04x} (a bad checksum on packets sent by the "
               "capturing host is usually checksum offload)",
        "trunc": "not verifiable: segment truncated by the snap length",
        "noaddr": "not verifiable without the IP addresses (give --src and --dst)",
        "oversize": "not verifiable: a segment over 65535 bytes (TSO / BIG TCP on the "
                    "capturing host)",
        "urg_off": "not used (URG not set)",
        "urg_on": "urgent data ends at seq + {v}",
        "no_flags": "none",
        "reserved": "reserved bits {v:03b} (must be zero)",
        "padding": "padding",
        "missing": "(not captured)",
        "malformed": "malformed: {why}",
        "window_scaled": "× {m} (scale {s})",
    },
    "zh": {
        "bytes_hdr": "{n}*4={b}字节",
        "ok": "正确",
        "bad": "错误, 应为0x{exp:04x}(抓包主机自己发出的报文校验和错误, 通常是校验和卸载所致)",
        "trunc": "无法校验: 报文被截断",
        "noaddr": "无法校验: 缺少IP地址(请给出--src和--dst)",
        "oversize": "无法校验: 报文段超过65535字节(抓包主机的TSO/BIG TCP)",
        "urg_off": "未使用(URG未置位)",
        "urg_on": "紧急数据结束于 seq + {v}",
        "no_flags": "无",
        "reserved": "保留位 {v:03b}(应为0)",
        "padding": "填充",
        "missing": "(未抓到)",
        "malformed": "格式错误: {why}",
        "window_scaled": "× {m}(扩大因子 {s})",
    },
}


def _bits_hex(buf: bytes, base: int, bit_offset: int, bits: int) -> str:
    """The nibbles covering the bit range, grouped per byte: ``8``, ``0 11``, ``80 26``."""
    first, last = bit_offset // 4, (bit_offset + bits + 3) // 4
    groups: dict[int, str] = {}
    hexed = buf[base + first // 2:base + (last + 1) // 2].hex()
    start_byte = first // 2
    for n in range(first, last):
        byte = n // 2
        idx = (byte - start_byte) * 2 + (n % 2)
        if idx < len(hexed):
            groups[byte] = groups.get(byte, "") + hexed[idx]
    return " ".join(groups.values())


def _group_rows(fields: Iterable[FieldSpec]) -> list[tuple[str, list[FieldSpec]]]:
    rows: dict[str, list[FieldSpec]] = {}
    for f in fields:
        rows.setdefault(f.row_name, []).append(f)
    return list(rows.items())


def _span(group: list[FieldSpec]) -> tuple[int, int, int]:
    """A row's first bit, its width in bits, and one past its last byte."""
    bit_offset = group[0].bit_offset
    bits = sum(f.bits for f in group)
    return bit_offset, bits, (bit_offset + bits + 7) // 8


def tcp_rows(buf: bytes, hdr: TcpHeader, lang: str = "en") -> list[Row]:
    """Rows for every field and option of a decoded TCP header."""
    text = _TEXT[lang]
    out: list[Row] = []
    for row_name, fields in _group_rows(TCP_FIELDS):
        bit_offset, bits, end_byte = _span(fields)
        spec: RowSpec | FieldSpec = TCP_ROWS.get(row_name) or fields[0]
        label = getattr(spec, lang)
        if end_byte > hdr.captured:
            out.append(Row("tcp", bit_offset // 8, end_byte - bit_offset // 8, "",
                           row_name, label, "", text["missing"], bit_offset, bits, "ta.bad"))
            continue
        value, meaning, style = _tcp_value(row_name, hdr, lang)
        out.append(Row("tcp", bit_offset // 8, end_byte - bit_offset // 8,
                       _bits_hex(buf, 0, bit_offset, bits), row_name, label, value, meaning,
                       bit_offset, bits, style))
    out.extend(_option_row(opt, lang) for opt in hdr.options)
    return out


def _tcp_value(name: str, hdr: TcpHeader, lang: str) -> tuple[str, str, str]:
    text = _TEXT[lang]
    v = hdr.values
    if name in ("src_port", "dst_port", "window"):
        return str(v[name]), "", ""
    if name in ("seq", "ack"):
        return f"0x{v[name]:08x}", f"{v[name]}", ""
    if name == "data_offset":
        n = v[name]
        return str(n), text["bytes_hdr"].format(n=n, b=n * 4), "" if n >= 5 else "ta.bad"
    if name == "flags":
        names = hdr.flag_names
        word = (v["reserved"] << 9) | hdr.flags
        if lang == "zh":
            meaning = ", ".join(f"{n}=1" for n in names) or text["no_flags"]
        else:
            meaning = ", ".join(names) or text["no_flags"]
        if v["reserved"]:
            meaning += "; " + text["reserved"].format(v=v["reserved"])
        return f"0x{word:03x}", meaning, "ta.flag"
    if name == "checksum":
        status = hdr.checksum_status
        if status == CHECKSUM_OK:
            meaning, style = text["ok"], "ta.ok"
        elif status == CHECKSUM_BAD:
            meaning, style = text["bad"].format(exp=hdr.checksum_expected or 0), "ta.bad"
        elif status == CHECKSUM_OVERSIZE:
            meaning, style = text["oversize"], ""
        elif status == CHECKSUM_TRUNCATED:
            meaning, style = text["trunc"], ""
        else:
            meaning, style = text["noaddr"], ""
        return f"0x{v[name]:04x}", meaning, style
    if name == "urgent_pointer":
        if v.get("URG"):
            return str(v[name]), text["urg_on"].format(v=v[name]), ""
        return str(v[name]), text["urg_off"], ""
    return str(v.get(name, "")), "", ""


def _option_row(opt: TcpOption, lang: str) -> Row:
    text = _TEXT[lang]
    label = getattr(opt.spec, lang)
    if opt.spec.name == "unknown":
        label = f"{label} (kind {opt.kind})" if lang == "en" else f"{label}(类型{opt.kind})"
    value, meaning = _option_value(opt, lang)
    style = ""
    if opt.malformed:
        meaning = text["malformed"].format(why=opt.malformed)
        style = "ta.bad"
    elif opt.cut:
        meaning = (meaning + " " if meaning else "") + text["missing"]
    return Row("tcp-options", opt.offset, opt.length, opt.raw.hex(" "), opt.name, label,
               value, meaning, opt.offset * 8, opt.length * 8, style)


def _option_value(opt: TcpOption, lang: str) -> tuple[str, str]:
    text = _TEXT[lang]
    name = opt.name
    if name in ("nop", "padding"):
        return "", text["padding"]
    if name == "eol":
        return "", ""
    if name == "mss":
        return str(opt.value("mss", "")), ""
    if name == "window_scale" and opt.values:
        return str(opt.value("shift")), text["window_scaled"].format(
            m=opt.value("multiplier"), s=opt.value("shift"))
    if name == "timestamps" and opt.values:
        tsval, tsecr = opt.value("tsval"), opt.value("tsecr")
        if tsecr is None:  # cut by the capture after TSval
            return f"TSval {tsval} (0x{tsval:08x})", text["missing"]
        return (f"TSval {tsval} (0x{tsval:08x}), TSecr {tsecr} (0x{tsecr:08x})", "")
    if name == "sack" and opt.values:
        return ", ".join(f"{lo}-{hi}" for lo, hi in opt.value("blocks")), ""
    if name == "tfo":
        cookie = opt.value("cookie", "")
        return cookie, ("cookie request" if lang == "en" else "请求cookie") if not cookie else ""
    if name == "mptcp" and opt.values:
        return str(opt.value("subtype_name")), ""
    if name == "tcp_ao" and opt.values:
        return f"KeyID {opt.value('key_id')}, RNextKeyID {opt.value('rnext_key_id')}", \
            f"MAC {opt.value('mac')}"
    if name == "md5" and opt.values:
        return opt.value("digest"), ""
    if name == "sack_permitted":
        return "", ""
    data = opt.value("data")
    if data is not None:
        return data, f"length {opt.length}" if lang == "en" else f"长度{opt.length}"
    return "", ""


def ip_rows(buf: bytes, lang: str = "en") -> list[Row]:
    """Rows for an IPv4 or IPv6 header at the start of ``buf`` (as far as it was captured)."""
    if not buf:
        return []
    version = buf[0] >> 4
    fields, rows = (IPV4_FIELDS, IPV4_ROWS) if version == 4 else (IPV6_FIELDS, IPV6_ROWS)
    out: list[Row] = []
    for row_name, group in _group_rows(fields):
        bit_offset, bits, end_byte = _span(group)
        spec: RowSpec | FieldSpec = rows.get(row_name) or group[0]
        if end_byte > len(buf):
            break
        vals = {f.name: f.extract(buf) for f in group}
        value, meaning = _ip_value(row_name, vals, group, buf, lang)
        out.append(Row("ip", bit_offset // 8, end_byte - bit_offset // 8,
                       _bits_hex(buf, 0, bit_offset, bits), row_name, getattr(spec, lang),
                       value, meaning, bit_offset, bits))
    if version == 4 and len(buf) >= 20:
        ihl = (buf[0] & 0x0F) * 4
        if ihl > 20:
            opts = buf[20:ihl]
            out.append(Row("ip", 20, len(opts), opts.hex(" "), "options",
                           getattr(IPV4_ROWS["options"], lang), "", "", 160, len(opts) * 8))
    return out


def _ip_value(row: str, vals: dict[str, int], group: list[FieldSpec], buf: bytes,
              lang: str) -> tuple[str, str]:
    f = group[0]
    if f.kind == "ipv4" or f.kind == "ipv6":
        return str(ipaddress.ip_address(buf[f.byte_offset:f.end_byte])), ""
    if row == "ihl":
        n = vals["ihl"]
        return str(n), _TEXT[lang]["bytes_hdr"].format(n=n, b=n * 4)
    if row == "header_checksum":
        ihl = (buf[0] & 0x0F) * 4
        if len(buf) >= ihl >= 20:
            ok = internet_checksum(buf[:ihl]) == 0xFFFF
            return f"0x{vals[row]:04x}", _TEXT[lang]["ok"] if ok else (
                "incorrect" if lang == "en" else "错误")
        return f"0x{vals[row]:04x}", ""
    if row == "protocol":
        return str(vals[row]), "TCP" if vals[row] == 6 else ""
    if row == "next_header":
        return str(vals[row]), "TCP" if vals[row] == 6 else ""
    if len(group) > 1:
        return ", ".join(f"{g.name}={vals[g.name]}" for g in group), ""
    return (f"0x{vals[row]:x}" if f.kind == "hex" else str(vals[row])), ""


__all__ = ["Row", "tcp_rows", "ip_rows", "LANGS", "CHECKSUM_NO_ADDRESSES"]
