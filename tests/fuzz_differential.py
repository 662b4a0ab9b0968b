#!/usr/bin/env python3
"""Differential fuzzing by hand: the analysis as it runs (clean closes taken a window at
a time, teardown_analyzer.columnar) against feeding every packet, on the mutated sample
captures of ``fuzz_captures.py``, with small batches and windows of 4 to 28 records
(with ``--plain``, plain segments counted a batch at a time too, teardown_analyzer.plain).
With ``--split``, ``--jobs 2`` and ``3`` (every capture walked by byte range where it can
be, teardown_analyzer.pcapsplit) against one process instead.

    python tests/fuzz_differential.py --seed 5 --seconds 150
    python tests/fuzz_differential.py --seed 53 --seconds 150 --plain
    python tests/fuzz_differential.py --seed 89 --seconds 150 --split

Prints each case whose results differ (seed, index, sample, mutations, window) and a
summary; exit status 1 if any differs.  Captures whose clock goes backwards are not
compared: there, both paths depend on when expired connections are let go (README,
*Speed and resource bounds*).  Replay a case with ``fuzz_captures.py --replay``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import fuzz_captures as fz  # noqa: E402
from teardown_analyzer import analysis, capture, columnar, pcapsplit  # noqa: E402
from teardown_analyzer.analysis import Options, analyze, endpoints  # noqa: E402
from teardown_analyzer.errors import TeardownError  # noqa: E402


CRASHES: list[Exception] = []


def _results(path: str, options: Options, jobs: int = 1) -> Any:
    try:
        r = analyze([path], options, jobs)
    except TeardownError as exc:
        return type(exc).__name__
    except Exception as exc:  # a bug: said, counted, and compared like any other outcome
        print(f"CRASH: {type(exc).__name__}: {exc}")
        CRASHES.append(exc)
        return f"crash: {type(exc).__name__}: {exc}"
    conns = list(r.connections)
    # the endpoints check's scopes read from the blobs are the summaries'
    ends = list(map(endpoints, r.connections.blobs()))
    if ends != [(c.client, c.server) for c in conns]:
        print("CRASH: endpoints read from the blobs are not the summaries'")
        CRASHES.append(AssertionError("endpoints"))
    return ([c.to_dict(True) for c in conns], list(r.connections.meta()), r.totals(),
            r.skipped, [c.to_dict() for c in r.captures])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--plain", action="store_true",
                    help="count plain segments a batch at a time (teardown_analyzer.plain) "
                         "after every batch, instead of never")
    ap.add_argument("--split", action="store_true",
                    help="compare --jobs 2 and 3 (walked by byte range) with one process")
    args = ap.parse_args(argv)
    if args.split:  # --jobs 2 and 3 against one process, every capture walked by range
        pcapsplit.SPLIT_BYTES = 0
        walked = [0]
        original = analysis._walked

        def spy(*a: Any) -> Any:
            found = original(*a)
            walked[0] += sum(f is not None for f in found)
            return found

        analysis._walked = spy  # type: ignore[assignment]
        one = Options(keep_ladder=True)

        def pairs(index: int) -> list[tuple[str, tuple[Options, int], tuple[Options, int]]]:
            return [(f"jobs {jobs}", (one, 1), (one, jobs)) for jobs in (2, 3)]
    else:  # the analysis as it runs against feeding every packet
        capture.CHUNK, capture.CHUNK_RECORDS, capture.BATCH = 512, 0, 4
        # never count plain segments at once (plain.py has its own tests), or always
        analysis.VECTORISED_SHARE = 0.0 if args.plain else 1.01

        def pairs(index: int) -> list[tuple[str, tuple[Options, int], tuple[Options, int]]]:
            window = 4 * (index % 7 + 1)
            columnar.WINDOW_ROWS = columnar.FIRST_WINDOW = window
            return [(f"window {window} {kw}", (Options(vectorised=False, **kw), 1),
                     (Options(**kw), 1))  # type: ignore[arg-type]
                    for kw in ({}, {"keep_ladder": True, "time_wait_s": 0.5})]
    end = time.time() + args.seconds
    index = compared = skipped = differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "case.pcap")
        while time.time() < end:
            mutant = fz.mutate(args.seed, index)
            pathlib.Path(path).write_bytes(mutant.data)
            known: dict[tuple[Options, int], Any] = {}
            for label, reference, candidate in pairs(index):
                if reference not in known:
                    known[reference] = _results(path, *reference)
                every = known[reference]
                if not isinstance(every, str) and any(
                        "timestamp earlier" in w for c in every[4] for w in c["warnings"]):
                    skipped += 1
                    continue
                compared += 1
                if _results(path, *candidate) != every:
                    differ += 1
                    print(f"DIFFERS: {args.seed}:{index} {mutant.sample} {mutant.steps} "
                          f"{label}")
            index += 1
    print(f"{index} mutants, {compared} comparisons"
          + (f" ({walked[0]} walked by range)" if args.split else "")
          + f", {differ} differ; {skipped} not compared (the clock goes backwards); "
          f"{len(CRASHES)} crashes")
    return 1 if differ or CRASHES else 0


if __name__ == "__main__":
    sys.exit(main())
