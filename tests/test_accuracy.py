"""Accuracy against the kernel: every sample capture with a truth file (issue 4).

Each ``sample_pcaps/NAME.truth.json`` holds what the Linux kernel recorded for every connection
of ``NAME.pcap`` (tracepoint sock:inet_sock_set_state, /proc polling for timewait sockets; see
sample_pcaps/README.md).  For each connection we check that each side's state sequence equals the
kernel's, that the kind and initiator match the scenario, and that every transition time is within
a few milliseconds of the kernel's.

Where the two differ for a reason a capture cannot resolve, or by the definition we were asked
to follow, the difference is listed here with its reason (never silenced):

* ``FIN_WAIT1 -> TIME_WAIT``: when the peer's FIN carries the ACK of ours, we report
  FIN_WAIT1 -> TIME_WAIT (RFC 9293 section 3.10.7.4, as issue 4 asks); Linux passes through
  FIN_WAIT2 for a few microseconds on the way (tcp_rcv_state_process step 5, then tcp_fin).
  The truth's FIN_WAIT2 is collapsed only when it lasted under 1 ms and we saw that one segment.
* ``LATE_FIN``: a FIN waits in a queue (the simultaneous close's slow qdisc), or behind data a
  zero window holds back (zero_window_in_half_close, whose note says so): the kernel changes
  state at close(), the capture sees the FIN when it leaves; our time is the upper bound.
* ``QUEUED``: the IPv6 capture's SYN waited about 1 s for neighbour discovery before it left
  (its TSval is 1 s older than the handshake ACK's): connect() moved the socket to SYN_SENT then.
* ``SILENT``: an orphaned FIN_WAIT2 that expires, or a socket closed with SO_LINGER 0 in
  LAST_ACK, leaves nothing on the wire; we stamp its CLOSED at the RST that proves it (upper
  bound), the kernel's record has the expiry or the close().

A state the capture cannot tell from its absence is listed in ``NOT_SHOWN``: ours must carry a
note that starts "not shown:", and is left out before the comparison.
"""

from __future__ import annotations

import io
import json
import pathlib
import re

import pytest
from rich.console import Console

from teardown_analyzer.analysis import ConnectionResult, Options, analyze
from teardown_analyzer.kernelpaths import kernel_path
from teardown_analyzer.report import ladder, listing_line
from teardown_analyzer.states import NOT_SHOWN as NOT_SHOWN_NOTE, Event, SideState

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "sample_pcaps"
TRUTHS = sorted(SAMPLES.glob("*.truth.json"))
TOLERANCE_S = 0.005

# scenario kinds in the truth files -> what the analysis must report
KIND = {"four_way": {"four-way"}, "three_way": {"three-way"},
        "server_first": {"four-way", "three-way"}, "half_close": {"four-way", "three-way"},
        "half-close": {"four-way", "three-way"}, "rst_linger0": {"rst"}, "rst_unread": {"rst"},
        "close_wait_leak": {"half-open"},
        # (#0 three- or four-way, as timing has it; #1 four-way)
        "tw_assassinated": {"three-way", "four-way"},
        # (#0 closed by the RST; #1 three- or four-way, as timing has it)
        "reuse_challenged_client_side": {"fin-then-rst", "three-way", "four-way"},
        # (#0 a FIN then the RSTs; #1, from the same port, both FINs at once)
        "abort_answers_older_data_server_side": {"fin-then-rst", "simultaneous"}}

# Timing differences a capture cannot resolve: (scenario, client port, side, state) -> reason.
UPPER_BOUNDS = {
    ("simultaneous", 40051, "client", "FIN_WAIT1"): "LATE_FIN",
    ("simultaneous", 40051, "server", "FIN_WAIT1"): "LATE_FIN",
    ("ipv6", 40131, "client", "SYN_SENT"): "QUEUED",
    ("zero_window_in_half_close_server_side", 40591, "server", "LAST_ACK"): "LATE_FIN",
    ("fin_wait2_timeout", 40091, "client", "CLOSED"): "SILENT",
    ("fin_wait2_timeout", 40092, "client", "CLOSED"): "SILENT",
    ("abort_in_closing_client_side", 40321, "client", "CLOSED"): "SILENT",
    ("abort_in_closing_server_side", 40321, "client", "CLOSED"): "SILENT",
    ("last_ack_gone_client_side", 40491, "server", "CLOSED"): "SILENT",
    ("last_ack_gone_server_side", 40491, "server", "CLOSED"): "SILENT",
    ("abort_in_last_ack_client_side", 40621, "server", "CLOSED"): "SILENT",
    ("abort_in_last_ack_server_side", 40621, "server", "CLOSED"): "SILENT",
}

# States no segment shows (scenario, client port, side, state) -> reason.
NOT_SHOWN = {
    # the FIN was dropped after the capture point; reset before an ESTABLISHED side's
    # delayed ACK of a FIN would have been due, that side looks like close_race's client
    (f"{name}_{vantage}_side", port, role, "CLOSE_WAIT"): "DELAYED_ACK"
    for name, port, role in (("fin_lost_before_delayed_ack", 40451, "server"),
                             ("close_race_fin_lost", 40461, "client"))
    for vantage in ("client", "server")}
# the FIN was dropped after the capture point; reset before a FIN_WAIT1 side's ACK of it,
# sent at once, would have been due (a round trip to it and a millisecond): in CLOSING,
# Linux takes an RST one short of rcv_nxt too (tcp_reset_check), so that RST cannot tell
NOT_SHOWN[("reset_soon_after_lost_fin_server_side", 40313, "server", "CLOSING")] = "AT_ONCE_ACK"

# RSTs the kernel's record leaves out: (scenario, side) -> why.  Only that every RST it
# has is one we report, at its time, is checked there.
RSTS_UNRECORDED = {
    (f"{name}_{vantage}_side", "server"):
        "after its socket is gone, the server's RSTs come from its listener, which the "
        "tcp_send_reset tracepoint names by the listener's addresses, not the connection's"
    for name in ("close_crosses_data", "closing_abort_crosses_ack", "challenge_ack_after_lost_data",
                 "abort_on_data_behind_lost_data", "close_race_fin_lost",
                 "abort_crosses_abort_on_data", "last_ack_gone", "abort_short_of_fin",
                 "abort_in_last_ack", "queued_fin_aborts_on_data")
    for vantage in ("client", "server")}


def _truth(path: pathlib.Path) -> dict:
    return json.loads(path.read_text())


def _match(results: list[ConnectionResult], tc: dict) -> ConnectionResult:
    key = ((tc["client"]["ip"], tc["client"]["port"]), (tc["server"]["ip"], tc["server"]["port"]))
    same = [c for c in results if (c.client, c.server) == key]
    assert len(same) > tc.get("incarnation", 0), f"no connection {key}"
    return same[tc.get("incarnation", 0)]


def _pairs(truth_path: pathlib.Path) -> list[tuple[dict, ConnectionResult]]:
    """Each truth connection with ours, the capture analysed once."""
    truth = _truth(truth_path)
    report = analyze([str(SAMPLES / truth["capture"])])
    return [(tc, _match(report.connections, tc)) for tc in truth["connections"]]


def _collapse_instant_fin_wait2(truth_tr: list[dict], ours: ConnectionResult, role: str) -> list[dict]:
    """The kernel's transitions of ``role`` as we report states: none to the state it was in,
    and, where we went FIN_WAIT1 -> TIME_WAIT on one segment (rule 4), the FIN_WAIT2 the
    kernel passes through on the way (within a millisecond) folded into it."""
    states = ours.client_states if role == "client" else ours.server_states
    direct = any(s.event == "RECV_FIN_ACK_OF_FIN" for s in states)
    out = []
    # (a close() after shutdown(SHUT_WR) sets FIN_WAIT1 again, tcp_close_state: the
    # tracepoint fires, the state does not change)
    for t in (t for t in truth_tr if t["from"] != t["to"]):
        if direct and out and t["from"] == "FIN_WAIT2" and t["to"] == "TIME_WAIT" \
                and out[-1]["to"] == "FIN_WAIT2" and t["ts"] - out[-1]["ts"] < 0.001:
            prev = out.pop()
            out.append({**t, "from": prev["from"], "ts": prev["ts"]})
            continue
        out.append(t)
    return out


def _kernel_initiator(tc: dict) -> str | None:
    """Who closed first by the kernel's record: the first to enter FIN_WAIT1; both when both
    went through CLOSING.  None when nobody sent a FIN (an abort)."""
    first = {}
    closing = set()
    for role in ("client", "server"):
        for t in tc["sides"][role]["transitions"]:
            if t["to"] == "FIN_WAIT1":
                first.setdefault(role, t["ts"])
            if t["to"] == "CLOSING":
                closing.add(role)
    if closing == {"client", "server"}:
        return "both"
    return min(first, key=first.get) if first else None


def _expected_kinds(truth: dict, tc: dict) -> set[str]:
    scripted = tc.get("scripted_kind") or truth["scenario"]
    if scripted in KIND:
        return KIND[scripted]
    return {truth["close_kind"]}


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[p.name.split(".")[0] for p in TRUTHS])
def test_states_kind_and_times_match_the_kernel(truth_path):
    truth = _truth(truth_path)
    report = analyze([str(SAMPLES / truth["capture"])])
    assert len(report.connections) >= len(truth["connections"])
    compared = 0
    for tc in truth["connections"]:
        ours = _match(report.connections, tc)
        port = tc["client"]["port"]
        assert ours.kind in _expected_kinds(truth, tc), (port, ours.kind)
        want = _kernel_initiator(tc)
        if want is not None:
            assert ours.initiator == want, (port, ours.initiator, want)
        for role in ("client", "server"):
            mine = ours.client_states if role == "client" else ours.server_states
            unshown = [s for s in mine if (truth["scenario"], port, role, s.state) in NOT_SHOWN]
            assert all(s.note.startswith("not shown:") for s in unshown), (port, role)
            mine = [s for s in mine if s not in unshown]
            side = tc["sides"][role]
            truth_tr = _collapse_instant_fin_wait2(side["transitions"], ours, role)
            assert [s.state for s in mine] == [t["to"] for t in truth_tr], (port, role)
            assert ours.client_final if role == "client" else ours.server_final
            for s, t in zip(mine, truth_tr):
                reason = UPPER_BOUNDS.get((truth["scenario"], port, role, s.state))
                lo, hi = t.get("window", (t["ts"], t["ts"]))
                if reason:
                    assert s.ts >= lo - TOLERANCE_S, (port, role, s.state, reason)
                    continue
                # a far-side transition is one one-way delay from the time shown
                slack = TOLERANCE_S + (ours.vantage["one_way_s"] if ours.vantage else 0)
                assert lo - slack <= s.ts <= hi + slack, (port, role, s.state, s.ts, t)
                compared += 1
    assert compared > 0


LAG_TOLERANCE_S = 0.003
CROSSED_FIN = "close() came before the peer's FIN arrived"
"""The note of a FIN_WAIT1 written where the FINs crossed: stamped with the CLOSING at the
peer's FIN, which the side's close() preceded by up to a round trip (states.py rule 2)."""


def lag_misses(truth: dict, tc: dict, ours: ConnectionResult) -> list[str]:
    """Where the capture point is near one side: a near side's transition is at the
    segment's time; a far side's is one one-way delay after the segment that caused it
    (RECV_*), or before the one its own call sent (SEND_*).  Each transition of ``ours``
    further than 3 ms (plus the width of the kernel's time window) from the kernel's
    ``tc`` so reckoned, described.  Upper bounds, inferred states and those not shown are
    left out, as is a FIN_WAIT1 stamped at the crossing peer's FIN (CROSSED_FIN).  Also
    used by tools/explore_kernel.py."""
    point = (ours.vantage or {}).get("point", "")
    if not point.startswith("near the "):
        return []
    port, out = tc["client"]["port"], []
    for role in ("client", "server"):
        near = point == f"near the {role}"
        mine = [s for s in (ours.client_states if role == "client" else ours.server_states)
                if (truth["scenario"], port, role, s.state) not in NOT_SHOWN
                and not s.note.startswith(NOT_SHOWN_NOTE)]
        truth_tr = _collapse_instant_fin_wait2(tc["sides"][role]["transitions"], ours, role)
        if [s.state for s in mine] != [t["to"] for t in truth_tr]:
            continue  # (told by the state comparison)
        for s, t in zip(mine, truth_tr):
            if (truth["scenario"], port, role, s.state) in UPPER_BOUNDS or s.inferred \
                    or s.note.startswith(CROSSED_FIN) or s.event in ("TIMER", None):
                continue
            # (a TIME_WAIT reused: by the client's own connect(), before its SYN shows up;
            # the server's when that SYN reaches it)
            sign = 1 if s.event.startswith("RECV") or s.event == "REUSED" and role == "server" \
                else -1  # (SEND_*)
            lag = 0 if near else sign * ours.vantage["one_way_s"]
            lo, hi = t.get("window", (t["ts"], t["ts"]))
            off = (lo + hi) / 2 - s.ts - lag
            if abs(off) > LAG_TOLERANCE_S + (hi - lo) / 2:
                out.append(f"{role} {s.state} ({s.event} at packet {s.packet}) "
                           f"{off * 1e3:+.2f} ms from the kernel's, lag reckoned")
    return out


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[p.name.split(".")[0] for p in TRUTHS])
def test_each_transition_lags_its_segment_as_the_vantage_says(truth_path):
    """Tighter than the test above (:func:`lag_misses`): which segment a transition is
    stamped at matters, not only the state: an RST taken at the wrong one of several
    (abort_past_lost_fin_client_side until 2026-12-03) fails here."""
    truth = _truth(truth_path)
    report = analyze([str(SAMPLES / truth["capture"])])
    for tc in truth["connections"]:
        assert lag_misses(truth, tc, _match(report.connections, tc)) == []


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[p.name.split(".")[0] for p in TRUTHS])
def test_final_state_at_capture_end(truth_path):
    for tc, ours in _pairs(truth_path):
        assert ours.client_final == tc["sides"]["client"]["final_state"]
        assert ours.server_final == tc["sides"]["server"]["final_state"]


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[p.name.split(".")[0] for p in TRUTHS])
def test_rsts_match_the_kernel(truth_path):
    """Every RST the kernel sent is one we report from that side, at the same time."""
    for tc, ours in _pairs(truth_path):
        for role in ("client", "server"):
            sent = sorted(r["ts"] for r in tc["sides"][role]["rst_sent"])
            mine = sorted(r["ts"] for r in ours.rsts if r["from"] == role)
            slack = TOLERANCE_S + (ours.vantage["rtt_s"] if ours.vantage else 0)
            if (truth_path.name.split(".")[0], role) in RSTS_UNRECORDED:
                # (more of ours than the kernel recorded: the listener's)
                assert len(mine) > len(sent)
                assert all(any(abs(a - b) < slack for a in mine) for b in sent)
                continue
            assert len(mine) == len(sent), (tc["client"]["port"], role, mine, sent)
            for a, b in zip(mine, sent):
                assert abs(a - b) < slack


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[p.name.split(".")[0] for p in TRUTHS])
def test_keepalive_timeouts_are_the_kernels(truth_path):
    """An RST we say the keepalive timer sent is one the kernel sent for that reason
    (TCP_KEEPALIVE_TIMEOUT), at the same time, and every such RST of the kernel's is one
    we say so of."""
    for tc, ours in _pairs(truth_path):
        slack = TOLERANCE_S + (ours.vantage["rtt_s"] if ours.vantage else 0)
        for role in ("client", "server"):
            kernel = [r["ts"] for r in tc["sides"][role]["rst_sent"]
                      if r.get("reason") == "TCP_KEEPALIVE_TIMEOUT"]
            mine = [r["ts"] for r in ours.rsts if r["from"] == role
                    and r["note"].startswith("RST after") and "keepalive" in r["note"]]
            assert len(mine) == len(kernel), (tc["client"]["port"], role)
            assert all(abs(a - b) < slack for a, b in zip(mine, kernel))


@pytest.mark.parametrize("side", ["client", "server"])
def test_keepalive_probes_are_counted_and_explain_the_rst(side):
    """sample_pcaps/keepalive_timeout_*: three probes from the client, unanswered (dropped
    after the capture points), then its RST+ACK, which the kernel's record names
    TCP_KEEPALIVE_TIMEOUT; keepalive_in_half_close_*: probes both ways, each answered,
    three from the client (FIN_WAIT2, numbered as its FIN) and four from the server
    (CLOSE_WAIT) in its capture, no RST.  By every path."""
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(SAMPLES / f"keepalive_timeout_{side}_side.pcap")],
                       options).connections
        (rst,) = c.rsts
        # (the probes 1.024 s apart, as the kernel's timer fires: the first 3.072 s before)
        assert rst["note"].startswith("RST after 3 keepalive probes unanswered for 3.07")
        assert "the keepalive timer gave up" in rst["note"]
        assert c.client_states[-1].note == rst["note"]
        assert (c.directions["client"]["keepalive_probes"],
                c.directions["server"]["keepalive_probes"]) == (3, 0)
        assert (c.kind, c.initiator, c.client_final, c.server_final) == ("rst", "client",
                                                                          "CLOSED", "CLOSED")
        (c,) = analyze([str(SAMPLES / f"keepalive_in_half_close_{side}_side.pcap")],
                       options).connections
        assert (c.directions["client"]["keepalive_probes"],
                c.directions["server"]["keepalive_probes"]) == (3, 4)
        assert (c.kind, c.anomalies, c.rsts) == ("half-open", (), ())


def _pcapread():
    """tools/pcapread.py, the sample generator's reader (none of the analysis's code)."""
    import sys
    sys.path.insert(0, str(SAMPLES.parent / "tools"))
    import pcapread
    return pcapread


def _zero_window_probes(path: pathlib.Path) -> dict[str, int]:
    """The zero-window probes in a capture, read here without the analysis: pure ACKs
    numbered one before the highest sequence number their side had sent, while the
    other side's last segment advertised a zero window (tcp_send_probe0)."""
    packets = _pcapread().tcp_packets(path)
    client = (packets[0].src, packets[0].sport)
    highest: dict[bool, int] = {}
    window: dict[bool, int] = {}
    probes = {"client": 0, "server": 0}
    for p in packets:
        mine = (p.src, p.sport) == client
        end = (p.seq + p.plen + p.syn + p.fin) % 2**32
        if p.flags == 0x10 and not p.plen and mine in highest \
                and p.seq == (highest[mine] - 1) % 2**32 and window.get(not mine) == 0:
            probes["client" if mine else "server"] += 1
        if mine not in highest or 0 < (end - highest[mine]) % 2**32 < 2**31:
            highest[mine] = end
        window[mine] = p.win
    return probes


def test_zero_window_probes_are_counted_apart_from_keepalives():
    """sample_pcaps/zero_window_in_half_close_server_side.pcap (with the kernel's record):
    in a half-close the client stops reading, its window closes, and the server, in
    CLOSE_WAIT with data left to send, probes it (Wireshark labels these "TCP
    Keep-Alive"): three, counted as zero-window probes, none as keepalive probes, and
    shown in the tables' details.  The server's close() came before its data had left
    (the kernel's record: LAST_ACK 2 s before the FIN), so its LAST_ACK, stamped at the
    FIN, says it is an upper bound.  By every path."""
    from teardown_analyzer.report import _details
    path = SAMPLES / "zero_window_in_half_close_server_side.pcap"
    assert _zero_window_probes(path) == {"client": 0, "server": 3}
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(path)], options).connections
        assert {role: c.directions[role]["window_probes"] for role in ("client", "server")} \
            == {"client": 0, "server": 3}
        assert c.directions["server"]["keepalive_probes"] == 0
        assert (c.kind, c.initiator, c.anomalies) == ("four-way", "client", ())
        assert c.half_close_bytes == 150_000  # (what the server sent meanwhile)
        assert "zero-window probes: server 3" in _details(c)
        last_ack = c.server_states[3]
        assert (last_ack.state, last_ack.packet) == ("LAST_ACK", 141)
        assert "zero window 3 times" in last_ack.note and "upper bound" in last_ack.note
        assert last_ack.inferred


def test_a_capture_that_ends_in_a_zero_window_says_a_close_would_not_show(tmp_path):
    """zero_window_in_half_close_server_side.pcap cut after its 98th record, the client's
    last zero-window ACK (an edited capture: the run's first 98 records), before its
    window opens: the server had close()d by then (the kernel's record: LAST_ACK 2 s
    before its FIN), but its FIN waits behind the data, so the capture shows CLOSE_WAIT to
    the end, and a note says a close() would not show.  Not on the whole capture, where
    the FIN came."""
    import pcapbuild as pb
    path = SAMPLES / "zero_window_in_half_close_server_side.pcap"
    linktype, records = pb.read_pcap(path)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(pb.pcap(records[:98], linktype=linktype))
    assert _zero_window_probes(cut) == {"client": 0, "server": 3}
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(cut)], options).connections
        assert (c.server_final, c.kind) == ("CLOSE_WAIT", "half-open")
        assert c.notes == ("at the end of the capture the server's data was still held back "
                           "by the client's zero window (3 zero-window probes): a close() or "
                           "shutdown() by then would not show, its FIN waiting behind the "
                           "data",)
        (whole,) = analyze([str(path)], options).connections
        assert not any("zero window" in n for n in whole.notes)


def _with_end(records, linktype: int, stop_ns: int | None) -> bytes:
    """Records as a pcapng file of one interface of nanoseconds, ended (if ``stop_ns``) by
    the interface statistics dumpcap writes when it stops: isb_endtime, in microseconds."""
    import pcapbuild as pb
    blocks = [pb.shb(), pb.idb(linktype, 65535, tsresol=9)]
    blocks += [pb.epb(0, r.ts_ns, r.data, r.orig_len) for r in records]
    if stop_ns is not None:
        blocks.append(pb.isb(0, endtime=stop_ns // 1000, ifrecv=len(records), ifdrop=0))
    return b"".join(blocks)


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_capture_runs_until_its_recorded_end(tmp_path, jobs):
    """sample_pcaps/four_way.pcap and the first 8 of its records (a half-close), written
    as pcapng (edited captures) with interface statistics that say the capture stopped
    61 s after the last packet: the client's TIME_WAIT timer ran out a second before that
    (CLOSED, inferred), and the half-close lasted at least until then (the packets of a
    capture's last second may be missing, capture.STOP_MARGIN_NS); without them the capture
    ends at its last packet.  By every path."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / "four_way.pcap")
    last = records[-1].ts_ns
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        for stop in (None, last + 61 * 10**9):
            path = tmp_path / "four_way.pcapng"
            path.write_bytes(_with_end(records, linktype, stop))
            report = analyze([str(path)], options, jobs)
            (c,) = report.connections
            assert report.captures[0].stopped_ts_ns == stop
            assert c.kind == "four-way" and c.time_wait["side"] == "client"
            if stop is None:
                assert c.client_final == "TIME_WAIT"
                assert c.time_wait["end"].startswith("capture ended 0.000 s into TIME_WAIT")
            else:
                assert c.client_final == "CLOSED" and c.client_states[-1].inferred
                assert c.client_states[-1].ts == pytest.approx(
                    c.time_wait["entered_ts"] + 60)
                assert c.time_wait["end"] == "inferred from the timer"
            path.write_bytes(_with_end(records[:8], linktype, stop))
            (c,) = analyze([str(path)], options, jobs).connections
            assert c.kind == "half-open" and c.directions["client"]["fin"]["packet"] == 8
            # (until a second before the capture stopped: capture.STOP_MARGIN_NS)
            assert c.half_close_s == pytest.approx(
                (stop - 10**9 - records[7].ts_ns if stop else 0) / 1e9)


def test_the_tables_say_when_the_capture_stopped(run_cli, monkeypatch):
    """Under the table, for each pcapng capture whose statistics say when it stopped: how
    long after its last packet, and that the analysis takes all but its last second as
    silence (sample_pcaps/lost_fin_then_capture_stops_*: 1.49 s, as dumpcap recorded it);
    a capture's name first when there are several; nothing for a pcap file."""
    monkeypatch.setenv("COLUMNS", "300")
    said = ("the capture stopped {} after its last packet (pcapng interface statistics); all "
            "but its last second taken as silence")
    client, server = (str(SAMPLES / f"lost_fin_then_capture_stops_{side}_side.pcapng")
                      for side in ("client", "server"))
    after = {}
    for path in (client, server):  # (read with the generator's reader: µs, as dumpcap wrote)
        cap = _pcapread().read_capture(path)
        after[path] = f"{cap.stopped[0] / 1e6 - cap.records[-1].ts_ns / 1e9:.3f} s"
    assert after[client] == "1.491 s"
    code, out, _ = run_cli(client)
    assert code == 0 and said.format(after[client]) in out.splitlines()
    code, out, _ = run_cli(client, server, str(SAMPLES / "four_way.pcap"), "--format",
                           "markdown")
    assert code == 0 and out.count("capture stopped") == 2
    assert all(f"{path}: {said.format(after[path])}" in out for path in (client, server))


def test_a_fin_sent_again_that_crosses_the_ack_does_not_show_it_lost():
    """sample_pcaps/fin_copies_cross_server_side.pcap (the kernel's record: the client goes
    FIN_WAIT1 -> TIME_WAIT at the server's FIN+ACK sent again, packet 10): the client's own
    FIN sent again (packet 11) comes 93 us after that copy on the server's capture, well
    within the round trip to the client plus a millisecond, so its retransmission timer may
    have fired before the copy arrived.  It shows the first FIN+ACK (packet 9) lost, not
    the copy: the client takes the copy whole.  On the client's capture its copy leaves
    first (packet 10), and the same holds.  By every path."""
    for side, copy in (("server", 10), ("client", 11)):
        for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
            (c,) = analyze([str(SAMPLES / f"fin_copies_cross_{side}_side.pcap")],
                           options).connections
            assert [(s.state, s.packet) for s in c.client_states[2:]] == \
                [("FIN_WAIT1", 8), ("TIME_WAIT", copy)], side
            assert (c.kind, c.initiator, c.server_final) == ("three-way", "client", "CLOSED")
        if side == "server":
            assert "packet 11: this side's FIN sent again (packet 11) crossed the peer's " \
                   "ACK of it in packet 10" in " ".join(c.notes)


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_fin_sent_again_that_crosses_its_only_ack_does_not_show_it_lost(side):
    """sample_pcaps/fin_probe_crosses_ack_{client,server}_side.pcap (the kernel's record:
    the client goes to FIN_WAIT2 at the server's delayed ACK of its FIN): the
    client's tail loss probe sends the FIN again before that ACK arrives.  On the server's
    interface the copy comes 11 ms after the ACK, within the round trip to the client: it
    may have left before the ACK arrived, so it does not show the ACK lost (no anomaly of
    it), and FIN_WAIT2 stays at the ACK, with a note; the server's answer to the copy is a
    duplicate.  (This was only done for a later ACK than the first.)"""
    from teardown_analyzer.flows import crossed_note
    ack, copy = (12, 13) if side == "server" else (13, 12)  # (on the client's: copy first)
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(SAMPLES / f"fin_probe_crosses_ack_{side}_side.pcap")],
                       options).connections
        fin_wait2 = c.client_states[-1]
        assert (fin_wait2.state, fin_wait2.packet) == ("FIN_WAIT2", ack)
        assert "ACK of a FIN lost after the capture point" not in c.anomalies
        assert c.directions["client"]["fin"]["acked_packet"] == ack
        assert [r["packet"] for r in c.directions["client"]["fin"]["retransmissions"]] == \
            [copy]
        crossed = [n for n in c.notes if "crossed the peer's ACK" in n]
        assert crossed == ([f"packet {copy}: {crossed_note(copy, ack)}"] if side == "server"
                           else [])


def test_a_fin_sent_again_long_after_the_ack_shows_it_lost(tmp_path):
    """fin_copies_cross_server_side.pcap with its last three records (the client's FIN sent
    again, the server's ACK of it, the client's ACK of the server's FIN) moved 5 ms later
    (an edited capture): the client's copy comes more than the round trip to it plus a
    millisecond after the server's FIN+ACK sent again, so the client had not taken that
    ACK when it sent it.  The copy's FIN it took (its ACK of it follows), the ACK of its own
    FIN only with the server's ACK after: FIN_WAIT1, CLOSING, TIME_WAIT."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / "fin_copies_cross_server_side.pcap")
    assert len(records) == 13
    moved = records[:10] + [pb.Rec(r.ts_ns + 5_000_000, r.data) for r in records[10:]]
    path = tmp_path / "moved.pcap"
    path.write_bytes(pb.pcap(moved, linktype=linktype))
    (c,) = analyze([str(path)]).connections
    assert [(s.state, s.packet) for s in c.client_states[2:]] == \
        [("FIN_WAIT1", 8), ("CLOSING", 10), ("TIME_WAIT", 12)]
    assert not any("crossed the peer's ACK" in n for n in c.notes)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_new_syn_on_a_4_tuple_still_open_is_challenged_and_the_rst_closes_it(jobs):
    """sample_pcaps/reuse_challenged_client_side.pcap, with the kernel's record: the server
    leaks a CLOSE_WAIT; the client connect()s again from the same port (tcp_tw_reuse
    takes over its FIN_WAIT2 mini-socket).  The old socket answers the SYN with a challenge
    ACK of its own numbers, and the client's SYN_SENT socket that with a bare RST at the old
    socket's rcv_nxt, which resets it.  #0: the client's FIN_WAIT2 ends at the new SYN (an
    upper bound), the server's CLOSE_WAIT at the RST; the challenge ACK and the RST are #0's
    segments, the RST listed with #1, whose socket sent it."""
    from teardown_analyzer.flows import CHALLENGE_ACK_NOTE, syn_sender_gone_note
    from teardown_analyzer.states import SideState
    path = str(SAMPLES / "reuse_challenged_client_side.pcap")
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        old, new = analyze([path], options, jobs=jobs).connections
        gone, reset = old.client_states[-1], old.server_states[-1]
        assert [s.state for s in old.client_states] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1",
                                                        "FIN_WAIT2", "CLOSED"]
        assert (gone.event, gone.packet, gone.inferred) == ("REUSED", 10, True)
        assert gone.note == syn_sender_gone_note(SideState.FIN_WAIT2)
        assert [s.state for s in old.server_states] == ["SYN_RECV", "ESTABLISHED",
                                                        "CLOSE_WAIT", "CLOSED"]
        assert (reset.event, reset.packet, reset.inferred) == ("RECV_RST", 12, False)
        assert (old.kind, old.initiator, old.rsts, old.anomalies) == \
            ("fin-then-rst", "client", (), ())
        (rst,) = new.rsts
        assert (rst["packet"], rst["from"], rst["bare"], rst["in_window"]) == \
            (12, "client", True, True)
        assert (new.incarnation, new.reused_from, new.kind, new.anomalies) == \
            (1, old.id, "three-way", ())
        assert new.notes[0] == "reuses the 4-tuple of the connection before it, whose " \
                               "server was still in CLOSE_WAIT"
        assert [s.packet for s in new.client_states[:2]] == [10, 14]
        if options.keep_ladder:
            notes = {st["packet"]: st["note"] for st in old.ladder}
            assert notes[11] == CHALLENGE_ACK_NOTE and notes[12].startswith("the new SYN's")
            assert [st["packet"] for st in new.ladder][:3] == [10, 13, 14]


@pytest.mark.parametrize("name, rst", [("reuse_challenged_client_side.pcap", 12),
                                       ("tw_assassinated.pcap", 2295)])
def test_an_old_incarnation_that_took_the_answers_to_a_new_syn_is_reported_once(tmp_path, name,
                                                                               rst):
    """The sample with every record after the RST that answers the old socket's ACK to a
    new SYN moved 2 s later (an edited capture): a sweep runs while the old incarnation,
    both sides CLOSED, has been quiet past the grace.  It had gone back among the closing
    connections when it took that ACK and RST; finished when the RST decided the reuse, it
    must not be finished again by the sweep (with a4961cf and before, the default path
    reported it twice).  The same connections as the capture as recorded."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / name)
    moved = records[:rst] + [pb.Rec(r.ts_ns + 2_000_000_000, r.data) for r in records[rst:]]
    path = tmp_path / "moved.pcap"
    path.write_bytes(pb.pcap(moved, linktype=linktype))
    recorded = [(c.id, c.kind, c.client_states, c.server_states)
                for c in analyze([str(SAMPLES / name)]).connections]
    for options in (Options(), Options(vectorised=False)):
        for jobs in (1, 2):
            found = analyze([str(path)], options, jobs=jobs).connections
            assert [(c.id, c.kind) for c in found] == [(i, k) for i, k, _, _ in recorded]
            old = found[0]
            assert (old.client_states, old.server_states) == recorded[0][2:]


def test_a_new_syn_answered_with_a_syn_ack_shows_the_old_socket_gone(tmp_path):
    """reuse_challenged_client_side.pcap without the challenge ACK, the RST and the SYN sent
    again (an edited capture): the new SYN is answered with a SYN-ACK, a listener's, so the
    server's socket, which we had in CLOSE_WAIT, was gone by then: CLOSED at the SYN, an
    upper bound.  The client's likewise, as in the real capture."""
    import pcapbuild as pb
    from teardown_analyzer.flows import challenger_gone_note
    from teardown_analyzer.states import SideState
    linktype, records = pb.read_pcap(SAMPLES / "reuse_challenged_client_side.pcap")
    assert len(records) == 22
    path = tmp_path / "answered.pcap"
    path.write_bytes(pb.pcap(records[:10] + records[13:], linktype=linktype))
    for options in (Options(), Options(vectorised=False)):
        old, new = analyze([str(path)], options).connections
        gone = old.server_states[-1]
        assert [s.state for s in old.server_states] == ["SYN_RECV", "ESTABLISHED",
                                                        "CLOSE_WAIT", "CLOSED"]
        assert (gone.event, gone.packet, gone.inferred) == ("REUSED", 10, True)
        assert gone.note == challenger_gone_note(SideState.CLOSE_WAIT)
        assert (old.client_states[-1].event, old.client_states[-1].packet) == ("REUSED", 10)
        assert (old.kind, old.rsts, new.rsts, new.kind) == ("half-open", (), (), "three-way")


@pytest.mark.parametrize("listing", [False, True], ids=["table", "listing"])
def test_the_tables_show_keepalive_probes_and_timeouts(run_cli, monkeypatch, listing):
    """The table (and --all's one line per connection) says how many keepalive probes each
    side sent, and that the keepalive timer sent the RST."""
    from teardown_analyzer import report
    monkeypatch.setenv("COLUMNS", "300")
    if listing:
        monkeypatch.setattr(report, "LIST_ABOVE", 0)
    code, out, _ = run_cli(*(str(SAMPLES / f"keepalive_{name}_client_side.pcap")
                             for name in ("in_half_close", "timeout")), "--all")
    assert code == 0
    assert "keepalive probes: client 3, server 4" in out
    assert "keepalive probes: client 3" in out.replace("client 3, server 4", "")
    assert out.count("keepalive timeout: the client's RST") == 1


@pytest.mark.parametrize("side", ["client", "server"])
def test_data_that_acked_a_fin_lost_before_the_fin_that_aborts(side):
    """sample_pcaps/lost_data_acking_fin_{client,server}_side.pcap, with the kernel's
    record: the server's byte that ACKs the client's FIN is lost into the client (FIN_WAIT1
    after close()), which would have aborted on it at once; its bare RST comes only after
    the server's FIN, past the byte: that FIN's ACK took it to FIN_WAIT2, and the FIN
    aborted it (CLOSED at the RST, not an upper bound).  By every path."""
    from teardown_analyzer.flows import ABORT_ON_FIN_NOTE
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(SAMPLES / f"lost_data_acking_fin_{side}_side.pcap")],
                       options).connections
        (rst,) = c.rsts
        fin = c.directions["server"]["fin"]
        fw2, closed = c.client_states[3:]
        assert (fw2.state, fw2.packet) == ("FIN_WAIT2", fin["packet"])
        assert (closed.state, closed.packet, closed.inferred) == ("CLOSED", rst["packet"], False)
        assert rst["note"].startswith(ABORT_ON_FIN_NOTE)
        assert c.directions["client"]["fin"]["acked_packet"] == fin["packet"]
        assert c.anomalies == ("data before a FIN lost after the capture point",)
        assert (c.kind, c.initiator) == ("fin-then-rst", "client")


@pytest.mark.parametrize("side", ["client", "server"])
def test_an_abort_on_data_that_crossed_the_peers_abort_closes_its_sender(side):
    """sample_pcaps/abort_on_data_crosses_abort_{client,server}_side.pcap, with the kernel's
    record: the client, in FIN_WAIT1 after close(), aborts on the server's data with a bare
    RST numbered as that data's ACK field; the server's RST+ACK crosses it.  On the
    server's interface the RST+ACK comes first, so the client's RST is numbered as the
    server's ACK field before its last (prev_ackno), from a side we had closed at the
    server's RST: the two crossed, and the client is CLOSED at its own RST.  Neither RST
    finds a socket: no "RST out of window"."""
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(SAMPLES / f"abort_on_data_crosses_abort_{side}_side.pcap")],
                       options).connections
        client_rst = next(r for r in c.rsts if r["from"] == "client")
        closed = c.client_states[-1]
        assert (closed.event, closed.packet) == ("SEND_RST", client_rst["packet"])
        assert c.server_states[-1].event == "SEND_RST"
        assert c.anomalies == ()
        assert (c.kind, c.initiator) == ("fin-then-rst", "client")


def test_upper_bound_list_is_live():
    """Every listed exception names a scenario that exists (a stale entry would hide nothing)."""
    names = {p.name.split(".")[0] for p in TRUTHS}
    assert {k[0] for k in UPPER_BOUNDS} | {k[0] for k in NOT_SHOWN} <= names
    assert {k[0] for k in RSTS_UNRECORDED} <= names


def _kernel_record(kernel: list[dict], probe: dict) -> dict[str, list]:
    """What the kernel recorded of ``probe`` (syn_shapes.record.json): the states the
    client's and the server's socket for it went through, and the reasons of the RSTs each
    port sent (NO_SOCKET: the reply path).  A listener's own events are not the server's
    socket for the connection; the client's first one has local port 0 (connect() had not
    picked it yet)."""
    cport, sport = probe["client_port"], probe["server_port"]
    states: dict[str, list] = {"client": [], "server": [], "client_rsts": [],
                               "server_rsts": []}
    for ev in kernel:
        (_, local), (_, remote) = ev["local"], ev["remote"]
        if ev["event"] == "inet_sock_set_state":
            if remote == sport and local in (cport, 0):
                states["client"].append((ev["new"], ev["ts"]))
            elif local == sport and remote == cport:
                states["server"].append((ev["new"], ev["ts"]))
        elif ev["event"] == "tcp_send_reset" and (local, remote) in ((cport, sport),
                                                                     (sport, cport)):
            states["client_rsts" if local == cport else "server_rsts"].append(ev["reason"])
    return states


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[p.name.split(".")[0] for p in TRUTHS])
def test_the_ladder_shows_each_side_as_its_transitions_have_it(truth_path):
    """Each ladder step shows each side in the state of its last transition stamped at or
    before that packet, also where later evidence rewrote them (a receipt taken back, or
    moved to a later copy: states after it are fed again in order)."""
    truth = _truth(truth_path)
    capture = str(SAMPLES / truth["capture"])
    for c in analyze([capture], Options(keep_ladder=True)).connections:
        for role, entries in (("client", c.client_states), ("server", c.server_states)):
            moves = [e for e in entries if e.packet]  # (not the TIME_WAIT timer's end)
            for step in c.ladder:
                before = [e for e in moves if e.packet <= step["packet"]]
                if before:
                    assert step["states"][role] == before[-1].state, (c.client, role, step)


def test_handshakes_that_end_early_match_the_kernels_record():
    """sample_pcaps/syn_shapes.pcap, with the kernel's record of it: a SYN refused, a SYN
    never answered, a SYN-ACK answered by a RST.  A side's state is claimed only on
    evidence that a socket of its own took part: no SYN_RECV for a server that answers
    with a RST from no socket, or never answers; no ESTABLISHED for a client whose kernel
    answers the SYN-ACK with a RST from no socket."""
    record = json.loads((SAMPLES / "syn_shapes.record.json").read_text())
    report = analyze([str(SAMPLES / record["capture"])])
    ours = {c.client[1]: c for c in report.connections}
    assert len(ours) == len(record["probes"]) == 3
    laddered = {lc.client: lc for lc in analyze([str(SAMPLES / record["capture"])],
                                                Options(keep_ladder=True)).connections}
    for probe in record["probes"]:
        c = ours[probe["client_port"]]
        k = _kernel_record(record["kernel"], probe)
        mine = ([s.state for s in c.client_states], [s.state for s in c.server_states])
        if probe["probe"] == "refused":
            assert [s for s, _ in k["client"]] == ["SYN_SENT", "CLOSED"]
            assert k["server"] == [] and k["server_rsts"] == ["NO_SOCKET"]
            assert mine == (["SYN_SENT", "CLOSED"], []) and c.server_final == "CLOSED"
            assert abs(c.client_states[-1].ts - k["client"][-1][1]) < TOLERANCE_S
            assert "connection refused" in c.rsts[0]["note"]
            assert "server: —" in listing_line(c)  # not an empty column
            # the ladder has no listener for it either, from the SYN on
            assert [step["states"]["server"] for step in laddered[c.client].ladder] \
                == ["CLOSED"] * 2
        elif probe["probe"] == "unanswered":
            assert [s for s, _ in k["client"]] == ["SYN_SENT", "CLOSED"]
            assert k["server"] == [] and k["server_rsts"] == []
            # connect() gave up silently (ETIMEDOUT) after the last SYN: nothing on the wire
            assert mine == (["SYN_SENT"], [])
            # nor does its ladder claim a listener: no state at any of the SYNs (the
            # first, and each retransmission the kernel recorded)
            resent = [ev for ev in record["kernel"] if ev["event"] == "tcp_retransmit_skb"
                      and ev["local"][1] == probe["client_port"]]
            steps = laddered[c.client].ladder
            assert [step["flags"] for step in steps] == [["SYN"]] * (1 + len(resent)) == \
                [["SYN"]] * 6
            assert [step["states"] for step in steps] == \
                [{"client": "SYN_SENT", "server": None}] * len(steps)
            shown = io.StringIO()
            Console(file=shown, width=160).print(ladder(laddered[c.client]))
            assert "LISTEN" not in shown.getvalue()
            assert len(re.findall(r"SYN_SENT +— *\n", shown.getvalue())) == len(steps)
        else:
            assert probe["probe"] == "aborted"
            assert k["client"] == [] and k["client_rsts"] == ["NO_SOCKET"]
            # the capture cannot tell a socket closed in SYN_SENT from none (a raw SYN):
            # the SYN shows a SYN_SENT, its CLOSED is an upper bound; never ESTABLISHED
            assert mine == (["SYN_SENT", "CLOSED"], ["SYN_RECV", "CLOSED"])
            assert c.client_states[-1].inferred and "no socket" in c.client_states[-1].note


def test_a_socket_gone_after_the_handshake_matches_the_kernels_record():
    """sample_pcaps/socket_gone.pcap, with the kernel's record of it: a client connects and
    sends nothing; its socket is closed with its RST dropped before the capture point (as
    when its host restarts); the server's data then finds no socket, and the client's
    kernel answers with a bare RST numbered as the client's ISN + 1, as a SYN_SENT socket
    that never took the SYN-ACK would.  The client's ACK of the SYN-ACK shows it took it:
    ESTABLISHED, then a CLOSED the bare RST bounds from above (marked inferred: the
    kernel's is earlier), not the SYN_SENT -> CLOSED of a socket that never took it."""
    record = json.loads((SAMPLES / "socket_gone.record.json").read_text())
    (probe,) = record["probes"]
    assert probe["outcome"] == "ECONNRESET"
    k = _kernel_record(record["kernel"], probe)
    assert [s for s, _ in k["client"]] == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
    assert [s for s, _ in k["server"]] == ["SYN_RECV", "ESTABLISHED", "CLOSED"]
    # the socket's own RST (dropped before the capture), then the reply path's
    assert k["client_rsts"] == ["TCP_STATE", "NO_SOCKET"] and k["server_rsts"] == []
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(SAMPLES / record["capture"])], options).connections
        assert [s.state for s in c.client_states] == [s for s, _ in k["client"]]
        assert [s.state for s in c.server_states] == [s for s, _ in k["server"]]
        for mine, (_, ts) in [*zip(c.client_states[:2], k["client"]),
                              *zip(c.server_states, k["server"])]:
            assert abs(mine.ts - ts) < TOLERANCE_S
        closed = c.client_states[-1]
        assert closed.inferred and closed.ts > k["client"][-1][1] + 0.1
        assert "bare RST from ESTABLISHED" in closed.note and "reply path" in closed.note
        assert (c.kind, c.initiator, c.packets) == ("rst", "client", 5)
        assert [(r["from"], r["bare"], r["in_window"]) for r in c.rsts] == \
            [("client", True, True)]
        assert not c.anomalies and len(c.notes) == 1 and "no socket took it" not in c.notes[0]


def test_a_bare_rst_from_close_wait_is_from_a_socket_gone(tmp_path):
    """The same capture edited (not a real one): the server's data carries its FIN, so the
    client is in CLOSE_WAIT when its kernel resets it with a bare RST.  A socket in
    CLOSE_WAIT would reset with RST+ACK: its CLOSED too is an upper bound."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / "socket_gone.pcap")
    src, dst, seg = pb.split_ipv4(records[3].data[14:])
    assert seg[13] == 0x18  # PSH, ACK: the server's data
    seg = pb.retarget_tcp(seg[:13] + bytes([0x19]) + seg[14:], src, dst)
    records[3] = pb.Rec(records[3].ts_ns, pb.ethernet(pb.ipv4(seg, src, dst)))
    path = tmp_path / "close_wait_gone.pcap"
    path.write_bytes(pb.pcap(records, linktype=linktype))
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(path)], options).connections
        assert [s.state for s in c.client_states] == ["SYN_SENT", "ESTABLISHED",
                                                      "CLOSE_WAIT", "CLOSED"]
        assert [s.state for s in c.server_states] == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1",
                                                      "CLOSED"]
        assert c.client_states[-1].inferred
        assert "bare RST from CLOSE_WAIT" in c.client_states[-1].note
        assert (c.kind, c.initiator) == ("fin-then-rst", "server")


@pytest.mark.parametrize("side", ["client", "server"])
def test_the_keep_alive_race_rst_numbered_as_the_fin_is_accepted(side):
    """sample_pcaps/close_race_{client,server}_side.pcap, one run of tools/gen_samples.py
    close_race with the kernel's record: the client's second request crosses the server's
    FIN; the server, in FIN_WAIT1 after close(), aborts on it and resets from the reply
    path with a bare RST numbered as the request's ACK field, the FIN's own number.  The
    client, in CLOSE_WAIT by then, takes it (tcp_reset_check: rcv_nxt - 1).  A FIN then an
    RST, both sides CLOSED at it; not a half-open close with an RST out of window (the
    states and times against the kernel's: the tests above)."""
    from teardown_analyzer.flows import DATA_AFTER_CLOSE_NOTE
    truth = _truth(SAMPLES / f"close_race_{side}_side.truth.json")
    (tc,) = truth["connections"]
    assert [r["reason"] for r in tc["sides"]["server"]["rst_sent"]] == ["TCP_ABORT_ON_DATA"]
    assert [t["to"] for t in tc["sides"]["client"]["transitions"]][-2:] == ["CLOSE_WAIT",
                                                                              "CLOSED"]
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(SAMPLES / truth["capture"])], options).connections
        (rst,) = c.rsts
        assert (rst["from"], rst["bare"], rst["in_window"]) == ("server", True, True)
        assert rst["note"] == DATA_AFTER_CLOSE_NOTE == c.server_states[-1].note
        assert not c.server_states[-1].inferred and not c.anomalies
        assert (c.kind, c.initiator) == ("fin-then-rst", "server")
        assert [s.event for s in c.client_states[-2:]] == ["RECV_FIN", "RECV_RST"]


@pytest.mark.parametrize("capture, late_ms, shown", [
    ("close_race_client_side", None, False),
    ("close_race_server_side", None, False),
    ("close_race_client_side", 400, True),  # edited, not a real capture
    ("ack_crosses_abort_client_side", None, True),
    ("ack_crosses_abort_server_side", None, True),
])
def test_a_close_wait_reset_before_its_delayed_ack_is_not_shown(tmp_path, capture, late_ms,
                                                                shown):
    """A side that takes a FIN in ESTABLISHED delays its ACK (tcp_fin enters pingpong
    mode; up to TCP_DELACK_MAX, 200 ms): reset before that ACK was due, nothing on the wire
    shows that the FIN reached it, and the same capture arises when the FIN is lost after
    the capture point (fin_lost_before_delayed_ack_*, NOT_SHOWN above: the kernel kept that
    side in ESTABLISHED until the RST).  close_race's client is such a side (its RST came 8.1 ms
    after the FIN): CLOSE_WAIT stands, marked not shown.  With the RST moved 400 ms after
    the FIN (beyond the longest delayed ACK and the round trip) the missing ACK is
    evidence, and in ack_crosses_abort the server did ACK the FIN: no such note."""
    path = SAMPLES / f"{capture}.pcap"
    if late_ms is not None:
        import pcapbuild as pb
        linktype, records = pb.read_pcap(path)
        assert pb.split_ipv4(records[-1].data[14:])[2][13] == 0x04  # the server's RST
        assert pb.split_ipv4(records[-2].data[14:])[2][13] == 0x11  # after its FIN
        records[-1] = pb.Rec(records[-2].ts_ns + late_ms * 1_000_000, records[-1].data)
        path = tmp_path / f"{capture}_rst_{late_ms}ms_late.pcap"
        path.write_bytes(pb.pcap(records, linktype=linktype))
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(path)], options).connections
        side = c.client_states if capture.startswith("close_race") else c.server_states
        fin, rst = side[-2:]
        assert (fin.state, fin.event, rst.state, rst.event) == \
            ("CLOSE_WAIT", "RECV_FIN", "CLOSED", "RECV_RST")
        if shown:
            assert "not shown" not in fin.note
        else:
            assert fin.note.startswith(f"not shown: the RST (packet {rst.packet}) came 8.1 ms "
                                       f"after the FIN, before this side ACKed it")


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_a_state_not_shown_is_marked_in_the_tables(run_cli, monkeypatch, fmt):
    """The tables mark a state noted "not shown:" with ``?`` and say what it means, as
    they mark an inferred one with ``*``; without one, no such legend."""
    legend = "? not shown: no segment tells whether the side went through this state"
    monkeypatch.setenv("COLUMNS", "300")
    code, out, _ = run_cli(str(SAMPLES / "close_race_client_side.pcap"), "--format", fmt)
    assert code == 0 and "ESTABLISHED → CLOSE_WAIT? → CLOSED" in out and legend in out
    code, out, _ = run_cli(str(SAMPLES / "ack_crosses_abort_client_side.pcap"), "--format",
                           fmt)
    assert code == 0 and "?" not in out and "CLOSE_WAIT → CLOSED" in out


@pytest.mark.parametrize("fmt", ["table", "markdown", "listing"])
def test_the_legend_says_what_each_star_shown_means(run_cli, monkeypatch, fmt):
    """``*`` marks a state inferred from a timer or a silent expiry, and a close stamped at
    a FIN that waited behind a zero window (an upper bound): the legend says the meaning
    of each mark the table shows, and only those (the table, markdown and --all's one
    line per connection alike)."""
    from teardown_analyzer import report
    monkeypatch.setenv("COLUMNS", "300")
    if fmt == "listing":
        monkeypatch.setattr(report, "LIST_ABOVE", 0)
    args = ["--all"] + (["--format", fmt] if fmt == "markdown" else [])
    timer, held = "inferred (a timer, or a silent", "a latest time: the FIN waited behind"

    def legend(*names: str) -> list[str]:
        code, out, _ = run_cli(*(str(SAMPLES / f"{n}.pcap") for n in names), *args)
        assert code == 0
        return [line for line in out.splitlines() if line.lstrip("\\").startswith("* ")]

    (line,) = legend("fin_wait2_timeout")
    assert timer in line and held not in line
    (line,) = legend("zero_window_in_half_close_server_side")
    assert held in line and timer not in line
    (line,) = legend("fin_wait2_timeout", "zero_window_in_half_close_server_side")
    assert timer in line and f"; or, {held}" in line
    assert legend("close_race_client_side") == []


@pytest.mark.parametrize("side", ["client", "server"])
def test_the_reply_paths_rsts_after_the_first_reach_a_closed_side(side):
    """sample_pcaps/close_race_fin_lost_{client,server}_side.pcap, with the kernel's record:
    the server, in FIN_WAIT1 after close(), answers each of the client's three segments
    with a bare RST at the same number.  The first closes the client; the other two find
    no socket: not taken, and not an anomaly (not "out of window").  On the server's
    interface the client's second and third segments crossed the first RST: the client's
    CLOSED is stamped at the last, and its note names the RST that closed it, not the
    segment where an earlier crossing had stamped it.  The client's CLOSE_WAIT (its FIN
    was lost) is marked not shown."""
    from teardown_analyzer.flows import DATA_AFTER_CLOSE_NOTE, TO_CLOSED_NOTE
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(SAMPLES / f"close_race_fin_lost_{side}_side.pcap")],
                       options).connections
        first, *repeats = c.rsts
        assert (first["from"], first["in_window"], first["note"]) == \
            ("server", True, DATA_AFTER_CLOSE_NOTE)
        assert [(r["from"], r["in_window"], r["note"]) for r in repeats] == \
            [("server", False, TO_CLOSED_NOTE)] * 2
        assert (c.kind, c.initiator, c.anomalies) == ("fin-then-rst", "server", ())
        assert c.client_states[-2].note.startswith(f"not shown: the RST (packet "
                                                   f"{first['packet']}) came 18.5 ms after")
        closed = c.client_states[-1]
        assert (closed.state, closed.event) == ("CLOSED", "RECV_RST")
        if side == "server":
            assert closed.inferred and closed.packet == repeats[-1]["packet"] - 1
            assert closed.note.startswith(f"the peer's RST (packet {first['packet']}) crossed")
        else:
            assert not closed.inferred and closed.packet == first["packet"]


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_pure_ack_long_after_an_rst_shows_it_lost(side):
    """sample_pcaps/rst_lost_before_delayed_ack_{client,server}_side.pcap, with the
    kernel's record: the client's RST (packet 10) is lost on its way into the server,
    which, in CLOSE_WAIT, sends its delayed ACK of the FIN more than a round trip later.
    A pure ACK comes from a socket too (the reply path sends only RSTs): the server never
    took that RST, and the client's RST answering the ACK closes it."""
    (c,) = analyze([str(SAMPLES / f"rst_lost_before_delayed_ack_{side}_side.pcap")]).connections
    assert [(s.state, s.packet) for s in c.server_states[2:]] == [
        ("CLOSE_WAIT", 9 if side == "server" else 8), ("CLOSED", 12)]
    assert "RST lost after the capture point" in c.anomalies
    assert "packet 11: the ACK shows this side never took the peer's RST (packet 10)" \
        in " ".join(c.notes)


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_bare_rst_answering_data_after_close_crosses_the_peers_abort(side):
    """sample_pcaps/abort_crosses_abort_on_data_{client,server}_side.pcap, with the
    kernel's record: the client's data ACKs the server's FIN; the server, after close(),
    takes the ACK (FIN_WAIT2) and aborts on the data, its reply path answering with bare
    RSTs numbered as the data's ACK field.  The client's own RST+ACK, which the client-side
    capture sees first, crossed them: the server was gone when it came.  Its first bare RST
    within a round trip of that RST+ACK is its own abort, not a reply from no socket."""
    (c,) = analyze([str(SAMPLES / f"abort_crosses_abort_on_data_{side}_side.pcap")]).connections
    server_rsts = [r["packet"] for r in c.rsts if r["from"] == "server"]
    closed = c.server_states[-1]
    assert [s.state for s in c.server_states[2:]] == ["FIN_WAIT1", "FIN_WAIT2", "CLOSED"]
    assert (closed.event, closed.packet) == ("SEND_RST", server_rsts[0])
    assert any("a bare RST answering the peer's data after close() from a side we had "
               "closed at the peer's RST: the two RSTs crossed" in n for n in c.notes) \
        == (side == "client")  # (on the server's interface its RSTs come first)


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_bare_rst_answering_the_last_ack_is_from_a_socket_gone(side):
    """sample_pcaps/last_ack_gone_{client,server}_side.pcap, with the kernel's record: the
    server, in LAST_ACK, close()s with SO_LINGER 0, which sends nothing from there; the
    client's ACK of its FIN finds no socket, and the reply path's bare RST answers it.  A
    LAST_ACK socket takes that ACK silently: the RST shows the server gone before it, so
    its CLOSED is the RST's, an upper bound, and the client's TIME_WAIT ends at the RST."""
    from teardown_analyzer.flows import LAST_ACK_GONE_NOTE
    (c,) = analyze([str(SAMPLES / f"last_ack_gone_{side}_side.pcap")]).connections
    (rst,) = c.rsts
    gone = c.server_states[-1]
    assert [s.state for s in c.server_states[2:]] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert (gone.event, gone.packet, gone.inferred, gone.note) == \
        ("SEND_RST", rst["packet"], True, LAST_ACK_GONE_NOTE)
    assert (c.client_states[-1].event, c.client_states[-1].packet) == ("RECV_RST", rst["packet"])
    assert (c.kind, c.initiator) == ("fin-then-rst", "client")


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_bare_rst_from_last_ack_is_from_a_socket_gone(side):
    """sample_pcaps/abort_in_last_ack_{client,server}_side.pcap, with the kernel's record:
    the server, in LAST_ACK, close()s with SO_LINGER 0, which sends nothing from there, and
    its FIN is lost into the client; the client's FIN sent again finds no socket, and the
    reply path's bare RST answers it (a LAST_ACK socket would have ACKed it).  The server's
    CLOSED is the RST's, an upper bound (the kernel's came about 200 ms before), said so;
    the client's is the RST's."""
    from teardown_analyzer.flows import gone_note
    from teardown_analyzer.states import SideState
    truth = _truth(SAMPLES / f"abort_in_last_ack_{side}_side.truth.json")
    kernel = [t for t in truth["connections"][0]["sides"]["server"]["transitions"]
              if t["to"] == "CLOSED"][0]["ts"]
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(SAMPLES / f"abort_in_last_ack_{side}_side.pcap")],
                       options).connections
        (rst,) = c.rsts
        gone = c.server_states[-1]
        assert [s.state for s in c.server_states[2:]] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]
        assert (gone.event, gone.packet, gone.inferred) == ("SEND_RST", rst["packet"], True)
        assert gone.note == rst["note"] == gone_note(SideState.LAST_ACK)
        assert f"packet {rst['packet']}: {gone.note}" in c.notes
        assert gone.ts - kernel > 0.15 and rst["bare"]
        assert (c.client_states[-1].event, c.client_states[-1].packet) == \
            ("RECV_RST", rst["packet"])
        assert (c.kind, c.initiator) == ("fin-then-rst", "client")


def test_an_abort_whose_rst_leaves_after_the_reply_paths_answer_to_the_fin():
    """sample_pcaps/abort_races_fin_client_side.pcap, with the kernel's record: the
    client's abort takes its socket out of the lookup table as the server's FIN arrives;
    the FIN finds no socket, and the reply path's bare RST answering it leaves before the
    socket's own RST+ACK, whose ACK field (rcv_nxt) leaves the FIN out.  So the client
    never was in CLOSE_WAIT: ESTABLISHED to CLOSED at the bare RST, an upper bound (the
    kernel's came 26 us before), said so in the notes, the RST's and the ladder's."""
    from teardown_analyzer.flows import TO_CLOSED_NOTE, reset_before_fin_note
    truth = _truth(SAMPLES / "abort_races_fin_client_side.truth.json")
    kernel = [t for t in truth["connections"][0]["sides"]["client"]["transitions"]
              if t["to"] == "CLOSED"][0]["ts"]
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(SAMPLES / "abort_races_fin_client_side.pcap")],
                       options).connections
        bare, own = c.rsts
        closed = c.client_states[-1]
        assert [s.state for s in c.client_states] == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
        assert (closed.old, closed.event, closed.packet, closed.inferred) == \
            ("ESTABLISHED", "SEND_RST", bare["packet"], True)
        note = reset_before_fin_note(own["packet"])
        assert closed.note == bare["note"] == note and bare["bare"] and not own["bare"]
        assert c.notes == (f"packet {bare['packet']}: {note}",)
        assert 0 <= closed.ts - kernel < 0.0001
        assert [s.state for s in c.server_states[2:]] == ["FIN_WAIT1", "CLOSED"]
        assert c.server_states[-1].packet == bare["packet"] and bare["in_window"]
        assert own["note"] == TO_CLOSED_NOTE and not own["in_window"]
        if options.keep_ladder:
            step = [s for s in c.ladder if s["packet"] == bare["packet"]][0]
            assert step["note"] == note and step["states"]["client"] == "CLOSED"
            fin = [s for s in c.ladder if s["packet"] == bare["packet"] - 1][0]
            assert fin["states"]["client"] == "ESTABLISHED"


def test_a_reset_before_an_ack_due_at_once_leaves_the_fin_receipt_not_shown():
    """sample_pcaps/reset_soon_after_lost_fin_server_side.pcap, with the kernel's record:
    the client's FIN, lost after the capture point, reaches the server's interface in
    FIN_WAIT1, and 0.7 ms later the client's bare RST closes the server, before its ACK of
    the FIN (sent at once, tcp_fin) was due there (0.02 ms and a millisecond).  The kernel
    never had the FIN; in CLOSING it would have taken that RST too, one short of rcv_nxt.
    So CLOSING stands at the FIN, marked not shown, with the other reading; the RST of
    reset_after_lost_fin, 6 ms after the FIN, shows the FIN lost instead (no CLOSING)."""
    truth = _truth(SAMPLES / "reset_soon_after_lost_fin_server_side.truth.json")
    kernel = [t["to"] for t in truth["connections"][0]["sides"]["server"]["transitions"]]
    assert kernel == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(SAMPLES / "reset_soon_after_lost_fin_server_side.pcap")],
                       options).connections
        (rst, _again) = c.rsts
        closing, closed = c.server_states[-2:]
        assert [s.state for s in c.server_states] == kernel[:3] + ["CLOSING", "CLOSED"]
        assert (closing.event, closing.packet, closed.packet) == \
            ("RECV_FIN", rst["packet"] - 1, rst["packet"])
        assert closing.note == (
            f"{NOT_SHOWN_NOTE} the RST (packet {rst['packet']}) came 0.7 ms after the FIN, "
            f"before this side ACKed it; a side in FIN_WAIT1 ACKs a FIN at once (tcp_fin), "
            f"and that ACK was not yet due here (the round trip to it is 0.02 ms, and a "
            f"millisecond more), so the FIN may as well have been lost after the capture "
            f"point (then FIN_WAIT1 until the RST)")
        assert (c.kind, c.initiator) == ("fin-then-rst", "client")
    (c,) = analyze([str(SAMPLES / "reset_after_lost_fin_server_side.pcap")]).connections
    assert [s.state for s in c.server_states][-2:] == ["FIN_WAIT1", "CLOSED"]


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_bare_rst_answering_data_with_data_in_flight_may_follow_a_queued_fin(side):
    """sample_pcaps/queued_fin_aborts_on_data_{client,server}_side.pcap, with the kernel's
    record: the server close()s with most of 150 kB unsent, so its FIN waits behind it
    (FIN_WAIT1, nothing on the wire), and the client's data then aborts it; the reply
    path's bare RST answers that data while the server's own is unacknowledged.  So
    FIN_WAIT1 is not shown (``?``): stamped at the RST, the other reading (a socket gone)
    in both notes; CLOSED at that first RST, though the client takes only a later one.
    sample_pcaps/socket_gone.pcap (the client's socket gone, the kernel's record): its
    bare RST answers the server's data with nothing of its own in flight, where close()
    would have sent its FIN at once: gone, no FIN_WAIT1."""
    from teardown_analyzer.flows import ABORT_BEHIND_DATA_NOTE, QUEUED_FIN_NOTE, gone_note
    from teardown_analyzer.states import SideState
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(SAMPLES / f"queued_fin_aborts_on_data_{side}_side.pcap")],
                       options).connections
        first, *later = c.rsts
        fin_wait1, closed = c.server_states[-2:]
        assert [(s.state, s.packet, s.inferred) for s in (fin_wait1, closed)] == \
            [("FIN_WAIT1", first["packet"], False), ("CLOSED", first["packet"], True)]
        assert fin_wait1.note == QUEUED_FIN_NOTE and fin_wait1.note.startswith("not shown:")
        assert closed.note == first["note"] == \
            f"{gone_note(SideState.ESTABLISHED)}. {ABORT_BEHIND_DATA_NOTE}"
        assert first["bare"] and not first["in_window"] and later
        assert c.client_states[-1].packet == later[-1]["packet"]
        assert (c.kind, c.initiator) == ("rst", "server")
        (gone,) = analyze([str(SAMPLES / "socket_gone.pcap")], options).connections
        assert [s.state for s in gone.client_states] == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
        assert gone.client_states[-1].note == gone_note(SideState.ESTABLISHED)


@pytest.mark.parametrize("side", ["client", "server"])
def test_an_abort_numbered_short_of_the_fin_closes_its_sender(side):
    """sample_pcaps/abort_short_of_fin_{client,server}_side.pcap, with the kernel's record:
    the server, in FIN_WAIT1 after close(), aborts on the client's byte with a bare RST
    numbered as that byte's ACK field, short of the server's own byte and FIN.  The client
    ignores it (out of window), but it is the server's abort, which closed it there.  On
    the client's capture the client's ACK of the server's byte comes between: the RST is
    numbered as the ACK field of the client's segment before its last (prev_ackno)."""
    from teardown_analyzer.flows import DATA_AFTER_CLOSE_NOTE, IGNORED_NOTE
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(SAMPLES / f"abort_short_of_fin_{side}_side.pcap")],
                       options).connections
        first, second = c.rsts
        assert (first["in_window"], first["note"]) == (False,
                                                       DATA_AFTER_CLOSE_NOTE + IGNORED_NOTE)
        assert (c.server_states[-1].event, c.server_states[-1].packet) == ("SEND_RST",
                                                                           first["packet"])
        assert (c.client_states[-1].event, c.client_states[-1].packet) == ("RECV_RST",
                                                                           second["packet"])


def test_an_rst_numbered_as_the_fin_does_not_end_time_wait(tmp_path):
    """sample_pcaps/four_way.pcap edited (not a real capture): after the close, a bare RST
    from the server numbered as its FIN.  The client's TIME_WAIT takes an RST only at
    rcv_nxt, the number after the FIN (tcp_timewait_state_process); rcv_nxt - 1 is accepted
    only in CLOSE_WAIT, LAST_ACK and CLOSING (tcp_reset_check).  Out of window: the client
    stays in TIME_WAIT."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / "four_way.pcap")
    src, dst, fin = pb.split_ipv4(records[-2].data[14:])
    assert fin[13] == 0x11 and dst == bytes([198, 18, 0, 1])  # the server's FIN, ACK
    rst = pb.retarget_tcp(fin[:8] + bytes(4) + fin[12:13] + b"\x04" + bytes(2) + fin[16:],
                          src, dst)
    records.append(pb.Rec(records[-1].ts_ns + 10_000_000, pb.ethernet(pb.ipv4(rst, src, dst))))
    path = tmp_path / "four_way_then_rst_at_fin.pcap"
    path.write_bytes(pb.pcap(records, linktype=linktype))
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(path)], options).connections
        assert [(r["from"], r["bare"], r["in_window"]) for r in c.rsts] == \
            [("server", True, False)]
        assert c.anomalies == ("RST out of window",)
        assert (c.kind, c.client_final, c.server_final) == ("four-way", "TIME_WAIT", "CLOSED")


def test_an_rst_numbered_before_the_fin_is_out_of_window(tmp_path):
    """close_race_client_side.pcap edited (not a real capture): the server's RST numbered
    one before its FIN, which no state of the client takes (rcv_nxt - 2 in CLOSE_WAIT).
    Out of window, and not said to be the abort on data after close()."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / "close_race_client_side.pcap")
    src, dst, rst = pb.split_ipv4(records[-1].data[14:])
    assert rst[13] == 0x04  # the server's bare RST
    seq = (int.from_bytes(rst[4:8], "big") - 1) % (1 << 32)
    rst = pb.retarget_tcp(rst[:4] + seq.to_bytes(4, "big") + rst[8:], src, dst)
    records[-1] = pb.Rec(records[-1].ts_ns, pb.ethernet(pb.ipv4(rst, src, dst)))
    path = tmp_path / "close_race_rst_before_fin.pcap"
    path.write_bytes(pb.pcap(records, linktype=linktype))
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(path)], options).connections
        (rst_seen,) = c.rsts
        assert not rst_seen["in_window"] and rst_seen["note"].startswith("RST out of window")
        assert (c.kind, c.client_final, c.server_final) == ("half-open", "CLOSE_WAIT",
                                                            "FIN_WAIT1")


def _close_race_edited(tmp_path, edit: str) -> pathlib.Path:
    """close_race_client_side.pcap edited (not a real capture): ``rst+ack``, the server's
    RST given the ACK flag (as an RST the socket sends itself, tcp_send_active_reset);
    ``client fin``, a FIN+ACK from the client 1 ms after the server's FIN, acknowledging
    it, so that the RST reaches the client in LAST_ACK."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / "close_race_client_side.pcap")
    src, dst, rst = pb.split_ipv4(records[-1].data[14:])
    c_src, c_dst, request = pb.split_ipv4(records[-3].data[14:])
    fin = pb.split_ipv4(records[-2].data[14:])[2]
    assert (rst[13], request[13], fin[13]) == (0x04, 0x18, 0x11)
    if edit == "rst+ack":
        rst = pb.retarget_tcp(rst[:8] + fin[8:12] + rst[12:13] + b"\x14" + rst[14:], src, dst)
        records[-1] = pb.Rec(records[-1].ts_ns, pb.ethernet(pb.ipv4(rst, src, dst)))
    else:
        seq = (int.from_bytes(request[4:8], "big") + 64) % (1 << 32)
        ack = (int.from_bytes(fin[4:8], "big") + 1) % (1 << 32)
        hl = (request[12] >> 4) * 4
        own = pb.retarget_tcp(request[:4] + seq.to_bytes(4, "big") + ack.to_bytes(4, "big")
                              + request[12:13] + b"\x11" + request[14:hl], c_src, c_dst)
        records.insert(-1, pb.Rec(records[-2].ts_ns + 1_000_000,
                                  pb.ethernet(pb.ipv4(own, c_src, c_dst))))
    path = tmp_path / f"close_race_{edit.replace(' ', '_')}.pcap"
    path.write_bytes(pb.pcap(records, linktype=linktype))
    return path


def test_an_rst_with_ack_from_fin_wait1_is_not_said_to_answer_data(tmp_path):
    """An RST+ACK comes from the socket itself, not from the reply path: taken at the
    FIN's number all the same, without the note on data after close()."""
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(_close_race_edited(tmp_path, "rst+ack"))], options).connections
        assert [(r["bare"], r["in_window"], r["note"]) for r in c.rsts] == [(False, True, "")]
        assert (c.kind, c.client_final, c.server_final) == ("fin-then-rst", "CLOSED",
                                                            "CLOSED")


def test_an_rst_numbered_as_the_fin_is_taken_in_last_ack(tmp_path):
    """tcp_reset_check takes rcv_nxt - 1 in LAST_ACK too: the client, which closed after
    the server's FIN, goes from LAST_ACK to CLOSED at the server's RST."""
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(_close_race_edited(tmp_path, "client fin"))], options).connections
        assert [(r["from"], r["bare"], r["in_window"]) for r in c.rsts] == \
            [("server", True, True)]
        assert [s.state for s in c.client_states[-3:]] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]
        assert c.client_states[-1].event == "RECV_RST"


def test_a_socket_connected_to_itself_matches_the_kernels_record():
    """sample_pcaps/self_connect.pcap, with the kernel's record of it: a socket bound to
    127.0.0.1:46000 connects to that same address and port, echoes data to itself and
    closes.  One socket, which receives every segment it sends: its SYN comes back to it
    in SYN_SENT (a simultaneous open with itself), its FIN in FIN_WAIT1 (CLOSING), the ACK
    of that FIN ends it in TIME_WAIT.  Those are the client's states, each within the
    tolerance of the kernel's time for it; the server side has no socket of its own."""
    record = json.loads((SAMPLES / "self_connect.record.json").read_text())
    (probe,) = record["probes"]
    kernel = [(ev["new"], ev["ts"]) for ev in record["kernel"]
              if ev["event"] == "inet_sock_set_state" and ev["local"][1] == 46000]
    # the state tracepoint reports the full socket CLOSED as a TIME_WAIT mini-socket takes
    # its place (tcp_time_wait -> tcp_done); ss, after close(), saw that TIME_WAIT socket
    assert [s for s, _ in kernel] == ["SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1",
                                      "CLOSING", "CLOSED"]
    assert probe["time_wait_after_close"] == ["0 0 127.0.0.1:46000 127.0.0.1:46000"]
    truth = [s for s, _ in kernel[:-1]] + ["TIME_WAIT"]
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(SAMPLES / record["capture"])], options).connections
        assert [s.state for s in c.client_states] == truth
        for mine, (_, ts) in zip(c.client_states, kernel):
            assert abs(mine.ts - ts) < TOLERANCE_S
        assert c.server_states == () and c.client == c.server == ("127.0.0.1", 46000)
        assert (c.kind, c.initiator, c.half_close_s) == ("simultaneous", "client", 0.0)
        assert c.time_wait["side"] == "client" and c.packets == 7 and not c.rsts
        assert [a for a in c.anomalies if "connected to itself" not in a] == []
        # Zeek sees the originator's packets only (its SYN-ACK too): a SYN, then a FIN,
        # and never a SYN-ACK from the responder
        assert c.zeek_state == "SH"
    steps = c.ladder  # the last: with the ladder
    assert [step["states"]["client"] for step in steps] == [
        "SYN_RECV", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "CLOSING",
        "TIME_WAIT"]
    assert {step["states"]["server"] for step in steps} == {None}
    # --kernel names the code path of each move, the simultaneous open's among them
    paths = [kernel_path(SideState(s.old), SideState(s.state), Event(s.event))
             for s in c.client_states]
    assert all(paths) and "tcp_rcv_synsent_state_process" in paths[1][0]


def _states_by_port(record: dict) -> dict[int, list]:
    """Each traced socket's (state, time) changes, by its own port."""
    kernel: dict[int, list] = {}
    for ev in record["kernel"]:
        if ev["event"] == "inet_sock_set_state":
            kernel.setdefault(ev["local"][1], []).append((ev["new"], ev["ts"]))
    return kernel


def test_a_simultaneous_open_matches_the_kernels_record():
    """sample_pcaps/simultaneous_open.pcap, with the kernel's record of it: two sockets,
    each bound to its own port, connect to each other (the first SYNs dropped after the
    capture point, as a NAT drops them in TCP hole punching, so that the retransmitted ones
    meet sockets in SYN_SENT).  In the first probe one SYN meets a socket in SYN_SENT,
    which answers with a SYN-ACK; in the second the SYNs cross and both answer.  Each
    socket's states, and their times within the tolerance, are the kernel's: the SYN's
    receiver connect()ed too (SYN_SENT, not a listener's SYN_RECV at the first SYN), and a
    socket that answers a SYN with a SYN-ACK was in SYN_RECV before the peer's SYN-ACK or
    ACK established it (rule 10), even where that SYN-ACK was captured before its own."""
    record = json.loads((SAMPLES / "simultaneous_open.record.json").read_text())
    kernel = _states_by_port(record)
    # the state tracepoint reports the first closer's full socket CLOSED as a mini-socket
    # takes its place, in FIN_WAIT2 (the socket was closed: tcp_time_wait(sk, FIN_WAIT2)),
    # which goes on to TIME_WAIT unreported; ss, after both close()d, saw that TIME_WAIT
    # socket (so its time is not in the record)
    first, crossing = record["probes"]
    assert [p["outcome"] for p in (first, crossing)] == ["connected", "connected"]
    assert [s for s, _ in kernel[46002]][:3] == ["SYN_SENT", "SYN_RECV", "ESTABLISHED"]
    assert [s for s, _ in kernel[46001]][:2] == ["SYN_SENT", "ESTABLISHED"]
    for port in (46003, 46004):
        assert [s for s, _ in kernel[port]][:3] == ["SYN_SENT", "SYN_RECV", "ESTABLISHED"]
    for probe in (first, crossing):
        client = probe["client_port"]
        assert probe["time_wait_after_close"] == [
            f"0 0 127.0.0.1:{client} 127.0.0.1:{probe['server_port']}"]
        assert kernel[client][-2][0] == "FIN_WAIT2" and kernel[client][-1][0] == "CLOSED"
        kernel[client][-1] = ("TIME_WAIT", None)
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        results = analyze([str(SAMPLES / record["capture"])], options).connections
        assert len(results) == 2
        for c, probe in zip(results, (first, crossing)):
            assert (c.client[1], c.server[1]) == (probe["client_port"], probe["server_port"])
            for states, port in ((c.client_states, c.client[1]),
                                 (c.server_states, c.server[1])):
                assert [s.state for s in states] == [s for s, _ in kernel[port]]
                for mine, (_, ts) in zip(states, kernel[port]):
                    assert ts is None or abs(mine.ts - ts) < TOLERANCE_S, (port, mine)
            assert (c.kind, c.initiator, c.handshake) == ("four-way", "client", "seen")
            assert c.time_wait["side"] == "client" and not c.rsts and not c.anomalies
            assert any("simultaneous open" in note for note in c.notes)
            # the handshake's timing places no capture point: the first SYNs were dropped
            assert c.vantage is None
    # the ladder: the server side connect()ed (SYN_SENT at its SYN), no listener
    first_steps, crossing_steps = (c.ladder for c in results)
    assert [(step["from"], step["flags"], step["states"]["client"],
             step["states"]["server"]) for step in first_steps[:5]] == [
        ("client", ["SYN"], "SYN_SENT", None), ("server", ["SYN"], "SYN_SENT", "SYN_SENT"),
        ("client", ["SYN"], "SYN_SENT", "SYN_RECV"),
        ("server", ["ACK", "SYN"], "ESTABLISHED", "SYN_RECV"),
        ("client", ["ACK"], "ESTABLISHED", "ESTABLISHED")]
    assert [step["states"]["server"] for step in crossing_steps[:6]] == [
        None, "SYN_SENT", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "ESTABLISHED"]


def _without_packets(pcap: bytes, dropped: set[int]) -> bytes:
    """A classic pcap's bytes without the records numbered ``dropped`` (from 1)."""
    out, at, number = [pcap[:24]], 24, 0
    while at < len(pcap):
        size = 16 + int.from_bytes(pcap[at + 8:at + 12], "little")
        number += 1
        if number not in dropped:
            out.append(pcap[at:at + size])
        at += size
    return b"".join(out)


def test_a_simultaneous_open_whose_syns_crossed_beyond_the_capture_point(tmp_path):
    """The crossing probe of sample_pcaps/simultaneous_open.pcap without its two first SYNs
    (packets 14 and 15, which nftables dropped at input: no socket received them, so the
    kernel's record holds for the rest; a capture point that missed them, a NAT's, sees
    this).  Now 46004's SYN comes first (the client), and 46003's SYN answers it, captured
    after it: 46003 sent its SYN before 46004's reached it, so its SYN_RECV cannot be
    stamped at that earlier SYN; it is stamped at the SYN-ACK it answered with.  Each
    socket's states are the kernel's, in time order, within the tolerance of its times
    (but SYN_SENT, now the retransmitted SYN's)."""
    record = json.loads((SAMPLES / "simultaneous_open.record.json").read_text())
    kernel = _states_by_port(record)
    kernel[46003][-1] = ("TIME_WAIT", None)  # (as in the test above)
    path = tmp_path / "crossed.pcap"
    path.write_bytes(_without_packets((SAMPLES / record["capture"]).read_bytes(), {14, 15}))
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (_, c) = analyze([str(path)], options).connections
        assert (c.client[1], c.server[1]) == (46004, 46003)
        for states, port in ((c.client_states, 46004), (c.server_states, 46003)):
            assert [s.state for s in states] == [s for s, _ in kernel[port]]
            assert [s.ts for s in states] == sorted(s.ts for s in states)
            for mine, (state, ts) in zip(states, kernel[port]):
                if state != "SYN_SENT" and ts is not None:
                    assert abs(mine.ts - ts) < TOLERANCE_S, (port, mine)
        recv = c.server_states[1]
        assert (recv.state, recv.packet) == ("SYN_RECV", 16)  # 46003's SYN-ACK, renumbered


def test_the_ladder_keeps_to_80_columns_with_its_notes_under_it(run_cli, monkeypatch):
    """``--flow`` in an 80-column terminal: no packet's row is folded; each note is written
    out once, under the table, its number in the row of the packet it explains and at the
    state it explains (the server's CLOSED at its RST, close_race_client_side.pcap)."""
    from teardown_analyzer.flows import DATA_AFTER_CLOSE_NOTE
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli(str(SAMPLES / "close_race_client_side.pcap"), "--flow", "1")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 80
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2", "3", "9", "10"]
    assert rows[-1][-3:] == ["CLOSED", "CLOSED", "[1]"]
    assert all(r[-1] != "[1]" for r in rows[:-1])
    assert " ".join(out.split()).count(DATA_AFTER_CLOSE_NOTE) == 1
    assert re.search(r"^\[1\] bare RST from FIN_WAIT1", out, re.M)
    assert re.search(r"^  CLOSED +packet 10 +\+[0-9.]+  \[1\]$", out, re.M)  # (the server's)
    # a note the connection carries too (data_after_close.pcap: the bare RST from
    # FIN_WAIT2) is not written out again under the states
    code, out, _ = run_cli(str(SAMPLES / "data_after_close.pcap"), "--flow", "1")
    (note,) = analyze([str(SAMPLES / "data_after_close.pcap")]).connections[0].notes
    assert note.startswith("packet 11: bare RST from FIN_WAIT2")
    assert " ".join(out.split()).count(note.partition(": ")[2]) == 1
    assert "note:" not in out and max(len(line) for line in out.splitlines()) <= 80


def test_an_rst_numbered_as_the_fin_from_closing_takes_back_the_peers_fin(tmp_path):
    """close_crosses_data_client_side.pcap edited (not a real capture): without the
    client's ACK of the server's FIN, we have the server in CLOSING (the FINs crossed) when
    its bare RST numbered as its FIN comes.  A socket in CLOSING answers old data with an
    ACK, not an RST: the server had not taken the client's FIN; it was in FIN_WAIT1, and
    reset on data after close(), as the kernel's record of the real capture says.  Nor, in
    the edited capture, does the client ever ACK the server's FIN, which in FIN_WAIT1 it
    would at once (states.py rule 11): it never had it, so the RST, at its rcv_nxt, closes
    it from FIN_WAIT1."""
    import pcapbuild as pb
    from teardown_analyzer.flows import DATA_AFTER_CLOSE_NOTE
    linktype, records = pb.read_pcap(SAMPLES / "close_crosses_data_client_side.pcap")
    segments = [pb.split_ipv4(r.data[14:])[2] for r in records]
    sfin = next(seg for seg in segments if seg[13] & 0x01 and seg[0:2] == b"\x13\xa3")
    ack = (int.from_bytes(sfin[4:8], "big") + 1).to_bytes(4, "big")
    (i,) = [i for i, seg in enumerate(segments) if seg[13] == 0x10 and seg[8:12] == ack]
    path = tmp_path / "close_crosses_data_without_the_ack.pcap"
    path.write_bytes(pb.pcap(records[:i] + records[i + 1:], linktype=linktype))
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(path)], options).connections
        assert [s.state for s in c.server_states[-2:]] == ["FIN_WAIT1", "CLOSED"]
        assert c.server_states[-1].note == DATA_AFTER_CLOSE_NOTE
        assert [s.state for s in c.client_states[-2:]] == ["FIN_WAIT1", "CLOSED"]
        assert "FIN lost after the capture point" in c.anomalies


def test_a_fin_that_crossed_an_rst_leaves_its_sender_closed(tmp_path):
    """abort_crosses_fin_client_side.pcap edited (not a real capture): without the
    client's bare RST answering the server's FIN, nothing after the FIN closes the server.
    The client's RST, which the FIN crossed, reached it after it sent the FIN: FIN_WAIT1,
    then CLOSED (stamped at the FIN, inferred: the RST arrived later)."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / "abort_crosses_fin_client_side.pcap")
    assert pb.split_ipv4(records[-1].data[14:])[2][13] == 0x04  # the client's bare RST
    path = tmp_path / "abort_crosses_fin_without_the_last_rst.pcap"
    path.write_bytes(pb.pcap(records[:-1], linktype=linktype))
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(path)], options).connections
        assert [s.state for s in c.server_states] == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1",
                                                      "CLOSED"]
        fin_wait1, closed = c.server_states[-2:]
        assert closed.inferred and closed.ts == fin_wait1.ts and closed.event == "RECV_RST"
        assert [s.state for s in c.client_states] == ["SYN_SENT", "ESTABLISHED", "CLOSED"]


def test_a_fin_long_after_the_peers_rst_shows_the_rst_lost(tmp_path):
    """The same capture edited (not a real capture): the server's FIN and what follows
    half a second later, when no segment sent before the client's RST arrived can still
    pass the capture point (the round trip is 20 ms).  Not a crossing: the RST would have
    reached the server before it sent the FIN, had it not been lost after the capture
    point.  The server goes on, to FIN_WAIT1, and the client's answer to the FIN (a bare
    RST from no socket) ends it."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / "abort_crosses_fin_client_side.pcap")
    records[-2:] = [r._replace(ts_ns=r.ts_ns + 5 * 10**8) for r in records[-2:]]
    path = tmp_path / "abort_then_a_late_fin.pcap"
    path.write_bytes(pb.pcap(records, linktype=linktype))
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(path)], options).connections
        assert [s.state for s in c.server_states] == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1",
                                                      "CLOSED"]
        assert not c.server_states[-1].inferred and c.server_states[-1].event == "RECV_RST"
        assert c.anomalies == ("RST lost after the capture point",)


def test_an_ack_that_crossed_an_rst_is_not_after_closed(tmp_path):
    """closing_abort_crosses_ack_server_side.pcap: the client's ACK (packet 13) comes 3 ms
    after the server's RST+ACK, within the 20 ms round trip: sent before the RST reached the
    client, not after it was CLOSED.  Edited to come 30 ms later (not a real capture), it
    shows the client never took the RST (a pure ACK comes from a socket, the reply path
    sends only RSTs; rst_lost_before_delayed_ack_* is such a run): TIME_WAIT goes on."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / "closing_abort_crosses_ack_server_side.pcap")
    path = SAMPLES / "closing_abort_crosses_ack_server_side.pcap"
    (c,) = analyze([str(path)], Options(vectorised=False)).connections
    assert c.client_states[-1].packet == 12 and "packets after CLOSED" not in c.anomalies
    records[12] = records[12]._replace(ts_ns=records[11].ts_ns + 30 * 10**6)
    edited = tmp_path / "an_ack_long_after_the_rst.pcap"
    edited.write_bytes(pb.pcap(records[:13], linktype=linktype))
    (c,) = analyze([str(edited)], Options(vectorised=False)).connections
    assert c.anomalies == ("RST lost after the capture point",)
    assert [(s.state, s.packet) for s in c.client_states[-2:]] == [("CLOSING", 9),
                                                                   ("TIME_WAIT", 11)]


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_fin_sent_again_after_the_delayed_ack_was_due_was_lost(side):
    """sample_pcaps/fin_lost_into_established_{client,server}_side.pcap, with the kernel's
    record: the client's FIN is lost into the server, ESTABLISHED, which would ACK it within
    200 ms (a delayed ACK) and sends nothing; the client sends it again a retransmission
    timeout later.  The server's CLOSE_WAIT comes with the copy, as in the kernel's
    record, by every path (per packet, vectorised, and with the ladder kept)."""
    for options in (Options(), Options(vectorised=False), Options(keep_ladder=True)):
        (c,) = analyze([str(SAMPLES / f"fin_lost_into_established_{side}_side.pcap")],
                       options).connections
        (copy,) = c.directions["client"]["fin"]["retransmissions"]
        close_wait = c.server_states[2]
        assert (close_wait.state, close_wait.packet) == ("CLOSE_WAIT", copy["packet"])
        assert "would have ACKed it within 200 ms as a delayed ACK" in close_wait.note
        assert c.anomalies == ("FIN retransmitted", "FIN lost after the capture point")
        assert (c.kind, c.client_final, c.server_final) == ("four-way", "TIME_WAIT", "CLOSED")


def test_a_fin_sent_again_before_the_delayed_ack_was_due_shows_no_loss(tmp_path):
    """fin_lost_into_established_server_side.pcap edited (not a real capture): the
    retransmitted FIN moved to 150 ms after the first, and what follows it 80 ms earlier
    too.  The server could still owe its delayed ACK of the first (the round trip to it
    plus 200 ms): nothing shows the first was lost, and its CLOSE_WAIT stays there."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / "fin_lost_into_established_server_side.pcap")
    fins = [i for i, r in enumerate(records) if pb.split_ipv4(r.data[14:])[2][13] & 1]
    first, copy = fins[:2]
    shift = records[copy].ts_ns - records[first].ts_ns - 150_000_000
    records[copy:] = [pb.Rec(r.ts_ns - shift, r.data) for r in records[copy:]]
    path = tmp_path / "fin_again_within_the_delayed_ack.pcap"
    path.write_bytes(pb.pcap(records, linktype=linktype))
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(path)], options).connections
        assert (c.server_states[2].state, c.server_states[2].packet) == ("CLOSE_WAIT",
                                                                          first + 1)
        assert c.anomalies == ("FIN retransmitted",)


def test_a_slow_handshake_turnaround_does_not_hide_the_copy_a_near_side_took(tmp_path):
    """sample_pcaps/lost_fin_crossing_client_side.pcap edited (not a real capture): the
    client's ACK of the SYN-ACK moved 3 ms later, so the handshake puts 3 ms between the
    capture point and the client, next to which it was taken (the kernel's turnaround can
    be that slow: explore_kernel.py --seed 37, run 29).  The server's FIN was lost into
    the client, which took the copy sent again and ACKed it at once, 0.1 ms later at the
    capture point: that copy is the one it took, not the first, ACKed late."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / "lost_fin_crossing_client_side.pcap")
    records[2] = pb.Rec(records[2].ts_ns + 3_000_000, records[2].data)
    assert records[2].ts_ns < records[3].ts_ns
    path = tmp_path / "lost_fin_crossing_slow_turnaround.pcap"
    path.write_bytes(pb.pcap(records, linktype=linktype))
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(path)], options).connections
        (copy,) = c.directions["server"]["fin"]["retransmissions"]
        assert [s.state for s in c.client_states[2:]] == ["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
        assert c.client_states[-1].packet == copy["packet"]


@pytest.mark.parametrize("name, shift", [
    ("fin_behind_lost_data_client_side", (1, 2)), ("fin_ack_lost_client_side", (1, 2)),
    ("abort_on_data_behind_lost_data_server_side", (2,)),
    ("lost_fin_crossing_server_side", (2,))])
def test_a_slow_handshake_turnaround_far_away_changes_nothing(tmp_path, name, shift):
    """Real captures edited (not real ones): the far side's answer in the handshake (the
    SYN-ACK on the client's interface, the client's ACK on the server's) moved 3 ms later,
    with what follows it before the data.  Its round trip is the fastest it answered
    (flows.round_trip: its data's ACK here), so the analysis is the unedited one, which
    test_sample_truth.py checks against the kernel's record.  With the handshake's round
    trip, each changed: deadlines 3 ms looser, another copy of a lost FIN taken."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / f"{name}.pcap")
    for i in shift:
        records[i] = pb.Rec(records[i].ts_ns + 3_000_000, records[i].data)
    assert all(a.ts_ns <= b.ts_ns for a, b in zip(records, records[1:]))
    path = tmp_path / f"{name}_slow_turnaround.pcap"
    path.write_bytes(pb.pcap(records, linktype=linktype))

    def reading(c):
        return ([(s.state, s.packet) for s in c.client_states],
                [(s.state, s.packet) for s in c.server_states], c.kind, c.anomalies,
                c.vantage["round_trip_s"]["client" if 2 in shift and 1 not in shift
                                          else "server"])

    (truth,) = analyze([str(SAMPLES / f"{name}.pcap")]).connections
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(path)], options).connections
        assert reading(c) == reading(truth)
        far = c.vantage["synack_to_ack_s" if shift == (2,) else "syn_to_synack_s"]
        assert far > reading(c)[-1] + 0.003  # (the handshake's is no longer the one)


def test_a_slow_syn_ack_does_not_move_the_capture_point(tmp_path):
    """lost_fin_crossing_server_side.pcap edited (not a real capture): the server's SYN-ACK
    and all after it 5 ms later, as from a listener slow to answer (syncookies, a SYN
    retransmitted).  By the handshake, the capture point would be in between (5 ms to the
    server of 25); by the fastest answers (the server's ACK of the client's FIN, 45 us;
    the client's of the server's data, 20.1 ms) it is near the server, as the unedited capture
    and the server's interface say, and the reading is the unedited one."""
    import pcapbuild as pb
    linktype, records = pb.read_pcap(SAMPLES / "lost_fin_crossing_server_side.pcap")
    records[1:] = [pb.Rec(r.ts_ns + 5_000_000, r.data) for r in records[1:]]
    path = tmp_path / "lost_fin_crossing_slow_syn_ack.pcap"
    path.write_bytes(pb.pcap(records, linktype=linktype))
    (truth,) = analyze([str(SAMPLES / "lost_fin_crossing_server_side.pcap")]).connections
    for options in (Options(), Options(vectorised=False)):
        (c,) = analyze([str(path)], options).connections
        assert c.vantage["syn_to_synack_s"] > 0.005
        assert c.vantage["point"] == truth.vantage["point"] == "near the server"
        assert c.vantage["round_trip_s"] == {"client": 0.020084, "server": 45e-6}
        assert c.vantage["one_way_s"] == pytest.approx((0.020084 + 45e-6) / 2)
        assert [(s.state, s.packet) for s in c.client_states + c.server_states] \
            == [(s.state, s.packet) for s in truth.client_states + truth.server_states]
