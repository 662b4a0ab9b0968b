"""--jobs on one classic pcap file walked by byte range, then analysed by connection
(teardown_analyzer.pcapsplit): results identical to one process, whatever the walks of the
ranges meet (warnings and errors naming packets, a clock that goes back across a cut,
packets that are not TCP, a guessed range beginning that is no record header)."""

from __future__ import annotations

import pathlib
import struct

import pytest

import pcapbuild as pb
from conftest import sample_captures
from teardown_analyzer import pcapsplit
from teardown_analyzer.analysis import Options, analyze

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "sample_pcaps"


@pytest.fixture(autouse=True)
def split_every_file(monkeypatch):
    monkeypatch.setattr(pcapsplit, "SPLIT_BYTES", 0)


def _everything(report):
    return ([c.to_dict(True) for c in report.connections], list(report.connections.meta()),
            report.totals(), report.skipped, [c.to_dict() for c in report.captures])


def _same(path, jobs: int, **kw):
    opts = Options(keep_ladder=True, **kw)
    one, many = analyze([str(path)], opts), analyze([str(path)], opts, jobs)
    assert _everything(many) == _everything(one)
    return one


CLASSIC = [p for p in sample_captures() if p.suffix == ".pcap"]


@pytest.mark.parametrize("path", CLASSIC, ids=lambda p: p.name)
def test_samples_identical(path, walked):
    """Every classic pcap sample; those of a few records have no run of RUN records after
    a cut (they are split by connection only), mixed_200 is walked by range."""
    for jobs in (2, 3):
        _same(path, jobs)
    if path.name == "mixed_200.pcap":
        assert [len(w.ranges) for w in walked] == [2, 3]


@pytest.mark.parametrize("jobs", [2, 3])
def test_benchmark_mix_identical(mix, jobs, walked):
    _same(mix, jobs)
    _same(mix, jobs, time_wait_s=0.5)
    shares = walked[0]
    assert shares is not None and len(shares.ranges) == jobs
    assert sum(len(w.shares) for w, _ in shares.ranges) == jobs * jobs


def _records(name="mixed_200.pcap"):
    linktype, records = pb.read_pcap(SAMPLES / name)
    return linktype, records


def _write(tmp_path, records, linktype, *, snaplen=65535, nano=False,
           raw: bytes | None = None):
    path = tmp_path / "edited.pcap"
    path.write_bytes(raw if raw is not None else
                     pb.pcap(records, linktype, snaplen=snaplen, nano=nano))
    return path


def test_what_the_walks_say_is_said_with_the_true_packet_numbers(tmp_path, walked):
    """Sub-second fields out of range, records longer than the snap length and frames
    that are not IP, in every third of the file; a clock that goes back across the cuts
    (the first records of each third earlier than the last of the one before)."""
    linktype, records = _records()
    n = len(records)
    edited = list(records)
    for third in range(3):
        at = third * n // 3
        for i in (at + 1, at + 7):  # not IP: an ARP frame
            edited[i] = pb.Rec(records[i].ts_ns, pb.ethernet(b"\0" * 28, 0x0806))
        if third:  # earlier than the last record of the third before
            for i in (at, at + 2):
                edited[i] = records[i]._replace(ts_ns=records[at - 5].ts_ns - 1000)
    raw = bytearray(pb.pcap(edited, linktype, snaplen=100))
    pos, i, out_of_range, stamps = 24, 0, [], []
    while pos < len(raw):
        incl = struct.unpack_from("<I", raw, pos + 8)[0]
        if i % (n // 3) == 11:  # a sub-second field of 1,000,000 microseconds
            struct.pack_into("<I", raw, pos + 4, 1_000_000)
            out_of_range.append(i + 1)
        sec, usec = struct.unpack_from("<II", raw, pos)
        stamps.append(sec * 10**9 + usec * 1000)
        pos, i = pos + 16 + incl, i + 1
    path = _write(tmp_path, None, linktype, raw=bytes(raw))
    for jobs in (2, 3):
        one = _same(path, jobs)
    warnings = one.captures[0].warnings
    assert [w for w in warnings if "sub-second" in w] == [
        f"packet {p}: sub-second field 1000000 out of range" for p in out_of_range]
    longer = [i + 1 for i, r in enumerate(edited) if len(r.data) > 100]
    assert (f"{len(longer)} packets longer than the snap length 100 (first: packet "
            f"{longer[0]}); read in full, as libpcap does") in warnings
    earlier = sum(t < max(stamps[:i]) for i, t in enumerate(stamps) if i)
    assert f"{earlier} packets have a timestamp earlier than the packet before; times and " \
        "durations around them are unreliable" in warnings
    assert one.skipped[str(path)]["not IP"] == 6
    assert [len(w.ranges) for w in walked] == [2, 3]


def test_records_longer_than_the_snap_length_only_in_a_later_range(tmp_path, walked):
    linktype, records = _records()
    snaplen = max(len(r.data) for r in records)
    later = [2 * len(records) // 3 + 3, 2 * len(records) // 3 + 9]
    for i in later:  # an Ethernet trailer: 50 bytes more than the snap length
        records[i] = records[i]._replace(
            data=records[i].data + bytes(snaplen - len(records[i].data) + 50))
    path = _write(tmp_path, records, linktype, snaplen=snaplen)
    for jobs in (2, 3):
        one = _same(path, jobs)
    assert (f"2 packets longer than the snap length {snaplen} (first: packet {later[0] + 1}); "
            f"read in full, as libpcap does") in one.captures[0].warnings
    assert [len(w.ranges) for w in walked] == [2, 3]


def test_a_corrupt_record_in_the_first_range_ends_the_walk_there(tmp_path, walked):
    linktype, records = _records()
    raw = bytearray(pb.pcap(records, linktype))
    pos = 24
    for _ in range(len(records) // 4):
        pos += 16 + struct.unpack_from("<I", raw, pos + 8)[0]
    struct.pack_into("<I", raw, pos + 8, 1 << 30)  # a captured length beyond any snap length
    path = _write(tmp_path, None, linktype, raw=bytes(raw))
    one = _same(path, 2)
    assert one.captures[0].packets == len(records) // 4
    assert "corrupt from here" in str(one.captures[0].error)
    assert walked[0] is not None and len(walked[0].ranges) == 1  # the second: not used


def test_a_capture_cut_off_mid_record_says_so_with_the_true_number(tmp_path, walked):
    linktype, records = _records()
    raw = pb.pcap(records, linktype)[:-30]
    path = _write(tmp_path, None, linktype, raw=raw)
    one = _same(path, 2)
    assert str(one.captures[0].error).endswith(
        f"capture cut off mid-record: packet {len(records)} has "
        f"{len(records[-1].data) - 30} of {len(records[-1].data)} bytes")
    assert walked[0] is not None


def test_a_guess_that_is_no_record_header_falls_back(monkeypatch, walked):
    """A range beginning guessed in the middle of a record (here: one byte after the
    first record's header begins): its walk and the one before do not meet, so the file
    is split by connection only."""
    path = SAMPLES / "mixed_200.pcap"
    monkeypatch.setattr(pcapsplit, "boundaries", lambda path, head, parts: [24, 25])
    _same(path, 2)
    assert walked == [None]


def _after_the_middle(path, records):
    """Where the record holding the middle byte of the pcap file ``path`` (of ``records``)
    ends: the next record header."""
    cut = path.stat().st_size // 2
    begins = 24
    for r in records:
        begins += 16 + len(r.data)
        if begins > cut:
            break
    return begins


def test_zeros_do_not_look_like_record_headers(tmp_path):
    """A packet of zeros across a cut: its bytes would chain as empty record headers of
    time 0, which is more than a year from the first record's."""
    linktype, records = _records()
    middle = len(records) // 2
    records[middle] = records[middle]._replace(data=records[middle].data + bytes(60_000))
    path = _write(tmp_path, records, linktype)
    begins = _after_the_middle(path, records)
    assert pcapsplit.boundaries(str(path), pcapsplit.splittable(str(path)), 2) == [24, begins]


def test_long_records_are_looked_for_further_after_a_cut(tmp_path, walked):
    """Records of 10 kB (each frame with a trailer of zeros): RUN of them do not fit in the
    NEAR bytes after the cut, so the cut's range begins where the CHUNK bytes after it
    find them, and the walks by range say what one walk says."""
    linktype, records = _records()
    records = [r._replace(data=r.data + bytes(10_000), orig_len=None) for r in records]
    path = _write(tmp_path, records, linktype)
    begins = _after_the_middle(path, records)
    assert _fewest_run_bytes(records) > pcapsplit.NEAR
    assert pcapsplit.boundaries(str(path), pcapsplit.splittable(str(path)), 2) == [24, begins]
    _same(path, 2)
    assert len(walked[0].ranges) == 2


def _fewest_run_bytes(records):
    """The fewest bytes RUN records in a row take."""
    sizes = sorted(16 + len(r.data) for r in records)
    return sum(sizes[:pcapsplit.RUN])


def _pcapng(records, linktype, *, every=None, order="<"):
    """mixed_200's records as pcapng: two interfaces of the link type (microseconds, and
    nanoseconds with an offset), packets alternating between them; ``every``: (k, block)
    puts ``block(i)`` before every k-th packet block."""
    out = [pb.shb(order), pb.idb(linktype, 65535, order),
           pb.idb(linktype, 65535, order, tsresol=9, tsoffset=-3)]
    for i, r in enumerate(records):
        if every and i % every[0] == every[0] - 1:
            out.append(every[1](i))
        iface = i % 2
        units = r.ts_ns // 1000 if iface == 0 else r.ts_ns + 3 * 10**9
        out.append(pb.epb(iface, units, r.data, r.orig_len, order))
    return b"".join(out)


def _units(iface: int, ts_ns: int) -> int:
    """A time in the units of :func:`_pcapng`'s interface."""
    return ts_ns // 1000 if iface == 0 else ts_ns + 3 * 10**9


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_identical(tmp_path, walked, order):
    """pcapng of either byte order, two interfaces of different resolutions and offsets,
    blocks of other types among the packets (counted once, as one walk counts them), and
    statistics blocks of each interface (drops counted since the capture began, and when
    it stopped) in every range: the last counts of each and the latest end, as one walk
    takes them (:func:`teardown_analyzer.capture.use_statistics`)."""
    linktype, records = _records()
    n = len(records)

    def block(i: int) -> bytes:
        if i // 50 % 2 == 0:
            return pb.block(0x40000BAD, b"custom", order)
        iface = i // 100 % 2
        return pb.isb(iface, order, endtime=_units(iface, records[i].ts_ns), ifdrop=i // 100)
    stop = records[-1].ts_ns + 2 * 10**9
    tail = pb.isb(0, order, endtime=_units(0, stop), ifdrop=100) + pb.isb(
        1, order, endtime=_units(1, stop - 10**9), ifdrop=3, osdrop=2)
    path = _write(tmp_path, None, linktype,
                  raw=_pcapng(records, linktype, every=(50, block), order=order) + tail)
    for jobs in (2, 3):
        one = _same(path, jobs)
    info = one.captures[0]
    assert f"{(n // 50 + 1) // 2} pcapng blocks of other types skipped" in info.warnings
    assert (info.stopped_ts_ns, info.dropped) == (stop, 105)
    assert [len(w.ranges) for w in walked] == [2, 3]


def test_pcapng_interfaces_after_packets_fall_back(tmp_path, walked):
    """An interface description after packet blocks changes the file's state in its middle:
    the ranges after it would begin with another one, so the file is split by connection
    only."""
    linktype, records = _records()
    raw = _pcapng(records, linktype, every=(len(records) * 3 // 4, lambda i: pb.idb(1)))
    path = _write(tmp_path, None, linktype, raw=raw)
    _same(path, 2)
    assert walked == [None]


@pytest.mark.parametrize("bad", ["trailer", "interface"])
def test_pcapng_corrupt_block_in_a_later_range(tmp_path, walked, bad):
    """A block whose trailer disagrees with its length, or a packet block naming an
    interface no block defined, three quarters in: the packets before it, and the error
    with its true place and packet number."""
    linktype, records = _records()
    at = len(records) * 3 // 4
    block = pb.block(6, bytes(40), trailer=7) if bad == "trailer" else pb.epb(9, 0, bytes(60))
    raw = _pcapng(records, linktype, every=(at, lambda i: block))
    # a block of another type in the first range: a walk that fails does not say it skipped
    # it
    heads = len(pb.shb()) + len(pb.idb(linktype, 65535)) + len(
        pb.idb(linktype, 65535, tsresol=9, tsoffset=-3))
    path = _write(tmp_path, None, linktype,
                  raw=raw[:heads] + pb.block(0x40000BAD, b"custom") + raw[heads:])
    one = _same(path, 2)
    assert not any("blocks of other types" in w for w in one.captures[0].warnings)
    error = str(one.captures[0].error)
    if bad == "trailer":
        assert one.captures[0].packets == at - 1 and "has length 52 but trailer 7" in error
    else:
        assert one.captures[0].packets == at - 1
        assert f"packet {at} names interface 9, which no interface description" in error
    assert walked[0] is not None and len(walked[0].ranges) == 2


def test_an_error_in_the_first_packet_of_a_range(tmp_path, monkeypatch, walked):
    """A range that begins at a packet block naming an interface no block defined (a
    real block, so the range before lands on it): that range's walk fails at once, and
    the error is said with its true packet number."""
    linktype, records = _records()
    at = len(records) // 2
    front = _pcapng(records[:at], linktype)
    bad = pb.epb(9, 0, bytes(60))
    rest = b"".join(pb.epb(i % 2, r.ts_ns // 1000 if i % 2 == 0 else r.ts_ns + 3 * 10**9,
                           r.data, r.orig_len) for i, r in enumerate(records[at:], at))
    path = _write(tmp_path, None, linktype, raw=front + bad + rest)
    monkeypatch.setattr(pcapsplit, "boundaries", lambda path, head, parts: [0, len(front)])
    one = _same(path, 2)
    assert one.captures[0].packets == at
    assert f"packet {at + 1} names interface 9" in str(one.captures[0].error)
    assert walked[0] is not None and len(walked[0].ranges) == 2


@pytest.mark.parametrize("jobs", [2, 3])
def test_progress_when_walked_by_range(jobs, walked):
    """The progress of the analysis of the shares: never backwards, and at the end every
    packet and byte of the file."""
    path = SAMPLES / "mixed_200.pcap"
    calls: list = []
    report = analyze([str(path)], Options(), jobs, lambda n, b: calls.append((n, b)))
    assert calls == sorted(calls)
    assert calls[-1] == (report.captures[0].packets, path.stat().st_size)
    assert [len(w.ranges) for w in walked] == [jobs]
