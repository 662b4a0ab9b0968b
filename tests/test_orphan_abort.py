"""A side that called close() and gets the ACK of its FIN on a segment whose FIN is past its
rcv_nxt: FIN_WAIT2, then an abort (TCPAbortOnData) and a bare RST from the reply path.

sample_pcaps/abort_on_fin_behind_lost_data_server_side.pcap, records (0-based): 7 the
client's 300 bytes (lost on their way into the server, after the capture point), 8 the
server's 300 bytes, 9 the server's FIN (its ACK field leaves the client's bytes out), 10
the client's ACK of the bytes, 11 the client's FIN, which ACKs the server's and is numbered
after the lost bytes, 12 the server's bare RST numbered as that FIN's ACK field.  The run
itself is checked against the kernel's record in test_accuracy.py and
test_sample_truth.py; the variants below are edited copies of it (records removed or
changed), not real captures, each built so that the kernel's code (tcp_rcv_state_process)
decides it as the run shows.
"""
from __future__ import annotations

import pcapbuild as pb
import pytest

from teardown_analyzer.analysis import analyze
from teardown_analyzer.flows import ABORT_ON_FIN_NOTE, FIN_WAIT1_GONE_NOTE

from test_rst_not_taken import _edited, _seq

_, RUN = pb.read_pcap(pb.SAMPLES / "abort_on_fin_behind_lost_data_server_side.pcap")
DATA, CLIENT_ACK, CLIENT_FIN, RST = 7, 10, 11, 12


def _only(records, tmp_path):
    path = tmp_path / "edited.pcap"
    path.write_bytes(pb.pcap(records, linktype=1))
    (c,) = analyze([str(path)]).connections
    return c


def _server(c):
    return [(e.state, e.packet, e.inferred) for e in c.server_states]


@pytest.mark.parametrize("side", ["client", "server"])
def test_the_fin_behind_lost_bytes_aborts_the_server_in_fin_wait2(side):
    (c,) = analyze([str(pb.SAMPLES / f"abort_on_fin_behind_lost_data_{side}_side.pcap")]).connections
    sfin = 10 if side == "server" else 11  # (the FINs cross the path: 1-based numbers)
    assert _server(c)[2:] == [("FIN_WAIT1", sfin, False), ("FIN_WAIT2", 12, False),
                              ("CLOSED", 13, False)]
    (rst,) = c.rsts
    assert rst["note"] == ABORT_ON_FIN_NOTE and rst["in_window"]
    assert [s.state for s in c.client_states][2:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert c.time_wait is None


def test_an_in_order_pure_fin_answered_so_found_no_socket(tmp_path):
    """Without the lost bytes the FIN is at the server's rcv_nxt: a socket in FIN_WAIT1
    would take it to TIME_WAIT and answer nothing, so the RST says it was gone."""
    records = [r if i not in (CLIENT_ACK, CLIENT_FIN) else _edited(r, seq=_seq(r) - 300)
               for i, r in enumerate(RUN) if i != DATA]
    c = _only(records, tmp_path)
    assert _server(c)[2:] == [("FIN_WAIT1", 9, False), ("CLOSED", 12, True)]
    (rst,) = c.rsts
    assert rst["note"] == FIN_WAIT1_GONE_NOTE
    assert c.time_wait is None


def test_a_fin_with_data_in_order_aborts_it_too(tmp_path):
    """The client's bytes come on its FIN instead, in order: data after close() all the
    same (end_seq - fin past rcv_nxt)."""
    fin = _edited(RUN[DATA], ts_ns=RUN[CLIENT_FIN].ts_ns, ack=_seq(RUN[RST]), flags=0x19)
    records = [fin if i == CLIENT_FIN else
               _edited(r, seq=_seq(r) - 300) if i == CLIENT_ACK else r
               for i, r in enumerate(RUN) if i != DATA]
    c = _only(records, tmp_path)
    assert _server(c)[2:] == [("FIN_WAIT1", 9, False), ("FIN_WAIT2", 11, False),
                              ("CLOSED", 12, False)]
    (rst,) = c.rsts
    assert rst["note"] == ABORT_ON_FIN_NOTE
