"""Build capture files and link-layer frames around real packets, for the tests.

Everything here is written with ``struct`` from the file-format specifications
(pcap: draft-ietf-opsawg-pcap; pcapng: draft-ietf-opsawg-pcapng; link-layer
headers: tcpdump.org/linktypes), independently of :mod:`teardown_analyzer`, so a
test compares the library against an outside description, not against itself.
The packets put inside come from real captures (``sample_pcaps/``); the helpers
only re-wrap their bytes.
"""

from __future__ import annotations

import pathlib
import struct
from typing import Any, Callable, Iterable, NamedTuple

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "sample_pcaps"
WRITEUP = SAMPLES / "writeup_reconstructed.pcap"

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D


class Rec(NamedTuple):
    """One packet record: capture time in integer ns, captured bytes, length on the wire."""

    ts_ns: int
    data: bytes
    orig_len: int | None = None


# --- checksums and the real packets ----------------------------------------------------

def csum(data: bytes) -> int:
    """RFC 1071 checksum, ready to store (folded and inverted)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def read_pcap(path: pathlib.Path | str) -> tuple[int, list[Rec]]:
    """(link type, records) of a classic pcap file: a minimal reader for the fixtures."""
    blob = pathlib.Path(path).read_bytes()
    magic_le = struct.unpack_from("<I", blob)[0]
    if magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        order = "<"
    else:
        order = ">"
    magic = struct.unpack_from(order + "I", blob)[0]
    scale = 1 if magic == PCAP_MAGIC_NS else 1000
    linktype = struct.unpack_from(order + "I", blob, 20)[0]
    recs, pos = [], 24
    while pos + 16 <= len(blob):
        sec, frac, incl, orig = struct.unpack_from(order + "IIII", blob, pos)
        recs.append(Rec(sec * 10**9 + frac * scale, blob[pos + 16:pos + 16 + incl], orig))
        pos += 16 + incl
    return linktype, recs


def writeup_packets() -> list[bytes]:
    """The raw IPv4 packets (LINKTYPE_RAW) of ``sample_pcaps/writeup_reconstructed.pcap``."""
    linktype, recs = read_pcap(WRITEUP)
    assert linktype == 101
    return [r.data for r in recs]


def split_ipv4(pkt: bytes) -> tuple[bytes, bytes, bytes]:
    """(src, dst, TCP segment) of an IPv4 packet."""
    ihl = (pkt[0] & 0x0F) * 4
    total = struct.unpack_from("!H", pkt, 2)[0]
    return pkt[12:16], pkt[16:20], pkt[ihl:total]


def retarget_tcp(segment: bytes, src: bytes, dst: bytes) -> bytes:
    """The segment with its checksum recomputed for new addresses (v4 or v6 pseudo-header)."""
    seg = segment[:16] + b"\0\0" + segment[18:]
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(seg))
    else:
        pseudo = src + dst + struct.pack("!I3xB", len(seg), 6)
    return seg[:16] + struct.pack("!H", csum(pseudo + seg)) + seg[18:]


def tcp_variant(segment: bytes, src: bytes, dst: bytes, *, options: bytes | None = None,
                flags_word: int | None = None, urgent: int | None = None,
                checksum: int | None = None) -> bytes:
    """A real segment with new options (padded with NOPs), data-offset/flags word or
    urgent pointer; the checksum is recomputed, or set to ``checksum``."""
    hlen = (segment[12] >> 4) * 4
    head, opts, payload = bytearray(segment[:20]), segment[20:hlen], segment[hlen:]
    if options is not None:
        opts = options + b"\x01" * (-len(options) % 4)
    head[12] = ((20 + len(opts)) // 4) << 4 | (head[12] & 0x0F)
    if flags_word is not None:
        head[12] = (head[12] & 0xF0) | (flags_word >> 8 & 0x0F)
        head[13] = flags_word & 0xFF
    if urgent is not None:
        head[18:20] = struct.pack("!H", urgent)
    seg = retarget_tcp(bytes(head) + opts + payload, src, dst)
    if checksum is not None:
        seg = seg[:16] + struct.pack("!H", checksum) + seg[18:]
    return seg


# --- IP --------------------------------------------------------------------------------

V6_SRC = bytes.fromhex("20010db8000000000000000000000001")
V6_DST = bytes.fromhex("20010db8000000000000000000000002")


def ipv4(payload: bytes, src: bytes, dst: bytes, *, proto: int = 6, options: bytes = b"",
         frag_word: int = 0x4000, ident: int = 0x1234, total_len: int | None = None) -> bytes:
    """An IPv4 packet (header checksum filled in); ``options`` padded to 4 bytes."""
    options += b"\0" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    if total_len is None:
        total_len = ihl * 4 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total_len, ident, frag_word, 64, proto,
                      0, src, dst) + options
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def hop_by_hop() -> tuple[int, bytes]:
    """Hop-by-hop options header (8 bytes: PadN), as (type, bytes after next-header)."""
    return 0, b"\x00" + b"\x01\x04\x00\x00\x00\x00"


def dest_options() -> tuple[int, bytes]:
    """Destination options header with one unknown skippable option and padding (16 bytes)."""
    return 60, b"\x01" + b"\x1e\x06abcdef" + b"\x01\x04\x00\x00\x00\x00"


def fragment(offset_units: int = 0, more: bool = False, ident: int = 0xCAFE) -> tuple[int, bytes]:
    """Fragment header: offset in 8-byte units, M flag."""
    return 44, struct.pack("!BHI", 0, (offset_units << 3) | int(more), ident)


def ipv6(payload: bytes, src: bytes = V6_SRC, dst: bytes = V6_DST, *, proto: int = 6,
         ext: Iterable[tuple[int, bytes]] = (), payload_len: int | None = None) -> bytes:
    """An IPv6 packet with the extension headers ``ext`` (each (type, rest)) in order."""
    ext = list(ext)
    chain = b""
    types = [t for t, _ in ext] + [proto]
    for i, (_t, rest) in enumerate(ext):
        chain += bytes([types[i + 1]]) + rest
    if payload_len is None:
        payload_len = len(chain) + len(payload)
    return struct.pack("!IHBB16s16s", 0x60000000, payload_len, types[0], 64, src, dst) \
        + chain + payload


def as_ipv6(pkt: bytes, ext: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """A real IPv4 packet's TCP segment carried in IPv6 (checksum recomputed)."""
    _, _, seg = split_ipv4(pkt)
    return ipv6(retarget_tcp(seg, V6_SRC, V6_DST), ext=ext)


def udp(payload: bytes = b"hello", sport: int = 5353, dport: int = 53) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


# --- link layers ------------------------------------------------------------------------

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ethernet(payload: bytes, ethertype: int = 0x0800,
             vlans: Iterable[tuple[int, int]] = ()) -> bytes:
    """Ethernet II; ``vlans`` are (TPID, VLAN id) tags, outermost first."""
    tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in vlans)
    return MAC_A + MAC_B + tags + struct.pack("!H", ethertype) + payload


def sll(payload: bytes, protocol: int = 0x0800) -> bytes:
    """Linux cooked v1: packet type, ARPHRD, address length, 8 address bytes, protocol."""
    return struct.pack("!HHH8sH", 0, 1, 6, MAC_A, protocol) + payload


def sll2(payload: bytes, protocol: int = 0x0800) -> bytes:
    """Linux cooked v2: protocol, reserved, ifindex, ARPHRD, packet type, address
    length, address."""
    return struct.pack("!HHIHBB8s", protocol, 0, 2, 1, 4, 6, MAC_A) + payload


def loopback(payload: bytes, family: int, order: str) -> bytes:
    """BSD NULL (host byte order, ``<`` or ``>``) or LOOP (``>``) header."""
    return struct.pack(order + "I", family) + payload


# --- classic pcap -----------------------------------------------------------------------

def pcap_header(linktype: int, *, nano: bool = False, order: str = "<",
                snaplen: int = 65535, magic: int | None = None) -> bytes:
    if magic is None:
        magic = PCAP_MAGIC_NS if nano else PCAP_MAGIC_US
    return struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(rec: Rec, *, nano: bool = False, order: str = "<",
                incl: int | None = None, extra: bytes = b"") -> bytes:
    """One record; ``incl`` overrides the captured length field (to corrupt it)."""
    sec, frac_ns = divmod(rec.ts_ns, 10**9)
    frac = frac_ns if nano else frac_ns // 1000
    orig = len(rec.data) if rec.orig_len is None else rec.orig_len
    return struct.pack(order + "IIII", sec, frac, len(rec.data) if incl is None else incl,
                       orig) + extra + rec.data


def pcap(records: Iterable[Rec], linktype: int = 101, *, nano: bool = False,
         order: str = "<", snaplen: int = 65535) -> bytes:
    return pcap_header(linktype, nano=nano, order=order, snaplen=snaplen) + b"".join(
        pcap_record(r, nano=nano, order=order) for r in records)


# --- pcapng -----------------------------------------------------------------------------

def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def option(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + _pad(value)


def end_of_options(order: str = "<") -> bytes:
    return struct.pack(order + "HH", 0, 0)


def block(btype: int, body: bytes, order: str = "<", *, length: int | None = None,
          trailer: int | None = None) -> bytes:
    """A generic block; ``length``/``trailer`` override the two length fields."""
    body = _pad(body)
    n = 12 + len(body)
    return struct.pack(order + "II", btype, n if length is None else length) + body + \
        struct.pack(order + "I", n if trailer is None else trailer)


def shb(order: str = "<", options: bytes = b"") -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options
    return block(0x0A0D0D0A, body, order)


def idb(linktype: int, snaplen: int = 0, order: str = "<", *, tsresol: int | None = None,
        tsoffset: int | None = None, name: str | None = None) -> bytes:
    """Interface description block; ``tsresol`` is the raw if_tsresol byte (6, 9, 0x94 ...)."""
    opts = b""
    if name is not None:
        opts += option(2, name.encode(), order)
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), order)
    if tsoffset is not None:
        opts += option(14, struct.pack(order + "q", tsoffset), order)
    if opts:
        opts += end_of_options(order)
    return block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts, order)


def epb(iface: int, ts_units: int, data: bytes, orig_len: int | None = None,
        order: str = "<", *, incl: int | None = None, comment: str | None = None) -> bytes:
    """Enhanced packet block; ``incl`` overrides the captured length field."""
    body = struct.pack(order + "IIIII", iface, ts_units >> 32, ts_units & 0xFFFFFFFF,
                       len(data) if incl is None else incl,
                       len(data) if orig_len is None else orig_len) + _pad(data)
    if comment is not None:
        body += option(1, comment.encode(), order) + end_of_options(order)
    return block(6, body, order)


def spb(data: bytes, orig_len: int | None = None, order: str = "<") -> bytes:
    """Simple packet block (interface 0, no timestamp)."""
    return block(3, struct.pack(order + "I", len(data) if orig_len is None else orig_len)
                 + data, order)


def opb(iface: int, ts_units: int, data: bytes, orig_len: int | None = None,
        order: str = "<") -> bytes:
    """Obsolete packet block (type 2): 16-bit interface id and drops count."""
    body = struct.pack(order + "HHIIII", iface, 0, ts_units >> 32, ts_units & 0xFFFFFFFF,
                       len(data), len(data) if orig_len is None else orig_len) + data
    return block(2, body, order)


def isb(iface: int = 0, order: str = "<", *, endtime: int | None = None,
        ifrecv: int | None = None, ifdrop: int | None = None, osdrop: int | None = None
        ) -> bytes:
    """Interface statistics block: without options, nothing a reader needs; ``endtime``
    (isb_endtime, in whatever units the caller means: two 32-bit words, high first),
    ``ifrecv``, ``ifdrop``, ``osdrop`` (64-bit counters) are options 3, 4, 5 and 7."""
    opts = b""
    if endtime is not None:
        opts += option(3, struct.pack(order + "II", endtime >> 32, endtime & 0xFFFFFFFF),
                       order)
    for code, count in ((4, ifrecv), (5, ifdrop), (7, osdrop)):
        if count is not None:
            opts += option(code, struct.pack(order + "Q", count), order)
    if opts:
        opts += end_of_options(order)
    return block(5, struct.pack(order + "III", iface, 0, 0) + opts, order)


# --- every supported link type ------------------------------------------------------------

Wrap = Callable[[bytes], bytes]
LINK_CASES: list[tuple[str, int, int, Wrap]] = [
    # (id, link type, IP version, wrapper: IP packet -> frame)
    ("ethernet", 1, 4, lambda p: ethernet(p)),
    ("ethernet-ipv6", 1, 6, lambda p: ethernet(p, 0x86DD)),
    ("ethernet-padded", 1, 4, lambda p: ethernet(p) + b"\0" * 18),
    ("802.1Q", 1, 4, lambda p: ethernet(p, vlans=[(0x8100, 100)])),
    ("802.1Q-ipv6", 1, 6, lambda p: ethernet(p, 0x86DD, vlans=[(0x8100, 7)])),
    ("802.1ad+802.1Q", 1, 4, lambda p: ethernet(p, vlans=[(0x88A8, 200), (0x8100, 100)])),
    ("802.1ad+802.1Q-ipv6", 1, 6,
     lambda p: ethernet(p, 0x86DD, vlans=[(0x88A8, 200), (0x8100, 100)])),
    ("9100+802.1Q+802.1Q", 1, 4,
     lambda p: ethernet(p, vlans=[(0x9100, 1), (0x8100, 2), (0x8100, 3)])),
    ("sll", 113, 4, lambda p: sll(p)),
    ("sll-ipv6", 113, 6, lambda p: sll(p, 0x86DD)),
    ("sll-vlan", 113, 4, lambda p: sll(b"\x00\x64\x08\x00" + p, 0x8100)),
    ("sll2", 276, 4, lambda p: sll2(p)),
    ("sll2-ipv6", 276, 6, lambda p: sll2(p, 0x86DD)),
    *[(f"raw-{n}", n, 4, lambda p: p) for n in (12, 14, 101, 228)],
    *[(f"raw-{n}-ipv6", n, 6, lambda p: p) for n in (12, 14, 101, 229)],
    ("null-le-inet", 0, 4, lambda p: loopback(p, 2, "<")),
    ("null-be-inet", 0, 4, lambda p: loopback(p, 2, ">")),
    *[(f"null-le-inet6-{af}", 0, 6, lambda p, af=af: loopback(p, af, "<"))
      for af in (10, 24, 28, 30)],
    *[(f"null-be-inet6-{af}", 0, 6, lambda p, af=af: loopback(p, af, ">"))
      for af in (24, 28, 30)],
    ("loop-inet", 108, 4, lambda p: loopback(p, 2, ">")),
    *[(f"loop-inet6-{af}", 108, 6, lambda p, af=af: loopback(p, af, ">"))
      for af in (24, 28, 30)],
]


# --- variants of the real packets -----------------------------------------------------

def variant_records(real: list[bytes]) -> list[Rec]:
    """Real packets with other options, flags, checksums, IP layers and snap lengths."""
    syn, synack, ack, psh = real[0], real[1], real[2], real[3]
    out: list[bytes | tuple[bytes, int]] = []

    def v4(pkt: bytes, **kw: Any) -> bytes:
        src, dst, seg = split_ipv4(pkt)
        return ipv4(tcp_variant(seg, src, dst, **kw), src, dst)

    ts = split_ipv4(ack)[2][20:32]  # NOP NOP timestamps of a real ACK
    sack2 = b"\x01\x01\x05\x12" + struct.pack("!4I", 2114501280, 2114502728,
                                               2114504176, 2114505624)
    sack4 = b"\x05\x22" + struct.pack("!8I", *range(1000, 9000, 1000))
    out += [
        v4(ack, options=ts + sack2),
        v4(ack, options=sack4),
        v4(ack, options=b"\x01\x01\x05\x0a" + struct.pack("!II", 0xFFFFFFF0, 0x10)),
        v4(syn, options=b"\x02\x04\x23\x28\x04\x02\x01\x03\x03\x0e"),  # MSS 9000, scale 14
        v4(syn, options=b"\x02\x04\x05\xb4\x01\x03\x03\x07\x00\x00\x00\x00"),  # EOL, pad
        v4(synack, options=b"\x02\x04\xff\xff\x04\x02\x08\x0a" + b"\xff" * 8),
        v4(psh, flags_word=0x038, urgent=7),          # URG PSH ACK, urgent pointer
        v4(psh, flags_word=0x1D8),                    # AE CWR ECE + PSH ACK
        v4(ack, flags_word=0xE10),                    # reserved bits set
        v4(ack, flags_word=0x014),                    # RST ACK
        v4(psh, checksum=0x1234),                     # bad checksum
        v4(ack, options=b"\x1e\x0c\x00\x81" + b"\x11" * 8),   # MPTCP MP_CAPABLE
        v4(syn, options=b"\x22\x02\x02\x04\x05\xb4"),         # TFO cookie request
        v4(ack, options=b"\xfe\x06\xf9\x89\xaa\xbb"),         # experimental TFO
        v4(ack, options=b"\x13\x12" + b"\x5a" * 16),          # MD5 signature
    ]
    for pkt in real[:4]:
        src, dst, seg = split_ipv4(pkt)
        out.append(ipv4(seg, src, dst, options=b"\x94\x04\x00\x00\x01\x01\x01\x00"))
        out.append(as_ipv6(pkt, [hop_by_hop(), dest_options(), fragment()]))
        cut = 8 * (((seg[12] >> 4) * 4 + 7) // 8)  # whole header, in 8-byte units
        out.append(ipv4(seg[:cut], src, dst, frag_word=0x2000))  # first fragment
        out.append(ipv4(seg[cut:], src, dst, frag_word=cut // 8))  # non-first
        out.append(ipv4(udp(), src, dst, proto=17))
    for cut in (20 + 2, 20 + 10, 20 + 18, 20 + 25, 20 + 32, len(psh) - 1):
        out.append((psh[:cut], len(psh)))
    recs = []
    for i, item in enumerate(out):
        data, orig = item if isinstance(item, tuple) else (item, len(item))
        recs.append(Rec(1_700_000_000 * 10**9 + i * 1000, data, orig))
    return recs
