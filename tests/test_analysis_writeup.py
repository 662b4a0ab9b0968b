"""The reconstruction of the write-up's experiment, step by step as the write-ups tell it.

sample_pcaps/writeup_reconstructed.pcap is a reconstruction (tools/reconstruct_writeup.py), not a
capture; what it pins is the write-ups' own account: ../shared/seeds/003_* (the experiment) and
000_* (the Linux 5.8 steps 1-6 of the four-way close).
"""

from __future__ import annotations

import json
import pathlib

from teardown_analyzer.analysis import analyze

PCAP = str(pathlib.Path(__file__).resolve().parent.parent / "sample_pcaps"
           / "writeup_reconstructed.pcap")


def _conn():
    report = analyze([PCAP])
    assert len(report.connections) == 1
    return report.connections[0]


def test_the_four_way_close_step_by_step():
    c = _conn()
    assert c.client == ("172.16.48.13", 32806) and c.server == ("172.16.48.1", 5002)
    assert c.handshake == "seen" and c.kind == "four-way" and c.initiator == "client"
    client = [(s.state, s.packet) for s in c.client_states]
    server = [(s.state, s.packet) for s in c.server_states]
    # step 1: the client's close(): FIN_WAIT1, its FIN is packet 6
    # step 2: the server receives the FIN: CLOSE_WAIT; its ACK is packet 7
    # step 3: the client receives that ACK: FIN_WAIT2
    # step 4: the server's close(): LAST_ACK, its FIN is packet 8
    # step 5: the client receives the FIN: TIME_WAIT, and ACKs it (packet 9)
    # step 6: the server receives the ACK: CLOSED
    assert client == [("SYN_SENT", 1), ("ESTABLISHED", 2), ("FIN_WAIT1", 6), ("FIN_WAIT2", 7),
                      ("TIME_WAIT", 8)]
    assert server == [("SYN_RECV", 1), ("ESTABLISHED", 3), ("CLOSE_WAIT", 6), ("LAST_ACK", 8),
                      ("CLOSED", 9)]
    # "the connection enters half-close" until the server's process is stopped by hand
    assert abs(c.half_close_s - 12.0415) < 1e-9 and c.half_close_bytes == 0
    # the FIN carries the ACK of the server's last data (ISN 0x7e08ba9f + 1)
    fin = c.directions["client"]["fin"]
    assert fin["seq"] == 0x7D2 and fin["packet"] == 6 and fin["acked_packet"] == 7
    assert c.directions["server"]["isn"] == 0x7E08BA9F
    # TIME_WAIT on the client, and the capture ends long before the 60 s timer (step 7)
    assert c.time_wait["side"] == "client" and c.time_wait["entered_packet"] == 8
    assert c.time_wait["end"].startswith("capture ended 0.000 s into TIME_WAIT")
    assert c.client_final == "TIME_WAIT" and c.server_final == "CLOSED"
    assert c.zeek_state == "SF" and not c.rsts and not c.anomalies


def test_time_wait_expiry_is_inferred_only_when_the_capture_runs_past_it(run_cli):
    code, out, _ = run_cli(PCAP, "--format", "json", "--time-wait", "0")
    conn = json.loads(out)["connections"][0]
    last = conn["sides"]["client"]["states"][-1]
    assert last["state"] == "CLOSED" and last["inferred"] is True and last["event"] == "TIMER"
    assert conn["time_wait"]["end"] == "inferred from the timer"


def test_json_schema_fields(run_cli):
    code, out, err = run_cli(PCAP, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "teardown-analyzer/1"
    assert doc["captures"][0]["packets"] == 9 and doc["captures"][0]["skipped"] == {}
    conn = doc["connections"][0]
    for key in ("id", "client", "server", "first_ts", "last_ts", "handshake", "close", "sides",
                "time_wait", "rsts", "anomalies", "zeek_state"):
        assert key in conn
    assert set(conn["close"]) >= {"kind", "initiator", "half_close_s", "half_close_bytes"}
    assert conn["sides"]["server"]["final_state"] == "CLOSED"
    assert conn["first_ts"] == 1262332800.0


def test_ladder_and_kernel_paths(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = run_cli(PCAP, "--flow", "1", "--kernel")
    assert code == 0
    assert "tcp_close -> tcp_close_state -> tcp_set_state(FIN_WAIT1); tcp_send_fin" in out
    assert "tcp_done -> tcp_set_state(CLOSE)" in out
    code, out, err = run_cli(PCAP, "--flow", "7")
    assert code == 2 and "no connection 7" in err


def test_hex_flow_context_as_the_writeup_explains_it(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = run_cli("hex", PCAP, "--packet", "6")
    assert "ack 0x7e08baa0 = the server's ISN 0x7e08ba9f + 1 (the SYN consumes one sequence number)" in out
    assert "after this packet: client FIN_WAIT1, server CLOSE_WAIT" in out
    code, out, _ = run_cli("hex", PCAP, "--packet", "7", "--lang", "zh")
    assert "0x000007d3 = 客户端的初始序号0x000007bb + 24(SYN占一个序号; 22字节数据; FIN占一个序号)" in out
    assert "本报文之后: 客户端 FIN_WAIT2, 服务端 CLOSE_WAIT" in out


def test_other_formats(run_cli):
    code, out, _ = run_cli(PCAP, "--format", "csv")
    header, row = out.splitlines()
    assert header.startswith("id,capture,client_ip") and ",four-way,client," in row
    code, out, _ = run_cli(PCAP, "--format", "jsonl")
    assert json.loads(out)["close"]["kind"] == "four-way"
    code, out, _ = run_cli(PCAP, "--format", "markdown")
    assert "| 1 | 172.16.48.13:32806 | 172.16.48.1:5002 | client | four-way |" in out
