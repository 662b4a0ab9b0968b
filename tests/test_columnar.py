"""Clean closes taken a window at a time (teardown_analyzer.columnar) give exactly what
feeding every packet gives: every sample capture, the benchmark's mix, with and without
--jobs, the ladder and a short TIME_WAIT, and connections taken back from disk by a late
segment.  Windows are made tiny so that connections cross their edges and wait for the
next one; plain segments are never counted at once here (tests/test_plain.py does that)."""

from __future__ import annotations


import numpy as np
import pytest

from conftest import sample_captures
from teardown_analyzer import analysis, capture, columnar, keptindex, parking, recognise, results
from teardown_analyzer.analysis import Options, analyze
from teardown_analyzer.flows import SELF_CONNECTED



def _dicts(report):
    return ([c.to_dict(True) for c in report.connections], list(report.connections.meta()),
            report.totals(), report.skipped, [c.to_dict() for c in report.captures])


@pytest.fixture(autouse=True)
def small_windows(monkeypatch):
    monkeypatch.setattr(capture, "CHUNK", 4096)
    monkeypatch.setattr(capture, "CHUNK_RECORDS", 0)
    monkeypatch.setattr(capture, "BATCH", 16)
    monkeypatch.setattr(columnar, "WINDOW_ROWS", 64)
    monkeypatch.setattr(analysis, "VECTORISED_SHARE", 1.01)  # never count plain segments


@pytest.fixture
def taken(monkeypatch):
    """Records taken as clean closes, over the runs of the test."""
    count = [0]
    original = columnar.analyse_window

    def spy(*args, **kwargs):
        n = original(*args, **kwargs)
        count[0] += n
        return n

    monkeypatch.setattr(columnar, "analyse_window", spy)
    return count


@pytest.mark.parametrize("path", sample_captures(), ids=lambda p: p.name)
def test_samples_identical(path, cut):
    path = cut(path)
    for kw in ({}, {"keep_ladder": True, "time_wait_s": 0.5}):
        per_packet = analyze([str(path)], Options(vectorised=False, **kw))
        assert _dicts(analyze([str(path)], Options(**kw))) == _dicts(per_packet)


def test_split_between_processes_among_records_read_one_by_one(tmp_path):
    """Two processes, each gathering the records of its share of the connections, and
    decoding records that are not plain Ethernet/IP one by one to find whose they are:
    an edited capture, the 200 mixed connections with the VLAN-tagged sample's connection
    moved in time to among them."""
    import pcapbuild as pb
    mixed = pb.read_pcap(pb.SAMPLES / "mixed_200.pcap")[1]
    vlan = pb.read_pcap(pb.SAMPLES / "vlan8021q.pcap")[1]
    shift = mixed[len(mixed) // 2].ts_ns - vlan[0].ts_ns
    records = sorted(mixed + [r._replace(ts_ns=r.ts_ns + shift) for r in vlan],
                     key=lambda r: r.ts_ns)
    path = tmp_path / "edited_mixed_vlan.pcap"
    path.write_bytes(pb.pcap(records, linktype=1))
    per_packet = _dicts(analyze([str(path)], Options(vectorised=False)))
    assert len(per_packet[0]) == 201
    assert _dicts(analyze([str(path)], Options(), jobs=2)) == per_packet


def test_samples_have_clean_closes_to_take(taken, cut):
    """The comparison above is not empty: the samples' Ethernet captures hold clean
    closes this module takes (the real ones are one connection each; in the port-reuse
    capture only the first connection on each port is new, the others reuse a 4-tuple
    the tracker holds)."""
    for path in sample_captures():
        analyze([str(cut(path))])
    assert taken[0] > 150


def test_full_windows(monkeypatch, taken):
    """The 200 mixed connections with the real window: most of them are taken here."""
    monkeypatch.setattr(columnar, "WINDOW_ROWS", 131072)
    monkeypatch.setattr(capture, "CHUNK", 1 << 20)
    path = next(p for p in sample_captures() if p.name == "mixed_200.pcap")
    for kw in ({}, {"keep_ladder": True, "time_wait_s": 0.5}):
        per_packet = analyze([str(path)], Options(vectorised=False, **kw))
        assert _dicts(analyze([str(path)], Options(**kw))) == _dicts(per_packet)
    assert taken[0] > 2 * 1500


@pytest.mark.parametrize("jobs", [1, 2])
def test_benchmark_mix_identical(mix, jobs, taken, monkeypatch):
    """Windows of up to 4,096 records: the mix's connections (1,500 of them, a few hundred
    open at a time) fit, and most of the clean closes are taken."""
    monkeypatch.setattr(columnar, "WINDOW_ROWS", 4096)
    per_packet = analyze([str(mix)], Options(vectorised=False, keep_ladder=True))
    assert _dicts(analyze([str(mix)], Options(keep_ladder=True), jobs)) == _dicts(per_packet)
    if jobs == 1:  # (workers count in their own process)
        packets = per_packet.captures[0].packets
        assert taken[0] > packets // 5


def _relinked(frame: bytes, linktype: int, i: int) -> bytes:
    """An Ethernet frame's IP packet behind another link header, as Linux (cooked v1,
    v2), BSD loopback (each byte order and AF_INET6 value) and raw IP captures have it,
    or behind Ethernet with no VLAN tag, one or two (each TPID); every 97th behind a
    link header that is not IP."""
    import pcapbuild as pb
    ip, v6 = frame[14:], frame[12:14] == b"\x86\xdd"
    if frame[12:14] not in (b"\x08\x00", b"\x86\xdd") or i % 97 == 0:
        ip, v6 = ip, None
    if linktype == 1:
        if v6 is None:  # what a tag would be, but its TPID is not a VLAN one: not IP
            return pb.ethernet(ip, 0x0800, vlans=[(0x88B5, 100)] * (1 + i % 2))
        tpids = (0x8100, 0x88A8, 0x9100)
        tags = [(tpids[(i + t) % 3], 100 + t) for t in range(i % 3)]
        return pb.ethernet(ip, 0x86DD if v6 else 0x0800, vlans=tags)
    if linktype in (113, 276):
        protocol = 0x0806 if v6 is None else 0x86DD if v6 else 0x0800
        return (pb.sll if linktype == 113 else pb.sll2)(ip, protocol)
    if linktype in (0, 108):
        order = ">" if linktype == 108 or i % 2 else "<"
        family = 99 if v6 is None else (10, 24, 28, 30)[i % 4] if v6 else 2
        return pb.loopback(ip, family, order)
    return ip if v6 is not None else b"\x00" + ip[1:]  # raw IP; version 0: not IP


def test_tagged_frames_read_once_behind_their_tag(monkeypatch):
    """A batch of VLAN-tagged frames (the real tagged sample) is read behind one tag at
    once, not first as untagged frames in vain; what is read is the same in any order of
    the layouts (here: the untagged one first, as it used to be)."""
    from teardown_analyzer.capture import open_capture
    path = next(p for p in sample_captures() if p.name == "vlan8021q.pcap")
    with open_capture(str(path)) as cap:
        (batch,) = list(cap.batches())
    reads = []
    original = columnar._read

    def spy(data, st, ln, layout):
        reads.append((layout.ip_at, len(st)))
        return original(data, st, ln, layout)
    monkeypatch.setattr(columnar, "_read", spy)
    cols = columnar.gathered(batch, (0, 1), lambda reason: None)
    assert reads == [(18, 11)]
    assert cols is not None and cols["regular"].all()
    reads.clear()
    monkeypatch.setattr(columnar, "_likeliest_first", lambda layouts, data, st: layouts)
    in_order = columnar.gathered(batch, (0, 1), lambda reason: None)
    assert reads == [(14, 11), (18, 11)]
    assert in_order is not None and in_order.keys() == cols.keys()
    for c in cols:
        assert np.array_equal(cols[c], in_order[c]), c


@pytest.mark.parametrize("linktype,jobs", [(1, 1), (1, 2), (113, 1), (276, 1), (276, 2),
                                           (0, 1), (108, 1), (101, 1)])
def test_other_link_layers_identical(mix, linktype, jobs, taken, monkeypatch, tmp_path):
    """The benchmark mix behind other link layers, or VLAN-tagged (edited: each Ethernet
    frame's IP packet with another link header) is gathered a window at a time too, with
    the same results as feeding every packet."""
    import pcapbuild as pb
    monkeypatch.setattr(columnar, "WINDOW_ROWS", 4096)
    records = pb.read_pcap(mix)[1]
    path = tmp_path / f"edited_mix_linktype{linktype}.pcap"
    relinked = []
    for i, r in enumerate(records):
        data = _relinked(r.data, linktype, i)
        if i % 89 == 0:  # cut by a snap length, within the IP or TCP header
            relinked.append(pb.Rec(r.ts_ns, data[:len(data) - len(r.data) + 14 + i % 61],
                                   len(data)))
        else:
            relinked.append(pb.Rec(r.ts_ns, data))
    path.write_bytes(pb.pcap(relinked, linktype=linktype))
    per_packet = analyze([str(path)], Options(vectorised=False, keep_ladder=True))
    skipped = per_packet.skipped[str(path)]
    assert skipped.get("not IP", 0) >= len(records) // 97
    assert skipped.get("truncated IP header", 0) + skipped.get("truncated TCP header", 0) > 0
    assert _dicts(analyze([str(path)], Options(keep_ladder=True), jobs)) == _dicts(per_packet)
    if jobs == 1:  # about as many as in the mix as it is (Ethernet)
        on_ethernet = taken[0]
        taken[0] = 0
        analyze([str(mix)], Options(keep_ladder=True))
        assert on_ethernet > taken[0] * 0.9


def test_idle_connections_parked_between_windows(mix, monkeypatch):
    """Open connections parked as idle after each window (idle_s of 1 ms: most of the mix's
    open ones are, again and again) and their 4-tuples' next records, which must find them
    parked: the same results as feeding every packet without parking them."""
    monkeypatch.setattr(columnar, "WINDOW_ROWS", 512)
    parked = []
    original = analysis.Tracker._park

    def spy(self, conn, due_ns):
        parked.append(due_ns)
        return original(self, conn, due_ns)

    monkeypatch.setattr(analysis.Tracker, "_park", spy)
    per_packet = analyze([str(mix)], Options(vectorised=False, idle_s=None))
    assert _dicts(analyze([str(mix)], Options(idle_s=0.001))) == _dicts(per_packet)
    assert parked.count(None) > 1000  # open connections parked (no TIME_WAIT expiry)


def test_held_connections_that_nothing_came_for_are_not_analysed_again(mix, monkeypatch):
    """A connection held for the next window whose 4-tuple sends nothing in it waits on,
    its records not analysed again (only held again as they were), unless it has waited
    long enough; the next window in which a record of it comes takes all of its records.
    The results are those of feeding every packet."""
    monkeypatch.setattr(columnar, "WINDOW_ROWS", 512)
    stayed = []
    original = columnar.Window.take

    def spy(self, final):
        cols = original(self, final)
        still = {int(h) for held, live, _ in self.held for h in held["hash"][live]}
        assert not (final and still)
        assert all((since >= self.began[0]).all() for _, _, since in self.held)
        if cols is not None:
            assert still.isdisjoint(cols["hash"].tolist())
        stayed.append(len(still))
        return cols

    monkeypatch.setattr(columnar.Window, "take", spy)
    per_packet = analyze([str(mix)], Options(vectorised=False, keep_ladder=True))
    assert _dicts(analyze([str(mix)], Options(keep_ladder=True))) == _dicts(per_packet)
    assert len(stayed) > 50 and sum(n > 0 for n in stayed) > len(stayed) // 2


SMALL = [p for p in sample_captures() if p.stat().st_size < 20_000]


def _edited(frame: bytes, *, flags: int | None = None, seq_delta: int = 0,
            ack_delta: int = 0, payload: bytes = b"", offset: int | None = None) -> bytes:
    """An Ethernet/IPv4/TCP frame of a real capture with other flags, another sequence or
    acknowledgment number or data appended (lengths and checksums recomputed)."""
    import struct
    import pcapbuild as pb
    src, dst, seg = pb.split_ipv4(frame[14:])
    if flags is not None:
        seg = seg[:13] + bytes([flags]) + seg[14:]
    if offset is not None:
        seg = seg[:12] + bytes([offset << 4 | seg[12] & 0x0F]) + seg[13:]
    seq = (struct.unpack_from("!I", seg, 4)[0] + seq_delta) & 0xFFFFFFFF
    ack = (struct.unpack_from("!I", seg, 8)[0] + ack_delta) & 0xFFFFFFFF
    seg = pb.retarget_tcp(seg[:4] + struct.pack("!II", seq, ack) + seg[12:] + payload,
                          src, dst)
    ident = struct.unpack_from("!H", frame, 18)[0] + 1
    return pb.ethernet(pb.ipv4(seg, src, dst, ident=ident))


def _fin_seq(rec) -> int:
    import struct
    return struct.unpack_from("!I", rec.data, 14 + (rec.data[14] & 0xF) * 4 + 4)[0]


def _with_sack(frame: bytes, ack_delta: int, left: int, right: int) -> bytes:
    """:func:`_edited`, with a SACK block (``left``, ``right``: sequence numbers) after
    the options it has."""
    import struct
    import pcapbuild as pb
    src, dst, seg = pb.split_ipv4(_edited(frame, ack_delta=ack_delta)[14:])
    hlen = (seg[12] >> 4) * 4
    opts = seg[20:hlen] + b"\x01\x01\x05\x0a" + struct.pack("!II", left, right)
    seg = seg[:12] + bytes([(20 + len(opts)) // 4 << 4 | seg[12] & 0x0F]) + seg[13:20] \
        + opts + seg[hlen:]
    return pb.ethernet(pb.ipv4(pb.retarget_tcp(seg, src, dst), src, dst,
                               ident=struct.unpack_from("!H", frame, 18)[0] + 1))


def _variants() -> dict[str, tuple[str, list]]:
    """Real closes edited to break one condition of a clean close each, or to cut it
    short into an open or half-open connection, or to break one condition of those
    (edited captures, not real ones): name -> (the sample edited, its records).

    four_way.pcap (the client, port 40011, closes first): 0-2 the handshake, 3-6 data and
    ACKs, 7 the client's FIN, 8 the server's ACK of it, 9 the server's FIN, 10 the
    client's last ACK.  three_way.pcap: 7 the client's FIN, 8 the server's FIN+ACK, 9 the
    client's ACK.  rst_linger0.pcap: 0-6 as in four_way, 7 the client's RST+ACK."""
    import pcapbuild as pb
    r = pb.read_pcap(pb.SAMPLES / "four_way.pcap")[1]
    t = pb.read_pcap(pb.SAMPLES / "three_way.pcap")[1]
    x = pb.read_pcap(pb.SAMPLES / "rst_linger0.pcap")[1]

    def at(ts_ns, data):
        return pb.Rec(ts_ns, data)

    four, three, rst = "four_way.pcap", "three_way.pcap", "rst_linger0.pcap"
    # a FIN of the server's that crosses the client's: sent before that reached it, so
    # captured within a round trip of it (35 us here), and ACKed within a millisecond
    soon = r[7].ts_ns + 20_000
    OPENINGS = {
        "syn_only": (four, r[:1]),
        "syn_sent_again": (four, [r[0], at(r[0].ts_ns + 10**9, _edited(r[0].data))]),
        "syn_and_synack": (four, r[:2]),
        "syn_refused": (four, [r[0], at(r[1].ts_ns, _edited(r[1].data, flags=0x14))]),
        "syn_sent_three_times": (four, [r[0], at(r[0].ts_ns + 10**9, _edited(r[0].data)),
                                        at(r[0].ts_ns + 3 * 10**9,
                                           _edited(_edited(r[0].data)))]),
        # the handshake aborted after the SYN-ACK: a bare RST from the client (a SYN scan
        # of an open port), or from the server
        "handshake_aborted": (four, r[:2] + [at(r[2].ts_ns, _edited(r[2].data, flags=0x04))]),
        "handshake_aborted_by_server": (four, r[:2] + [at(r[2].ts_ns, _edited(
            r[1].data, flags=0x04, seq_delta=1))]),
    }
    return {
        # the same data segment captured twice: the tracker skips the copy
        "duplicate": (four, r[:4] + [at(r[3].ts_ns + 1000, r[3].data)] + r[4:]),
        # the client's FIN, an ACK of the server's 2 ms later that leaves it out (more
        # than the round trip to the server: the FIN lost after the capture point), then
        # the client's RST+ACK numbered past the FIN, not at the server's rcv_nxt
        "rst_past_a_fin_shown_lost": (four, r[:8] + [
            at(r[7].ts_ns + 2 * 10**6, _edited(r[8].data, ack_delta=-1)),
            at(r[7].ts_ns + 3 * 10**6, _edited(r[7].data, flags=0x14, seq_delta=1))]),
        # ... where the server's SYN-ACK took 5 ms (a slow turnaround: the rest comes 5 ms
        # later), but it ACKed the client's data within 17 us: the round trip to it is
        # that (flows.round_trip), and the ACK 2 ms after the FIN still shows it lost;
        # so the server, which did not take the RST, is still there for its FIN 2 s later
        "rst_past_a_fin_shown_lost_far": (four, r[:1] + [
            at(rec.ts_ns + 5 * 10**6, rec.data) for rec in r[1:8]] + [
            at(r[7].ts_ns + 7 * 10**6, _edited(r[8].data, ack_delta=-1)),
            at(r[7].ts_ns + 8 * 10**6, _edited(r[7].data, flags=0x14, seq_delta=1)),
            at(r[7].ts_ns + 2 * 10**9, _edited(r[9].data, ack_delta=-1))]),
        # ... or the server's data ACKing 10 bytes less, and its pure ACK repeating that
        # ACK field as the FIN arrives (20 us after it): the FIN came out of order
        "rst_past_a_fin_out_of_order": (four, r[:5] + [
            at(r[5].ts_ns, _edited(r[5].data, ack_delta=-10))] + r[6:8] + [
            at(r[7].ts_ns + 20_000, _edited(_edited(r[5].data, ack_delta=-10)[:-200],
                                            flags=0x10, seq_delta=200)),
            at(r[7].ts_ns + 3 * 10**6, _edited(r[7].data, flags=0x14, seq_delta=1))]),
        # the server's pure ACK as the client's FIN arrives (20 us after it), 10 bytes short
        # of it, SACKing from 5 bytes on to past the FIN: the FIN came out of order, behind
        # bytes that then came with no copy captured (it took it at its ACK of the FIN,
        # flows.py _fin_taken); or with the client's data sent again before that ACK
        "fin_sacked_behind_a_hole": (four, r[:8] + [at(r[7].ts_ns + 20_000, _with_sack(
            r[8].data, -11, _fin_seq(r[7]) - 5, _fin_seq(r[7]) + 1))] + r[8:]),
        "fin_sacked_behind_a_hole_filled": (four, r[:8] + [
            at(r[7].ts_ns + 20_000, _with_sack(r[8].data, -11, _fin_seq(r[7]) - 5,
                                               _fin_seq(r[7]) + 1)),
            at(r[7].ts_ns + 40_000, _edited(r[3].data))] + [
            at(rec.ts_ns + 40_000, rec.data) for rec in r[8:]]),
        # ... with the server's ACK of it between the two copies: the record before the
        # copy in its direction is not the one before it
        "duplicate_after_a_reply": (four, r[:5] + [at(r[4].ts_ns + 1000, r[3].data)] + r[5:]),
        # the server's FIN stamped before the client's (a clock step): the first FIN by
        # time is the server's, and the close four-way (its FIN was not ACKed by a FIN)
        "fins_out_of_time": (three, t[:8] + [at(t[7].ts_ns - 1000, t[8].data)] + t[9:]),
        # the server sends again after it is CLOSED
        "after_closed": (four, r + [at(r[10].ts_ns + 1000, r[8].data)]),
        # the client's last ACK carries data: data after its FIN
        "data_after_own_fin": (four, r[:10] + [at(r[10].ts_ns, _edited(r[10].data,
                                                                      payload=b"x" * 10))]),
        # the server sends data after its FIN
        "data_after_second_fin": (four, r[:10] + [at(r[9].ts_ns + 1000, _edited(
            r[9].data, flags=0x18, seq_delta=1, payload=b"y" * 10))] + r[10:]),
        # a segment whose data offset is below 5 words: the tracker skips it
        "bad_offset": (four, r[:4] + [at(r[3].ts_ns + 1000, _edited(r[3].data, offset=4))]
                       + r[4:]),
        # a SYN with another ISN among the data: a new incarnation of the 4-tuple
        "new_syn": (four, r[:5] + [at(r[4].ts_ns + 1000, _edited(r[0].data, seq_delta=99999))]
                    + r[5:]),
        # the RST's sequence number before what its sender already sent: out of window,
        # the receiver ignores it (the sender's own abort closes only the sender)
        "rst_out_of_window": (rst, x[:7] + [at(x[7].ts_ns, _edited(x[7].data,
                                                                  seq_delta=-10))]),
        # an RST with data: its end, not its start, is the sender's next sequence number
        "rst_with_data": (rst, x[:7] + [at(x[7].ts_ns, _edited(x[7].data, payload=b"z"))]),
        # the client's sequence numbers go 0x150000000 on (more than 4 GB, in steps the
        # tracker follows), so the RST, 0xF0000000 on, is behind them: out of window (its
        # ends reckoned from the ISN would wrap, and look before the RST's)
        "rst_after_4_gb": (rst, x[:7] + [at(x[6].ts_ns + 1000 * k, _edited(
            x[6].data, seq_delta=0x70000000 * k)) for k in (1, 2, 3)]
            + [at(x[7].ts_ns, _edited(x[7].data, seq_delta=0xF0000000))]),
        # the server answers with an RST of its own
        "second_rst": (rst, x + [at(x[7].ts_ns + 1000, _edited(x[4].data, flags=0x14,
                                                               seq_delta=200))]),
        # cut short: still open (no FIN), or half-open (the client's FIN and its ACK)
        "open": (four, r[:7]),
        "half_open": (four, r[:9]),
        # no handshake: the capture started mid-connection (unusual, though open)
        "mid_connection": (four, r[3:7]),
        # half-open, then the server aborts: its ACK of the FIN sent again as an RST+ACK
        "fin_then_rst": (four, r[:9] + [at(r[8].ts_ns + 1000, _edited(r[8].data,
                                                                      flags=0x14))]),
        # the client's FIN sent again before the server ACKs it: four-way, unusual
        "fin_retransmitted": (four, r[:8] + [at(r[7].ts_ns + 1000, _edited(r[7].data))]
                              + r[8:]),
        # ... after the server ACKed it: that ACK was lost after the capture point, and
        # the server's FIN+ACK is the first to acknowledge it (three-way)
        "fin_retransmitted_after_ack": (four, r[:9] + [at(r[8].ts_ns + 1000, _edited(
            r[7].data))] + r[9:]),
        # ... with another sequence number: unusual too
        "fin_moved": (four, r[:8] + [at(r[7].ts_ns + 1000, _edited(r[7].data, seq_delta=1))]
                      + r[8:]),
        # the server's FIN sent again before the client's last ACK, or after it
        "server_fin_retransmitted_early": (four, r[:10] + [at(r[9].ts_ns + 1000, _edited(
            r[9].data))] + r[10:]),
        "server_fin_retransmitted": (four, r + [at(r[10].ts_ns + 1000, _edited(r[9].data))]),
        # ... the client's RST+ACK a microsecond after the server's ACK of its FIN, less
        # than the round trip to the client: they crossed, the client never in FIN_WAIT2
        "rst_crosses_the_ack": (four, r[:9] + [at(r[8].ts_ns + 1000, _edited(
            r[7].data, flags=0x14, seq_delta=1))]),
        # half-open, then the client resets: a bare RST at its FIN's sequence number plus
        # one (acceptable), or at the FIN's own (out of window: still half-open)
        "fin_then_bare_rst": (four, r[:9] + [at(r[8].ts_ns + 1000, _edited(
            r[7].data, flags=0x04, seq_delta=1))]),
        "rst_at_fin_seq": (four, r[:9] + [at(r[8].ts_ns + 1000, _edited(r[7].data,
                                                                       flags=0x04))]),
        # the FINs cross (the server's acknowledges only the client's data), then each
        # side ACKs the other's: simultaneous, both in TIME_WAIT
        "simultaneous": (four, r[:8] + [at(soon, _edited(r[9].data, ack_delta=-1)),
                                        at(soon + 1000, r[8].data),
                                        at(soon + 2000, r[10].data)]),
        # ... the last ACK a minute later: the server's TIME_WAIT is over, a connection of
        # its own
        "simultaneous_late_ack": (four, r[:8] + [
            at(soon, _edited(r[9].data, ack_delta=-1)),
            at(soon + 1000, r[8].data), at(r[9].ts_ns + 61 * 10**9, r[10].data)]),
        # ... the server ACKs the client's FIN before its own FIN, which does not: CLOSE_WAIT
        # rewritten after the client's FIN_WAIT2
        "acked_then_crossing": (four, r[:9] + [at(r[9].ts_ns, _edited(r[9].data,
                                                                      ack_delta=-1)), r[10]]),
        # the client's last ACK a minute after the server's FIN: its TIME_WAIT (60 s) is
        # over, the ACK is a connection of its own
        "last_ack_after_time_wait": (four, r[:10] + [at(r[9].ts_ns + 61 * 10**9,
                                                         r[10].data)]),
        # the client's FIN and an RST in one segment: the RST at the FIN's sequence number,
        # out of window (half-open)
        "fin_and_rst_together": (four, r[:7] + [at(r[7].ts_ns, _edited(r[7].data,
                                                                      flags=0x15))]),
        # the server's RST stamped before the client's FIN: by time, an RST and no FIN
        # after it (half-open)
        "rst_stamped_before_fin": (four, r[:9] + [at(r[7].ts_ns - 1000, _edited(
            r[8].data, flags=0x14))]),
        # the server's FIN crosses the client's (acknowledges only its data): simultaneous
        "crossing_fins": (four, r[:8] + [at(soon, _edited(r[9].data, ack_delta=-1)),
                                         at(soon + 2000, r[10].data)]),
        # ... and the client's FIN sent again 0.3 s later (acknowledging the server's), the
        # server's first ACK of it after that copy: the server took the copy, its first
        # was lost (in FIN_WAIT1 it would have ACKed it at once)
        "crossing_fins_sent_again": (four, r[:8] + [
            at(r[9].ts_ns, _edited(r[9].data, ack_delta=-1)),
            at(r[9].ts_ns + 3 * 10**8, _edited(r[7].data, ack_delta=1)),
            at(r[9].ts_ns + 3 * 10**8 + 1000, _edited(r[8].data, seq_delta=1))]),
        # only the beginning of a handshake (a SYN flood, a scan): the SYN, the SYN sent
        # again a second later (its ISN, a new IP ID), the SYN and the SYN-ACK, the SYN
        # refused with an RST+ACK
        **OPENINGS,
        # ... the SYN again with another ISN: a new incarnation; the SYN-ACK acknowledging
        # something else; the SYN captured twice (the tracker skips the copy)
        "syn_again_with_another_isn": (four, [r[0], at(r[0].ts_ns + 10**9, _edited(
            r[0].data, seq_delta=99999))]),
        "synack_acking_another_seq": (four, [r[0], at(r[1].ts_ns, _edited(r[1].data,
                                                                         ack_delta=1))]),
        "syn_captured_twice": (four, [r[0], at(r[0].ts_ns + 1000, r[0].data)]),
        # ... refused with an RST that acknowledges something else, or nothing (out of
        # window in SYN_SENT), or that carries data
        "syn_refused_out_of_window": (four, [r[0], at(r[1].ts_ns, _edited(
            r[1].data, flags=0x14, ack_delta=1))]),
        "syn_refused_bare": (four, [r[0], at(r[1].ts_ns, _edited(r[1].data, flags=0x04))]),
        "syn_refused_with_data": (four, [r[0], at(r[1].ts_ns, _edited(
            r[1].data, flags=0x14, payload=b"no"))]),
        # ... and the client tries again 3 s later (another ISN): a connection of its own
        # ... the RST before the client's next sequence number (out of window)
        "handshake_aborted_out_of_window": (four, r[:2] + [at(r[2].ts_ns, _edited(
            r[2].data, flags=0x04, seq_delta=-1))]),
        "syn_refused_then_tried_again": (four, [r[0], at(r[1].ts_ns, _edited(
            r[1].data, flags=0x14)), at(r[0].ts_ns + 3 * 10**9, _edited(r[0].data,
                                                                       seq_delta=99999))]),
    }


VARIANTS = _variants()


@pytest.fixture(params=sorted(VARIANTS))
def variant(request, tmp_path):
    import pcapbuild as pb
    base, records = VARIANTS[request.param]
    path = tmp_path / f"{request.param}.pcap"
    path.write_bytes(pb.pcap(records, linktype=1))
    return pb.SAMPLES / base, path


@pytest.mark.parametrize("name, kind, client", [
    ("syn_only", "none", "SYN_SENT"), ("syn_sent_again", "none", "SYN_SENT"),
    ("syn_and_synack", "none", "ESTABLISHED"), ("syn_refused", "rst", "CLOSED"),
    ("syn_sent_three_times", "none", "SYN_SENT"), ("handshake_aborted", "rst", "CLOSED"),
    ("handshake_aborted_by_server", "rst", "CLOSED")])
def test_the_beginning_of_a_handshake_is_its_packets(name, kind, client, tmp_path):
    """A handshake that goes no further (a SYN flood, a scan, a closed port) is kept as its
    packets, with the tracker's states and verdict."""
    import pcapbuild as pb
    path = tmp_path / f"{name}.pcap"
    path.write_bytes(pb.pcap(VARIANTS[name][1], linktype=1))
    report = analyze([str(path)])
    (c,) = list(report.connections)
    assert c.kind == kind and c.unusual == (kind == "rst")
    assert c.client_states[-1].state == client
    assert report.connections._segments[0].blob(0)[0] == 0
    assert _dicts(report) == _dicts(analyze([str(path)], Options(vectorised=False)))


def test_real_handshakes_that_end_early_are_their_packets():
    """sample_pcaps/syn_shapes.pcap (recorded by tools/record_syn_shapes.py on a real
    kernel, with the client's record): a SYN refused (ECONNREFUSED), a SYN sent again until
    connect() gave up (ETIMEDOUT), and a raw SYN whose SYN-ACK the kernel reset.  Each is
    kept as its packets, as the tracker reports it."""
    import json
    import pcapbuild as pb
    path = pb.SAMPLES / "syn_shapes.pcap"
    probes = {p["client_port"]: p for p in json.loads(
        (pb.SAMPLES / "syn_shapes.record.json").read_text())["probes"]}
    report = analyze([str(path)])
    assert _dicts(report) == _dicts(analyze([str(path)], Options(vectorised=False)))
    segments = report.connections._segments[0]
    assert [segments.blob(i)[0] for i in range(len(report.connections))] == [0, 0, 0]
    # the unanswered SYN's records, counted from the file: every one of its client port's
    (unanswered,) = [p for p in probes.values() if p["probe"] == "unanswered"]
    assert unanswered["outcome"] == "ETIMEDOUT"
    syns = sum(1 for rec in pb.read_pcap(path)[1]
               if int.from_bytes(rec.data[34:36], "big") == unanswered["client_port"])
    assert syns >= 3
    seen = {probes[c.client[1]]["probe"]: (c.kind, c.initiator, c.packets,
                                           c.client_states[-1].state)
            for c in report.connections}
    assert seen == {"refused": ("rst", "server", 2, "CLOSED"),
                    "unanswered": ("none", None, syns, "SYN_SENT"),
                    "aborted": ("rst", "client", 3, "CLOSED")}


def test_edited_clean_closes(variant, monkeypatch):
    """Each edit changes what the tracker concludes (the verdicts the totals and the
    folded table use, the connections, their anomalies, or the skipped records: so the
    edit is not a no-op), and the analysis concludes the same, wherever the windows end."""
    base, path = variant

    def verdicts(p):
        report = analyze([str(p)], Options(vectorised=False))
        return (list(report.connections.meta()), [c.anomalies for c in report.connections],
                sum(report.skipped[str(p)].values()))

    assert verdicts(path) != verdicts(base)
    test_windows_cut_at_every_record(path, monkeypatch, [0])


def test_a_kept_connection_is_settled_as_the_tracker_settles_it(tmp_path, monkeypatch):
    """ack_crosses_abort_client_side.pcap cut after the client's RST+ACK (not a real
    capture): a FIN, then the RST 25 ms later, nothing from the server between.  Kept as
    its packets and replayed when the output reads it, it is settled like a connection
    leaving the tracker's table: the server's CLOSE_WAIT is noted not shown (no delayed ACK
    was due yet), in every window, as feeding every packet has it."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(pb.SAMPLES / "ack_crosses_abort_client_side.pcap")
    path = tmp_path / "fin_then_rst.pcap"
    path.write_bytes(pb.pcap(records[:11], linktype=linktype))
    every = _dicts(analyze([str(path)], Options(vectorised=False, keep_ladder=True)))
    assert every[0][0]["sides"]["server"]["states"][-2]["note"].startswith(
        "not shown: the RST (packet 11) came 25.0 ms after the FIN")
    for k in (4, 8, 1000):
        monkeypatch.setattr(columnar, "FIRST_WINDOW", k)
        monkeypatch.setattr(columnar, "WINDOW_ROWS", k)
        assert _dicts(analyze([str(path)], Options(keep_ladder=True))) == every, k


def test_an_rst_out_of_window_closes_only_its_sender(tmp_path):
    """rst_linger0.pcap edited (rst_out_of_window, not a real capture): the client's
    RST+ACK is its own abort (tcp_send_active_reset), whatever the server makes of it.
    Out of window, the server ignores it and stays ESTABLISHED; the client is CLOSED, so
    the close is an RST by the client (not "none", still open), with the anomaly."""
    import pcapbuild as pb
    path = tmp_path / "rst_out_of_window.pcap"
    path.write_bytes(pb.pcap(VARIANTS["rst_out_of_window"][1], linktype=1))
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(path)], options).connections
        assert (c.kind, c.initiator, c.client_final, c.server_final, c.anomalies) == \
            ("rst", "client", "CLOSED", "ESTABLISHED", ("RST out of window",))
        assert [r["in_window"] for r in c.rsts] == [False]


@pytest.mark.parametrize("path", SMALL, ids=lambda p: p.name)
def test_windows_cut_at_every_record(path, monkeypatch, taken):
    """One record per batch, and windows of k records for every k: every place a window
    can end, for every small real capture.  Where a clean close ends in one window and
    a late segment of its 4-tuple comes in a later one (a new SYN reusing it: the reuse
    captures), the connection is taken back by replaying its packets."""
    monkeypatch.setattr(capture, "CHUNK", 1)
    monkeypatch.setattr(capture, "BATCH", 1)
    taken_back = [0]
    original = results.ResultSink.withdraw

    def spy(self, handle):
        blob = original(self, handle)
        taken_back[0] += blob[0] == 0  # a clean close kept as its packets
        return blob

    monkeypatch.setattr(results.ResultSink, "withdraw", spy)
    per_packet = _dicts(analyze([str(path)], Options(vectorised=False, keep_ladder=True)))
    packets = per_packet[-1][0]["packets"]
    for k in range(1, packets + 1):
        monkeypatch.setattr(columnar, "FIRST_WINDOW", k)
        monkeypatch.setattr(columnar, "WINDOW_ROWS", k)
        assert _dicts(analyze([str(path)], Options(keep_ladder=True))) == per_packet, k
    if path.name.startswith("reuse_"):
        assert taken[0] and taken_back[0]


def test_a_clean_close_is_its_packets():
    """A blob of rows starts with a zero byte (no marshal output does), then the two
    endpoints, then a row per packet, and thaws into the connection the tracker makes of
    those packets."""
    path = next(p for p in sample_captures() if p.name == "four_way.pcap")
    report = analyze([str(path)])
    (c,) = list(report.connections)
    assert c.kind == "four-way"
    blob = report.connections._segments[0].blob(0)
    assert blob[0] == 0 and len(blob) % columnar.ROW.itemsize == 0
    conn = parking.thaw(blob)
    assert conn.packets == c.packets == len(blob) // columnar.ROW.itemsize - 1


@pytest.mark.parametrize("name, meta", [
    ("open", ("none", 0, None, False, None, 0)),
    ("half_open", ("half-open", 0, None, True, "client", 0)),
    ("fin_retransmitted", ("four-way", 0, "client", True, "client", 1)),
    ("fin_moved", ("four-way", 0, "client", True, "client", 0)),
    ("fin_then_rst", ("fin-then-rst", 1, None, True, "client", 0)),
    ("simultaneous", ("simultaneous", 0, "both", True, "both", 0)),
    ("fin_then_bare_rst", ("fin-then-rst", 1, None, True, "client", 0))])
def test_kept_as_its_packets(name, meta, tmp_path):
    """Besides clean closes: open and half-open connections (at the end of the capture),
    a FIN retransmitted before it was acknowledged, an acceptable RST after a FIN, are
    kept as their packets too, with the verdict the tracker reaches (so the comparison
    in test_edited_clean_closes is not empty for these)."""
    import pcapbuild as pb
    path = tmp_path / "edited.pcap"
    path.write_bytes(pb.pcap(VARIANTS[name][1], linktype=1))
    report = analyze([str(path)])
    (c,) = list(report.connections)
    assert (c.kind, len(c.rsts), c.unusual, c.initiator) == (meta[0], meta[1], meta[3],
                                                             meta[4])
    # (the half-close: none without a FIN, to the end of the capture if half-open)
    half = results.HALF_NONE if c.half_close_s is None else round(c.half_close_s * 1e9)
    assert half > 0 or name == "open"
    assert list(report.connections.meta()) == [meta + (half,)]
    assert report.connections._segments[0].blob(0)[0] == 0


def test_real_half_open_is_its_packets():
    """The real CLOSE_WAIT leak (its kernel's record: the server stays in CLOSE_WAIT) is
    kept as its packets, and reported as the tracker reports it."""
    path = next(p for p in sample_captures() if p.name == "close_wait_leak.pcap")
    report = analyze([str(path)])
    (c,) = list(report.connections)
    assert c.kind == "half-open" and c.server_final == "CLOSE_WAIT"
    assert report.connections._segments[0].blob(0)[0] == 0


@pytest.mark.parametrize("weak", ["constant", "port sum"])
def test_connections_whose_hashes_collide(mix, monkeypatch, taken, weak):
    """Records are grouped by a hash of their connection; where different connections'
    hashes are alike (here made so: every record alike, or those whose port sums are),
    the group is left to the tracker, and the results are still those of feeding every
    packet."""
    import numpy as np

    def swapped(port):  # a port as the hash reads it
        return (port & 0xFF) << 8 | port >> 8
    hashes = {"constant": (lambda words, version: np.zeros(len(version), np.uint64),
                           lambda four: 0),
              "port sum": (lambda words, version: (words[2] + words[5]) << np.uint64(20),
                           lambda four: (swapped(four[1]) + swapped(four[3])) << 20)}
    monkeypatch.setattr(columnar, "WINDOW_ROWS", 4096)
    # (both forms of the hash: the one for a window's records, the one for a 4-tuple)
    monkeypatch.setattr(recognise, "_pair_hash", hashes[weak][0])
    monkeypatch.setattr(keptindex, "pair_hash", hashes[weak][1])
    odd = []
    original = recognise._group

    def spy(key, h):
        got = original(key, h)
        odd.append(int(got[4].sum()))
        return got

    monkeypatch.setattr(recognise, "_group", spy)
    per_packet = analyze([str(mix)], Options(vectorised=False))
    assert _dicts(analyze([str(mix)], Options())) == _dicts(per_packet)
    if weak == "constant":
        assert taken[0] == 0
    else:  # some groups mixed up, and the others still taken
        assert sum(odd) > 1000 and taken[0] > per_packet.captures[0].packets // 10


@pytest.mark.parametrize("other", ["another connection", "IPv6 twin", "IPv6 to IPv6"])
def test_a_group_that_is_not_one_connection(other, tmp_path, monkeypatch):
    """A real clean close with two data segments of another connection in its midst, in
    the same group (every hash made alike): another 4-tuple (three_way.pcap's), the same
    addresses' bytes and ports over IPv6, or (the close itself over IPv6) the same ports
    and addresses but for their last 8 bytes (which an IPv4 address does not have).  The
    group is left to the tracker (kept as one connection, its packets would replay as
    two)."""
    import numpy as np
    import pcapbuild as pb
    r = pb.read_pcap(pb.SAMPLES / "four_way.pcap")[1]

    def twin(frame, tail=bytes(12)):
        src, dst, seg = pb.split_ipv4(frame[14:])
        src6, dst6 = src + tail, dst + tail
        return pb.ethernet(pb.ipv6(pb.retarget_tcp(seg, src6, dst6), src6, dst6),
                           ethertype=0x86DD)
    if other == "IPv6 twin":
        others = [twin(rec.data) for rec in r[3:5]]
    elif other == "IPv6 to IPv6":
        r = [pb.Rec(rec.ts_ns, twin(rec.data)) for rec in r]
        others = [twin(rec.data, bytes(11) + b"\1") for rec in pb.read_pcap(
            pb.SAMPLES / "four_way.pcap")[1][3:5]]
    else:
        others = [rec.data for rec in pb.read_pcap(pb.SAMPLES / "three_way.pcap")[1][3:5]]
    between = [pb.Rec(r[4].ts_ns + 1 + i, data) for i, data in enumerate(others)]
    path = tmp_path / "mixed.pcap"
    path.write_bytes(pb.pcap(r[:5] + between + r[5:], linktype=1))
    monkeypatch.setattr(recognise, "_pair_hash",
                        lambda words, version: np.zeros(len(version), np.uint64))
    per_packet = analyze([str(path)], Options(vectorised=False, keep_ladder=True))
    assert len(per_packet.connections) == 2
    assert _dicts(analyze([str(path)], Options(keep_ladder=True))) == _dicts(per_packet)


@pytest.mark.parametrize("sample, count", [("four_way.pcap", None), ("three_way.pcap", None),
                                           ("rst_linger0.pcap", None), ("four_way.pcap", 1)])
def test_an_endpoint_talking_to_itself(sample, count, tmp_path, taken):
    """Records whose two endpoints are one (a socket connected to itself, as Linux allows
    on loopback): here a real close (or its SYN alone) rewritten so that the server's
    address and port are the client's.  Each record is then both the same as the one
    before it and swapped; the group is left to the tracker (taken as a handshake and a
    close by two endpoints, or as a SYN nothing answered, it would not be what the tracker
    makes of it)."""
    import pcapbuild as pb
    records = pb.read_pcap(pb.SAMPLES / sample)[1][:count]
    client, port = pb.split_ipv4(records[0].data[14:])[0], records[0].data[34:36]
    looped = []
    for rec in records:
        ip = rec.data[14:]
        seg = port + port + pb.split_ipv4(ip)[2][4:]
        looped.append(pb.Rec(rec.ts_ns, pb.ethernet(pb.ipv4(
            pb.retarget_tcp(seg, client, client), client, client, ident=ip[4] << 8 | ip[5]))))
    path = tmp_path / "itself.pcap"
    path.write_bytes(pb.pcap(looped, linktype=1))
    per_packet = analyze([str(path)], Options(vectorised=False))
    (conn,) = per_packet.connections  # (the tracker used to lose it: no connection at all)
    assert conn.packets == len(records) and SELF_CONNECTED in conn.anomalies
    assert _dicts(analyze([str(path)], Options())) == _dicts(per_packet)
    assert taken[0] == 0
    # parked after every packet, taken back by the next (its one 4-tuple both ways)
    parked = analyze([str(path)], Options(vectorised=False, sweep_every=1, quiet_s=0,
                                          idle_s=0, time_wait_s=3600))
    never = analyze([str(path)], Options(vectorised=False, sweep_every=10**9,
                                         time_wait_s=3600))
    assert _dicts(parked) == _dicts(never) and len(never.connections) == 1


@pytest.mark.parametrize("size", [0, 1, 13, 20, 23])
def test_a_capture_of_one_short_record(size, tmp_path):
    """A capture whose only record is shorter than what is read of a SYN's options (found
    by tests/fuzz_captures.py: a buffer shorter than 40 bytes with no SYN in it)."""
    import pcapbuild as pb
    frame = pb.read_pcap(pb.SAMPLES / "four_way.pcap")[1][0].data
    path = tmp_path / "short.pcap"
    path.write_bytes(pb.pcap([pb.Rec(1_000_000_000, frame[:size], len(frame))], linktype=1))
    per_packet = analyze([str(path)], Options(vectorised=False))
    assert _dicts(analyze([str(path)])) == _dicts(per_packet)
    assert per_packet.skipped[str(path)] == {"truncated link header": 1} if size < 14 else \
        {"truncated IP header": 1}


def test_options_read_as_the_tracker_reads_them():
    """What is gathered from the options of every record at once (a SYN's window-scale
    shift, how far past its ACK field another segment's SACK blocks reach) equals what
    link.py's reading of each record finds: options built from real kinds (NOP, EOL, MSS,
    window scale, timestamps, SACK-permitted, SACK with one to four blocks, some behind
    the ACK field or wrapping past 2**32, with good and bad lengths), Linux's options as
    they are or with a byte changed, and random bytes; data offsets of 5 to 15 words,
    IPv4 and IPv6, records cut short anywhere."""
    import random
    import struct
    import numpy as np
    import pcapbuild as pb
    from teardown_analyzer.link import tcp_packet_at
    rnd = random.Random(7)
    acks = [0, 5000, 0xFFFFFF00, 0x7FFFFFF0]

    def sack(ack: int) -> bytes:
        blocks = rnd.randrange(1, 5)
        edges = b"".join(struct.pack("!II", (ack + rnd.randrange(-3000, 3000)) & 0xFFFFFFFF,
                                     (ack + rnd.choice([-5, 0, 1, 1448, 1 << 31, 1 << 32])
                                      + rnd.randrange(3000)) & 0xFFFFFFFF)
                         for _ in range(blocks))
        size = 2 + 8 * blocks if rnd.random() < 0.8 else rnd.choice([1, 2, 9, 11, 40])
        return bytes([5, size]) + edges

    pieces = [b"\x01", b"\x00", b"\x02\x04\x05\xb4", b"\x03\x03\x07", b"\x03\x03",
              b"\x03\x02\x09", b"\x03\x04\x05\x00", b"\x04\x02", b"\x04\x00", b"\x03\x01",
              b"\x08\x0a" + bytes(8), b"\x05", b"\x01\x01\x08\x0a" + bytes(8), None, None, None,
              None]
    frames = []
    linux = bytearray(b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + bytes(8) + b"\x01\x03\x03\x07")
    for i in range(6000):
        ack = rnd.choice(acks) + rnd.randrange(100)
        opts = b"".join(p if p is not None else sack(ack) for p in (
            rnd.choice(pieces) for _ in range(rnd.randrange(8)))) \
            if i % 4 else bytes(rnd.randrange(256) for _ in range(rnd.randrange(41)))
        if i % 4 == 1:  # Linux's options (read at once), or with one byte changed
            opts = bytearray(linux)
            if i % 8 == 1:
                opts[rnd.randrange(len(opts))] = rnd.choice([0, 1, 2, 3, 4, 8, 10, 19])
            opts = bytes(opts)
        words = rnd.randrange(5, 16)
        opts = (opts + bytes(40))[:4 * words - 20]
        seg = struct.pack("!HHIIHHHH", 1000 + i, 80, i, ack, words << 12 | rnd.choice(
            [0x02, 0x12, 0x10, 0x10, 0x11, 0x03]), 512, 0, 0) + opts + b"d" * rnd.randrange(3)
        src, dst = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
        frame = pb.ethernet(pb.ipv4(seg, src, dst)) if i % 3 else pb.ethernet(
            pb.ipv6(seg), ethertype=0x86DD)
        frames.append(frame[:rnd.randrange(54, len(frame) + 1)] if i % 5 == 0 else frame)
    buf = b"".join(frames)
    starts = np.cumsum([0] + [len(f) for f in frames[:-1]]).tolist()
    lens = [len(f) for f in frames]
    cols = columnar.gather(buf, starts, lens, np.zeros(len(frames), np.int64), 1, (0, 1),
                           lambda reason: None)
    expected = {}
    for p, (s, n) in enumerate(zip(starts, lens)):
        got = tcp_packet_at(buf, s, n, 1)
        if not isinstance(got, str):
            expected[p + 1] = -1 if got[-1] is None else got[-1]
    regular = cols["regular"]
    seen = dict(zip(cols["packet"][regular].tolist(), cols["opt"][regular].tolist()))
    syn = dict(zip(cols["packet"][regular].tolist(), (cols["flags"][regular] & 2).tolist()))
    assert sum(v >= 0 for p, v in seen.items() if syn[p]) > 300
    assert sum(v >= 0 for p, v in seen.items() if not syn[p]) > 150
    assert seen == {p: expected[p] for p in seen}


def test_the_hash_of_a_4_tuple_is_the_windows_hash():
    """:func:`recognise.pair_hash` (the tracker's 4-tuples, in Python) equals the hash the
    windows group records by (numpy), in both directions, for IPv4, IPv6 and an endpoint
    talking to itself: a connection kept a window at a time is found by it."""
    import random
    import numpy as np
    rnd = random.Random(11)
    fours, keys = [], []
    for i in range(3000):
        width = rnd.choice((4, 16))
        a = (bytes(rnd.randrange(256) for _ in range(width)), rnd.randrange(65536))
        b = a if i % 50 == 0 else (bytes(rnd.randrange(256) for _ in range(width)),
                                   rnd.choice((0, 1, 80, 443, 65535, rnd.randrange(65536))))
        fours.append((a[0], a[1], b[0], b[1]))
        keys.append(b"".join(keptindex.endpoints(fours[-1])))
    hashes = recognise.key_hash(np.frombuffer(b"".join(keys), np.uint8).reshape(-1, 37))
    pairs = {frozenset(((f[0], f[1]), (f[2], f[3]))) for f in fours}
    assert len(set(hashes.tolist())) == len(pairs)
    for four, h in zip(fours, hashes.tolist()):
        assert recognise.pair_hash(four) == h == recognise.pair_hash(
            (four[2], four[3], four[0], four[1]))


def test_connections_parked_a_window_at_a_time(monkeypatch):
    """The index of connections kept a window at a time: one is taken back (once) by its
    4-tuple as either endpoint sends it, not by another 4-tuple whose hash is alike (here
    every hash is), nor once it is due at the segment's time (then it is let go); an
    expiry lets go of those due and of those taken back, not of the open ones."""
    import numpy as np
    from teardown_analyzer.flows import Tracker
    monkeypatch.setattr(keptindex, "pair_hash", lambda four: 0)
    endpoints = {}  # handle -> the endpoints of the connection kept with it
    index = keptindex.KeptIndex(Tracker(), endpoints.__getitem__)
    a, b, c = (b"\x0a\0\0\x01", 40000, b"\x0a\0\0\x02", 80), \
        (b"\x0a\0\0\x01", 40001, b"\x0a\0\0\x02", 80), (b"\x0a\0\0\x03", 5, b"\x0a\0\0\x04", 6)
    for handle, four in zip((7, 8, 9, 10, 11), (a, b, c, a, b)):
        endpoints[handle] = b"".join(keptindex.endpoints(four))
    hashes = np.zeros(3, np.uint64)
    index.add(hashes, np.array([100, 200, -1]), np.array([7, 8, 9]))
    assert len(index) == 3 and index.holds(hashes).all()
    assert index.take((b[2], b[3], b[0], b[1]), 150) == 8
    assert index.take(b, 150) is None and len(index) == 2  # (taken back once)
    assert index.take(a, 100) is None and index.take(a, 99) is None  # due: let go
    def entries():
        return sum(len(run) for run in index.runs)
    assert len(index) == 1 and entries() == 3  # (until the next expiry)
    index.expire(10**12)
    assert entries() == 1 and index.take((c[2], c[3], c[0], c[1]), 10**12) == 9
    index.add(hashes[:2], np.array([100, 200]), np.array([10, 11]))
    index.expire(150)
    assert [run["handle"].tolist() for run in index.runs] == [[11]]
    assert index.take(b, None) == 11
    index.expire(0)  # (nothing due: the one taken back is let go all the same)
    assert entries() == 0
    # windows after windows: a few runs, each sorted, every one found (by its port, here)
    monkeypatch.setattr(keptindex, "pair_hash", lambda four: four[1])
    fours = [(b"\x0a\0\0\x01", port, b"\x0a\0\0\x02", 80) for port in range(1000)]
    endpoints.update((port, b"".join(keptindex.endpoints(four))) for port, four in enumerate(fours))
    for first in range(0, 1000, 40):
        window = slice(first, first + 40)
        index.add(np.arange(1000, dtype=np.uint64)[window][::-1], np.full(40, -1),
                  np.arange(1000)[window][::-1])
    assert len(index) == 1000 and len(index.runs) <= 5
    assert all((np.diff(run["hash"].astype(np.int64)) > 0).all() for run in index.runs)
    assert [index.take(four, None) for four in fours[::-1]] == list(range(1000))[::-1]


def test_what_the_tracker_holds_is_known_to_the_windows():
    """A connection that enters the tracker's table (new, or taken back from the index)
    is held at the next look, and stays held once it has left until a look starts again
    from the table (held too long is safe: its 4-tuple's records then go to the
    tracker)."""
    import numpy as np
    from teardown_analyzer.flows import Tracker

    class Parking:
        def keep(self, conn):
            return 5

        def take_back(self, handle):
            return kept
    tracker = Tracker(parking=Parking())
    c = (b"\x0a\0\0\x03", 5, b"\x0a\0\0\x04", 6)
    index = keptindex.KeptIndex(tracker, {5: b"".join(keptindex.endpoints(c))}.__getitem__)
    h = np.array([recognise.pair_hash(c)], np.uint64)
    assert not index.holds(h).any()
    tracker.feed(1, 0, (4, c[0], c[2], 0, 20, c[1], c[3], 1, 0, 5 << 12 | 2, 0, 0, None))
    assert index.holds(h).all() and tracker.entered == []
    (kept, _), _ = tracker.conns.values()
    tracker._drop(kept)
    assert index.holds(h).all()  # (listed until a look starts again)
    index._look(again=True)
    assert not index.holds(h).any()
    index.add(h, np.array([-1]), np.array([5]))
    tracker.feed(2, 1, (4, c[2], c[0], 0, 20, c[3], c[1], 1, 0, 5 << 12 | 0x10, 0, 0, None))
    assert len(index) == 0 and tracker.conns and tracker.entered == [(c[2], c[3], c[0], c[1])]
    index._look(again=True)
    assert index.holds(h).all()
    # many entered and left: a look starts again from the table
    for port in range(2000):
        tracker.feed(3 + port, 2, (4, c[0], c[2], 0, 20, 1000 + port, c[3], 1, 0,
                                   5 << 12 | 2, 0, 0, None))
    for conn in [conn for conn, s in tracker.conns.values() if not s]:
        tracker._drop(conn)
    assert len(index._held) == 1 and len(tracker.entered) == 2000
    index.holds(h)
    assert len(index._held) == 0 and tracker.entered == []
    # fed one by one for long, without a window (mostly plain segments): a sweep reads
    # the list, so that it does not grow with every connection
    for port in range(5000):
        tracker.feed(3000 + port, 3, (4, c[0], c[2], 0, 20, 10000 + port, c[3], 1, 0,
                                      5 << 12 | 2, 0, 0, None))
    tracker.sweep(3, 60 * 10**9)
    assert tracker.entered == [] and len(index._held) == 5000


def test_the_fastest_answers_are_the_trackers(mix):
    """recognise._fastest, the fastest each side of a group answered (the round trip the
    fin-then-rst condition uses), on every complete clean close of the benchmark's mix
    (all its records gathered as one window): with the handshake's, the round trips the
    tracker reports (``vantage.round_trip_s``, fed every packet), for every one."""
    from teardown_analyzer.capture import open_capture
    with open_capture(str(mix)) as cap:
        parts = [columnar.gathered(b, (0, 1), lambda reason: None) for b in cap.batches()]
    cols = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    cols["hash"] = recognise.key_hash(cols["key"])
    groups = recognise.recognise(cols, 60 * 10**9, 10**9)
    g = np.flatnonzero(groups.clean & (groups.ends - groups.starts >= 3))
    starts, size = groups.starts[g], (groups.ends - groups.starts)[g]
    offs = np.cumsum(size) - size
    member = np.repeat(np.arange(len(g)), size)
    rows = groups.order[np.arange(len(member)) + (starts - offs)[member]]
    sender = groups.sender[np.arange(len(member)) + (starts - offs)[member]]
    seq, ts = cols["seq"][rows], cols["ts"][rows]
    isn_c, isn_s = seq[offs], seq[offs + 1]
    fastest = recognise._fastest(sender, cols["flags"][rows], seq, cols["ack"][rows],
                                 cols["plen"][rows], ts, member, offs, isn_c, isn_s)
    handshake = np.stack([ts[offs + 2] - ts[offs + 1], ts[offs + 1] - ts[offs]], axis=1)
    ours = np.maximum(0, np.minimum(handshake, fastest))
    report = analyze([str(mix)], Options(vectorised=False))
    tracker = {}
    for c in report.connections:
        if c.vantage is not None:
            rt = c.vantage["round_trip_s"]
            tracker.setdefault(c.client[1], []).append(
                (c.first_ts, round(rt["client"] * 1e9), round(rt["server"] * 1e9)))
    first = cols["ts"][rows[offs]]
    client_port = [int.from_bytes(bytes(cols["key"][r][17:19]), "big") if s == 0 else
                   int.from_bytes(bytes(cols["key"][r][35:37]), "big")
                   for r, s in zip(rows[offs].tolist(), sender[offs].tolist())]
    assert len(g) > 1000
    answered = 0
    for i, port in enumerate(client_port):
        (match,) = [t for t in tracker.get(port, []) if abs(t[0] - first[i] / 1e9) < 1e-6]
        assert (int(ours[i, 0]), int(ours[i, 1])) == match[1:], i
        answered += int((fastest[i] < handshake[i]).any())
    assert answered > 100  # (answers faster than the handshake's, not only the handshake)
