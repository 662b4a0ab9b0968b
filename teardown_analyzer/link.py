"""Outer layers: from a captured frame to the TCP segment inside it.

Link layers and EtherTypes are looked up in two registries, so new outer layers
(MPLS, GRE, VXLAN, Geneve ...) plug in with :func:`register_linktype` and
:func:`register_ethertype` without touching the rest.  (Where the IP header is at a
fixed place behind a link header, :data:`teardown_analyzer.columnar.LAYOUTS` also reads
whole windows of such records at once; a link type missing there is still read, one
record at a time.)  A decoder returns
``(next, offset)`` where ``next`` is an EtherType (``0x0800`` IPv4, ``0x86DD``
IPv6, or any registered one) and ``offset`` is where that layer begins.

:func:`locate_tcp` returns a :class:`Segment` (where the IP and TCP headers are,
the addresses and the TCP length the IP header declares) or, for anything that
is not a TCP segment we can use, a short reason string; reasons are counted by
the caller, never raised.
"""

from __future__ import annotations

import struct
from typing import Callable, NamedTuple

from .tcp import sack_top, window_scale

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
IPPROTO_TCP = 6

LinkDecoder = Callable[[bytes, int], "tuple[int, int] | str"]
"""(data, offset) -> (EtherType of the next layer, its offset) or a skip reason."""

LINKTYPES: dict[int, LinkDecoder] = {}
ETHERTYPES: dict[int, LinkDecoder] = {}
LINKTYPE_NAMES: dict[int, str] = {}


def register_linktype(numbers: tuple[int, ...], name: str) -> Callable[[LinkDecoder], LinkDecoder]:
    def deco(fn: LinkDecoder) -> LinkDecoder:
        for n in numbers:
            LINKTYPES[n] = fn
            LINKTYPE_NAMES[n] = name
        return fn
    return deco


def register_ethertype(*numbers: int) -> Callable[[LinkDecoder], LinkDecoder]:
    def deco(fn: LinkDecoder) -> LinkDecoder:
        for n in numbers:
            ETHERTYPES[n] = fn
        return fn
    return deco


@register_linktype((1,), "Ethernet")
def _ethernet(data: bytes, off: int) -> tuple[int, int] | str:
    if len(data) < off + 14:
        return "truncated link header"
    return int.from_bytes(data[off + 12:off + 14], "big"), off + 14


VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
"""802.1Q, 802.1ad, and the 0x9100 some switches use for the outer tag."""


@register_ethertype(*VLAN_TPIDS)
def _vlan(data: bytes, off: int) -> tuple[int, int] | str:
    """802.1Q / 802.1ad tag: 2 bytes TCI, 2 bytes inner EtherType."""
    if len(data) < off + 4:
        return "truncated link header"
    return int.from_bytes(data[off + 2:off + 4], "big"), off + 4


@register_linktype((113,), "Linux cooked (SLL)")
def _sll(data: bytes, off: int) -> tuple[int, int] | str:
    if len(data) < off + 16:
        return "truncated link header"
    return int.from_bytes(data[off + 14:off + 16], "big"), off + 16


@register_linktype((276,), "Linux cooked v2 (SLL2)")
def _sll2(data: bytes, off: int) -> tuple[int, int] | str:
    if len(data) < off + 20:
        return "truncated link header"
    return int.from_bytes(data[off:off + 2], "big"), off + 20


def _ip_by_version(data: bytes, off: int) -> tuple[int, int] | str:
    if len(data) <= off:
        return "truncated link header"
    version = data[off] >> 4
    if version == 4:
        return ETH_IPV4, off
    if version == 6:
        return ETH_IPV6, off
    return "not IP"


# DLT_RAW is 12 on most systems and 14 on OpenBSD; LINKTYPE_RAW is 101 in files;
# LINKTYPE_IPV4 228 and LINKTYPE_IPV6 229 (the version nibble tells them apart anyway).
register_linktype((12, 14, 101, 228, 229), "raw IP")(_ip_by_version)

# BSD loopback: a 4-byte address family in the writer's byte order (NULL) or in
# network order (LOOP).  AF_INET is 2 everywhere; AF_INET6 is 10, 24, 28 or 30.
AF_IPV6 = {10, 24, 28, 30}


@register_linktype((0, 108), "BSD loopback")
def _null(data: bytes, off: int) -> tuple[int, int] | str:
    if len(data) < off + 4:
        return "truncated link header"
    fam_le = int.from_bytes(data[off:off + 4], "little")
    fam_be = int.from_bytes(data[off:off + 4], "big")
    for fam in (fam_le, fam_be):
        if fam == 2:
            return ETH_IPV4, off + 4
        if fam in AF_IPV6:
            return ETH_IPV6, off + 4
    return "not IP"


class Segment(NamedTuple):
    """Where a TCP segment sits in a frame, and what the IP header says about it."""

    ip_version: int
    src: bytes
    """Packed source address (4 or 16 bytes)."""
    dst: bytes
    ip_offset: int
    tcp_offset: int
    tcp_len: int
    """TCP header + payload length as the IP header declares it."""
    first_fragment: bool = False
    """The IP packet is the first fragment of several: the payload is incomplete."""


_IPV6_EXT = {0, 43, 60, 135, 139, 140}  # hop-by-hop, routing, dest opts, mobility, HIP, shim6
_IPV6_FRAG = 44
_IPV6_AH = 51
_IPV6_NONE = 59


def locate_tcp(data: bytes, linktype: int) -> Segment | str:
    """Find the TCP segment in a frame, or say why there is none."""
    if linktype == 1 and data[12:14] == b"\x08\x00":  # the common case, without lookups
        return _ipv4(data, 14)
    decoder = LINKTYPES.get(linktype)
    if decoder is None:
        return f"unsupported link type {linktype}"
    step = decoder(data, 0)
    for _ in range(16):  # bound the number of stacked layers
        if isinstance(step, str):
            return step
        ethertype, off = step
        if ethertype == ETH_IPV4:
            return _ipv4(data, off)
        if ethertype == ETH_IPV6:
            return _ipv6(data, off)
        nxt = ETHERTYPES.get(ethertype)
        if nxt is None:
            return "not IP"
        step = nxt(data, off)
    return "too many stacked headers"


TcpPacket = tuple[int, bytes, bytes, int, int, int, int, int, int, int, int, int, "int | None"]
"""What the flow tracker reads of a TCP packet, as :func:`tcp_packet` returns it: (IP
version, source address, destination address, IPv4 ID or -1, TCP length (header +
payload, as the IP header declares it), source port, destination port, seq, ack, data
offset/flags word, window, checksum or -1 when the capture cut it off, and what
:func:`read_options` reads of the options: a SYN's window-scale shift, how far past its
ACK field another segment's SACK blocks reach, or None)."""

_ETH_IPV4_TCP = struct.Struct("!HBxHHHxBxx4s4sHHIIHHH")
"""From byte 12 of an Ethernet frame: EtherType, IPv4 version/IHL, total length, ID,
fragment word, protocol, addresses; then a TCP header at byte 34 (an IPv4 header without
options): ports, seq, ack, word, window, checksum."""
_ETH_IPV6_TCP = struct.Struct("!HB3xHBx16s16sHHIIHHH")
"""From byte 12 of an Ethernet frame: EtherType, IPv6 version nibble, payload length, next
header, addresses; then a TCP header at byte 54 (no extension headers)."""
_TCP_FIXED = struct.Struct("!HHIIHHH")


def tcp_packet(data: bytes, linktype: int) -> TcpPacket | str:
    """The fields the flow tracker needs from a frame (see :data:`TcpPacket`), or why there
    are none."""
    return tcp_packet_at(data, 0, len(data), linktype)


def tcp_packet_at(buf: bytes | memoryview, start: int, incl: int,
                  linktype: int) -> TcpPacket | str:
    """:func:`tcp_packet` of the frame at ``buf[start:start + incl]``, read in place.  One
    ``unpack`` for the common cases (Ethernet, then IPv4 without options and not a
    fragment, or IPv6 without extension headers); everything else goes through
    :func:`locate_tcp` and gives the same."""
    if linktype == 1 and incl >= 54:
        if buf[start + 12] == 0x08:
            (ethertype, vihl, total_len, ipid, frag, proto, src, dst, sport, dport, seq, ack,
             word, window, checksum) = _ETH_IPV4_TCP.unpack_from(buf, start + 12)
            if ethertype == ETH_IPV4 and vihl == 0x45 and proto == IPPROTO_TCP \
                    and not frag & 0x1FFF and total_len >= 20:
                return (4, src, dst, ipid, total_len - 20, sport, dport, seq, ack, word,
                        window, checksum,
                        read_options(buf, start + 34, word, ack, start + incl))
        elif incl >= 74:
            (ethertype, version, payload_len, nxt, src, dst, sport, dport, seq, ack, word,
             window, checksum) = _ETH_IPV6_TCP.unpack_from(buf, start + 12)
            if ethertype == ETH_IPV6 and version >> 4 == 6 and nxt == IPPROTO_TCP:
                return (6, src, dst, -1, payload_len or incl - 54, sport, dport, seq, ack,
                        word, window, checksum,
                        read_options(buf, start + 54, word, ack, start + incl))
    data = bytes(buf) if start == 0 and incl == len(buf) else bytes(buf[start:start + incl])
    seg = locate_tcp(data, linktype)
    if isinstance(seg, str):
        return seg
    return from_segment(data, seg)


def from_segment(data: bytes, seg: Segment) -> TcpPacket | str:
    """:data:`TcpPacket` of a segment :func:`locate_tcp` found."""
    off = seg.tcp_offset
    if len(data) >= off + 18:
        sport, dport, seq, ack, word, window, checksum = _TCP_FIXED.unpack_from(data, off)
    elif len(data) >= off + 16:
        sport, dport, seq, ack, word, window = _TCP_FIXED.unpack_from(data + b"\0\0", off)[:6]
        checksum = -1
    else:
        return "truncated TCP header"
    ipid = int.from_bytes(data[seg.ip_offset + 4:seg.ip_offset + 6], "big") \
        if seg.ip_version == 4 else -1
    return (seg.ip_version, seg.src, seg.dst, ipid, seg.tcp_len, sport, dport, seq, ack,
            word, window, checksum, read_options(data, off, word, ack, len(data)))


def read_options(buf: bytes | memoryview, off: int, word: int, ack: int,
                 limit: int) -> int | None:
    """The one value the tracker reads from the options of the TCP header at ``off``: a
    SYN's window-scale shift; for another segment how far past its ACK field the right
    edge of its SACK block furthest past it is (:func:`~teardown_analyzer.tcp.sack_top`:
    1 to 2**31 - 1); None: none.  Not looked for in the options most segments carry, a
    timestamp after two NOPs and nothing more (Linux's), nor in none."""
    words = word >> 12
    if word & 0x02:
        return window_scale(buf, off, words * 4, limit)
    if words > 8 or words == 8 and off + 22 < limit and buf[off + 22] != 8:
        top = sack_top(buf, off, words * 4, ack, limit)
        return None if top is None else (top - ack) & 0xFFFFFFFF
    return None


def _ipv4(data: bytes, off: int) -> Segment | str:
    if len(data) < off + 20:
        return "truncated IP header"
    vihl = data[off]
    if vihl >> 4 != 4:
        return "bad IP version"
    ihl = (vihl & 0x0F) * 4
    if ihl < 20:
        return "IPv4 header length below 20"
    total_len, frag, proto = struct.unpack_from("!H2xHxB", data, off + 2)
    if 0 < total_len < ihl:
        return "IPv4 total length below header length"
    if len(data) < off + ihl:
        return "truncated IP header"
    if proto != IPPROTO_TCP:
        return "not TCP"
    if frag & 0x1FFF:
        return "non-first fragment"
    if total_len == 0:  # TSO on the capturing host: the length field is not filled in
        total_len = len(data) - off
    if total_len < ihl:
        return "IPv4 total length below header length"
    return Segment(4, data[off + 12:off + 16], data[off + 16:off + 20], off, off + ihl,
                   total_len - ihl, bool(frag & 0x2000))


def _ipv6(data: bytes, off: int) -> Segment | str:
    if len(data) < off + 40:
        return "truncated IP header"
    if data[off] >> 4 != 6:
        return "bad IP version"
    payload_len = int.from_bytes(data[off + 4:off + 6], "big")
    nxt = data[off + 6]
    pos = off + 40
    first_fragment = False
    if payload_len == 0:  # jumbogram or TSO: fall back to what was captured
        payload_len = len(data) - pos
    end = pos + payload_len
    for _ in range(32):
        if nxt == IPPROTO_TCP:
            if pos > end:
                return "IPv6 extension headers run past the packet"
            return Segment(6, data[off + 8:off + 24], data[off + 24:off + 40], off, pos,
                           end - pos, first_fragment)
        if nxt == _IPV6_NONE:
            return "not TCP"
        if nxt in _IPV6_EXT or nxt == _IPV6_AH or nxt == _IPV6_FRAG:
            if len(data) < pos + 8:
                return "IPv6 extension headers run past the packet"
            if nxt == _IPV6_FRAG:
                frag = int.from_bytes(data[pos + 2:pos + 4], "big")
                if frag & 0xFFF8:
                    return "non-first fragment"
                first_fragment = bool(frag & 1)
                size = 8
            elif nxt == _IPV6_AH:
                size = (data[pos + 1] + 2) * 4
            else:
                size = (data[pos + 1] + 1) * 8
            nxt = data[pos]
            pos += size
            continue
        return "not TCP"
    return "too many IPv6 extension headers"
