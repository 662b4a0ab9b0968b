"""How close ``--jobs 2`` comes to twice the speed of one process, and what stops it.

The capture is analysed in this process three ways, as ``analyze()`` does for the command
(the command adds its start, imports and rendering, about 0.3 s, to each):

1. one process (``jobs=1``): wall time, and CPU time of its main thread and of its other
   threads (reading ahead, the copy out of the page cache; writing the spill), so how many
   cores one process already uses;
2. ``jobs=2`` with each step run alone (a lock taken around each worker's walk of a byte
   range and around each part's analysis): what the steps cost without a second process
   beside them (a step's other threads then have the other core), and what the split adds
   to the work;
3. ``jobs=2`` as the command runs it, with each step's time in each worker.

The best ``jobs=2`` can do is the CPU time of one process shared by two cores; the
speedup's ceiling is one process's wall time over that.  Two more figures say how much of
the rest is the machine's and how much the split's:

4. two one-process analyses at once, sharing nothing but the machine (its cores, caches,
   memory and host): how many times one's throughput the machine gives two processes;
5. the CPU time (user and system, every process) of ``jobs=2`` against one process's:
   the work the split adds (walking by range, the rows written to and read back from the
   spills, a second heap).

Run it on an idle machine:

    python benchmarks/jobs.py /tmp/teardown-bench-200000.pcap
"""

from __future__ import annotations

import argparse
import fcntl
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from teardown_analyzer import analysis, pcapsplit  # noqa: E402

STEPS = [(pcapsplit, "walk", "walk"), (analysis, "analyze_capture", "part")]


def _timed(log: str, lock: str | None) -> list[Callable[..., Any]]:
    """Wrap each step so that every process appends a line to ``log`` for each step it
    runs (see :func:`_steps`), taking ``lock`` around the step when given; the functions
    wrapped."""
    calls = [getattr(owner, name) for owner, name, _step in STEPS]
    for (owner, name, step), call in zip(STEPS, calls):

        def wrapper(*a: Any, _call: Callable[..., Any] = call, _step: str = step,
                    **k: Any) -> Any:
            held = os.open(lock, os.O_RDWR) if lock else None
            if held is not None:
                fcntl.flock(held, fcntl.LOCK_EX)
            start, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
            try:
                return _call(*a, **k)
            finally:
                end, own = time.perf_counter(), time.thread_time() - own
                cpu = time.process_time() - cpu
                if held is not None:
                    os.close(held)  # (lets go of the lock)
                with open(log, "a") as f:
                    f.write(f"{_step} {os.getpid()} {start} {end} {own} {cpu - own}\n")
        setattr(owner, name, wrapper)
    return calls


def _steps(log: str, t0: float) -> list[tuple[str, int, float, float, float, float]]:
    """The steps logged: step, process, start and end (from ``t0``), CPU time of the
    thread that ran it and of the process's other threads meanwhile; by start."""
    with open(log) as f:
        rows = [line.split() for line in f]
    os.truncate(log, 0)
    return sorted(((s, int(p), float(a) - t0, float(z) - t0, float(m), float(o))
                   for s, p, a, z, m, o in rows), key=lambda row: (row[2], row[1]))


def _two_at_once(paths: list[str], options: analysis.Options) -> float:
    """Wall time of two one-process analyses run side by side, in two forked processes."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    runs = [ctx.Process(target=analysis.analyze, args=(paths, options, 1)) for _ in range(2)]
    start = time.perf_counter()
    for r in runs:
        r.start()
    for r in runs:
        r.join()
    return time.perf_counter() - start


def _cpu(run: Callable[[], Any]) -> float:
    """User and system CPU time of ``run()``: this process's and its children's (a pool's
    workers are waited for when it closes)."""
    def used() -> float:
        own, children = (resource.getrusage(w) for w in
                         (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    before = used()
    run()
    return used() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture")
    parser.add_argument("--split-bytes", type=int, default=pcapsplit.SPLIT_BYTES,
                        help="walk a file of this many bytes or more by byte range (default: "
                             "as the command, %(default)s)")
    args = parser.parse_args()
    pcapsplit.SPLIT_BYTES = args.split_bytes
    paths, options = [args.capture], analysis.Options()
    with tempfile.TemporaryDirectory() as tmp:
        log, lock = os.path.join(tmp, "steps"), os.path.join(tmp, "lock")
        open(lock, "w").close()
        analysis.analyze(paths, options, 1)  # (imports, the page cache)

        wall, main_cpu, all_cpu = time.perf_counter(), time.thread_time(), time.process_time()
        report = analysis.analyze(paths, options, 1)
        wall = time.perf_counter() - wall
        main_cpu = time.thread_time() - main_cpu
        other_cpu = time.process_time() - all_cpu - main_cpu
        packets = report.captures[0].packets
        cores = (main_cpu + other_cpu) / wall
        print(f"{args.capture}: {packets:,} packets, {len(report.connections):,} connections")
        print(f"one process:        {wall:6.3f} s ({packets / wall:,.0f} packets/s); CPU "
              f"{main_cpu:.3f} s in its main thread, {other_cpu:.3f} s in the others "
              f"(reading ahead, the spill): {cores:.2f} cores")
        ceiling = (main_cpu + other_cpu) / 2
        print(f"two cores at best:  {ceiling:6.3f} s, {wall / ceiling:.2f}x (that CPU time "
              f"shared by two cores)")
        both = _two_at_once(paths, options)
        print(f"two at once:        {both:6.3f} s for two one-process analyses side by side: "
              f"{2 * wall / both:.2f}x the throughput of one (what the machine gives two "
              f"processes that share nothing)")
        cpu_one = _cpu(lambda: analysis.analyze(paths, options, 1))
        cpu_two = _cpu(lambda: analysis.analyze(paths, options, 2))
        print(f"CPU, every process: {cpu_one:6.3f} s with one process, {cpu_two:.3f} s with "
              f"jobs=2 ({(cpu_two / cpu_one - 1) * 100:+.0f}%: the work the split adds)")

        for name, held in (("jobs=2, one step at a time", lock), ("jobs=2", None)):
            calls = _timed(log, held)
            t0 = time.perf_counter()
            analysis.analyze(paths, options, 2)
            took = time.perf_counter() - t0
            print(f"{name + ':':20s}{took:6.3f} s, {wall / took:.2f}x")
            for step, pid, a, z, own, others in _steps(log, t0):
                print(f"  {step} (process {pid}): {a:.3f}-{z:.3f} s = {z - a:.3f} s; CPU "
                      f"{own:.3f} s, its other threads {others:.3f} s")
            for (owner, step_name, _step), call in zip(STEPS, calls):  # unwrapped again
                setattr(owner, step_name, call)


if __name__ == "__main__":
    main()
