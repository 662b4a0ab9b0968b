"""Plain segments counted a batch at a time (teardown_analyzer.plain) give exactly what
feeding every packet gives: every sample capture, the benchmark's mix (retransmitted FINs,
IPv6, sequence numbers that wrap, duplicates), with and without --jobs, the ladder and a
short TIME_WAIT.  The batches are made small and count_plain runs on every one after the
first, whatever its share of plain segments, so that it is what runs."""

from __future__ import annotations

import pathlib
import struct
import sys

import pytest

from conftest import sample_captures
from teardown_analyzer import analysis, capture
from teardown_analyzer.analysis import Options, analyze

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _dicts(report):
    return ([c.to_dict(True) for c in report.connections], report.totals(), report.skipped,
            [c.to_dict() for c in report.captures])


SHARE = analysis.VECTORISED_SHARE


@pytest.fixture(autouse=True)
def small_batches_counted_at_once(monkeypatch):
    """Batches of a few records (so every sample spans several, and runs cross their
    edges), each after the first counted at once whatever its share of plain segments."""
    monkeypatch.setattr(capture, "CHUNK", 4096)
    monkeypatch.setattr(capture, "CHUNK_RECORDS", 0)
    monkeypatch.setattr(capture, "BATCH", 16)
    monkeypatch.setattr(analysis, "VECTORISED_SHARE", 0.0)


def _ethernet_bulk(path: pathlib.Path, packets: int, ipv6: bool = False,
                   mixed: bool = False, linktype: int = 1,
                   not_ip: int = 0, tags: int = 0) -> pathlib.Path:
    """benchmarks/bounds.py's one long connection, its raw IPv4 records wrapped in
    Ethernet headers (or another link type's), or carried in IPv6 (checksums not
    recomputed: the analysis does not read them)."""
    import pcapbuild as pb
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bounds
    raw = path.with_suffix(".raw.pcap")
    bounds.write_onestream(str(raw), packets)
    src = raw.read_bytes()
    out, pos = [src[:20] + struct.pack("<I", linktype)], 24
    while pos < len(src):
        sec, frac, incl, orig = struct.unpack_from("<IIII", src, pos)
        packet = src[pos + 16:pos + 16 + incl]
        if ipv6:  # the same segment between fd00::<IPv4 source> and fd00::<IPv4 dest.>
            seg = packet[20:]
            packet = struct.pack("!IHBB16s16s", 0x60000000, len(seg), 6, 64,
                                 b"\xfd" + b"\0" * 11 + packet[12:16],
                                 b"\xfd" + b"\0" * 11 + packet[16:20]) + seg
        # every ``not_ip``-th: a link header that says the packet is not IP
        disguised = not_ip and len(out) % not_ip == 0
        protocol = 0x0806 if disguised else 0x86DD if ipv6 else 0x0800
        family = 99 if disguised else 30 if ipv6 else 2
        frame = {1: lambda: pb.ethernet(packet, protocol,
                                        vlans=[(0x88A8, 100), (0x8100, 200)][-tags:]
                                        if tags else ()),
                 113: lambda: pb.sll(packet, protocol), 276: lambda: pb.sll2(packet, protocol),
                 0: lambda: pb.loopback(packet, family, "<"),
                 101: lambda: packet}[linktype]()
        if mixed and len(out) % 97 == 0:  # the same segment with IP options (NOP, EOL)
            opts = b"\x01\x01\x01\x00"
            ip = bytes([0x46, packet[1]]) + struct.pack("!H", len(packet) + 4) + packet[4:20]
            frame = pb.ethernet(ip + opts + packet[20:])
        if mixed and len(out) % 89 == 0:  # a frame that is not IP at all
            arp = pb.ethernet(b"\0" * 28, 0x0806)
            out.append(struct.pack("<IIII", sec, frac, len(arp), len(arp)) + arp)
        out.append(struct.pack("<IIII", sec, frac, len(frame), len(frame)) + frame)
        pos += 16 + incl
    path.write_bytes(b"".join(out))
    return path


@pytest.mark.parametrize("path", sample_captures(), ids=lambda p: p.name)
def test_samples_identical(path, cut):
    path = cut(path)
    for kw in ({}, {"keep_ladder": True, "time_wait_s": 0.5}):
        per_packet = analyze([str(path)], Options(vectorised=False, **kw))
        assert _dicts(analyze([str(path)], Options(**kw))) == _dicts(per_packet)


@pytest.mark.parametrize("jobs", [1, 2])
def test_benchmark_mix_identical(mix, jobs):
    per_packet = analyze([str(mix)], Options(vectorised=False, keep_ladder=True))
    assert _dicts(analyze([str(mix)], Options(keep_ladder=True), jobs)) == _dicts(per_packet)


def test_records_read_one_by_one_keep_their_place(tmp_path):
    """Segments of the same connection with IP options (which only the general decoder
    reads) and frames that are not IP at all, among the plain ones: each ends a run."""
    path = _ethernet_bulk(tmp_path / "mixed.pcap", 5_000, mixed=True)
    per_packet = _dicts(analyze([str(path)], Options(vectorised=False)))
    assert _dicts(analyze([str(path)])) == per_packet
    (conn,), _, skipped, _ = per_packet
    assert conn["packets"] == 4_999 and conn["close"]["kind"] == "four-way"
    data, pos, arp, options = path.read_bytes(), 24, 0, 0
    while pos < len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        frame = data[pos + 16:pos + 16 + incl]
        arp += frame[12:14] == b"\x08\x06"
        options += frame[12:15] == b"\x08\x00\x46"
        pos += 16 + incl
    assert skipped[str(path)] == {"not IP": arp} and arp > 50 and options > 50


def test_a_packet_timed_past_int64_among_plain_segments(tmp_path):
    """A pcapng packet whose time passes int64 nanoseconds (here 2**61 microseconds, a
    corrupt clock: the capture fuzzer's case 784:1798) is read one by one, and what its
    direction sent is then timed past int64 when the next batch is counted at once:
    every packet of the real four-way close so timed in turn, the analysis equals
    feeding every packet (it raised OverflowError in count_plain before)."""
    import pcapbuild as pb
    linktype, recs = pb.read_pcap(pb.SAMPLES / "four_way.pcap")
    for k in range(len(recs)):
        path = tmp_path / f"late{k}.pcapng"
        path.write_bytes(pb.shb() + pb.idb(linktype, tsresol=6) + b"".join(
            pb.epb(0, 2**61 if i == k else r.ts_ns // 1000, r.data)
            for i, r in enumerate(recs)))
        per_packet = _dicts(analyze([str(path)], Options(vectorised=False)))
        assert _dicts(analyze([str(path)])) == per_packet, k


def test_segments_the_tracker_skips_end_a_run(tmp_path):
    """Segments among the plain ones whose TCP header is shorter than 20 bytes or goes past
    the packet (edited: a data offset of 4; an IPv4 total length that leaves 10 bytes for
    TCP): skipped with the tracker's reasons, not counted."""
    path = _ethernet_bulk(tmp_path / "bulk.pcap", 5_000)
    data, pos, n = bytearray(path.read_bytes()), 24, 0
    while pos < len(data):
        frame = pos + 16  # Ethernet (14 bytes), IPv4 (20), then TCP
        if 50 <= n < 4_500 and n % 101 == 50:
            data[frame + 46] = 0x40 | data[frame + 46] & 0x0F
        if 50 <= n < 4_500 and n % 103 == 51:
            struct.pack_into("!H", data, frame + 16, 30)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
        n += 1
    path.write_bytes(data)
    per_packet = _dicts(analyze([str(path)], Options(vectorised=False)))
    assert _dicts(analyze([str(path)])) == per_packet
    assert per_packet[2][str(path)] == {"TCP data offset below 5": 45,
                                        "TCP data offset past the packet": 44}


LINKS = [(1, 0), (1, 1), (1, 2), (113, 0), (276, 0), (0, 0)]
"""(link type, VLAN tags) of the long connection's variants."""


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("linktype,tags", LINKS)
def test_a_link_header_that_is_not_ip_is_read_one_by_one(tmp_path, linktype, tags, ipv6):
    """IP packets behind a link header that says they are not (edited: every 97th
    record's), among the plain segments: not counted, but skipped as the general decoder
    skips them."""
    path = _ethernet_bulk(tmp_path / "disguised.pcap", 5_000, ipv6, linktype=linktype,
                          not_ip=97, tags=tags)
    per_packet = _dicts(analyze([str(path)], Options(vectorised=False)))
    assert _dicts(analyze([str(path)])) == per_packet
    assert list(per_packet[2][str(path)]) == ["not IP"]
    assert per_packet[2][str(path)]["not IP"] in (5_000 // 97, 5_000 // 97 + 1)


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("linktype,tags", LINKS + [(101, 0)])
def test_a_long_connection_is_counted_a_batch_at_a_time(tmp_path, monkeypatch, ipv6,
                                                         linktype, tags):
    """With the real batch size and share: the first two batches (the handshake and the
    first data; a connection that begins in one window waits for the next, in case it
    closes cleanly there: teardown_analyzer.columnar) are fed one by one, and they are
    mostly plain segments, so the rest are counted; behind each link header the
    analysis gathers (Ethernet with no VLAN tag, one or two; Linux cooked v1 and v2, BSD
    loopback, raw IP)."""
    monkeypatch.setattr(capture, "CHUNK", 1 << 20)
    monkeypatch.setattr(analysis, "VECTORISED_SHARE", SHARE)
    path = _ethernet_bulk(tmp_path / "bulk.pcap", 50_000, ipv6, linktype=linktype, tags=tags)
    fed = []
    original = analysis.Tracker.feed

    def spy(self, packet, ts_ns, tcp):
        fed.append(packet)
        return original(self, packet, ts_ns, tcp)

    per_packet = _dicts(analyze([str(path)], Options(vectorised=False)))
    monkeypatch.setattr(analysis.Tracker, "feed", spy)
    assert _dicts(analyze([str(path)])) == per_packet
    (conn,), _, _, _ = per_packet
    # bounds.write_onestream: 3 handshake, 24,996 data/ACK pairs, 4 of the close
    assert conn["packets"] == 49_999 and conn["close"]["kind"] == "four-way"
    assert conn["directions"]["client"]["bytes"] == 24_996 * 100
    assert len(fed) < 13_000  # the first two 1 MiB batches (~6,200 records each), the close



def test_a_probe_ends_a_run(tmp_path):
    """The long connection edited: after three of the client's data segments, once the
    server has ACKed it, a probe from the client (a pure ACK numbered one before its next
    sequence number, as tcp_xmit_probe_skb sends).  Each is counted by the tracker
    (Tracker._probe), so it ends a run: the same count as feeding every packet."""
    path = _ethernet_bulk(tmp_path / "bulk.pcap", 5_000)
    data, pos, frames = path.read_bytes(), 24, []
    while pos < len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        frames.append(data[pos:pos + 16 + incl])
        pos += 16 + incl
    client = frames[0][16 + 26:16 + 30]  # (the SYN's IPv4 source)
    out = []
    for n, rec in enumerate(frames):
        out.append(rec)
        previous = frames[n - 1]
        if n in (1_000, 2_000, 3_000) and previous[16 + 26:16 + 30] == client:
            assert rec[16 + 26:16 + 30] != client  # (the server's ACK of it)
            ip, tcp = previous[16 + 14:16 + 34], previous[16 + 34:16 + 34 + 32]
            seq = struct.unpack_from("!I", tcp, 4)[0]
            plen = len(previous) - 16 - 34 - (tcp[12] >> 4) * 4
            probe_tcp = tcp[:4] + struct.pack("!I", (seq + plen - 1) % (1 << 32)) + tcp[8:13] \
                + b"\x10" + tcp[14:(tcp[12] >> 4) * 4]
            probe_ip = ip[:2] + struct.pack("!H", 20 + len(probe_tcp)) + ip[4:]
            frame = previous[16:16 + 14] + probe_ip + probe_tcp
            sec, frac = struct.unpack_from("<II", rec, 0)
            out.append(struct.pack("<IIII", sec, frac, len(frame), len(frame)) + frame)
    assert len(out) == len(frames) + 3
    path.write_bytes(data[:24] + b"".join(out))
    per_packet = _dicts(analyze([str(path)], Options(vectorised=False)))
    assert _dicts(analyze([str(path)])) == per_packet
    (conn,), _, _, _ = per_packet
    assert conn["directions"]["client"]["keepalive_probes"] == 3



def test_the_fastest_answer_counts_from_the_first_capture(tmp_path):
    """The long connection edited at its 300th data segment (10 µs apart otherwise): the
    client's data at t, a pure ACK of the client's at t + 5 µs that sends nothing new, and
    the server's ACK of that data at t + 8 µs.  The round trip to the server is the 8 µs
    from the data's capture to that ACK (flows.round_trip), not the 3 µs from the client's
    last segment before it; to the client, the handshake's 10 µs.  Counted a batch at a
    time as when fed one by one."""
    import pcapbuild as pb
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bounds
    raw = tmp_path / "bulk.raw.pcap"
    bounds.write_onestream(str(raw), 2_000)
    linktype, records = pb.read_pcap(raw)
    data, answer = records[3 + 2 * 300], records[4 + 2 * 300]
    assert data.data[33] & 0x08 and not answer.data[33] & 0x08  # (PSH: data, then an ACK)
    seq_next = (int.from_bytes(data.data[24:28], "big") + 100).to_bytes(4, "big")
    pure = records[2].data[:24] + seq_next + records[2].data[28:]  # (the handshake's ACK)
    records[4 + 2 * 300] = pb.Rec(data.ts_ns + 8_000, answer.data)
    records.insert(4 + 2 * 300, pb.Rec(data.ts_ns + 5_000, pure))
    path = tmp_path / "edited.pcap"
    path.write_bytes(pb.pcap(records, linktype=linktype))
    per_packet = _dicts(analyze([str(path)], Options(vectorised=False)))
    assert _dicts(analyze([str(path)])) == per_packet
    (conn,), _, _, _ = per_packet
    assert conn["vantage"]["round_trip_s"] == {"client": 10e-6, "server": 8e-6}
