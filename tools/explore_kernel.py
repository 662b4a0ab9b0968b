#!/usr/bin/env python3
"""Random teardowns on real sockets, each compared with the kernel's own record of it.

    sudo python3 tools/explore_kernel.py --seed 1 --runs 20 [--keep DIR]

Each run uses tools/gen_samples.py's delay path (10 ms each way; ``--topology veth``: a
bare veth pair, tens of microseconds), both interfaces captured (by tcpdump; ``--capture
dumpcap``: as pcapng that records when the capture stopped) and the kernel's state
changes traced: one connection, a request and its response, then a random script for
each application, its calls at random times within 60 ms of each other (2 ms on veth),
so that they cross on the path: send (1 byte to 150 kB, more than a peer that does not
read takes), shutdown(SHUT_WR), close(), close() with SO_LINGER 0, reading what has
arrived; in half the runs, the first FIN, RST, data segment or pure ACK on its way into
one side is dropped at that side's input (nftables), after both capture points.  With
``--again``, in half the runs the client connects again from the same port, 0.2 to 1.4 s
after the calls begin (``tcp_tw_reuse`` on, so a TIME_WAIT of its own older than a second
lets it), and the server accepts and each closes; the connect fails while the client's
old socket holds the 4-tuple, and a SYN that finds the server's still there is answered
as that state does (a TIME_WAIT takes it, a socket still open answers with an ACK).  With
``--fin-timeout S``, ``tcp_fin_timeout`` is S seconds on both sides (an orphaned FIN_WAIT2
ends silently within the capture, and answers what comes after with an RST).  With
``--ipv6`` (veth only), the connection is over IPv6.  Both
captures are analysed and every side's states and final state compared with the
kernel's record.  A run that differs is printed with its script and its files kept (in
``--keep``, default a temporary directory), to become a sample (gen_samples.py
scenario) once understood.  Each run also keeps what the kernel's record was built from
(``<run>.record.json``: the traced events and the /proc polls), so that ``--recheck
--rebuild`` can build it again once the truth builder changes.

Not a test: it needs root and takes a few seconds a run.  What it found so far became
``close_race`` and ``data_after_close`` in sample_pcaps/.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "tests")]

import gen_samples as gs  # noqa: E402

ACTIONS = ("send", "send", "close", "close", "shut_wr", "abort", "drain")
SIZES = (1, 300, 3000, 150_000)
"""Bytes a send sends: 150 kB fills a peer that does not read (a zero window, probed)."""
WINDOW_S = {"delay": 0.06, "veth": 0.002}
"""How far apart the two scripts' calls fall, by path: within a few one-way delays."""

SIDE_CODE = """
def _drain(name):
    s = S[name]
    s.setblocking(False)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.setblocking(True)
for _t, _a, _n in {acts!r}:
    at(_t)
    try:
        if _a == 'send': send({name!r}, _n, b'data ')
        elif _a == 'close': close({name!r})
        elif _a == 'shut_wr': shut_wr({name!r})
        elif _a == 'abort': linger0({name!r}); close({name!r})
        elif _a == 'drain': _drain({name!r})
    except (OSError, KeyError):
        pass
"""
AGAIN_CODE = {"client": """
at({t!r})
try:
    connect('c2', {host!r}, {port}, src={src!r}, sport={sport}, timeout=4.0)
    at({t!r} + {hold!r})
    close('c2')
except OSError:
    pass
""", "server": """
try:
    accept('s2', 'L', timeout=5.0)
    at({t!r} + {hold!r})
    close('s2')
except OSError:
    pass
"""}
"""With ``--again``: the client's new connection from the same port at ``t``, each side
closing it ``hold`` seconds later (a socket.timeout, a refused or impossible connect: an
OSError, and nothing more)."""


def script(rng: random.Random, topology: str = "delay", again: bool = False) -> dict:
    """Each side's calls, (offset in seconds, call, bytes to send); and, in half the runs,
    the first segment of a kind to drop on its way into one side (None: no loss); with
    ``again``, in half the runs, when the client connects again from the same port and how
    long each side holds that connection before it closes it (``again``: [offset, hold])."""
    out: dict = {} if topology == "delay" else {"topology": topology}
    for side in ("client", "server"):
        calls = sorted(rng.uniform(0, WINDOW_S[topology]) for _ in range(rng.randint(1, 3)))
        out[side] = [(round(t, 4), rng.choice(ACTIONS), rng.choice(SIZES)) for t in calls]
    out["drop"] = [rng.choice(sorted(gs.DROPS)), rng.choice(("client", "server"))] \
        if rng.random() < 0.5 else None
    if again and rng.random() < 0.5:
        out["again"] = [round(rng.uniform(0.2, 1.4), 3), round(rng.uniform(0, 0.05), 4)]
    return out


def _sysctls(plan: dict) -> dict:
    """Each namespace's sysctls for a run: ``tcp_tw_reuse`` for the client that connects
    again; ``tcp_fin_timeout`` on both sides (``fin_timeout``: seconds)."""
    out: dict = {gs.NS_C: {}, gs.NS_S: {}}
    if "again" in plan:
        out[gs.NS_C]["net.ipv4.tcp_tw_reuse"] = 1
    if "fin_timeout" in plan:
        for ns in out.values():
            ns["net.ipv4.tcp_fin_timeout"] = plan["fin_timeout"]
    return {ns: kv for ns, kv in out.items() if kv}


def scenario(name: str, plan: dict, capture: str = "tcpdump") -> gs.Scenario:
    def body(x: gs.Ctx) -> None:
        cport = 40300 + plan["n"] % 200
        chost, shost = (x.c6, x.s6) if plan.get("ipv6") else (x.c4, x.s4)
        gs.open_pair(x, cport, 5030, chost=chost, shost=shost)
        gs.exchange(x)
        if plan["drop"]:
            gs.drop_once(x, *plan["drop"], cport, 5030)
        time.sleep(0.1)
        t0 = time.time() + 0.3
        for agent, side, sock in ((x.cli, "client", "c"), (x.srv, "server", "s")):
            acts = [(t0 + t, a, n) for t, a, n in plan[side]]
            code = SIDE_CODE.format(acts=acts, name=sock)
            if "again" in plan:
                code += AGAIN_CODE[side].format(t=t0 + plan["again"][0], hold=plan["again"][1],
                                                host=shost, port=5030, src=chost, sport=cport)
            agent.bg("go", code)
        x.cli.join("go")
        x.srv.join("go")

    text = f"explore run {name}: {json.dumps(plan)}"
    return gs.Scenario(name, body, description=text, analysis="(a random run)",
                       topo=plan.get("topology", "delay"), capture=capture,
                       tail=1.5 if plan["drop"] or "again" in plan else 1.0,
                       sysctls=_sysctls(plan), outputs=[
                           {"name": f"{name}_{side}_side", "source": side, "vantage": side,
                            "ext": "pcapng" if capture == "dumpcap" else "pcap",
                            "description": text, "analysis": "(a random run)"}
                           for side in ("client", "server")])


def differences(truth_path: Path, rebuild: bool = False) -> list[str]:
    """Where the analysis of the truth file's capture says other than the kernel, in the
    states or in their times (tests/test_accuracy.py's ``lag_misses``).  A state
    whose note says no segment shows it ("not shown: ...", with the other reading) is
    marked ``?``: the kernel may have been through it or not (tests/test_accuracy.py's
    NOT_SHOWN lists runs where it was not).  ``rebuild``: the kernel's record as the truth
    builder now reads it, from the run's kept record (runs kept before records were kept
    stay as they were written)."""
    from test_accuracy import _collapse_instant_fin_wait2, lag_misses
    from teardown_analyzer.analysis import analyze
    truth = json.loads(truth_path.read_text())
    if rebuild:
        truth["connections"] = gs.rebuild_connections(truth_path) or truth["connections"]
    ours = list(analyze([str(truth_path.parent / truth["capture"])]).connections)
    out = []
    # (a connect() that failed, the 4-tuple held: a socket with no segment on the wire)
    truth["connections"] = [tc for tc in truth["connections"] if tc["packets_in_capture"]]
    for tc in truth["connections"]:
        key = ((tc["client"]["ip"], tc["client"]["port"]), (tc["server"]["ip"], tc["server"]["port"]))
        same = [c for c in ours if (c.client, c.server) == key]
        if len(same) <= tc.get("incarnation", 0):
            out.append(f"no connection {key} #{tc.get('incarnation', 0)}")
            continue
        c = same[tc.get("incarnation", 0)]
        for role in ("client", "server"):
            mine = [s.state + ("?" if s.note.startswith("not shown:") else "*" if s.inferred
                               else "") for s in
                    (c.client_states if role == "client" else c.server_states)]
            kernel = [t["to"] for t in _collapse_instant_fin_wait2(
                tc["sides"][role]["transitions"], c, role) if t["to"] != t["from"]]
            final = c.client_final if role == "client" else c.server_final
            readings = ([m.rstrip("*?") for m in mine],
                        [m.rstrip("*") for m in mine if not m.endswith("?")])
            if kernel not in readings or final != tc["sides"][role]["final_state"]:
                out.append(f"{role}: ours {' '.join(mine)} (final {final}); kernel "
                           f"{' '.join(kernel)} (final {tc['sides'][role]['final_state']})")
        out += lag_misses(truth, tc, c)
    keys = [((tc["client"]["ip"], tc["client"]["port"]), (tc["server"]["ip"], tc["server"]["port"]))
            for tc in truth["connections"]]
    for key in sorted(set(keys)):
        found = sum((c.client, c.server) == key for c in ours)
        if found != keys.count(key):
            out.append(f"{key}: ours {found} connections, the kernel's {keys.count(key)}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--keep", help="where to write the runs' captures and truth files")
    ap.add_argument("--topology", choices=sorted(WINDOW_S), default="delay",
                    help="the path: 10 ms each way through a forwarder (delay), or a bare "
                         "veth pair, tens of microseconds (veth)")
    ap.add_argument("--capture", choices=("tcpdump", "dumpcap"), default="tcpdump",
                    help="what captures: tcpdump (pcap), or dumpcap (pcapng that records when "
                         "the capture stopped, which the analysis reads)")
    ap.add_argument("--again", action="store_true",
                    help="in half the runs, the client connects again from the same port")
    ap.add_argument("--fin-timeout", type=int, metavar="S",
                    help="net.ipv4.tcp_fin_timeout on both sides (default 60): an orphaned "
                         "FIN_WAIT2 that ends within the capture")
    ap.add_argument("--ipv6", action="store_true",
                    help="connect over IPv6 (--topology veth only)")
    ap.add_argument("--recheck", nargs="+", metavar="TRUTH",
                    help="no runs: compare the analysis of kept runs' truth files (as the "
                         "analysis now is) with the kernel's record, and say where they differ")
    ap.add_argument("--rebuild", action="store_true",
                    help="with --recheck: build each run's kernel record again from what the "
                         "run kept (its .record.json), as tools/gen_samples.py now reads it")
    args = ap.parse_args(argv)
    if args.ipv6 and args.topology != "veth":
        ap.error("--ipv6 needs --topology veth (the delay path's forwarder is IPv4 only)")
    if args.recheck:
        differing = 0
        for path in map(Path, args.recheck):
            found = differences(path, args.rebuild)
            differing += bool(found)
            print(f"{path.name}: " + ("DIFFERS" if found else "same as the kernel"))
            for line in found:
                print(f"  {line}")
        print(f"{differing} of {len(args.recheck)} differ")
        return 1 if differing else 0
    gs.OUT = Path(args.keep or tempfile.mkdtemp(prefix="explore-"))
    gs.OUT.mkdir(parents=True, exist_ok=True)
    gs.KEEP_RECORD = True
    gs.ensure_tools()
    tracer = gs.Tracer()
    work = Path(tempfile.mkdtemp(prefix="explore-work-"))
    gs.Topology.cleanup_stale()
    tracer.setup()
    rng = random.Random(args.seed)
    differing = 0
    try:
        for n in range(args.runs):
            plan = {"n": n, **script(rng, args.topology, args.again)}
            if args.fin_timeout is not None:
                plan["fin_timeout"] = args.fin_timeout
            if args.ipv6:
                plan["ipv6"] = True
            name = f"explore_{args.seed}_{n}"
            try:
                gs.run_scenario(scenario(name, plan, args.capture), tracer, work)
            except Exception as e:  # a run the recorder could not make sense of: say so, go on
                print(f"{name}: not recorded ({str(e).splitlines()[0] if str(e) else e!r})")
                continue
            found = {side: differences(gs.OUT / f"{name}_{side}_side.truth.json")
                     for side in ("client", "server")}
            if any(found.values()):
                differing += 1
                print(f"{name} DIFFERS: {json.dumps(plan)}")
                for side, lines in found.items():
                    for line in lines:
                        print(f"  {side}-side capture: {line}")
            else:
                print(f"{name}: same as the kernel")
    finally:
        tracer.teardown()
        gs.Topology.cleanup_stale()
    print(f"{differing} of {args.runs} runs differ; files in {gs.OUT}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
