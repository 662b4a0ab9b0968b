#!/usr/bin/env python3
"""Benchmark teardown-analyze against tshark and tcptrace on the synthetic capture.

    python benchmarks/run.py                      # generates /tmp/teardown-bench-200000.pcap
    python benchmarks/run.py --capture x.pcap     # x.pcap.expected.json must be next to it
    python benchmarks/run.py --jobs 2 --skip-tcptrace

Runs, one after the other, each under ``/usr/bin/time -v`` (or, without it, with the
child's own resource usage from ``wait4``):

1. ``teardown-analyze CAPTURE``, the default command: the table of unusual connections and
   the totals (plus ``--jobs N`` when asked for and supported, ``--quiet`` when supported,
   detected from ``teardown-analyze analyze --help``)
2. ``teardown-analyze CAPTURE --format json``, every connection summarised, with the same
   options
3. ``tshark -r CAPTURE -q -z conv,tcp``
4. ``tcptrace -n -l CAPTURE``

and prints wall time, packets per second, the speed ratio to teardown-analyze and the
peak resident memory of each (with ``--repeat N``, each tool N times, in turns: the
median, and the best wall time); the speed ratios are to the default command.
Correctness is part of the benchmark: the totals of both (connections, kinds, RSTs,
half-open, TIME_WAIT sides) and the JSON's initiators per kind must equal the generator's
expected counts, or the exit status is 1.  The
connection counts of tshark and tcptrace are shown for comparison (informational).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
JSON_RUN = "teardown-analyze --format json"
sys.path.insert(0, HERE)

import make_capture  # noqa: E402


# -- machine --------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "cpu": cpu, "cores": cores, "memory_gb": mem_gb,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


def loadavg() -> float | None:
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _git_state() -> str:
    """The analyzer's source revision, when run from a git checkout."""
    root = os.path.dirname(HERE)
    try:
        sha = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--",
                                "teardown_analyzer"], capture_output=True, text=True,
                               timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if not sha:
        return ""
    return f" (git {sha}{', teardown_analyzer/ modified' if dirty else ''})"


def _first_line(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    for line in (p.stdout + p.stderr).splitlines():
        line = line.strip()
        if line and not line.startswith("Running as user"):
            return line
    return "?"


# -- running one tool -------------------------------------------------------------------

_WALL = re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)")
_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
_USER = re.compile(r"User time \(seconds\): ([\d.]+)")
_SYS = re.compile(r"System time \(seconds\): ([\d.]+)")


def measure(cmd: list[str], stdout_path: str, use_time: bool) -> dict[str, Any]:
    """Run ``cmd`` with standard output to ``stdout_path``: wall s, peak RSS MB, status."""
    with open(stdout_path, "wb") as out, tempfile.TemporaryFile() as err:
        if use_time:
            t0 = time.perf_counter()
            p = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=out, stderr=err)
            wall_fallback = time.perf_counter() - t0
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
            m = _WALL.search(text)
            wall = (int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))) \
                if m else wall_fallback
            rss = _RSS.search(text)
            user, sys_ = _USER.search(text), _SYS.search(text)
            status = p.returncode
            # /usr/bin/time reports "Command exited with non-zero status N"
            return {"wall_s": wall, "rss_mb": int(rss.group(1)) / 1024 if rss else None,
                    "cpu_s": (float(user.group(1)) + float(sys_.group(1))) if user and sys_
                    else None,
                    "status": status, "stderr": text}
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _pid, wstatus, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(wstatus)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
        return {"wall_s": wall, "rss_mb": ru.ru_maxrss / 1024, "cpu_s": ru.ru_utime + ru.ru_stime,
                "status": proc.returncode, "stderr": text}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One tool's runs as one: the median wall and CPU times (the upper middle one of an
    even number), the best wall, the largest peak memory, the last run's output and load,
    the first failing status."""
    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]
    r = dict(runs[-1])
    walls = [x["wall_s"] for x in runs]
    r["wall_s"], r["best_wall_s"], r["walls_s"] = median(walls), min(walls), walls
    cpus = [x["cpu_s"] for x in runs if x["cpu_s"] is not None]
    r["cpu_s"] = median(cpus) if len(cpus) == len(runs) else None
    rss = [x["rss_mb"] for x in runs if x["rss_mb"] is not None]
    r["rss_mb"] = max(rss) if rss else None
    failed = [x for x in runs if x["status"] != 0]
    if failed:
        r["status"], r["stderr"] = failed[0]["status"], failed[0]["stderr"]
    return r


def analyzer_command() -> list[str]:
    exe = shutil.which("teardown-analyze")
    return [exe] if exe else [sys.executable, "-m", "teardown_analyzer"]


def warm_up(cmd: list[str]) -> None:
    """Run ``cmd`` once, untimed, with Python allowed to write bytecode, and leave
    ``PYTHONDONTWRITEBYTECODE`` out of the environment of every run after it: the tool is
    measured as installed (pip compiles a package's modules when it installs it), not
    compiling its own modules at every start, which an editable install under
    ``PYTHONDONTWRITEBYTECODE`` does (about 0.1 s a run on this VM)."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        print("note: PYTHONDONTWRITEBYTECODE unset for the runs (bytecode cached, as "
              "installed)", file=sys.stderr)
    print(f"warming up (untimed): {' '.join(cmd)}", file=sys.stderr, flush=True)
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def analyzer_options(base: list[str]) -> set[str]:
    """The long options ``teardown-analyze analyze`` accepts right now."""
    try:
        p = subprocess.run(base + ["analyze", "--help"], capture_output=True, text=True,
                           timeout=120)
        text = p.stdout
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    return set(re.findall(r"(--[a-z][a-z-]*)", text))


# -- correctness ------------------------------------------------------------------------

def check_analyzer(out_path: str, expected: dict[str, Any]) -> list[str]:
    """Compare teardown-analyze's JSON with the generator's counts; return the mismatches."""
    try:
        with open(out_path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        return [f"teardown-analyze output is not JSON: {e}"]
    problems = []
    got, want = report.get("totals", {}), expected["totals"]
    for key in ("connections", "rsts", "half_open"):
        if got.get(key) != want[key]:
            problems.append(f"totals.{key}: got {got.get(key)}, expected {want[key]}")
    for kind, n in want["kinds"].items():
        if got.get("kinds", {}).get(kind) != n:
            problems.append(f"kind {kind}: got {got.get('kinds', {}).get(kind)}, expected {n}")
    extra = set(got.get("kinds", {})) - set(want["kinds"])
    if extra:
        problems.append(f"unknown kinds in the output: {sorted(extra)}")
    for side, n in want["time_wait"].items():
        if got.get("time_wait", {}).get(side) != n:
            problems.append(f"time_wait.{side}: got {got.get('time_wait', {}).get(side)}, "
                            f"expected {n}")
    conns = report.get("connections")
    if isinstance(conns, list) and conns:
        ki: dict[str, dict[str, int]] = {}
        for c in conns:
            close = c.get("close", {})
            d = ki.setdefault(close.get("kind"), {})
            init = close.get("initiator") or "none"
            d[init] = d.get(init, 0) + 1
        for kind, want_ki in expected["kind_initiators"].items():
            if ki.get(kind, {}) != want_ki:
                problems.append(f"initiators of {kind}: got {ki.get(kind, {})}, "
                                f"expected {want_ki}")
    packets = sum(c.get("packets", 0) for c in report.get("captures", []))
    if packets and packets != expected["packets"]:
        problems.append(f"packets read: got {packets}, expected {expected['packets']}")
    return problems


TOTALS_LINE = re.compile(r"(\d+) connections?: (.*?); RSTs (\d+); half-open (\d+); "
                         r"TIME_WAIT on client (\d+), on server (\d+)")


def check_table(out_path: str, expected: dict[str, Any]) -> list[str]:
    """Compare the totals line of teardown-analyze's table ("N connections: four-way a, ...;
    RSTs r; half-open h; TIME_WAIT on client c, on server s", wrapped by the console) with
    the generator's counts; return the mismatches."""
    try:
        with open(out_path, encoding="utf-8") as f:
            text = " ".join(f.read().split())
    except OSError as e:
        return [f"teardown-analyze's table cannot be read: {e}"]
    found = TOTALS_LINE.search(text)
    if found is None:
        return ["teardown-analyze's table has no totals line"]
    conns, kinds, rsts, half_open, tw_client, tw_server = found.groups()
    got = {"connections": int(conns), "rsts": int(rsts), "half_open": int(half_open),
           "time_wait client": int(tw_client), "time_wait server": int(tw_server)}
    listed = dict(k.rsplit(" ", 1) for k in kinds.split(", ")) if kinds != "none" else {}
    want = expected["totals"]
    problems = [f"table: {key}: got {got[key]}, expected {want[key]}"
                for key in ("connections", "rsts", "half_open") if got[key] != want[key]]
    problems += [f"table: {key}: got {got[key]}, expected {want['time_wait'][key[10:]]}"
                 for key in ("time_wait client", "time_wait server")
                 if got[key] != want["time_wait"][key[10:]]]
    problems += [f"table: kind {kind}: got {listed.get(kind, 0)}, expected {n}"
                 for kind, n in want["kinds"].items() if int(listed.get(kind, 0)) != n]
    return problems


def tshark_connections(out_path: str) -> int | None:
    try:
        with open(out_path, encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if "<->" in line)
    except OSError:
        return None


def tcptrace_connections(out_path: str) -> int | None:
    try:
        with open(out_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"(\d+) TCP connections? traced", line)
                if m:
                    return int(m.group(1))
    except OSError:
        pass
    return None


# -- main -------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--capture", help="capture to analyse; PATH.expected.json must exist "
                   "(default: /tmp/teardown-bench-N.pcap, generated if absent)")
    p.add_argument("--connections", type=int, default=200_000,
                   help="connections when generating (default 200000)")
    p.add_argument("--seed", type=int, default=1, help="seed when generating (default 1)")
    p.add_argument("--jobs", type=int, default=1,
                   help="pass --jobs N to teardown-analyze when N > 1 (if it has the option)")
    p.add_argument("--skip-tshark", action="store_true")
    p.add_argument("--skip-tcptrace", action="store_true")
    p.add_argument("--keep", metavar="DIR",
                   help="keep the tools' outputs in DIR (default: a temporary directory)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run every tool N times, in turns (tool after tool, N rounds): "
                   "the wall and CPU times shown are each tool's median, the best wall "
                   "beside it (default 1)")
    args = p.parse_args(argv)

    capture = args.capture or f"/tmp/teardown-bench-{args.connections}.pcap"
    exp_path = capture + ".expected.json"
    if not os.path.exists(capture) or not os.path.exists(exp_path):
        if args.capture and os.path.exists(capture):
            print(f"error: {exp_path} is missing (write the capture with make_capture.py)",
                  file=sys.stderr)
            return 2
        print(f"generating {capture} ({args.connections} connections, seed {args.seed}) ...",
              file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        make_capture.generate(capture, args.connections, args.seed)
        print(f"  done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    with open(exp_path, encoding="utf-8") as f:
        expected = json.load(f)
    packets = expected["packets"]

    info = machine_info()
    use_time = os.access("/usr/bin/time", os.X_OK)
    base = analyzer_command()
    opts = analyzer_options(base)
    extra: list[str] = []
    if args.jobs > 1:
        if "--jobs" in opts:
            extra += ["--jobs", str(args.jobs)]
        else:
            print("note: teardown-analyze has no --jobs option yet; running with one process",
                  file=sys.stderr)
    if "--quiet" in opts:
        extra.append("--quiet")  # no progress bar on stderr
    ta_cmd = base + [capture, "--format", "json"] + extra

    # the default command (the table of unusual connections and the totals) is what a user
    # runs first, and what the others are compared with; the JSON summarises every
    # connection. Both are checked against the expected counts.
    tools: list[tuple[str, list[str]]] = [("teardown-analyze", base + [capture] + extra),
                                          (JSON_RUN, ta_cmd)]
    if not args.skip_tshark:
        if shutil.which("tshark"):
            tools.append(("tshark", ["tshark", "-r", capture, "-q", "-z", "conv,tcp"]))
        else:
            print("note: tshark not found (apt-get install -y tshark); skipped", file=sys.stderr)
    if not args.skip_tcptrace:
        if shutil.which("tcptrace"):
            tools.append(("tcptrace", ["tcptrace", "-n", "-l", capture]))
        else:
            print("note: tcptrace not found (apt-get install -y tcptrace); skipped",
                  file=sys.stderr)

    versions = {"teardown-analyze": _first_line(base + ["--version"]) + _git_state()}
    if any(n == "tshark" for n, _ in tools):
        versions["tshark"] = _first_line(["tshark", "--version"])
    if any(n == "tcptrace" for n, _ in tools):
        versions["tcptrace"] = _first_line(["tcptrace", "-v"]).replace("Version: ", "")

    size_mb = os.path.getsize(capture) / 1e6
    print(f"date:     {info['date']}")
    print(f"machine:  {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB, "
          f"{info['os']}, Python {info['python']}")
    print(f"capture:  {capture} ({size_mb:.0f} MB): {expected['connections']} connections, "
          f"{packets} packets")
    for name, v in versions.items():
        print(f"{name + ':':<18}{v}")
    print(f"measured: {'/usr/bin/time -v' if use_time else 'wait4() resource usage'}")
    load0 = loadavg()
    info["load_before"] = load0
    print(f"load:     {load0} (1-minute load average before the first tool)")
    if load0 is not None and info["cores"] and load0 > 0.5:
        print("warning:  the machine is busy; other processes compete for the CPUs and the "
              "times will be longer than on a quiet machine")
    print()

    outdir = args.keep or tempfile.mkdtemp(prefix="teardown-bench-")
    os.makedirs(outdir, exist_ok=True)
    # One untimed run first: the capture into the page cache for every tool alike, and
    # teardown-analyze's modules compiled once (see warm_up).
    warm_up(base + [capture] + extra)
    # in turns, so that a minute when the machine is slower touches every tool alike
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in tools}
    for round_ in range(max(args.repeat, 1)):
        for name, cmd in tools:
            print(f"running {name}{f' ({round_ + 1} of {args.repeat})' if args.repeat > 1 else ''}"
                  f": {' '.join(cmd)}", file=sys.stderr, flush=True)
            out_path = os.path.join(outdir, f"{name}.out")
            r = measure(cmd, out_path, use_time)
            r["load_after"] = loadavg()
            r["cmd"] = cmd
            r["out"] = out_path
            if r["status"] != 0:
                tail = "\n".join(r["stderr"].splitlines()[-8:])
                print(f"  {name} exited with status {r['status']}:\n{tail}", file=sys.stderr)
            runs[name].append(r)
    results = {name: _summary(rs) for name, rs in runs.items()}

    # correctness
    problems: list[str] = []
    ta, as_json = results["teardown-analyze"], results[JSON_RUN]
    for name, r in (("teardown-analyze", ta), (JSON_RUN, as_json)):
        if r["status"] != 0:
            problems.append(f"{name} exited with status {r['status']}")
    problems += check_table(ta["out"], expected)
    problems += check_analyzer(as_json["out"], expected)
    counted: dict[str, int | None] = {"teardown-analyze": None, JSON_RUN: None}
    try:
        with open(as_json["out"], encoding="utf-8") as f:
            counted[JSON_RUN] = json.load(f)["totals"]["connections"]
    except (OSError, ValueError, KeyError):
        pass
    try:
        with open(ta["out"], encoding="utf-8") as f:
            found = TOTALS_LINE.search(" ".join(f.read().split()))
        counted["teardown-analyze"] = int(found.group(1)) if found else None
    except OSError:
        pass
    if "tshark" in results:
        counted["tshark"] = tshark_connections(results["tshark"]["out"])
    if "tcptrace" in results:
        counted["tcptrace"] = tcptrace_connections(results["tcptrace"]["out"])

    ta_wall = ta["wall_s"]
    header = (f"{'tool':<32}{'wall s':>9}{'best s':>8}{'CPU s':>8}{'packets/s':>12}"
              f"{'vs teardown-analyze':>21}{'peak RSS MB':>13}{'connections':>13}{'load':>7}")
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        wall = r["wall_s"]
        pps = packets / wall if wall > 0 else float("inf")
        ratio = ta_wall / wall if wall > 0 else float("inf")
        rss = f"{r['rss_mb']:.0f}" if r["rss_mb"] is not None else "?"
        n = counted.get(name)
        status = "" if r["status"] == 0 else f"  (exit {r['status']})"
        load = "?" if r["load_after"] is None else f"{r['load_after']:.1f}"
        cpu = "?" if r["cpu_s"] is None else f"{r['cpu_s']:.1f}"
        print(f"{name:<32}{wall:>9.2f}{r['best_wall_s']:>8.2f}{cpu:>8}{pps:>12,.0f}"
              f"{ratio:>20.2f}x{rss:>13}{'?' if n is None else n:>13}{load:>7}{status}")
        r["packets_per_s"] = pps
        r["speed_vs_teardown_analyze"] = ratio
        r["connections"] = n
    print()
    print("vs teardown-analyze: how many times faster than teardown-analyze the tool is "
          "(its packets/s divided by teardown-analyze's); CPU s: user + system; load: "
          "1-minute load average when the tool finished."
          + (f" Wall, CPU and packets/s: the median of {args.repeat} runs; best s: the "
             f"fastest; peak RSS: the largest." if args.repeat > 1 else ""))
    for name in ("tshark", "tcptrace"):
        n = counted.get(name)
        if name in counted and n is not None and n != expected["connections"]:
            print(f"note: {name} counted {n} connections, the generator wrote "
                  f"{expected['connections']} (informational)")

    if problems:
        print("\nCORRECTNESS: FAILED: teardown-analyze disagrees with the generator:")
        for prob in problems:
            print(f"  - {prob}")
    else:
        print("\nCORRECTNESS: ok: teardown-analyze's totals, in the table and in the JSON "
              "(connections, kinds, RSTs, half-open, TIME_WAIT sides), and the JSON's "
              "initiators per kind equal the expected counts")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, "versions": versions, "capture": capture,
                       "expected": expected,
                       "results": {k: {kk: vv for kk, vv in v.items() if kk != "stderr"}
                                   for k, v in results.items()},
                       "correct": not problems, "problems": problems}, f, indent=2)
    if not args.keep:
        shutil.rmtree(outdir, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
