"""The one description of the header fields: offsets, bit ranges and labels.

Decoding (:mod:`teardown_analyzer.tcp`), the annotated hex tables
(:mod:`teardown_analyzer.annotate`) and the JSON keys all loop over these
tables; no other module hard-codes an offset or a flag name.

Bit positions count from the first bit of the header (bit 0 is the most
significant bit of byte 0), as the RFC diagrams draw them.  A *row* groups
fields shown together on one line of an annotated table: the write-up shows
the reserved bits and the flags as one row (``0 11  标志位, ACK=1, FIN=1``).

References: TCP header, RFC 9293 section 3.1; AE (formerly NS), RFC 9768 / RFC
3540; CWR and ECE, RFC 3168; IPv4, RFC 791; IPv6, RFC 8200.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One header field."""

    name: str
    """JSON key and internal name."""
    bit_offset: int
    """First bit, counted from the start of the header."""
    bits: int
    """Width in bits."""
    en: str
    """English label."""
    zh: str
    """Chinese label, in the wording of the write-ups."""
    row: str = ""
    """The annotated-table row this field is shown in (defaults to its name)."""
    kind: str = "int"
    """How the value is shown: int, hex, flag, ipv4, ipv6."""

    @property
    def row_name(self) -> str:
        return self.row or self.name

    @property
    def byte_offset(self) -> int:
        return self.bit_offset // 8

    @property
    def end_byte(self) -> int:
        """One past the last byte the field touches."""
        return (self.bit_offset + self.bits + 7) // 8

    def extract(self, buf: bytes | bytearray | memoryview, base: int = 0) -> int:
        """The field's value read from ``buf`` where the header starts at ``base``."""
        start = base + self.byte_offset
        end = base + self.end_byte
        raw = int.from_bytes(buf[start:end], "big")
        tail = (self.end_byte * 8) - (self.bit_offset + self.bits)
        return (raw >> tail) & ((1 << self.bits) - 1)


@dataclass(frozen=True, slots=True)
class RowSpec:
    """A line of an annotated table: a label for a group of fields."""

    name: str
    en: str
    zh: str


# --- TCP (RFC 9293 section 3.1) ---------------------------------------------------------

TCP_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("src_port", 0, 16, "Source port", "16位源端口号"),
    FieldSpec("dst_port", 16, 16, "Destination port", "16位目的端口号"),
    FieldSpec("seq", 32, 32, "Sequence number", "32位序号", kind="hex"),
    FieldSpec("ack", 64, 32, "Acknowledgment number", "32位确认序号", kind="hex"),
    FieldSpec("data_offset", 96, 4, "Header length (data offset)", "首部长度"),
    FieldSpec("reserved", 100, 3, "Reserved", "保留位", row="flags"),
    FieldSpec("AE", 103, 1, "AE (formerly NS)", "AE(原NS)", row="flags", kind="flag"),
    FieldSpec("CWR", 104, 1, "CWR", "CWR", row="flags", kind="flag"),
    FieldSpec("ECE", 105, 1, "ECE", "ECE", row="flags", kind="flag"),
    FieldSpec("URG", 106, 1, "URG", "URG", row="flags", kind="flag"),
    FieldSpec("ACK", 107, 1, "ACK", "ACK", row="flags", kind="flag"),
    FieldSpec("PSH", 108, 1, "PSH", "PSH", row="flags", kind="flag"),
    FieldSpec("RST", 109, 1, "RST", "RST", row="flags", kind="flag"),
    FieldSpec("SYN", 110, 1, "SYN", "SYN", row="flags", kind="flag"),
    FieldSpec("FIN", 111, 1, "FIN", "FIN", row="flags", kind="flag"),
    FieldSpec("window", 112, 16, "Window size", "16位窗口大小"),
    FieldSpec("checksum", 128, 16, "Checksum", "16位校验和", kind="hex"),
    FieldSpec("urgent_pointer", 144, 16, "Urgent pointer", "16位紧急指针"),
)
TCP_FIELD = {f.name: f for f in TCP_FIELDS}
TCP_MIN_HEADER = 20

TCP_ROWS: dict[str, RowSpec] = {
    "flags": RowSpec("flags", "Flags", "标志位"),
    "options": RowSpec("options", "TCP options", "TCP选项"),
    "payload": RowSpec("payload", "Payload", "数据"),
}

# Flags as an IntFlag built from the same table: bit value = position in the 16-bit word
# at byte 12, so ``TcpFlag(word & 0x1ff)`` works on the raw data-offset/flags word.
TcpFlag = enum.IntFlag(  # type: ignore[misc]
    "TcpFlag",
    {f.name: 1 << (111 - f.bit_offset) for f in TCP_FIELDS if f.kind == "flag"},
)
FLAG_ORDER: tuple[str, ...] = tuple(f.name for f in TCP_FIELDS if f.kind == "flag")


_FLAG_BITS = tuple((name, int(TcpFlag[name])) for name in FLAG_ORDER)
_FLAG_NAMES = tuple(tuple(n for n, bit in _FLAG_BITS if v & bit) for v in range(512))


def flag_names(flags: int) -> list[str]:
    """Names of the flags set in a 9-bit flag value, in header order."""
    return list(_FLAG_NAMES[flags & 0x1FF])


# --- TCP options (IANA "TCP Option Kind Numbers") ---------------------------------------

@dataclass(frozen=True, slots=True)
class OptionSpec:
    kind: int
    name: str
    en: str
    zh: str
    length: int | None = None
    """The fixed length the RFC requires, or None when variable."""


TCP_OPTIONS: dict[int, OptionSpec] = {o.kind: o for o in (
    OptionSpec(0, "eol", "End of option list", "选项结束", 1),
    OptionSpec(1, "nop", "No-operation (padding)", "填充", 1),
    OptionSpec(2, "mss", "Maximum segment size", "最大报文段长度(MSS)", 4),
    OptionSpec(3, "window_scale", "Window scale", "窗口扩大因子", 3),
    OptionSpec(4, "sack_permitted", "SACK permitted", "允许SACK", 2),
    OptionSpec(5, "sack", "SACK blocks", "SACK块", None),
    OptionSpec(8, "timestamps", "Timestamps", "时间戳", 10),
    OptionSpec(19, "md5", "MD5 signature", "MD5签名", 18),
    OptionSpec(29, "tcp_ao", "TCP-AO authentication", "TCP-AO认证", None),
    OptionSpec(30, "mptcp", "Multipath TCP", "多路径TCP(MPTCP)", None),
    OptionSpec(34, "tfo", "TCP Fast Open cookie", "TCP快速打开(TFO)", None),
    OptionSpec(253, "experimental", "Experimental (RFC 6994)", "实验选项", None),
    OptionSpec(254, "experimental", "Experimental (RFC 6994)", "实验选项", None),
)}
UNKNOWN_OPTION = OptionSpec(-1, "unknown", "Unknown option", "未知选项", None)
TFO_EXPERIMENT_ID = 0xF989  # RFC 7413 section 4.1.1: TFO before kind 34 was assigned

MPTCP_SUBTYPES = {
    0: "MP_CAPABLE", 1: "MP_JOIN", 2: "DSS", 3: "ADD_ADDR", 4: "REMOVE_ADDR",
    5: "MP_PRIO", 6: "MP_FAIL", 7: "MP_FASTCLOSE", 8: "MP_TCPRST", 15: "MP_EXPERIMENTAL",
}


# --- IPv4 (RFC 791) and IPv6 (RFC 8200) --------------------------------------------------

IPV4_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("version", 0, 4, "Version", "4位版本"),
    FieldSpec("ihl", 4, 4, "Header length (IHL)", "4位首部长度"),
    FieldSpec("dscp", 8, 6, "DSCP", "区分服务(DSCP)", row="tos"),
    FieldSpec("ecn", 14, 2, "ECN", "ECN", row="tos"),
    FieldSpec("total_length", 16, 16, "Total length", "16位总长度"),
    FieldSpec("identification", 32, 16, "Identification", "16位标识", kind="hex"),
    FieldSpec("flag_reserved", 48, 1, "Reserved", "保留", row="frag", kind="flag"),
    FieldSpec("DF", 49, 1, "DF", "DF", row="frag", kind="flag"),
    FieldSpec("MF", 50, 1, "MF", "MF", row="frag", kind="flag"),
    FieldSpec("fragment_offset", 51, 13, "Fragment offset", "13位片偏移", row="frag"),
    FieldSpec("ttl", 64, 8, "Time to live", "8位生存时间(TTL)"),
    FieldSpec("protocol", 72, 8, "Protocol", "8位协议"),
    FieldSpec("header_checksum", 80, 16, "Header checksum", "16位首部校验和", kind="hex"),
    FieldSpec("src", 96, 32, "Source address", "32位源IP地址", kind="ipv4"),
    FieldSpec("dst", 128, 32, "Destination address", "32位目的IP地址", kind="ipv4"),
)
IPV4_ROWS: dict[str, RowSpec] = {
    "tos": RowSpec("tos", "Type of service (DSCP, ECN)", "8位服务类型(TOS)"),
    "frag": RowSpec("frag", "Flags, fragment offset", "3位标志, 13位片偏移"),
    "options": RowSpec("options", "IP options", "IP选项"),
}

IPV6_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("version", 0, 4, "Version", "4位版本", row="vtf"),
    FieldSpec("traffic_class", 4, 8, "Traffic class", "8位通信类别", row="vtf", kind="hex"),
    FieldSpec("flow_label", 12, 20, "Flow label", "20位流标签", row="vtf", kind="hex"),
    FieldSpec("payload_length", 32, 16, "Payload length", "16位有效载荷长度"),
    FieldSpec("next_header", 48, 8, "Next header", "8位下一个首部"),
    FieldSpec("hop_limit", 56, 8, "Hop limit", "8位跳数限制"),
    FieldSpec("src", 64, 128, "Source address", "128位源IP地址", kind="ipv6"),
    FieldSpec("dst", 192, 128, "Destination address", "128位目的IP地址", kind="ipv6"),
)
IPV6_ROWS: dict[str, RowSpec] = {
    "vtf": RowSpec("vtf", "Version, traffic class, flow label", "版本, 通信类别, 流标签"),
    "ext": RowSpec("ext", "Extension header", "扩展首部"),
}
