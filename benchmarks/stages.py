"""Where the analysis of one capture spends its time, stage by stage, in this process.

Each stage is timed around its calls (``time.perf_counter``), by wrapping the functions
that make it, then the capture is analysed as ``teardown-analyze CAPTURE`` analyses it
(one process, the default options):

* reading and walking the records: ``Capture.batches``;
* gathering their columns: ``columnar.gathered``;
* analysing the windows (``columnar.analyse_window``): ``recognise``, keeping the
  connections it recognised (``columnar._keep``, the spill), and the rest (concatenating,
  holding, looking up, feeding the other records to the tracker);
* the rest (the tracker's sweeps, plain segments counted a batch at a time, the end).

The wrapping adds about a microsecond per call, a few hundred calls per stage; the total
is printed beside the stages. Imports and rendering (what the command line adds) are not
in it. A profiler (py-spy) says what happens inside a stage.

Usage::

    python benchmarks/stages.py /tmp/teardown-bench-200000.pcap
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from teardown_analyzer import analysis, capture, columnar  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture")
    args = parser.parse_args()
    spent: Counter[str] = Counter()

    def timed(owner: Any, name: str, stage: str) -> None:
        call: Callable[..., Any] = getattr(owner, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                return call(*a, **k)
            finally:
                spent[stage] += time.perf_counter() - start
        setattr(owner, name, wrapper)

    batches = capture.Capture.batches

    def timed_batches(self: capture.Capture) -> Iterator[capture.Batch]:
        walk = batches(self)
        while True:
            start = time.perf_counter()
            batch = next(walk, None)
            spent["read and walk"] += time.perf_counter() - start
            if batch is None:
                return
            yield batch

    capture.Capture.batches = timed_batches  # type: ignore[method-assign]
    timed(columnar, "gathered", "gather")
    timed(columnar, "analyse_window", "window")
    timed(columnar, "recognise", "recognise")
    timed(columnar, "_keep", "keep")
    start = time.perf_counter()
    report = analysis.analyze_capture(args.capture, analysis.Options(), (0, 1))
    total = time.perf_counter() - start
    walked, gather, window = spent["read and walk"], spent["gather"], spent["window"]
    rows = [("read and walk", walked), ("gather", gather), ("windows", window),
            ("  recognise", spent["recognise"]), ("  keep", spent["keep"]),
            ("  the rest of them", window - spent["recognise"] - spent["keep"]),
            ("the rest", total - walked - gather - window)]
    info = report.captures[0]
    print(f"{args.capture}: {info.packets:,} packets, {len(report.connections):,} "
          f"connections, {total:.3f} s in all ({info.packets / total:,.0f} packets/s)")
    for stage, seconds in rows:
        print(f"  {stage:20s} {seconds:7.3f} s  {100 * seconds / total:5.1f}%")


if __name__ == "__main__":
    main()
