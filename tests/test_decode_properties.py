"""Property tests: decoders and the capture reader on random and mutated real input.

Any bytes -> a result or the project's own error (``DecodeError`` for headers,
``CaptureError`` for files, raised only by ``open_*``; iteration stores it in
``info.error``).  The field table covers the header exactly once, and the fast-path
struct agrees with it.  Runs are bounded (``max_examples`` ~200, no deadline).
"""

from __future__ import annotations

import gzip
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcapbuild as pb
from conftest import sample_captures
from teardown_analyzer import CaptureError, open_bytes, open_capture
from teardown_analyzer.annotate import LANGS, ip_rows, tcp_rows
from teardown_analyzer.errors import DecodeError, TeardownError
from teardown_analyzer.fields import IPV4_FIELDS, IPV6_FIELDS, TCP_FIELDS, FieldSpec
from teardown_analyzer.hexview import annotate_raw
from teardown_analyzer.link import LINKTYPES, Segment, locate_tcp, tcp_packet, tcp_packet_at
from teardown_analyzer.tcp import (FIXED_HEADER, TcpHeader, decode_tcp, sack_top,
                                   window_scale)

BOUNDED = settings(max_examples=200, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.function_scoped_fixture])

# --- corpus: real frames, real TCP headers, real capture files ------------------------------

REAL = pb.writeup_packets()
VARIANTS = [r.data for r in pb.variant_records(REAL)]


def _sample_frames() -> list[tuple[bytes, int]]:
    out = []
    for path in sample_captures():
        try:
            cap = open_capture(str(path))
            out += [(f.data, f.linktype) for f in cap][:200]
        except CaptureError:
            pass
    return out


FRAMES: list[tuple[bytes, int]] = (
    [(wrap(p if v == 4 else pb.as_ipv6(p)), lt) for _, lt, v, wrap in pb.LINK_CASES
     for p in REAL]
    + [(p, 101) for p in VARIANTS]
    + [(pb.as_ipv6(p, [pb.hop_by_hop(), pb.dest_options(), pb.fragment()]), 229)
       for p in REAL]
    + _sample_frames()
)


def _tcp_headers() -> list[bytes]:
    out = []
    for data, lt in FRAMES:
        seg = locate_tcp(data, lt)
        if isinstance(seg, Segment) and len(data) - seg.tcp_offset >= 20:
            out.append(data[seg.tcp_offset:])
    return out


HEADERS = _tcp_headers()

CAPTURE_FILES: list[bytes] = [
    pb.WRITEUP.read_bytes(),
    pb.pcap([pb.Rec(i, p) for i, p in enumerate(REAL)], nano=True, order=">"),
    pb.shb() + pb.idb(1) + pb.idb(101, tsresol=9, tsoffset=5) + pb.idb(113, tsresol=0x94)
    + b"".join(pb.epb(i % 3, i, (pb.ethernet(p), p, pb.sll(p))[i % 3])
               for i, p in enumerate(REAL)) + pb.isb() + pb.spb(REAL[0]),
    pb.shb(">") + pb.idb(101, order=">", tsresol=9) + pb.opb(0, 1, REAL[0], order=">"),
] + [p.read_bytes() for p in sample_captures() if p.stat().st_size < 200_000][:6]
CAPTURE_FILES.append(gzip.compress(CAPTURE_FILES[0], mtime=0))


def test_corpus_is_not_empty() -> None:
    assert len(FRAMES) > 300 and len(HEADERS) > 300 and len(CAPTURE_FILES) >= 5


@st.composite
def mutated(draw: st.DrawFn, corpus: list[bytes], hot: int = 64) -> bytes:
    """A corpus item with a few byte edits (biased to the first ``hot`` bytes), maybe cut."""
    blob = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(0, 6))):
        if not blob:
            break
        limit = len(blob) - 1 if draw(st.booleans()) else min(len(blob) - 1, hot)
        i = draw(st.integers(0, limit))
        op = draw(st.sampled_from(["byte", "flip", "word", "insert", "delete"]))
        if op == "byte":
            blob[i] = draw(st.sampled_from([0, 1, 2, 4, 5, 6, 0x0F, 0x40, 0x45, 0x60, 0x7F,
                                            0x80, 0xFE, 0xFF]) | st.integers(0, 255))
        elif op == "flip":
            blob[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "word":
            word = draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])
                        | st.integers(0, 2**32 - 1))
            blob[i:i + 4] = struct.pack(draw(st.sampled_from(["<I", ">I"])), word)
        elif op == "insert":
            blob[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del blob[i:i + draw(st.integers(1, 8))]
    if draw(st.booleans()):
        blob = blob[:draw(st.integers(0, len(blob)))]
    return bytes(blob)


ADDRS = st.sampled_from([(None, None), (b"\xac\x10\x30\x0d", b"\xac\x10\x30\x01"),
                         (pb.V6_SRC, pb.V6_DST)])


def _decode_and_annotate(buf: bytes, src: bytes | None, dst: bytes | None,
                         tcp_len: int | None) -> TcpHeader | None:
    """decode_tcp + tcp_rows in every language; only DecodeError may escape decode."""
    try:
        hdr = decode_tcp(buf, src=src, dst=dst, tcp_len=tcp_len)
    except DecodeError as exc:
        assert len(buf) < 4 and 0 <= exc.offset <= len(buf)
        return None
    assert hdr.captured == len(buf)
    assert hdr.truncated == (len(buf) < max(20, hdr.header_len)
                             or (hdr.tcp_len is not None and len(buf) < hdr.tcp_len))
    for opt in hdr.options:
        assert 20 <= opt.offset < max(20, hdr.header_len) and opt.length >= 1
        assert buf[opt.offset:opt.offset + len(opt.raw)] == opt.raw
        opt.to_dict()
    hdr.to_dict()
    for lang in LANGS:
        rows = tcp_rows(buf, hdr, lang)
        assert [r.field for r in rows if r.section == "tcp"] == list(
            dict.fromkeys(f.row_name for f in TCP_FIELDS))
    return hdr


def _tcp_len(src: bytes | None) -> st.SearchStrategy[int | None]:
    top = 0xFFFF if src is None or len(src) == 4 else 2**20
    return st.none() | st.integers(0, top)


# --- decode_tcp ----------------------------------------------------------------------------

@BOUNDED
@given(buf=st.binary(max_size=80), addrs=ADDRS, data=st.data())
def test_decode_tcp_random_bytes(buf: bytes, addrs, data) -> None:
    src, dst = addrs
    _decode_and_annotate(buf, src, dst, data.draw(_tcp_len(src)))


@BOUNDED
@given(buf=mutated(HEADERS, hot=60), addrs=ADDRS, data=st.data())
def test_decode_tcp_mutated_real_headers(buf: bytes, addrs, data) -> None:
    src, dst = addrs
    _decode_and_annotate(buf, src, dst, data.draw(_tcp_len(src)))
    _decode_and_annotate(buf, None, None, None)


@BOUNDED
@given(buf=mutated(HEADERS, hot=60), lang=st.sampled_from(LANGS), with_ip=st.booleans())
def test_annotate_raw_raises_only_project_errors(buf: bytes, lang: str, with_ip: bool) -> None:
    try:
        annotate_raw(buf, None, None, lang, with_ip)
    except TeardownError:
        pass


@BOUNDED
@given(ports=st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
       seq=st.integers(0, 2**32 - 1), ack=st.integers(0, 2**32 - 1),
       word=st.integers(0, 0xFFFF), window=st.integers(0, 0xFFFF),
       csum=st.integers(0, 0xFFFF), urg=st.integers(0, 0xFFFF))
def test_header_built_with_struct_decodes_to_its_fields(ports, seq, ack, word, window, csum,
                                                        urg) -> None:
    buf = struct.pack("!HHIIHHHH", *ports, seq, ack, word, window, csum, urg)
    hdr = decode_tcp(buf)
    v = hdr.values
    assert (v["src_port"], v["dst_port"], v["seq"], v["ack"]) == (*ports, seq, ack)
    assert (v["window"], v["checksum"], v["urgent_pointer"]) == (window, csum, urg)
    assert v["data_offset"] == word >> 12 and v["reserved"] == (word >> 9) & 7
    assert hdr.flags == word & 0x1FF


# --- locate_tcp and the IP annotator --------------------------------------------------------

def _what_the_tracker_reads(data: bytes, linktype: int, seg: Segment | str) -> None:
    """``tcp_packet`` (one unpack for Ethernet/IPv4) says what ``locate_tcp`` and the TCP
    header say, on every input."""
    got = tcp_packet(data, linktype)
    if isinstance(seg, str) or len(data) < seg.tcp_offset + 16:
        assert got == (seg if isinstance(seg, str) else "truncated TCP header")
        return
    off = seg.tcp_offset
    checksum = int.from_bytes(data[off + 16:off + 18], "big") if len(data) >= off + 18 else -1
    ipid = int.from_bytes(data[seg.ip_offset + 4:seg.ip_offset + 6], "big") \
        if seg.ip_version == 4 else -1
    sport, dport, seq, ack, word, window = FIXED_HEADER.unpack_from(data, off)
    # a SYN's window-scale shift, how far past the ACK field another segment SACKs
    top = sack_top(data, off, (word >> 12) * 4, ack)
    opt = window_scale(data, off, (word >> 12) * 4) if word & 0x02 else \
        None if top is None else (top - ack) & 0xFFFFFFFF
    assert got == (seg.ip_version, seg.src, seg.dst, ipid, seg.tcp_len, sport, dport, seq, ack,
                   word, window, checksum, opt)
    # read in place from a larger buffer, as the analysis reads a batch of records
    assert tcp_packet_at(b"x" * 7 + data + b"\x03\x03\x09" * 20, 7, len(data), linktype) == got


def _locate_everywhere(data: bytes) -> None:
    for linktype in sorted(LINKTYPES) + [147, 2**31]:
        seg = locate_tcp(data, linktype)
        _what_the_tracker_reads(data, linktype, seg)
        if isinstance(seg, str):
            assert seg
            continue
        assert seg.ip_version in (4, 6) and len(seg.src) == len(seg.dst) == \
            (4 if seg.ip_version == 4 else 16)
        assert 0 <= seg.ip_offset < seg.tcp_offset and seg.tcp_len >= 0
        for lang in LANGS:
            ip_rows(data[seg.ip_offset:seg.tcp_offset], lang)
        tcp = data[seg.tcp_offset:]
        complete = not seg.first_fragment
        _decode_and_annotate(tcp, seg.src if complete else None,
                             seg.dst if complete else None, seg.tcp_len)


def test_tcp_packet_agrees_on_every_real_frame() -> None:
    # the one-unpack paths are exercised, for IPv4 and for IPv6
    assert sum(lt == 1 and d[12:15] == b"\x08\x00\x45" for d, lt in FRAMES) > 100
    assert sum(lt == 1 and d[12:14] == b"\x86\xdd" and d[20] == 6 for d, lt in FRAMES) >= 10
    for data, lt in FRAMES:
        _what_the_tracker_reads(data, lt, locate_tcp(data, lt))


@BOUNDED
@given(data=st.binary(max_size=120))
def test_locate_tcp_random_bytes(data: bytes) -> None:
    _locate_everywhere(data)


@BOUNDED
@given(data=mutated([f for f, _ in FRAMES], hot=90))
def test_locate_tcp_mutated_real_frames(data: bytes) -> None:
    _locate_everywhere(data)


@BOUNDED
@given(buf=st.binary(max_size=80) | mutated(REAL + VARIANTS, hot=48), lang=st.sampled_from(LANGS))
def test_ip_rows_any_bytes(buf: bytes, lang: str) -> None:
    rows = ip_rows(buf, lang)
    assert all(r.section == "ip" and r.offset + r.length <= max(len(buf), 20) for r in rows
               if r.field != "options")


# --- capture files -----------------------------------------------------------------------------

def _read_all(blob: bytes) -> None:
    try:
        cap = open_bytes(blob)
    except CaptureError:
        return
    frames = list(cap)  # never raises
    assert cap.info.error is None or isinstance(cap.info.error, CaptureError)
    assert [f.index for f in frames] == list(range(1, len(frames) + 1))
    assert cap.info.packets == len(frames)
    for f in frames:
        assert type(f.ts_ns) is int and f.orig_len >= len(f.data)
    cap.info.to_dict()


@BOUNDED
@given(blob=mutated(CAPTURE_FILES, hot=120))
def test_open_bytes_mutated_real_captures(blob: bytes) -> None:
    _read_all(blob)


@BOUNDED
@given(blob=mutated(CAPTURE_FILES, hot=120))
def test_open_bytes_mutated_real_captures_gzipped(blob: bytes) -> None:
    _read_all(gzip.compress(blob, mtime=0))


@BOUNDED
@given(head=st.sampled_from([b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a",
                             b"\x1f\x8b", b"\x34\xcd\xb2\xa1", b""]),
       rest=st.binary(max_size=200))
def test_open_bytes_magic_then_random(head: bytes, rest: bytes) -> None:
    _read_all(head + rest)


# --- the field tables --------------------------------------------------------------------------

def _covers_exactly_once(fields: tuple[FieldSpec, ...], total_bits: int) -> None:
    seen = [0] * total_bits
    for f in fields:
        assert f.bits > 0 and f.bit_offset >= 0
        for b in range(f.bit_offset, f.bit_offset + f.bits):
            assert b < total_bits, f"{f.name} runs past bit {total_bits - 1}"
            seen[b] += 1
    assert seen == [1] * total_bits, [i for i, n in enumerate(seen) if n != 1]
    assert len({f.name for f in fields}) == len(fields)


def test_tcp_fields_cover_bits_0_to_159_exactly_once() -> None:
    _covers_exactly_once(TCP_FIELDS, 160)


def test_ip_fields_cover_their_fixed_headers_exactly_once() -> None:
    _covers_exactly_once(IPV4_FIELDS, 160)
    _covers_exactly_once(IPV6_FIELDS, 320)


@BOUNDED
@given(buf=st.binary(min_size=40, max_size=40))
def test_fieldspec_extract_is_the_bit_slice(buf: bytes) -> None:
    whole = int.from_bytes(buf, "big")
    for f in TCP_FIELDS + IPV4_FIELDS + IPV6_FIELDS:
        want = (whole >> (320 - f.bit_offset - f.bits)) & ((1 << f.bits) - 1)
        assert f.extract(buf) == want, f.name
        assert f.extract(b"\xee" * 3 + buf, base=3) == want


def test_fixed_header_struct_agrees_with_the_table() -> None:
    assert FIXED_HEADER.size == 16
    for buf in HEADERS:
        src, dst, seq, ack, word, window = FIXED_HEADER.unpack_from(buf)
        v = decode_tcp(buf).values
        assert (src, dst, seq, ack, window) == (v["src_port"], v["dst_port"], v["seq"],
                                                 v["ack"], v["window"])
        assert word >> 12 == v["data_offset"] and (word >> 9) & 7 == v["reserved"]
        assert word & 0x1FF == decode_tcp(buf).flags


def test_the_sack_the_tracker_reads_is_the_decoders():
    """On the real captures with SACK blocks (six samples, losses after the capture point),
    how far past the ACK field the tracker reads a segment's SACK blocks reach
    (:func:`~teardown_analyzer.link.read_options`) is how far the furthest of the blocks
    :func:`decode_tcp` (checked against tshark by tests/test_decode_tshark.py) finds
    reaches; None for every other segment of every sample but SYNs."""
    seen = 0
    for path in sample_captures():
        try:
            frames = [(f.data, f.linktype) for f in open_capture(str(path))]
        except CaptureError:
            continue
        for data, linktype in frames:
            got, seg = tcp_packet(data, linktype), locate_tcp(data, linktype)
            if isinstance(got, str) or isinstance(seg, str) or got[9] & 0x02:
                continue
            ack = got[8]
            edges = [hi for o in decode_tcp(data[seg.tcp_offset:]).options
                     if o.name == "sack" and not o.malformed for _, hi in o.value("blocks")]
            past = [(hi - ack) & 0xFFFFFFFF for hi in edges]
            past = [d for d in past if 0 < d < 1 << 31]
            assert got[-1] == (max(past) if past else None), path.name
            seen += got[-1] is not None
    assert seen >= 14
