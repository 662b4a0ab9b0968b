"""What a correct analysis reports for each real sample capture (sample_pcaps/README.md).

Values are checked against the scenario's truth file or counted independently from the pcap with
dpkt, not copied from the program's own output.
"""

from __future__ import annotations

import json
import pathlib
from collections import Counter

import dpkt
import pytest

from teardown_analyzer.analysis import Options, analyze

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "sample_pcaps"


def _report(name: str):
    return analyze([str(SAMPLES / name)])


def _one(name: str):
    report = _report(name)
    assert len(report.connections) == 1
    return report.connections[0]


def _truth(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.truth.json").read_text())


def _segments(name: str):
    """(ts, src port, flags, payload length) of every TCP segment, read with dpkt."""
    with open(SAMPLES / name, "rb") as fh:
        for ts, buf in dpkt.pcap.Reader(fh):
            tcp = dpkt.ethernet.Ethernet(buf).data.data
            yield float(ts), tcp.sport, tcp.flags, len(tcp.data)


def test_four_way():
    c = _one("four_way.pcap")
    assert (c.kind, c.initiator, c.zeek_state) == ("four-way", "client", "SF")
    assert c.time_wait["side"] == "client" and not c.rsts and not c.anomalies
    assert c.directions["server"]["fin"]["acked_by_fin"] is False
    assert c.directions["client"]["fin"]["acked_by_fin"] is False


def test_three_way_fin_carries_the_ack():
    c = _one("three_way.pcap")
    assert (c.kind, c.initiator) == ("three-way", "client")
    assert c.directions["client"]["fin"]["acked_by_fin"] is True
    fin_ack = [s for s in c.client_states if s.state == "TIME_WAIT"][0]
    assert fin_ack.event == "RECV_FIN_ACK_OF_FIN" and "FIN_WAIT2 for no time" in fin_ack.note


def test_server_closes_first():
    c = _one("server_first.pcap")
    assert (c.kind, c.initiator, c.time_wait["side"]) == ("four-way", "server", "server")
    assert c.client_final == "CLOSED" and c.server_final == "TIME_WAIT"


def test_half_close_duration_and_bytes_counted_from_the_pcap():
    c = _one("half_close.pcap")
    segs = list(_segments("half_close.pcap"))
    client_port = c.client[1]
    fin_c = next(ts for ts, sp, fl, _ in segs if sp == client_port and fl & dpkt.tcp.TH_FIN)
    fin_s = next(ts for ts, sp, fl, _ in segs if sp != client_port and fl & dpkt.tcp.TH_FIN)
    between = [n for ts, sp, fl, n in segs if sp != client_port and fin_c < ts <= fin_s and n]
    assert c.half_close_s == pytest.approx(fin_s - fin_c, abs=2e-6)
    assert 0.9 < c.half_close_s < 1.5    # "the server sending data for about a second"
    assert c.half_close_bytes == sum(between) and c.half_close_segments == len(between) > 0
    assert c.kind in ("four-way", "three-way") and c.initiator == "client"


def test_simultaneous_close_both_sides_closing_then_time_wait():
    c = _one("simultaneous.pcap")
    assert (c.kind, c.initiator, c.time_wait["side"]) == ("simultaneous", "both", "both")
    for states in (c.client_states, c.server_states):
        assert [s.state for s in states][-3:] == ["FIN_WAIT1", "CLOSING", "TIME_WAIT"]


@pytest.mark.parametrize("name", ["rst_linger0", "rst_unread"])
def test_abortive_close(name):
    c = _one(f"{name}.pcap")
    truth = _truth(name)["connections"][0]["sides"]
    sender = "client" if truth["client"]["rst_sent"] else "server"
    assert (c.kind, c.initiator) == ("rst", sender)
    assert len(c.rsts) == 1 and c.rsts[0]["from"] == sender
    assert c.rsts[0]["bare"] is False and c.rsts[0]["in_window"] is True   # RST|ACK
    assert "RST instead of a FIN" in c.rsts[0]["note"]
    assert c.zeek_state == ("RSTO" if sender == "client" else "RSTR")
    assert c.client_final == c.server_final == "CLOSED"


def test_lost_last_ack_fin_retransmitted_and_reacked():
    c = _one("lost_last_ack.pcap")
    segs = list(_segments("lost_last_ack.pcap"))
    server_fins = [ts for ts, sp, fl, _ in segs if sp == c.server[1] and fl & dpkt.tcp.TH_FIN]
    assert len(server_fins) == 2
    fin = c.directions["server"]["fin"]
    assert [r["ts"] for r in fin["retransmissions"]] == pytest.approx([server_fins[1]], abs=2e-6)
    assert c.time_wait["side"] == "client" and c.time_wait["fin_reacks"] == 1
    assert "ACK of a FIN lost after the capture point" in c.anomalies
    assert "packets after CLOSED" not in c.anomalies
    closed = c.server_states[-1]
    assert closed.state == "CLOSED" and closed.packet == c.time_wait["fin_reack_packets"][0]


def test_fin_wait2_timeout_bare_rst_answers_late_data_and_late_fin():
    report = _report("fin_wait2_timeout.pcap")
    assert len(report.connections) == 2
    for c in report.connections:
        assert (c.kind, c.initiator) == ("fin-then-rst", "client")
        assert [r["from"] for r in c.rsts] == ["client"] and c.rsts[0]["bare"] is True
        assert "orphaned FIN_WAIT2" in c.rsts[0]["note"]
        assert [s.state for s in c.client_states][-2:] == ["FIN_WAIT2", "CLOSED"]
        assert c.client_states[-1].inferred  # the silent expiry; the RST is its upper bound
        assert not c.time_wait
    late_data, late_fin = report.connections
    assert late_data.half_close_bytes > 0 and late_fin.directions["server"]["fin"] is not None


def test_reuse_while_server_in_time_wait():
    first, second = _report("reuse_server_tw.pcap").connections
    assert (first.client, first.server) == (second.client, second.server)
    assert (first.incarnation, second.incarnation) == (0, 1)
    reuse = first.time_wait["reuse"]
    assert first.time_wait["side"] == "server"
    assert reuse["outcome"] == "SYN-ACK" and reuse["by"] == "peer"
    assert reuse["isn_from_time_wait"] is True and reuse["new_connection"] == second.id
    assert 0.4 < reuse["after_s"] < 0.7        # "reconnects 0.5 s later"
    assert first.server_states[-1].state == "CLOSED" and "TCP_TW_SYN" in first.server_states[-1].note
    assert first.server_states[-1].packet == second.client_states[0].packet


def test_a_time_wait_killed_by_the_rst_answering_its_ack():
    """tw_assassinated.pcap: the new SYN, numbered below the old connection's end, draws
    the server's TIME_WAIT ACK of the old connection; the client's bare RST answering it
    (at that ACK field) kills the TIME_WAIT socket (the kernel's /proc record: gone before
    the SYN is sent again).  Both are the old connection's segments, the RST listed in the
    new one, whose SYN_SENT socket sent it (the kernel's record) and which stays SYN_SENT.
    Before, the RST closed the new connection's client, its handshake then ran in CLOSED,
    and the old TIME_WAIT never ended."""
    path = SAMPLES / "tw_assassinated.pcap"
    with open(path, "rb") as fh:
        records = sum(1 for _ in dpkt.pcap.Reader(fh))
    for options in (Options(), Options(vectorised=False, keep_ladder=True)):
        first, second = analyze([str(path)], options).connections
        reuse = first.time_wait["reuse"]
        syn = reuse["packet"]
        assert reuse["outcome"] == "ACK" and reuse["killed_by_rst"] == syn + 2
        assert first.notes == (f"packet {syn + 1}: the TIME_WAIT side answered the new SYN "
                               f"with an ACK of the old connection (SYN rejected)",)
        end = first.server_states[-1]
        assert (end.state, end.old, end.event, end.packet) == ("CLOSED", "TIME_WAIT",
                                                               "REUSED", syn + 2)
        assert first.time_wait["end"].startswith(f"killed by the RST in packet {syn + 2}")
        assert first.kind in ("three-way", "four-way") and not first.rsts
        (rst,) = second.rsts
        assert rst["from"] == "client" and rst["packet"] == syn + 2 and rst["bare"]
        assert [s.state for s in second.client_states] == [
            "SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
        assert second.client_states[0].packet == syn and not second.anomalies
        assert first.packets + second.packets == records


def test_reuse_while_client_in_time_wait():
    first, second = _report("reuse_client_tw.pcap").connections
    reuse = first.time_wait["reuse"]
    assert first.time_wait["side"] == "client" and reuse["by"] == "TIME_WAIT side"
    assert reuse["outcome"] == "SYN-ACK" and reuse["isn_from_time_wait"] is True
    assert 1.1 < reuse["after_s"] < 1.5        # "1.2 s later (after tcp_tw_reuse_delay)"
    assert "tcp_tw_reuse" in first.client_states[-1].note
    assert first.time_wait["end"].startswith("ended by the new SYN")
    # the kernel's ISN rule: old snd_nxt + 65537
    old_next = first.directions["client"]["highest_seq"]
    assert second.directions["client"]["isn"] == (old_next + 65537) & 0xFFFFFFFF


def test_close_wait_leak_is_half_open():
    c = _one("close_wait_leak.pcap")
    assert (c.kind, c.initiator, c.zeek_state) == ("half-open", "client", "S2")
    assert c.server_final == "CLOSE_WAIT" and c.client_final == "FIN_WAIT2"
    # "a CLOSE_WAIT that lasted at least so long": from the FIN to the last packet captured
    # (a pcap records no stop time; tcpdump ran on until the truth's capture_end_ts)
    fin_ts = c.directions["client"]["fin"]["ts"]
    last = max(ts for ts, *_ in _segments("close_wait_leak.pcap"))
    assert c.half_close_s == pytest.approx(last - fin_ts, abs=2e-6)
    assert fin_ts + c.half_close_s <= _truth("close_wait_leak")["capture_end_ts"]


def test_mixed_capture_counts_per_kind_match_the_script():
    truth = _truth("mixed_200")
    scripted = Counter(c["scripted_kind"] for c in truth["connections"])
    report = _report("mixed_200.pcap")
    kinds = report.totals()["kinds"]
    assert report.totals()["connections"] == 200
    assert kinds["rst"] == scripted["rst_linger0"] + scripted["rst_unread"]
    assert kinds["half-open"] == scripted["close_wait_leak"]
    assert kinds["four-way"] + kinds["three-way"] == (
        scripted["four_way"] + scripted["three_way"] + scripted["server_first"]
        + scripted["half_close"])
    initiators = Counter(c.initiator for c in report.connections if c.kind != "rst")
    assert initiators["server"] == scripted["server_first"]


def test_duplicates_of_a_two_vantage_capture_are_counted_once():
    report = _report("two_vantage.pcap")
    c = report.connections[0]
    assert not c.anomalies and c.time_wait["fin_reacks"] == 0
    total = sum(1 for _ in _segments("two_vantage.pcap"))
    dups = report.skipped[str(SAMPLES / "two_vantage.pcap")]["duplicate (the same segment captured twice)"]
    assert dups * 2 == total and c.packets == dups


def test_sweeping_finished_connections_changes_nothing():
    """Memory: finished connections leave the tracker early; the results stay identical."""
    from teardown_analyzer.analysis import Options
    path = [str(SAMPLES / "mixed_200.pcap")]
    every = analyze(path, Options(sweep_every=1, time_wait_s=0.5, keep_ladder=True))
    never = analyze(path, Options(sweep_every=10**9, time_wait_s=0.5, keep_ladder=True))
    assert [c.to_dict(True) for c in every.connections] == \
        [c.to_dict(True) for c in never.connections]


@pytest.mark.parametrize("name,point", [("delay_client_side.pcap", "near the client"),
                                        ("delay_server_side.pcap", "near the server"),
                                        ("vantage_client.pcap", "indeterminate")])
def test_vantage_point_from_the_handshake(name, point):
    c = _one(name)
    assert c.vantage["point"].startswith(point)
    if name.startswith("delay"):
        # a 10 ms one-way delay each way (truth: path_delay_ms)
        one_way = _truth(name.split(".")[0])["path_delay_ms"]["one_way"] / 1000
        assert c.vantage["rtt_s"] == pytest.approx(2 * one_way, abs=0.001)


def test_two_interfaces_of_one_pcapng_are_one_connection_seen_twice():
    report = _report("vantage_both.pcapng")
    assert len(report.connections) == 1
    c = report.connections[0]
    assert c.kind == "four-way" and not c.anomalies
    assert report.captures[0].linktypes == {0: 1, 1: 1}


def test_half_close_ends_at_the_rst_that_ends_the_connection():
    late_data = _report("fin_wait2_timeout.pcap").connections[0]
    fin = late_data.directions["client"]["fin"]["ts"]
    assert late_data.half_close_s == pytest.approx(late_data.rsts[0]["ts"] - fin, abs=1e-6)


@pytest.mark.parametrize("name,packet,role,state", [
    ("lost_last_ack.pcap", 11, "server", "LAST_ACK"),     # that ACK never reached the server
    ("simultaneous.pcap", 8, "client", "CLOSING"),        # the client's FIN had crossed it
])
def test_ladder_states_follow_revised_transitions(name, packet, role, state):
    from teardown_analyzer.analysis import Options
    c = analyze([str(SAMPLES / name)], Options(keep_ladder=True)).connections[0]
    step = next(st for st in c.ladder if st["packet"] == packet)
    assert step["states"][role] == state


def test_a_large_table_shows_the_unusual_connections_and_folds_the_rest(run_cli):
    """Above FOLD_ABOVE connections the table lists the unusual ones (read from the coded
    facts kept with each result) and folds the others: the same ones their full summaries
    call unusual."""
    import re
    report = _report("mixed_200.pcap")
    unusual = [c.id for c in report.connections if c.unusual]
    code, out, _ = run_cli(str(SAMPLES / "mixed_200.pcap"))
    assert code == 0 and 0 < len(unusual) < 200
    assert [int(i) for i in re.findall(r"^│ (\d+) ", out, re.M)] == unusual
    assert (f"{200 - len(unusual)} connections with nothing unusual (closed normally, or "
            f"still open) are folded") in " ".join(out.split())



@pytest.mark.parametrize("width", [75, 80, 100, 120])
def test_the_table_fits_the_console(run_cli, monkeypatch, width):
    """As wide as the console at most (80 columns when standard output is not a terminal:
    a table one column wider loses its right edge to the console's crop), every row
    closed by its border, and no state name broken (the words in capitals are those of
    the table drawn 200 columns wide), down to 75 columns."""
    import re

    def table(columns):
        monkeypatch.setenv("COLUMNS", str(columns))
        code, out, _ = run_cli(str(SAMPLES / "mixed_200.pcap"))
        assert code == 0
        return out.splitlines()

    lines = table(width)
    assert max(len(line) for line in lines) <= width
    rows = [line for line in lines if line[:1] in "│┃"]
    assert len(rows) > 50 and all(line.rstrip()[-1] in "│┃" for line in rows)
    words = set(re.findall(r"[A-Z][A-Z_0-9]{3,}", "\n".join(rows)))
    assert "ESTABLISHED" in words
    assert words <= set(re.findall(r"[A-Z][A-Z_0-9]{3,}", "\n".join(table(200))))


@pytest.mark.parametrize("name, first", [("four_way.pcap", "1 connection: four-way 1;"),
                                         ("mixed_200.pcap", "200 connections: ")])
def test_the_totals_line_says_connection_or_connections(run_cli, name, first):
    code, out, _ = run_cli(str(SAMPLES / name))
    assert code == 0 and any(line.startswith(first) for line in out.splitlines())


def _keys_sorted(value) -> bool:
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(map(_keys_sorted, value.values()))
    if isinstance(value, list):
        return all(map(_keys_sorted, value))
    return True


def test_json_is_a_connection_a_line_with_sorted_keys_as_jsonl_writes_them(run_cli):
    """The README's JSON layout: keys sorted at every level, each connection on a line of
    its own, the lines of --format jsonl being exactly those."""
    path = str(SAMPLES / "mixed_200.pcap")
    code, out, err = run_cli(path, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["connections"]) == 200 and _keys_sorted(doc)
    lines = out.splitlines()
    first = lines.index('  "connections": [') + 1
    rows = [line.strip().removesuffix(",") for line in lines[first:first + 200]]
    assert lines[first + 200] == "  ],"
    assert [json.loads(row) for row in rows] == doc["connections"]
    code, out, err = run_cli(path, "--format", "jsonl")
    assert code == 0, err
    assert out.splitlines() == rows
