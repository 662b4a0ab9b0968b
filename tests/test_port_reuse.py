"""A real loopback capture of 20,000 short connections whose client ports the kernel reuses
(``sample_pcaps/port_reuse.pcap.gz``, recorded by ``tools/record_port_reuse.py``): one
connection per handshake, as tshark's ``tcp.stream`` counts them, not one per 4-tuple.

The truth is the client's own record (``port_reuse.record.json``): how many connections it
made, the local port of each in order, and how many the server accepted.  Eight client
ports carry all 20,000 connections; each new SYN reaches the server's TIME_WAIT socket of
the connection before it on that 4-tuple, which accepts it.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
from collections import Counter

import pytest

from teardown_analyzer.analysis import analyze

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "sample_pcaps"
CAPTURE = SAMPLES / "port_reuse.pcap.gz"
RECORD = json.loads((SAMPLES / "port_reuse.record.json").read_text())


@pytest.fixture(scope="module")
def report():
    return analyze([str(CAPTURE)])


@pytest.fixture(scope="module")
def connections(report):
    return list(report.connections)


def test_one_connection_per_handshake(connections):
    assert RECORD["connections"] == RECORD["server_accepted"] == 20000
    assert len(connections) == RECORD["connections"]
    assert [c.client[1] for c in connections] == RECORD["client_ports_in_order"]
    assert all(c.handshake == "seen" and not c.anomalies for c in connections)
    assert Counter(c.kind for c in connections) == {"three-way": 20000}  # the server closes


def test_each_reuse_is_a_new_incarnation_that_ended_the_servers_time_wait(connections):
    by_id = {c.id: c for c in connections}
    first_use = len(RECORD["client_ports"])
    reused = [c for c in connections if c.reused_from is not None]
    assert len(reused) == RECORD["connections"] - first_use
    for c in reused:
        old = by_id[c.reused_from]
        assert (old.client, old.server) == (c.client, c.server)
        assert c.incarnation == old.incarnation + 1
        reuse = old.time_wait["reuse"]
        assert old.time_wait["side"] == "server" and reuse["new_connection"] == c.id
        assert reuse["outcome"] == "SYN-ACK" and reuse["ended_time_wait"]
        # tcp_timewait_state_process: the new ISN is the TIME_WAIT's snd_nxt + 65535 + 2
        assert reuse["isn_from_time_wait"]
        assert old.server_states[-1].event == "REUSED" and old.server_final == "CLOSED"
    # every port's last connection is still in TIME_WAIT when the capture ends
    last = [c for c in connections if c.time_wait["reuse"] is None]
    assert len(last) == first_use
    assert all(c.server_final == "TIME_WAIT" for c in last)


def test_tshark_counts_the_same_streams(connections):
    tshark = shutil.which("tshark")
    if tshark is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is not installed, and CI is set: CI must install it")
        pytest.skip("tshark is not installed (apt-get install tshark)")
    out = subprocess.run([tshark, "-r", str(CAPTURE), "-Y", "tcp.flags.syn == 1 && "
                          "tcp.flags.ack == 0", "-T", "fields", "-e", "tcp.stream",
                          "-e", "tcp.srcport"], capture_output=True, text=True, check=True)
    syns = [line.split("\t") for line in out.stdout.splitlines()]
    streams = subprocess.run([tshark, "-r", str(CAPTURE), "-T", "fields", "-e", "tcp.stream"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert len(set(streams)) == len(syns) == len(connections)
    # stream n starts with the n-th SYN, from the client port of our n-th connection
    assert [int(s) for s, _ in syns] == list(range(len(syns)))
    assert [int(p) for _, p in syns] == [c.client[1] for c in connections]


def test_walked_by_range_with_jobs(connections, tmp_path, monkeypatch, walked):
    """The capture decompressed and walked by byte range with --jobs 2 and 3
    (teardown_analyzer.pcapsplit): every reuse of a 4-tuple that crosses from one range to
    the next still finds the incarnation before it; the results equal one process's."""
    import gzip

    from teardown_analyzer import pcapsplit
    monkeypatch.setattr(pcapsplit, "SPLIT_BYTES", 0)
    path = tmp_path / "port_reuse.pcap"
    path.write_bytes(gzip.decompress(CAPTURE.read_bytes()))
    for jobs in (2, 3):
        report = analyze([str(path)], jobs=jobs)
        assert [c.to_dict() for c in report.connections] == [
            dict(c.to_dict(), capture=str(path)) for c in connections]
    assert [len(w.ranges) for w in walked] == [2, 3]


def test_the_table_of_a_capture_with_nothing_unusual_is_only_its_totals(report):
    """Every connection folded: no table (a header over no row), the folded count and the
    totals."""
    from rich.console import Console
    from teardown_analyzer.report import connections_table
    with open(os.devnull, "w") as devnull:
        console = Console(width=200, record=True, file=devnull)
        console.print(connections_table(report))
    assert console.export_text().splitlines() == [
        "20000 connections with nothing unusual (closed normally, or still open) are folded "
        "(--all shows them)",
        "20000 connections: three-way 20000; RSTs 0; half-open 0; TIME_WAIT on client 0, on "
        "server 20000"]


def test_the_cut_the_sample_wide_tests_read_still_reuses_ports(cut):
    """tests/conftest.py's cut of this capture, what the tests run on every sample read:
    its first 2,000 handshakes, all but the first eight on a reused 4-tuple."""
    part = list(analyze([str(cut(CAPTURE))]).connections)
    assert [c.client[1] for c in part] == RECORD["client_ports_in_order"][:2000]
    assert sum(c.reused_from is not None for c in part) == 2000 - len(RECORD["client_ports"])
