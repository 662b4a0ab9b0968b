"""Checks on the committed sample captures and their kernel-truth files.

sample_pcaps/*.truth.json are written by tools/gen_samples.py from the
kernel's own record (tracepoints + /proc polling).  These tests make sure each
file actually shows the behaviour its scenario is named for, so a silently
broken scenario is caught, and cross-check the essentials against the capture.
No root needed; stdlib + tools/pcapread.py only.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
sys.path.insert(0, str(ROOT / "tools"))
import pcapread  # noqa: E402

STATES = {"SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSING", "TIME_WAIT",
          "CLOSE_WAIT", "LAST_ACK", "CLOSED"}
EVIDENCE = {"tracepoint", "proc_poll", "inferred", "tracepoint+proc_poll"}

EXPECTED = ["four_way", "three_way", "server_first", "half_close", "simultaneous", "rst_linger0",
            "rst_unread", "lost_last_ack", "fin_wait2_timeout", "reuse_server_tw", "reuse_client_tw",
            "tw_assassinated",
            "close_wait_leak", "ipv6", "any_sll2", "pcapng_server_first", "two_vantage", "mixed_200",
            "nano_three_way", "vlan8021q", "rawip_tun", "loopback_four_way",
            "vantage_client", "vantage_server", "vantage_both", "delay_client_side", "delay_server_side",
            "close_race_client_side", "close_race_server_side", "data_after_close", "fin_then_abort",
            "crossing_aborts_client_side", "crossing_aborts_server_side",
            "close_crosses_data_client_side", "close_crosses_data_server_side",
            "abort_crosses_fin_client_side", "abort_crosses_fin_server_side",
            "shutdown_crosses_close_client_side", "shutdown_crosses_close_server_side",
            "abort_out_of_window_client_side", "abort_out_of_window_server_side", "rst_lost",
            "abort_in_closing_client_side", "abort_in_closing_server_side",
            "lost_fin_crossing_client_side", "lost_fin_crossing_server_side",
            "fin_behind_lost_data_client_side", "fin_behind_lost_data_server_side",
            "fin_ack_lost_client_side", "fin_ack_lost_server_side", "reset_after_lost_fin_server_side",
            "data_after_lost_fin_client_side", "data_after_lost_fin_server_side",
            "ack_crosses_abort_client_side", "ack_crosses_abort_server_side",
            "closing_abort_crosses_ack_client_side", "closing_abort_crosses_ack_server_side",
            "abort_past_lost_fin_client_side", "abort_past_lost_fin_server_side",
            "challenge_ack_after_lost_data_client_side", "challenge_ack_after_lost_data_server_side",
            "abort_on_data_behind_lost_data_client_side", "abort_on_data_behind_lost_data_server_side",
            "reset_at_a_hole_client_side", "reset_at_a_hole_server_side",
            "abort_on_fin_behind_lost_data_client_side", "abort_on_fin_behind_lost_data_server_side",
            "fin_lost_before_delayed_ack_client_side", "fin_lost_before_delayed_ack_server_side",
            "close_race_fin_lost_client_side", "close_race_fin_lost_server_side",
            "rst_lost_before_delayed_ack_client_side", "rst_lost_before_delayed_ack_server_side",
            "abort_crosses_abort_on_data_client_side", "abort_crosses_abort_on_data_server_side",
            "last_ack_gone_client_side", "last_ack_gone_server_side",
            "abort_short_of_fin_client_side", "abort_short_of_fin_server_side",
            "fin_lost_into_established_client_side", "fin_lost_into_established_server_side",
            "keepalive_in_half_close_client_side", "keepalive_in_half_close_server_side",
            "keepalive_timeout_client_side", "keepalive_timeout_server_side",
            "lost_data_acking_fin_client_side", "lost_data_acking_fin_server_side",
            "abort_on_data_crosses_abort_client_side", "abort_on_data_crosses_abort_server_side",
            "orphan_fin_wait2_takes_rst_client_side", "orphan_fin_wait2_takes_rst_server_side",
            "half_closed_fin_wait2_challenges_rst_client_side",
            "half_closed_fin_wait2_challenges_rst_server_side",
            "zero_window_in_half_close_server_side",
            "fin_copies_cross_client_side", "fin_copies_cross_server_side",
            "lost_fin_then_capture_stops_client_side", "lost_fin_then_capture_stops_server_side",
            "abort_in_last_ack_client_side", "abort_in_last_ack_server_side",
            "queued_fin_aborts_on_data_client_side", "queued_fin_aborts_on_data_server_side",
            "fin_probe_crosses_ack_client_side", "fin_probe_crosses_ack_server_side",
            "abort_races_fin_client_side", "reuse_challenged_client_side",
            "reset_soon_after_lost_fin_server_side", "abort_answers_older_data_server_side"]

CLIENT_FIRST = ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
PASSIVE_SERVER = ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
SERVER_FIRST = ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
PASSIVE_CLIENT = ["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]


def truth_files():
    return sorted(SAMPLES.glob("*.truth.json"))


_cache: dict = {}


def load(name):
    if name not in _cache:
        t = json.loads((SAMPLES / f"{name}.truth.json").read_text())
        _cache[name] = (t, pcapread.tcp_packets(SAMPLES / t["capture"]))
    return _cache[name]


def ep(d):
    return d["ip"], d["port"]


def conn_pkts(pkts, c, inc=None):
    """Packets of one connection; with inc, only that incarnation (split at new client ISNs)."""
    a, b = ep(c["client"]), ep(c["server"])
    ps = [p for p in pkts if {(p.src, p.sport), (p.dst, p.dport)} == {a, b}]
    if inc is None:
        return ps
    out, cur, isn = [], None, None
    for p in ps:
        if p.syn and not p.has_ack and (p.src, p.sport) == a and p.seq != isn:
            isn, cur = p.seq, []
            out.append(cur)
        if cur is None:
            cur = []
            out.append(cur)
        cur.append(p)
    return out[inc]


def sent_by(ps, d):
    e = ep(d)
    return [p for p in ps if (p.src, p.sport) == e]


def only(t):
    assert len(t["connections"]) == 1, [c["client"] for c in t["connections"]]
    return t["connections"][0]


def states(c, role):
    return c["sides"][role]["states"]


def trans(c, role, frm, to):
    r = [x for x in c["sides"][role]["transitions"] if x["from"] == frm and x["to"] == to]
    assert r, f"{role}: no {frm}->{to} in {states(c, role)}"
    return r[0]


# ------------------------------------------------------------------ generic

def test_all_expected_scenarios_present():
    have = {p.name[:-len(".truth.json")] for p in truth_files()}
    missing = [n for n in EXPECTED if n not in have]
    assert not missing, f"missing sample scenarios: {missing}"


def test_every_capture_with_truth_is_named_in_it():
    for cap in sorted(list(SAMPLES.glob("*.pcap")) + list(SAMPLES.glob("*.pcapng"))):
        tf = SAMPLES / (cap.name.rsplit(".", 1)[0] + ".truth.json")
        if tf.exists():
            assert json.loads(tf.read_text())["capture"] == cap.name, cap.name


def test_truth_files_point_to_existing_captures():
    for tf in truth_files():
        t = json.loads(tf.read_text())
        assert t["scenario"] + ".truth.json" == tf.name
        assert (SAMPLES / t["capture"]).exists(), t["capture"]


def test_sample_dir_small():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    # 2.9 MB of it is port_reuse.pcap.gz, the 20,000 real connections issue 6 asks for;
    # 6 MiB (5 until the 2026-12-04 samples: real runs the explorer finds, a few kB each)
    # still catches a large capture committed by mistake
    assert total < 6 * 1024 * 1024, f"sample_pcaps/ is {total / 1e6:.2f} MB"


@pytest.mark.parametrize("tf", truth_files(), ids=lambda p: p.name.split(".")[0])
def test_truth_schema_and_consistency(tf):
    t = json.loads(tf.read_text())
    for k in ("scenario", "capture", "description", "vantage", "kernel", "clock", "capture_end_ts",
              "sysctls", "connections"):
        assert k in t, k
    assert t["vantage"] in ("client", "server", "both", "any")
    assert set(t["clock"]) >= {"trace_clock", "alignment_error_us", "checked_on"}
    # the kernel's handshake transition lines up with the captured packet
    assert abs(t["clock"]["alignment_error_us"]) < 1000, t["clock"]
    assert t["connections"]
    for c in t["connections"]:
        assert {"client", "server", "incarnation", "sides"} <= set(c)
        for role in ("client", "server"):
            s = c["sides"][role]
            for k in ("states", "transitions", "final_state", "rst_sent", "rst_received", "retransmits"):
                assert k in s, (role, k)
            prev = "CLOSED"
            for x in s["transitions"]:
                assert x["to"] in STATES and x["from"] in STATES, x
                assert x["from"] == prev, (role, s["transitions"])
                assert x["evidence"] in EVIDENCE, x
                if x["evidence"] == "inferred":
                    assert x.get("why"), x
                assert x["ts"] <= t["capture_end_ts"] + 1e-6
                prev = x["to"]
            tss = [x["ts"] for x in s["transitions"]]
            assert tss == sorted(tss), (role, tss)
            assert s["states"] == [x["to"] for x in s["transitions"]]
            assert s["final_state"] == prev
        assert c["sides"]["client"]["states"][0] == "SYN_SENT"
        assert c["sides"]["server"]["states"][0] == "SYN_RECV"


@pytest.mark.parametrize("tf", truth_files(), ids=lambda p: p.name.split(".")[0])
def test_truth_connections_are_in_capture(tf):
    t, pkts = load(tf.name[:-len(".truth.json")])
    for c in t["connections"]:
        ps = conn_pkts(pkts, c, c["incarnation"])
        syn = [p for p in ps if p.syn and not p.has_ack]
        assert syn and (syn[0].src, syn[0].sport) == ep(c["client"]), c["client"]
        assert ps[-1].ts <= t["capture_end_ts"] + 1e-3


@pytest.mark.parametrize("name", [n for n in EXPECTED])
def test_scenario_has_behaviour_check(name):
    assert name in CHECKS, f"add a behaviour check for {name}"


@pytest.mark.parametrize("name", EXPECTED)
def test_scenario_behaviour(name):
    if not (SAMPLES / f"{name}.truth.json").exists():
        pytest.fail(f"{name}.truth.json missing")
    t, pkts = load(name)
    CHECKS[name](t, pkts)


# ------------------------------------------------------------ per scenario

def _client_first(t, pkts, three):
    c = only(t)
    assert states(c, "client") == CLIENT_FIRST
    assert states(c, "server") == PASSIVE_SERVER
    assert c["close"]["kind"] == ("three-way" if three else "four-way")
    assert c["close"]["initiator"] == "client"
    ps = conn_pkts(pkts, c)
    cfin = [p for p in sent_by(ps, c["client"]) if p.fin]
    sfin = [p for p in sent_by(ps, c["server"]) if p.fin]
    assert len(cfin) == 1 and len(sfin) == 1
    assert cfin[0].ts < sfin[0].ts
    assert sfin[0].ack == cfin[0].seq + 1
    between = [p for p in sent_by(ps, c["server"]) if cfin[0].ts < p.ts < sfin[0].ts]
    if three:
        assert not between, "server sent a separate ACK: not a three-way close"
        f2 = trans(c, "client", "FIN_WAIT1", "FIN_WAIT2")["ts"]
        tw = trans(c, "client", "FIN_WAIT2", "TIME_WAIT")
        assert tw["ts"] - f2 < 0.001 and tw["evidence"] == "tracepoint+proc_poll"
    else:
        assert [p for p in between if p.has_ack and p.ack == cfin[0].seq + 1 and not p.fin], \
            "no separate ACK of the client's FIN"
    assert c["sides"]["client"]["final_state"] == "TIME_WAIT"
    return c


def _server_first(t, pkts):
    c = only(t)
    assert states(c, "server") == SERVER_FIRST
    assert states(c, "client") == PASSIVE_CLIENT
    assert c["close"]["initiator"] == "server"
    ps = conn_pkts(pkts, c)
    assert [p for p in sent_by(ps, c["server"]) if p.fin][0].ts < [p for p in sent_by(ps, c["client"]) if p.fin][0].ts
    return c


def chk_four_way(t, pkts):
    _client_first(t, pkts, three=False)


def chk_three_way(t, pkts):
    _client_first(t, pkts, three=True)


def chk_server_first(t, pkts):
    assert t["vantage"] == "server"
    _server_first(t, pkts)


def chk_half_close(t, pkts):
    c = only(t)
    assert states(c, "client") == CLIENT_FIRST
    assert states(c, "server") == PASSIVE_SERVER
    f2 = trans(c, "client", "FIN_WAIT1", "FIN_WAIT2")["ts"]
    tw = trans(c, "client", "FIN_WAIT2", "TIME_WAIT")["ts"]
    assert tw - f2 > 0.8, "client should sit in FIN_WAIT2 (half-closed) for ~1 s"
    # the half-closed client is not orphaned: the full socket stays, so TIME_WAIT entry is traced
    assert trans(c, "client", "FIN_WAIT2", "TIME_WAIT")["evidence"] == "tracepoint+proc_poll"
    assert c["close"].get("half_close") is True
    ps = conn_pkts(pkts, c)
    cfin = [p for p in sent_by(ps, c["client"]) if p.fin][0]
    data = [p for p in sent_by(ps, c["server"]) if p.plen and p.ts > cfin.ts]
    assert sum(p.plen for p in data) == 2000
    assert data[-1].ts - data[0].ts > 0.8
    # ... and the client keeps ACKing that data after its FIN
    assert [p for p in sent_by(ps, c["client"]) if p.ts > data[-1].ts and p.ack >= data[-1].seq + data[-1].plen]


def chk_simultaneous(t, pkts):
    c = only(t)
    for role in ("client", "server"):
        st = states(c, role)
        assert st[-3:] == ["FIN_WAIT1", "CLOSING", "TIME_WAIT"], (role, st)
        assert trans(c, role, "FIN_WAIT1", "CLOSING")["evidence"] == "tracepoint"
        assert trans(c, role, "CLOSING", "TIME_WAIT")["evidence"] == "tracepoint+proc_poll"
        assert c["sides"][role]["final_state"] == "TIME_WAIT"
    assert c["close"]["kind"] == "simultaneous" and c["close"]["initiator"] == "both"
    ps = conn_pkts(pkts, c)
    cfin = [p for p in sent_by(ps, c["client"]) if p.fin]
    sfin = [p for p in sent_by(ps, c["server"]) if p.fin]
    assert len(cfin) == 1 and len(sfin) == 1
    # neither FIN acknowledges the other: they crossed
    assert cfin[0].ack == sfin[0].seq and sfin[0].ack == cfin[0].seq
    # each side then ACKs the other's FIN
    assert [p for p in sent_by(ps, c["client"]) if not p.fin and p.ack == sfin[0].seq + 1]
    assert [p for p in sent_by(ps, c["server"]) if not p.fin and p.ack == cfin[0].seq + 1]


def _rst(t, pkts, reason):
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]] == [reason]
    assert len(c["sides"]["server"]["rst_received"]) == 1
    assert c["close"]["kind"] == "rst" and c["close"]["initiator"] == "client"
    ps = conn_pkts(pkts, c)
    assert not [p for p in ps if p.fin]
    rsts = [p for p in sent_by(ps, c["client"]) if p.rst]
    assert len(rsts) == 1 and rsts[0].has_ack
    return c, ps


def chk_rst_linger0(t, pkts):
    _rst(t, pkts, "TCP_STATE")  # SO_LINGER 0 -> tcp_disconnect() -> reset with reason TCP_STATE


def chk_rst_unread(t, pkts):
    c, ps = _rst(t, pkts, "TCP_ABORT_ON_CLOSE")
    srv_data = sum(p.plen for p in sent_by(ps, c["server"]))
    rst = [p for p in sent_by(ps, c["client"]) if p.rst][0]
    assert srv_data == 500
    assert rst.ack == [p for p in sent_by(ps, c["server"]) if p.plen][-1].seq + 500  # the data was received


def chk_lost_last_ack(t, pkts):
    c = only(t)
    assert states(c, "client") == CLIENT_FIRST
    assert states(c, "server") == PASSIVE_SERVER
    rx = c["sides"]["server"]["retransmits"]
    assert [(r["what"], r["sk_state"]) for r in rx] == [("FIN", "LAST_ACK")]
    ps = conn_pkts(pkts, c)
    sfin = [p for p in sent_by(ps, c["server"]) if p.fin]
    assert len(sfin) == 2 and sfin[0].seq == sfin[1].seq
    acks = [p for p in sent_by(ps, c["client"]) if p.ack == sfin[0].seq + 1 and not p.fin]
    assert len(acks) == 2
    assert sfin[0].ts < acks[0].ts < sfin[1].ts < acks[1].ts
    # the re-ACK comes from the TIME_WAIT mini-socket (client already in TIME_WAIT)
    tw = trans(c, "client", "FIN_WAIT2", "TIME_WAIT")["ts"]
    assert tw < sfin[1].ts
    assert c["sides"]["server"]["transitions"][-1]["ts"] >= sfin[1].ts
    assert c["sides"]["client"]["final_state"] == "TIME_WAIT"


def chk_fin_wait2_timeout(t, pkts):
    assert t["sysctls"]["net.ipv4.tcp_fin_timeout"] == 2
    assert len(t["connections"]) == 2
    late = {}
    for c in t["connections"]:
        cl = c["sides"]["client"]
        assert cl["states"] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSED"]
        f2 = trans(c, "client", "FIN_WAIT1", "FIN_WAIT2")["ts"]
        end = trans(c, "client", "FIN_WAIT2", "CLOSED")
        assert end["evidence"] == "proc_poll"
        assert 1.5 < end["ts"] - f2 < 4.0, end["ts"] - f2
        assert [r["reason"] for r in cl["rst_sent"]] == ["NO_SOCKET"]
        assert cl["rst_sent"][0]["ts"] > end["ts"]
        assert len(c["sides"]["server"]["rst_received"]) == 1
        assert c["sides"]["server"]["final_state"] == "CLOSED"
        assert c["close"]["kind"] == "fin-then-rst"
        ps = conn_pkts(pkts, c)
        rst = [p for p in sent_by(ps, c["client"]) if p.rst]
        assert len(rst) == 1 and not rst[0].has_ack, "a no-socket reply to an ACK-bearing segment is a bare RST"
        trigger = [p for p in sent_by(ps, c["server"]) if p.ts < rst[0].ts][-1]
        assert rst[0].seq == trigger.ack
        late[c["client"]["port"]] = trigger
    assert late[40091].plen > 0 and not late[40091].fin      # late data
    assert late[40092].fin                                   # late FIN
    c2 = [c for c in t["connections"] if c["client"]["port"] == 40092][0]
    assert states(c2, "server") == PASSIVE_SERVER


def _reuse(t, pkts):
    cs = t["connections"]
    assert [c["incarnation"] for c in cs] == [0, 1]
    assert ep(cs[0]["client"]) == ep(cs[1]["client"]) and ep(cs[0]["server"]) == ep(cs[1]["server"])
    syns = [p for p in conn_pkts(pkts, cs[0]) if p.syn and not p.has_ack]
    assert len(syns) == 2 and syns[0].seq != syns[1].seq, "expected a second SYN on the same 4-tuple"
    return cs, syns


def chk_reuse_server_tw(t, pkts):
    cs, syns = _reuse(t, pkts)
    old, new = cs
    assert states(old, "server") == SERVER_FIRST + ["CLOSED"]
    assert states(old, "client") == PASSIVE_CLIENT
    end = trans(old, "server", "TIME_WAIT", "CLOSED")
    assert end["evidence"] == "proc_poll" and "taken over" in end.get("why", "")
    assert end["window"][0] <= syns[1].ts + 0.001 and end["ts"] >= syns[1].ts - 0.001
    assert states(new, "client") == CLIENT_FIRST and states(new, "server") == PASSIVE_SERVER
    # takeover by TCP_TW_SYN: the new SYN-ACK's ISN is the old snd_nxt + 65537
    ps0 = conn_pkts(pkts, old, 0)
    ps1 = conn_pkts(pkts, old, 1)
    old_fin = [p for p in sent_by(ps0, old["server"]) if p.fin][0]
    synack = [p for p in ps1 if p.syn and p.has_ack][0]
    assert synack.seq == (old_fin.seq + 1 + 65537) % 2**32


def chk_reuse_client_tw(t, pkts):
    assert t["sysctls"]["net.ipv4.tcp_tw_reuse"] == 1
    cs, syns = _reuse(t, pkts)
    old, new = cs
    assert states(old, "client") == CLIENT_FIRST + ["CLOSED"]
    end = trans(old, "client", "TIME_WAIT", "CLOSED")
    assert end["evidence"] == "proc_poll" and "taken over" in end.get("why", "")
    assert syns[1].ts - trans(old, "client", "FIN_WAIT2", "TIME_WAIT")["ts"] > 1.0  # tcp_tw_reuse_delay
    assert states(new, "client") == CLIENT_FIRST and states(new, "server") == PASSIVE_SERVER
    # tcp_tw_reuse: the reusing connection's ISN is the old snd_nxt + 65537
    old_fin = [p for p in sent_by(conn_pkts(pkts, old, 0), old["client"]) if p.fin][0]
    assert syns[1].seq == (old_fin.seq + 1 + 65537) % 2**32


def chk_tw_assassinated(t, pkts):
    """The new SYN, numbered below the old connection's end (no timestamps), draws the
    TIME_WAIT side's ACK of the old connection; the client's bare RST at that ACK field
    kills the TIME_WAIT socket (gone from /proc between the RST and the SYN sent again);
    the client's SYN_SENT socket sent it (the kernel's record) and stays there."""
    assert t["sysctls"]["net.ipv4.tcp_timestamps"] == 0
    old, new = t["connections"]
    assert [old["incarnation"], new["incarnation"]] == [0, 1]
    assert states(old, "server") == SERVER_FIRST + ["CLOSED"]
    assert states(old, "client") == PASSIVE_CLIENT
    assert states(new, "client") == CLIENT_FIRST and states(new, "server") == PASSIVE_SERVER
    ps = conn_pkts(pkts, old)
    cfin = [p for p in sent_by(ps, old["client"]) if p.fin][0]
    syn, again = [p for p in ps if p.syn and not p.has_ack][1:]
    assert syn.seq == again.seq and not syn.ts < cfin.ts
    assert (syn.seq - (cfin.seq + 1)) % 2**32 >= 2**31  # (below the old end)
    tw_ack, rst = [p for p in ps if syn.ts < p.ts < again.ts]
    assert (tw_ack.src, tw_ack.sport) == ep(old["server"]) and tw_ack.ack == cfin.seq + 1
    assert rst.rst and not rst.has_ack and rst.seq == tw_ack.ack
    end = trans(old, "server", "TIME_WAIT", "CLOSED")
    assert end["evidence"] == "proc_poll"
    assert end["window"][0] <= again.ts and end["ts"] >= rst.ts - 0.001
    assert [r["ts"] for r in new["sides"]["client"]["rst_sent"]] == [pytest.approx(rst.ts,
                                                                                   abs=0.002)]
    assert not old["sides"]["client"]["rst_sent"]


def chk_close_wait_leak(t, pkts):
    c = only(t)
    assert t["vantage"] == "server"
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT"]
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2"]
    assert c["sides"]["server"]["final_state"] == "CLOSE_WAIT"
    assert c["sides"]["client"]["final_state"] == "FIN_WAIT2"
    assert c["close"]["kind"] == "half-open"
    ps = conn_pkts(pkts, c)
    assert [p.src for p in ps if p.fin] == [c["client"]["ip"]]
    assert t["capture_end_ts"] - trans(c, "server", "ESTABLISHED", "CLOSE_WAIT")["ts"] > 1.0


def chk_ipv6(t, pkts):
    c = _client_first(t, pkts, three=False)
    assert ":" in c["client"]["ip"] and ":" in c["server"]["ip"]
    assert all(p.ipver == 6 for p in pkts)


def chk_any_sll2(t, pkts):
    assert t["vantage"] == "any"
    assert t["capture_format"]["linktype"] == 276
    assert pcapread.read_capture(SAMPLES / t["capture"]).linktypes == [276]
    _client_first(t, pkts, three=True)


def chk_pcapng(t, pkts):
    cap = pcapread.read_capture(SAMPLES / t["capture"])
    assert cap.fmt == "pcapng" and t["capture"].endswith(".pcapng")
    _server_first(t, pkts)


def chk_two_vantage(t, pkts):
    assert t["vantage"] == "both"
    seen, first = {}, []
    for p in pkts:
        k = (p.src, p.sport, p.seq, p.ack, p.flags, p.plen)
        if k not in seen:
            first.append(p)
        else:
            assert p.ts - seen[k][0].ts < 0.005, "the second copy should follow within microseconds"
        seen.setdefault(k, []).append(p)
    assert {len(v) for v in seen.values()} == {2}, "every segment should appear exactly twice"
    _client_first(t, first, three=False)


def chk_mixed(t, pkts):
    cs = t["connections"]
    assert len(cs) >= 190
    assert len({c["client"]["port"] for c in cs}) == len(cs)
    assert (SAMPLES / t["capture"]).stat().st_size < 1024 * 1024
    kinds = {c["scripted_kind"] for c in cs}
    assert {"four_way", "three_way", "server_first", "rst_linger0", "rst_unread", "half_close"} <= kinds
    for c in cs:
        k = c["scripted_kind"]
        cl, sv = states(c, "client"), states(c, "server")
        if k in ("four_way", "three_way"):
            assert cl == CLIENT_FIRST and sv == PASSIVE_SERVER, (k, cl, sv)
        elif k == "half_close":
            assert cl == CLIENT_FIRST and sv == PASSIVE_SERVER and c["close"].get("half_close"), (k, c["close"])
        elif k == "server_first":
            assert sv == SERVER_FIRST and cl == PASSIVE_CLIENT, (k, cl, sv)
        elif k in ("rst_linger0", "rst_unread"):
            assert cl[-1] == "CLOSED" and "FIN_WAIT1" not in cl and c["close"]["kind"] == "rst"
            assert c["sides"]["client"]["rst_sent"] and c["sides"]["server"]["rst_received"]
        elif k == "close_wait_leak":
            assert sv[-1] == "CLOSE_WAIT" and cl[-1] == "FIN_WAIT2"
    n_three = sum(1 for c in cs if c["close"]["kind"] == "three-way")
    n_four = sum(1 for c in cs if c["close"]["kind"] == "four-way")
    assert n_three >= 10 and n_four >= 10


def chk_nano(t, pkts):
    cap = pcapread.read_capture(SAMPLES / t["capture"])
    assert cap.fmt == "pcap" and cap.nanosecond and cap.magic == 0xA1B23C4D
    assert any(r.ts_ns % 1000 for r in cap.records), "expected sub-microsecond digits"
    _client_first(t, pkts, three=True)


def chk_vlan(t, pkts):
    assert all(p.vlan == [100] for p in pkts)
    _client_first(t, pkts, three=False)


def chk_rawip(t, pkts):
    assert pcapread.read_capture(SAMPLES / t["capture"]).linktypes == [101]
    _client_first(t, pkts, three=True)


def chk_loopback(t, pkts):
    assert t["capture"].startswith("loopback_")
    c = _client_first(t, pkts, three=False)
    assert c["client"]["ip"] == c["server"]["ip"] == "127.0.0.1"


# ------------------------------------------- one run, captured on both sides

def _seg_key(p):
    return (p.src, p.sport, p.dst, p.dport, p.seq, p.ack, p.flags, p.plen)


def _same_run(t, names):
    """Files of one multi-capture run: same connection (same ISNs) and identical kernel transitions."""
    assert sorted(t["same_run_as"] + [t["scenario"]]) == sorted(names)
    c = only(t)
    for other in t["same_run_as"]:
        o, opk = load(other)
        oc = only(o)
        assert ep(oc["client"]) == ep(c["client"]) and ep(oc["server"]) == ep(c["server"])
        for role in ("client", "server"):
            assert oc["sides"][role]["transitions"] == c["sides"][role]["transitions"], (other, role)
        assert o["path_delay_ms"] == t["path_delay_ms"]
    return c


def _cross_delays(a_pkts, b_pkts, client):
    """Per segment: capture time on the receiver's interface minus on the sender's (ms), from the
    client-side capture a_pkts and the server-side capture b_pkts."""
    b = {}
    for p in b_pkts:
        b.setdefault(_seg_key(p), p.ts)
    c2s, s2c = [], []
    for p in a_pkts:
        if _seg_key(p) not in b:
            continue
        if (p.src, p.sport) == ep(client):
            c2s.append((b[_seg_key(p)] - p.ts) * 1e3)
        else:
            s2c.append((p.ts - b[_seg_key(p)]) * 1e3)
    return c2s, s2c


def _handshake(ps):
    syn = [p for p in ps if p.syn and not p.has_ack][0]
    sa = [p for p in ps if p.syn and p.has_ack][0]
    ack = [p for p in ps if (p.src, p.sport) == (syn.src, syn.sport) and p.has_ack and not p.syn][0]
    return syn, sa, ack


VANTAGE = ["vantage_client", "vantage_server", "vantage_both"]


def _vantage_single(t, pkts, side):
    assert t["vantage"] == side
    assert t["topology"]["capture_interface"] == {"client": "tdgc0", "server": "tdgs0"}[side]
    c = _client_first(t, pkts, three=False)
    assert (ep(c["client"]), ep(c["server"])) == (("198.18.0.1", 40211), ("198.18.0.2", 5021))
    _same_run(t, VANTAGE)
    # plain veth: the two capture points are microseconds apart
    c2s, s2c = _cross_delays(load("vantage_client")[1], load("vantage_server")[1], c["client"])
    assert len(c2s) + len(s2c) == len(pkts), "every segment is in both single-side captures"
    assert all(0 <= d < 2 for d in c2s + s2c), (c2s, s2c)
    return c


def chk_vantage_client(t, pkts):
    _vantage_single(t, pkts, "client")


def chk_vantage_server(t, pkts):
    _vantage_single(t, pkts, "server")


def chk_vantage_both(t, pkts):
    assert t["vantage"] == "both"
    cap = pcapread.read_capture(SAMPLES / t["capture"])
    assert cap.fmt == "pcapng" and cap.linktypes == [1, 1], "two interface description blocks"
    assert [i["name"] for i in t["capture_format"]["interfaces"]] == ["tdgc0", "tdgs0"]
    # interface 0 holds exactly the client-side capture, interface 1 the server-side one
    for ifid, name in ((0, "vantage_client"), (1, "vantage_server")):
        single = pcapread.read_capture(SAMPLES / load(name)[0]["capture"]).records
        mine = [r for r in cap.records if r.ifid == ifid]
        assert [(r.ts_ns, r.data) for r in mine] == [(r.ts_ns, r.data) for r in single], name
    assert [r.ts_ns for r in cap.records] == sorted(r.ts_ns for r in cap.records)
    seen, first = {}, []
    for p in pkts:
        if _seg_key(p) not in seen:
            first.append(p)
        seen.setdefault(_seg_key(p), []).append(cap.records[p.index].ifid)
    assert all(sorted(v) == [0, 1] for v in seen.values()), "every segment once per interface"
    _client_first(t, first, three=False)
    _same_run(t, VANTAGE)


DELAY = ["delay_client_side", "delay_server_side"]


def _delay_common(t, pkts, side):
    assert t["vantage"] == side and t["topology"]["kind"] == "delay"
    assert t["topology"]["capture_interface"] == {"client": "tdgc0", "server": "tdgs0"}[side]
    c = _client_first(t, pkts, three=False)
    assert (ep(c["client"]), ep(c["server"])) == (("198.18.3.1", 40221), ("198.18.3.2", 5022))
    _same_run(t, DELAY)
    pd = t["path_delay_ms"]
    assert pd["configured_one_way"] == 10
    owd = pd["one_way"]
    assert 9.5 < owd < 12, pd
    # the recorded delay is what the two captures show, segment by segment, in both directions
    c2s, s2c = _cross_delays(load("delay_client_side")[1], load("delay_server_side")[1], c["client"])
    assert len(c2s) >= 5 and len(s2c) >= 5
    assert all(abs(d - owd) < 1.0 for d in c2s + s2c), (owd, c2s, s2c)
    ps = conn_pkts(pkts, c)
    cfin = [p for p in sent_by(ps, c["client"]) if p.fin][0]
    sfin = [p for p in sent_by(ps, c["server"]) if p.fin][0]
    sack = [p for p in sent_by(ps, c["server"]) if not p.fin and p.ack == cfin.seq + 1][0]
    assert sfin.ts - cfin.ts > 0.25, "the server closes ~300 ms after the client"
    last = [p for p in sent_by(ps, c["client"]) if p.ack == sfin.seq + 1 and not p.fin][0]
    return c, owd, ps, cfin, sack, sfin, last


def _lag(kernel_ts, pkt, expect_ms, tol=3.0):
    d = (kernel_ts - pkt.ts) * 1e3
    assert abs(d - expect_ms) < tol, f"kernel - capture = {d:.2f} ms, expected ~{expect_ms:.1f} ms"


def chk_delay_client_side(t, pkts):
    c, owd, ps, cfin, sack, sfin, last = _delay_common(t, pkts, "client")
    syn, sa, ack = _handshake(ps)
    rtt = (ack.ts - syn.ts) * 1e3
    assert 2 * owd - 1 < rtt < 2 * owd + 5, rtt
    assert (sa.ts - syn.ts) * 1e3 > 0.8 * rtt, "at the client, SYN -> SYN-ACK is the whole RTT"
    assert (ack.ts - sa.ts) * 1e3 < 2, "... and SYN-ACK -> ACK only the client's turnaround"
    # near side (client): within 2 ms of its packets
    _lag(trans(c, "client", "SYN_SENT", "ESTABLISHED")["ts"], sa, 0, 2)
    _lag(trans(c, "client", "ESTABLISHED", "FIN_WAIT1")["ts"], cfin, 0, 2)
    _lag(trans(c, "client", "FIN_WAIT1", "FIN_WAIT2")["ts"], sack, 0, 2)
    # far side (server), triggered by a segment from the client: one one-way delay AFTER its capture time
    _lag(trans(c, "server", "CLOSED", "SYN_RECV")["ts"], syn, owd)
    _lag(trans(c, "server", "SYN_RECV", "ESTABLISHED")["ts"], ack, owd)
    _lag(trans(c, "server", "ESTABLISHED", "CLOSE_WAIT")["ts"], cfin, owd)
    _lag(trans(c, "server", "LAST_ACK", "CLOSED")["ts"], last, owd)
    # far side, caused by its own close(): one one-way delay BEFORE its FIN shows up here
    _lag(trans(c, "server", "CLOSE_WAIT", "LAST_ACK")["ts"], sfin, -owd)


def chk_delay_server_side(t, pkts):
    c, owd, ps, cfin, sack, sfin, last = _delay_common(t, pkts, "server")
    syn, sa, ack = _handshake(ps)
    rtt = (ack.ts - syn.ts) * 1e3
    assert 2 * owd - 1 < rtt < 2 * owd + 5, rtt
    assert (sa.ts - syn.ts) * 1e3 < 2, "at the server, SYN -> SYN-ACK is only the server's turnaround"
    assert (ack.ts - sa.ts) * 1e3 > 0.8 * rtt, "... and SYN-ACK -> ACK the whole RTT"
    # near side (server)
    _lag(trans(c, "server", "SYN_RECV", "ESTABLISHED")["ts"], ack, 0, 2)
    _lag(trans(c, "server", "ESTABLISHED", "CLOSE_WAIT")["ts"], cfin, 0, 2)
    _lag(trans(c, "server", "CLOSE_WAIT", "LAST_ACK")["ts"], sfin, 0, 2)
    _lag(trans(c, "server", "LAST_ACK", "CLOSED")["ts"], last, 0, 2)
    # far side (client), triggered by a segment from the server: one one-way delay AFTER its capture time
    _lag(trans(c, "client", "SYN_SENT", "ESTABLISHED")["ts"], sa, owd)
    _lag(trans(c, "client", "FIN_WAIT1", "FIN_WAIT2")["ts"], sack, owd)
    tw = trans(c, "client", "FIN_WAIT2", "TIME_WAIT")       # orphaned socket: seen by /proc polling
    assert tw["evidence"] == "proc_poll"
    assert tw["window"][0] - 0.001 <= sfin.ts + owd / 1e3 <= tw["window"][1] + 0.001, (tw, sfin.ts)
    # far side, caused by its own connect()/close(): one one-way delay BEFORE its SYN / FIN shows up here
    _lag(trans(c, "client", "CLOSED", "SYN_SENT")["ts"], syn, -owd)
    _lag(trans(c, "client", "ESTABLISHED", "FIN_WAIT1")["ts"], cfin, -owd)


def _close_race(t, pkts, side):
    """The keep-alive race: the client's second request crosses the server's FIN; the
    server, in FIN_WAIT1 after close(), aborts on it (TCP_ABORT_ON_DATA) with a bare RST
    numbered as the FIN; the client, in CLOSE_WAIT, takes it (rcv_nxt - 1)."""
    c = only(t)
    assert (ep(c["client"]), ep(c["server"])) == (("198.18.3.1", 40231), ("198.18.3.2", 5023))
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_ABORT_ON_DATA"]
    assert len(c["sides"]["client"]["rst_received"]) == 1 and not c["sides"]["client"]["rst_sent"]
    assert c["close"]["kind"] == "fin-then-rst" and c["close"]["initiator"] == "server"
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (rst,) = [p for p in ps if p.rst]
    request = [p for p in sent_by(ps, c["client"]) if p.plen][-1]
    assert request.plen == 64 and request.ack == sfin.seq, "it acknowledges only the response"
    assert (rst.src, rst.sport) == ep(c["server"]) and not rst.has_ack and rst.seq == sfin.seq
    assert not [p for p in sent_by(ps, c["client"]) if p.ack == sfin.seq + 1], "no ACK of the FIN"
    owd = t["path_delay_ms"]["one_way"]
    near, far = (0, owd) if side == "client" else (owd, 0)
    # the server closed (FIN_WAIT1) at its FIN, and CLOSED as it sent the RST; the client went
    # to CLOSE_WAIT as the FIN arrived and to CLOSED as the RST did
    _lag(trans(c, "server", "ESTABLISHED", "FIN_WAIT1")["ts"], sfin, -far, 2)
    _lag(trans(c, "server", "FIN_WAIT1", "CLOSED")["ts"], rst, -far, 2)
    _lag(trans(c, "client", "ESTABLISHED", "CLOSE_WAIT")["ts"], sfin, near, 2)
    _lag(trans(c, "client", "CLOSE_WAIT", "CLOSED")["ts"], rst, near, 2)
    assert (request.ts < sfin.ts) == (side == "client"), "each reaches the far side after the other left"


def chk_data_after_close(t, pkts):
    """The server close()s; the client's delayed ACK of the FIN leaves the orphan in
    FIN_WAIT2, as a timewait mini-socket; the client's later request is data after close():
    the mini-socket answers with a bare RST one past the FIN (TCP_TIMEWAIT_SOCKET) and is
    gone; the client is CLOSED as the RST arrives."""
    c = only(t)
    assert t["vantage"] == "server"
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSED"]
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "CLOSED"]
    assert [(r["reason"], r["sk_state"]) for r in c["sides"]["server"]["rst_sent"]] == \
        [("TCP_TIMEWAIT_SOCKET", "TIME_WAIT")]
    assert c["close"]["kind"] == "fin-then-rst" and c["close"]["initiator"] == "server"
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (rst,) = [p for p in ps if p.rst]
    ack, request = [p for p in sent_by(ps, c["client"]) if p.ts > sfin.ts]
    assert ack.ack == sfin.seq + 1 and not ack.plen and ack.ts - sfin.ts > 0.03, "delayed ACK"
    assert request.plen == 64 and request.ack == sfin.seq + 1 and request.ts > sfin.ts + 0.09
    assert (rst.src, rst.sport) == ep(c["server"]) and not rst.has_ack and rst.seq == sfin.seq + 1
    _lag(trans(c, "server", "FIN_WAIT1", "FIN_WAIT2")["ts"], ack, 0, 1)
    gone = trans(c, "server", "FIN_WAIT2", "CLOSED")
    assert gone["evidence"] == "proc_poll" and gone["window"][0] <= rst.ts <= gone["window"][1]
    _lag(trans(c, "client", "CLOSE_WAIT", "CLOSED")["ts"], rst, 0, 1)


def chk_fin_then_abort(t, pkts):
    """The client's FIN, then the server's RST+ACK acknowledging it (no ACK before): the
    client goes from FIN_WAIT1 to CLOSED, never FIN_WAIT2."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_STATE"]
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    after = [p for p in sent_by(ps, c["server"]) if p.ts > cfin.ts]
    assert len(after) == 1 and after[0].rst and after[0].has_ack and after[0].ack == cfin.seq + 1


def chk_rst_lost(t, pkts):
    """The server's RST+ACK, captured but dropped before the client took it; the client's
    FIN 30 ms later; the server's kernel answers it from no socket."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_STATE", "NO_SOCKET"]
    assert len(c["sides"]["client"]["rst_received"]) == 1
    ps = conn_pkts(pkts, c)
    first, second = [p for p in sent_by(ps, c["server"]) if p.rst]
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    assert first.has_ack and first.ts + 0.02 < cfin.ts < second.ts and not second.has_ack
    assert trans(c, "client", "FIN_WAIT1", "CLOSED")["ts"] > cfin.ts


def _abort_in_closing(t, pkts, side):
    """The FINs cross; the client, in CLOSING, aborts with SO_LINGER 0 without an RST (nothing
    unsent); the server's ACK of its FIN gets a bare RST from no socket."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSING", "CLOSED"]
    assert states(c, "server")[:4] == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSING"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]] == ["NO_SOCKET"]
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    assert cfin.ack == sfin.seq and sfin.ack == cfin.seq, "neither FIN acknowledges the other"
    (rst,) = [p for p in ps if p.rst]
    s_ack = [p for p in sent_by(ps, c["server"]) if p.ack == cfin.seq + 1][0]
    assert (rst.src, rst.sport) == ep(c["client"]) and rst.seq == s_ack.ack and not rst.has_ack
    assert trans(c, "client", "CLOSING", "CLOSED")["ts"] < rst.ts


def _far(t, side, near):
    """The lag of a transition of ``near``'s side behind a segment it receives, as captured
    on ``side``'s interface: none there, one way of the path from the other end."""
    return 0 if side == near else t["path_delay_ms"]["one_way"]


def _lost_fin_crossing(t, pkts, side):
    """The FINs cross; the server's is lost on its way into the client, which goes to
    FIN_WAIT2 on the ACK of its own and takes the server's retransmitted FIN."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSING", "TIME_WAIT"]
    ps = conn_pkts(pkts, c)
    sfin, sfin2 = [p for p in sent_by(ps, c["server"]) if p.fin]
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    assert cfin.ack == sfin.seq and sfin.ack == cfin.seq, "neither FIN acknowledges the other"
    assert sfin2.seq == sfin.seq and sfin2.ts - sfin.ts > 0.2, "retransmitted at the RTO"
    assert min(p.ts for p in sent_by(ps, c["client"]) if p.ack == sfin.seq + 1) > sfin2.ts
    assert trans(c, "server", "FIN_WAIT1", "CLOSING")["ts"] < trans(c, "client", "FIN_WAIT1", "FIN_WAIT2")["ts"]
    _lag(trans(c, "client", "FIN_WAIT2", "TIME_WAIT")["ts"], sfin2, _far(t, side, "client"))


def _fin_behind_lost_data(t, pkts, side):
    """The client's byte is lost on its way into the server; the client's FIN, which ACKs
    the server's, arrives after the gap: the server takes its ACK, holds the FIN, and takes
    it with the byte sent again."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    byte, again = [p for p in sent_by(ps, c["client"]) if p.plen == 1]
    assert byte.seq == again.seq and byte.ts < sfin.ts < cfin.ts < again.ts
    assert sfin.ack == byte.seq and cfin.seq == byte.seq + 1 and cfin.ack == sfin.seq + 1
    dup = [p for p in sent_by(ps, c["server"]) if cfin.ts < p.ts < again.ts]
    assert dup and all(p.ack == byte.seq for p in dup), "the server's ACKs leave out the byte"
    _lag(trans(c, "server", "FIN_WAIT1", "FIN_WAIT2")["ts"], cfin, _far(t, side, "server"))
    _lag(trans(c, "server", "FIN_WAIT2", "TIME_WAIT")["ts"], again, _far(t, side, "server"))


def _fin_ack_lost(t, pkts, side):
    """The client's FIN, which ACKs the server's, is lost on its way into the server: the
    server retransmits its FIN, takes the client's ACK of it (FIN_WAIT2), then the client's
    retransmitted FIN."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
    ps = conn_pkts(pkts, c)
    sfin, sfin2 = [p for p in sent_by(ps, c["server"]) if p.fin]
    cfin, cfin2 = [p for p in sent_by(ps, c["client"]) if p.fin]
    assert sfin.seq == sfin2.seq and cfin.seq == cfin2.seq and cfin.ack == sfin.seq + 1
    assert sfin2.ack == cfin.seq, "the server's FIN again, leaving out the client's"
    (reack,) = [p for p in sent_by(ps, c["client"]) if sfin2.ts < p.ts < cfin2.ts]
    assert not reack.fin and reack.ack == sfin.seq + 1
    _lag(trans(c, "server", "FIN_WAIT1", "FIN_WAIT2")["ts"], reack, _far(t, side, "server"))
    _lag(trans(c, "server", "FIN_WAIT2", "TIME_WAIT")["ts"], cfin2, _far(t, side, "server"))


def chk_zero_window_in_half_close(t, pkts):
    """The client, in FIN_WAIT2 and not reading, closes its window; the server, in
    CLOSE_WAIT with data left, probes it (pure ACKs one before its snd_una, answered with
    the zero window again) until the client reads; its close() came right after its data
    was queued, long before the FIN that follows the data."""
    c = only(t)
    assert states(c, "client") == CLIENT_FIRST
    assert states(c, "server") == PASSIVE_SERVER
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    zero = [p for p in sent_by(ps, c["client"]) if p.win == 0]
    assert zero and zero[0].ts > cfin.ts
    acked = zero[0].ack
    probes = [p for p in sent_by(ps, c["server"]) if p.flags == 0x10 and not p.plen
              and p.seq == acked - 1]
    assert len(probes) >= 2 and all(zero[0].ts < p.ts for p in probes)
    opened = [p for p in sent_by(ps, c["client"]) if p.ts > zero[0].ts and p.win > 0][0]
    assert all(p.ts < opened.ts for p in probes)
    assert all(p.ack == acked for p in zero), "nothing new got in while the window was shut"
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    assert sfin.plen and sfin.ts > opened.ts
    data = sum(p.plen for p in sent_by(ps, c["server"]) if p.ts > cfin.ts)
    assert data >= 150_000
    last_ack = trans(c, "server", "CLOSE_WAIT", "LAST_ACK")["ts"]
    assert sfin.ts - last_ack > 1.5, "close() long before the FIN left"
    assert last_ack < zero[0].ts + 0.1


def _reset_after_lost_fin(t, pkts, data_len):
    """The client's FIN crosses the server's data (``data_len`` bytes) and FIN and is lost
    on its way into the server; the data reaches the client after close(): its bare RST,
    numbered as its FIN, is the server's rcv_nxt, and closes it from FIN_WAIT1.  The RST
    as the server's capture saw it, and the FIN."""
    assert t["vantage"] == "server" and t["topology"]["kind"] == "delay"
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]] == ["TCP_ABORT_ON_DATA",
                                                                     "NO_SOCKET"]
    assert len(c["sides"]["server"]["rst_received"]) == 1
    ps = conn_pkts(pkts, c)
    data = [p for p in sent_by(ps, c["server"]) if p.plen == data_len][-1]
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    rst = [p for p in sent_by(ps, c["client"]) if p.rst][0]
    assert data.ts < sfin.ts < cfin.ts < rst.ts and cfin.ack == data.seq, "the FIN crosses them"
    assert not [p for p in sent_by(ps, c["server"]) if p.ts > cfin.ts], "no ACK of the FIN"
    assert not rst.has_ack and rst.seq == cfin.seq
    _lag(trans(c, "server", "FIN_WAIT1", "CLOSED")["ts"], rst, 0)
    return rst, cfin


def chk_reset_after_lost_fin(t, pkts):
    _reset_after_lost_fin(t, pkts, 300)


def chk_reset_soon_after_lost_fin(t, pkts):
    """An explorer run kept as recorded, reset_after_lost_fin with 1 byte and the RST
    0.7 ms after the lost FIN: before a round trip to the server and a millisecond passed
    the FIN at the capture point (when its ACK, had it taken the FIN, was due)."""
    rst, cfin = _reset_after_lost_fin(t, pkts, 1)
    assert rst.ts - cfin.ts < 0.001


def _data_after_lost_fin(t, pkts, side):
    """The server's FIN is lost on its way into the client; the client's data 50 ms later
    leaves it out of its ACK field; the server, close()d by then, resets on it with a bare
    RST at the client's rcv_nxt, which closes the client from ESTABLISHED."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
    assert [x for x in states(c, "server") if x != "FIN_WAIT1"] == ["SYN_RECV", "ESTABLISHED",
                                                                    "CLOSED"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_ABORT_ON_DATA"]
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (data,) = [p for p in sent_by(ps, c["client"]) if p.plen == 300]
    (rst,) = [p for p in ps if p.rst]
    assert data.ts - sfin.ts > 0.04 and data.ack == sfin.seq, "sent well after, leaving it out"
    assert (rst.src, rst.sport) == ep(c["server"]) and not rst.has_ack and rst.seq == sfin.seq
    _lag(trans(c, "client", "ESTABLISHED", "CLOSED")["ts"], rst, _far(t, side, "client"))


def _ack_crosses_abort(t, pkts, side):
    """The server's data ACKs the client's FIN; before it arrives, the client resets with
    an RST+ACK whose ACK field leaves it out: the client never reaches FIN_WAIT2."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]][0] == "TCP_ABORT_ON_CLOSE"
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    acking = [p for p in sent_by(ps, c["server"]) if p.ack == cfin.seq + 1]
    first = min(acking, key=lambda p: p.ts)
    abort = [p for p in sent_by(ps, c["client"]) if p.rst and p.has_ack]
    assert len(abort) == 1 and first.plen > 0 and abort[0].ack == first.seq
    # it left the client before the data could have reached it
    assert trans(c, "client", "FIN_WAIT1", "CLOSED")["ts"] < first.ts + _far(t, side, "client") / 1e3


def _distinct(xs):
    """States without the kernel's same-state transitions (FIN_WAIT1 -> FIN_WAIT1)."""
    return [x for i, x in enumerate(xs) if not i or x != xs[i - 1]]


def _abort_past_lost_fin(t, pkts, side):
    """The client's FIN is lost on its way into the server; the client's RST+ACK, numbered
    past it, is not at the server's rcv_nxt: a challenge ACK, and the server stays
    ESTABLISHED until a bare RST at the FIN's number."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSED"]
    assert len(c["sides"]["server"]["rst_received"]) == 1
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    assert all(p.ack == cfin.seq for p in sent_by(ps, c["server"]) if p.ts > cfin.ts)
    (abort,) = [p for p in sent_by(ps, c["client"]) if p.rst and p.has_ack]
    assert abort.seq == cfin.seq + 1 and abort.ts > cfin.ts
    challenge = [p for p in sent_by(ps, c["server"]) if abort.ts < p.ts and not p.plen]
    assert challenge and challenge[0].ack == cfin.seq, "a challenge ACK"
    bare = [p for p in sent_by(ps, c["client"]) if p.rst and not p.has_ack]
    assert bare and all(p.seq == cfin.seq for p in bare)
    _lag(trans(c, "server", "ESTABLISHED", "CLOSED")["ts"], bare[0], _far(t, side, "server"))


def _challenge_ack_after_lost_data(t, pkts, side):
    """The server's bytes that ACK the client's FIN are lost on their way into the client;
    the server's RST+ACK after them is not at the client's rcv_nxt: a challenge ACK, no
    FIN_WAIT2, and a bare RST at the ACK's number closes the client."""
    c = only(t)
    assert _distinct(states(c, "client")) == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_ABORT_ON_CLOSE"]
    assert len(c["sides"]["client"]["rst_received"]) == 1
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    (data,) = [p for p in sent_by(ps, c["server"]) if p.plen == 300 and p.ts > cfin.ts]
    (abort,) = [p for p in sent_by(ps, c["server"]) if p.rst and p.has_ack]
    assert data.ack == cfin.seq + 1 and abort.seq == data.seq + 300 and abort.ts > data.ts
    (challenge,) = [p for p in sent_by(ps, c["client"]) if p.ts > abort.ts]
    assert not challenge.plen and challenge.ack == data.seq, "it leaves the bytes out"
    (reply,) = [p for p in sent_by(ps, c["server"]) if p.ts > challenge.ts]
    assert reply.rst and not reply.has_ack and reply.seq == challenge.ack
    _lag(trans(c, "client", "FIN_WAIT1", "CLOSED")["ts"], reply, _far(t, side, "client"))


def _abort_on_data_behind_lost_data(t, pkts, side):
    """The server's bytes are lost on their way into the client, its FIN after them held
    out of order; the client's data, acknowledging only up to them, reaches the server in
    FIN_WAIT1 after close(): it aborts, and the client's later ACK of its FIN finds no
    socket (no FIN_WAIT2)."""
    c = only(t)
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSING", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]][0] == "TCP_ABORT_ON_DATA"
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    data = [p for p in sent_by(ps, c["client"]) if p.plen and p.ts > sfin.ts]
    assert data and data[0].ack < sfin.seq, "acknowledging only up to the lost bytes"
    (fin_ack,) = [p for p in sent_by(ps, c["client"]) if p.ack == sfin.seq + 1]
    rst = [p for p in sent_by(ps, c["server"]) if p.rst]
    assert not rst[0].has_ack and rst[0].seq == data[0].ack and fin_ack.ts > data[0].ts
    _lag(trans(c, "server", "FIN_WAIT1", "CLOSED")["ts"], data[0], _far(t, side, "server"))


def _reset_at_a_hole(t, pkts, side):
    """The client's bytes are lost on their way into the server, its FIN after them comes
    out of order (the server repeats its ACK); the server's data reaches the client after
    close(), whose bare RSTs at the start of the lost bytes, the server's rcv_nxt, close it
    from ESTABLISHED."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]][0] == "TCP_ABORT_ON_DATA"
    assert len(c["sides"]["server"]["rst_received"]) == 1
    ps = conn_pkts(pkts, c)
    (data,) = [p for p in sent_by(ps, c["client"]) if p.plen == 300]
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    assert cfin.seq == data.seq + 300 and cfin.ts > data.ts
    after = [p for p in sent_by(ps, c["server"]) if p.ts > cfin.ts]
    assert after and all(p.ack == data.seq for p in after), "the bytes never came"
    assert any(not p.plen for p in after), "an ACK repeated as the FIN arrived"
    rsts = [p for p in sent_by(ps, c["client"]) if p.rst]
    assert rsts and all(not p.has_ack and p.seq == data.seq for p in rsts)
    _lag(trans(c, "server", "ESTABLISHED", "CLOSED")["ts"], rsts[0], _far(t, side, "server"))


def _abort_on_fin_behind_lost_data(t, pkts, side):
    """The client's bytes are lost on their way into the server; the server close()s, and
    the client's FIN, ACKing the server's, comes past the server's rcv_nxt: the server
    takes the ACK (FIN_WAIT2), then aborts on the FIN (TCPAbortOnData) with a bare RST
    numbered as the FIN's ACK field; never TIME_WAIT."""
    c = only(t)
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSED"]
    assert states(c, "client") == PASSIVE_CLIENT
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_ABORT_ON_DATA"]
    ps = conn_pkts(pkts, c)
    (data,) = [p for p in sent_by(ps, c["client"]) if p.plen == 300]
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    assert sfin.ack == data.seq and sfin.ts > data.ts, "the server's FIN leaves the bytes out"
    assert cfin.seq == data.seq + 300 and cfin.ack == sfin.seq + 1 and not cfin.plen
    (rst,) = [p for p in sent_by(ps, c["server"]) if p.rst]
    assert not rst.has_ack and rst.seq == cfin.ack and rst.ts > cfin.ts
    fw2 = trans(c, "server", "FIN_WAIT1", "FIN_WAIT2")["ts"]
    assert 0 <= trans(c, "server", "FIN_WAIT2", "CLOSED")["ts"] - fw2 < 1e-3, "aborted at once"
    _lag(fw2, cfin, _far(t, side, "server"))
    _lag(trans(c, "client", "LAST_ACK", "CLOSED")["ts"], rst, _far(t, side, "client"))


def _fin_lost_before_delayed_ack(t, pkts, side):
    """The client's FIN is lost on its way into the server; the server's bytes, sent before
    it, reach the client in FIN_WAIT1 after close(): a bare RST numbered as the FIN, the
    server's rcv_nxt, closes the server from ESTABLISHED before any ACK of a FIN received
    in ESTABLISHED would have been due (delayed, up to 200 ms): nothing ACKs the FIN."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]][0] == "TCP_ABORT_ON_DATA"
    ps = conn_pkts(pkts, c)
    (data,) = [p for p in sent_by(ps, c["server"]) if p.plen == 300]
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    assert cfin.ack == data.seq and cfin.ts < data.ts + 0.02, "the FIN leaves the bytes out"
    rsts = [p for p in sent_by(ps, c["client"]) if p.rst]
    assert rsts and all(not p.has_ack and p.seq == cfin.seq == data.ack for p in rsts)
    assert not [p for p in sent_by(ps, c["server"]) if p.ack == cfin.seq + 1], "FIN never ACKed"
    assert 0 < rsts[0].ts - cfin.ts < 0.2
    _lag(trans(c, "server", "ESTABLISHED", "CLOSED")["ts"], rsts[0], _far(t, side, "server"))

def _close_race_fin_lost(t, pkts, side):
    """The keep-alive race with the server's FIN lost on its way into the client: the
    client's three segments, sent before the FIN would have come, reach the server in
    FIN_WAIT1 after close(); its bare RSTs, numbered as the FIN, the client's rcv_nxt, close
    the client from ESTABLISHED (the first; the others find no socket) with nothing ACKing
    the FIN.  On the server's interface the first RST leaves between those segments."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]][0] == "TCP_ABORT_ON_DATA"
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    data = [p for p in sent_by(ps, c["client"]) if p.plen and p.ts > sfin.ts - 0.02]
    assert [p.plen for p in data] == [1448, 1448, 104] and all(p.ack == sfin.seq for p in data)
    rsts = [p for p in sent_by(ps, c["server"]) if p.rst]
    assert len(rsts) == 3 and all(not p.has_ack and p.seq == sfin.seq for p in rsts)
    assert not [p for p in sent_by(ps, c["client"]) if p.ack == sfin.seq + 1], "FIN never ACKed"
    assert 0 < rsts[0].ts - sfin.ts < 0.2
    if side == "server":
        assert data[0].ts < rsts[0].ts < data[1].ts, "the first RST between the segments"
    _lag(trans(c, "client", "ESTABLISHED", "CLOSED")["ts"], rsts[0], _far(t, side, "client"))

def _rst_lost_before_delayed_ack(t, pkts, side):
    """The client's abort on data after close() is lost on its way into the server; the
    server, in CLOSE_WAIT, sends its delayed ACK of the FIN more than a round trip after
    that RST, and the client's reply path answers it with a bare RST at the server's
    rcv_nxt, which closes it."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "server") == PASSIVE_SERVER[:3] + ["CLOSED"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]] == ["TCP_ABORT_ON_DATA",
                                                                      "NO_SOCKET"]
    assert len(c["sides"]["server"]["rst_received"]) == 1
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    first, second = [p for p in sent_by(ps, c["client"]) if p.rst]
    (ack,) = [p for p in sent_by(ps, c["server"]) if not p.plen and p.ack == cfin.seq + 1]
    rtt = t["path_delay_ms"]["one_way"] * 2 / 1e3
    assert first.ts + rtt < ack.ts < second.ts and second.seq == ack.ack
    _lag(trans(c, "server", "CLOSE_WAIT", "CLOSED")["ts"], second, _far(t, side, "server"))

def _abort_crosses_abort_on_data(t, pkts, side):
    """The client's data ACKs the server's FIN: the server, after close(), takes the ACK
    (FIN_WAIT2) and aborts on the data with bare RSTs at its ACK field; the client's own
    RST+ACK, sent before they arrived, reaches the server after it is gone."""
    c = only(t)
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSED"]
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_ABORT_ON_DATA"]
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    data = [p for p in sent_by(ps, c["client"]) if p.plen and p.ack == sfin.seq + 1]
    (abort,) = [p for p in sent_by(ps, c["client"]) if p.rst]
    rsts = [p for p in sent_by(ps, c["server"]) if p.rst]
    assert len(data) == 3 and abort.has_ack and data[-1].ts < abort.ts
    assert rsts and all(not p.has_ack and p.seq == sfin.seq + 1 for p in rsts)
    fw2 = trans(c, "server", "FIN_WAIT2", "CLOSED")["ts"]
    _lag(fw2, rsts[0], -_far(t, side, "server"))
    _lag(fw2, data[0], _far(t, side, "server"))
    assert fw2 < abort.ts + _far(t, side, "server") / 1e3, "gone before the RST+ACK came"

def _last_ack_gone(t, pkts, side):
    """The server, in LAST_ACK, close()s with SO_LINGER 0: no RST, the socket is gone
    before the client's ACK of its FIN arrives, which the reply path answers with a bare RST
    that ends the client's TIME_WAIT."""
    c = only(t)
    assert states(c, "server") == PASSIVE_SERVER
    assert states(c, "client") == CLIENT_FIRST + ["CLOSED"]
    assert not c["sides"]["server"]["rst_sent"]
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (ack,) = [p for p in sent_by(ps, c["client"]) if p.ack == sfin.seq + 1]
    (rst,) = [p for p in sent_by(ps, c["server"]) if p.rst]
    assert not rst.has_ack and rst.seq == ack.ack
    gone = trans(c, "server", "LAST_ACK", "CLOSED")["ts"]
    assert gone < ack.ts + _far(t, side, "server") / 1e3, "gone before the ACK arrived"
    _lag(trans(c, "client", "TIME_WAIT", "CLOSED")["ts"], rst, _far(t, side, "client"), 5)

def _abort_short_of_fin(t, pkts, side):
    """The server, in FIN_WAIT1 after close(), aborts on the client's byte with a bare RST
    at that byte's ACK field, short of its own byte and FIN: out of the client's window;
    the reply path's RST to the client's next segment, at its rcv_nxt - 1, closes it."""
    c = only(t)
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_ABORT_ON_DATA"]
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    first, second = [p for p in sent_by(ps, c["server"]) if p.rst]
    (byte,) = [p for p in sent_by(ps, c["client"]) if p.plen == 1]
    assert not first.has_ack and first.seq == byte.ack < sfin.seq and second.seq == sfin.seq
    if side == "client":  # (the client's ACK of the server's byte between)
        assert [p for p in sent_by(ps, c["client"]) if byte.ts < p.ts < first.ts]
    _lag(trans(c, "server", "FIN_WAIT1", "CLOSED")["ts"], first, -_far(t, side, "server"))
    _lag(trans(c, "client", "CLOSE_WAIT", "CLOSED")["ts"], second, _far(t, side, "client"))

def _fin_lost_into_established(t, pkts, side):
    """The client's FIN is lost into the server, ESTABLISHED, which sends nothing until the
    client retransmits it more than the 200 ms a delayed ACK can wait after the first: the
    server's CLOSE_WAIT comes with the copy, and its ACK a delayed-ACK time after that."""
    c = only(t)
    assert states(c, "client") == CLIENT_FIRST
    assert states(c, "server") == PASSIVE_SERVER
    (retx,) = c["sides"]["client"]["retransmits"]
    assert retx["what"] == "FIN" and retx["sk_state"] == "FIN_WAIT1"
    ps = conn_pkts(pkts, c)
    first, copy = [p for p in sent_by(ps, c["client"]) if p.fin]
    assert copy.seq == first.seq and copy.ts - first.ts > 0.2 + 2 * _far(t, side, "server") / 1e3
    (ack,) = [p for p in sent_by(ps, c["server"]) if p.ack == first.seq + 1 and not p.fin]
    assert not [p for p in sent_by(ps, c["server"]) if first.ts < p.ts < copy.ts]
    _lag(trans(c, "server", "ESTABLISHED", "CLOSE_WAIT")["ts"], copy, _far(t, side, "server"))
    assert 0.02 < ack.ts - copy.ts < 0.2, "a delayed ACK, not the immediate one to a duplicate"

def _keepalive_in_half_close(t, pkts, side):
    """Both sides idle in a half-close with SO_KEEPALIVE: each sends probes numbered one
    before its snd_una (the client's, after its FIN, as the FIN itself), each answered by
    an ACK; no state changes from them."""
    c = only(t)
    assert states(c, "client") == CLIENT_FIRST[:4]
    assert states(c, "server") == PASSIVE_SERVER[:3]
    assert not c["sides"]["client"]["retransmits"] and not c["sides"]["server"]["retransmits"]
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    probes = {role: [p for p in sent_by(ps, c[role]) if p.ts > cfin.ts + 0.1 and not p.plen
                     and p.seq == (cfin.seq if role == "client" else cfin.ack - 1)]
              for role in ("client", "server")}
    assert len(probes["client"]) >= 2 and len(probes["server"]) >= 2
    for role, peer in (("client", "server"), ("server", "client")):
        for probe in probes[role]:  # (each answered at once: the next segment the peer
            # sent; but a probe the capture ends with)
            answer = next((p for p in sent_by(ps, c[peer]) if p.ts > probe.ts), None)
            assert answer.ack == probe.seq + 1 and not answer.plen if answer else \
                probe is ps[-1]

def _keepalive_timeout(t, pkts, side):
    """The client, idle with SO_KEEPALIVE (TCP_KEEPCNT 3), probes three times unanswered
    (its pure ACKs dropped after the capture points), then its keepalive timer gives up:
    an RST+ACK at its snd_nxt, which the kernel records as TCP_KEEPALIVE_TIMEOUT, closes
    both sides."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSED"]
    (sent,) = c["sides"]["client"]["rst_sent"]
    assert sent["reason"] == "TCP_KEEPALIVE_TIMEOUT" and sent["sk_state"] == "ESTABLISHED"
    ps = conn_pkts(pkts, c)
    (rst,) = [p for p in ps if p.rst]
    assert rst.has_ack and (rst.src, rst.sport) == ep(c["client"])
    last_in = max(p.ts for p in sent_by(ps, c["server"]))
    after = [p for p in sent_by(ps, c["client"]) if p.ts > last_in and not p.rst]
    probes = [p for p in after if p.seq == rst.seq - 1 and not p.plen]
    assert len(probes) == 3 and len(after) == 4  # (and its ACK of the response)
    gaps = [b.ts - a.ts for a, b in zip(probes, probes[1:] + [rst])]
    assert all(0.9 < g < 1.2 for g in gaps), gaps
    _lag(trans(c, "client", "ESTABLISHED", "CLOSED")["ts"], rst, -_far(t, side, "client"))
    _lag(trans(c, "server", "ESTABLISHED", "CLOSED")["ts"], rst, _far(t, side, "server"))

def _lost_data_acking_fin(t, pkts, side):
    """The server's byte, which ACKs the client's FIN, is lost into the client; the server's
    FIN, past it, takes the client (FIN_WAIT1 after close()) to FIN_WAIT2 with its ACK and
    aborts it: the bare RST comes right after that FIN, not after the byte."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSED"]
    assert states(c, "server") == PASSIVE_SERVER
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]] == ["TCP_ABORT_ON_DATA"]
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    (byte,) = [p for p in sent_by(ps, c["server"]) if p.plen == 1]
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (rst,) = [p for p in ps if p.rst]
    assert byte.ack == sfin.ack == cfin.seq + 1 and sfin.seq == byte.seq + 1
    assert not rst.has_ack and rst.seq == sfin.ack and byte.ts < sfin.ts < rst.ts
    _lag(trans(c, "client", "FIN_WAIT1", "FIN_WAIT2")["ts"], sfin, _far(t, side, "client"))
    _lag(trans(c, "client", "FIN_WAIT2", "CLOSED")["ts"], sfin, _far(t, side, "client"))

def _abort_on_data_crosses_abort(t, pkts, side):
    """The client, in FIN_WAIT1 after close(), aborts on the server's data with a bare RST
    at the data's ACK field (its FIN's number); the server's RST+ACK, which ACKs the FIN,
    crosses it: each side is CLOSED by its own RST, taking none."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]] == ["TCP_ABORT_ON_DATA"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_STATE"]
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    (data,) = [p for p in sent_by(ps, c["server"]) if p.plen == 300]
    (crst,) = [p for p in sent_by(ps, c["client"]) if p.rst]
    (srst,) = [p for p in sent_by(ps, c["server"]) if p.rst]
    assert not crst.has_ack and crst.seq == data.ack == cfin.seq
    assert srst.has_ack and srst.ack == cfin.seq + 1
    if side == "server":  # (the RST+ACK first, between the data and the client's RST)
        assert data.ts < srst.ts < crst.ts
    _lag(trans(c, "client", "FIN_WAIT1", "CLOSED")["ts"], crst, -_far(t, side, "client"))
    _lag(trans(c, "server", "CLOSE_WAIT", "CLOSED")["ts"], srst, -_far(t, side, "server"))

def _closing_abort_crosses_ack(t, pkts, side):
    """The FINs cross; the server, in CLOSING, resets (unread data) before the client's ACK
    of its FIN arrives: it never reaches TIME_WAIT."""
    c = only(t)
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSING", "CLOSED"]
    assert states(c, "client")[:5] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSING", "TIME_WAIT"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_ABORT_ON_CLOSE"]
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    assert cfin.ack == sfin.seq and sfin.ack == cfin.seq, "neither FIN acknowledges the other"
    (cack,) = [p for p in sent_by(ps, c["client"]) if p.ack == sfin.seq + 1]
    rst = [p for p in sent_by(ps, c["server"]) if p.rst and p.has_ack][0]
    # the RST left the server before the client's ACK could have reached it
    arrives = cack.ts + _far(t, side, "server") / 1e3
    assert trans(c, "server", "CLOSING", "CLOSED")["ts"] < arrives < rst.ts + 0.03


def _crossing_aborts(t, pkts, side):
    """The server's FIN, then its RST+ACK; the client's RST+ACK acknowledging neither (sent
    before they arrived); the client's bare RST answering the FIN (no socket)."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]] == ["TCP_STATE", "NO_SOCKET"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_STATE"]
    assert not c["sides"]["client"]["rst_received"] and not c["sides"]["server"]["rst_received"]
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (s_rst,) = [p for p in sent_by(ps, c["server"]) if p.rst]
    c_rst, c_bare = [p for p in sent_by(ps, c["client"]) if p.rst]
    assert s_rst.has_ack and s_rst.seq == sfin.seq + 1
    assert c_rst.has_ack and c_rst.ack == sfin.seq and not c_bare.has_ack


def _close_crosses_data(t, pkts, side):
    """The client's data and FIN cross the server's FIN; the server aborts on the data
    with a bare RST numbered as its FIN; the client, in CLOSING, takes it."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSING", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_ABORT_ON_DATA"]
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    assert cfin.ack == sfin.seq and sfin.ack < cfin.seq, "neither FIN acknowledges the other"
    rsts = [p for p in sent_by(ps, c["server"]) if p.rst]
    assert rsts and not rsts[0].has_ack and rsts[0].seq == sfin.seq


def _abort_crosses_fin(t, pkts, side):
    """The server's FIN; the client's RST+ACK, sent before the FIN arrived (it leaves it
    out); the server, in FIN_WAIT1, takes it; the client's kernel answers the FIN from no
    socket."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]] == ["TCP_STATE", "NO_SOCKET"]
    assert len(c["sides"]["server"]["rst_received"]) == 1 and not c["sides"]["server"]["rst_sent"]
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    c_rst, c_bare = [p for p in sent_by(ps, c["client"]) if p.rst]
    assert c_rst.has_ack and c_rst.ack == sfin.seq and not c_bare.has_ack
    assert (c_rst.ts < sfin.ts) == (side == "client"), "they cross"
    _lag(trans(c, "server", "FIN_WAIT1", "CLOSED")["ts"], c_rst,
         0 if side == "server" else t["path_delay_ms"]["one_way"], 2)


def _shutdown_crosses_close(t, pkts, side):
    """The FINs cross; the server ACKs the client's (CLOSING); the client, with a byte
    unread, resets with an RST+ACK that leaves out the server's FIN."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSING", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]][0] == "TCP_ABORT_ON_CLOSE"
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    assert cfin.ack == sfin.seq and sfin.ack == cfin.seq, "neither FIN acknowledges the other"
    (c_rst,) = [p for p in sent_by(ps, c["client"]) if p.rst and p.has_ack]
    assert c_rst.ack == sfin.seq and [p for p in sent_by(ps, c["server"])
                                      if not p.fin and p.ack == cfin.seq + 1]


def _abort_out_of_window(t, pkts, side):
    """The server's data acknowledges the client's first 1000 bytes only; the client, in
    FIN_WAIT1 after close(), aborts on it with a bare RST numbered as that ACK field,
    behind what the server has by then; the server's ACK of the FIN then gets the RST
    that ends its CLOSE_WAIT."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]] == ["TCP_ABORT_ON_DATA",
                                                                      "NO_SOCKET"]
    assert len(c["sides"]["server"]["rst_received"]) == 1
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    late = [p for p in sent_by(ps, c["server"]) if p.plen][-1]
    first, second = [p for p in sent_by(ps, c["client"]) if p.rst]
    assert late.plen == 300 and late.ack == cfin.seq and first.seq == late.ack
    assert second.seq == cfin.seq + cfin.plen + 1 and not first.has_ack


def chk_abort_races_fin(t, pkts):
    """An explorer run kept as recorded: the client's abort (SO_LINGER 0) takes its socket
    out of the lookup table as the server's FIN arrives; the FIN finds no socket, and the
    reply path's bare RST answering it leaves before the socket's own RST+ACK, whose ACK
    field leaves the FIN out.  The client never was in CLOSE_WAIT."""
    assert t["topology"]["kind"] == "veth" and t["vantage"] == "client"
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]] == ["NO_SOCKET", "TCP_STATE"]
    ps = conn_pkts(pkts, c)
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    bare, own = [p for p in sent_by(ps, c["client"]) if p.rst]
    assert ps[-2:] == [bare, own] and sfin.ts < bare.ts < own.ts
    assert not bare.has_ack and bare.seq == sfin.ack, "the reply path's answer to the FIN"
    assert own.has_ack and own.ack == sfin.seq, "its socket's own: rcv_nxt short of the FIN"
    closed = trans(c, "client", "ESTABLISHED", "CLOSED")["ts"]
    assert closed < c["sides"]["client"]["rst_sent"][0]["ts"] and closed <= bare.ts + 10e-6
    assert len(c["sides"]["server"]["rst_received"]) == 1


def chk_abort_answers_older_data(t, pkts):
    """An explorer run kept as recorded: the server's byte reaches the client after
    close(), which aborts with a bare RST at the byte's ACK field; on the server's capture
    that RST comes after the server's ACK of the client's data and its own RST+ACK (lost
    at the client's input): it answers the segment before them.  The client connects
    again from the same port."""
    assert t["vantage"] == "server" and t["topology"]["kind"] == "delay"
    old, new = t["connections"]
    assert (old["incarnation"], new["incarnation"]) == (0, 1)
    assert states(old, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert states(old, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "CLOSED"]
    assert [r["reason"] for r in old["sides"]["client"]["rst_sent"]] == ["TCP_ABORT_ON_DATA",
                                                                       "NO_SOCKET"]
    assert [r["reason"] for r in old["sides"]["server"]["rst_sent"]] == ["TCP_STATE"]
    ps = conn_pkts(pkts, old)
    again = [p for p in ps if p.syn and not p.has_ack][1]  # (#1's SYN: the same 4-tuple)
    ps = [p for p in ps if p.ts < again.ts]
    (byte,) = [p for p in sent_by(ps, old["server"]) if p.plen == 1]
    (cfin,) = [p for p in sent_by(ps, old["client"]) if p.fin]
    (srst,) = [p for p in sent_by(ps, old["server"]) if p.rst]
    first, second = [p for p in sent_by(ps, old["client"]) if p.rst]
    between = [p for p in sent_by(ps, old["server"]) if byte.ts < p.ts < first.ts]
    assert byte.ts < cfin.ts < srst.ts < first.ts < second.ts and len(between) == 2
    assert not first.has_ack and first.seq == byte.ack != between[0].ack, "the byte's"
    assert not second.has_ack and second.seq == between[0].ack, "the ACK's, no socket"
    _lag(trans(old, "client", "FIN_WAIT1", "CLOSED")["ts"], first, -10.0)  # (sent as it closed)


def chk_reuse_challenged(t, pkts):
    """A CLOSE_WAIT leak; the client connect()s again from the same port (tcp_tw_reuse takes
    over its FIN_WAIT2 mini-socket); the server's old socket answers the SYN with a
    challenge ACK of the old numbers, the client's SYN_SENT socket answers that with a bare
    RST at the old socket's rcv_nxt, which resets it; the SYN sent again opens #1."""
    assert t["vantage"] == "client" and t["topology"]["kind"] == "delay"
    old, new = t["connections"]
    assert (old["incarnation"], new["incarnation"]) == (0, 1)
    assert states(old, "client") == CLIENT_FIRST[:4] + ["CLOSED"]
    assert states(old, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "CLOSED"]
    assert [r["reason"] for r in new["sides"]["client"]["rst_sent"]] == ["TCP_INVALID_ACK_SEQUENCE"]
    assert states(new, "client")[-1] == "TIME_WAIT" and states(new, "server")[-1] == "CLOSED"
    ps = conn_pkts(pkts, old)
    syns = [p for p in ps if p.syn and not p.has_ack]
    (challenge,) = [p for p in sent_by(ps, old["server"]) if syns[1].ts < p.ts < syns[2].ts]
    (rst,) = [p for p in ps if p.rst]
    (cfin,) = [p for p in sent_by(ps, old["client"]) if p.fin and p.ts < syns[1].ts]
    assert len(syns) == 3 and syns[1].seq == syns[2].seq != syns[0].seq
    assert not challenge.syn and challenge.ack == cfin.seq + 1, "the old connection's numbers"
    assert syns[1].ts < challenge.ts < rst.ts < syns[2].ts
    assert not rst.has_ack and rst.seq == challenge.ack, "at the old socket's rcv_nxt"
    # (the old socket is reset one one-way delay after the client-side capture saw the RST)
    _lag(trans(old, "server", "CLOSE_WAIT", "CLOSED")["ts"], rst, 10.0)
    assert trans(old, "client", "FIN_WAIT2", "CLOSED")["ts"] >= syns[1].ts - 0.003


CHECKS = {
    "four_way": chk_four_way, "three_way": chk_three_way, "server_first": chk_server_first,
    "half_close": chk_half_close, "simultaneous": chk_simultaneous, "rst_linger0": chk_rst_linger0,
    "rst_unread": chk_rst_unread, "lost_last_ack": chk_lost_last_ack,
    "fin_wait2_timeout": chk_fin_wait2_timeout, "reuse_server_tw": chk_reuse_server_tw,
    "reuse_client_tw": chk_reuse_client_tw, "tw_assassinated": chk_tw_assassinated,
    "close_wait_leak": chk_close_wait_leak, "ipv6": chk_ipv6,
    "any_sll2": chk_any_sll2, "pcapng_server_first": chk_pcapng, "two_vantage": chk_two_vantage,
    "mixed_200": chk_mixed, "nano_three_way": chk_nano, "vlan8021q": chk_vlan, "rawip_tun": chk_rawip,
    "loopback_four_way": chk_loopback,
    "vantage_client": chk_vantage_client, "vantage_server": chk_vantage_server,
    "vantage_both": chk_vantage_both, "delay_client_side": chk_delay_client_side,
    "delay_server_side": chk_delay_server_side,
    "data_after_close": chk_data_after_close, "fin_then_abort": chk_fin_then_abort,
    "rst_lost": chk_rst_lost,
    "reset_after_lost_fin_server_side": chk_reset_after_lost_fin,
    "zero_window_in_half_close_server_side": chk_zero_window_in_half_close,
    "abort_races_fin_client_side": chk_abort_races_fin,
    "reuse_challenged_client_side": chk_reuse_challenged,
    "reset_soon_after_lost_fin_server_side": chk_reset_soon_after_lost_fin,
    "abort_answers_older_data_server_side": chk_abort_answers_older_data,
}


def _fin_wait2_after_lost_fin(t, pkts, side):
    """The run behind orphan_fin_wait2_takes_rst and half_closed_fin_wait2_challenges_rst:
    the client's FIN lost on its way into the server, whose FIN leaves it out and takes the
    client to CLOSING; the client's ACK of that takes the server to FIN_WAIT2; the client
    close()s with data unread: an RST+ACK one past the server's rcv_nxt."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "CLOSING", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSED"]
    assert c["sides"]["client"]["rst_sent"][0]["reason"] == "TCP_ABORT_ON_CLOSE"
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    assert sfin.ack == cfin.seq
    assert not any(p.has_ack and p.ack == cfin.seq + 1 for p in sent_by(ps, c["server"]))
    (ack,) = [p for p in sent_by(ps, c["client"]) if p.ts > sfin.ts and p.ack == sfin.seq + 1
              and not p.rst]
    _lag(trans(c, "server", "FIN_WAIT1", "FIN_WAIT2")["ts"], ack, _far(t, side, "server"))
    (abort,) = [p for p in sent_by(ps, c["client"]) if p.rst and p.has_ack]
    assert abort.seq == cfin.seq + 1 and abort.ts > ack.ts
    return c, ps, cfin, sfin, abort


def _orphan_fin_wait2_takes_rst(t, pkts, side):
    """The server close()d: orphaned in FIN_WAIT2, a timewait mini-socket, which the RST+ACK
    kills (in its window): nothing after it, no reset the tracepoints see (they cover full
    sockets only), and the mini-socket gone from /proc as the RST arrives."""
    c, ps, cfin, sfin, abort = _fin_wait2_after_lost_fin(t, pkts, side)
    assert len(c["sides"]["client"]["rst_sent"]) == 1
    assert c["sides"]["server"]["rst_received"] == []
    assert ps[-1] is abort
    gone = trans(c, "server", "FIN_WAIT2", "CLOSED")
    assert gone["evidence"] == "proc_poll" and "mini-socket" in gone["note"]
    lo, hi = gone["window"]
    arrival = abort.ts + _far(t, side, "server") / 1e3
    assert lo - 0.001 < arrival < hi + 0.001, (lo - arrival, hi - arrival)


def _half_closed_fin_wait2_challenges_rst(t, pkts, side):
    """The server shutdown(): in FIN_WAIT2 still a full socket, which answers the RST+ACK
    with a challenge ACK at its rcv_nxt (the client's FIN); the client's bare RST at that
    number, from no socket, closes it."""
    c, ps, cfin, sfin, abort = _fin_wait2_after_lost_fin(t, pkts, side)
    assert [r["reason"] for r in c["sides"]["client"]["rst_sent"]] == \
        ["TCP_ABORT_ON_CLOSE", "NO_SOCKET"]
    (challenge,) = [p for p in sent_by(ps, c["server"]) if p.ts > abort.ts]
    assert not challenge.plen and not challenge.fin and not challenge.rst
    assert challenge.ack == cfin.seq and challenge.seq == sfin.seq + 1
    (bare,) = [p for p in sent_by(ps, c["client"]) if p.ts > challenge.ts]
    assert bare.rst and not bare.has_ack and bare.seq == challenge.ack
    (taken,) = c["sides"]["server"]["rst_received"]
    _lag(taken["ts"], bare, _far(t, side, "server"))
    _lag(trans(c, "server", "FIN_WAIT2", "CLOSED")["ts"], bare, _far(t, side, "server"))


def _fin_copies_cross(t, pkts, side):
    """The server's FIN+ACK (which ACKs the client's FIN) lost on its way into the client;
    both retransmission timers fire together: the client takes the server's copy, FIN and
    ACK in one segment, straight to TIME_WAIT (through FIN_WAIT2 for no time), though its
    own copy left within a millisecond of that one's arrival; the server in LAST_ACK
    answers the client's copy with an ACK, and the client's ACK of the FIN closes it."""
    c = only(t)
    assert states(c, "client") == CLIENT_FIRST
    assert states(c, "server") == PASSIVE_SERVER
    ps = conn_pkts(pkts, c)
    cfins = [p for p in sent_by(ps, c["client"]) if p.fin]
    sfins = [p for p in sent_by(ps, c["server"]) if p.fin]
    assert len(cfins) == len(sfins) == 2 and len({p.seq for p in cfins + sfins}) == 2
    assert all(p.ack == cfins[0].seq + 1 for p in sfins), "each server FIN ACKs the client's"
    assert 0.15 < sfins[1].ts - sfins[0].ts < 0.4 and 0.15 < cfins[1].ts - cfins[0].ts < 0.4
    assert abs(cfins[1].ts - sfins[1].ts) < 0.001, "the copies cross"
    fw2 = trans(c, "client", "FIN_WAIT1", "FIN_WAIT2")["ts"]
    tw = trans(c, "client", "FIN_WAIT2", "TIME_WAIT")["ts"]
    assert tw - fw2 < 0.001 and abs(fw2 - sfins[1].ts) < 0.002
    assert trans(c, "client", "FIN_WAIT1", "FIN_WAIT2")["ts"] > sfins[0].ts + 0.1
    (cack,) = [p for p in sent_by(ps, c["client"]) if not p.fin and p.ack == sfins[0].seq + 1]
    assert abs(trans(c, "server", "LAST_ACK", "CLOSED")["ts"] - cack.ts) < 0.002


def _lost_fin_then_capture_stops(t, pkts, side):
    """The server's FIN, lost on its way into the client in FIN_WAIT2, is the last segment
    captured; dumpcap's pcapng records that the capture stopped (isb_endtime, written in
    microseconds) about 1.5 s later, long after the client would have ACKed it and before
    the server sent it again: the client stays in FIN_WAIT2, the server in LAST_ACK."""
    c = only(t)
    assert states(c, "client") == CLIENT_FIRST[:4]
    assert states(c, "server") == PASSIVE_SERVER[:4]
    ps = conn_pkts(pkts, c)
    (cfin,) = [p for p in sent_by(ps, c["client"]) if p.fin]
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    assert ps[-1] is sfin and sfin.ack == cfin.seq + 1
    assert trans(c, "client", "FIN_WAIT1", "FIN_WAIT2")["ts"] < sfin.ts
    # (on the client's interface one way, 10 ms, after it)
    assert 0 <= sfin.ts - trans(c, "server", "CLOSE_WAIT", "LAST_ACK")["ts"] < \
        (0.002 if side == "server" else 0.012)
    cap = pcapread.read_capture(SAMPLES / t["capture"])
    assert cap.fmt == "pcapng" and len(cap.stopped) == 1
    stopped = cap.stopped[0] / 1e6
    # (a second more than the analysis takes the last second before a recorded end to show)
    assert sfin.ts + 1.4 < stopped and abs(stopped - t["capture_end_ts"]) < 0.05


def _abort_in_last_ack(t, pkts, side):
    """The server shutdown()s (LAST_ACK), then close()s with SO_LINGER 0 half a millisecond
    later: from LAST_ACK that sends no RST, the socket is gone.  Its FIN (which ACKs the
    client's) is lost into the client, which sends its own FIN again; the copy finds no
    socket, and the reply path's bare RST, numbered as the copy's ACK field, closes the
    client."""
    c = only(t)
    assert states(c, "client") == CLIENT_FIRST[:3] + ["CLOSED"]
    assert states(c, "server") == PASSIVE_SERVER
    ps = conn_pkts(pkts, c)
    cfins = [p for p in sent_by(ps, c["client"]) if p.fin]
    (sfin,) = [p for p in sent_by(ps, c["server"]) if p.fin]
    (rst,) = [p for p in ps if p.rst]
    assert len(cfins) == 2 and cfins[0].seq == cfins[1].seq and sfin.ack == cfins[0].seq + 1
    assert ps[-1] is rst and not rst.has_ack and rst.seq == cfins[1].ack == sfin.seq
    last_ack = trans(c, "server", "CLOSE_WAIT", "LAST_ACK")["ts"]
    closed = trans(c, "server", "LAST_ACK", "CLOSED")["ts"]
    assert closed - last_ack < 0.002 and rst.ts - closed > 0.15, "gone long before the RST"
    assert c["sides"]["server"]["rst_sent"] == []  # (the reply path's RST: no socket's)
    # (captured on the server's interface, the RST reaches the client one way, 10 ms, later)
    assert 0 <= trans(c, "client", "FIN_WAIT1", "CLOSED")["ts"] - rst.ts < \
        (0.002 if side == "client" else 0.012)


def _queued_fin_aborts_on_data(t, pkts, side):
    """The server close()s with most of 150 kB unsent: FIN_WAIT1, its FIN queued behind the
    data, never on the wire.  The client's data reaches it after that and aborts it
    (TCPAbortOnData): the reply path's bare RST, numbered as that data's ACK field, while
    data of the server's is still unacknowledged; the same answer to the client's next
    segments, the first ones out of window, until one is at the client's rcv_nxt."""
    c = only(t)
    assert states(c, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "CLOSED"]
    assert [r["reason"] for r in c["sides"]["server"]["rst_sent"]] == ["TCP_ABORT_ON_DATA"]
    ps = conn_pkts(pkts, c)
    assert not any(p.fin for p in ps), "the FIN never left"
    rsts = [p for p in ps if p.rst]
    assert rsts and all(p.src == c["server"]["ip"] and not p.has_ack for p in rsts)
    first = rsts[0]
    before = [p for p in ps if p.ts < first.ts]
    data = [p for p in sent_by(before, c["client"]) if p.plen][-1]
    assert first.seq == data.ack, "the RST answers the client's data"
    sent = max(p.seq + p.plen for p in sent_by(before, c["server"]))
    assert sent - first.seq > 10000, "with much of the server's data unacknowledged"
    fw1 = trans(c, "server", "ESTABLISHED", "FIN_WAIT1")["ts"]
    closed = trans(c, "server", "FIN_WAIT1", "CLOSED")["ts"]
    assert fw1 + 0.002 < closed
    # (captured on the client's interface, the RST arrives one way, 10 ms, after it left)
    assert 0 <= first.ts - closed < (0.002 if side == "server" else 0.012)


def _fin_probe_crosses_ack(t, pkts, side):
    """The client's FIN (on its second 300 bytes) is ACKed late (a delayed ACK), and its
    tail loss probe sends the FIN again before that ACK arrives: the ACK took the client to
    FIN_WAIT2 when it arrived, after the copy left; the server answers the copy with a
    duplicate ACK."""
    c = only(t)
    assert states(c, "client") == CLIENT_FIRST[:4]
    assert states(c, "server") == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT"]
    ps = conn_pkts(pkts, c)
    first, copy = [p for p in sent_by(ps, c["client"]) if p.fin]
    assert copy.seq == first.seq and copy.plen == first.plen == 300
    acks = [p for p in sent_by(ps, c["server"]) if p.ack == first.seq + first.plen + 1]
    assert len(acks) == 2 and copy.ts < acks[1].ts
    assert acks[0].ts - first.ts > 0.02, "a delayed ACK"
    fw2 = trans(c, "client", "FIN_WAIT1", "FIN_WAIT2")["ts"]
    # the ACK reached the client after the copy left it: on the server's interface the copy
    # comes less than the round trip after the ACK; on the client's, before it
    if side == "server":
        assert 0 < copy.ts - acks[0].ts < 0.02 and 0 < fw2 - acks[0].ts < 0.012
    else:
        assert copy.ts < acks[0].ts and abs(fw2 - acks[0].ts) < 0.002


VETH_RUNS = {"fin_copies_cross"}
"""The runs captured on both sides of a bare veth pair; the others cross the delay path."""


def _both_sides(name, check, side):
    """The check of run ``name``, captured on both sides over the delay path (or a bare veth
    pair, :data:`VETH_RUNS`), for one side's capture; and the two captures are of one run,
    whose connection is the one its description names."""
    def run(t, pkts):
        assert t["vantage"] == side
        assert t["topology"]["kind"] == ("veth" if name in VETH_RUNS else "delay")
        _same_run(t, [f"{name}_client_side", f"{name}_server_side"])
        c = only(t)
        named = f"{c['client']['ip']}:{c['client']['port']} -> {c['server']['ip']}:{c['server']['port']}"
        assert named in t["description"], named
        check(t, pkts, side)
    return run


# the runs captured on both sides: one check, told which side's capture it has
CHECKS.update({f"{name}_{side}_side": _both_sides(name, check, side)
               for name, check in (("close_race", _close_race), ("crossing_aborts", _crossing_aborts),
                                   ("close_crosses_data", _close_crosses_data),
                                   ("abort_crosses_fin", _abort_crosses_fin),
                                   ("shutdown_crosses_close", _shutdown_crosses_close),
                                   ("abort_out_of_window", _abort_out_of_window),
                                   ("abort_in_closing", _abort_in_closing),
                                   ("lost_fin_crossing", _lost_fin_crossing),
                                   ("fin_behind_lost_data", _fin_behind_lost_data),
                                   ("fin_ack_lost", _fin_ack_lost),
                                   ("data_after_lost_fin", _data_after_lost_fin),
                                   ("ack_crosses_abort", _ack_crosses_abort),
                                   ("closing_abort_crosses_ack", _closing_abort_crosses_ack),
                                   ("abort_past_lost_fin", _abort_past_lost_fin),
                                   ("challenge_ack_after_lost_data", _challenge_ack_after_lost_data),
                                   ("abort_on_data_behind_lost_data", _abort_on_data_behind_lost_data),
                                   ("reset_at_a_hole", _reset_at_a_hole),
                                   ("abort_on_fin_behind_lost_data", _abort_on_fin_behind_lost_data),
                                   ("fin_lost_before_delayed_ack", _fin_lost_before_delayed_ack),
                                   ("close_race_fin_lost", _close_race_fin_lost),
                                   ("rst_lost_before_delayed_ack", _rst_lost_before_delayed_ack),
                                   ("abort_crosses_abort_on_data", _abort_crosses_abort_on_data),
                                   ("last_ack_gone", _last_ack_gone),
                                   ("abort_short_of_fin", _abort_short_of_fin),
                                   ("fin_lost_into_established", _fin_lost_into_established),
                                   ("keepalive_in_half_close", _keepalive_in_half_close),
                                   ("keepalive_timeout", _keepalive_timeout),
                                   ("lost_data_acking_fin", _lost_data_acking_fin),
                                   ("abort_on_data_crosses_abort", _abort_on_data_crosses_abort),
                                   ("orphan_fin_wait2_takes_rst", _orphan_fin_wait2_takes_rst),
                                   ("half_closed_fin_wait2_challenges_rst",
                                    _half_closed_fin_wait2_challenges_rst),
                                   ("fin_copies_cross", _fin_copies_cross),
                                   ("lost_fin_then_capture_stops", _lost_fin_then_capture_stops),
                                   ("abort_in_last_ack", _abort_in_last_ack),
                                   ("queued_fin_aborts_on_data", _queued_fin_aborts_on_data),
                                   ("fin_probe_crosses_ack", _fin_probe_crosses_ack))
               for side in ("client", "server")})
