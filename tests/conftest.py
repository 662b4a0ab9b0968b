"""Shared fixtures: the real packets, the sample captures, and running the CLI in-process."""

from __future__ import annotations

import gzip
import pathlib
import struct
import sys
from typing import Callable

import pytest

# tests/ is not a package; make ``import pcapbuild`` work whatever the import mode.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import pcapbuild  # noqa: E402


def sample_captures() -> list[pathlib.Path]:
    """Every capture in ``sample_pcaps/`` (whichever are present right now)."""
    pats = ("*.pcap", "*.pcapng", "*.pcap.gz", "*.pcapng.gz")
    return sorted({p for pat in pats for p in pcapbuild.SAMPLES.glob(pat)})


CUT_RECORDS = 20_000


@pytest.fixture(scope="session")
def cut(tmp_path_factory: pytest.TempPathFactory) -> Callable[[pathlib.Path], pathlib.Path]:
    """For the tests run on every sample that compare two ways of reading it: a classic
    pcap of more than CUT_RECORDS records, cut to its first CUT_RECORDS (compressed again
    if it was).  That is port_reuse.pcap.gz: 200,000 records, one pattern repeated; its
    first 20,000 are 2,000 connections, all but the first eight on a reused port.  The
    whole capture is checked against its record in tests/test_port_reuse.py."""
    made: dict[pathlib.Path, pathlib.Path] = {}

    def cut_of(path: pathlib.Path) -> pathlib.Path:
        if path in made or not path.name.endswith((".pcap", ".pcap.gz")):
            return made.get(path, path)
        opener = gzip.open if path.suffix == ".gz" else open
        blob = opener(path, "rb").read()
        order = "<" if blob[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        pos, n = 24, 0
        while pos + 16 <= len(blob) and n < CUT_RECORDS:
            pos += 16 + struct.unpack_from(order + "I", blob, pos + 8)[0]
            n += 1
        made[path] = path
        if pos < len(blob):
            made[path] = tmp_path_factory.mktemp("cut") / path.name
            with opener(made[path], "wb") as out:
                out.write(blob[:pos])
        return made[path]

    return cut_of


@pytest.fixture(scope="session")
def real_packets() -> list[bytes]:
    """The raw IPv4 packets of the reconstructed write-up capture (all TCP, 9 of them)."""
    return pcapbuild.writeup_packets()


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``teardown-analyze ARGS`` through ``cli.main``: (exit status, stdout, stderr)."""
    from teardown_analyzer.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out, err = capsys.readouterr()
        code = exc.value.code
        return (0 if code is None else int(code)), out, err

    return run


@pytest.fixture(scope="session")
def mix(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The benchmark generator's mix of closes, 1,500 connections (retransmitted FINs,
    IPv6, sequence numbers that wrap, RSTs, half-open and open connections)."""
    import subprocess
    out = tmp_path_factory.mktemp("mix") / "mix.pcap"
    subprocess.run([sys.executable, str(pcapbuild.SAMPLES.parent / "benchmarks" /
                                        "make_capture.py"),
                    "--connections", "1500", "--out", str(out)], check=True,
                   capture_output=True)
    return out


@pytest.fixture
def walked(monkeypatch: pytest.MonkeyPatch) -> list:
    """Per capture analysed with --jobs: its shares if it was walked by byte range
    (teardown_analyzer.pcapsplit), else None (split by connection only)."""
    from teardown_analyzer import analysis
    seen: list = []
    original = analysis._walked

    def spy(*args):  # type: ignore[no-untyped-def]
        found = original(*args)
        seen.extend(found)
        return found

    monkeypatch.setattr(analysis, "_walked", spy)
    return seen
