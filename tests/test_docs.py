"""The README's promises: the two set-up commands, CI running the second, help on every command."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.+?)\n```", text)[:2]


def test_readme_opens_with_the_two_commands():
    run, test = _readme_commands()
    assert "pip install" in run and "teardown-analyze sample_pcaps/" in run
    capture = run.split("teardown-analyze ", 1)[1].split()[0]
    assert (ROOT / capture).is_file()
    assert "'.[test]'" in test and "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim():
    _, test = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test in ci.splitlines()


@pytest.mark.parametrize("args", [[], ["analyze"], ["hex"]])
def test_every_command_has_help(run_cli, args):
    code, out, _ = run_cli(*args, "--help")
    assert code == 0 and "Example" in out


def test_exit_statuses_documented():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
        assert code in text
