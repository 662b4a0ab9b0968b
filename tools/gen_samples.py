#!/usr/bin/env python3
"""Generate the sample captures in sample_pcaps/ together with a kernel-truth
file for each one.

    sudo python3 tools/gen_samples.py                 # every scenario
    sudo python3 tools/gen_samples.py --only four_way simultaneous
    python3 tools/gen_samples.py --list

Needs root (network namespaces, tcpdump, tracefs, nftables).  Stdlib only; it
installs tcpdump, nftables, ethtool and dumpcap with apt-get when they are missing.

For each scenario it builds a fresh client and server network namespace
(tdg-cli, tdg-srv; plus tdg-mid for the userspace VLAN / TUN / delay links), joined
by a veth pair with addresses from 198.18.0.0/15 and fd00:7d::/64 that exist
only inside those namespaces, turns checksum/segmentation offloads off, runs
real sockets (tools/tdg_agent.py), captures with tcpdump (or dumpcap), records the kernel's
sock:inet_sock_set_state / tcp:tcp_send_reset / tcp:tcp_receive_reset /
tcp:tcp_retransmit_skb events in a private ftrace instance on the "mono"
clock, polls /proc/net/tcp{,6} of both namespaces every 2 ms
(tools/tdg_procpoll.py) to see timewait mini-sockets, and writes
NAME.pcap (or .pcapng) and NAME.truth.json.  See sample_pcaps/README.md.
"""
from __future__ import annotations

import argparse
import atexit
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "sample_pcaps"
sys.path.insert(0, str(HERE))
import pcapread  # noqa: E402

NS_C, NS_S, NS_M = "tdg-cli", "tdg-srv", "tdg-mid"
TRACEFS = Path("/sys/kernel/tracing")
INST = TRACEFS / "instances" / "tdgen"
POLL_INTERVAL = 0.002
DELAY_MS = 10          # one-way delay of the "delay" topology's middle hop (each direction)
PY = sys.executable or "python3"

STATE_MAP = {
    "TCP_ESTABLISHED": "ESTABLISHED", "TCP_SYN_SENT": "SYN_SENT", "TCP_SYN_RECV": "SYN_RECV",
    "TCP_NEW_SYN_RECV": "SYN_RECV", "TCP_FIN_WAIT1": "FIN_WAIT1", "TCP_FIN_WAIT2": "FIN_WAIT2",
    "TCP_TIME_WAIT": "TIME_WAIT", "TCP_CLOSE": "CLOSED", "TCP_CLOSE_WAIT": "CLOSE_WAIT",
    "TCP_LAST_ACK": "LAST_ACK", "TCP_LISTEN": "LISTEN", "TCP_CLOSING": "CLOSING",
}
PROC_MAP = {"CLOSE": "CLOSED", "NEW_SYN_RECV": "SYN_RECV"}

VERBOSE = False


def log(*a):
    print("[gen_samples]", *a, flush=True)


def vlog(*a):
    if VERBOSE:
        print("   ", *a, flush=True)


# --------------------------------------------------------------------- shell

def sh(cmd, check=True, ns=None, capture=False, quiet=False):
    if isinstance(cmd, str):
        cmd = cmd.split()
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    vlog("$", " ".join(cmd))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr.strip()}")
    if r.returncode != 0 and not quiet:
        vlog("  (ignored)", r.stderr.strip())
    return r.stdout if capture else r.returncode


def ensure_tools():
    missing = [p for p, b in (("tcpdump", "tcpdump"), ("nftables", "nft"), ("ethtool", "ethtool"),
                              ("iproute2", "ip"), ("iproute2", "tc"), ("wireshark-common", "dumpcap"))
               if shutil.which(b) is None]
    if missing:
        log("installing", " ".join(sorted(set(missing))), "with apt-get")
        subprocess.run(["apt-get", "update"], check=False)
        # (wireshark-common asks whether non-root users may capture: the default, no)
        subprocess.run(["apt-get", "install", "-y"] + sorted(set(missing)), check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


# ------------------------------------------------------------------- tracing

class Tracer:
    EVENTS = ["sock/inet_sock_set_state", "tcp/tcp_send_reset", "tcp/tcp_receive_reset",
              "tcp/tcp_retransmit_skb"]

    def __init__(self, clock="mono"):
        self.clock = clock
        self.active = False

    def _w(self, rel, val):
        with open(INST / rel, "w") as f:
            f.write(val)

    def setup(self):
        if not (TRACEFS / "events").exists():
            sh(["mount", "-t", "tracefs", "nodev", str(TRACEFS)])
        if INST.exists():
            self.teardown()
        INST.mkdir()
        self.active = True
        self._w("tracing_on", "0")
        self._w("trace_clock", self.clock)
        self._w("buffer_size_kb", "16384")
        for ev in self.EVENTS:
            self._w(f"events/{ev}/enable", "1")
        self._w("events/sock/inet_sock_set_state/filter", "protocol == 6")

    def start(self):
        self._w("tracing_on", "0")
        self._w("trace", "")
        self._w("tracing_on", "1")

    def stop(self):
        self._w("tracing_on", "0")
        text = (INST / "trace").read_text()
        overruns = 0
        for st in (INST / "per_cpu").glob("cpu*/stats"):
            m = re.search(r"overrun: (\d+)", st.read_text())
            if m:
                overruns += int(m.group(1))
        return text, overruns

    def teardown(self):
        if not INST.exists():
            return
        try:
            self._w("tracing_on", "0")
            for ev in self.EVENTS:
                try:
                    self._w(f"events/{ev}/enable", "0")
                except OSError:
                    pass
            INST.rmdir()
        except OSError as e:
            log("warning: could not remove trace instance:", e)
        self.active = False


TRACE_RE = re.compile(r"\s(\d+\.\d+):\s+(\w+):\s(.*)$")
KV_RE = re.compile(r"(\w+)=(\S+)")


def _ep(s):
    """'198.18.0.1:40001' or '[fd00:7d::1]:40001' -> ('198.18.0.1', 40001)."""
    host, port = s.rsplit(":", 1)
    host = host.strip("[]")
    a = ipaddress.ip_address(host)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped:
        a = a.ipv4_mapped
    return str(a), int(port)


def parse_trace(text, offset):
    """Return list of events with wall-clock (pcap clock) timestamps.  ``offset``:
    CLOCK_REALTIME - CLOCK_MONOTONIC in seconds, or two (mono, offset) readings, before
    and after the run, between which it is taken as changing steadily (a clock being
    slewed, by adjtime or NTP, at up to 500 ppm: several ms over one run)."""
    if isinstance(offset, tuple):
        (m1, o1), (m2, o2) = offset
        rate = (o2 - o1) / (m2 - m1) if m2 > m1 else 0.0
        at = lambda mono: o1 + (mono - m1) * rate  # noqa: E731
    else:
        at = lambda mono: offset  # noqa: E731
    evs = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = TRACE_RE.search(line)
        if not m:
            continue
        mono, name, rest = float(m.group(1)), m.group(2), m.group(3)
        kv = dict(KV_RE.findall(rest))
        ev = {"ts": mono + at(mono), "mono": mono, "name": name}
        if name in ("inet_sock_set_state", "tcp_receive_reset", "tcp_retransmit_skb"):
            if kv.get("family") == "AF_INET6":
                sa, da = kv["saddrv6"], kv["daddrv6"]
            else:
                sa, da = kv["saddr"], kv["daddr"]
            sa, da = str(ipaddress.ip_address(sa)), str(ipaddress.ip_address(da))
            ev["local"] = (sa, int(kv["sport"]))
            ev["remote"] = (da, int(kv["dport"]))
            if name == "inet_sock_set_state":
                ev["old"] = STATE_MAP.get(kv["oldstate"], kv["oldstate"])
                ev["new"] = STATE_MAP.get(kv["newstate"], kv["newstate"])
            if name == "tcp_retransmit_skb":
                ev["state"] = STATE_MAP.get(kv.get("state", ""), kv.get("state"))
        elif name == "tcp_send_reset":
            try:
                ev["local"] = _ep(kv["src"])
                ev["remote"] = _ep(kv["dest"])
            except (KeyError, ValueError):
                continue
            ev["state"] = STATE_MAP.get(kv.get("state", ""), kv.get("state"))
            ev["reason"] = kv.get("reason")
        else:
            continue
        evs.append(ev)
    evs.sort(key=lambda e: e["ts"])
    return evs


def clock_offset(samples=50, when=False):
    """CLOCK_REALTIME - CLOCK_MONOTONIC in seconds, from the tightest bracket, and the
    bracket's width in microseconds (``when``: and the CLOCK_MONOTONIC reading, seconds)."""
    best = None
    for _ in range(samples):
        r1 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        m = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        r2 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        if best is None or r2 - r1 < best[0]:
            best = (r2 - r1, (r1 + r2) // 2 - m, m)
    if when:
        return best[1] / 1e9, best[0] / 1e3, best[2] / 1e9
    return best[1] / 1e9, best[0] / 1e3


# ------------------------------------------------------------------ topology

class Topology:
    """kind: 'veth' | 'vlan' | 'tun' | 'delay' | 'host' (loopback in the host namespace)."""

    def __init__(self, kind="veth"):
        self.kind = kind
        self.fwd = None
        if kind == "veth":
            self.c4, self.s4, self.c6, self.s6 = "198.18.0.1", "198.18.0.2", "fd00:7d::1", "fd00:7d::2"
            self.cdev, self.sdev = "tdgc0", "tdgs0"
        elif kind == "vlan":
            self.c4, self.s4, self.c6, self.s6 = "198.18.1.1", "198.18.1.2", None, None
            self.cdev, self.sdev = "tdgc0", "tdgs0"
        elif kind == "tun":
            self.c4, self.s4, self.c6, self.s6 = "198.18.2.1", "198.18.2.2", None, None
            self.cdev, self.sdev = "tdgtunc", "tdgtuns"
        elif kind == "delay":
            self.c4, self.s4, self.c6, self.s6 = "198.18.3.1", "198.18.3.2", None, None
            self.cdev, self.sdev = "tdgc0", "tdgs0"
            self.fwd_stats = None
        elif kind == "host":
            self.c4 = self.s4 = "127.0.0.1"
            self.c6 = self.s6 = None
            self.cdev = self.sdev = "lo"
        self.ns_c = None if kind == "host" else NS_C
        self.ns_s = None if kind == "host" else NS_S

    @staticmethod
    def cleanup_stale():
        out = sh(["ip", "netns", "list"], capture=True, check=False)
        for line in out.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith("tdg-"):
                sh(["ip", "netns", "del", name], check=False)

    def _offloads(self, ns, dev):
        sh(["ethtool", "-K", dev, "tx", "off", "rx", "off", "sg", "off", "tso", "off", "gso", "off",
            "gro", "off"], ns=ns, check=False, quiet=True)
        sh(["ethtool", "-K", dev, "rxvlan", "off", "txvlan", "off"], ns=ns, check=False, quiet=True)

    def _ns_base(self, ns):
        sh(["ip", "netns", "add", ns])
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])

    def setup(self):
        if self.kind == "host":
            return
        self.cleanup_stale()
        # Give the namespaces their own small TCP hash table: /proc/net/tcp walks
        # every bucket, and with the host's table one read takes ~4 ms, which
        # would make the 2 ms polling useless.  The host value is put back at once.
        knob = Path("/proc/sys/net/ipv4/tcp_child_ehash_entries")
        orig = knob.read_text().strip() if knob.exists() else None
        try:
            if orig is not None:
                knob.write_text("1024")
            for ns in (NS_C, NS_S) + ((NS_M,) if self.kind in ("vlan", "tun", "delay") else ()):
                self._ns_base(ns)
        finally:
            if orig is not None:
                knob.write_text(orig)
        if self.kind == "veth":
            sh(["ip", "link", "add", "tdgc0", "netns", NS_C, "type", "veth", "peer", "name", "tdgs0",
                "netns", NS_S])
            for ns, dev, a4, a6 in ((NS_C, "tdgc0", self.c4, self.c6), (NS_S, "tdgs0", self.s4, self.s6)):
                self._offloads(ns, dev)
                sh(["ip", "-n", ns, "addr", "add", a4 + "/24", "dev", dev])
                sh(["ip", "-n", ns, "addr", "add", a6 + "/64", "dev", dev, "nodad"])
                sh(["ip", "-n", ns, "link", "set", dev, "up"])
        elif self.kind == "vlan":
            for k in ("all", "default"):
                sh(["sysctl", "-qw", f"net.ipv6.conf.{k}.disable_ipv6=1"], ns=NS_M)
            for ns in (NS_C, NS_S):
                for k in ("all", "default"):
                    sh(["sysctl", "-qw", f"net.ipv6.conf.{k}.disable_ipv6=1"], ns=ns)
            sh(["ip", "link", "add", "tdgc0", "netns", NS_C, "type", "veth", "peer", "name", "tdgc1",
                "netns", NS_M])
            sh(["ip", "link", "add", "tdgs0", "netns", NS_S, "type", "veth", "peer", "name", "tdgs1",
                "netns", NS_M])
            sh(["ip", "link", "add", "tdgta", "netns", NS_M, "type", "veth", "peer", "name", "tdgtb",
                "netns", NS_M])
            for dev in ("tdgc1", "tdgs1", "tdgta", "tdgtb"):
                self._offloads(NS_M, dev)
                sh(["ip", "-n", NS_M, "link", "set", dev, "up"])
            for ns, dev, a4 in ((NS_C, "tdgc0", self.c4), (NS_S, "tdgs0", self.s4)):
                self._offloads(ns, dev)
                sh(["ip", "-n", ns, "addr", "add", a4 + "/24", "dev", dev])
                sh(["ip", "-n", ns, "link", "set", dev, "up"])
            self.fwd = subprocess.Popen(["ip", "netns", "exec", NS_M, PY, str(HERE / "tdg_fwd.py"), "vlan",
                                         "100", "tdgc1", "tdgta", "tdgtb", "tdgs1"],
                                        stdout=subprocess.PIPE, text=True)
            if self.fwd.stdout.readline().strip() != "ready":
                raise RuntimeError("vlan forwarder did not start")
        elif self.kind == "delay":
            # client veth -- [tdg-mid: tdg_fwd.py delay] -- server veth, one L2 segment (198.18.3.0/24).
            # Static neighbour entries, so no ARP exchange (itself delayed) precedes the SYN.
            macs = {"tdgc0": "02:7d:00:00:03:01", "tdgs0": "02:7d:00:00:03:02"}
            for ns in (NS_C, NS_S, NS_M):
                for k in ("all", "default"):
                    sh(["sysctl", "-qw", f"net.ipv6.conf.{k}.disable_ipv6=1"], ns=ns)
            sh(["ip", "link", "add", "tdgc0", "netns", NS_C, "address", macs["tdgc0"], "type", "veth", "peer",
                "name", "tdgc1", "netns", NS_M])
            sh(["ip", "link", "add", "tdgs0", "netns", NS_S, "address", macs["tdgs0"], "type", "veth", "peer",
                "name", "tdgs1", "netns", NS_M])
            for dev in ("tdgc1", "tdgs1"):
                self._offloads(NS_M, dev)
                sh(["ip", "-n", NS_M, "link", "set", dev, "up"])
            for ns, dev, a4, peer4, peer_mac in ((NS_C, "tdgc0", self.c4, self.s4, macs["tdgs0"]),
                                                 (NS_S, "tdgs0", self.s4, self.c4, macs["tdgc0"])):
                self._offloads(ns, dev)
                sh(["ip", "-n", ns, "addr", "add", a4 + "/24", "dev", dev])
                sh(["ip", "-n", ns, "link", "set", dev, "up"])
                sh(["ip", "-n", ns, "neigh", "replace", peer4, "lladdr", peer_mac, "dev", dev, "nud", "permanent"])
            self.fwd = subprocess.Popen(["ip", "netns", "exec", NS_M, PY, str(HERE / "tdg_fwd.py"), "delay",
                                         str(DELAY_MS), "tdgc1", "tdgs1"], stdout=subprocess.PIPE, text=True)
            if self.fwd.stdout.readline().strip() != "ready":
                raise RuntimeError("delay forwarder did not start")
        elif self.kind == "tun":
            for ns in (NS_C, NS_S):
                for k in ("all", "default"):
                    sh(["sysctl", "-qw", f"net.ipv6.conf.{k}.disable_ipv6=1"], ns=ns)
            self.fwd = subprocess.Popen(["ip", "netns", "exec", NS_M, PY, str(HERE / "tdg_fwd.py"), "tun",
                                         "tdgtunc", "tdgtuns"], stdout=subprocess.PIPE, text=True)
            if self.fwd.stdout.readline().strip() != "ready":
                raise RuntimeError("tun forwarder did not start")
            for ns, dev, a4 in ((NS_C, "tdgtunc", self.c4), (NS_S, "tdgtuns", self.s4)):
                sh(["ip", "-n", NS_M, "link", "set", dev, "netns", ns])
                self._offloads(ns, dev)
                sh(["ip", "-n", ns, "addr", "add", a4 + "/24", "dev", dev])
                sh(["ip", "-n", ns, "link", "set", dev, "up"])

    def stop_fwd(self):
        """Stop the delay forwarder and return its statistics (JSON line on stdout)."""
        if self.fwd is None:
            return None
        _kill(self.fwd)
        out = self.fwd.stdout.read().strip().splitlines()
        self.fwd = None
        try:
            return json.loads(out[-1]) if out else None
        except ValueError:
            return None

    def teardown(self):
        if self.fwd is not None:
            _kill(self.fwd)
            self.fwd = None
        if self.kind != "host":
            for ns in (NS_C, NS_S, NS_M):
                sh(["ip", "netns", "del", ns], check=False, quiet=True)


def _kill(p, sig=signal.SIGTERM, timeout=5):
    if p is None or p.poll() is not None:
        return
    try:
        p.send_signal(sig)
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    except ProcessLookupError:
        pass


# -------------------------------------------------------------------- agents

class Agent:
    def __init__(self, ns, label):
        self.label = label
        cmd = [PY, "-u", str(HERE / "tdg_agent.py")]
        if ns:
            cmd = ["ip", "netns", "exec", ns] + cmd
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        hello = json.loads(self.p.stdout.readline())
        self.pid = hello["pid"]

    def _req(self, obj):
        self.p.stdin.write(json.dumps(obj) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"agent {self.label} died")
        rep = json.loads(line)
        if not rep["ok"]:
            raise RuntimeError(f"agent {self.label} failed on {obj}:\n{rep['err']}")
        return rep.get("r")

    def __call__(self, code):
        return self._req({"code": code})

    def bg(self, name, code):
        return self._req({"code": code, "bg": name})

    def join(self, name, timeout=30):
        return self._req({"join": name, "timeout": timeout})

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        _kill(self.p)


# ------------------------------------------------------------------- capture

class Capture:
    def __init__(self, ns, dev, path, filt="tcp", linktype=None, nano=False, snaplen=None, tool="tcpdump"):
        if tool == "dumpcap":  # pcapng, with an interface statistics block (isb_endtime) when stopped
            cmd = ["dumpcap", "-i", dev, "-w", str(path), "-q", "-f", filt]
            ready_word = "Capturing on"
        else:
            cmd = ["tcpdump", "-i", dev, "-w", str(path), "-U", "--immediate-mode", "-Z", "root", "-n"]
            ready_word = "listening on"
        if snaplen:
            cmd += ["-s", str(snaplen)]
        if linktype:
            cmd += ["-y", linktype]
        if nano:
            cmd += ["--time-stamp-precision=nano"]
        if tool != "dumpcap":
            cmd += filt.split()
        if ns:
            cmd = ["ip", "netns", "exec", ns] + cmd
        vlog("$", " ".join(cmd))
        self.path = path
        self.p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        self.err = []
        ready = threading.Event()

        def reader():
            for line in self.p.stderr:
                self.err.append(line.rstrip())
                if ready_word in line:
                    ready.set()
            ready.set()

        self.t = threading.Thread(target=reader, daemon=True)
        self.t.start()
        if not ready.wait(10) or self.p.poll() is not None:
            raise RuntimeError(f"{tool} did not start: " + "\n".join(self.err))
        time.sleep(0.2)

    def interrupt(self):
        """Tell tcpdump to stop (:meth:`stop` waits for it)."""
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass

    def stop(self):
        _kill(self.p, signal.SIGINT)
        self.t.join(5)
        return self.err


# ------------------------------------------------------------------ scenario

class Ctx:
    """What a scenario body gets: agents, addresses, and a few helpers."""

    def __init__(self, topo, cli, srv, scenario):
        self.topo, self.cli, self.srv, self.sc = topo, cli, srv, scenario
        self.c4, self.s4, self.c6, self.s6 = topo.c4, topo.s4, topo.c6, topo.s6
        self.marks = {}

    def nft(self, ns, ruleset):
        cmd = ["nft", "-f", "-"]
        if ns:
            cmd = ["ip", "netns", "exec", ns] + cmd
        r = subprocess.run(cmd, input=ruleset, text=True, capture_output=True)
        if r.returncode != 0:
            raise RuntimeError("nft failed: " + r.stderr)

    def mark(self, name):
        self.marks[name] = time.time()


class Scenario:
    def __init__(self, name, body, description, analysis, vantage="client", topo="veth", ext="pcap",
                 linktype=None, nano=False, sysctls=None, tail=0.6, expect=None, kind=None, initiator=None,
                 outputs=None, snaplen=None, capture="tcpdump"):
        self.name, self.body, self.description, self.analysis = name, body, description, analysis
        # outputs: several files from ONE run, captured on the client's and the server's interface at
        # the same time: [{"name", "source": "client"|"server"|"merged", "vantage", "ext",
        # "description", "analysis"}, ...]; each gets its own NAME.truth.json.
        self.outputs = outputs or []
        self.vantage, self.topo, self.ext, self.linktype, self.nano = vantage, topo, ext, linktype, nano
        self.sysctls = sysctls or {}
        self.tail = tail
        self.expect = expect
        self.kind, self.initiator = kind, initiator
        self.snaplen = snaplen  # (tcpdump -s: headers only, for runs with much data)
        self.capture = capture  # "dumpcap": pcapng files that record when the capture stopped


SCENARIOS: dict[str, Scenario] = {}


def scenario(name, **kw):
    def deco(fn):
        SCENARIOS[name] = Scenario(name, fn, **kw)
        return fn
    return deco


# Common building blocks ------------------------------------------------------

def open_pair(x, sport, dport, chost=None, shost=None, cname="c", sname="s", listen=True, lname="L"):
    chost = chost or x.c4
    shost = shost or x.s4
    if listen:
        x.srv(f"listen({lname!r}, {shost!r}, {dport})")
    x.cli(f"connect({cname!r}, {shost!r}, {dport}, src={chost!r}, sport={sport})")
    x.srv(f"accept({sname!r}, {lname!r})")


def exchange(x, cname="c", sname="s", req=64, resp=200):
    x.cli(f"send({cname!r}, {req}, b'GET /{req} ')")
    x.srv(f"_r = recv_n({sname!r}, {req})")
    x.srv(f"send({sname!r}, {resp}, b'200 OK ')")
    x.cli(f"_r = recv_n({cname!r}, {resp})")


DROPS = {"FIN": "tcp flags & fin == fin", "RST": "tcp flags & rst == rst",
         "data": "tcp flags & psh == psh", "pure ACK": "tcp flags == ack"}
"""What a run may lose once, on its way into one side (after both capture points)."""


def drop_once(x, what, into, cport, sport, every=False):
    """Drop the first segment of this connection that matches ``what`` (a DROPS key) on its way
    into ``into`` ("client" or "server"), at that side's input hook: the captures on both
    interfaces see it, the side never gets it.  ``every``: every such segment from now on."""
    ns, src, dst = (NS_S, cport, sport) if into == "server" else (NS_C, sport, cport)
    match = f"tcp sport {src} tcp dport {dst} {DROPS[what]}"
    if every:
        x.nft(ns, f"""
table inet dropall {{
  chain in {{ type filter hook input priority 0; policy accept;
    {match} counter drop
  }}
}}
""")
        return
    x.nft(ns, f"""
table inet dropone {{
  set once {{ type inet_service; flags dynamic; }}
  chain in {{ type filter hook input priority 0; policy accept;
    {match} tcp sport @once accept
    {match} update @once {{ tcp sport }} counter drop
  }}
}}
""")


def client_first_close(x, cname="c", sname="s", server_delay=0.3):
    """Client closes; the server reads EOF and closes server_delay later
    (0 = right away, so its FIN carries the ACK: three-way)."""
    x.cli(f"close({cname!r})")
    if server_delay <= 0:
        x.srv(f"recv_eof({sname!r}); close({sname!r})")
    else:
        x.srv(f"recv_eof({sname!r})")
        time.sleep(server_delay)
        x.srv(f"close({sname!r})")


# Scenario bodies -------------------------------------------------------------

@scenario("four_way",
          description="Client connects, sends a request, gets a response and close()s first. The server's "
                      "delayed ACK of the client's FIN goes out on its own (~40 ms); the server application "
                      "closes 300 ms later, so the close is FIN / ACK / FIN / ACK.",
          analysis="Four-way close initiated by the client. Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, "
                   "FIN_WAIT2, TIME_WAIT (final TIME_WAIT). Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, "
                   "LAST_ACK, CLOSED.",
          kind="four-way", initiator="client")
def sc_four_way(x):
    open_pair(x, 40011, 5001)
    exchange(x)
    time.sleep(0.05)
    client_first_close(x, server_delay=0.3)


@scenario("three_way",
          description="Client closes first; the server application reads EOF and closes at once, before its "
                      "delayed-ACK timer fires, so its FIN carries the ACK of the client's FIN: FIN / FIN+ACK / "
                      "ACK.",
          analysis="Three-way close initiated by the client. Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, "
                   "FIN_WAIT2, TIME_WAIT, where FIN_WAIT1->FIN_WAIT2->TIME_WAIT happen on the one FIN+ACK "
                   "segment. Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED.",
          kind="three-way", initiator="client")
def sc_three_way(x):
    open_pair(x, 40021, 5002)
    exchange(x)
    time.sleep(0.05)
    client_first_close(x, server_delay=0)


@scenario("server_first",
          description="Server sends its response and close()s first; the client reads EOF and closes 300 ms "
                      "later. Captured on the server's interface.",
          analysis="Four-way close initiated by the server. Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, "
                   "FIN_WAIT2, TIME_WAIT (final TIME_WAIT). Client: SYN_SENT, ESTABLISHED, CLOSE_WAIT, "
                   "LAST_ACK, CLOSED.",
          vantage="server", kind="four-way", initiator="server")
def sc_server_first(x):
    open_pair(x, 40031, 5003)
    exchange(x)
    time.sleep(0.05)
    x.srv("close('s')")
    x.cli("recv_eof('c')")
    time.sleep(0.3)
    x.cli("close('c')")


@scenario("half_close",
          description="Client sends a request and calls shutdown(SHUT_WR) (FIN) but keeps reading. The server "
                      "reads EOF and then streams 10 x 200 bytes over about one second to the half-closed "
                      "client, which ACKs them, then closes. The client then close()s its socket.",
          analysis="Half-close initiated by the client, then a four-way-style close. Client: SYN_SENT, "
                   "ESTABLISHED, FIN_WAIT1, FIN_WAIT2 (for ~1 s while receiving data), TIME_WAIT. Server: "
                   "SYN_RECV, ESTABLISHED, CLOSE_WAIT (sending data), LAST_ACK, CLOSED.",
          kind="half-close", initiator="client")
def sc_half_close(x):
    open_pair(x, 40041, 5004)
    x.cli("send('c', 64, b'UPLOAD ')")
    x.srv("_r = recv_n('s', 64)")
    x.cli("shut_wr('c')")
    x.cli.bg("rd", "_r = recv_eof('c', timeout=10)")
    x.srv("recv_eof('s')")
    x.srv("for i in range(10):\n    send('s', 200, b'chunk ')\n    time.sleep(0.1)")
    x.srv("close('s')")
    got = x.cli.join("rd")
    assert got == 2000, got
    time.sleep(0.1)
    x.cli("close('c')")


SIM_TBF = "rate 1mbit burst 1600 limit 200000"


@scenario("simultaneous",
          description="Both applications close() at the same instant. Each side's veth has a slow tbf qdisc "
                      "(1 Mbit/s) and each side first queues 10 KB of UDP filler (not captured; the capture "
                      "filter is 'tcp') so both FINs wait ~80 ms in the qdisc and cross on the wire. Each FIN "
                      "reaches a peer that is in FIN_WAIT1 with its own FIN unacknowledged.",
          analysis="Simultaneous close. Both sides: ..., ESTABLISHED, FIN_WAIT1, CLOSING, TIME_WAIT (final "
                   "TIME_WAIT on both). On the wire each side sends FIN, then an ACK of the peer's FIN.",
          kind="simultaneous", initiator="both")
def sc_simultaneous(x):
    for ns, dev in ((NS_C, x.topo.cdev), (NS_S, x.topo.sdev)):
        sh(["tc", "qdisc", "add", "dev", dev, "root", "tbf"] + SIM_TBF.split(), ns=ns)
    x.cli(f"udp_sink('u', {x.c4!r}, 9)")
    x.srv(f"udp_sink('u', {x.s4!r}, 9)")
    open_pair(x, 40051, 5005)
    exchange(x)
    time.sleep(0.2)
    t = time.time() + 0.3
    x.cli.bg("cl", f"at({t}); udp_filler({x.s4!r}, 9, 10, 1000); close('c')")
    x.srv.bg("cl", f"at({t}); udp_filler({x.c4!r}, 9, 10, 1000); close('s')")
    x.cli.join("cl")
    x.srv.join("cl")
    time.sleep(0.6)


@scenario("rst_linger0",
          description="After the request/response the client sets SO_LINGER {on, 0} and close()s: the kernel "
                      "aborts the connection with a RST instead of a FIN. The server then close()s its "
                      "already-reset socket (nothing on the wire).",
          analysis="Abortive close (RST) by the client. Client: SYN_SENT, ESTABLISHED, CLOSED (rst_sent; this kernel "
                   "reports reason TCP_STATE, because SO_LINGER 0 goes through tcp_disconnect()). Server: SYN_RECV, ESTABLISHED, CLOSED (rst_received). "
                   "No FIN from either side.",
          kind="rst", initiator="client")
def sc_rst_linger0(x):
    open_pair(x, 40061, 5006)
    exchange(x)
    time.sleep(0.05)
    x.cli("linger0('c'); close('c')")
    time.sleep(0.2)
    x.srv("close('s')")


@scenario("rst_unread",
          description="The server sends 500 bytes the client never reads; the client close()s with that data "
                      "still in its receive queue, so Linux sends a RST (RFC 2525) instead of a FIN.",
          analysis="Abortive close (RST) by the client because of unread data. Client: SYN_SENT, "
                   "ESTABLISHED, CLOSED (rst_sent, reason TCP_ABORT_ON_CLOSE). Server: SYN_RECV, ESTABLISHED, "
                   "CLOSED (rst_received).",
          kind="rst", initiator="client")
def sc_rst_unread(x):
    open_pair(x, 40071, 5007)
    x.cli("send('c', 64, b'GET ')")
    x.srv("_r = recv_n('s', 64)")
    x.srv("send('s', 500, b'unread ')")
    time.sleep(0.1)
    x.cli("close('c')")
    time.sleep(0.2)
    x.srv("close('s')")


@scenario("lost_last_ack",
          description="Four-way close where the client's final ACK (the ACK of the server's FIN) is dropped "
                      "once by a one-shot nftables rule on the server's input hook (after the capture point, "
                      "so the capture shows it). The server, in LAST_ACK, retransmits its FIN after its RTO; "
                      "the client's TIME_WAIT mini-socket answers with a second ACK and the server closes.",
          analysis="Four-way close initiated by the client, final ACK lost. Client: SYN_SENT, ESTABLISHED, "
                   "FIN_WAIT1, FIN_WAIT2, TIME_WAIT (re-ACKs the retransmitted FIN; final TIME_WAIT). Server: "
                   "SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK (FIN retransmitted once), CLOSED.",
          kind="four-way", initiator="client")
def sc_lost_last_ack(x):
    open_pair(x, 40081, 5008)
    exchange(x)
    time.sleep(0.05)
    x.cli("close('c')")
    x.srv("recv_eof('s')")
    time.sleep(0.15)  # the server's delayed ACK of the client's FIN has gone out
    x.nft(NS_S, """
table inet tdg {
  set once { type inet_service; flags dynamic; }
  chain in { type filter hook input priority 0; policy accept;
    tcp sport 40081 tcp dport 5008 tcp flags == ack tcp sport @once accept
    tcp sport 40081 tcp dport 5008 tcp flags == ack update @once { tcp sport } counter drop
  }
}
""")
    time.sleep(0.15)
    x.srv("close('s')")
    time.sleep(1.0)


@scenario("fin_wait2_timeout",
          description="net.ipv4.tcp_fin_timeout=2 in the client namespace. Two connections; on both the client "
                      "close()s first and the server ACKs but does not close, so the orphaned client socket "
                      "sits in FIN_WAIT2 (as a timewait mini-socket with substate FIN_WAIT2) and silently "
                      "expires after ~2 s. Then on 40091 the server sends late data, and on 40092 the server "
                      "close()s (late FIN); the client host has no socket any more and answers each with a "
                      "bare RST.",
          analysis="fin-then-rst. Client (both connections): SYN_SENT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, "
                   "CLOSED (FIN_WAIT2 timeout, silent), then a RST sent from the no-socket path. Server: "
                   "SYN_RECV, ESTABLISHED, CLOSE_WAIT, CLOSED on the RST (40091: after its late data; "
                   "40092: CLOSE_WAIT, LAST_ACK, CLOSED after its late FIN).",
          sysctls={NS_C: {"net.ipv4.tcp_fin_timeout": 2}}, kind="fin-then-rst", initiator="client")
def sc_fin_wait2_timeout(x):
    x.srv(f"listen('L', {x.s4!r}, 5009)")
    for i, port in enumerate((40091, 40092)):
        open_pair(x, port, 5009, cname=f"c{i}", sname=f"s{i}", listen=False)
        exchange(x, f"c{i}", f"s{i}")
    time.sleep(0.05)
    x.cli("close('c0'); close('c1')")
    x.srv("recv_eof('s0'); recv_eof('s1')")
    time.sleep(3.5)
    x.srv("send('s0', 100, b'late data ')")
    time.sleep(0.1)
    x.srv("close('s1')")
    time.sleep(0.3)
    x.srv("close('s0')")


@scenario("reuse_server_tw",
          description="Server closes first and holds the 4-tuple in TIME_WAIT; the client (in LAST_ACK, then "
                      "CLOSED) reconnects 0.5 s later from the same port 40101. The server's TIME_WAIT "
                      "socket accepts the new SYN (TCP_TW_SYN) and the second incarnation does a normal "
                      "client-first four-way close. Captured on the server.",
          analysis="Two incarnations of one 4-tuple. #0: server-initiated four-way close; server SYN_RECV, "
                   "ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSED (TIME_WAIT ended by the new SYN); "
                   "client SYN_SENT, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED. #1: client-initiated "
                   "four-way close; client ends in TIME_WAIT, server CLOSED.",
          vantage="server", kind="four-way", initiator="server")
def sc_reuse_server_tw(x):
    open_pair(x, 40101, 5010)
    exchange(x)
    time.sleep(0.05)
    x.srv("close('s')")
    x.cli("recv_eof('c')")
    time.sleep(0.2)
    x.cli("close('c')")
    time.sleep(0.5)
    open_pair(x, 40101, 5010, cname="c2", sname="s2", listen=False)
    exchange(x, "c2", "s2")
    time.sleep(0.05)
    client_first_close(x, "c2", "s2", server_delay=0.3)


@scenario("tw_assassinated",
          description="Server closes first and holds the 4-tuple in TIME_WAIT, after the client sent it 3 MB. "
                      "The client (CLOSED after LAST_ACK) reconnects 50 ms later from the same port 40561, without "
                      "TCP timestamps (net.ipv4.tcp_timestamps=0 in its namespace). Its new ISN, a clock-driven "
                      "hash that grew by less than the 3 MB it sent, is not after the TIME_WAIT socket's "
                      "rcv_nxt, and the SYN has no timestamp to show it new: the TIME_WAIT socket answers with "
                      "an ACK of the old connection (TCP_TW_ACK). The client, in SYN_SENT, answers that ACK, "
                      "which does not acknowledge its SYN, with a bare RST numbered as its ACK field: exactly "
                      "the TIME_WAIT socket's rcv_nxt, so the socket is killed (tcp_timewait_state_process, "
                      "net.ipv4.tcp_rfc1337=0: TIME_WAIT assassination). The client sends the SYN again "
                      "10 ms later; the listener takes it, and the second incarnation does a client-first "
                      "four-way close. Captured on the server with a snap length of 128 bytes (tcpdump -s "
                      "128: the headers, not the 3 MB).",
          analysis="Two incarnations of one 4-tuple. #0: a server-initiated close (three-way or four-way, as "
                   "the client's ACK comes alone or on its FIN); server SYN_RECV, ESTABLISHED, FIN_WAIT1, "
                   "FIN_WAIT2, TIME_WAIT, CLOSED at the client's RST (the TIME_WAIT ended as at a reuse, with "
                   "the note); client SYN_SENT, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED. The TIME_WAIT side's "
                   "ACK of the new SYN and the RST answering it are #0's segments; the RST is listed in #1, "
                   "whose SYN_SENT socket sent it and stays SYN_SENT. #1: client-initiated four-way close "
                   "from the SYN sent again; client ends in TIME_WAIT, server CLOSED.",
          sysctls={NS_C: {"net.ipv4.tcp_timestamps": 0}}, vantage="server", kind="four-way",
          initiator="server", snaplen=128)
def sc_tw_assassinated(x):
    open_pair(x, 40561, 5056)
    x.cli.bg("bulk", "send('c', 3_000_000)")
    x.srv("_r = recv_n('s', 3_000_000, timeout=30)")
    x.cli.join("bulk")
    x.srv("close('s')")
    x.cli("recv_eof('c'); close('c')")
    time.sleep(0.05)  # (long enough for /proc polling to see the TIME_WAIT socket)
    open_pair(x, 40561, 5056, cname="c2", sname="s2", listen=False)
    exchange(x, "c2", "s2")
    time.sleep(0.05)
    client_first_close(x, "c2", "s2", server_delay=0.3)


@scenario("reuse_client_tw",
          description="Client closes first (three-way) and holds the 4-tuple in TIME_WAIT. With "
                      "net.ipv4.tcp_tw_reuse=1 in the client namespace the client binds the same port 40111 "
                      "again 1.2 s later (after tcp_tw_reuse_delay) and connects to the same server port: "
                      "the kernel reuses the TIME_WAIT 4-tuple. The second incarnation closes client-first "
                      "(three-way) again.",
          analysis="Two incarnations of one 4-tuple. #0: client-initiated three-way close; client SYN_SENT, "
                   "ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSED (TIME_WAIT ended by its own reuse); "
                   "server SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED. #1: same as #0, client ends "
                   "in TIME_WAIT.",
          sysctls={NS_C: {"net.ipv4.tcp_tw_reuse": 1}}, kind="three-way", initiator="client")
def sc_reuse_client_tw(x):
    open_pair(x, 40111, 5011)
    exchange(x)
    time.sleep(0.05)
    client_first_close(x, server_delay=0)
    time.sleep(1.2)
    open_pair(x, 40111, 5011, cname="c2", sname="s2", listen=False)
    exchange(x, "c2", "s2")
    time.sleep(0.05)
    client_first_close(x, "c2", "s2", server_delay=0)


@scenario("close_wait_leak",
          description="Client closes first; the server application reads EOF but never close()s its socket "
                      "(a CLOSE_WAIT leak). The capture ends 1.5 s later with the server still in CLOSE_WAIT "
                      "and the client's orphaned socket in FIN_WAIT2. Captured on the server.",
          analysis="Half-open / leaked: client-initiated, never completed. Client: SYN_SENT, ESTABLISHED, "
                   "FIN_WAIT1, FIN_WAIT2 (final FIN_WAIT2, held by a timewait mini-socket). Server: SYN_RECV, "
                   "ESTABLISHED, CLOSE_WAIT (final CLOSE_WAIT).",
          vantage="server", kind="half-open", initiator="client", tail=1.5)
def sc_close_wait_leak(x):
    open_pair(x, 40121, 5012)
    exchange(x)
    time.sleep(0.05)
    x.cli("close('c')")
    x.srv("recv_eof('s')")


@scenario("data_after_close",
          description="The server close()s an idle connection; 100 ms later the client, which has not read "
                      "the EOF, writes a second request (64 bytes). The client's delayed ACK of the FIN went "
                      "out before it, so the orphaned server socket is in FIN_WAIT2, held by a timewait "
                      "mini-socket (substate FIN_WAIT2). The request is data after close(): the mini-socket "
                      "answers it with a bare RST numbered as the request's ACK field, one past the FIN "
                      "(tcp_timewait_state_process: TCP_TW_RST, reason TCP_TIMEWAIT_SOCKET), and is gone; the "
                      "client takes the RST in CLOSE_WAIT. Captured on the server.",
          analysis="A FIN then an RST, the server first. Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, "
                   "CLOSED (at its RST; the full socket became a FIN_WAIT2 mini-socket at the ACK of the "
                   "FIN). Client: SYN_SENT, ESTABLISHED, CLOSE_WAIT, CLOSED (RST received).",
          vantage="server", kind="fin-then-rst", initiator="server")
def sc_data_after_close(x):
    open_pair(x, 40241, 5024)
    exchange(x)
    time.sleep(0.05)
    x.srv("close('s')")
    time.sleep(0.1)
    x.cli("send('c', 64, b'GET /again ')")
    time.sleep(0.2)
    x.cli("close('c')")


@scenario("rst_lost",
          description="After a request and response the server sets SO_LINGER 0 and close()s: its RST+ACK is "
                      "dropped once by an nftables rule on the client's input hook (after the capture point, so "
                      "the capture shows it). 30 ms later the client, which never had the RST, close()s: its "
                      "FIN finds no socket at the server, whose kernel answers with a bare RST, which ends the "
                      "client's FIN_WAIT1. Captured on the client.",
          analysis="An RST lost after the capture point, then the client's FIN and an RST (a FIN then an RST by "
                   "the kernel's record). Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSED (the second RST). "
                   "Server: SYN_RECV, ESTABLISHED, CLOSED (its own RST).",
          kind="fin-then-rst", initiator="client")
def sc_rst_lost(x):
    open_pair(x, 40311, 5031)
    x.srv("close('L')")  # (so that the answer to the FIN comes from no socket, not the listener)
    exchange(x)
    time.sleep(0.05)
    x.nft(NS_C, """
table inet tdg {
  set once { type inet_service; flags dynamic; }
  chain in { type filter hook input priority 0; policy accept;
    tcp sport 5031 tcp dport 40311 tcp flags & rst == rst tcp sport @once accept
    tcp sport 5031 tcp dport 40311 tcp flags & rst == rst update @once { tcp sport } counter drop
  }
}
""")
    x.srv("linger0('s'); close('s')")
    time.sleep(0.03)
    x.cli("close('c')")
    time.sleep(0.2)


@scenario("ipv6",
          description="The four_way scenario over IPv6 (fd00:7d::1 -> [fd00:7d::2]:5013).",
          analysis="Four-way close initiated by the client. Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, "
                   "FIN_WAIT2, TIME_WAIT. Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED.",
          kind="four-way", initiator="client")
def sc_ipv6(x):
    open_pair(x, 40131, 5013, chost=x.c6, shost=x.s6)
    exchange(x)
    time.sleep(0.05)
    client_first_close(x, server_delay=0.3)


@scenario("any_sll2",
          description="A three-way close captured with `tcpdump -i any -y LINUX_SLL2` in the client namespace "
                      "(link type LINUX_SLL2, 276).",
          analysis="Three-way close initiated by the client. Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, "
                   "FIN_WAIT2, TIME_WAIT. Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED.",
          vantage="any", linktype="LINUX_SLL2", kind="three-way", initiator="client")
def sc_any_sll2(x):
    open_pair(x, 40141, 5014)
    exchange(x)
    time.sleep(0.05)
    client_first_close(x, server_delay=0)


@scenario("pcapng_server_first",
          description="A server-first four-way close, written as pcapng (the tcpdump capture converted to one "
                      "SHB, one IDB with if_name and if_tsresol=6, and EPBs; timestamps unchanged).",
          analysis="Four-way close initiated by the server. Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, "
                   "FIN_WAIT2, TIME_WAIT. Client: SYN_SENT, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED.",
          ext="pcapng", kind="four-way", initiator="server")
def sc_pcapng(x):
    open_pair(x, 40151, 5015)
    exchange(x)
    time.sleep(0.05)
    x.srv("close('s')")
    x.cli("recv_eof('c')")
    time.sleep(0.3)
    x.cli("close('c')")


@scenario("two_vantage",
          description="One client-first four-way connection captured at the same time on the client's veth "
                      "and on the server's veth; the two captures are merged into one classic pcap ordered by "
                      "timestamp, so every segment appears twice (once per vantage point, microseconds "
                      "apart, byte-identical frames).",
          analysis="Four-way close initiated by the client; each packet is a duplicate and must be counted "
                   "once. Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT. Server: SYN_RECV, "
                   "ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED.",
          vantage="both", kind="four-way", initiator="client")
def sc_two_vantage(x):
    open_pair(x, 40161, 5016)
    exchange(x)
    time.sleep(0.05)
    client_first_close(x, server_delay=0.3)


MIX_KINDS = ["four_way", "three_way", "server_first", "rst_linger0", "rst_unread", "half_close",
             "close_wait_leak"]
MIX_WEIGHTS = [30, 30, 20, 6, 6, 6, 2]


@scenario("mixed_200",
          description="200 connections to [198.18.0.2]:5017 from client ports 42000-42199, in 10 waves of 20 "
                      "concurrent connections, each closed in one of these ways (seeded random choice, see "
                      "scripted_kind in the truth file): client-first four-way, client-first three-way, "
                      "server-first, SO_LINGER-0 RST, unread-data RST, half-close with a server reply after "
                      "the client's FIN, CLOSE_WAIT leak.",
          analysis="Per connection see the truth file: connections[i].scripted_kind and each side's states. "
                   "Timing-dependent details (e.g. whether the server's ACK rode on its FIN) are what the "
                   "kernel did, not what was scripted.",
          kind="mixed", initiator="mixed", tail=0.8)
def sc_mixed(x):
    rnd = random.Random(20240603)
    x.srv(f"listen('L', {x.s4!r}, 5017)")
    kinds = {}
    for wave in range(10):
        ports = list(range(42000 + wave * 20, 42000 + wave * 20 + 20))
        wk = {p: rnd.choices(MIX_KINDS, MIX_WEIGHTS)[0] for p in ports}
        kinds.update(wk)
        x.cli(f"for p in {ports}:\n    connect('c%d' % p, {x.s4!r}, 5017, src={x.c4!r}, sport=p)")
        x.srv(f"accept_n('L', {len(ports)}, 's')")
        # request / response; rst_unread clients never read the response
        x.cli(f"for p in {ports}:\n    send('c%d' % p, 40 + p % 150, b'GET ')")
        x.srv(f"for p in {ports}:\n    recv_n('s%d' % p, 40 + p % 150)\n    send('s%d' % p, 100 + (p * 7) % 600, b'OK ')")
        readers = [p for p in ports if wk[p] != "rst_unread"]
        x.cli(f"for p in {readers}:\n    recv_n('c%d' % p, 100 + (p * 7) % 600)")
        time.sleep(0.05)
        by = defaultdict(list)
        for p, k in wk.items():
            by[k].append(p)
        # phase A
        x.cli(f"for p in {by['four_way'] + by['three_way'] + by['close_wait_leak'] + by['rst_unread']}:\n"
              f"    close('c%d' % p)\n"
              f"for p in {by['rst_linger0']}:\n    linger0('c%d' % p); close('c%d' % p)\n"
              f"for p in {by['half_close']}:\n    shut_wr('c%d' % p)")
        x.srv(f"for p in {by['server_first']}:\n    close('s%d' % p)")
        # phase B (within the 40 ms delayed-ACK window for three_way)
        x.srv(f"for p in {by['three_way']}:\n    recv_eof('s%d' % p); close('s%d' % p)\n"
              f"for p in {by['four_way'] + by['close_wait_leak'] + by['half_close']}:\n    recv_eof('s%d' % p)\n"
              f"for p in {by['half_close']}:\n    send('s%d' % p, 300, b'more ')")
        x.cli(f"for p in {by['server_first']}:\n    recv_eof('c%d' % p)")
        time.sleep(0.3)
        # phase C
        x.srv(f"for p in {by['four_way'] + by['half_close'] + by['rst_linger0'] + by['rst_unread']}:\n"
              f"    close('s%d' % p)")
        x.cli(f"for p in {by['server_first']}:\n    close('c%d' % p)\n"
              f"for p in {by['half_close']}:\n    recv_eof('c%d' % p); close('c%d' % p)")
        time.sleep(0.1)
    x.marks["scripted_kind"] = kinds


@scenario("nano_three_way",
          description="A client-first three-way close captured with `tcpdump --time-stamp-precision=nano` "
                      "(pcap magic 0xa1b23c4d, nanosecond timestamps).",
          analysis="Three-way close initiated by the client. Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, "
                   "FIN_WAIT2, TIME_WAIT. Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED.",
          nano=True, kind="three-way", initiator="client")
def sc_nano(x):
    open_pair(x, 40181, 5018)
    exchange(x)
    time.sleep(0.05)
    client_first_close(x, server_delay=0)


@scenario("vlan8021q",
          description="A client-first four-way close over an 802.1Q VLAN (VID 100). This kernel has no 8021q "
                      "module, so the VLAN is built in userspace: the client's and server's veths end in a "
                      "forwarder namespace (tdg-mid) where tools/tdg_fwd.py tags frames onto a veth 'trunk' "
                      "pair and untags them at the other end. The capture is on one end of the trunk "
                      "(tdgta), so every frame carries the 802.1Q tag; it sits between the hosts, one "
                      "userspace hop (~0.1 ms) from the client.",
          analysis="Four-way close initiated by the client. Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, "
                   "FIN_WAIT2, TIME_WAIT. Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED. Every "
                   "frame has one 802.1Q tag with VID 100.",
          topo="vlan", kind="four-way", initiator="client")
def sc_vlan(x):
    open_pair(x, 40191, 5019)
    exchange(x)
    time.sleep(0.05)
    client_first_close(x, server_delay=0.3)


@scenario("rawip_tun",
          description="A client-first three-way close over a layer-3 link: two TUN devices (no link-layer "
                      "header) joined by a userspace forwarder, since this kernel has no ipip/gre. Captured on "
                      "the client's TUN device, so the pcap is LINKTYPE_RAW (101): every record starts with "
                      "the IPv4 header.",
          analysis="Three-way close initiated by the client. Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, "
                   "FIN_WAIT2, TIME_WAIT. Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED.",
          topo="tun", kind="three-way", initiator="client")
def sc_rawip(x):
    open_pair(x, 40201, 5020)
    exchange(x)
    time.sleep(0.05)
    client_first_close(x, server_delay=0)


@scenario("loopback_four_way",
          description="Plain loopback capture: tcpdump on the host's `lo`, a tiny Python server on "
                      "127.0.0.1:5099 and client from port 40991, client-first four-way close. Loopback "
                      "offloads were left as they are on the host, so TCP checksums in this capture may be "
                      "partial (unverifiable); the link type is EN10MB with zero MAC addresses.",
          analysis="Four-way close initiated by the client. Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, "
                   "FIN_WAIT2, TIME_WAIT. Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED.",
          topo="host", kind="four-way", initiator="client")
def sc_loopback(x):
    open_pair(x, 40991, 5099)
    exchange(x)
    time.sleep(0.05)
    client_first_close(x, server_delay=0.3)


# Multi-capture scenarios: ONE run, captured on the client's and the server's own interface at the same
# time, written as several files (each with its own truth file; the kernel transitions are identical).

_FOUR_WAY_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT (final TIME_WAIT). "
                    "Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED.")
_VANTAGE_RUN = ("One client-first four-way connection 198.18.0.1:40211 -> 198.18.0.2:5021 over the plain veth "
                "pair (server closes 300 ms after reading EOF), captured at the same time by two tcpdumps: "
                "one on the client's veth (tdgc0, in tdg-cli) and one on the server's veth (tdgs0, in tdg-srv).")


@scenario("vantage",
          description=_VANTAGE_RUN + " Written as vantage_client.pcap, vantage_server.pcap and "
                      "vantage_both.pcapng.",
          analysis="Four-way close initiated by the client. " + _FOUR_WAY_STATES,
          kind="four-way", initiator="client",
          outputs=[
              {"name": "vantage_client", "source": "client", "vantage": "client", "ext": "pcap",
               "description": _VANTAGE_RUN + " This file is the client-side capture (tdgc0) alone; "
                              "vantage_server.pcap is the server side of the same run.",
               "analysis": "Four-way close initiated by the client. " + _FOUR_WAY_STATES + " Same connection "
                           "and kernel transitions as vantage_server.pcap and vantage_both.pcapng."},
              {"name": "vantage_server", "source": "server", "vantage": "server", "ext": "pcap",
               "description": _VANTAGE_RUN + " This file is the server-side capture (tdgs0) alone; "
                              "vantage_client.pcap is the client side of the same run.",
               "analysis": "Four-way close initiated by the client. " + _FOUR_WAY_STATES + " Same connection "
                           "and kernel transitions as vantage_client.pcap and vantage_both.pcapng."},
              {"name": "vantage_both", "source": "merged", "vantage": "both", "ext": "pcapng",
               "description": _VANTAGE_RUN + " This file is one pcapng with two interface description "
                              "blocks (interface 0 = tdgc0, the client's veth; interface 1 = tdgs0, the "
                              "server's veth) holding both captures merged by timestamp, so every segment "
                              "appears twice, once per interface, microseconds apart.",
               "analysis": "Four-way close initiated by the client; each segment is there once per interface "
                           "and must be counted once. " + _FOUR_WAY_STATES},
          ])
def sc_vantage(x):
    open_pair(x, 40211, 5021)
    exchange(x)
    time.sleep(0.05)
    client_first_close(x, server_delay=0.3)


_DELAY_RUN = ("One client-first four-way connection 198.18.3.1:40221 -> 198.18.3.2:5022 over a path with a "
              f"real one-way delay of {DELAY_MS} ms in each direction (RTT ~{2 * DELAY_MS} ms): the client's and "
              "the server's veth end in a middle namespace (tdg-mid) where tools/tdg_fwd.py holds every frame "
              f"for {DELAY_MS} ms before passing it on (this kernel has no netem). The server reads EOF and "
              "closes 300 ms later, so its ACK of the client's FIN goes out on its own. Captured at the same "
              "time on the client's interface (tdgc0) and on the server's interface (tdgs0).")


def _delay_analysis(here, far):
    if here == "client":
        gaps = "SYN -> SYN-ACK ~20 ms (= RTT), SYN-ACK -> ACK a few us"
        rx = ("SYN_RECV (client's SYN), ESTABLISHED (handshake ACK), CLOSE_WAIT (client's FIN), CLOSED "
              "(client's last ACK)")
        own = "LAST_ACK (entered at the server's close(); its FIN leaves at once)"
        own_pkt = "the server's FIN"
    else:
        gaps = "SYN -> SYN-ACK a few us, SYN-ACK -> ACK ~20 ms (= RTT)"
        rx = ("ESTABLISHED (SYN-ACK), FIN_WAIT2 (server's ACK of the client's FIN), TIME_WAIT (server's FIN; "
              "proc_poll evidence, ~3 ms window)")
        own = "SYN_SENT (connect()) and FIN_WAIT1 (close()), each followed at once by its SYN / FIN"
        own_pkt = "that SYN / FIN"
    return (f"Four-way close initiated by the client. {_FOUR_WAY_STATES} Vantage: near the {here} "
            f"({gaps}); RTT ~20 ms; one-way delay ~{DELAY_MS} ms. The {here}'s own transitions are within "
            f"microseconds of the capture. The {far} (far side) lags in a direction that depends on the cause: "
            f"its transitions triggered by a segment it receives - {rx} - happen in its kernel about one "
            f"one-way delay (~{DELAY_MS} ms) AFTER that segment's time in this capture; its transitions caused "
            f"by its own application - {own} - happen about one one-way delay BEFORE {own_pkt} shows up in "
            f"this capture.")


@scenario("delay",
          description=_DELAY_RUN + " Written as delay_client_side.pcap and delay_server_side.pcap.",
          analysis="Four-way close initiated by the client. " + _FOUR_WAY_STATES,
          topo="delay", kind="four-way", initiator="client",
          outputs=[
              {"name": "delay_client_side", "source": "client", "vantage": "client", "ext": "pcap",
               "description": _DELAY_RUN + " This file is the capture on the client's interface.",
               "analysis": _delay_analysis("client", "server")},
              {"name": "delay_server_side", "source": "server", "vantage": "server", "ext": "pcap",
               "description": _DELAY_RUN + " This file is the capture on the server's interface.",
               "analysis": _delay_analysis("server", "client")},
          ])
def sc_delay(x):
    open_pair(x, 40221, 5022)
    exchange(x)
    time.sleep(0.05)
    client_first_close(x, server_delay=0.3)


def _race(name, run, states, lead, initiator, ports, client, server, after=0.1,
          kind="fin-then-rst", drop=None, sides=("client", "server"), snaplen=None, topo="delay",
          capture="tcpdump", tail=0.6, rto_min=None, sysctls=None):
    """Register a two-sided scenario over the delay path: one run captured on both
    interfaces, written as NAME_client_side.pcap and NAME_server_side.pcap (only those of
    ``sides``).  After a
    request and response on 198.18.3.1:PORTS[0] -> 198.18.3.2:PORTS[1], each
    application runs its calls (tdg_agent code; T is the moment both count from), then
    the capture goes on for ``after`` seconds.  ``drop``: (what, into), a segment to lose
    once after the capture points, or (what, into, "every"), every such segment
    (:func:`drop_once`).  ``snaplen``: headers only (tcpdump -s), for runs with much data.
    ``topo``: "veth" for a bare veth pair (tens of microseconds) instead of the delay path.
    ``capture``: "dumpcap" for pcapng files (NAME_SIDE_side.pcapng) whose interface statistics
    record when the capture stopped; ``tail``: how long the capture goes on after ``after``.
    ``rto_min``: (side, ms), that side's minimum retransmission timeout (its route's rto_min),
    for a run whose capture must stop well after a segment and before its retransmission (the
    analysis takes no silence from the last second of a capture: capture.py STOP_MARGIN_NS).
    ``sysctls``: {namespace: {name: value}} for the run (Scenario's)."""
    analysis = f"{lead} {states}"

    def body(x):
        if rto_min:
            ns, dev, a4 = (NS_S, x.topo.sdev, x.s4) if rto_min[0] == "server" else (NS_C, x.topo.cdev, x.c4)
            net = ipaddress.ip_network(a4 + "/24", strict=False)
            sh(["ip", "-n", ns, "route", "replace", str(net), "dev", dev, "src", a4, "rto_min",
                f"{rto_min[1]}ms"])
        open_pair(x, *ports)
        exchange(x)
        if drop:
            drop_once(x, *drop[:2], *ports, every=drop[2:] == ("every",))
        time.sleep(0.2)
        t = time.time() + 0.3
        x.cli.bg("go", f"T = {t}\n{client}")
        x.srv.bg("go", f"T = {t}\n{server}")
        x.cli.join("go")
        x.srv.join("go")
        time.sleep(after)

    ext = "pcapng" if capture == "dumpcap" else "pcap"
    files = " and ".join(f"{name}_{side}_side.{ext}" for side in sides)
    SCENARIOS[name] = Scenario(
        name, body, description=f"{run} Written as {files}.",
        analysis=analysis, topo=topo, kind=kind, initiator=initiator, snaplen=snaplen,
        capture=capture, tail=tail, sysctls=sysctls,
        outputs=[{"name": f"{name}_{side}_side", "source": side, "vantage": side, "ext": ext,
                  "description": f"{run} This file is the capture on the {side}'s interface.",
                  "analysis": analysis} for side in sides])


_RACE_RUN = ("The keep-alive race, over the delay path ({d} ms each way): after one request and response on "
             "198.18.3.1:40231 -> 198.18.3.2:5023, the client sends a second request (64 bytes) 2 ms before "
             "the server close()s the connection as idle. The request crosses the server's FIN: it was sent "
             "before the FIN arrived, so it acknowledges only the response. It reaches the server in "
             "FIN_WAIT1 after close() (RCV_SHUTDOWN): the server's kernel aborts the connection "
             "(TCPAbortOnData, tcp_reset) and answers with a bare RST numbered as the request's ACK field, "
             "the sequence number of the FIN itself. The RST reaches the client after the FIN, in "
             "CLOSE_WAIT, where that number is rcv_nxt - 1, which tcp_reset_check accepts. The client's ACK "
             "of the FIN would have gone out delayed (tcp_fin puts a socket entering CLOSE_WAIT in pingpong "
             "mode, as in four_way); the RST comes first. Captured at the same time on the client's "
             "interface (tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_RACE_STATES = ("Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, CLOSED (reset by its own kernel on data after "
                "close()). Client: SYN_SENT, ESTABLISHED, CLOSE_WAIT, CLOSED (the RST at rcv_nxt - 1).")


_race("close_race", _RACE_RUN, _RACE_STATES, "A FIN then an RST, the server first.", "server", (40231, 5023),
      client="at(T); send('c', 64, b'GET /again '); at(T + 0.3); close('c')",
      server="at(T + 0.002); close('s')", after=0.0)


@scenario("fin_then_abort",
          description="The client shutdown(SHUT_WR)s after a request and response; 10 ms later, before its "
                      "delayed ACK of that FIN is due, the server sets SO_LINGER 0 and close()s: an RST+ACK "
                      "whose ACK field covers the client's FIN. The receiver checks an RST before it processes "
                      "any ACK, so the client goes from FIN_WAIT1 straight to CLOSED.",
          analysis="A FIN then an RST, the client first. Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSED (no "
                   "FIN_WAIT2: the RST's ACK is not processed). Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, "
                   "CLOSED (rst_sent).",
          kind="fin-then-rst", initiator="client")
def sc_fin_then_abort(x):
    open_pair(x, 40251, 5025)
    exchange(x)
    time.sleep(0.05)
    x.cli("shut_wr('c')")
    time.sleep(0.01)
    x.srv("linger0('s'); close('s')")
    time.sleep(0.2)
    x.cli("close('c')")


_ABORTS_RUN = ("Crossing aborts over the delay path ({d} ms each way), 198.18.3.1:40261 -> 198.18.3.2:5026: "
               "after a request and response the server shutdown(SHUT_WR)s, then 7 ms later sets SO_LINGER 0 and "
               "close()s (an RST+ACK numbered after its FIN); 1 ms after that the client does the same, before "
               "the server's FIN or RST has reached it: its RST+ACK acknowledges the response only, not the FIN. "
               "Each RST reaches a peer already closed; the server's FIN reaches the closed client, whose "
               "kernel answers it with a bare RST. Captured at the same time on the client's interface (tdgc0) "
               "and on the server's interface (tdgs0).").format(d=DELAY_MS)
_ABORTS_STATES = ("Client: SYN_SENT, ESTABLISHED, CLOSED (its own RST; it never had the FIN). Server: "
                  "SYN_RECV, ESTABLISHED, FIN_WAIT1, CLOSED (its own RST).")


_race("crossing_aborts", _ABORTS_RUN, _ABORTS_STATES, "A FIN then an RST, the server first.", "server", (40261, 5026),
      client="at(T + 0.008); linger0('c'); close('c')",
      server="at(T); shut_wr('s'); at(T + 0.007); linger0('s'); close('s')")


_CROSSED_RUN = ("Closes that cross data over the delay path ({d} ms each way), 198.18.3.1:40271 -> "
                "198.18.3.2:5027: after a request and response the server close()s; 4 ms later the client, "
                "which has not seen that FIN yet, sends 3000 bytes and 1 ms after that close()s. Its data and "
                "its FIN acknowledge only the response. The data reaches the server in FIN_WAIT1 after close(): "
                "it aborts (TCPAbortOnData) with a bare RST numbered as its FIN; the client's FIN and its ACK "
                "of the server's FIN then find no socket (more bare RSTs, one past the FIN). The client, in "
                "CLOSING (its FIN crossed the server's), takes the first RST. Captured at the same time on the "
                "client's interface (tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_CROSSED_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSING, CLOSED. Server: SYN_RECV, ESTABLISHED, "
                   "FIN_WAIT1, CLOSED (reset by its own kernel on data after close(); never CLOSING: the "
                   "client's FIN came after).")


_race("close_crosses_data", _CROSSED_RUN, _CROSSED_STATES, "A FIN then an RST, the server first.", "server", (40271, 5027),
      client="at(T + 0.004); send('c', 3000, b'data '); at(T + 0.005); close('c')",
      server="at(T); close('s')")


_ABORT_FIN_RUN = ("An abort that crosses a FIN over the delay path ({d} ms each way), 198.18.3.1:40281 -> "
                  "198.18.3.2:5028: after a request and response the server shutdown(SHUT_WR)s; 2 ms later the "
                  "client, which has not seen that FIN yet, sets SO_LINGER 0 and close()s: an RST+ACK that "
                  "acknowledges the response only. The server, in FIN_WAIT1, takes the RST when it arrives; the "
                  "FIN reaches the closed client, whose kernel answers with a bare RST. Captured at the same "
                  "time on the client's interface (tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_ABORT_FIN_STATES = ("Client: SYN_SENT, ESTABLISHED, CLOSED (its own RST). Server: SYN_RECV, ESTABLISHED, "
                     "FIN_WAIT1, CLOSED (the client's RST).")


_race("abort_crosses_fin", _ABORT_FIN_RUN, _ABORT_FIN_STATES, "A FIN then an RST, the server first.", "server", (40281, 5028),
      client="at(T + 0.002); linger0('c'); close('c')",
      server="at(T); shut_wr('s')")


_SHUT_RUN = ("A shutdown that crosses a close over the delay path ({d} ms each way), 198.18.3.1:40291 -> "
             "198.18.3.2:5029: after a request and response the server sends 1 byte more, which the client "
             "never reads, and 20 ms later close()s; 4 ms after that the client, which has not seen the FIN "
             "yet, shutdown(SHUT_WR)s (its FIN crosses the server's) and 4 ms later close()s with the byte "
             "unread: an RST+ACK (tcp_send_active_reset) whose ACK field leaves out the server's FIN, which "
             "has not arrived. The server goes FIN_WAIT1, CLOSING (the client's FIN; the ACK of its own never "
             "comes), CLOSED at the RST. Captured at the same time on the client's interface "
             "(tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_SHUT_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSED (its own RST: it never had the server's FIN "
                "nor the ACK of its own). Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, CLOSING, CLOSED (the RST).")


_race("shutdown_crosses_close", _SHUT_RUN, _SHUT_STATES, "FINs that cross, then an RST: the server first.", "server", (40291, 5029),
      client="at(T + 0.024); shut_wr('c'); at(T + 0.028); close('c')",
      server="at(T); send('s', 1, b'x'); at(T + 0.020); close('s')")


_LATE_RUN = ("Data after close() that the peer no longer expects, over the delay path ({d} ms each way), "
             "198.18.3.1:40301 -> 198.18.3.2:5030: after a request and response the client sends 1000 bytes, "
             "8 ms later 100 more and close()s (they leave with its FIN); 14 ms after the first send the "
             "server sends 300 bytes, which acknowledge the 1000 only (the 100 and the FIN are still on "
             "the way). They reach the client in FIN_WAIT1 "
             "after close(): it aborts (TCPAbortOnData) with a bare RST numbered as their ACK field, "
             "behind what the server has by then (the 100 bytes and the FIN): out of window there, "
             "ignored. The server's ACK of the FIN then finds no socket, and that bare RST ends the "
             "server's CLOSE_WAIT. Captured at the same time on the client's interface (tdgc0) and on "
             "the server's interface (tdgs0).").format(d=DELAY_MS)
_LATE_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSED (its own RST, out of window for the server). "
                "Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, CLOSED (the second RST).")


_race("abort_out_of_window", _LATE_RUN, _LATE_STATES, "A FIN then an RST, the client first.", "client", (40301, 5030),
      client="at(T); send('c', 1000, b'data '); at(T + 0.008); send('c', 100, b'more '); close('c')",
      server="at(T + 0.014); send('s', 300, b'late ')")


_CLOSING_RUN = ("An abort in CLOSING over the delay path ({d} ms each way), 198.18.3.1:40321 -> "
                "198.18.3.2:5032: after a request and response the server close()s; 7.5 ms later the client, "
                "which has not seen that FIN yet, shutdown(SHUT_WR)s (the FINs cross); the server's FIN puts it "
                "in CLOSING; 2.4 ms after that it sets SO_LINGER 0 and close()s, which in CLOSING with nothing "
                "unsent closes the socket without an RST (tcp_disconnect). The server's ACK of the client's FIN "
                "then finds no socket and gets a bare RST. Captured at the same time on the client's interface "
                "(tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_CLOSING_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSING, CLOSED (silent). Server: SYN_RECV, "
                   "ESTABLISHED, FIN_WAIT1, CLOSING, TIME_WAIT (or CLOSED at the RST: by the kernel's record).")
_race("abort_in_closing", _CLOSING_RUN, _CLOSING_STATES, "FINs that cross, the server first.", "server",
      (40321, 5032),
      client="at(T + 0.0075); shut_wr('c'); at(T + 0.0124); linger0('c'); close('c')",
      server="at(T); close('s')")


_LOST_FIN_RUN = ("FINs that cross, one lost, over the delay path ({d} ms each way), 198.18.3.1:40331 -> "
                 "198.18.3.2:5033: after a request and response the server shutdown(SHUT_WR)s, and 1.5 ms later "
                 "the client, which has not seen that FIN, does too: the FINs cross. The server's FIN is dropped "
                 "once at the client's input (nftables), after both capture points. The client's FIN reaches "
                 "the server in FIN_WAIT1 (CLOSING), which ACKs it at once; that ACK takes the client to "
                 "FIN_WAIT2. The server retransmits its FIN when its retransmission timer fires; the client "
                 "takes that copy (TIME_WAIT) and ACKs it (the server to TIME_WAIT). Captured at the same time on "
                 "the client's interface (tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_LOST_FIN_STATES = ("Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, CLOSING, TIME_WAIT. Client: SYN_SENT, "
                    "ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT (at the retransmitted FIN).")
_race("lost_fin_crossing", _LOST_FIN_RUN, _LOST_FIN_STATES, "A simultaneous close, the server first.", "server",
      (40331, 5033), client="at(T + 0.0015); shut_wr('c')", server="at(T); shut_wr('s')", after=0.8,
      kind="simultaneous", drop=("FIN", "client"))

_HELD_FIN_RUN = ("A FIN held behind lost data, over the delay path ({d} ms each way), 198.18.3.1:40341 -> "
                 "198.18.3.2:5034: after a request and response the client sends 1 more byte, which is dropped "
                 "once at the server's input (nftables), after both capture points. 15 ms later the server "
                 "shutdown(SHUT_WR)s; its FIN acknowledges only the request. 30 ms after the byte the client, in "
                 "CLOSE_WAIT, shutdown(SHUT_WR)s: a FIN that ACKs the server's. It reaches the server in "
                 "FIN_WAIT1 after the gap the byte left: the server takes the ACK (FIN_WAIT2) but queues the FIN "
                 "out of order and answers with a duplicate ACK (SACK). The client sends the byte again; with "
                 "it the server takes the FIN (TIME_WAIT). Captured at the same time on the client's interface "
                 "(tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_HELD_FIN_STATES = ("Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT (at the byte sent again). "
                    "Client: SYN_SENT, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED.")
_race("fin_behind_lost_data", _HELD_FIN_RUN, _HELD_FIN_STATES, "A three-way close, the server first.", "server",
      (40341, 5034), client="at(T); send('c', 1, b'x'); at(T + 0.03); shut_wr('c')",
      server="at(T + 0.015); shut_wr('s')", after=0.8, kind="three-way", drop=("data", "server"))

_FIN_ACK_LOST_RUN = ("A FIN and the ACK it carries lost, over the delay path ({d} ms each way), 198.18.3.1:40351 "
                     "-> 198.18.3.2:5035: after a request and response the server shutdown(SHUT_WR)s; 30 ms "
                     "later the client, in CLOSE_WAIT, close()s: its FIN acknowledges the server's, and is "
                     "dropped once at the server's input (nftables), after both capture points. The server "
                     "retransmits its FIN; the client, in LAST_ACK, answers with an ACK (the server to "
                     "FIN_WAIT2). Then the client retransmits its FIN; the server takes it (TIME_WAIT) and ACKs "
                     "it (the client CLOSED). Captured at the same time on the client's interface (tdgc0) and on "
                     "the server's interface (tdgs0).").format(d=DELAY_MS)
_FIN_ACK_LOST_STATES = ("Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT (at the retransmitted "
                        "FIN). Client: SYN_SENT, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED.")
_race("fin_ack_lost", _FIN_ACK_LOST_RUN, _FIN_ACK_LOST_STATES, "A four-way close, the server first.", "server",
      (40351, 5035), client="at(T + 0.03); close('c')", server="at(T); shut_wr('s')", after=0.8,
      kind="four-way", drop=("FIN", "server"))


_RESET_RUN = ("An abort answers a FIN that was lost, over the delay path ({d} ms each way), 198.18.3.1:40361 -> "
              "198.18.3.2:5036: after a request and response the server sends 300 bytes and 1 ms later close()s; "
              "3 ms after that the client, which has seen neither, close()s: its FIN crosses them, and is dropped "
              "once at the server's input (nftables), after both capture points. The 300 bytes reach the client "
              "in FIN_WAIT1 after close(): it aborts (TCPAbortOnData) with a bare RST numbered as their ACK field, "
              "its FIN's own number, which is the server's rcv_nxt (it never had that FIN): the server takes it "
              "in FIN_WAIT1. Only the capture on the server's interface (tdgs0) is kept: on the client's, the "
              "RST leaves before the server's ACK of the FIN could have come back, so it cannot tell whether the "
              "FIN arrived.").format(d=DELAY_MS)
_RESET_STATES = ("Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, CLOSED (the RST, at its rcv_nxt). Client: SYN_SENT, "
                 "ESTABLISHED, FIN_WAIT1, CLOSED (its own RST).")
_race("reset_after_lost_fin", _RESET_RUN, _RESET_STATES, "A FIN then an RST, the server first.", "server",
      (40361, 5036), client="at(T + 0.004); close('c')",
      server="at(T); send('s', 300, b'late '); at(T + 0.001); close('s')", after=0.5,
      drop=("FIN", "server"), sides=("server",))


_STALE_RUN = ("Data that shows a FIN lost, over the delay path ({d} ms each way), 198.18.3.1:40371 -> "
              "198.18.3.2:5037: after a request and response the server shutdown(SHUT_WR)s; its FIN is dropped "
              "once at the client's input (nftables), after both capture points. 45 ms later the server "
              "close()s; 5 ms after that the client, still ESTABLISHED, sends 300 bytes whose ACK field leaves "
              "out the FIN. They reach the server in FIN_WAIT1 after close(): it aborts (TCPAbortOnData) with a "
              "bare RST numbered as their ACK field, its FIN's own number, which is the client's rcv_nxt: the "
              "client takes it in ESTABLISHED. Captured at the same time on the client's interface (tdgc0) and "
              "on the server's interface (tdgs0).").format(d=DELAY_MS)
_STALE_STATES = ("Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, CLOSED (its own RST). Client: SYN_SENT, ESTABLISHED, "
                 "CLOSED (the RST; never CLOSE_WAIT).")
_race("data_after_lost_fin", _STALE_RUN, _STALE_STATES, "A FIN then an RST, the server first.", "server",
      (40371, 5037), client="at(T + 0.05); send('c', 300, b'data ')",
      server="at(T); shut_wr('s'); at(T + 0.045); close('s')", after=0.3, drop=("FIN", "client"))


_ACK_CROSS_RUN = ("An ACK that crosses an abort, over the delay path ({d} ms each way), 198.18.3.1:40381 -> "
                  "198.18.3.2:5038: after a request and response the server sends 1 byte, which the client "
                  "never reads; 24 ms later the client shutdown(SHUT_WR)s. The server, in CLOSE_WAIT, sends "
                  "3000 bytes that ACK the FIN before its delayed ACK is due; before they arrive the client "
                  "close()s with the byte unread: an RST+ACK (TCP_ABORT_ON_CLOSE) whose ACK field leaves them "
                  "out. The client never had the ACK of its FIN (no FIN_WAIT2); the 3000 bytes then find no "
                  "socket. Captured at the same time on the client's interface (tdgc0) and on the server's "
                  "interface (tdgs0).").format(d=DELAY_MS)
_ACK_CROSS_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSED (its own RST). Server: SYN_RECV, "
                     "ESTABLISHED, CLOSE_WAIT, CLOSED (the RST).")
_race("ack_crosses_abort", _ACK_CROSS_RUN, _ACK_CROSS_STATES, "A FIN then an RST, the client first.", "client",
      (40381, 5038), client="at(T + 0.024); shut_wr('c'); at(T + 0.049); close('c')",
      server="at(T); send('s', 1, b'x'); at(T + 0.043); send('s', 3000, b'data ')", after=0.3)


_CLOSING_ABORT_RUN = ("An abort in CLOSING that an ACK crosses, over the delay path ({d} ms each way), "
                      "198.18.3.1:40391 -> 198.18.3.2:5039: after a request and response the client sends "
                      "300 bytes, which the server never reads, and 11 ms later close()s; 7 ms after that the "
                      "server, which has not seen that FIN yet, shutdown(SHUT_WR)s: the FINs cross, both go to "
                      "CLOSING. 17 ms later the server close()s with the bytes unread: an RST+ACK "
                      "(TCP_ABORT_ON_CLOSE), sent before the client's ACK of its FIN arrives. Captured at the "
                      "same time on the client's interface (tdgc0) and on the server's interface "
                      "(tdgs0).").format(d=DELAY_MS)
_CLOSING_ABORT_STATES = ("Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, CLOSING, CLOSED (its own RST; never "
                         "TIME_WAIT). Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSING, TIME_WAIT, then as the "
                         "kernel's record says.")
_race("closing_abort_crosses_ack", _CLOSING_ABORT_RUN, _CLOSING_ABORT_STATES, "FINs that cross, then an RST.",
      "both", (40391, 5039), client="at(T + 0.015); send('c', 300, b'data '); at(T + 0.026); close('c')",
      server="at(T + 0.033); shut_wr('s'); at(T + 0.050); close('s')", after=0.3)


_PAST_FIN_RUN = ("An abort numbered past a lost FIN, over the delay path ({d} ms each way), 198.18.3.1:40401 -> "
                 "198.18.3.2:5040: after a request and response the client shutdown(SHUT_WR)s; its FIN is "
                 "dropped once at the server's input (nftables), after both capture points. 11 ms later the "
                 "server sends 300 bytes that leave the FIN out; 3 ms after that the client sets SO_LINGER 0 "
                 "and close()s: an RST+ACK numbered past its FIN. The server's rcv_nxt is the FIN's own number, "
                 "so the RST, in its window but not at rcv_nxt, draws a challenge ACK (RFC 5961) and does not "
                 "close it. The client's kernel answers the 300 bytes and the challenge ACK with bare RSTs at "
                 "that number, the first of which closes the server from ESTABLISHED. Captured at the same time "
                 "on the client's interface (tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_PAST_FIN_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSED (its own RST). Server: SYN_RECV, "
                    "ESTABLISHED, CLOSED (the first bare RST; never CLOSE_WAIT).")
_race("abort_past_lost_fin", _PAST_FIN_RUN, _PAST_FIN_STATES, "A FIN then an RST, the client first.", "client",
      (40401, 5040), client="at(T + 0.019); shut_wr('c'); at(T + 0.033); linger0('c'); close('c')",
      server="at(T + 0.030); send('s', 300, b'data ')", after=0.3, drop=("FIN", "server"))


_CHALLENGE_RUN = ("A challenge ACK after lost data, over the delay path ({d} ms each way), 198.18.3.1:40411 -> "
                  "198.18.3.2:5041: after a request and response the client sends 300 bytes and at once "
                  "shutdown(SHUT_WR)s. 11 ms later the server, in CLOSE_WAIT, sends 300 bytes that ACK the FIN, "
                  "dropped once at the client's input (nftables), after both capture points; 0.5 ms after that "
                  "the server sets SO_LINGER 0 and close()s: an RST+ACK numbered after the lost bytes. The "
                  "client's rcv_nxt is where they began: the RST, in its window but not at rcv_nxt, draws a "
                  "challenge ACK (RFC 5961) and does not close it, nor did the lost bytes take it to FIN_WAIT2. "
                  "The server's kernel answers the challenge ACK with a bare RST at its ACK field, which closes "
                  "the client from FIN_WAIT1. Captured at the same time on the client's interface (tdgc0) and on "
                  "the server's interface (tdgs0).").format(d=DELAY_MS)
_CHALLENGE_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSED (the bare RST; never FIN_WAIT2). Server: "
                     "SYN_RECV, ESTABLISHED, CLOSE_WAIT, CLOSED (its own RST).")
_race("challenge_ack_after_lost_data", _CHALLENGE_RUN, _CHALLENGE_STATES, "A FIN then an RST, the client first.",
      "client", (40411, 5041),
      client="at(T + 0.0175); send('c', 300, b'data '); shut_wr('c'); at(T + 0.033); close('c')",
      server="at(T + 0.0283); send('s', 300, b'data '); at(T + 0.0288); linger0('s'); close('s')",
      after=0.3, drop=("data", "client"))


_ON_DATA_RUN = ("Data after close() behind lost data, over the delay path ({d} ms each way), 198.18.3.1:40421 -> "
                "198.18.3.2:5042: after a request and response the server sends 300 bytes, dropped once at the "
                "client's input (nftables) after both capture points, and 5 ms later close()s. Its FIN reaches "
                "the client out of order (a duplicate ACK). 17 ms later the client sends 3000 bytes, still "
                "acknowledging only up to the lost ones, then shutdown(SHUT_WR)s. They reach the server in "
                "FIN_WAIT1 after close(): it aborts (TCPAbortOnData) with a bare RST numbered as their ACK field. "
                "The server's retransmission of the 300 bytes, sent before, lets the client take the FIN and ACK "
                "it; that ACK finds no socket (no FIN_WAIT2). Captured at the same time on the client's interface "
                "(tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_ON_DATA_STATES = ("Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, CLOSED (its own RST; never FIN_WAIT2). Client: "
                   "SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSING, CLOSED (a bare RST).")
_race("abort_on_data_behind_lost_data", _ON_DATA_RUN, _ON_DATA_STATES, "FINs, then an RST: the server first.", "server",
      (40421, 5042), client="at(T + 0.0358); send('c', 3000, b'data '); at(T + 0.0394); shut_wr('c')",
      server="at(T + 0.0137); send('s', 300, b'data '); at(T + 0.0191); close('s')",
      after=0.3, drop=("data", "client"))


_HELD_RESET_RUN = ("A reset at a hole, over the delay path ({d} ms each way), 198.18.3.1:40431 -> 198.18.3.2:5043: "
                   "after a request and response the client sends 300 bytes, dropped once at the server's input "
                   "(nftables) after both capture points, and 0.6 ms later close()s. Its FIN reaches the server "
                   "out of order: the server answers with an ACK that repeats its last ACK field (the start of "
                   "the lost bytes) and stays ESTABLISHED. 2 ms after the client's close() the server sends 3000 "
                   "bytes, which reach the client in FIN_WAIT1 after close(): it aborts (TCPAbortOnData) with bare "
                   "RSTs numbered as their ACK field, the server's rcv_nxt, which close it. Captured at the same "
                   "time on the client's interface (tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_HELD_RESET_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSED (its own RST). Server: SYN_RECV, "
                      "ESTABLISHED, CLOSED (the first RST, at its rcv_nxt; never CLOSE_WAIT).")
_race("reset_at_a_hole", _HELD_RESET_RUN, _HELD_RESET_STATES, "A FIN then an RST, the client first.", "client",
      (40431, 5043), client="at(T + 0.0004); send('c', 300, b'data '); at(T + 0.001); close('c')",
      server="at(T + 0.0028); send('s', 3000, b'data ')", after=0.3, drop=("data", "server"))


_FIN_AHEAD_RUN = ("An abort on a FIN behind lost data, over the delay path ({d} ms each way), 198.18.3.1:40441 -> "
                  "198.18.3.2:5044: after a request and response the client sends 300 bytes, dropped once at the "
                  "server's input (nftables) after both capture points. The server sends 300 bytes and 14 ms "
                  "later close()s: its FIN leaves the client's bytes out. 20 ms after that the client, in "
                  "CLOSE_WAIT, shutdown(SHUT_WR)s: a FIN that ACKs the server's, numbered after the lost bytes. "
                  "The server takes the ACK (FIN_WAIT2), then, its socket orphaned by close(), finds the FIN "
                  "past its rcv_nxt: it aborts (TCPAbortOnData, tcp_rcv_state_process) and its reply path "
                  "answers with a bare RST numbered as the FIN's ACK field. Captured at the same time on the "
                  "client's interface (tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_FIN_AHEAD_STATES = ("Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSED (its own abort; never "
                     "TIME_WAIT). Client: SYN_SENT, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED (the RST).")
_race("abort_on_fin_behind_lost_data", _FIN_AHEAD_RUN, _FIN_AHEAD_STATES, "A FIN then an RST, the server first.",
      "server", (40441, 5044), client="at(T + 0.0106); send('c', 300, b'data '); at(T + 0.0556); shut_wr('c')",
      server="at(T + 0.0213); send('s', 300, b'data '); at(T + 0.0352); close('s')",
      after=0.3, drop=("data", "server"))



_UNSHOWN_RUN = ("A FIN lost before its delayed ACK, over the delay path ({d} ms each way), 198.18.3.1:40451 -> "
                "198.18.3.2:5045: after a request and response the server sends 300 bytes; 2 ms later, before "
                "they arrive, the client close()s: its FIN leaves them out, and it is dropped once at the "
                "server's input (nftables), after both capture points. The bytes reach the client in FIN_WAIT1 "
                "after close(): it aborts (TCPAbortOnData) and its reply path answers with a bare RST numbered as "
                "their ACK field, the FIN's own number, the server's rcv_nxt. The server, still ESTABLISHED "
                "(no FIN reached it), takes the RST 8 ms after the FIN passed the capture points, long before "
                "the delayed ACK a FIN received in ESTABLISHED would have drawn (tcp_fin: pingpong mode): no "
                "segment shows whether the FIN reached it. Captured at the same time on the client's interface "
                "(tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_UNSHOWN_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSED (its own abort). Server: SYN_RECV, "
                   "ESTABLISHED, CLOSED (the RST; never CLOSE_WAIT, which the capture cannot tell from a "
                   "CLOSE_WAIT reset before its delayed ACK, as in close_race: the analysis reports CLOSE_WAIT "
                   "with a note that it is not shown).")
_race("fin_lost_before_delayed_ack", _UNSHOWN_RUN, _UNSHOWN_STATES, "A FIN then an RST, the client first.",
      "client", (40451, 5045), client="at(T + 0.0381); close('c')",
      server="at(T + 0.036); send('s', 300, b'data ')", after=0.3, drop=("FIN", "server"))



_RACE_LOST_RUN = ("The keep-alive race with the FIN lost, over the delay path ({d} ms each way), 198.18.3.1:40461 "
                  "-> 198.18.3.2:5046: after a request and response the server close()s the connection as idle; "
                  "its FIN is dropped once at the client's input (nftables), after both capture points. 8 ms "
                  "later, 2 ms before the FIN would have arrived, the client sends 3000 bytes (three segments) "
                  "that acknowledge only the response. They reach the server in FIN_WAIT1 after close(): it "
                  "aborts (TCPAbortOnData) and its reply path answers each segment with a bare RST numbered as "
                  "its ACK field, the FIN's own number, the client's rcv_nxt: the first closes the client from "
                  "ESTABLISHED, 19 ms after the FIN passed the capture points, before the delayed ACK a FIN "
                  "received in ESTABLISHED would have drawn. On the server's interface the first RST leaves "
                  "between the client's segments, which crossed it. Captured at the same time on the client's "
                  "interface (tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_RACE_LOST_STATES = ("Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, CLOSED (its own abort). Client: SYN_SENT, "
                     "ESTABLISHED, CLOSED (the first RST; never CLOSE_WAIT, which the capture cannot tell from "
                     "close_race's CLOSE_WAIT: the analysis reports CLOSE_WAIT with a note that it is not shown).")
_race("close_race_fin_lost", _RACE_LOST_RUN, _RACE_LOST_STATES, "A FIN then an RST, the server first.", "server",
      (40461, 5046), client="at(T + 0.0361); send('c', 3000, b'data ')", server="at(T + 0.0279); close('s')",
      after=0.3, drop=("FIN", "client"))



_ACK_AFTER_RST_RUN = ("A reset lost, then a delayed ACK, over the delay path ({d} ms each way), 198.18.3.1:40471 -> "
                      "198.18.3.2:5047: after a request and response the client close()s; 8 ms later, before "
                      "the FIN arrives, the server sends 1 byte, which reaches the client in FIN_WAIT1 after "
                      "close(): it aborts (TCPAbortOnData) with a bare RST numbered as the byte's ACK field, "
                      "dropped once at the server's input (nftables), after both capture points. The server, in "
                      "CLOSE_WAIT since the FIN, sends its delayed ACK of the FIN some 40 ms later: a pure ACK, "
                      "which the client's reply path answers with a bare RST at the server's rcv_nxt, which "
                      "closes it. Captured at the same time on the client's interface (tdgc0) and on the server's "
                      "interface (tdgs0).").format(d=DELAY_MS)
_ACK_AFTER_RST_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSED (its own abort). Server: SYN_RECV, "
                         "ESTABLISHED, CLOSE_WAIT, CLOSED (the second RST; the first was lost, which its ACK, "
                         "more than a round trip after it, shows).")
_race("rst_lost_before_delayed_ack", _ACK_AFTER_RST_RUN, _ACK_AFTER_RST_STATES, "A FIN then an RST, the client first.",
      "client", (40471, 5047), client="at(T + 0.0129); close('c')", server="at(T + 0.0212); send('s', 1, b'x')",
      after=0.3, drop=("RST", "server"))



_ABORTS_ON_DATA_RUN = ("Two aborts that cross, one on data after close(), over the delay path ({d} ms each way), "
                       "198.18.3.1:40481 -> 198.18.3.2:5048: after a request and response the server close()s; "
                       "18 ms later the client, in CLOSE_WAIT, sends 3000 bytes that ACK the FIN (three "
                       "segments). They reach the server in FIN_WAIT1 after close(): it takes the ACK (FIN_WAIT2) "
                       "and aborts on the data (TCPAbortOnData), its reply path answering each segment with a bare "
                       "RST numbered as its ACK field. 18 ms after its data, before those RSTs arrive, the client "
                       "sets SO_LINGER 0 and close()s: an RST+ACK, which reaches the server after it is gone. "
                       "The first pure ACK into the client is dropped once (nftables), after both capture points. "
                       "Captured at the same time on the client's interface (tdgc0) and on the server's interface "
                       "(tdgs0).").format(d=DELAY_MS)
_ABORTS_ON_DATA_STATES = ("Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSED (its own abort on the data; "
                          "the client's RST+ACK came after). Client: SYN_SENT, ESTABLISHED, CLOSE_WAIT, CLOSED "
                          "(its own RST+ACK).")
_race("abort_crosses_abort_on_data", _ABORTS_ON_DATA_RUN, _ABORTS_ON_DATA_STATES, "A FIN then RSTs, the server first.",
      "server", (40481, 5048), client="at(T + 0.019); send('c', 3000, b'data '); at(T + 0.0374); linger0('c'); "
      "close('c')", server="at(T + 0.0014); close('s')", after=0.3, drop=("pure ACK", "client"))



_LAST_ACK_GONE_RUN = ("A socket gone in LAST_ACK, over the delay path ({d} ms each way), 198.18.3.1:40491 -> "
                      "198.18.3.2:5049: after a request and response the client close()s; 25 ms later the "
                      "server, in CLOSE_WAIT, shutdown(SHUT_WR)s (its FIN ACKs the client's: LAST_ACK), and 7.6 ms "
                      "after that sets SO_LINGER 0 and close()s: from LAST_ACK that sends no RST (tcp_disconnect "
                      "resets only from ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2 and SYN_RECV), the socket is "
                      "simply gone. The client's ACK of the FIN then finds no socket, and the server's reply path "
                      "answers it with a bare RST at the client's rcv_nxt, which ends the client's TIME_WAIT. "
                      "Captured at the same time on the client's interface (tdgc0) and on the server's interface "
                      "(tdgs0).").format(d=DELAY_MS)
_LAST_ACK_GONE_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, TIME_WAIT, CLOSED (the RST). Server: SYN_RECV, "
                         "ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED (silently, at close(), before the client's "
                         "ACK arrived).")
_race("last_ack_gone", _LAST_ACK_GONE_RUN, _LAST_ACK_GONE_STATES, "Three FIN segments, then an RST: the client first.",
      "client", (40491, 5049), client="at(T + 0.0205); close('c')",
      server="at(T + 0.0454); shut_wr('s'); at(T + 0.053); linger0('s'); close('s')", after=0.3,
      kind="fin-then-rst")



_SHORT_RUN = ("An abort numbered short of the FIN, over the delay path ({d} ms each way), 198.18.3.1:40501 -> "
              "198.18.3.2:5050: after a request and response the client sends 1 byte; 2.4 ms later the server "
              "sends 1 byte and 5.4 ms after that close()s, before the client's byte arrives. It arrives in "
              "FIN_WAIT1 after close(): the server aborts (TCPAbortOnData) with a bare RST numbered as the byte's "
              "ACK field, short of the server's own byte and FIN, so out of the client's window (the client, in "
              "CLOSE_WAIT by then, takes only rcv_nxt - 1). The client's ACK of the FIN then draws the reply "
              "path's bare RST at its rcv_nxt - 1, which closes it. Captured at the same time on the client's "
              "interface (tdgc0) and on the server's interface (tdgs0).").format(d=DELAY_MS)
_SHORT_STATES = ("Server: SYN_RECV, ESTABLISHED, FIN_WAIT1, CLOSED (its own abort, at the first RST). Client: "
                 "SYN_SENT, ESTABLISHED, CLOSE_WAIT, CLOSED (the second RST).")
_race("abort_short_of_fin", _SHORT_RUN, _SHORT_STATES, "A FIN then RSTs, the server first.", "server",
      (40501, 5050), client="at(T + 0.0135); send('c', 1, b'x')",
      server="at(T + 0.0159); send('s', 1, b'y'); at(T + 0.0213); close('s')", after=0.3)



_LATE_FIN_RUN = ("A FIN lost into an ESTABLISHED side, over the delay path ({d} ms each way), 198.18.3.1:40511 -> "
                 "198.18.3.2:5051: after a request and response the client close()s; its FIN is dropped once at "
                 "the server's input (nftables), after both capture points. The server, still ESTABLISHED, sends "
                 "nothing; a side that takes a FIN in ESTABLISHED ACKs it within 200 ms (tcp_fin: pingpong mode, "
                 "a delayed ACK), and none comes. The client retransmits the FIN a retransmission timeout (over "
                 "200 ms) later; the server takes that copy (CLOSE_WAIT) and ACKs it a delayed-ACK time after "
                 "it. 400 ms after the first FIN the server close()s: its FIN takes the client to TIME_WAIT, and "
                 "the client's ACK closes it. Captured at the same time on the client's interface (tdgc0) and on "
                 "the server's interface (tdgs0).").format(d=DELAY_MS)
_LATE_FIN_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT. Server: SYN_RECV, "
                    "ESTABLISHED, CLOSE_WAIT (at the retransmitted FIN), LAST_ACK, CLOSED.")
_race("fin_lost_into_established", _LATE_FIN_RUN, _LATE_FIN_STATES, "A four-way close, the client first.",
      "client", (40511, 5051), client="at(T); close('c')", server="at(T + 0.4); close('s')", after=0.5,
      kind="four-way", drop=("FIN", "server"))



_KEEPALIVE_RUN = ("Keepalive probes in a half-close, over the delay path ({d} ms each way), 198.18.3.1:40521 -> "
                  "198.18.3.2:5052: after a request and response both sockets turn on SO_KEEPALIVE (TCP_KEEPIDLE "
                  "and TCP_KEEPINTVL 1 s), and the client shutdown(SHUT_WR)s; the server never closes (a "
                  "CLOSE_WAIT leak). For 3.5 s each side, idle, sends a keepalive probe every second (no data, "
                  "numbered one before its snd_una: the client's as its own FIN), which the other answers with "
                  "an ACK. Captured at the same time on the client's interface (tdgc0) and on the server's "
                  "interface (tdgs0).").format(d=DELAY_MS)
_KEEPALIVE_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2 (to the end). Server: SYN_RECV, "
                     "ESTABLISHED, CLOSE_WAIT (to the end). No FIN sent again, nothing lost: the probes and "
                     "their ACKs change no state.")
_race("keepalive_in_half_close", _KEEPALIVE_RUN, _KEEPALIVE_STATES, "Half-open, the client first.", "client",
      (40521, 5052), client="keepalive('c', 1, 1); at(T); shut_wr('c')", server="keepalive('s', 1, 1)",
      after=3.5, kind="half-open")



_KEEPALIVE_TIMEOUT_RUN = ("A keepalive timeout, over the delay path ({d} ms each way), 198.18.3.1:40531 -> "
                          "198.18.3.2:5053: after a request and response the client turns on SO_KEEPALIVE "
                          "(TCP_KEEPIDLE and TCP_KEEPINTVL 1 s, TCP_KEEPCNT 3), and from then on every pure ACK "
                          "from the client is dropped at the server's input (nftables), after both capture "
                          "points, as a middlebox that lost the connection's state would. The client, idle, "
                          "sends a keepalive probe a second after the last segment it received and two more a "
                          "second apart, none answered; a second after the third, the keepalive timer gives "
                          "up: the client sends an RST+ACK (tcp_send_active_reset) and is CLOSED. The RST "
                          "reaches the server, idle and ESTABLISHED, which is CLOSED by it. Captured at the "
                          "same time on the client's interface (tdgc0) and on the server's interface "
                          "(tdgs0).").format(d=DELAY_MS)
_KEEPALIVE_TIMEOUT_STATES = ("Client: SYN_SENT, ESTABLISHED, CLOSED (its RST, after three keepalive probes "
                             "unanswered). Server: SYN_RECV, ESTABLISHED, CLOSED (the RST).")
_race("keepalive_timeout", _KEEPALIVE_TIMEOUT_RUN, _KEEPALIVE_TIMEOUT_STATES, "An RST, the client first.", "client",
      (40531, 5053), client="keepalive('c', 1, 1, 3)", server="pass", after=5.0, kind="rst",
      drop=("pure ACK", "server", "every"))



_LOST_ACKING_DATA_RUN = ("Data that ACKed a FIN lost, then the FIN past it, over the delay path ({d} ms each way), "
                         "198.18.3.1:40541 -> 198.18.3.2:5054: after a request and response the client close()s; "
                         "28.5 ms later the server, in CLOSE_WAIT, sends 1 byte, which ACKs the client's FIN and is "
                         "dropped once at the client's input (nftables), after both capture points. 14 ms later "
                         "the server close()s: its FIN, numbered past the lost byte, ACKs the client's FIN too. It "
                         "reaches the client in FIN_WAIT1 after close(): the ACK takes it to FIN_WAIT2, and the FIN, "
                         "past its rcv_nxt, aborts it (TCPAbortOnData): a bare RST numbered as the FIN's ACK field. "
                         "Had the byte arrived, it would have aborted the client at once. The RST closes the "
                         "server in LAST_ACK. Captured at the same time on the client's interface (tdgc0) and on "
                         "the server's interface (tdgs0).").format(d=DELAY_MS)
_LOST_ACKING_DATA_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2 (at the server's FIN, not at the "
                            "lost byte), CLOSED (its own abort). Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, "
                            "CLOSED (the RST).")
_race("lost_data_acking_fin", _LOST_ACKING_DATA_RUN, _LOST_ACKING_DATA_STATES, "A FIN, data, a FIN, then an RST: the "
      "client first.", "client", (40541, 5054), client="at(T); close('c')",
      server="at(T + 0.0285); send('s', 1, b'x'); at(T + 0.0424); close('s')", after=0.3,
      drop=("data", "client"))



_CROSS_PREV_RUN = ("An abort on data after close() crosses the peer's abort, over the delay path ({d} ms each "
                   "way), 198.18.3.1:40551 -> 198.18.3.2:5055: after a request and response the client close()s; "
                   "5.2 ms later, before the FIN arrives, the server sends 300 bytes, which reach the client in "
                   "FIN_WAIT1 after close(): it aborts (TCPAbortOnData), its reply path answering with a bare RST "
                   "numbered as their ACK field (the client's FIN's own number). 18 ms after its data, before "
                   "that RST arrives, the server (CLOSE_WAIT since the FIN) sets SO_LINGER 0 and close()s: an "
                   "RST+ACK, which ACKs the FIN. The two RSTs cross; on the server's interface the RST+ACK comes "
                   "first, so the client's RST is numbered as the server's ACK field before its last. Captured "
                   "at the same time on the client's interface (tdgc0) and on the server's interface "
                   "(tdgs0).").format(d=DELAY_MS)
_CROSS_PREV_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSED (its own abort, at its RST). Server: "
                      "SYN_RECV, ESTABLISHED, CLOSE_WAIT, CLOSED (its own RST+ACK).")
_race("abort_on_data_crosses_abort", _CROSS_PREV_RUN, _CROSS_PREV_STATES, "A FIN then RSTs, the client first.",
      "client", (40551, 5055), client="at(T); close('c')",
      server="at(T + 0.0052); send('s', 300, b'data '); at(T + 0.0233); linger0('s'); close('s')", after=0.3)


_ORPHAN_RST_RUN = ("An RST past a lost FIN reaches an orphaned FIN_WAIT2, over the delay path ({d} ms each way), "
                   "198.18.3.1:40571 -> 198.18.3.2:5057: after a request and response the server sends 1 byte, "
                   "which the client never reads; 20 ms later the client shutdown(SHUT_WR)s, and its FIN is "
                   "dropped once at the server's input (nftables), after both capture points. 5 ms later the "
                   "server close()s: its FIN leaves the client's out, and takes the client from FIN_WAIT1 to "
                   "CLOSING; the client's ACK of it takes the server, orphaned, to FIN_WAIT2, where the kernel "
                   "keeps only a timewait mini-socket (tcp_time_wait with substate FIN_WAIT2). 35 ms after its "
                   "shutdown the client close()s with the byte unread: an RST+ACK numbered past its FIN "
                   "(tcp_send_active_reset). The server's rcv_nxt is the FIN's own number; the mini-socket "
                   "takes any RST in its window (tcp_timewait_state_process) and is killed, silently. Captured "
                   "at the same time on the client's interface (tdgc0) and on the server's interface "
                   "(tdgs0).").format(d=DELAY_MS)
_ORPHAN_RST_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSING, CLOSED (its own RST). Server: SYN_RECV, "
                      "ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSED (the RST, one past its rcv_nxt).")
_race("orphan_fin_wait2_takes_rst", _ORPHAN_RST_RUN, _ORPHAN_RST_STATES, "A FIN then an RST, the client first.",
      "client", (40571, 5057), client="at(T + 0.020); shut_wr('c'); at(T + 0.055); close('c')",
      server="at(T); send('s', 1, b'x'); at(T + 0.025); close('s')", after=0.3, drop=("FIN", "server"))


_HALF_CLOSED_RST_RUN = ("The same RST past a lost FIN reaches a FIN_WAIT2 that only shutdown() put there, over the "
                        "delay path ({d} ms each way), 198.18.3.1:40581 -> 198.18.3.2:5058: as in "
                        "orphan_fin_wait2_takes_rst (the client's FIN dropped once at the server's input, after both "
                        "capture points), but the server shutdown(SHUT_WR)s instead of close()ing. In FIN_WAIT2 it "
                        "is still a full socket, which takes an RST only at its rcv_nxt (RFC 5961): it answers the "
                        "client's RST+ACK, one past that, with a challenge ACK (tcp_send_challenge_ack). The "
                        "client, closed, answers that with a bare RST numbered as its ACK field (tcp_v4_send_reset), "
                        "which closes the server. Captured at the same time on the client's interface (tdgc0) and "
                        "on the server's interface (tdgs0).").format(d=DELAY_MS)
_HALF_CLOSED_RST_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSING, CLOSED (its own RST). Server: "
                           "SYN_RECV, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSED (the bare RST; not the RST+ACK "
                           "before it).")
_race("half_closed_fin_wait2_challenges_rst", _HALF_CLOSED_RST_RUN, _HALF_CLOSED_RST_STATES,
      "A FIN then RSTs, the client first.", "client", (40581, 5058),
      client="at(T + 0.020); shut_wr('c'); at(T + 0.055); close('c')",
      server="at(T); send('s', 1, b'x'); at(T + 0.025); shut_wr('s')", after=0.3, drop=("FIN", "server"))


_ZERO_WINDOW_RUN = ("A zero window in a half-close, over the delay path ({d} ms each way), 198.18.3.1:40591 -> "
                    "198.18.3.2:5059: after a request and response the client shutdown(SHUT_WR)s and stops "
                    "reading; the server, in CLOSE_WAIT, sends 150 kB. Once the client's receive buffer is full "
                    "it advertises a zero window, and the server, with data left to send, probes it "
                    "(tcp_send_probe0: a pure ACK numbered one before its snd_una, as a keepalive probe is, the "
                    "persist timer backing off from one RTO). The server close()s as soon as its data is "
                    "queued (LAST_ACK at once), but its FIN waits behind the data. 2 s after its shutdown the "
                    "client reads everything: its window opens, the rest flows with the FIN after it, which "
                    "takes the client from FIN_WAIT2 to TIME_WAIT. Captured with headers only (128 bytes) on "
                    "the server's interface (tdgs0).").format(d=DELAY_MS)
_ZERO_WINDOW_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT. Server: SYN_RECV, "
                       "ESTABLISHED, CLOSE_WAIT, LAST_ACK (2 s before its FIN leaves: the capture shows only "
                       "an upper bound), CLOSED. The probes and their ACKs change no state.")
_race("zero_window_in_half_close", _ZERO_WINDOW_RUN, _ZERO_WINDOW_STATES, "Four-way, the client first.",
      "client", (40591, 5059), client="at(T); shut_wr('c'); at(T + 2.0); _n = recv_n('c', 150000); close('c')",
      server="at(T + 0.01); send('s', 150000, b'data '); close('s')", after=0.5, kind="four-way",
      sides=("server",), snaplen=128)


_COPIES_CROSS_RUN = ("FINs sent again that cross, over a bare veth pair (tens of microseconds each way), "
                     "198.18.0.1:40601 -> 198.18.0.2:5060: after a request and response the client close()s; "
                     "0.2 ms later, its FIN taken, the server close()s: its FIN+ACK, which ACKs the client's FIN, "
                     "is dropped once at the client's input (nftables), after both capture points. Neither FIN "
                     "is ACKed, so both retransmission timers fire about 200 ms later, within a fraction of a "
                     "millisecond of each other: the client takes the server's copy, a FIN+ACK, straight to "
                     "TIME_WAIT, while its own copy, sent just before, crosses it and reaches the server in "
                     "LAST_ACK, which answers it with an ACK; the client's ACK of the FIN closes the server. "
                     "Captured at the same time on the client's interface (tdgc0) and on the server's "
                     "interface (tdgs0).")
_COPIES_CROSS_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, TIME_WAIT at the server's copy (FIN_WAIT2 for "
                        "microseconds on the way). Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED.")
_race("fin_copies_cross", _COPIES_CROSS_RUN, _COPIES_CROSS_STATES, "Three-way, the client first.", "client",
      (40601, 5060), client="at(T); close('c')", server="at(T + 0.0002); close('s')", after=0.5,
      kind="three-way", drop=("FIN", "client"), topo="veth")


_STOPS_RUN = ("A FIN lost just before the capture stops, over the delay path ({d} ms each way), "
              "198.18.3.1:40611 -> 198.18.3.2:5061: after a request and response the client close()s; the "
              "server ACKs its FIN (delayed: CLOSE_WAIT puts it in pingpong mode) and close()s 100 ms "
              "later. Its FIN is dropped once at the client's input (nftables), after both capture points, "
              "and both captures stop about 1.5 s later, before the server's retransmission timer fires "
              "(its route's rto_min is 3 s). Captured at the same time on the client's interface (tdgc0) and on the "
              "server's interface (tdgs0) by dumpcap, whose pcapng files end with interface statistics "
              "blocks that record when the capture stopped (isb_endtime), headers only (128 bytes).").format(
                  d=DELAY_MS)
_STOPS_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2 (the server's FIN never reached it "
                 "while the capture ran). Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK.")
_race("lost_fin_then_capture_stops", _STOPS_RUN, _STOPS_STATES, "Four-way, the client first, unfinished.",
      "client", (40611, 5061), client="at(T); close('c')", server="at(T + 0.1); close('s')", after=0.0,
      kind="four-way", drop=("FIN", "client"), snaplen=128, capture="dumpcap", tail=1.5,
      rto_min=("server", 3000))


_LAST_ACK_ABORT_RUN = ("A socket gone in LAST_ACK before its FIN was ACKed, over the delay path ({d} ms each "
                       "way), 198.18.3.1:40621 -> 198.18.3.2:5062: after a request and response the client "
                       "close()s; 30 ms later the server, in CLOSE_WAIT, shutdown(SHUT_WR)s (its FIN ACKs the "
                       "client's: LAST_ACK) and 0.5 ms after that sets SO_LINGER 0 and close()s, which from "
                       "LAST_ACK sends no RST (tcp_disconnect): the socket is simply gone. Its FIN is dropped "
                       "once at the client's input (nftables), after both capture points, so the client, in "
                       "FIN_WAIT1, sends its own FIN again when its retransmission timer fires; the copy finds "
                       "no socket, and the server's reply path answers it with a bare RST, which closes the "
                       "client. Captured at the same time on the client's interface (tdgc0) and on the "
                       "server's interface (tdgs0), headers only (128 bytes). Found by tools/explore_kernel.py "
                       "--capture dumpcap --seed 2002 (run 55).").format(d=DELAY_MS)
_LAST_ACK_ABORT_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, CLOSED (the RST). Server: SYN_RECV, "
                          "ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED (silently, at close(), about 200 ms before "
                          "the RST: the RST is an upper bound).")
_race("abort_in_last_ack", _LAST_ACK_ABORT_RUN, _LAST_ACK_ABORT_STATES, "A FIN, then a FIN and an RST: the client "
      "first.", "client", (40621, 5062), client="at(T); close('c')",
      server="at(T + 0.03); shut_wr('s'); at(T + 0.0305); linger0('s'); close('s')", after=0.5,
      kind="fin-then-rst", drop=("FIN", "client"), snaplen=128)


_QUEUED_FIN_RUN = ("A FIN queued behind data, then data after close(), over the delay path ({d} ms each way), "
                   "198.18.3.1:40631 -> 198.18.3.2:5063: after a request and response the server sends 150 kB "
                   "and close()s 5 ms later, while most of it is still unsent (slow start): its FIN waits "
                   "behind the data (FIN_WAIT1, nothing on the wire). 20 ms after the server's send the client "
                   "sends 3000 bytes; they reach the server after its close(), which aborts it "
                   "(TCPAbortOnData, tcp_rcv_state_process) and the reply path answers with a bare RST "
                   "numbered as the data's ACK field; later segments of the client's find no socket and get "
                   "the same answer, until one is at the client's rcv_nxt. Captured at the same time on the "
                   "client's interface (tdgc0) and on the server's interface (tdgs0), headers only (128 "
                   "bytes). Found by tools/explore_kernel.py --capture dumpcap --seed 2003 (run 41).").format(
                       d=DELAY_MS)
_QUEUED_FIN_STATES = ("Client: SYN_SENT, ESTABLISHED, CLOSED (an RST). Server: SYN_RECV, ESTABLISHED, FIN_WAIT1 "
                      "(at close(): no segment shows it), CLOSED (at the client's data, its first RST).")
_race("queued_fin_aborts_on_data", _QUEUED_FIN_RUN, _QUEUED_FIN_STATES, "RSTs, the server first.", "server",
      (40631, 5063), client="at(T + 0.02); send('c', 3000, b'data ')",
      server="at(T); send('s', 150000, b'data '); at(T + 0.005); close('s')", after=0.5, kind="rst",
      snaplen=128)


_PROBE_CROSSES_RUN = ("A FIN sent again that crosses its delayed ACK, over the delay path ({d} ms each way), "
                      "198.18.3.1:40641 -> 198.18.3.2:5064: after a request and response the client sends 300 "
                      "bytes, then 300 more and shutdown(SHUT_WR)s, the FIN riding on the second (Nagle held it "
                      "until the first was ACKed). The server ACKs the FIN late (CLOSE_WAIT puts it in pingpong "
                      "mode: a delayed ACK), and the client's tail loss probe (about two round trips, with two "
                      "segments in flight) sends the FIN again before that ACK arrives: the ACK was not lost, "
                      "it crossed the copy. Captured at the same time on the client's interface (tdgc0) and on "
                      "the server's interface (tdgs0), headers only (128 bytes). Found by "
                      "tools/explore_kernel.py --seed 46 (run 53).").format(d=DELAY_MS)
_PROBE_CROSSES_STATES = ("Client: SYN_SENT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2 (at the server's delayed ACK, "
                         "not at its answer to the copy). Server: SYN_RECV, ESTABLISHED, CLOSE_WAIT.")
_race("fin_probe_crosses_ack", _PROBE_CROSSES_RUN, _PROBE_CROSSES_STATES, "Half-open, the client first.", "client",
      (40641, 5064),
      client="at(T + 0.0361); send('c', 300, b'x'); at(T + 0.0412); send('c', 300, b'x'); at(T + 0.0486); "
             "shut_wr('c')",
      server="at(T + 0.0065); S['s'].setblocking(False)\ntry:\n    S['s'].recv(65536)\nexcept OSError:\n    pass\n"
             "S['s'].setblocking(True)\nat(T + 0.0414); send('s', 300, b'y')",
      after=0.5, kind="half-open", snaplen=128)


_REUSE_CHALLENGED_RUN = (
    "A CLOSE_WAIT leak ended by the client's new connection from the same port, over the delay path ({d} ms "
    "each way), 198.18.3.1:40651 -> 198.18.3.2:5065, net.ipv4.tcp_tw_reuse=1 in the client namespace: after a "
    "request and response the client close()s; the server ACKs the FIN and never close()s (CLOSE_WAIT). The "
    "client's orphaned FIN_WAIT2 becomes a mini-socket. 1.3 s later the client connect()s again from port "
    "40651: tcp_tw_reuse lets connect() take over the FIN_WAIT2 mini-socket (tcp_twsk_unique), and the SYN "
    "reaches the server's socket, still in CLOSE_WAIT, which answers with a challenge ACK of the old "
    "connection's numbers (RFC 5961 section 4.2). The client's socket, in SYN_SENT, answers that ACK, which "
    "does not acknowledge its SYN, with a bare RST numbered as its ACK field (tcp_rcv_synsent_state_process, "
    "TCP_INVALID_ACK_SEQUENCE), at the old socket's rcv_nxt: the server's old socket is reset. The client "
    "sends its SYN again at once (TCP_TIMEOUT_MIN), a listener takes it, and the new connection exchanges a "
    "request and response and closes, the client first. Captured on the client's interface (tdgc0). Found "
    "by tools/explore_kernel.py --again --seed 48 (run 47).").format(d=DELAY_MS)
_REUSE_CHALLENGED_STATES = (
    "#0: client SYN_SENT, ESTABLISHED, FIN_WAIT1, FIN_WAIT2, CLOSED (at the new SYN, an upper bound); server "
    "SYN_RECV, ESTABLISHED, CLOSE_WAIT, CLOSED (the RST answering its challenge ACK). #1: client SYN_SENT, "
    "ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT; server SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED; "
    "the RST is listed with #1, whose SYN_SENT socket sent it.")
_race("reuse_challenged", _REUSE_CHALLENGED_RUN, _REUSE_CHALLENGED_STATES,
      "A FIN then an RST (#0), then a four-way or three-way close (#1), the client first.", "client",
      (40651, 5065), sides=("client",), sysctls={NS_C: {"net.ipv4.tcp_tw_reuse": 1}},
      client="at(T); close('c'); at(T + 1.3)\n"
             "connect('c2', '198.18.3.2', 5065, src='198.18.3.1', sport=40651, timeout=4.0)\n"
             "send('c2', 64, b'GET /again '); _r = recv_n('c2', 200); at(T + 1.6); close('c2')",
      server="at(T + 1.2); accept('s2', 'L', timeout=5.0); _r = recv_n('s2', 64)\n"
             "send('s2', 200, b'200 OK '); recv_eof('s2'); close('s2')",
      after=0.3, kind="fin-then-rst")


# ------------------------------------------------------------- truth builder

KEEP_RECORD = False
"""Write each multi-capture run's kernel events and /proc polls beside its outputs
(``<scenario>.record.json``; the explorer does), so that its truth can be built again
(``rebuild_connections``) once the truth builder changes."""

def load_poll(path):
    recs, summary = [], None
    with open(path) as f:
        for line in f:
            o = json.loads(line)
            if "summary" in o:
                summary = o["summary"]
            elif "t" in o:
                o["local"] = tuple(o["local"])
                o["remote"] = tuple(o["remote"])
                recs.append(o)
    return recs, summary


def tw_episodes(recs):
    """Per (local, remote): list of timewait-socket episodes seen by polling."""
    by = defaultdict(list)
    for r in recs:
        by[(r["local"], r["remote"])].append(r)
    eps = defaultdict(list)
    for k, rs in by.items():
        cur = None
        for r in rs:
            if r["st"] is not None and r["tw"]:
                if cur is None:
                    cur = {"start_t": r["t"], "start_prev_t": r.get("prev_t0"), "subs": [], "end_t": None,
                           "end_prev_t": None, "claimed": False}
                    eps[k].append(cur)
                cur["subs"].append((r["t"], r.get("prev_t0"), PROC_MAP.get(r["st"], r["st"])))
            elif cur is not None:
                cur["end_t"], cur["end_prev_t"] = r["t"], r.get("prev_t0")
                cur = None
    return eps


def build_lives(evs):
    """Each traced socket's state changes, in order.  The tracepoint names a socket by its
    4-tuple only, and two sockets can hold one 4-tuple at a time (a connect() from a bound
    port while the old socket is still there, which fails, or which takes over a TIME_WAIT
    or an orphaned FIN_WAIT2 with tcp_tw_reuse), so an event goes to the open socket on its
    4-tuple whose state it leaves (the newest, if several; if none, an event was lost: the
    newest)."""
    lives = []
    open_by_key = defaultdict(list)
    pending = []  # SYN_SENT events with an unbound source port
    for ev in evs:
        if ev["name"] != "inet_sock_set_state":
            continue
        old, new, key = ev["old"], ev["new"], (ev["local"], ev["remote"])
        if old == "LISTEN" and new == "SYN_RECV":
            life = {"role": "server", "local": ev["local"], "remote": ev["remote"], "events": [ev], "closed": False}
            lives.append(life)
            open_by_key[key].append(life)
            continue
        if new == "SYN_SENT":
            life = {"role": "client", "local": ev["local"], "remote": ev["remote"], "events": [ev], "closed": False}
            lives.append(life)
            if ev["local"][1] == 0:
                pending.append(life)
            else:
                open_by_key[key].append(life)
            continue
        if "LISTEN" in (old, new):
            continue
        mine = open_by_key[key]
        life = next((lf for lf in reversed(mine) if lf["events"][-1]["new"] == old), mine[-1] if mine else None)
        if life is None and old == "SYN_SENT":
            for p in pending:
                if p["remote"] == ev["remote"]:
                    pending.remove(p)
                    p["local"] = ev["local"]
                    life = p
                    open_by_key[key].append(p)
                    break
        if life is None:
            continue
        life["events"].append(ev)
        if new == "CLOSED":
            life["closed"] = True
            open_by_key[key].remove(life)
    return lives


class PcapIndex:
    def __init__(self, pkts):
        self.pkts = pkts
        self.by = defaultdict(list)
        for p in pkts:
            self.by[frozenset(((p.src, p.sport), (p.dst, p.dport)))].append(p)

    def conn(self, client, server, inc):
        """Packets of incarnation inc of the 4-tuple (split at each new client ISN)."""
        ps = self.by.get(frozenset((client, server)), [])
        incs, cur, isn = [], None, None
        for p in ps:
            if p.syn and not p.has_ack and (p.src, p.sport) == client and p.seq != isn:
                isn = p.seq
                cur = []
                incs.append(cur)
            if cur is None:
                cur = []
                incs.append(cur)
            cur.append(p)
        return incs[inc] if inc < len(incs) else []


def classify_retx(pk, local, ts):
    """Find the retransmitted segment sent by `local` near trace time ts."""
    seen = set()
    best = None
    for p in pk:
        if (p.src, p.sport) != local:
            continue
        span = (p.seq, p.plen + (1 if p.syn else 0) + (1 if p.fin else 0))
        if span[1] and span in seen and -0.001 <= p.ts - ts <= 0.3:
            if best is None or abs(p.ts - ts) < abs(best.ts - ts):
                best = p
        if span[1]:
            seen.add(span)
    if best is None:
        return None, None
    if best.syn:
        return ("SYN-ACK" if best.has_ack else "SYN"), best.ts
    if best.fin:
        return ("data+FIN" if best.plen else "FIN"), best.ts
    return "data", best.ts


def connect_failed(life, idx):
    """A connect() that failed with nothing on the wire (the 4-tuple held by a socket that
    tcp_tw_reuse could not take over: EADDRNOTAVAIL): SYN_SENT, then CLOSED at once, and no
    SYN of the client's between."""
    ev = life["events"]
    if len(ev) != 2 or ev[1]["new"] != "CLOSED" or ev[1]["ts"] - ev[0]["ts"] > 0.001:
        return False
    return not any(p.syn and not p.has_ack and (p.src, p.sport) == life["local"]
                   and ev[0]["ts"] - 0.002 <= p.ts <= ev[1]["ts"] + 0.002
                   for p in idx.by.get(frozenset((life["local"], life["remote"])), []))


def failed_connects(lives, idx):
    """The truth file's list of connect()s that put nothing on the wire."""
    return [{"client": {"ip": lf["local"][0], "port": lf["local"][1]},
             "server": {"ip": lf["remote"][0], "port": lf["remote"][1]},
             "ts": round(lf["events"][0]["ts"], 6),
             "note": "SYN_SENT, then CLOSED at once: connect() failed, its 4-tuple held by an older "
                     "socket (EADDRNOTAVAIL); no incarnation"}
            for lf in lives if lf["role"] == "client" and connect_failed(lf, idx)]


def split_taken_over(eps, lst, nexts):
    """A timewait socket taken over by the next incarnation of its 4-tuple (a connect() with
    tcp_tw_reuse, a SYN that a TIME_WAIT accepts), whose own timewait socket follows before
    the next poll, looks to /proc polling like one timewait socket throughout.  Split such an
    episode where the next socket's close hands over to its own: the older one ends at the
    next incarnation's start (``nexts``, per incarnation of one side)."""
    for inc in range(1, len(lst)):
        lf, taken = lst[inc], nexts[inc - 1]
        if taken is None:
            continue
        key = (lf["local"], lf["remote"])
        for ev in lf["events"]:
            if not (ev["new"] == "CLOSED" and ev["old"] in ("FIN_WAIT1", "FIN_WAIT2", "CLOSING")):
                continue
            h = ev["ts"]
            for i, ep in enumerate(eps.get(key, [])):
                if not (ep["start_t"] < taken < h and (ep["end_t"] is None or ep["end_t"] > h)):
                    continue
                before = [sub for sub in ep["subs"] if sub[0] <= h]
                after = [sub for sub in ep["subs"] if sub[0] > h]
                eps[key].insert(i + 1, {
                    "start_t": h, "start_prev_t": None, "continued": True,
                    "subs": after or [(h, None, before[-1][2])], "end_t": ep["end_t"],
                    "end_prev_t": ep["end_prev_t"], "claimed": False})
                ep["subs"] = [sub for sub in before if sub[0] <= taken]
                ep["end_t"] = ep["end_prev_t"] = taken
                ep["taken_over"] = True
                break


def side_record(life, evs, eps, pk, capture_end, role, peer_ep, next_start, syn_pk=None, syn_where=None):
    local, remote = life["local"], life["remote"]
    tr, notes = [], []
    state = "CLOSED"

    def add(frm, to, ts, evidence, **extra):
        nonlocal state
        t = {"from": frm, "to": to, "ts": round(ts, 6), "evidence": evidence}
        t.update(extra)
        tr.append(t)
        state = to

    peer_fin_ts = [p.ts for p in pk if (p.src, p.sport) == remote and p.fin]
    for i, ev in enumerate(life["events"]):
        old, new, ts = ev["old"], ev["new"], ev["ts"]
        if ts > capture_end:
            break
        if i == 0 and role == "server":
            syns = [p for p in (pk if syn_pk is None else syn_pk)
                    if p.syn and not p.has_ack and (p.src, p.sport) == remote and p.ts <= ts]
            if syns:
                where = "capture time of the client's SYN" if syn_where is None else \
                    f"time the client's SYN was captured on {syn_where}"
                add("CLOSED", "SYN_RECV", syns[0].ts, "inferred",
                    why=f"request sockets (NEW_SYN_RECV) are not traced: ts is the {where}; the child socket "
                        "was traced LISTEN->SYN_RECV at tracepoint_ts when the handshake's final ACK arrived",
                    tracepoint_ts=round(ts, 6))
            else:
                add("CLOSED", "SYN_RECV", ts, "tracepoint",
                    note="time the full child socket was created (handshake ACK), not the SYN")
            continue
        if i == 0:
            add("CLOSED", new, ts, "tracepoint")
            continue
        if new == "CLOSED" and old in ("FIN_WAIT1", "FIN_WAIT2", "CLOSING"):
            ep = None
            for e in eps.get((local, remote), []):
                if not e["claimed"] and ts - 0.002 <= e["start_t"] <= ts + 0.2:
                    ep = e
                    break
            if ep is None:
                add(old, "CLOSED", ts, "tracepoint",
                    note="no timewait socket for this 4-tuple was seen by /proc polling after this event")
                continue
            ep["claimed"] = True
            first_sub = ep["subs"][0][2]
            fin_before = any(f <= ts + 0.0002 for f in peer_fin_ts)
            if old == "CLOSING" or (first_sub == "TIME_WAIT" and fin_before):
                if ep.get("continued"):
                    add(old, "TIME_WAIT", ts, "tracepoint+proc_poll",
                        note=f"tracepoint {old}->CLOSE of the full socket = entry into TIME_WAIT; /proc polling "
                             "saw a timewait mini-socket on this 4-tuple throughout: the older incarnation's, "
                             "taken over when this one began, then this one's")
                else:
                    add(old, "TIME_WAIT", ts, "tracepoint+proc_poll",
                        proc_poll_ts=round(ep["start_t"], 6),
                        note=f"tracepoint {old}->CLOSE of the full socket = entry into TIME_WAIT; /proc polling "
                             "saw the timewait mini-socket")
                subs = ep["subs"][1:]
            else:
                notes.append(f"at {ts:.6f} the full socket (tracepoint FIN_WAIT2->CLOSE) was replaced by a "
                             f"timewait mini-socket with substate FIN_WAIT2 (orphaned socket, FIN acknowledged); "
                             f"/proc polling first saw it at {ep['start_t']:.6f} as {first_sub}")
                if old == "FIN_WAIT1":
                    add("FIN_WAIT1", "FIN_WAIT2", ts, "tracepoint+proc_poll")
                subs = ep["subs"] if first_sub != "FIN_WAIT2" else ep["subs"][1:]
                if first_sub == "TIME_WAIT":
                    # substate changed between handover and the first poll
                    subs = [(ep["start_t"], ts, "TIME_WAIT")] + ep["subs"][1:]
            for (t, pt, st) in subs:
                if t > capture_end:
                    break
                if st != state:
                    add(state, st, t, "proc_poll", window=[round(pt, 6) if pt else None, round(t, 6)],
                        note="timewait mini-socket substate change seen by /proc polling (not traced)")
            if ep.get("taken_over") and ep["end_t"] <= capture_end:
                add(state, "CLOSED", ep["end_t"], "tracepoint",
                    why="timewait socket taken over by the next incarnation of this 4-tuple",
                    note="the time the next incarnation began (its connect(), or its SYN in the capture); "
                         "/proc polling saw a timewait mini-socket on this 4-tuple throughout, this one's, "
                         "then the next incarnation's")
            elif ep["end_t"] is not None and ep["end_t"] <= capture_end:
                extra = {}
                if next_start is not None and abs(next_start - ep["end_t"]) < 0.05:
                    extra["why"] = "timewait socket taken over by the next incarnation of this 4-tuple"
                elif state == "FIN_WAIT2":
                    extra["why"] = "FIN_WAIT2 timeout (tcp_fin_timeout) expired or the mini-socket was killed"
                add(state, "CLOSED", ep["end_t"], "proc_poll",
                    window=[round(ep["end_prev_t"], 6) if ep["end_prev_t"] else None, round(ep["end_t"], 6)],
                    note="timewait mini-socket disappeared from /proc (expiry/kill is not traced)", **extra)
            continue
        add(old, new, ts, "tracepoint")
    start = life["events"][0]["ts"]
    end_lim = next_start if next_start is not None else float("inf")

    def mine(e):
        return e["local"] == local and e["remote"] == remote and start - 0.001 <= e["ts"] < end_lim \
            and e["ts"] <= capture_end

    rst_sent = [{"ts": round(e["ts"], 6), "reason": e.get("reason"), "sk_state": e.get("state"),
                 "evidence": "tracepoint"} for e in evs if e["name"] == "tcp_send_reset" and mine(e)]
    rst_recv = [{"ts": round(e["ts"], 6), "evidence": "tracepoint"}
                for e in evs if e["name"] == "tcp_receive_reset" and mine(e)]
    retx = []
    for e in evs:
        if e["name"] == "tcp_retransmit_skb" and mine(e):
            what, pts = classify_retx(pk, local, e["ts"])
            r = {"ts": round(e["ts"], 6), "what": what or "unknown", "sk_state": e.get("state"),
                 "evidence": "tracepoint"}
            if pts is not None:
                r["pcap_ts"] = round(pts, 6)
            retx.append(r)
    if state == "TIME_WAIT":
        notes.append("TIME_WAIT lasts 60 s; its re-ACKs, expiry and kill are not traced (check re-ACKs in the pcap)")
    return {
        "states": [t["to"] for t in tr],
        "transitions": tr,
        "final_state": state,
        "rst_sent": rst_sent,
        "rst_received": rst_recv,
        "retransmits": retx,
        "notes": notes,
    }


def rebuild_connections(truth_path):
    """The connections of a kept run's truth file built again, by the truth builder as it
    now is, from the run's record (kernel events and /proc polls, kept by the explorer:
    ``KEEP_RECORD``); None if the run kept no record."""
    truth_path = Path(truth_path)
    truth = json.loads(truth_path.read_text())
    if "record" not in truth:
        return None
    rec = json.loads((truth_path.parent / truth["record"]).read_text())
    for e in rec["events"] + rec["poll"]:
        for k in ("local", "remote"):
            if k in e:
                e[k] = tuple(e[k])
    pkts = pcapread.tcp_packets(truth_path.parent / truth["capture"])
    pk_s = pcapread.tcp_packets(truth_path.parent / rec["server_capture"])
    conns, lives, idx = build_truth(None, rec["events"], rec["poll"], pkts, rec["capture_end"], {},
                                    server_pkts=pk_s, server_where=rec["server_where"])
    return conns


def build_truth(sc, evs, poll_recs, pkts, capture_end, extra_marks, server_pkts=None, server_where=None):
    """server_pkts: packets captured on the server's own interface (multi-capture runs); the server's
    SYN_RECV time is then taken from there, so every output of one run has the same transitions."""
    lives = build_lives(evs)
    eps = tw_episodes(poll_recs)
    idx = PcapIndex(pkts)
    sidx = PcapIndex(server_pkts) if server_pkts is not None else None
    # pair client and server lives per 4-tuple in time order; a connect() that failed
    # before it sent anything is no incarnation
    groups = defaultdict(lambda: {"client": [], "server": []})
    for lf in lives:
        if lf["role"] == "client":
            if not connect_failed(lf, idx):
                groups[(lf["local"], lf["remote"])]["client"].append(lf)
        else:
            groups[(lf["remote"], lf["local"])]["server"].append(lf)
    conns = []
    for (cep, sep), g in groups.items():
        n = max(len(g["client"]), len(g["server"]))
        nexts = {}
        for inc in range(n):
            for role, lst in (("client", g["client"]), ("server", g["server"])):
                if inc >= len(lst):
                    continue
                nxt = lst[inc + 1]["events"][0]["ts"] if inc + 1 < len(lst) else None
                if nxt is None:
                    other = g["server" if role == "client" else "client"]
                    if inc + 1 < len(other):
                        nxt = other[inc + 1]["events"][0]["ts"]
                if role == "server" and nxt is not None:
                    # the next incarnation really started at its SYN (as the server got it)
                    npk = (sidx or idx).conn(cep, sep, inc + 1)
                    if npk:
                        nxt = min(nxt, npk[0].ts)
                nexts[role, inc] = nxt
        for role, lst in (("client", g["client"]), ("server", g["server"])):
            split_taken_over(eps, lst, [nexts.get((role, inc)) for inc in range(len(lst))])
        for inc in range(n):
            cl = g["client"][inc] if inc < len(g["client"]) else None
            sv = g["server"][inc] if inc < len(g["server"]) else None
            pk = idx.conn(cep, sep, inc)
            sides = {}
            for role, lf in (("client", cl), ("server", sv)):
                if lf is None:
                    sides[role] = {"states": [], "transitions": [], "final_state": None, "rst_sent": [],
                                   "rst_received": [], "retransmits": [],
                                   "notes": ["no full socket for this side was traced"]}
                    continue
                sides[role] = side_record(lf, evs, eps, pk, capture_end, role, sep if role == "client" else cep,
                                          nexts[role, inc], syn_pk=sidx.conn(cep, sep, inc) if sidx else None,
                                          syn_where=server_where if sidx else None)
            start = min(lf["events"][0]["ts"] for lf in (cl, sv) if lf is not None)
            conns.append({
                "client": {"ip": cep[0], "port": cep[1]},
                "server": {"ip": sep[0], "port": sep[1]},
                "incarnation": inc,
                "start_ts": round(start, 6),
                "packets_in_capture": len(pk),
                "sides": sides,
            })
    conns.sort(key=lambda c: c["start_ts"])
    for c in conns:
        c["close"] = classify_close(c, idx)
    kinds = extra_marks.get("scripted_kind")
    if kinds:
        for c in conns:
            c["scripted_kind"] = kinds.get(c["client"]["port"])
    return conns, lives, idx


def classify_close(c, idx):
    """Kind of close and initiator, from the kernel record (plus the capture
    for 'data after the first FIN' = half-close)."""
    sides = c["sides"]

    def first(role, pred):
        ts = [t["ts"] for t in sides[role]["transitions"] if pred(t)]
        return min(ts) if ts else None

    fw1 = {r: first(r, lambda t: t["to"] == "FIN_WAIT1") for r in sides}
    lack = {r: first(r, lambda t: t["to"] == "LAST_ACK") for r in sides}
    rst = {r: min([x["ts"] for x in sides[r]["rst_sent"]] or [None], key=lambda v: v or 0) for r in sides}
    closing = [r for r in sides if "CLOSING" in sides[r]["states"]]
    fins = {r: v for r, v in fw1.items() if v is not None}
    out = {"evidence": "derived from the transitions above"}
    if fins:
        init = min(fins, key=fins.get)
    elif any(rst.values()):
        init = min((r for r in rst if rst[r]), key=lambda r: rst[r])
    else:
        init = None
    out["initiator"] = "both" if len(closing) == 2 else init
    any_rst = any(sides[r]["rst_sent"] or sides[r]["rst_received"] for r in sides)
    if len(closing) == 2:
        out["kind"] = "simultaneous"
    elif any_rst and not fins and not any(lack.values()):
        out["kind"] = "rst"
    elif any_rst:
        out["kind"] = "fin-then-rst"
    elif init is None:
        out["kind"] = "open"
    else:
        other = "server" if init == "client" else "client"
        done = sides[init]["final_state"] in ("TIME_WAIT", "CLOSED") and \
            sides[other]["final_state"] in ("TIME_WAIT", "CLOSED")
        if not done:
            out["kind"] = "half-open"
        else:
            tr = sides[init]["transitions"]
            f2 = first(init, lambda t: t["from"] == "FIN_WAIT1" and t["to"] == "FIN_WAIT2")
            tw = first(init, lambda t: t["to"] == "TIME_WAIT")
            three = f2 is not None and tw is not None and tw - f2 < 0.001 and any(
                t["to"] == "TIME_WAIT" and t["evidence"].startswith("tracepoint") for t in tr)
            out["kind"] = "three-way" if three else "four-way"
            pk = idx.conn((c["client"]["ip"], c["client"]["port"]), (c["server"]["ip"], c["server"]["port"]),
                          c["incarnation"])
            iep = (c[init]["ip"], c[init]["port"])
            ifin = [p.ts for p in pk if (p.src, p.sport) == iep and p.fin]
            if ifin and any(p.plen > 0 and (p.src, p.sport) != iep and p.ts > ifin[0] for p in pk):
                out["half_close"] = True
                out["evidence"] += "; the peer sent data after the initiator's FIN (pcap)"
    return out


def alignment(vantage, lives, idx, conns):
    """Trace-vs-pcap error on the handshake, in microseconds (trace - pcap)."""
    errs = []
    for c in conns:
        cep = (c["client"]["ip"], c["client"]["port"])
        sep = (c["server"]["ip"], c["server"]["port"])
        pk = idx.conn(cep, sep, c["incarnation"])
        if vantage == "server":
            side = c["sides"]["server"]
            est = [t for t in side["transitions"] if t["to"] == "ESTABLISHED"]
            synack = [p for p in pk if p.syn and p.has_ack]
            acks = [p for p in pk if synack and (p.src, p.sport) == cep and p.has_ack and not p.syn
                    and p.ts >= synack[0].ts]
            if est and acks:
                errs.append((est[0]["ts"] - acks[0].ts) * 1e6)
        else:
            side = c["sides"]["client"]
            est = [t for t in side["transitions"] if t["from"] == "SYN_SENT" and t["to"] == "ESTABLISHED"]
            synack = [p for p in pk if p.syn and p.has_ack]
            if est and synack:
                errs.append((est[0]["ts"] - synack[-1].ts) * 1e6)
    checked = "server's handshake ACK" if vantage == "server" else "client SYN-ACK"
    return errs, checked


# ------------------------------------------------------------------- runner

def truth_doc(sc, env, name, out_name, description, analysis, vantage, capture_interface, out_cap, errs, checked,
              worst, conns):
    """The truth file's common part (see sample_pcaps/README.md for the format)."""
    topo, tracer, poll_summary = env["topo"], env["tracer"], env["poll_summary"]
    changed = {}
    for ns, kv in sc.sysctls.items():
        for k, v in kv.items():
            changed[k] = v
            changed.setdefault("_namespaces", {})[k] = "client" if ns == NS_C else "server"
    return {
        "scenario": name,
        "capture": out_name,
        "description": description,
        "analysis": analysis,
        "close_kind": sc.kind,
        "initiator": sc.initiator,
        "vantage": vantage,
        "kernel": kernel_release(),
        "clock": {
            "trace_clock": tracer.clock,
            "alignment_error_us": round(worst, 1),
            "alignment_errors_us": {"n": len(errs), "median": round(statistics.median(errs), 1),
                                    "min": round(min(errs), 1), "max": round(max(errs), 1)},
            "checked_on": checked,
            "realtime_minus_mono_s": round(env["offset"], 9),
            "offset_drift_us": round((env["off2"] - env["off1"]) * 1e6, 3),
            "offset_bracket_us": round(env["br"], 3),
        },
        "capture_end_ts": round(env["capture_end"], 6),
        "capture_format": {"format": out_cap.fmt, "linktype": out_cap.linktypes[0],
                           "nanosecond": out_cap.nanosecond, "records": len(out_cap.records)},
        "topology": {"kind": sc.topo, "client_ip": topo.c4, "server_ip": topo.s4,
                     "client_ip6": topo.c6, "server_ip6": topo.s6,
                     "capture_interface": capture_interface},
        "sysctls": changed,
        "evidence_sources": {
            "tracepoint": "ftrace sock:inet_sock_set_state, tcp:tcp_send_reset, tcp:tcp_receive_reset, "
                          "tcp:tcp_retransmit_skb (private instance, trace_clock mono, shifted by "
                          "realtime_minus_mono_s; when offset_drift_us is not 0, by the offset "
                          "interpolated between the readings before and after the run)",
            "proc_poll": f"/proc/PID/net/tcp and tcp6 of each namespace polled every "
                         f"{POLL_INTERVAL * 1000:.0f} ms (polls: {poll_summary['polls'] if poll_summary else '?'}, "
                         f"max gap {poll_summary['max_gap_s'] * 1000 if poll_summary else 0:.1f} ms)",
        },
        "trace_overruns": env["overruns"],
        "connections": conns,
    }


def _pkt_key(p):
    return (p.src, p.sport, p.dst, p.dport, p.seq, p.ack, p.flags, p.plen)


def path_delays(pk_c, pk_s, cep):
    """One-way delays between the client's and the server's capture, matched segment by segment
    (both tcpdumps stamp with the same host CLOCK_REALTIME)."""
    first_s = {}
    for p in pk_s:
        first_s.setdefault(_pkt_key(p), p.ts)
    seen, c2s, s2c = set(), [], []
    for p in pk_c:
        k = _pkt_key(p)
        if k in seen or k not in first_s:
            continue
        seen.add(k)
        if (p.src, p.sport) == cep:
            c2s.append((first_s[k] - p.ts) * 1e3)
        else:
            s2c.append((p.ts - first_s[k]) * 1e3)

    def st(v):
        return {"n": len(v), "median": round(statistics.median(v), 3), "min": round(min(v), 3),
                "max": round(max(v), 3)} if v else None
    return st(c2s), st(s2c), c2s + s2c


def handshake_gaps(pk):
    """(SYN->SYN-ACK, SYN-ACK->ACK) at one capture point, in ms (first handshake)."""
    syn = [p for p in pk if p.syn and not p.has_ack]
    if not syn:
        return None
    cep = (syn[0].src, syn[0].sport)
    sa = [p for p in pk if p.syn and p.has_ack and p.ts >= syn[0].ts]
    if not sa:
        return None
    ack = [p for p in pk if (p.src, p.sport) == cep and p.has_ack and not p.syn and p.ts >= sa[0].ts]
    if not ack:
        return None
    return round((sa[0].ts - syn[0].ts) * 1e3, 3), round((ack[0].ts - sa[0].ts) * 1e3, 3)


def write_outputs(sc, env, evs, poll_recs, caps, marks):
    """A multi-capture run: write every output of sc.outputs with its own truth file."""
    topo = env["topo"]
    cli_path, srv_path = caps[0].path, caps[1].path
    pk_c, pk_s = pcapread.tcp_packets(cli_path), pcapread.tcp_packets(srv_path)
    server_where = f"the server's interface ({topo.sdev})"
    OUT.mkdir(exist_ok=True)
    # how far apart the two capture points are (the path between them), measured from the captures
    syn = [p for p in pk_c if p.syn and not p.has_ack]
    cep = (syn[0].src, syn[0].sport) if syn else None
    c2s, s2c, both = path_delays(pk_c, pk_s, cep)
    configured = DELAY_MS if sc.topo == "delay" else 0
    gaps_c, gaps_s = handshake_gaps(pk_c), handshake_gaps(pk_s)
    path = {
        "one_way": round(statistics.median(both), 2) if both else None,
        "configured_one_way": configured,
        "measured_one_way": {"client_to_server": c2s, "server_to_client": s2c},
        "rtt_handshake": {"client_capture_syn_to_synack": gaps_c[0] if gaps_c else None,
                          "server_capture_synack_to_ack": gaps_s[1] if gaps_s else None},
        "how": "each segment matched between the client-interface and server-interface captures (same host "
               "clock); one-way delay = capture time at the receiver's interface minus at the sender's",
    }
    if env.get("fwd_stats"):
        path["forwarder"] = env["fwd_stats"]
    names = [o["name"] for o in sc.outputs]
    written = []
    if KEEP_RECORD:
        with open(OUT / f"{sc.name}.record.json", "w") as f:
            json.dump({"events": evs, "poll": poll_recs, "capture_end": env["capture_end"],
                       "server_capture": f"{sc.outputs[1]['name']}.{sc.outputs[1].get('ext', 'pcap')}",
                       "server_where": server_where}, f)
            f.write("\n")
    for o in sc.outputs:
        out_name = f"{o['name']}.{o.get('ext', 'pcap')}"
        out_path = OUT / out_name
        if o["source"] == "client":
            shutil.copyfile(cli_path, out_path)
            iface = topo.cdev
        elif o["source"] == "server":
            shutil.copyfile(srv_path, out_path)
            iface = topo.sdev
        else:  # merged: one pcapng, interface 0 = client veth, interface 1 = server veth
            cc, cs = pcapread.read_capture(cli_path), pcapread.read_capture(srv_path)
            for r in cc.records:
                r.ifid = 0
            for r in cs.records:
                r.ifid = 1
            recs = sorted(cc.records + cs.records, key=lambda r: (r.ts_ns, r.ifid))
            pcapread.write_pcapng(out_path, [
                {"linktype": cc.linktypes[0], "snaplen": cc.snaplen, "name": topo.cdev,
                 "description": "client veth (tdg-cli)"},
                {"linktype": cs.linktypes[0], "snaplen": cs.snaplen, "name": topo.sdev,
                 "description": "server veth (tdg-srv)"}],
                recs, shb_comment=f"teardown-analyzer sample {o['name']}: one connection captured on the "
                                  f"client's and the server's interface, merged by timestamp")
            iface = f"{topo.cdev}+{topo.sdev}"
        pkts = pcapread.tcp_packets(out_path)
        conns, lives, idx = build_truth(sc, evs, poll_recs, pkts, env["capture_end"], marks,
                                        server_pkts=pk_s, server_where=server_where)
        errs, checked = alignment(o["vantage"], lives, idx, conns)
        if not errs:
            raise RuntimeError(f"{o['name']}: could not check clock alignment (no handshake found)")
        worst = max(errs, key=abs)
        if abs(worst) > 2000:
            log(f"  WARNING: clock alignment error {worst:.1f} us")
        out_cap = pcapread.read_capture(out_path)
        truth = truth_doc(sc, env, o["name"], out_name, o["description"], o["analysis"], o["vantage"], iface,
                          out_cap, errs, checked, worst, conns)
        if o["source"] == "merged":
            truth["capture_format"]["interfaces"] = [
                {"id": 0, "name": topo.cdev, "side": "client"}, {"id": 1, "name": topo.sdev, "side": "server"}]
            truth["duplicated_packets"] = ("every packet appears twice: interface 0 (client veth) and interface 1 "
                                           "(server veth), merged by timestamp")
        truth["topology"]["path"] = ("client veth -- tdg_fwd.py delay (tdg-mid) -- server veth"
                                     if sc.topo == "delay" else "client veth <-> server veth (one veth pair)")
        truth["path_delay_ms"] = path
        truth["same_run_as"] = [n for n in names if n != o["name"]]
        if KEEP_RECORD:
            truth["record"] = f"{sc.name}.record.json"
        if failed_connects(lives, idx):
            truth["connects_failed"] = failed_connects(lives, idx)
        with open(OUT / f"{o['name']}.truth.json", "w") as f:
            json.dump(truth, f, indent=1)
            f.write("\n")
        c = conns[0]
        log(f"  {out_name}: {len(out_cap.records)} packets, {len(conns)} connection(s), align {worst:.1f} us"
            + ("" if not env["overruns"] else f", TRACE OVERRUNS {env['overruns']}"))
        log(f"    {c['client']['port']}#{c['incarnation']}: client {'>'.join(c['sides']['client']['states'])}"
            f" | server {'>'.join(c['sides']['server']['states'])}")
        written.append(truth)
    log(f"  path: one-way {path['one_way']} ms (configured {configured}), c->s {c2s and c2s['median']} ms, "
        f"s->c {s2c and s2c['median']} ms; handshake gaps client {gaps_c}, server {gaps_s}")
    if sc.expect:
        for t in written:
            sc.expect(t)
    return written



def kernel_release():
    return os.uname().release


def run_scenario(sc: Scenario, tracer: Tracer, workdir: Path):
    log(f"scenario {sc.name} ...")
    topo = Topology(sc.topo)
    agents, caps, poller = [], [], None
    tmp = workdir / sc.name
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        topo.setup()
        for ns, kv in sc.sysctls.items():
            for k, v in kv.items():
                sh(["sysctl", "-qw", f"{k}={v}"], ns=ns)
        cli = Agent(topo.ns_c, "client")
        srv = cli if sc.topo == "host" else Agent(topo.ns_s, "server")
        agents = [cli] if srv is cli else [cli, srv]
        poll_out = tmp / "poll.jsonl"
        if sc.topo == "host":
            poll_args = [f"host={cli.pid}", "--port", "5099"]
        else:
            poll_args = [f"cli={cli.pid}", f"srv={srv.pid}"]
        poller = subprocess.Popen([PY, str(HERE / "tdg_procpoll.py"), str(poll_out), str(POLL_INTERVAL)] + poll_args)
        off1, br1, mono1 = clock_offset(when=True)
        tracer.start()
        filt = "tcp"
        if sc.outputs:  # one run, captured on both hosts' own interfaces at the same time
            caps.append(Capture(NS_C, topo.cdev, tmp / "cap.pcap", filt=filt, snaplen=sc.snaplen,
                                tool=sc.capture))
            caps.append(Capture(NS_S, topo.sdev, tmp / "cap_srv.pcap", filt=filt, snaplen=sc.snaplen,
                                tool=sc.capture))
        elif sc.topo == "vlan":
            caps.append(Capture(NS_M, "tdgta", tmp / "cap.pcap", filt="vlan and tcp"))
        elif sc.topo == "host":
            caps.append(Capture(None, "lo", tmp / "cap.pcap", filt="tcp port 5099"))
        elif sc.vantage == "any":
            caps.append(Capture(NS_C, "any", tmp / "cap.pcap", filt=filt, linktype=sc.linktype))
        elif sc.vantage == "server":
            caps.append(Capture(NS_S, topo.sdev, tmp / "cap.pcap", filt=filt, nano=sc.nano,
                                snaplen=sc.snaplen))
        else:
            caps.append(Capture(NS_C, topo.cdev, tmp / "cap.pcap", filt=filt, nano=sc.nano,
                                snaplen=sc.snaplen))
            if sc.vantage == "both":
                caps.append(Capture(NS_S, topo.sdev, tmp / "cap_srv.pcap", filt=filt))
        time.sleep(0.3)  # let the poller settle
        x = Ctx(topo, cli, srv, sc)
        t_start = time.time()
        sc.body(x)
        time.sleep(sc.tail)
        capture_end = time.time()
        for c in caps:  # (all at once: a capture still running while another stops sees
            c.interrupt()  # packets after capture_end)
        for c in caps:
            c.stop()
        trace_text, overruns = tracer.stop()
        _kill(poller, signal.SIGTERM)
        poller = None
        off2, br2, mono2 = clock_offset(when=True)
        offset = (off1 + off2) / 2
        evs = parse_trace(trace_text, ((mono1, off1), (mono2, off2)))
        if sc.topo == "host":
            evs = [e for e in evs if 5099 in (e["local"][1], e["remote"][1])]
        else:
            nets = [ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("fd00::/8")]
            evs = [e for e in evs if any(ipaddress.ip_address(e["local"][0]) in n for n in nets)]
        evs = [e for e in evs if e["ts"] >= t_start - 1.0]
        poll_recs, poll_summary = load_poll(poll_out)
        if sc.outputs:
            fwd_stats = topo.stop_fwd()
            env = {"tracer": tracer, "offset": offset, "off1": off1, "off2": off2, "br": max(br1, br2),
                   "overruns": overruns, "capture_end": capture_end, "topo": topo, "poll_summary": poll_summary,
                   "fwd_stats": fwd_stats}
            return write_outputs(sc, env, evs, poll_recs, caps, x.marks)
        pkts = pcapread.tcp_packets(caps[0].path)
        conns, lives, idx = build_truth(sc, evs, poll_recs, pkts, capture_end, x.marks)
        errs, checked = alignment(sc.vantage, lives, idx, conns)
        if not errs:
            raise RuntimeError("could not check clock alignment (no handshake found)")
        worst = max(errs, key=abs)
        if abs(worst) > 2000:
            log(f"  WARNING: clock alignment error {worst:.1f} us")
        # write outputs
        OUT.mkdir(exist_ok=True)
        out_name = f"{sc.name}.{sc.ext}"
        out_path = OUT / out_name
        cap0 = pcapread.read_capture(caps[0].path)
        if sc.vantage == "both":
            cap1 = pcapread.read_capture(caps[1].path)
            recs = sorted(cap0.records + cap1.records, key=lambda r: r.ts_ns)
            pcapread.write_pcap(out_path, cap0.linktypes[0], cap0.snaplen, recs)
        elif sc.ext == "pcapng":
            pcapread.write_pcapng(out_path, [{"linktype": cap0.linktypes[0], "snaplen": cap0.snaplen,
                                              "name": topo.cdev, "description": "client veth (tdg-cli)"}],
                                  cap0.records, shb_comment=f"teardown-analyzer sample {sc.name}")
        else:
            shutil.copyfile(caps[0].path, out_path)
        out_cap = pcapread.read_capture(out_path)
        capture_interface = {"veth": topo.sdev if sc.vantage == "server" else topo.cdev,
                             "vlan": "tdgta (trunk, tdg-mid)", "tun": topo.cdev,
                             "host": "lo"}[sc.topo] if sc.vantage not in ("any", "both") \
            else ("any" if sc.vantage == "any" else f"{topo.cdev}+{topo.sdev}")
        env = {"tracer": tracer, "offset": offset, "off1": off1, "off2": off2, "br": max(br1, br2),
               "overruns": overruns, "capture_end": capture_end, "topo": topo, "poll_summary": poll_summary}
        truth = truth_doc(sc, env, sc.name, out_name, sc.description, sc.analysis, sc.vantage, capture_interface,
                          out_cap, errs, checked, worst, conns)
        if failed_connects(lives, idx):
            truth["connects_failed"] = failed_connects(lives, idx)
        if sc.vantage == "both":
            truth["duplicated_packets"] = ("every packet appears twice: once from the client's veth and once "
                                           "from the server's veth capture, merged by timestamp")
        with open(OUT / f"{sc.name}.truth.json", "w") as f:
            json.dump(truth, f, indent=1)
            f.write("\n")
        summary = []
        for c in conns[:3]:
            summary.append(f"{c['client']['port']}#{c['incarnation']}: client {'>'.join(c['sides']['client']['states'])}"
                           f" | server {'>'.join(c['sides']['server']['states'])}")
        log(f"  {out_name}: {len(out_cap.records)} packets, {len(conns)} connection(s), "
            f"align {worst:.1f} us" + ("" if not overruns else f", TRACE OVERRUNS {overruns}"))
        for s in summary:
            log("   ", s)
        if sc.expect:
            sc.expect(truth)
        return truth
    finally:
        for c in caps:
            try:
                c.stop()
            except Exception:
                pass
        if poller is not None:
            _kill(poller)
        for a in agents:
            a.close()
        topo.teardown()


def main(argv=None):
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these scenarios")
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary work directory")
    ap.add_argument("--no-check", action="store_true",
                    help="do not run tests/test_sample_truth.py on the result")
    a = ap.parse_args(argv)
    VERBOSE = a.verbose
    if a.list:
        for n, s in SCENARIOS.items():
            print(f"{n:22s} {s.description[:90]}...")
            for o in s.outputs:
                print(f"  -> {o['name']}.{o.get('ext', 'pcap')}")
        return 0
    # an output name of a multi-capture scenario selects its run (e.g. vantage_client -> vantage)
    alias = {o["name"]: n for n, s in SCENARIOS.items() for o in s.outputs}
    names = []
    for n in (a.only or list(SCENARIOS)):
        n = alias.get(n, n)
        if n not in names:
            names.append(n)
    bad = [n for n in names if n not in SCENARIOS]
    if bad:
        print("unknown scenario(s):", ", ".join(bad), "\navailable:", ", ".join(SCENARIOS), file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("gen_samples.py needs root (network namespaces, tcpdump, tracefs, nftables).\n"
              "Please re-run as root, e.g.:  sudo python3 tools/gen_samples.py", file=sys.stderr)
        return 1
    ensure_tools()
    tracer = Tracer()
    workdir = Path(tempfile.mkdtemp(prefix="tdg-work-"))

    def cleanup():
        tracer.teardown()
        Topology.cleanup_stale()
        if not a.keep_work:
            shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    Topology.cleanup_stale()
    tracer.setup()
    failed = []
    for n in names:
        try:
            run_scenario(SCENARIOS[n], tracer, workdir)
        except Exception as e:  # keep going; report at the end
            import traceback
            traceback.print_exc()
            failed.append((n, str(e).splitlines()[0] if str(e) else type(e).__name__))
    if failed:
        log("FAILED:", ", ".join(f"{n} ({m})" for n, m in failed))
        return 1
    log("done:", len(names), "scenario(s) written to", OUT)
    test = ROOT / "tests" / "test_sample_truth.py"
    if not a.no_check and test.exists():
        try:
            import pytest  # noqa: F401
        except ImportError:
            log("pytest not installed; check the result with: python3 -m pytest tests/test_sample_truth.py")
            return 0
        log("checking every scenario's behaviour: pytest", test.relative_to(ROOT))
        r = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)], cwd=ROOT)
        if r.returncode != 0:
            log("FAILED: a scenario did not show the behaviour it is named for (see above)")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
