"""Memory: quiet TIME_WAITs parked on disk, results kept in a spill file.

Parking must change nothing: every sample capture is analysed with every connection parked
as soon as it may be (after every packet, with no quiet time), so that each late segment
(a retransmitted FIN into TIME_WAIT, the final ACK, a new SYN on a TIME_WAIT 4-tuple, an
RST) has to take its connection back from disk, and the results are compared with a run
that never sweeps.
"""

from __future__ import annotations

import pathlib
import pickle
import struct

import pytest

from teardown_analyzer.analysis import Options, analyze
from teardown_analyzer.capture import open_capture
from teardown_analyzer.flows import Tracker
from teardown_analyzer.link import tcp_packet
from teardown_analyzer.parking import freeze, thaw
from teardown_analyzer.spill import FLUSH_AT, Spill

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "sample_pcaps"
CAPTURES = sorted(p.name for p in SAMPLES.iterdir() if p.suffix in (".pcap", ".pcapng"))


def _tracked(name: str) -> list:
    """Every connection of a capture as the tracker holds it at the end, ladder kept."""
    tracker = Tracker(keep_ladder=True)
    for frame in open_capture(str(SAMPLES / name)):
        tcp = tcp_packet(frame.data, frame.linktype)
        if not isinstance(tcp, str):
            tracker.feed(frame.index, frame.ts_ns, tcp)
    return list(tracker.finish())


@pytest.mark.parametrize("name", CAPTURES)
def test_a_frozen_connection_thaws_equal(name):
    conns = _tracked(name)
    assert conns
    for conn in conns:
        assert thaw(freeze(conn)) == conn


@pytest.mark.parametrize("name", CAPTURES)
def test_parking_at_every_packet_changes_nothing(name, monkeypatch):
    """Every connection is parked after every packet (open ones too: idle_s=0), and every
    next packet takes it back: the same results as never parking."""
    taken_back = []
    unpark = Tracker._unpark

    def spy(self, key, ts_ns):
        found = unpark(self, key, ts_ns)
        if found is not None:
            taken_back.append(found[0].id)
        return found

    monkeypatch.setattr(Tracker, "_unpark", spy)
    path = [str(SAMPLES / name)]
    never = analyze(path, Options(sweep_every=10**9, time_wait_s=3600, keep_ladder=True))
    # no quiet time, but for segments that follow an RST (RSTs that cross, answers from no
    # socket, one the same bytes as the one before it, which the tracker skips): a
    # connection both of whose sides are CLOSED is summarised once quiet_s has passed (the
    # grace an RST close gets), and what comes after is another connection; and for a
    # capture that went on, silent, after its last packet (pcapng statistics): a parked
    # connection's ACK of a FIN that was due then is judged overdue only within quiet_s
    info = never.captures[0]
    end = info.end_ns / 1e9
    quiet = max([0.0] + [end - c.rsts[0]["ts"] + 0.001 for c in never.connections
                         if c.rsts and end > c.rsts[0]["ts"]]
                + [end - info.last_ts_ns / 1e9 + 0.001])
    # a TIME_WAIT longer than any capture: nothing expires, parked connections wait
    parked = analyze(path, Options(sweep_every=1, quiet_s=quiet, idle_s=0, time_wait_s=3600,
                                   keep_ladder=True))
    assert [c.to_dict(True) for c in parked.connections] == \
        [c.to_dict(True) for c in never.connections]
    # most packets find their connection parked, the open ones included (not while one
    # side has ended and the other is still closing: that is not parked)
    assert len(taken_back) >= sum(c.packets for c in never.connections) // 2


def test_parked_time_waits_expire_by_their_timer():
    """With a short TIME_WAIT, parked connections leave by the heap of expiry times, and
    the timer's inferred CLOSED is the same as when summarised at the end."""
    path = [str(SAMPLES / "mixed_200.pcap")]
    every = analyze(path, Options(sweep_every=1, quiet_s=0, idle_s=0, time_wait_s=0.2))
    never = analyze(path, Options(sweep_every=10**9, time_wait_s=0.2))
    expired = [c for c in never.connections
               if c.time_wait and c.time_wait["end"] == "inferred from the timer"]
    assert expired
    assert [c.to_dict() for c in every.connections] == [c.to_dict() for c in never.connections]


def test_spill_reads_back_what_was_written_across_flushes():
    spill = Spill()
    blobs = [bytes([i % 251]) * (1 + i * 977 % 5000) for i in range(2000)]
    where = [(spill.put(b), len(b)) for b in blobs]
    assert sum(map(len, blobs)) > 2 * FLUSH_AT
    assert [spill.get(o, n) for o, n in where] == blobs
    # a spill not shared with a forked worker travels with its contents
    copy = pickle.loads(pickle.dumps(spill))
    assert copy is not spill and [copy.get(o, n) for o, n in where] == blobs


def _writers() -> list:
    import threading
    return [t for t in threading.enumerate() if t.name == "teardown-analyzer spill writer"]


def test_spill_writes_behind_in_a_thread_and_reads_back_what_it_is_writing():
    spill = Spill()
    # (compared as sets: a writer of an earlier test's spill may end meanwhile)
    before = set(_writers())
    big = [bytes([i]) * (FLUSH_AT + 1000 * i) for i in range(1, 4)]
    where = []
    ours = set()
    for blob in big:
        where.append((spill.put(blob), len(blob)))
        ours |= set(_writers()) - before
        assert len(ours) == 1  # one thread, given each in turn
        # read at once: the part being written, then one not written at all
        assert spill.get(where[-1][0] + 5, 7) == blob[5:12]
        small = bytes([9]) * 10
        where.append((spill.put(small), len(small)))
        assert spill.get(*where[-1]) == small
    assert [spill.get(o, n) for o, n in where] == [b for blob in big for b in (blob, small)]
    del spill
    import gc
    gc.collect()
    (thread,) = ours
    thread.join(5)
    assert not thread.is_alive()  # the thread ends with its spill


def test_a_write_behind_that_fails_is_told_at_the_next_write(monkeypatch):
    import errno
    import os

    from teardown_analyzer.errors import StorageError

    def full(*_args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    spill = Spill()
    monkeypatch.setattr(os, "pwrite", full)
    spill.put(b"x" * FLUSH_AT)  # handed to the thread
    with pytest.raises(StorageError, match="No space left on device.*TMPDIR"):
        spill.put(b"y" * FLUSH_AT)
    with pytest.raises(StorageError, match="No space left"):
        spill.flush()  # and again: what is in the file is not all that was put


def test_a_fork_finds_no_writer_mid_write_and_both_sides_write_on(monkeypatch):
    import os
    import signal
    import time
    pwrite = os.pwrite

    def slow(*args):
        time.sleep(0.3)
        return pwrite(*args)

    monkeypatch.setattr(os, "pwrite", slow)
    spill = Spill()
    first = bytes(range(256)) * (FLUSH_AT // 256 + 1)
    at = spill.put(first)
    assert _writers()
    pid = os.fork()  # the writer finishes and ends before
    if pid == 0:
        signal.alarm(20)  # (a child waiting for a thread that is not there ends)
        ok = not _writers() and spill.get(at, len(first)) == first
        more = spill.put(b"c" * FLUSH_AT)  # a writer of its own
        ok = ok and len(_writers()) == 1 and spill.get(more + 3, 4) == b"cccc"
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert spill.get(at, len(first)) == first
    again = spill.put(b"p" * FLUSH_AT)
    assert _writers() and spill.get(again, 2) == b"pp"


def test_results_leave_memory_for_the_spill():
    report = analyze([str(SAMPLES / "mixed_200.pcap")])
    (segment,) = report.connections._segments
    assert len(segment.ids) == 200 and len(segment.spills) == 1
    assert sum(segment.sizes) > 60_000  # the blobs are in the file, not in the arrays
    assert report.connections[0].id == 1 and report.connections[199].id == 200


def _pcap(packets: list[tuple[float, bytes]]) -> bytes:
    """A classic pcap of raw IPv4 packets (LINKTYPE_RAW) at the given times."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)]
    for ts, pkt in packets:
        sec, usec = int(ts), round((ts - int(ts)) * 1e6)
        out.append(struct.pack("<IIII", sec, usec, len(pkt), len(pkt)) + pkt)
    return b"".join(out)


def test_a_time_wait_parked_twice_keeps_its_later_expiry(tmp_path):
    """The client's TIME_WAIT is parked, taken back by a retransmitted FIN (the final ACK
    was lost), re-ACKed and parked again with a later expiry: the first expiry must not
    drop it, so the FIN retransmitted again after that still belongs to it."""
    from test_zeek import HS, A, F, c2s, s2c, seg
    t0 = 1_700_000_000
    other = seg(bytes([198, 18, 0, 9]), bytes([198, 18, 0, 2]), 41000, 80, 7, 0, 0x02)
    packets = [(t0 + i * 0.001, p) for i, p in enumerate(HS)] + [
        (t0 + 1.000, c2s(101, 501, F | A)), (t0 + 1.001, s2c(501, 102, A)),
        (t0 + 1.002, s2c(501, 102, F | A)), (t0 + 1.003, c2s(102, 502, A)),  # parked
        (t0 + 5.000, s2c(501, 102, F | A)), (t0 + 5.001, c2s(102, 502, A)),  # parked again
        (t0 + 12.0, other),                       # a sweep after the first expiry (11 s)
        (t0 + 13.0, s2c(501, 102, F | A)),        # before the second (15 s)
    ]
    path = tmp_path / "twice.pcap"
    path.write_bytes(_pcap(packets))
    opts = dict(time_wait_s=10, keep_ladder=True)
    parked = analyze([str(path)], Options(sweep_every=1, quiet_s=0, idle_s=0, **opts))
    never = analyze([str(path)], Options(sweep_every=10**9, **opts))
    assert len(never.connections) == 2
    assert never.connections[0].directions["server"]["fin"]["retransmissions"][-1]["ts"] \
        == pytest.approx(t0 + 13.0)
    assert [c.to_dict(True) for c in parked.connections] == \
        [c.to_dict(True) for c in never.connections]


def test_a_full_temporary_directory_is_one_line_and_exit_status_4(run_cli, monkeypatch):
    import errno
    import os

    def full(*_args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    code, out, err = run_cli(str(SAMPLES / "mixed_200.pcap"), "--format", "json")
    assert code == 4 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "TMPDIR" in lines[0]


def test_an_unusable_temporary_directory_is_exit_status_4(run_cli, monkeypatch, tmp_path):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "does-not-exist"))
    code, _, err = run_cli(str(SAMPLES / "four_way.pcap"))
    assert code == 4 and "cannot create a temporary file" in err and "does-not-exist" in err
    assert len(err.strip().splitlines()) == 1


def test_many_captures_share_one_temporary_file(tmp_path):
    import os
    names = [tmp_path / f"c{i}.pcap" for i in range(40)]
    for n in names:
        n.write_bytes((SAMPLES / "four_way.pcap").read_bytes())
    before = len(os.listdir("/proc/self/fd"))
    report = analyze([str(n) for n in names])
    assert len(report.connections) == 40
    assert len(os.listdir("/proc/self/fd")) - before <= 1
    spills = {id(s) for seg in report.connections._segments for s in seg.spills}
    assert len(spills) == 1


def test_flow_decodes_only_the_chosen_connections():
    """Results are summarised when read: --flow N reads connection N, not all of them."""
    from teardown_analyzer.report import select
    report = analyze([str(SAMPLES / "mixed_200.pcap")])
    store = report.connections
    decoded = []
    seg = store._segments[0]
    store._segments[0] = seg._replace(
        decode=lambda blob, meta: decoded.append(1) or seg.decode(blob, meta))
    chosen = select(report, [5, 3, 999, 3])
    assert [c.id for c in chosen] == [3, 5] and len(decoded) == 2
    assert chosen[0].to_dict() == analyze([str(SAMPLES / "mixed_200.pcap")]).connections[2].to_dict()


@pytest.mark.parametrize("sample, late", [("four_way.pcap", 9), ("rst_linger0.pcap", 6)])
def test_a_segment_after_the_end_starts_anew_whenever_sweeps_ran(sample, late, tmp_path):
    """A real close, then one of its segments sent again after the close is over (the
    TIME_WAIT of 0.5 s run out; both sides CLOSED and quiet for the 1 s grace): a
    connection of its own, whether a sweep let the old one go before it (every packet,
    with and without parking) or not (never)."""
    import pcapbuild as pb
    records = pb.read_pcap(SAMPLES / sample)[1]
    path = tmp_path / "late.pcap"
    path.write_bytes(pb.pcap(records + [pb.Rec(records[-1].ts_ns + 1_200_000_000,
                                               records[late].data)], linktype=1))
    runs = [analyze([str(path)], Options(vectorised=False, time_wait_s=0.5, **kw))
            for kw in ({"sweep_every": 10**9}, {"sweep_every": 1},
                       {"sweep_every": 1, "quiet_s": 0, "idle_s": 0})]
    assert [len(r.connections) for r in runs] == [2, 2, 2]
    assert all([c.to_dict(True) for c in r.connections]
               == [c.to_dict(True) for c in runs[0].connections] for r in runs)
