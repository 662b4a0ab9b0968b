"""The benchmark's capture generator: deterministic, correct checksums, and the analyzer
reports exactly the counts it expects (benchmarks/make_capture.py)."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import struct

import pytest

from teardown_analyzer.analysis import analyze

ROOT = pathlib.Path(__file__).resolve().parent.parent
N = 400


def _generator():
    spec = importlib.util.spec_from_file_location("make_capture",
                                                  ROOT / "benchmarks" / "make_capture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    gen = _generator()
    d = tmp_path_factory.mktemp("bench")
    path = d / "a.pcap"
    exp = gen.generate(str(path), N, seed=7)
    return gen, d, path, exp


def _records(data: bytes):
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    assert struct.unpack_from("<I", data, 20)[0] == 1  # Ethernet
    off = 24
    while off < len(data):
        _s, _us, incl, orig = struct.unpack_from("<IIII", data, off)
        assert incl == orig
        yield data[off + 16:off + 16 + incl]
        off += 16 + incl


def _ones_sum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f">{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def test_same_seed_same_bytes(generated, tmp_path):
    gen, d, path, exp = generated
    again = tmp_path / "b.pcap"
    exp2 = gen.generate(str(again), N, seed=7)
    assert again.read_bytes() == path.read_bytes()
    assert exp2 == {**exp, "capture": "b.pcap"}
    other = tmp_path / "c.pcap"
    gen.generate(str(other), N, seed=8)
    assert other.read_bytes() != path.read_bytes()


def test_expected_file_and_packet_count(generated):
    _gen, _d, path, exp = generated
    on_disk = json.loads(pathlib.Path(str(path) + ".expected.json").read_text())
    assert on_disk == exp
    assert exp["connections"] == N == sum(exp["kinds"].values())
    assert sum(exp["scenarios"].values()) == N
    assert sum(exp["initiators"].values()) == N
    assert exp["packets"] == sum(1 for _ in _records(path.read_bytes()))
    assert exp["ipv6_connections"] > 0
    # every scenario occurs at this size
    assert all(n > 0 for n in exp["scenarios"].values()), exp["scenarios"]


def test_checksums_are_correct(generated):
    _gen, _d, path, _exp = generated
    v4 = v6 = 0
    for pkt in _records(path.read_bytes()):
        ethertype = struct.unpack_from(">H", pkt, 12)[0]
        ip = pkt[14:]
        if ethertype == 0x0800:
            v4 += 1
            assert _ones_sum(ip[:20]) == 0xFFFF
            total = struct.unpack_from(">H", ip, 2)[0]
            seg = ip[20:total]
            pseudo = ip[12:20] + struct.pack(">BBH", 0, 6, len(seg))
        else:
            assert ethertype == 0x86DD
            v6 += 1
            plen = struct.unpack_from(">H", ip, 4)[0]
            seg = ip[40:40 + plen]
            pseudo = ip[8:40] + struct.pack(">IxxxB", len(seg), 6)
        assert _ones_sum(pseudo + seg) == 0xFFFF
    assert v4 and v6


def test_analyzer_reports_the_expected_counts(generated):
    _gen, _d, path, exp = generated
    report = analyze([str(path)])
    totals = report.totals()
    assert totals == exp["totals"]
    kind_init: dict[str, dict[str, int]] = {}
    for c in report.connections:
        d = kind_init.setdefault(c.kind, {})
        key = c.initiator or "none"
        d[key] = d.get(key, 0) + 1
    assert kind_init == {k: v for k, v in exp["kind_initiators"].items() if v}


@pytest.mark.parametrize("link", ["sll2", "vlan"])
def test_other_link_headers(generated, tmp_path, link):
    """``--link sll2`` and ``--link vlan``: the same packets, at the same times, behind
    Linux cooked v2 headers (incoming or outgoing as seen on the server) or with an
    802.1Q tag, with the same expected counts."""
    gen, _d, path, exp = generated
    other = tmp_path / f"{link}.pcap"
    exp2 = gen.generate(str(other), N, seed=7, link=link)
    linktype = 276 if link == "sll2" else 1
    assert exp2 == {**exp, "capture": f"{link}.pcap",
                    "generator": {**exp["generator"], "linktype": linktype}}
    a, b = path.read_bytes(), other.read_bytes()
    assert struct.unpack_from("<I", b, 20)[0] == linktype
    pos_a = pos_b = 24
    count = 0
    while pos_a < len(a):
        sec, frac, incl, _ = struct.unpack_from("<IIII", a, pos_a)
        sec2, frac2, incl2, orig2 = struct.unpack_from("<IIII", b, pos_b)
        frame, framed = a[pos_a + 16:pos_a + 16 + incl], b[pos_b + 16:pos_b + 16 + incl2]
        grown = 6 if link == "sll2" else 4
        assert (sec2, frac2, incl2, orig2) == (sec, frac, incl + grown, incl + grown)
        if link == "vlan":
            assert framed == frame[:12] + b"\x81\x00\x00\x64" + frame[12:]
        else:
            assert framed[20:] == frame[14:]
            protocol, _, ifindex, hatype, packet_type, addr_len = struct.unpack_from(
                "!HHIHBB", framed)
            assert (protocol, ifindex, hatype, addr_len) == (
                int.from_bytes(frame[12:14], "big"), 2, 1, 6)
            assert packet_type in (0, 4)  # to the server, or sent by it
        pos_a, pos_b, count = pos_a + 16 + incl, pos_b + 16 + incl2, count + 1
    assert pos_b == len(b) and count == exp["packets"]
    assert analyze([str(other)]).totals() == exp["totals"]


def test_the_stage_timer_runs_on_the_generated_capture(generated):
    """benchmarks/stages.py still finds the functions it times, and times the analysis of
    the whole capture: the generator's packets and connections, every stage under the
    total (no figure is checked: those depend on the machine)."""
    import subprocess
    import sys
    _gen, _d, path, exp = generated
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stages.py"), str(path)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith(f"{path}: {exp['packets']:,} packets, "
                             f"{exp['totals']['connections']:,} connections, ")
    total = float(out[0].split(" s in all")[0].rsplit(", ", 1)[1])
    stages = {line[:22].strip(): float(line[22:].split(" s")[0]) for line in out[1:]}
    assert list(stages) == ["read and walk", "gather", "windows", "recognise", "keep",
                            "the rest of them", "the rest"]
    assert stages["windows"] > 0 and all(0 <= s <= total for s in stages.values())
    assert abs(sum(stages[s] for s in ("recognise", "keep", "the rest of them"))
               - stages["windows"]) < 0.002


def test_the_benchmark_runs_each_tool_in_turns_and_checks_the_counts(generated, tmp_path):
    """benchmarks/run.py with ``--repeat 2`` runs teardown-analyze's table and JSON twice
    each, in turns, and reports each one's median (the upper middle) and best wall time;
    the counts it checks are the generator's, so it says the result is correct (exit 0).
    With an expected count changed, it says which, for both, and exits 1."""
    import shutil
    import subprocess
    import sys
    _gen, d, path, exp = generated
    report = tmp_path / "bench.json"
    run = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--capture", str(path),
           "--skip-tshark", "--skip-tcptrace", "--repeat", "2", "--json", str(report)]
    p = subprocess.run(run, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "CORRECTNESS: ok" in p.stdout
    assert p.stderr.count("(1 of 2)") == 2 and p.stderr.count("(2 of 2)") == 2
    got = json.loads(report.read_text())
    assert got["correct"] and list(got["results"]) == ["teardown-analyze",
                                                       "teardown-analyze --format json"]
    for r in got["results"].values():
        assert len(r["walls_s"]) == 2 and r["wall_s"] == max(r["walls_s"])
        assert r["best_wall_s"] == min(r["walls_s"]) and r["connections"] == N
    # a capture whose expected counts are wrong: the benchmark fails, and says why
    other = tmp_path / "b.pcap"
    shutil.copy(path, other)
    wrong = json.loads(pathlib.Path(f"{path}.expected.json").read_text())
    wrong["totals"]["kinds"]["rst"] += 1
    pathlib.Path(f"{other}.expected.json").write_text(json.dumps(wrong))
    p = subprocess.run(run[:3] + [str(other)] + run[4:6], capture_output=True, text=True)
    assert p.returncode == 1 and "CORRECTNESS: FAILED" in p.stdout
    rst = exp["totals"]["kinds"]["rst"]
    assert f"  - table: kind rst: got {rst}, expected {rst + 1}" in p.stdout.splitlines()
    assert f"  - kind rst: got {rst}, expected {rst + 1}" in p.stdout.splitlines()


def test_the_jobs_timer_runs_each_step_alone_then_side_by_side(generated):
    """benchmarks/jobs.py still finds the steps it times: with the lock, no two steps of
    the two workers overlap; without it, the two walks (byte ranges) and the two parts
    (shares) run in two processes (no figure is checked: those depend on the machine)."""
    import subprocess
    import sys
    _gen, _d, path, exp = generated
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "jobs.py"), str(path),
                          "--split-bytes", "0"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == (f"{path}: {exp['packets']:,} packets, "
                      f"{exp['totals']['connections']:,} connections")
    assert out[1].startswith("one process: ") and out[2].startswith("two cores at best: ")
    alone = next(i for i, line in enumerate(out) if line.startswith("jobs=2, one step"))
    side = next(i for i, line in enumerate(out) if line.startswith("jobs=2: "))
    for first, last in ((alone + 1, side), (side + 1, len(out))):
        steps = [(line.split()[0], line.split()[2].rstrip("):"),
                  *map(float, line.split()[3].rstrip(":").split("-")))
                 for line in out[first:last]]
        assert sorted(s[0] for s in steps) == ["part", "part", "walk", "walk"]
        assert {s[1] for s in steps if s[0] == "walk"} == {s[1] for s in steps
                                                           if s[0] == "part"}
        assert len({s[1] for s in steps}) == 2
        if first == alone + 1:  # one at a time: each begins after the one before ended
            assert all(b[2] >= a[3] for a, b in zip(steps, steps[1:]))
