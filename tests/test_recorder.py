"""tools/gen_samples.py's truth builder (the kernel's record of a run) on what real runs
recorded.

tests/records/ holds three runs of tools/explore_kernel.py, kept as recorded: each run's
traced kernel events and /proc polls (``<run>.record.json``) and its two captures (the
client's and the server's interface).  In each, two sockets held one 4-tuple at a time,
which the tracepoint cannot tell apart (it names a socket by its 4-tuple):

- explore_1013_7 and explore_1013_9 (``--again --ipv6``, veth): the client's connect()
  from its old port failed (EADDRNOTAVAIL) while its old socket, in CLOSING and in
  LAST_ACK, still held the 4-tuple; that socket's last transition came afterwards.
- explore_1012_17 (``--again --fin-timeout 1``, veth): the server's TIME_WAIT took the
  client's new SYN, and the new connection's close put the server in TIME_WAIT again
  before the next /proc poll, which saw one timewait socket throughout.

Each test's truth is checked against the packets that show it, and against the analysis.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools")]

import gen_samples as gs  # noqa: E402
import pcapread  # noqa: E402

from teardown_analyzer.analysis import analyze  # noqa: E402

RECORDS = Path(__file__).parent / "records"


def built(run: str, side: str = "client"):
    """The run's connections and failed connect()s as the truth builder reads its record,
    for the capture on ``side``'s interface; and that capture's packets."""
    rec = json.loads((RECORDS / f"{run}.record.json").read_text())
    for e in rec["events"] + rec["poll"]:
        for k in ("local", "remote"):
            if k in e:
                e[k] = tuple(e[k])
    pkts = pcapread.tcp_packets(RECORDS / f"{run}_{side}_side.pcap")
    pk_s = pcapread.tcp_packets(RECORDS / rec["server_capture"])
    conns, lives, idx = gs.build_truth(None, rec["events"], rec["poll"], pkts, rec["capture_end"], {},
                                       server_pkts=pk_s, server_where=rec["server_where"])
    return conns, gs.failed_connects(lives, idx), pkts


def ack_of_fin(pkts, sender):
    """The last segment that acknowledges ``sender``'s (last) FIN."""
    fin = [p for p in pkts if p.fin and (p.src, p.sport) == sender][-1]
    return [p for p in pkts if (p.dst, p.dport) == sender and p.has_ack and p.ack == fin.seq + 1][-1]


@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize("run, last", [("explore_1013_7", ("CLOSING", "TIME_WAIT")),
                                       ("explore_1013_9", ("LAST_ACK", "CLOSED"))])
def test_a_failed_connect_on_a_held_4_tuple_takes_neither_the_old_sockets_events_nor_an_incarnation(
        run, last, side):
    conns, failed, pkts = built(run, side)
    (c,) = conns
    client = (c["client"]["ip"], c["client"]["port"])
    # the old socket's last transition, which the failed connect() used to take
    t = c["sides"]["client"]["transitions"][-1]
    assert (t["from"], t["to"]) == last
    # ... came with the server's ACK of the client's retransmitted FIN
    ack = ack_of_fin(pkts, client)
    assert 0 <= t["ts"] - ack.ts < 0.001
    assert c["sides"]["client"]["final_state"] == last[1]
    # the connect() is listed as failed, not paired with a server socket
    (f,) = failed
    assert (f["client"]["port"], f["server"]["port"]) == (client[1], c["server"]["port"])
    assert not any((p.src, p.sport) == client and p.syn and abs(p.ts - f["ts"]) < 0.1 for p in pkts)
    # the analysis agrees
    (ours,) = analyze([str(RECORDS / f"{run}_{side}_side.pcap")]).connections
    assert ours.client_final == last[1]


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_time_wait_taken_over_and_followed_by_the_next_before_a_poll_is_two(side):
    conns, failed, pkts = built("explore_1012_17", side)
    assert not failed
    old, new = (c["sides"]["server"] for c in conns)
    # the old TIME_WAIT ends at the new SYN as the server got it (the server's capture)
    server_pkts = pcapread.tcp_packets(RECORDS / "explore_1012_17_server_side.pcap")
    syn = [p for p in server_pkts if p.syn and not p.has_ack][1]
    end = old["transitions"][-1]
    assert (end["from"], end["to"], end["evidence"]) == ("TIME_WAIT", "CLOSED", "tracepoint")
    assert end["ts"] == round(syn.ts, 6)
    assert "taken over by the next incarnation" in end["why"]
    # the new socket's own TIME_WAIT, entered when the client's FIN had come
    tw = new["transitions"][-1]
    assert (tw["from"], tw["to"], new["final_state"]) == ("FIN_WAIT2", "TIME_WAIT", "TIME_WAIT")
    assert "proc_poll_ts" not in tw
    fin = [p for p in pkts if p.fin and p.dport == 5030][-1]
    assert fin.ts <= tw["ts"] + 0.0002
    # the analysis agrees
    ours = list(analyze([str(RECORDS / f"explore_1012_17_{side}_side.pcap")]).connections)
    assert [c.server_final for c in ours] == ["CLOSED", "TIME_WAIT"]
