"""A FIN that reaches its receiver out of order, behind data lost after the capture point,
as the receiver's SACK blocks show it (RFC 2018), on real runs with the kernel's record.

tests/records/ holds two runs of tools/explore_kernel.py, kept as recorded (both
captures, and the truth file the explorer wrote from the kernel's record), on the delay
path (10 ms each way):

- explore_51_23: a data segment into the client is dropped; the server's FIN comes
  behind it.  The client ACKs short of the FIN with a SACK block up to it, and goes to
  CLOSE_WAIT only when the lost segment, sent again 30 ms later, fills the hole.
- explore_43_9: the same into a client that had sent its own FIN: the lost segment carried
  the ACK of that FIN, and so did the ones after it, which the client SACKs (FIN_WAIT2 at
  the first of them); TIME_WAIT when the hole is filled.

Before SACK blocks were read, both FINs were taken as they arrived: 20 to 30 ms early (on
the client's capture the ACK that repeats the client's last, short of the FIN, opens its
window, so it did not count as repeated).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools")]

from explore_kernel import differences  # noqa: E402

from teardown_analyzer.analysis import Options, analyze  # noqa: E402

RECORDS = Path(__file__).parent / "records"


def _truth_for(run: str, side: str, tmp_path: Path) -> Path:
    """The run's truth file, naming the capture on ``side``'s interface (every file of a
    run has the same kernel transitions)."""
    truth = json.loads((RECORDS / f"{run}_client_side.truth.json").read_text())
    truth["capture"] = str(RECORDS / f"{run}_{side}_side.pcap")
    path = tmp_path / f"{run}_{side}_side.truth.json"
    path.write_text(json.dumps(truth))
    return path


def _kernel(run: str, role: str, side: str) -> dict[str, float]:
    """When the kernel's record has ``role`` enter each state, as the capture on ``side``'s
    interface would show it: on the server's, the client's are a one-way delay later."""
    truth = json.loads((RECORDS / f"{run}_client_side.truth.json").read_text())
    lag = 0 if side == role else truth["path_delay_ms"]["one_way"] / 1e3
    return {t["to"]: t["ts"] - lag
            for t in truth["connections"][0]["sides"][role]["transitions"]}


@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize("run", ["explore_51_23", "explore_43_9"])
def test_a_fin_sacked_behind_a_hole_is_taken_when_the_hole_is_filled(run, side, tmp_path):
    assert differences(_truth_for(run, side, tmp_path)) == []
    path = str(RECORDS / f"{run}_{side}_side.pcap")
    (c,) = analyze([path]).connections
    (straight,) = analyze([path], Options(vectorised=False)).connections
    assert c == straight
    receipt = c.client_states[-1]
    kernel = _kernel(run, "client", side)[receipt.state]
    assert receipt.state == ("CLOSE_WAIT" if run == "explore_51_23" else "TIME_WAIT")
    assert abs(receipt.ts - kernel) < 0.001
    assert "SACKs it" in receipt.note and "filled the hole" in receipt.note
    assert c.anomalies == ("data before a FIN lost after the capture point",)


@pytest.mark.parametrize("side", ["client", "server"])
def test_the_ack_of_a_fin_lost_with_a_segment_comes_with_those_sacked_after_it(side):
    """explore_43_9: the lost segment carried the ACK of the client's FIN, and so did the
    two after it, which arrived (the client SACKs them): FIN_WAIT2 stands, not taken back
    when the FIN shows the hole."""
    (c,) = analyze([str(RECORDS / f"explore_43_9_{side}_side.pcap")]).connections
    states = [s.state for s in c.client_states]
    assert states == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
    fw2 = c.client_states[3]
    assert abs(fw2.ts - _kernel("explore_43_9", "client", side)["FIN_WAIT2"]) < 0.001
    assert "ACK of a FIN lost after the capture point" not in c.anomalies
