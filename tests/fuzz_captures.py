"""Fuzzing harness: mutate the real captures of ``sample_pcaps/`` and run the analyzer.

Every case takes one real capture and applies 1 to 4 mutations: bit flips, bytes set to
edge values, 32-bit fields overwritten (record and block lengths: 0, 2**31, ...),
truncation, deletion, duplication, splices with another capture, and gzip.  The mutated
bytes go to a file and through

* the library: ``analysis.analyze`` and every renderer of the report (JSON, JSON lines,
  CSV, Markdown, the table, the ladder); only the project's own errors
  (``TeardownError``) may escape, and JSON output must parse;
* every ``--cli-every`` cases, the command line (``cli.main``, in-process): ``analyze
  --format json``, ``hex --packet N`` and ``check --no-rst --format json``; the exit
  status must be a documented one for that command (never 70, the internal-error
  status), and what is printed as JSON must parse.

A case that runs longer than ``--timeout`` seconds counts as a failure (a hang).

Each case is reproducible from (seed, index) alone: ``random.Random(f"{seed}:{index}")``
picks the capture and the mutations.  A failure prints the command that replays it.

Usage::

    python tests/fuzz_captures.py --seconds 600 --seed 7        # the long run, by hand
    python tests/fuzz_captures.py --iterations 2000 --seed 7    # a fixed number of cases
    python tests/fuzz_captures.py --replay 7:1234 --save case.pcap   # one case again

``tests/test_fuzz.py`` runs it for about 20 s with a fixed seed in CI.  Exit status 0: no
failure; 1: failures (listed with their replay commands).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import pathlib
import random
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from teardown_analyzer.errors import TeardownError  # noqa: E402

# exit statuses each command may end with (README, "Exit statuses")
ALLOWED_STATUS = {"analyze": {0, 3}, "hex": {0, 2, 3}, "check": {0, 1, 3}}

_INTERESTING_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 0x10000, 12, 16, 28,
                   2**31 - 4, 2**24)
_INTERESTING_8 = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0x0F, 0xF0, 0x45, 0x4F, 0x60, 0x50)


CORPUS_MAX_BYTES = 1_000_000
"""Samples above this (the 20,000-connection port_reuse.pcap.gz) stay out of the corpus: a
mutant of one takes seconds to analyse and render, where the small ones take
milliseconds and exercise the same code."""


def sample_captures() -> list[pathlib.Path]:
    pats = ("*.pcap", "*.pcapng", "*.pcap.gz", "*.pcapng.gz")
    return sorted({p for pat in pats for p in SAMPLES.glob(pat)
                   if p.stat().st_size <= CORPUS_MAX_BYTES})


# --- mutations --------------------------------------------------------------------------

def _bitflip(rng: random.Random, data: bytearray, other: bytes) -> str:
    n = rng.choice((1, 1, 2, 4, 8, 32))
    for _ in range(n):
        pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
    return f"bitflip x{n}"


def _byteset(rng: random.Random, data: bytearray, other: bytes) -> str:
    pos = rng.randrange(len(data))
    data[pos] = rng.choice(_INTERESTING_8)
    return f"byte {pos} = 0x{data[pos]:02x}"


def _word(rng: random.Random, data: bytearray, other: bytes) -> str:
    """A 32-bit field (record caplen, block length ...) set to an edge value."""
    if len(data) < 4:
        return "word: too short"
    pos = rng.randrange(0, len(data) - 3) & ~3 if rng.random() < 0.7 else \
        rng.randrange(len(data) - 3)
    value = rng.choice(_INTERESTING_32)
    order = rng.choice(("little", "big"))
    data[pos:pos + 4] = value.to_bytes(4, order)
    return f"word {pos} = {value:#x} {order}"


def _truncate(rng: random.Random, data: bytearray, other: bytes) -> str:
    cut = rng.randrange(len(data) + 1)
    del data[cut:]
    return f"truncate at {cut}"


def _delete(rng: random.Random, data: bytearray, other: bytes) -> str:
    pos = rng.randrange(len(data))
    n = rng.randint(1, 64)
    del data[pos:pos + n]
    return f"delete {n} at {pos}"


def _duplicate(rng: random.Random, data: bytearray, other: bytes) -> str:
    pos = rng.randrange(len(data))
    n = rng.randint(1, 256)
    chunk = data[pos:pos + n]
    at = rng.randrange(len(data) + 1)
    data[at:at] = chunk
    return f"duplicate {len(chunk)} from {pos} at {at}"


def _splice(rng: random.Random, data: bytearray, other: bytes) -> str:
    """The head of this capture, then the tail of another (records cut anywhere)."""
    cut = rng.randrange(len(data) + 1)
    start = rng.randrange(len(other) + 1)
    data[cut:] = other[start:]
    return f"splice: head {cut} + other from {start}"


def _insert_other(rng: random.Random, data: bytearray, other: bytes) -> str:
    start = rng.randrange(len(other))
    chunk = other[start:start + rng.randint(1, 512)]
    at = rng.randrange(len(data) + 1)
    data[at:at] = chunk
    return f"insert {len(chunk)} of other from {start} at {at}"


def _records(data: bytearray) -> list[tuple[int, int]]:
    """(start, length) of the packet data of each record of a classic pcap, as far as the
    record headers hold together; [] for anything else."""
    if len(data) < 24:
        return []
    magic = bytes(data[:4])
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "little"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = "big"
    else:
        return []
    out, pos = [], 24
    while pos + 16 <= len(data):
        incl = int.from_bytes(data[pos + 8:pos + 12], order)
        if pos + 16 + incl > len(data):
            break
        out.append((pos + 16, incl))
        pos += 16 + incl
    return out


def _packet_bytes(rng: random.Random, data: bytearray, other: bytes) -> str:
    """Damage inside one packet's bytes only (link, IP and TCP headers), so that the file
    still reads and the decoders, not the record walker, meet the damage."""
    recs = [r for r in _records(data) if r[1]]
    if not recs:
        return _bitflip(rng, data, other)
    start, n = rng.choice(recs)
    hot = min(n, 80)  # headers live in the first bytes
    steps = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        pos = start + rng.randrange(hot)
        if rng.random() < 0.5:
            data[pos] ^= 1 << rng.randrange(8)
        else:
            data[pos] = rng.choice(_INTERESTING_8)
        steps.append(str(pos))
    return f"packet bytes at {','.join(steps)}"


def _sack_block(rng: random.Random, data: bytearray, other: bytes) -> str:
    """A SACK block in place of the timestamps of one Ethernet/IPv4 segment that has
    Linux's (two NOPs, then the option, nothing more), its right edge a little past the
    segment's ACK field (one or two: a FIN held behind a hole; or up to 4000 bytes)."""
    recs = [(start, n) for start, n in _records(data) if n >= 66
            and data[start + 12:start + 14] == b"\x08\x00" and data[start + 14] == 0x45
            and data[start + 23] == 6 and data[start + 46] >> 4 == 8
            and data[start + 54:start + 57] == b"\x01\x01\x08"]
    if not recs:
        return _packet_bytes(rng, data, other)
    start, _ = rng.choice(recs)
    ack = int.from_bytes(data[start + 42:start + 46], "big")
    right = (ack + rng.choice((1, 2, rng.randrange(1, 4000)))) & 0xFFFFFFFF
    left = (right - rng.randrange(1, 3000)) & 0xFFFFFFFF
    data[start + 54:start + 66] = b"\x01\x01\x05\x0a" + left.to_bytes(4, "big") \
        + right.to_bytes(4, "big")
    return f"SACK block {left}:{right} in the record at {start}"


MUTATIONS: list[tuple[Callable[[random.Random, bytearray, bytes], str], int]] = [
    (_packet_bytes, 10), (_bitflip, 6), (_byteset, 4), (_word, 4), (_truncate, 3), (_delete, 2),
    (_duplicate, 2), (_splice, 3), (_insert_other, 2), (_sack_block, 4),
]


@dataclass
class Mutant:
    seed: int
    index: int
    sample: str
    steps: list[str]
    data: bytes

    def replay(self) -> str:
        return f"python tests/fuzz_captures.py --replay {self.seed}:{self.index} --save case.pcap"


_CACHE: dict[pathlib.Path, bytes] = {}


def _bytes(path: pathlib.Path) -> bytes:
    if path not in _CACHE:
        _CACHE[path] = path.read_bytes()
    return _CACHE[path]


def mutate(seed: int, index: int, samples: list[pathlib.Path] | None = None) -> Mutant:
    """Case ``index`` of run ``seed``: the same bytes every time."""
    samples = samples or sample_captures()
    rng = random.Random(f"{seed}:{index}")
    # the big capture is slow: pick it rarely
    weights = [1 if _bytes(p).__len__() > 100_000 else 10 for p in samples]
    path = rng.choices(samples, weights)[0]
    other = _bytes(rng.choice(samples))
    data = bytearray(_bytes(path))
    funcs, w = zip(*MUTATIONS)
    steps = []
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
        if not data:
            break
        steps.append(rng.choices(funcs, w)[0](rng, data, other))
    if rng.random() < 0.08:
        packed = gzip.compress(bytes(data), mtime=0)
        if rng.random() < 0.5:
            packed = packed[:rng.randrange(len(packed) + 1)]
        data = bytearray(packed)
        steps.append(f"gzip ({len(data)} bytes)")
    return Mutant(seed, index, path.name, steps, bytes(data))


# --- running one case -------------------------------------------------------------------

class Hang(Exception):
    """The case ran past its time limit."""


@dataclass
class Failure:
    mutant: Mutant
    stage: str
    error: str
    trace: str

    def __str__(self) -> str:
        return (f"case {self.mutant.seed}:{self.mutant.index} ({self.mutant.sample}: "
                f"{'; '.join(self.mutant.steps)}) at {self.stage}: {self.error}\n"
                f"  replay: {self.mutant.replay()}")


@dataclass
class Summary:
    seed: int
    cases: int = 0
    cli_runs: int = 0
    outcomes: Counter = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    elapsed: float = 0.0

    def text(self) -> str:
        lines = [f"seed {self.seed}: {self.cases} cases ({self.cli_runs} CLI runs) in "
                 f"{self.elapsed:.1f} s, {len(self.failures)} failures"]
        lines += [f"  {n:6d}  {k}" for k, n in self.outcomes.most_common()]
        lines += [str(f) for f in self.failures]
        return "\n".join(lines)


@contextlib.contextmanager
def _time_limit(seconds: float):
    usable = seconds > 0 and threading.current_thread() is threading.main_thread() \
        and hasattr(signal, "setitimer")
    if not usable:
        yield
        return

    def on_alarm(signum, frame):  # noqa: ANN001
        raise Hang(f"still running after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _library(path: str, rng: random.Random) -> str:
    """analyze + every renderer; returns the outcome's name."""
    from rich.console import Console

    from teardown_analyzer.analysis import Options, analyze
    from teardown_analyzer.render import THEME
    from teardown_analyzer.report import (connections_table, ladder, report_csv,
                                          report_json, report_jsonl, report_markdown)
    keep = rng.random() < 0.3
    try:
        report = analyze([path], Options(keep_ladder=keep, time_wait_s=rng.choice((0, 60))))
    except TeardownError as exc:
        return f"rejected: {type(exc).__name__}"
    doc = json.loads(report_json(report, keep))
    assert doc["schema"] == "teardown-analyzer/1"
    assert len(doc["captures"]) == 1
    for line in report_jsonl(report, keep).splitlines():
        json.loads(line)
    report_csv(report)
    report_markdown(report)
    console = Console(file=io.StringIO(), width=120, theme=THEME, color_system=None)
    console.print(connections_table(report, rng.random() < 0.5))
    if keep:
        for conn in report.connections[:5]:
            console.print(ladder(conn, True))
    info = report.captures[0]
    if info.error is not None:
        return "partial: CaptureError"
    return "analysed" + (" (skips)" if any(report.skipped.values()) else "")


SCOPED_RULES = """
[[rule]]
name = "scoped by port and address"
where = { server_port = [80, 443, 8080], client_ip = ["10.0.0.0/8", "::/0"] }
no_rst = true
max_half_close = "10ms"

[[rule]]
name = "scoped by kind and client port"
where = { kind = ["four-way", "half-open"], client_port = [40308, 33535] }
initiator = "client"
"""
"""Rules for ``check --expect``: scopes read from each connection's endpoints."""


def _cli(path: str, rng: random.Random, packets: int) -> str:
    """One command through ``cli.main``: status documented, JSON output valid."""
    from teardown_analyzer.cli import main
    choice = rng.choice(("analyze", "analyze", "hex", "check"))
    if choice == "analyze":
        args = [path, "--format", "json", "-q"]
    elif choice == "hex":
        n = rng.randint(1, max(1, packets + 1))
        args = ["hex", path, "--packet", str(n)] + rng.choice(
            ([], ["--format", "json"], ["--with-ip", "--format", "markdown"]))
    else:
        rules = os.path.join(os.path.dirname(path), "rules.toml")
        pathlib.Path(rules).write_text(SCOPED_RULES)
        args = ["check", path, "--format", "json", "-q"] + rng.choice(
            (["--no-rst"], ["--max-half-close", "1ms", "--max-fin-retransmits", "0"],
             ["--expect", rules]))
    out, err = io.StringIO(), io.StringIO()
    status: object = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as exc:
            status = 0 if exc.code is None else exc.code
    assert status in ALLOWED_STATUS[choice], \
        f"{' '.join(args)}: exit status {status}: {err.getvalue().strip()}"
    text = out.getvalue()
    if text and ("json" in args):
        json.loads(text)
    if status:
        assert "Traceback" not in err.getvalue()
        assert err.getvalue().strip(), "a non-zero status without a message"
    return f"cli {choice}: {status}"


def run_case(mutant: Mutant, workdir: str, with_cli: bool, timeout: float = 20.0
             ) -> tuple[list[str], Failure | None]:
    """Run one mutant; returns its outcomes and the failure, if any."""
    path = os.path.join(workdir, "case.pcap")
    with open(path, "wb") as fh:
        fh.write(mutant.data)
    rng = random.Random(f"{mutant.seed}:{mutant.index}:run")
    outcomes = []
    stage = "analyze"
    try:
        with _time_limit(timeout):
            outcomes.append(_library(path, rng))
            if with_cli:
                stage = "cli"
                outcomes.append(_cli(path, rng, packets=max(1, len(mutant.data) // 60)))
    except TeardownError:
        raise AssertionError("unreachable: handled in _library")  # pragma: no cover
    except Exception as exc:  # noqa: BLE001 - anything else is the finding
        return outcomes, Failure(mutant, stage, f"{type(exc).__name__}: {exc}",
                                 traceback.format_exc())
    return outcomes, None


def run(seed: int, seconds: float = 20.0, iterations: int | None = None,
        cli_every: int = 8, timeout: float = 20.0, save_dir: str | None = None,
        log: Callable[[str], None] | None = None) -> Summary:
    """Fuzz until ``seconds`` have passed or ``iterations`` cases have run."""
    samples = sample_captures()
    summary = Summary(seed)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-captures-") as workdir:
        index = 0
        while time.monotonic() - start < seconds and (iterations is None
                                                       or index < iterations):
            mutant = mutate(seed, index, samples)
            with_cli = cli_every > 0 and index % cli_every == 0
            outcomes, failure = run_case(mutant, workdir, with_cli, timeout)
            summary.cases += 1
            summary.cli_runs += with_cli
            summary.outcomes.update(outcomes)
            if failure is not None:
                summary.failures.append(failure)
                summary.outcomes["FAILURE"] += 1
                if save_dir:
                    os.makedirs(save_dir, exist_ok=True)
                    name = f"fuzz-{seed}-{index}.pcap"
                    pathlib.Path(save_dir, name).write_bytes(mutant.data)
                if log:
                    log(str(failure))
            index += 1
    summary.elapsed = time.monotonic() - start
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    ap.add_argument("--seed", type=int, default=None, help="run seed (default: random)")
    ap.add_argument("--iterations", type=int, default=None, help="stop after N cases")
    ap.add_argument("--cli-every", type=int, default=8,
                    help="run the CLI on every Nth case (0: never; default 8)")
    ap.add_argument("--timeout", type=float, default=20.0,
                    help="seconds one case may take before it counts as a hang")
    ap.add_argument("--save-dir", help="write the bytes of failing cases here")
    ap.add_argument("--replay", metavar="SEED:INDEX", help="run one case again, verbosely")
    ap.add_argument("--save", metavar="FILE", help="with --replay: write the case's bytes")
    args = ap.parse_args(argv)
    if args.replay:
        seed, index = (int(x) for x in args.replay.split(":"))
        mutant = mutate(seed, index)
        print(f"case {seed}:{index}: {mutant.sample}: {'; '.join(mutant.steps)} "
              f"({len(mutant.data)} bytes)")
        if args.save:
            pathlib.Path(args.save).write_bytes(mutant.data)
            print(f"saved to {args.save}")
        with tempfile.TemporaryDirectory(prefix="fuzz-captures-") as workdir:
            outcomes, failure = run_case(mutant, workdir, True, args.timeout)
        print("outcomes:", ", ".join(outcomes))
        if failure:
            print(failure.trace)
            return 1
        print("no failure")
        return 0
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    summary = run(seed, args.seconds, args.iterations, args.cli_every, args.timeout,
                  args.save_dir, log=lambda s: print(s, flush=True))
    print(summary.text())
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
