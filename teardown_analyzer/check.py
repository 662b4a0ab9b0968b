"""Teardown rules for CI gates: parse them, evaluate them against analysed connections.

A :class:`Rule` is data: a name, a severity, a ``where`` scope and conditions.
Every condition is one entry of :data:`CONDITIONS`: how to parse its value (from a
rules file or a command-line option, one parser for both), one small function
``(connection, value) -> evidence or None``, and which connections the facts the
analysis codes for every connection (kind, initiator, TIME_WAIT side, RSTs, FIN
retransmissions, half-close) show to pass without being summarised
(:attr:`Condition.clears`: a check of a large capture summarises only the others; a
scope by port or address is read from each connection's stored endpoints).  The
rules-file parser and the inline options both build rules from that one registry;
nothing here knows about click, files or the terminal.

A condition judges only connections it can say something about: ``time_wait_on``
passes a connection with no TIME_WAIT at all (a RST), ``initiator`` passes one that
was never closed; a simultaneous close (TIME_WAIT and initiator "both") satisfies
``time_wait_on`` either way.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from .analysis import KINDS, ConnectionResult, Report, StateEntry, endpoints
from .errors import UsageError
from .results import FIN_RETX_CAP, HALF_CAP, HALF_NONE, INITIATORS, TIME_WAIT_SIDES, Facts

SEVERITIES = ("error", "warning")
SIDES = ("client", "server")

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- values ------------------------------------------------------------------------------

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s|m)\s*")


@dataclass(frozen=True, slots=True)
class Duration:
    """A duration as written (``"2s"``) and in integer nanoseconds."""

    text: str
    ns: int


def parse_duration(value: Any) -> Duration:
    """``500ms``, ``2s``, ``1.5s``, ``250us``, ``1m`` (also ``ns``); a unit is required."""
    if isinstance(value, str):
        m = _DURATION.fullmatch(value)
        if m:
            ns = round(float(m.group(1)) * _UNITS[m.group(2)])
            return Duration(value.strip(), ns)
    raise ValueError(f"bad duration {value!r} (a number and a unit: 500ms, 2s, 1.5s, 250us, "
                     f"1m)")


def _names(value: Any, allowed: Sequence[str]) -> tuple[str, ...]:
    """One name or several (a list, or a comma-separated string), each one of ``allowed``."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(f"expected one or more of {', '.join(allowed)}, got {value!r}")
    out = []
    for item in items:
        name = item.strip() if isinstance(item, str) else item
        if name not in allowed:
            raise ValueError(f"{name!r} is not one of {', '.join(allowed)}")
        out.append(name)
    return tuple(out)


def _side(value: Any) -> str:
    if value not in SIDES:
        raise ValueError(f"expected client or server, got {value!r}")
    return str(value)


def _count(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"expected a whole number >= 0, got {value!r}")


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _port(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
        return value
    raise ValueError(f"{value!r} is not a port number")


def _net(value: Any) -> IPNet:
    try:
        return ipaddress.ip_network(value, strict=False)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not an IP address or network") from None


def _many(one: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    def parse(value: Any) -> tuple[Any, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValueError("empty list")
        return tuple(one(v) for v in items)
    return parse


# --- the connection, in words ------------------------------------------------------------

def endpoint(ep: tuple[str, int]) -> str:
    ip, port = ep
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def four_tuple(c: "ConnectionResult | Subject") -> str:
    return f"{endpoint(c.client)} -> {endpoint(c.server)}"


def _s(seconds: float) -> str:
    return f"{seconds:.3f} s"


def _fin(c: ConnectionResult, side: str) -> dict[str, Any] | None:
    fin: dict[str, Any] | None = c.directions[side]["fin"]
    return fin


def _first_fin(c: ConnectionResult) -> tuple[str, dict[str, Any]] | None:
    fins = [(f["ts"], side, f) for side in SIDES if (f := _fin(c, side)) is not None]
    if not fins:
        return None
    _, side, fin = min(fins, key=lambda x: x[0])
    return side, fin


def _entered(states: Iterable[StateEntry], state: str) -> StateEntry | None:
    return next((s for s in states if s.state == state), None)


# --- the conditions: connection -> evidence of a violation, or None ----------------------

def _no_rst(c: ConnectionResult, on: bool) -> str | None:
    if not on or not c.rsts:
        return None
    first = c.rsts[0]
    text = f"RST from {first['from']} at packet {first['packet']}"
    if len(c.rsts) > 1:
        more = ", ".join(str(r["packet"]) for r in c.rsts[1:])
        text += f" (and {len(c.rsts) - 1} more: packet {more})"
    return text


def _initiator(c: ConnectionResult, allowed: tuple[str, ...]) -> str | None:
    if c.initiator is None or c.initiator in allowed:
        return None
    if c.kind == "rst":
        how = f"RST at packet {c.rsts[0]['packet']}" if c.rsts else "RST"
    elif c.initiator == "both":
        how = "simultaneous close"
    else:
        first = _first_fin(c)
        how = f"first FIN at packet {first[1]['packet']}" if first else c.kind
    return f"closed by {c.initiator} ({how}), expected {' or '.join(allowed)}"


def _time_wait_on(c: ConnectionResult, side: str) -> str | None:
    tw = c.time_wait
    if tw is None or tw["side"] in (side, "both"):
        return None
    return (f"TIME_WAIT on {tw['side']} (entered at packet {tw['entered_packet']}), "
            f"expected on the {side}")


def _max_half_close(c: ConnectionResult, limit: Duration) -> str | None:
    if c.half_close_s is None or round(c.half_close_s * 1e9) <= limit.ns:
        return None
    first = _first_fin(c)
    start = f"packet {first[1]['packet']}" if first else "the first FIN"
    second = _fin(c, "server" if first and first[0] == "client" else "client")
    if second is not None and c.kind != "half-open":
        end = f"packet {second['packet']}"
    else:
        end = "the capture's last packet, no second FIN"
    return f"half-close {_s(c.half_close_s)} ({start} to {end}) > {limit.text}"


def _no_half_open(c: ConnectionResult, on: bool) -> str | None:
    if not on or c.kind != "half-open":
        return None
    first = _first_fin(c)
    if first is None:  # pragma: no cover - a half-open close has one FIN by definition
        return "half-open"
    closer, fin = first
    other = "server" if closer == "client" else "client"
    states = c.server_states if other == "server" else c.client_states
    cw = _entered(states, "CLOSE_WAIT")
    since = f"packet {cw.packet}" if cw else f"the {closer}'s FIN at packet {fin['packet']}"
    # the analysis ends a half-close at the capture's last packet: "at least"
    held = f" for at least {_s(c.half_close_s)}" if c.half_close_s is not None else ""
    return (f"half-open: {other} left in CLOSE_WAIT{held} (since {since}, to the capture's "
            f"last packet), no FIN from the {other}")


def _kind(c: ConnectionResult, allowed: tuple[str, ...]) -> str | None:
    if c.kind in allowed:
        return None
    return f"close kind {c.kind}, expected {' or '.join(allowed)}"


def _max_fin_retransmits(c: ConnectionResult, limit: int) -> str | None:
    bad = []
    for side in SIDES:
        fin = _fin(c, side)
        retx = fin["retransmissions"] if fin else []
        if len(retx) > limit:
            pkts = ", ".join(str(r["packet"]) for r in retx)
            times = "time" if len(retx) == 1 else "times"
            bad.append(f"{side}'s FIN (packet {fin['packet'] if fin else '?'}) retransmitted "
                       f"{len(retx)} {times} (packet {pkts}) > {limit}")
    return "; ".join(bad) or None


# --- what the coded facts alone show to pass (no connection decoded) --------------------
# Each takes the facts of every connection (results.Facts) and the condition's value, and
# marks the connections its test above passes for sure; the others are decoded and tested.

def _among(codes: Any, names: Sequence[str | None], values: Iterable[str | None]) -> Any:
    """Which of ``codes`` (indices into ``names``) name one of ``values``."""
    import numpy as np
    return np.isin(codes, [names.index(v) for v in values])


def _kinds(facts: Facts, kinds: Iterable[str]) -> Any:
    return _among(facts.kind, KINDS, kinds)


def _clears_max_half_close(facts: Facts, limit: Duration) -> Any:
    # (one at the limit is decoded, for the rounding of the seconds the test reads; one
    # at HALF_CAP, that long or longer, too)
    half = facts.half_close_ns
    return (half == HALF_NONE) | (half < min(limit.ns, HALF_CAP))


def _clears_time_wait_on(facts: Facts, side: str) -> Any:
    return _among(facts.time_wait, TIME_WAIT_SIDES, (None, side, "both"))


def _clears_initiator(facts: Facts, allowed: tuple[str, ...]) -> Any:
    return _among(facts.initiator, INITIATORS, (None, *allowed))


@dataclass(frozen=True, slots=True)
class Condition:
    """One kind of check: its key in a rules file, its option, its parser and its test."""

    key: str
    parse: Callable[[Any], Any]
    """Rules-file value or option text -> the value ``test`` takes; ValueError if bad."""
    test: Callable[[ConnectionResult, Any], str | None]
    """(connection, value) -> the evidence of a violation, or None."""
    help: str
    metavar: str = ""
    """Empty for an on/off condition (a flag on the command line)."""
    clears: Callable[[Facts, Any], Any] | None = None
    """(facts of every connection, value) -> a bool array: the connections that pass
    ``test`` for sure, known without decoding them; None: every one is decoded."""

    @property
    def option(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def flag(self) -> bool:
        return not self.metavar


CONDITIONS: dict[str, Condition] = {c.key: c for c in (
    Condition("no_rst", _flag, _no_rst, "No connection may send a RST.",
              clears=lambda f, _: f.rsts == 0),
    Condition("initiator", lambda v: _names(v, INITIATORS[1:]), _initiator,
              "Who may close first: client, server, both (simultaneous); comma-separated.",
              "SIDE[,SIDE]", _clears_initiator),
    Condition("time_wait_on", _side, _time_wait_on,
              "The side that must hold TIME_WAIT: client or server (no TIME_WAIT at all, "
              "e.g. a RST, passes; a simultaneous close passes either).", "SIDE",
              _clears_time_wait_on),
    Condition("max_half_close", parse_duration, _max_half_close,
              "Longest allowed half-close (first FIN to second FIN, or to the end of the "
              "capture): 500ms, 2s, 1.5s, 250us, 1m.", "DURATION", _clears_max_half_close),
    Condition("no_half_open", _flag, _no_half_open,
              "No connection may end half-open (one FIN, the peer left in CLOSE_WAIT).",
              clears=lambda f, _: ~_kinds(f, ("half-open",))),
    Condition("kind", lambda v: _names(v, KINDS), _kind,
              f"Allowed close kinds, comma-separated: {', '.join(KINDS)}.", "KIND[,KIND]",
              _kinds),
    Condition("max_fin_retransmits", _count, _max_fin_retransmits,
              "Most retransmissions allowed of either side's FIN.", "N",
              lambda f, limit: f.fin_retransmits <= min(limit, FIN_RETX_CAP - 1)),
)}


# --- rules and their scope ---------------------------------------------------------------

@functools.lru_cache(maxsize=1 << 16)
def _ip_in(ip: str, nets: tuple[IPNet, ...]) -> bool:
    return any(ipaddress.ip_address(ip) in n for n in nets)


@dataclass(frozen=True, slots=True)
class Where:
    """Which connections a rule applies to; an empty field matches every connection."""

    server_port: tuple[int, ...] = ()
    client_port: tuple[int, ...] = ()
    server_ip: tuple[IPNet, ...] = ()
    client_ip: tuple[IPNet, ...] = ()
    kind: tuple[str, ...] = ()

    @property
    def by_endpoint(self) -> bool:
        """Whether it names ports or addresses: its scope needs each connection's endpoints."""
        return bool(self.server_port or self.client_port or self.server_ip or self.client_ip)

    def matches(self, c: ConnectionResult) -> bool:
        return self.matches_ends(c.client, c.server) and (not self.kind or c.kind in self.kind)

    def matches_ends(self, client: tuple[str, int], server: tuple[str, int]) -> bool:
        """Whether a connection of these endpoints is in scope (if its kind is)."""
        return ((not self.server_port or server[1] in self.server_port)
                and (not self.client_port or client[1] in self.client_port)
                and (not self.server_ip or _ip_in(server[0], self.server_ip))
                and (not self.client_ip or _ip_in(client[0], self.client_ip)))

    def scope(self, facts: Facts, ends_match: Any = None) -> Any:
        """The connections it matches (a bool array), from the facts and, if it names
        ports or addresses (:attr:`by_endpoint`), ``ends_match``: whether each one's
        endpoints match (:meth:`matches_ends`), in order."""
        kinds = _kinds(facts, self.kind) if self.kind else facts.kind >= 0
        return kinds if ends_match is None else kinds & ends_match

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key in WHERE_KEYS:
            value = getattr(self, key)
            if value:
                d[key] = [v if isinstance(v, int | str) else str(v) for v in value]
        return d


WHERE_KEYS: dict[str, Callable[[Any], tuple[Any, ...]]] = {
    "server_port": _many(_port), "client_port": _many(_port),
    "server_ip": _many(_net), "client_ip": _many(_net),
    "kind": lambda v: _names(v, KINDS),
}


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    severity: str
    where: Where
    conditions: tuple[tuple[str, Any], ...]
    """(condition key, parsed value), in the order written."""
    origin: tuple[str, int] | None = None
    """(rules file, line of its ``[[rule]]``) for rules from a file; None for options."""

    def to_dict(self) -> dict[str, Any]:
        conds = {k: (v.text if isinstance(v, Duration) else list(v) if isinstance(v, tuple)
                     else v) for k, v in self.conditions}
        return {"name": self.name, "severity": self.severity, "where": self.where.to_dict(),
                "conditions": conds,
                "origin": None if self.origin is None else
                {"file": self.origin[0], "line": self.origin[1]}}


def inline_rules(values: Mapping[str, Any]) -> list[Rule]:
    """Rules from the command-line options: ``{condition key: option value}``.

    A value of None or False means the option was not given.  Each given option is
    one rule of severity error, named after the option.
    """
    rules = []
    for key, raw in values.items():
        if raw is None or raw is False:
            continue
        cond = CONDITIONS[key]
        try:
            value = cond.parse(raw)
        except ValueError as exc:
            raise UsageError(f"{cond.option}: {exc}") from None
        rules.append(Rule(cond.option, "error", Where(), ((key, value),)))
    return rules


RULE_KEYS = ("name", "severity", "where")


def parse_rules(text: str, source: str) -> list[Rule]:
    """The rules of a TOML rules file (``[[rule]]`` tables); ``source`` names it in errors.

    Raises:
        UsageError: bad TOML, an unknown key, a bad value; the message names
            ``source:line``, the rule and the key.
    """
    if sys.version_info >= (3, 11):  # (imported here: only a rules file needs it)
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML: {exc}") from None
    lines = _Lines(text)
    for key in doc:
        if key != "rule":
            raise UsageError(f"{source}:{lines.top(key)}: unknown key {key!r} "
                             f"(a rules file holds [[rule]] tables)")
    tables = doc.get("rule")
    if not isinstance(tables, list) or not tables or \
            not all(isinstance(t, dict) for t in tables):
        raise UsageError(f"{source}: no rules: write each rule as a [[rule]] table")
    rules: list[Rule] = []
    for i, table in enumerate(tables):
        rules.append(_rule(table, i, source, lines))
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.name in seen:
            raise UsageError(f"{source}:{lines.key(i, 'name')}: name: two rules are named "
                             f"{rule.name!r}")
        seen.add(rule.name)
    return rules


def _rule(table: dict[str, Any], i: int, source: str, lines: "_Lines") -> Rule:
    label = repr(table["name"]) if isinstance(table.get("name"), str) else f"{i + 1}"

    def fail(key: str, message: str, in_where: bool = False) -> UsageError:
        line = lines.key(i, key, in_where)
        shown = f"where.{key}" if in_where else key
        return UsageError(f"{source}:{line}: rule {label}: {shown}: {message}")

    for key in table:
        if key not in CONDITIONS and key not in RULE_KEYS:
            raise fail(key, "unknown key" + _did_you_mean(key, [*RULE_KEYS, *CONDITIONS]))
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("name", "every rule needs a name (a non-empty string)")
    severity = table.get("severity", "error")
    if severity not in SEVERITIES:
        raise fail("severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
    where_raw = table.get("where", {})
    if not isinstance(where_raw, dict):
        raise fail("where", "expected a table, e.g. where = { server_port = 80 }")
    scope: dict[str, Any] = {}
    for key, raw in where_raw.items():
        if key not in WHERE_KEYS:
            raise fail(key, "unknown key" + _did_you_mean(key, list(WHERE_KEYS)), True)
        try:
            scope[key] = WHERE_KEYS[key](raw)
        except ValueError as exc:
            raise fail(key, str(exc), True) from None
    conditions = []
    for key, raw in table.items():
        if key in CONDITIONS:
            try:
                value = CONDITIONS[key].parse(raw)
            except ValueError as exc:
                raise fail(key, str(exc)) from None
            if value is not False:  # `no_rst = false` switches the condition off
                conditions.append((key, value))
    if not conditions:
        raise fail("name", f"no condition (give one of {', '.join(CONDITIONS)})")
    return Rule(name, severity, Where(**scope), tuple(conditions), (source, lines.rule(i)))


def _did_you_mean(key: str, known: Sequence[str]) -> str:
    import difflib  # (imported here: only a mistake needs it)

    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f" (known: {', '.join(known)}){hint}"


class _Lines:
    """Line numbers of keys in a rules file, for error messages.

    tomllib returns plain dicts without positions, so the lines are found by
    scanning the text: the n-th ``[[rule]]`` header starts the n-th rule; its
    keys are the ``key =`` lines up to the next header, and its ``where`` keys are
    in its ``[rule.where]`` section, a ``where.key =`` dotted key, or a
    ``where = { ... }`` inline table.  A key not found this way (inside a
    multi-line value, say) falls back to the rule's header line; the line is a
    pointer for the reader, the message always names the key too.
    """

    _HEADER = re.compile(r"\s*\[")
    _RULE = re.compile(r"\s*\[\[\s*rule\s*\]\]")
    _WHERE = re.compile(r"\s*\[\s*rule\s*\.\s*where\s*\]")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        # for each line: (rule index or -1, section: "rule" / "where" / "other" / "top")
        self.where_of: list[tuple[int, str]] = []
        rule, section = -1, "top"
        for line in self.lines:
            if self._RULE.match(line):
                rule, section = rule + 1, "rule"
            elif self._WHERE.match(line):
                section = "where"
            elif self._HEADER.match(line):
                section = "other"
            self.where_of.append((rule, section))

    def rule(self, i: int) -> int:
        for n, (rule, section) in enumerate(self.where_of):
            if rule == i:
                return n + 1
        return 1

    def top(self, key: str) -> int:
        pat = re.compile(rf"\s*\[*\s*\"?{re.escape(key)}\b")
        for n, line in enumerate(self.lines):
            if self.where_of[n][1] in ("top", "other") and pat.match(line):
                return n + 1
        return 1

    def key(self, i: int, key: str, in_where: bool = False) -> int:
        k = rf"[\"']?{re.escape(key)}[\"']?\s*="
        plain = re.compile(rf"\s*{k}")
        dotted = re.compile(rf"\s*where\s*\.\s*{k}")
        inline = re.compile(rf"\s*where\s*=\s*\{{.*[{{,]\s*{k}")
        for n, line in enumerate(self.lines):
            rule, section = self.where_of[n]
            if rule != i:
                continue
            if not in_where and section == "rule" and plain.match(line):
                return n + 1
            if in_where and ((section == "where" and plain.match(line))
                             or (section == "rule" and (dotted.match(line)
                                                        or inline.match(line)))):
                return n + 1
        return self.rule(i)


# --- evaluation --------------------------------------------------------------------------

class Subject(NamedTuple):
    """What a violation names of its connection: not the whole result, which a check of a
    large capture would otherwise keep for every violation."""

    id: int
    source: str
    client: tuple[str, int]
    server: tuple[str, int]
    kind: str

    @classmethod
    def of(cls, c: ConnectionResult) -> "Subject":
        return cls(c.id, c.source, c.client, c.server, c.kind)


@dataclass(frozen=True, slots=True)
class Violation:
    """One connection breaking one condition of one rule."""

    condition: str
    connection: Subject
    evidence: str

    def message(self, rule: str) -> str:
        c = self.connection
        return f"{rule}: connection {c.id} {four_tuple(c)}: {self.evidence}"

    def to_dict(self) -> dict[str, Any]:
        c = self.connection
        return {"condition": self.condition, "connection": c.id, "capture": c.source,
                "client": {"ip": c.client[0], "port": c.client[1]},
                "server": {"ip": c.server[0], "port": c.server[1]},
                "kind": c.kind, "evidence": self.evidence}


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: Rule
    checked: int
    """Connections in the rule's scope."""
    violations: tuple[Violation, ...]

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def connections(self) -> tuple[Subject, ...]:
        """The violating connections, each once."""
        seen: dict[int, Subject] = {}
        for v in self.violations:
            seen.setdefault(v.connection.id, v.connection)
        return tuple(seen.values())

    def to_dict(self) -> dict[str, Any]:
        return {**self.rule.to_dict(), "passed": self.passed, "checked": self.checked,
                "violations": [v.to_dict() for v in self.violations]}


@dataclass(frozen=True, slots=True)
class CheckResult:
    results: tuple[RuleResult, ...]
    connections: int
    captures: tuple[dict[str, Any], ...] = ()
    """Each capture's source, packet count, packets lost (if its pcapng statistics say: a
    gate on a trace that lost packets judges what it kept), and error (a capture cut off
    part-way)."""

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        """Error-severity rules that were violated: these fail the check."""
        return tuple(r for r in self.results if not r.passed and r.rule.severity == "error")

    @property
    def warned(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if not r.passed and r.rule.severity == "warning")

    @property
    def passed(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """``2 of 7 rules failed, 1 with warnings (12 connections)``."""
        n = len(self.results)
        rules = "rule" if n == 1 else "rules"
        text = (f"{len(self.failed)} of {n} {rules} failed" if self.failed
                else f"all {n} {rules} hold" if not self.warned
                else f"{n - len(self.warned)} of {n} {rules} hold")
        if self.warned:
            text += f", {len(self.warned)} with warnings"
        conns = "connection" if self.connections == 1 else "connections"
        return f"{text} ({self.connections} {conns})"

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "teardown-analyzer/1", "check": "passed" if self.passed else "failed",
                "summary": self.summary(), "captures": list(self.captures),
                "connections": self.connections,
                "rules": [r.to_dict() for r in self.results]}


def evaluate(rules: Sequence[Rule], report: Report, jobs: int = 1,
             progress: Callable[[int, int], None] | None = None) -> CheckResult:
    """Every rule against every connection of ``report`` in the rule's scope.  A
    connection is decoded only if the coded facts (:class:`~teardown_analyzer.results.Facts`)
    do not show that it passes every rule in whose scope it is (:attr:`Condition.clears`;
    a scope by port or address is read from the blobs, :func:`Where.scope`), each once, in
    order (in ``jobs`` processes; ``progress``, if given, is told how many of how many
    have been, as :meth:`~teardown_analyzer.results.ResultStore.rendered` tells it); only
    the violating ones are kept."""
    import numpy as np
    captures = tuple({"source": i.source, "packets": i.packets, "dropped": i.dropped,
                      "error": None if i.error is None else str(i.error)}
                     for i in report.captures)
    store = report.connections
    facts = store.facts()
    checked = [0] * len(rules)
    decode = np.zeros(len(store), bool)
    # each one's endpoints, read once for all the rules that name some (not kept: as Python
    # objects they would cost more memory than the rest of the analysis)
    scoped = [i for i, rule in enumerate(rules) if rule.where.by_endpoint]
    in_scope: list[list[bool]] = [[] for _ in scoped]
    if scoped:
        for client, server in map(endpoints, store.blobs()):
            for i, flags in zip(scoped, in_scope):
                flags.append(rules[i].where.matches_ends(client, server))
    ends_match = dict(zip(scoped, (np.array(flags, bool) for flags in in_scope)))
    for i, rule in enumerate(rules):
        scope = rule.where.scope(facts, ends_match.get(i))
        checked[i] = int(scope.sum())
        passes = scope.copy()
        for key, value in rule.conditions:
            clears = CONDITIONS[key].clears
            passes &= False if clears is None else clears(facts, value)
        decode |= scope & ~passes

    def judge(c: ConnectionResult) -> list[tuple[int, Violation]]:
        out = []
        subject = None
        for i, rule in enumerate(rules):
            if not rule.where.matches(c):
                continue
            for key, value in rule.conditions:
                evidence = CONDITIONS[key].test(c, value)
                if evidence is not None:
                    subject = subject or Subject.of(c)
                    out.append((i, Violation(key, subject, evidence)))
        return out

    found: list[list[Violation]] = [[] for _ in rules]
    where = np.flatnonzero(decode)

    def told(done: int) -> None:
        if progress is not None:
            progress(done, len(where))

    for violations in store.rendered(judge, jobs, told, None if len(where) == len(store)
                                     else where.tolist()):
        for i, violation in violations:
            found[i].append(violation)
    results = tuple(RuleResult(rule, checked[i], tuple(found[i]))
                    for i, rule in enumerate(rules))
    return CheckResult(results, len(store), captures)


__all__ = ["CONDITIONS", "Condition", "Rule", "Where", "Duration", "Subject", "Violation",
           "RuleResult", "CheckResult", "parse_duration", "parse_rules", "inline_rules",
           "evaluate", "four_tuple", "endpoint"]
