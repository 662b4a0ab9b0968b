"""The bounded fuzzing run for CI: mutated real captures, about 20 seconds, fixed seed.

The harness is ``tests/fuzz_captures.py``; the long run is by hand:
``python tests/fuzz_captures.py --seconds 600 --seed N``.
"""

from __future__ import annotations

import pytest

import fuzz_captures as fz

SEED = 20_240_607


def test_fuzz_bounded_run() -> None:
    """No exception but the project's own, documented statuses, valid JSON (~18 s)."""
    summary = fz.run(SEED, seconds=18, cli_every=6, timeout=15)
    assert summary.cases >= 200, summary.text()
    assert summary.cli_runs >= 30, summary.text()
    assert not summary.failures, summary.text()


def test_cases_replay_exactly() -> None:
    a, b = fz.mutate(SEED, 41), fz.mutate(SEED, 41)
    assert (a.sample, a.steps, a.data) == (b.sample, b.steps, b.data)
    assert fz.mutate(SEED, 42).data != a.data


def test_harness_reports_a_foreign_exception(monkeypatch, tmp_path) -> None:
    """A bug in the analyzer (here a KeyError) is a failure carrying its replay command."""
    import teardown_analyzer.analysis as analysis

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(analysis, "analyze", broken)
    summary = fz.run(SEED, seconds=5, iterations=3, cli_every=0,
                     save_dir=str(tmp_path))
    assert summary.cases == 3 and len(summary.failures) == 3
    text = str(summary.failures[0])
    assert "KeyError" in text and f"--replay {SEED}:0" in text
    assert (tmp_path / f"fuzz-{SEED}-0.pcap").exists()


def test_harness_reports_an_undocumented_status(monkeypatch) -> None:
    """The CLI's internal-error status (70) is a failure."""
    import teardown_analyzer.cli as cli

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "analyze", broken)
    monkeypatch.setattr(fz, "_library", lambda path, rng: "skipped")
    summary = fz.run(SEED, seconds=5, iterations=12, cli_every=1)
    bad = [f for f in summary.failures if "exit status 70" in f.error]
    assert bad, summary.text()


@pytest.mark.parametrize("index", range(3))
def test_replay_command_runs(index, capsys) -> None:
    assert fz.main(["--replay", f"{SEED}:{index}"]) == 0
    assert f"case {SEED}:{index}" in capsys.readouterr().out
