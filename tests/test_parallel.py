"""--jobs: identical results to one process; --max-connections: eviction with a warning."""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from teardown_analyzer.analysis import Options, analyze

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "sample_pcaps"


def _dicts(report):
    return [c.to_dict(True) for c in report.connections], report.totals()


def test_one_capture_split_across_processes_is_identical():
    path = [str(SAMPLES / "mixed_200.pcap")]
    opts = Options(keep_ladder=True)
    one, two = analyze(path, opts, jobs=1), analyze(path, opts, jobs=2)
    assert _dicts(one) == _dicts(two)
    assert one.skipped == two.skipped
    assert [c.to_dict() for c in one.captures] == [c.to_dict() for c in two.captures]


def test_many_captures_shared_out_are_identical_and_numbered_in_order():
    paths = [str(SAMPLES / n) for n in ("reuse_server_tw.pcap", "four_way.pcap",
                                         "fin_wait2_timeout.pcap")]
    one, two = analyze(paths, jobs=1), analyze(paths, jobs=3)
    assert _dicts(one) == _dicts(two)
    assert [c.id for c in one.connections] == [1, 2, 3, 4, 5]
    assert one.connections[0].time_wait["reuse"]["new_connection"] == 2
    assert one.connections[1].reused_from == 1


def test_cli_jobs_output_identical(run_cli):
    path = str(SAMPLES / "mixed_200.pcap")
    a = run_cli(path, "--format", "json")
    b = run_cli(path, "--format", "json", "--jobs", "2")
    assert a[0] == b[0] == 0 and a[1] == b[1]


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_one_warning_counts_the_evictions_of_every_process(jobs):
    """With --max-connections, each process evicts from its own share: one warning says
    how many were evicted in all, as many as the records that say they were (each process
    that evicted had said only its own before)."""
    report = analyze([str(SAMPLES / "mixed_200.pcap")], Options(max_connections=6), jobs)
    evicted = sum(any("evicted" in a for a in c.anomalies) for c in report.connections)
    said = [w for w in report.captures[0].warnings if "evicted" in w]
    assert evicted > 200 and said == [f"--max-connections: {evicted} connections evicted "
                                      f"before they ended (the longest idle); their records "
                                      f"are incomplete"]


def test_max_connections_evicts_the_longest_idle_with_a_warning(run_cli):
    path = str(SAMPLES / "mixed_200.pcap")
    report = analyze([path], Options(max_connections=20))
    full = analyze([path])
    evicted = [c for c in report.connections if any("evicted" in a for a in c.anomalies)]
    assert evicted and len(report.connections) >= len(full.connections)
    assert any("evicted" in w for w in report.captures[0].warnings)
    code, out, err = run_cli(path, "--format", "json", "--max-connections", "20")
    assert code == 0 and "--max-connections:" in err and "evicted" in err
    assert json.loads(out)["totals"]["connections"] == len(report.connections)
    # a cap above what the capture needs changes nothing
    assert _dicts(analyze([path], Options(max_connections=10_000))) == _dicts(full)


def test_jobs_identical_on_every_kind_of_close(tmp_path):
    """The synthetic mix (fin-then-rst, simultaneous, retransmitted FINs, IPv6 ...) with
    finished connections swept early: results must not depend on when or where they were
    summarised."""
    import subprocess
    import sys
    out = tmp_path / "mix.pcap"
    subprocess.run([sys.executable, str(SAMPLES.parent / "benchmarks" / "make_capture.py"),
                    "--connections", "600", "--out", str(out)], check=True,
                   capture_output=True)
    opts = Options(sweep_every=97)
    one = analyze([str(out)], Options())
    assert _dicts(analyze([str(out)], opts)) == _dicts(one)
    assert _dicts(analyze([str(out)], opts, jobs=2)) == _dicts(one)


def _pid_and_id(c) -> str:
    import os
    return f"{os.getpid()} {c.id} {c.kind}"


@pytest.mark.parametrize("names", [["-"], ["-", "four_way.pcap"], ["four_way.pcap", "-"]])
def test_a_capture_read_from_standard_input_by_several_processes(names):
    """multiprocessing closes a worker's standard input, and a pipe can be read only once:
    a capture read from standard input is read whole by one worker, which gets a copy of
    the descriptor; the report is the one process's (it was an empty capture)."""
    import subprocess
    import sys

    def run(*args: str) -> bytes:
        with open(SAMPLES / "mixed_200.pcap", "rb") as stdin:
            done = subprocess.run([sys.executable, "-m", "teardown_analyzer", *args,
                                   "--format", "json", "-q"], stdin=stdin,
                                  capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout
    paths = [n if n == "-" else str(SAMPLES / n) for n in names]
    one = run(*paths)
    assert len(json.loads(one)["connections"]) == 200 + (len(paths) - 1)
    assert run(*paths, "--jobs", "2") == run(*paths, "--jobs", "3") == one
    with open(SAMPLES / "mixed_200.pcap", "rb") as stdin:
        import subprocess as sp
        done = sp.run([sys.executable, "-m", "teardown_analyzer", "check", *paths,
                       "--no-rst", "--jobs", "2", "--format", "json", "-q"], stdin=stdin,
                      capture_output=True, timeout=120)
    assert done.returncode == 1 and json.loads(done.stdout)["connections"] == len(
        json.loads(one)["connections"])


def test_a_capture_read_from_a_fifo_by_several_processes(tmp_path):
    """A named pipe can be read only once too: it is not split across processes."""
    import threading
    fifo = tmp_path / "capture.pipe"
    os.mkfifo(fifo)
    data = (SAMPLES / "mixed_200.pcap").read_bytes()

    def analysed(jobs: str) -> bytes:  # (in a process of its own: a hang fails, in time)
        import subprocess
        import sys
        writer = threading.Thread(target=lambda: fifo.write_bytes(data), daemon=True)
        writer.start()
        done = subprocess.run([sys.executable, "-m", "teardown_analyzer", str(fifo),
                               "--jobs", jobs, "--format", "json", "-q"],
                              capture_output=True, timeout=120)
        writer.join(10)
        assert done.returncode == 0, done.stderr
        return done.stdout
    one = analysed("1")
    assert len(json.loads(one)["connections"]) == 200 and analysed("2") == one


def test_results_are_rendered_in_forked_processes_in_order(monkeypatch):
    import os

    from teardown_analyzer import results
    monkeypatch.setattr(results, "RENDER_SLICE", 7)
    report = analyze([str(SAMPLES / "mixed_200.pcap")])
    lines = [line.split() for line in report.connections.rendered(_pid_and_id, jobs=2)]
    assert [(int(i), kind) for _, i, kind in lines] == \
        [(c.id, c.kind) for c in report.connections]
    pids = {pid for pid, _, _ in lines}
    assert len(pids) == 2 and str(os.getpid()) not in pids


def test_some_results_are_rendered_in_forked_processes_in_order(monkeypatch):
    """Those at the indices given (check's violators), in their order, in other
    processes."""
    import os

    from teardown_analyzer import results
    monkeypatch.setattr(results, "RENDER_SLICE", 7)
    report = analyze([str(SAMPLES / "mixed_200.pcap")])
    conns = list(report.connections)
    at = list(range(3, len(conns), 5))
    lines = [line.split() for line in report.connections.rendered(_pid_and_id, 2,
                                                                  indices=at)]
    assert [(int(i), kind) for _, i, kind in lines] == \
        [(conns[k].id, conns[k].kind) for k in at]
    assert str(os.getpid()) not in {pid for pid, _, _ in lines}


@pytest.mark.parametrize("args", [
    ("--no-rst", "--max-half-close", "1ms", "--initiator", "client"),
    ("--expect", "RULES")])
def test_check_by_several_processes_is_identical(args, monkeypatch, run_cli, tmp_path):
    """check --jobs 2 analyses and summarises the violating connections in two
    processes: the same report, the same status."""
    from teardown_analyzer import results
    monkeypatch.setattr(results, "RENDER_SLICE", 7)
    rules = tmp_path / "rules.toml"
    rules.write_text("[[rule]]\nname = 'web'\n"
                     "where = { server_port = [5017], client_ip = ['198.18.0.0/15'] }\n"
                     "no_rst = true\nmax_half_close = '5ms'\n")
    args = tuple(str(rules) if a == "RULES" else a for a in args)
    path = str(SAMPLES / "mixed_200.pcap")
    code, one, err = run_cli("check", path, *args, "--format", "json", "--quiet")
    doc = json.loads(one)
    assert code == 1 and sum(len(r["violations"]) for r in doc["rules"]) > 2 * 7
    assert run_cli("check", path, *args, "--format", "json", "--quiet", "--jobs", "2") \
        == (1, one, err)


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_output_written_by_several_processes_is_identical(fmt, monkeypatch, run_cli):
    from teardown_analyzer import results
    monkeypatch.setattr(results, "RENDER_SLICE", 7)
    path = str(SAMPLES / "mixed_200.pcap")
    code, one, _ = run_cli(path, "--format", fmt, "--quiet")
    assert code == 0 and one.count("\n") >= 200
    assert run_cli(path, "--format", fmt, "--quiet", "--jobs", "2") == (0, one, "")


@pytest.mark.parametrize("jobs,names", [(1, ["mixed_200.pcap", "four_way.pcap"]),
                                        (2, ["mixed_200.pcap", "four_way.pcap"]),
                                        (2, ["mixed_200.pcap"])])
def test_progress_counts_packets_and_bytes_over_all_captures(jobs, names):
    paths = [str(SAMPLES / n) for n in names]
    calls = []
    report = analyze(paths, Options(sweep_every=1), jobs, lambda n, b: calls.append((n, b)))
    assert calls == sorted(calls)  # never backwards
    packets = sum(c.packets for c in report.captures)
    size = sum(pathlib.Path(p).stat().st_size for p in paths)
    assert calls[-1] == (packets, size)


@pytest.mark.parametrize("jobs", [1, 2])
def test_rendering_tells_how_many_results_it_has_handed_out(jobs, monkeypatch):
    """What the bar of the connections written counts: every slice and at the last,
    each time exactly as many as were handed out, in one process or several."""
    from teardown_analyzer import results
    monkeypatch.setattr(results, "RENDER_SLICE", 7)
    report = analyze([str(SAMPLES / "mixed_200.pcap")])
    n = len(report.connections)
    lines: list[str] = []
    told: list[tuple[int, int]] = []
    for line in report.connections.rendered(_pid_and_id, jobs,
                                            lambda done: told.append((done, len(lines)))):
        lines.append(line)
    assert n % 7 and [done for done, _ in told] == [*range(7, n, 7), n]
    assert all(done == handed_out for done, handed_out in told)
    assert [int(line.split()[1]) for line in lines] == [c.id for c in report.connections]


def _on_a_terminal(*args: str, stdout_too: bool = False, ok: int = 0) -> tuple[str, bytes]:
    """``teardown-analyze ARGS`` with standard error on a pseudo-terminal (and standard
    output too, or in a file): what the terminal showed (escape sequences taken out) and
    what the file got (``ok``: the exit status expected)."""
    import pty
    import re
    import select
    import subprocess
    import sys
    import tempfile
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")}
    env.update(TERM="xterm", COLUMNS="100")
    control, terminal = pty.openpty()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-m", "teardown_analyzer", *args],
                                stdout=terminal if stdout_too else out, stderr=terminal,
                                env=env)
        os.close(terminal)
        shown = b""
        while select.select([control], [], [], 120)[0]:
            try:
                more = os.read(control, 1 << 16)
            except OSError:  # the other end closed (Linux)
                break
            if not more:
                break
            shown += more
        assert proc.wait(60) == ok
        os.close(control)
        out.seek(0)
        written = out.read()
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode(errors="replace")), written


@pytest.mark.parametrize("args", [("--format", "json"), ("--format", "jsonl", "--jobs", "2"),
                                  ("--format", "csv")])
def test_a_bar_counts_the_connections_written_to_a_file(args, run_cli):
    """Writing every connection out takes longer than analysing them (a replay and a
    summary each): with the output in a file or a pipe, a bar on the terminal counts them;
    what the file gets is what it gets without the bar."""
    path = str(SAMPLES / "mixed_200.pcap")
    code, quiet, _ = run_cli(path, *args, "--quiet")
    n = len(analyze([path]).connections)
    shown, written = _on_a_terminal(path, *args)
    assert "analysing" in shown and "writing" in shown
    assert f"{n}/{n} connections" in shown
    assert code == 0 and written.decode() == quiet


def test_check_shows_the_analysis_bar_too_unless_quiet():
    path = str(SAMPLES / "mixed_200.pcap")
    shown, written = _on_a_terminal("check", path, "--kind", "four-way,three-way,simultaneous,"
                                    "fin-then-rst,rst,half-open,none")
    assert "analysing" in shown and b"passed" in written
    assert _on_a_terminal("check", path, "--kind", "four-way,three-way,simultaneous,"
                          "fin-then-rst,rst,half-open,none", "-q")[0] == ""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_check_counts_the_connections_it_summarises_to_judge(jobs):
    """The facts clear most connections; those they do not are summarised to be judged,
    which a bar counts (here the RST closes, the only ones --no-rst may fail)."""
    path = str(SAMPLES / "mixed_200.pcap")
    resets = sum(1 for c in analyze([path]).connections if c.rsts)
    shown, written = _on_a_terminal("check", path, "--no-rst", "--jobs", jobs, ok=1)
    assert resets == 32 and "checking" in shown and f"{resets}/{resets} connections" in shown
    assert b"32 of 200" in written
    assert _on_a_terminal("check", path, "--no-rst", "-q", ok=1)[0] == \
        "error: check failed: 1 of 1 rule failed (200 connections)\r\n"


def test_no_bar_through_output_on_the_terminal_nor_with_quiet():
    path = str(SAMPLES / "mixed_200.pcap")
    shown, _ = _on_a_terminal(path, "--format", "jsonl", stdout_too=True)
    assert "analysing" in shown and '"zeek_state"' in shown
    assert "writing" not in shown and " connections" not in shown
    shown, written = _on_a_terminal(path, "--format", "jsonl", "--quiet")
    assert shown == "" and written.count(b"\n") == len(analyze([path]).connections)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_all_on_a_large_capture_lists_a_line_per_connection(jobs, monkeypatch, run_cli):
    """--all above LIST_ABOVE connections: one line each (a rich table of that size takes
    about 1 ms a row), with the same facts as the JSON."""
    from teardown_analyzer import report, results
    monkeypatch.setattr(report, "LIST_ABOVE", 50)
    monkeypatch.setattr(results, "RENDER_SLICE", 7)
    path = str(SAMPLES / "mixed_200.pcap")
    code, out, _ = run_cli(path, "--all", "--quiet", "--jobs", jobs)
    assert code == 0
    lines = out.splitlines()
    conns = json.loads(run_cli(path, "--format", "json", "--quiet")[1])["connections"]
    assert lines[0].split() == ["id", "client", "→", "server", "close", "client:", "states",
                                "server:", "states", "|", "details"]
    for line, c in zip(lines[1:], conns):
        states = " → ".join(s["state"] for s in c["sides"]["client"]["states"])
        assert line.split()[0] == str(c["id"])
        assert f'{c["client"]["ip"]}:{c["client"]["port"]} → ' in line
        assert f'  {c["close"]["kind"]} by {c["close"]["initiator"]}  ' in line
        assert f"client: {states}" in line.replace("*", "")
    assert lines[len(conns) + 1].startswith(f"{len(conns)} connections: ")


def test_spawned_workers_send_their_results_back(monkeypatch):
    """Where fork is missing (spawn: macOS, Windows), a worker inherits no spill file: it
    makes its own, which travels back with its contents; results are identical."""
    import multiprocessing
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    path = [str(SAMPLES / "mixed_200.pcap")]
    assert _dicts(analyze(path, jobs=2)) == _dicts(analyze(path, jobs=1))


def test_the_command_starts_no_blas_threads():
    """numpy's OpenBLAS would start a thread per other core, spinning for about 0.1 s of
    CPU the analysis could use; the command is one thread (its processes' threads are
    their own), read ahead aside, which has ended when the command returns."""
    import subprocess
    import sys
    code = ("import os, sys, teardown_analyzer.cli as c\n"
            "try:\n    c.main([sys.argv[1]])\n"
            "finally:\n    print('numpy' in sys.modules, len(os.listdir('/proc/self/task')), "
            "file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code, str(SAMPLES / "four_way.pcap")],
                          capture_output=True, text=True, env=env, check=True)
    assert done.stderr.strip().splitlines()[-1] == "True 1"
