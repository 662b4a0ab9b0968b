"""Reading captures: classic pcap, pcapng, gzip, standard input, and broken files.

The inputs are real packets (``sample_pcaps/writeup_reconstructed.pcap``) re-wrapped
by ``pcapbuild`` into every container the reader must understand, and broken
files made from them.  Format detection goes by the magic number, never the name.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tracemalloc

import pytest

import pcapbuild as pb
from conftest import sample_captures
from teardown_analyzer import CaptureError, open_bytes, open_capture
from teardown_analyzer.link import locate_tcp
from teardown_analyzer.tcp import CHECKSUM_OK, CHECKSUM_TRUNCATED, decode_tcp

T0 = 1_700_000_000_123_456_789
"""A nanosecond timestamp that a float cannot hold (float64 has ~15.9 digits)."""


def _records(packets: list[bytes], step: int = 1_000_000_001) -> list[pb.Rec]:
    return [pb.Rec(T0 + i * step, p) for i, p in enumerate(packets)]


def _read(blob: bytes):
    cap = open_bytes(blob)
    frames = list(cap)
    return cap, frames


def test_float_would_round_the_reference_timestamp() -> None:
    """Why the tests insist on integers: the reference timestamp does not survive float."""
    assert int(T0 / 1e9 * 1e9) != T0


# --- classic pcap ---------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("nano", [False, True], ids=["usec", "nsec"])
def test_pcap_magics_and_exact_timestamps(real_packets, order, nano) -> None:
    recs = _records(real_packets)
    cap, frames = _read(pb.pcap(recs, 101, nano=nano, order=order))
    assert cap.info.error is None
    assert cap.info.format == ("pcap-ns" if nano else "pcap")
    assert cap.info.linktypes == {0: 101}
    assert cap.info.packets == len(recs) == len(frames)
    assert [f.index for f in frames] == list(range(1, len(recs) + 1))
    want = [r.ts_ns if nano else r.ts_ns // 1000 * 1000 for r in recs]
    assert [f.ts_ns for f in frames] == want
    assert all(type(f.ts_ns) is int for f in frames)
    assert (cap.info.first_ts_ns, cap.info.last_ts_ns) == (want[0], want[-1])
    for f, r in zip(frames, recs):
        assert (f.data, f.linktype, f.orig_len, f.interface, f.truncated) == \
            (r.data, 101, len(r.data), 0, False)
    if nano:
        assert frames[0].ts_ns == 1_700_000_000_123_456_789


def test_pcap_extreme_timestamp_fields(real_packets) -> None:
    """Largest seconds and sub-second values are carried exactly."""
    ts = 0xFFFFFFFF * 10**9 + 999_999_999
    _, frames = _read(pb.pcap([pb.Rec(ts, real_packets[0])], nano=True, order=">"))
    assert frames[0].ts_ns == ts


def test_pcap_out_of_range_fraction_is_a_warning(real_packets) -> None:
    blob = pb.pcap_header(101) + pb.pcap_record(pb.Rec(0, real_packets[0]))
    blob = blob[:28] + (1_500_000).to_bytes(4, "little") + blob[32:]
    cap, frames = _read(blob)
    assert len(frames) == 1 and cap.info.error is None
    assert any("sub-second" in w for w in cap.info.warnings)


def test_modified_pcap_magic(real_packets) -> None:
    """Kuznetzov's modified pcap: 24-byte record headers (8 extra bytes skipped)."""
    blob = pb.pcap_header(101, magic=0xA1B2CD34) + b"".join(
        pb.pcap_record(r, extra=b"\xee" * 8) for r in _records(real_packets[:3]))
    cap, frames = _read(blob)
    assert cap.info.error is None
    assert [f.data for f in frames] == real_packets[:3]


def test_pcap_linktype_fcs_bits_are_masked(real_packets) -> None:
    """The top bits of the link-type field carry FCS information, not the link type."""
    blob = pb.pcap([pb.Rec(0, pb.ethernet(real_packets[0]))], 0x70000001)
    cap, frames = _read(blob)
    assert frames[0].linktype == 1 and cap.info.linktypes == {0: 1}


def test_snaplen_truncated_records(real_packets) -> None:
    """Records cut by the snap length keep the wire length and decode as far as they go."""
    frames_in = [pb.ethernet(p) for p in real_packets]
    recs = [pb.Rec(T0, f[:54], len(f)) for f in frames_in]
    cap, frames = _read(pb.pcap(recs, 1, snaplen=54))
    assert cap.info.error is None and len(frames) == len(recs)
    for f, whole in zip(frames, frames_in):
        assert f.truncated and f.orig_len == len(whole) and len(f.data) == 54
        seg = locate_tcp(f.data, f.linktype)
        assert not isinstance(seg, str)
        hdr = decode_tcp(f.data[seg.tcp_offset:], src=seg.src, dst=seg.dst,
                         tcp_len=seg.tcp_len)
        assert hdr.truncated and hdr.captured == 20
        assert hdr.header_len == (whole[14 + 32] >> 4) * 4 > 20
        assert any("truncated" in p for p in hdr.problems)
        assert hdr.checksum_status == CHECKSUM_TRUNCATED
        full = decode_tcp(whole[14 + 20:])
        assert hdr.values == full.values


# --- pcapng -----------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_pcapng_interfaces_with_different_linktypes_and_resolutions(real_packets,
                                                                    order) -> None:
    p0, p1, p2, p3 = real_packets[:4]
    sec = T0 // 10**9
    blob = (pb.shb(order)
            + pb.idb(1, 0, order)                                       # 10^-6 (default)
            + pb.idb(101, 0, order, tsresol=9, name="raw0")             # 10^-9
            + pb.idb(113, 0, order, tsresol=0x94, tsoffset=-3600)       # 2^-20, offset
            + pb.idb(276, 0, order, tsresol=3, tsoffset=86400)          # 10^-3, offset
            + pb.epb(0, T0 // 1000, pb.ethernet(p0), order=order)
            + pb.block(0x40000BAD, b"custom", order)                    # skipped
            + pb.epb(1, T0, p1, order=order, comment="a packet comment")
            + pb.epb(2, sec * 2**20 + 1, pb.sll(p2), order=order)
            + pb.epb(3, T0 // 10**6, pb.sll2(p3), order=order))
    cap, frames = _read(blob)
    assert cap.info.error is None
    assert cap.info.format == "pcapng"
    assert cap.info.linktypes == {0: 1, 1: 101, 2: 113, 3: 276}
    assert [(f.index, f.interface, f.linktype) for f in frames] == \
        [(1, 0, 1), (2, 1, 101), (3, 2, 113), (4, 3, 276)]
    assert [f.ts_ns for f in frames] == [
        T0 // 1000 * 1000,
        T0,
        (sec * 2**20 + 1) * 10**9 // 2**20 - 3600 * 10**9,  # 1 unit = 953.67 ns: floor
        T0 // 10**6 * 10**6 + 86400 * 10**9,
    ]
    assert frames[2].ts_ns == sec * 10**9 + 953 - 3600 * 10**9
    assert [f.data for f in frames] == [pb.ethernet(p0), p1, pb.sll(p2), pb.sll2(p3)]
    assert any("skipped" in w for w in cap.info.warnings)
    for f, p in zip(frames, real_packets):
        seg = locate_tcp(f.data, f.linktype)
        assert not isinstance(seg, str)
        assert f.data[seg.ip_offset:] == p


def test_pcapng_simple_and_obsolete_packet_blocks(real_packets) -> None:
    """SPB: interface 0, no timestamp, cut to the snap length; type-2 packet block too."""
    p0, p1 = real_packets[:2]
    blob = (pb.shb() + pb.idb(101, 40) + pb.spb(p0[:40], len(p0))
            + pb.opb(0, T0 // 1000, p1))
    cap, frames = _read(blob)
    assert cap.info.error is None
    assert (frames[0].data, frames[0].orig_len, frames[0].truncated, frames[0].ts_ns) == \
        (p0[:40], len(p0), True, 0)
    assert (frames[1].data, frames[1].ts_ns) == (p1, T0 // 1000 * 1000)


def test_pcapng_new_section_starts_a_new_interface_list(real_packets) -> None:
    v6 = pb.ipv6(pb.retarget_tcp(pb.split_ipv4(real_packets[0])[2], pb.V6_SRC, pb.V6_DST))
    blob = (pb.shb("<") + pb.idb(1) + pb.epb(0, 5, pb.ethernet(real_packets[0]))
            + pb.shb(">") + pb.idb(229, order=">", tsresol=9)
            + pb.epb(0, T0, v6, order=">"))
    cap, frames = _read(blob)
    assert cap.info.error is None
    assert [(f.index, f.interface, f.linktype) for f in frames] == [(1, 0, 1), (2, 0, 229)]
    assert frames[1].ts_ns == T0
    # the interface list of the first section is gone:
    bad = blob + pb.epb(1, 0, real_packets[1], order=">")
    cap, frames = _read(bad)
    assert len(frames) == 2 and "names interface 1" in str(cap.info.error)


def test_pcapng_info_lists_link_types_of_every_section(real_packets) -> None:
    """``info.to_dict()['linktypes']`` should list every link type in the file.

    BUG: ``CaptureInfo.linktypes`` is keyed by interface id only, so a second
    section's interface 0 overwrites the first section's (1 -> 229 here).
    """
    v6 = pb.ipv6(pb.retarget_tcp(pb.split_ipv4(real_packets[0])[2], pb.V6_SRC, pb.V6_DST))
    blob = (pb.shb() + pb.idb(1) + pb.epb(0, 5, pb.ethernet(real_packets[0]))
            + pb.shb() + pb.idb(229) + pb.epb(0, 6, v6))
    cap, frames = _read(blob)
    assert {f.linktype for f in frames} == {1, 229}
    assert cap.info.to_dict()["linktypes"] == [1, 229]


# --- gzip, names, standard input ----------------------------------------------------------

def _containers(real_packets):
    recs = _records(real_packets)
    return {
        "pcap": pb.pcap(recs),
        "pcap-ns-be": pb.pcap(recs, nano=True, order=">"),
        "pcapng": pb.shb() + pb.idb(101, tsresol=9) + b"".join(
            pb.epb(0, r.ts_ns, r.data) for r in recs),
    }


@pytest.mark.parametrize("kind", ["pcap", "pcap-ns-be", "pcapng"])
def test_gzip_is_read_like_the_plain_file(real_packets, kind) -> None:
    plain = _containers(real_packets)[kind]
    cap_p, frames_p = _read(plain)
    cap_z, frames_z = _read(gzip.compress(plain))
    assert cap_z.info.compressed and not cap_p.info.compressed
    assert cap_z.info.error is None and frames_z == frames_p
    assert len(frames_z) == len(real_packets)


def test_multi_member_gzip(real_packets) -> None:
    """A gzip file of several members (``cat a.gz b.gz``) is one stream (RFC 1952).

    BUG: ``_open_stream`` tells the format from ``stream.peek(4)``, which returns
    only what one read produced; here the first member holds 2 bytes, and the file
    is rejected as "only 2 bytes, too short for a capture".
    """
    plain = _containers(real_packets)["pcap"]
    _, want = _read(plain)
    cap, frames = _read(gzip.compress(plain[:2]) + gzip.compress(plain[2:]))
    assert frames == want and cap.info.error is None


def _bad_epb(kind: str, packet: bytes) -> bytes:
    import struct
    if kind == "trailer":
        good = pb.epb(0, 7, packet)
        return good[:-4] + struct.pack("<I", len(good) + 4)
    if kind == "incl":  # more captured bytes than the block holds, by less than its padding
        return pb.epb(0, 7, packet, incl=len(packet) + 4 - len(packet) % 4)
    if kind == "interface":
        return pb.epb(5, 7, packet)
    import struct  # a length that is not a multiple of 4, in both length fields
    good = pb.epb(0, 7, packet)
    n = len(good) + 2
    return good[:4] + struct.pack("<I", n) + good[8:-4] + b"\0\0" + struct.pack("<I", n)


@pytest.mark.parametrize("kind,error", [
    ("trailer", "pcapng block of type 0x00000006 has length"),
    ("incl", "packet 8 claims"),
    ("interface", "packet 8 names interface 5"),
    ("length", "block length")])
def test_pcapng_block_error_in_a_run_of_packets(real_packets, kind, error) -> None:
    """A bad enhanced packet block among good ones: the seven before it are read (a run
    of blocks read at once stops just before it), and the error is the block-by-block
    reading's."""
    packets = (real_packets * 3)[:20]
    blob = pb.shb() + pb.idb(101) + b"".join(
        _bad_epb(kind, p) if i == 7 else pb.epb(0, 1_000 + i, p) for i, p in enumerate(packets))
    cap, frames = _read(blob)
    assert [f.data for f in frames] == packets[:7]
    assert [f.ts_ns for f in frames] == [(1_000 + i) * 1_000 for i in range(7)]
    assert error in str(cap.info.error), cap.info.error


def test_pcapng_packet_blocks_of_a_chunk_are_one_batch(real_packets, monkeypatch) -> None:
    """As a chunk of pcap records is: a run of packet blocks takes every block of its
    interface the chunk holds, however many (not :data:`capture.BATCH`, which bounds the
    blocks read one by one), and a block that goes on in the next chunk begins the next
    run instead of being a batch of its own.  Blocks of another type or interface end
    a run; the packets and their times are all there, in order."""
    from teardown_analyzer import capture
    monkeypatch.setattr(capture, "CHUNK", 2048)
    monkeypatch.setattr(capture, "CHUNK_RECORDS", 0)
    monkeypatch.setattr(capture, "BATCH", 4)
    packets = (real_packets * 40)[:300]
    blocks = [pb.epb(0, 1_000 + i, p) for i, p in enumerate(packets)]
    blocks.insert(150, pb.isb(0))  # statistics: not a packet block
    blob = pb.shb() + pb.idb(101) + b"".join(blocks)
    cap = open_bytes(blob)
    batches = list(cap.batches())
    assert cap.info.error is None
    bufs = [b.buf for b in batches]  # (kept: no id reused)
    chunks = {id(buf) for buf in bufs}
    # one batch per chunk, but for the chunk the statistics block splits
    assert len(batches) == len(chunks) + 1, [len(b.starts) for b in batches]
    assert max(len(b.starts) for b in batches) > 4
    got = [bytes(b.buf[s:s + n]) for b in batches
           for s, n in zip(b.starts.tolist(), b.lens.tolist())]
    assert got == packets
    assert [t for b in batches for t in b.ts_ns.tolist()] == \
        [(1_000 + i) * 1_000 for i in range(300)]
    assert [b.first for b in batches] == \
        [1 + sum(len(c.starts) for c in batches[:i]) for i in range(len(batches))]


@pytest.mark.parametrize("tsresol,tsoffset,units,want", [
    (6, None, 1_700_000_000_123_456, 1_700_000_000_123_456_000),
    (9, None, 2 ** 63 + 5, 2 ** 63 + 5),                 # beyond int64 nanoseconds
    (0x94, None, 3 * 2 ** 20 + 1, 3_000_000_000 + 953),  # 2**-20 s: not a whole ns factor
    (3, 2 ** 40, 1, 2 ** 40 * 10 ** 9 + 10 ** 6),      # an offset beyond 2**62 ns
    (6, -5, 7_000_000, 2_000_000_000)])
def test_pcapng_times_exact_in_runs_of_packets(real_packets, tsresol, tsoffset, units,
                                                want) -> None:
    """Every packet's time is exact, whether a run of blocks is converted at once or one
    block at a time (what int64 cannot hold exactly)."""
    blob = pb.shb() + pb.idb(101, tsresol=tsresol, tsoffset=tsoffset) + b"".join(
        pb.epb(0, units + i, p) for i, p in enumerate(real_packets[:5]))
    cap, frames = _read(blob)
    assert cap.info.error is None
    step = 10 ** 9 * 1 // (2 ** 20 if tsresol == 0x94 else 10 ** tsresol)
    assert frames[0].ts_ns == want and type(frames[0].ts_ns) is int
    if tsresol != 0x94:
        assert [f.ts_ns - want for f in frames] == [i * step for i in range(5)]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_truncated_gzip_keeps_frames_and_stores_the_error(real_packets, fmt) -> None:
    """The packets before the break stand, and the error says after which one."""
    packets = real_packets * 400  # ~ 22 kB, several decompressed reads
    plain = pb.pcap(_records(packets)) if fmt == "pcap" else \
        pb.shb() + pb.idb(101) + b"".join(pb.epb(0, i, p) for i, p in enumerate(packets))
    packed = gzip.compress(plain, mtime=0)
    cap, frames = _read(packed[: len(packed) * 3 // 4])
    assert isinstance(cap.info.error, CaptureError)
    assert 0 < len(frames) < len(real_packets) * 400
    assert f"after packet {len(frames)}" in str(cap.info.error)


@pytest.mark.parametrize("name,kind,compress", [
    ("a.pcapng", "pcap", False),          # name says pcapng, content is pcap
    ("b.pcap", "pcapng", False),          # and the other way round
    ("c.pcap", "pcapng", True),           # gzip without .gz
    ("d.pcap.gz", "pcap-ns-be", False),   # .gz without gzip
    ("e.txt", "pcap", True),
])
def test_format_comes_from_the_magic_not_the_name(tmp_path, real_packets, name, kind,
                                                  compress) -> None:
    blob = _containers(real_packets)[kind]
    path = tmp_path / name
    path.write_bytes(gzip.compress(blob) if compress else blob)
    cap = open_capture(str(path))
    frames = list(cap)
    assert cap.info.error is None and cap.info.compressed == compress
    assert cap.info.format == {"pcap": "pcap", "pcap-ns-be": "pcap-ns",
                               "pcapng": "pcapng"}[kind]
    assert [f.data for f in frames] == real_packets
    assert cap.info.source == str(path)


def _hex_stdin(stdin: bytes, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "teardown_analyzer", "hex", "-", "--packet", "1", *extra],
        input=stdin, capture_output=True, timeout=60)


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_standard_input_via_cli(real_packets, kind, compress) -> None:
    blob = _containers(real_packets)[kind]
    r = _hex_stdin(gzip.compress(blob) if compress else blob, "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = {row["field"]: row["value"] for row in json.loads(r.stdout)}
    assert rows["src_port"] == "32806" and rows["dst_port"] == "5002"
    assert rows["flags"] == "0x002"


def test_standard_input_empty_is_exit_3() -> None:
    r = _hex_stdin(b"")
    assert r.returncode == 3
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "<stdin>" in err and "Traceback" not in err


def test_standard_input_written_slowly(real_packets) -> None:
    """A pipe delivers what the writer has written so far: 2 bytes, then the rest.

    BUG: same ``peek(4)`` as in ``test_multi_member_gzip``: a pipe read returns the
    2 bytes available, and ``tcpdump -w - | teardown-analyze -`` style input fails
    with "only 2 bytes, too short for a capture" depending on timing.
    """
    blob = _containers(real_packets)["pcap"]
    writer = ("import sys, time; o = sys.stdout.buffer; d = sys.stdin.buffer.read(); "
              "o.write(d[:2]); o.flush(); time.sleep(0.5); o.write(d[2:]); o.flush()")
    w = subprocess.Popen([sys.executable, "-c", writer], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    r = subprocess.Popen([sys.executable, "-m", "teardown_analyzer", "hex", "-", "--packet",
                          "1"], stdin=w.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert w.stdin is not None and w.stdout is not None
    w.stdout.close()
    w.stdin.write(blob)
    w.stdin.close()
    out, err = r.communicate(timeout=60)
    w.wait(timeout=60)
    assert r.returncode == 0, err.decode()


# --- bad input ------------------------------------------------------------------------------

def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def good_pcap(real_packets) -> bytes:
    return pb.pcap(_records(real_packets))


def _bad_files(real_packets):
    p = real_packets
    good = pb.pcap(_records(p))
    rec1_end = 24 + 16 + len(p[0])
    ng = pb.shb() + pb.idb(101) + pb.epb(0, 1, p[0])
    return {
        # name: (bytes, text the message must contain)
        "not-a-capture": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "byte 0"),
        "empty": (b"", "empty"),
        "pcap-header-cut": (good[:10], "byte 10"),
        "pcapng-bad-bom": (pb.block(0x0A0D0D0A, b"\0" * 16), "byte-order"),
        "pcapng-idb-first-corrupt": (pb.shb() + pb.block(1, b"\0" * 8, length=13), "byte 28"),
        "huge-caplen-first": (pb.pcap_header(101) + pb.pcap_record(pb.Rec(0, p[0]),
                                                                   incl=2**31), "byte 24"),
        "huge-caplen-huge-snaplen": (pb.pcap_header(101, snaplen=2**32 - 1)
                                     + pb.pcap_record(pb.Rec(0, p[0]), incl=2**31),
                                     "byte 24"),
        "pcapng-undefined-interface-first": (pb.shb() + pb.idb(101) + pb.epb(3, 1, p[0]),
                                             "interface 3"),
        "pcapng-no-idb": (pb.shb() + pb.epb(0, 1, p[0]), "interface 0"),
        "gzip-garbage": (b"\x1f\x8b" + b"\xff" * 30, "gzip"),
        # these break after packet 1; asking for packet 2 must report where
        "cut-mid-record-data": (good[:rec1_end + 16 + 30], f"byte {rec1_end}"),
        "cut-mid-record-header": (good[:rec1_end + 8], f"byte {rec1_end}"),
        "huge-caplen-second": (good[:rec1_end] + pb.pcap_record(pb.Rec(0, p[1]), incl=2**31),
                               f"byte {rec1_end}"),
        "pcapng-block-length-not-multiple-of-4": (ng + pb.block(6, b"\0" * 40, length=43),
                                                  f"byte {len(ng)}"),
        "pcapng-block-length-huge": (ng + pb.block(6, b"\0" * 40, length=2**31),
                                     f"byte {len(ng)}"),
        "pcapng-block-trailer-mismatch": (ng + pb.block(6, b"\0" * 40, trailer=60),
                                          f"byte {len(ng)}"),
        "pcapng-caplen-past-block": (ng + pb.epb(0, 1, p[1], incl=2**31), f"byte {len(ng)}"),
        "pcapng-undefined-interface": (ng + pb.epb(3, 1, p[1]), "interface 3"),
        "pcapng-cut-mid-block": (ng + pb.epb(0, 1, p[1])[:30], f"byte {len(ng)}"),
    }


_BREAKS_LATER = {"cut-mid-record-data", "cut-mid-record-header", "huge-caplen-second",
                 "pcapng-block-length-not-multiple-of-4", "pcapng-block-length-huge",
                 "pcapng-block-trailer-mismatch", "pcapng-caplen-past-block",
                 "pcapng-undefined-interface", "pcapng-cut-mid-block"}


# errors inside a packet record name the packet too (block-level ones name the byte)
_NAMES_PACKET = {"cut-mid-record-data", "cut-mid-record-header", "huge-caplen-second",
                 "pcapng-caplen-past-block", "pcapng-undefined-interface"}


@pytest.mark.parametrize("name", sorted(_bad_files([b"x" * 52] * 2)))
def test_bad_capture_cli_exit_3_one_line(tmp_path, run_cli, real_packets, name) -> None:
    blob, where = _bad_files(real_packets)[name]
    path = tmp_path / name
    path.write_bytes(blob)
    packet = "2" if name in _BREAKS_LATER else "1"
    code, out, err = run_cli("hex", str(path), "--packet", packet)
    assert code == 3, (out, err)
    line = _one_line(err)
    assert str(path) in line and where in line
    if name in _BREAKS_LATER:
        if name in _NAMES_PACKET:
            assert "packet 2" in line  # the packet the file broke in
        code, out, err = run_cli("hex", str(path), "--packet", "1")
        assert code == 0 and err == "" and "32806" in out


@pytest.mark.parametrize("name", sorted(_BREAKS_LATER))
def test_open_capture_delivers_frames_before_the_break(real_packets, name) -> None:
    blob, where = _bad_files(real_packets)[name]
    cap = open_bytes(blob)  # does not raise
    frames = list(cap)      # does not raise either
    assert [f.data for f in frames] == [real_packets[0]]
    assert isinstance(cap.info.error, CaptureError)
    assert where in str(cap.info.error) and cap.info.packets == 1


@pytest.mark.parametrize("name", sorted(set(_bad_files([b"x" * 52] * 2)) - _BREAKS_LATER))
def test_open_raises_capture_error_for_unreadable_files(real_packets, name) -> None:
    blob, where = _bad_files(real_packets)[name]
    with pytest.raises(CaptureError, match=where):
        open_bytes(blob)


def test_pcapng_section_header_trailer_mismatch_is_reported(real_packets) -> None:
    """Every block's two length fields must agree, the section header's too.

    BUG: ``_pcapng_blocks`` checks the trailing length of every block except the
    section header block (it reads the body and ``continue``s), so a corrupt SHB
    length trailer goes unnoticed (Wireshark rejects the file).
    """
    shb = pb.shb()
    blob = shb[:-4] + (99).to_bytes(4, "little") + pb.idb(101) + pb.epb(0, 1, real_packets[0])
    try:
        cap = open_bytes(blob)
    except CaptureError as exc:
        assert "byte 0" in str(exc)
        return
    list(cap)
    assert cap.info.error is not None and "byte 0" in str(cap.info.error)


def test_pcapng_interface_comment_not_utf8_is_readable(real_packets) -> None:
    """An interface comment in a legacy 8-bit encoding does not make the file unreadable.

    BUG: ``_parse_idb`` parses the options with dpkt, whose ``PcapngOption.unpack``
    decodes every ``opt_comment`` as UTF-8 and raises ``UnicodeDecodeError``; the
    whole capture is then rejected as "interface description block is malformed".
    """
    body = (b"\x65\x00\x00\x00" + b"\x00\x00\x00\x00"         # link type 101, snaplen 0
            + pb.option(1, "caf\xe9 wifi".encode("latin-1")) + pb.option(9, b"\x09")
            + pb.end_of_options())
    blob = pb.shb() + pb.block(1, body) + pb.epb(0, T0, real_packets[0])
    cap, frames = _read(blob)
    assert cap.info.error is None
    assert [(f.data, f.ts_ns) for f in frames] == [(real_packets[0], T0)]


def test_unopenable_path_is_exit_3(tmp_path, run_cli) -> None:
    missing = tmp_path / "nope.pcap"
    code, _, err = run_cli("hex", str(missing), "--packet", "1")
    assert code == 3 and str(missing) in _one_line(err)


@pytest.mark.parametrize("blob", [pb.pcap_header(101), pb.shb() + pb.idb(1)],
                         ids=["pcap", "pcapng"])
def test_header_only_capture_is_valid_and_empty(tmp_path, run_cli, blob) -> None:
    """No packets is not an error; asking ``hex`` for packet 1 of it is a usage error (2)."""
    cap, frames = _read(blob)
    assert frames == [] and cap.info.error is None and cap.info.packets == 0
    path = tmp_path / "empty.pcap"
    path.write_bytes(blob)
    code, _, err = run_cli("hex", str(path), "--packet", "1")
    assert code == 2
    assert "no packet 1" in _one_line(err) and "has 0" in err


def test_huge_caplen_is_not_allocated(real_packets) -> None:
    """A 2**31 captured length is rejected before anything that size is allocated."""
    blob = (pb.pcap_header(101, snaplen=2**32 - 1) + pb.pcap_record(pb.Rec(0, real_packets[0]))
            + pb.pcap_record(pb.Rec(0, real_packets[1]), incl=2**31))
    blob_ng = (pb.shb() + pb.idb(101) + pb.epb(0, 1, real_packets[0])
               + pb.epb(0, 1, real_packets[1], incl=2**31)
               + pb.block(6, b"\0" * 40, length=2**31 - 4))
    for b in (blob, blob_ng, gzip.compress(blob)):
        tracemalloc.start()
        try:
            cap = open_bytes(b)
            frames = list(cap)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(frames) == 1 and cap.info.error is not None
        assert peak < 32 * 2**20


def test_cli_debug_shows_the_traceback(tmp_path) -> None:
    path = tmp_path / "junk.pcap"
    path.write_bytes(b"junk" * 10)
    r = subprocess.run([sys.executable, "-m", "teardown_analyzer", "--debug", "hex",
                        str(path), "--packet", "1"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 3 and "Traceback" in r.stderr


# --- the real captures in sample_pcaps/ ---------------------------------------------------

@pytest.mark.parametrize("path", sample_captures(), ids=lambda p: p.name)
def test_sample_captures_read_completely(path) -> None:
    cap = open_capture(str(path))
    frames = list(cap)
    assert cap.info.error is None, cap.info.error
    assert frames and [f.index for f in frames] == list(range(1, len(frames) + 1))
    assert all(type(f.ts_ns) is int for f in frames)
    # the same capture plain and through gzip gives the same frames
    raw = path.read_bytes()
    plain = gzip.decompress(raw) if path.suffix == ".gz" else raw
    assert list(open_bytes(plain)) == frames
    assert list(open_bytes(gzip.compress(plain))) == frames


def test_writeup_capture_frames(real_packets) -> None:
    cap = open_capture(str(pb.WRITEUP))
    frames = list(cap)
    assert [f.data for f in frames] == real_packets
    assert frames[0].ts_ns == 1_262_332_800_000_000_000
    assert frames[5].ts_ns == 1_262_332_800_004_100_000
    for f in frames:
        seg = locate_tcp(f.data, f.linktype)
        assert not isinstance(seg, str)
        hdr = decode_tcp(f.data[seg.tcp_offset:], src=seg.src, dst=seg.dst,
                         tcp_len=seg.tcp_len)
        assert hdr.checksum_status == CHECKSUM_OK


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("size, max_chunk, per_batch", [
    (1000, 1 << 20, (15, 17)),  # big records: about CHUNK_RECORDS a batch
    (1000, 8192, (6, 9)),       # ... but no more than MAX_CHUNK bytes
    (60, 1 << 20, (43, 54)),    # small ones: CHUNK bytes a batch (4096 / 76, or / 92)
])
def test_chunks_hold_a_number_of_records(monkeypatch, size, max_chunk, per_batch, fmt):
    """A capture is read CHUNK bytes at a time, or as many as CHUNK_RECORDS records of the
    mean size so far take, up to MAX_CHUNK; every record is read, once, in order."""
    from teardown_analyzer import capture
    monkeypatch.setattr(capture, "CHUNK", 4096)
    monkeypatch.setattr(capture, "CHUNK_RECORDS", 16)
    monkeypatch.setattr(capture, "MAX_CHUNK", max_chunk)
    records = [pb.Rec(T0 + i, i.to_bytes(4, "big") * (size // 4)) for i in range(2000)]
    if fmt == "pcap":
        blob = pb.pcap(records)
    else:
        blob = pb.shb() + pb.idb(101, 0, tsresol=9) + b"".join(
            pb.epb(0, r.ts_ns, r.data) for r in records)
    cap = open_bytes(blob)
    batches = list(cap.batches())
    # (pcapng: the block that goes on in the next chunk is a batch of its own)
    counts = [len(b.starts) for b in batches if fmt == "pcap" or len(b.starts) > 1]
    low, high = per_batch
    # (the first chunks: CHUNK bytes, then what the stream's buffer holds of it)
    assert all(low <= c <= high for c in counts[3:-1]), counts
    assert [f.data for b in batches for f in b.frames()] == [r.data for r in records]
    assert cap.info.error is None


def _stats_capture(*blocks: bytes, order: str = "<") -> bytes:
    """Two packets 1 s apart on an interface of nanoseconds (the last at T0 + 1 s), then
    ``blocks``."""
    packets = pb.writeup_packets()[:2]
    return (pb.shb(order) + pb.idb(101, 0, order, tsresol=9)
            + b"".join(pb.epb(0, T0 + i * 10**9, p, order=order)
                       for i, p in enumerate(packets)) + b"".join(blocks))


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("units, stopped", [
    (T0 + 3 * 10**9, T0 + 3 * 10**9),  # in the interface's nanoseconds, as the format says
    ((T0 + 3 * 10**9) // 1000, (T0 + 3 * 10**9) // 1000 * 1000),  # in µs, as dumpcap 4.0 has it
    (T0 + 10**9, T0 + 10**9),  # at the last packet
    (T0 + 10**9 - 1, None),  # before the last packet: not used
    (T0 // 1000 - 1, None),  # in µs, before the first packet: not used
    ((T0 + 2 * 86400 * 10**9) // 1000, None),  # in µs, two days on: taken for nonsense
    (T0 // 10**6, None),  # in ms, say: nothing either reading makes of it
], ids=["ns", "dumpcap-us", "at-last", "before-last", "us-before-first", "us-days-on",
        "ms"])
def test_pcapng_statistics_say_when_the_capture_stopped(order, units, stopped) -> None:
    """An interface statistics block's isb_endtime is when the capture stopped
    (:attr:`CaptureInfo.stopped_ts_ns`): read in the interface's resolution, or else in
    microseconds (dumpcap 4.0 writes it so on an interface of nanoseconds: a time that
    reads as one in 1970 otherwise, before the first packet), the reading not before the
    last packet (and in microseconds, not a day after it)."""
    cap, frames = _read(_stats_capture(pb.isb(0, order, endtime=units, ifrecv=2, ifdrop=0),
                                       order=order))
    assert len(frames) == 2 and cap.info.error is None and cap.info.warnings == []
    assert cap.info.stopped_ts_ns == stopped
    assert cap.info.dropped == 0
    assert cap.info.to_dict()["stopped_ts"] == (None if stopped is None else stopped / 1e9)


def test_pcapng_statistics_the_latest_end_and_the_last_counters() -> None:
    """Statistics written now and then (counters since the capture began): the latest end
    of any block, and the drops of the last block of each interface, summed over the
    interfaces.  A block that names no interface, or is too short, is skipped as a block of
    another type."""
    blob = _stats_capture(pb.isb(0, endtime=T0 + 5 * 10**9, ifdrop=7),
                          pb.isb(0, endtime=T0 + 4 * 10**9, ifdrop=9, osdrop=1),
                          pb.isb(3, endtime=T0 + 9 * 10**9),
                          pb.block(5, b"\0" * 8))
    cap, _ = _read(blob)
    assert cap.info.stopped_ts_ns == T0 + 5 * 10**9
    assert cap.info.dropped == 10
    assert cap.info.warnings == [
        "2 pcapng blocks of other types skipped",
        "the capture lost 10 packets (pcapng interface statistics: isb_ifdrop, isb_osdrop): "
        "any segment may be missing, and what is concluded from one's absence may be wrong"]


def test_pcapng_statistics_of_more_packets_than_the_file_holds() -> None:
    """Statistics that count more packets captured than the file holds: it was cut or
    filtered after the capture (a writer that copies the statistics), so the end they
    record says nothing of the silence after its last packet: not used, and said so."""
    cap, _ = _read(_stats_capture(pb.isb(0, endtime=T0 + 3 * 10**9, ifrecv=5, ifdrop=2)))
    assert cap.info.stopped_ts_ns is None and cap.info.dropped == 2
    assert cap.info.warnings[-1] == (
        "the pcapng interface statistics count 3 packets captured, the file holds 2: it was "
        "cut or filtered after the capture, and the end they record (isb_endtime) is not used")


def test_the_pcapng_numbers_are_dpkts() -> None:
    """The block types and interface options the walker looks for, written out in
    capture.py (so reading a capture does not import dpkt), are the ones dpkt defines."""
    import dpkt
    from teardown_analyzer import capture
    ng = dpkt.pcapng
    assert (capture.BT_IDB, capture.BT_PB, capture.BT_SPB, capture.BT_EPB,
            capture.OPT_IF_TSRESOL, capture.OPT_IF_TSOFFSET) == (
        ng.PCAPNG_BT_IDB, ng.PCAPNG_BT_PB, ng.PCAPNG_BT_SPB, ng.PCAPNG_BT_EPB,
        ng.PCAPNG_OPT_IF_TSRESOL, ng.PCAPNG_OPT_IF_TSOFFSET)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_a_stream_read_a_few_bytes_at_a_time_makes_few_batches(real_packets, fmt) -> None:
    """A pipe (or a gzip stream) hands out a few kB a read; the walker reads on until it
    has a chunk's worth (half of it at least), rather than making a batch of every read:
    here 100 bytes a read, unseekable, and the whole capture (under one chunk) is one
    batch, with the frames of the file read at once."""
    import io
    from teardown_analyzer import capture

    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[override]
            n = min(len(b), 100, len(self.data))
            b[:n], self.data = self.data[:n], self.data[n:]
            return n

    packets = real_packets * 40  # ~ 22 kB
    blob = pb.pcap(_records(packets)) if fmt == "pcap" else \
        pb.shb() + pb.idb(1) + b"".join(pb.epb(0, i, p) for i, p in enumerate(packets))
    cap = capture._open_stream(Trickle(blob), "<trickle>", None)  # type: ignore[arg-type]
    batches = list(cap.batches())
    assert len(batches) == 1 and cap.info.error is None
    assert [(f.data, f.ts_ns) for f in batches[0].frames()] == \
        [(f.data, f.ts_ns) for f in _read(blob)[1]]


def _read_ahead_threads() -> int:
    import threading
    return sum(t.name == "teardown-analyzer read-ahead" for t in threading.enumerate())


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("headroom", [16, 1 << 18])
def test_chunks_read_ahead_join_as_read_in_place(tmp_path, monkeypatch, fmt, headroom):
    """From the second chunk on, a thread reads the next chunk while the walker walks one.
    The record going on into it is joined to it in the room left before it (or copied,
    when longer than that room); a record longer than the chunk read ahead is read on at
    once.  Every record is read, once, in order, and the thread ends with the stream."""
    from teardown_analyzer import capture
    monkeypatch.setattr(capture, "CHUNK", 4096)
    monkeypatch.setattr(capture, "CHUNK_RECORDS", 0)
    monkeypatch.setattr(capture, "HEADROOM", headroom)
    monkeypatch.setattr(capture, "READ_AHEAD_FROM", 0)
    sizes = [60 + (i * 37) % 1400 for i in range(600)]
    sizes[300] = sizes[450] = 20_000  # longer than a chunk (pcap: and than the snap length)
    records = [pb.Rec(T0 + i, (i % 251).to_bytes(1, "big") * n) for i, n in enumerate(sizes)]
    blob = pb.pcap(records) if fmt == "pcap" else \
        pb.shb() + pb.idb(101, 0, tsresol=9) + b"".join(pb.epb(0, r.ts_ns, r.data)
                                                        for r in records)
    path = tmp_path / f"c.{fmt}"
    path.write_bytes(blob)
    before = _read_ahead_threads()
    with open_capture(str(path)) as cap:
        batches = list(cap.batches())
    assert len(batches) > 50  # (read ahead, chunk after chunk)
    assert [f.data for b in batches for f in b.frames()] == [r.data for r in records]
    assert cap.info.error is None
    assert _read_ahead_threads() == before  # (the thread ended at the end of the stream)


def test_a_walk_given_up_ends_its_read_ahead(tmp_path, monkeypatch) -> None:
    """A capture read no further than its first chunk starts no thread (the walk up to
    the first packet, before a --jobs split forks the workers), nor one of chunks shorter
    than READ_AHEAD_FROM; one given up after more ends its thread once the capture is let
    go."""
    import gc
    import time
    from teardown_analyzer import capture
    monkeypatch.setattr(capture, "CHUNK", 4096)
    monkeypatch.setattr(capture, "CHUNK_RECORDS", 0)
    path = tmp_path / "c.pcap"
    path.write_bytes(pb.pcap([pb.Rec(T0 + i, b"x" * 1000) for i in range(200)]))
    before = _read_ahead_threads()
    walk = open_capture(str(path)).batches()
    for _ in range(3):
        next(walk)
    assert _read_ahead_threads() == before  # (4 kB chunks: read in place)
    del walk
    monkeypatch.setattr(capture, "READ_AHEAD_FROM", 0)
    cap = open_capture(str(path))
    batches = cap.batches()
    next(batches)
    assert _read_ahead_threads() == before
    next(batches)
    assert _read_ahead_threads() == before + 1
    del batches, cap
    gc.collect()
    for _ in range(100):  # (the thread ends after the read it was doing)
        if _read_ahead_threads() == before:
            break
        time.sleep(0.01)
    assert _read_ahead_threads() == before
