"""Renderers for ``check``: the rich summary, JSON, JUnit XML, GitHub Actions annotations.

Each takes a :class:`~teardown_analyzer.check.CheckResult` and returns a rich
renderable or a string; the CLI prints or writes it.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .check import CheckResult, Duration, Rule, RuleResult, Violation, four_tuple
from .render import dumps

LIST_AT_MOST = 20
"""The summary lists this many violations per rule; JSON and JUnit list them all."""


def conditions_text(rule: Rule) -> str:
    """``no_rst; initiator client, server; max_half_close 2s``."""
    parts = []
    for key, value in rule.conditions:
        if value is True:
            parts.append(key)
        elif isinstance(value, Duration):
            parts.append(f"{key} {value.text}")
        elif isinstance(value, tuple):
            parts.append(f"{key} {', '.join(value)}")
        else:
            parts.append(f"{key} {value}")
    return "; ".join(parts)


def where_text(rule: Rule) -> str:
    """``server_port 80 or 8080; kind four-way``; empty when the rule applies to all."""
    return "; ".join(f"{k} {' or '.join(str(v) for v in vs)}"
                     for k, vs in rule.where.to_dict().items())


def _where(v: Violation, several: bool) -> str:
    c = v.connection
    text = f"connection {c.id} {four_tuple(c)}"
    return f"{text} ({c.source})" if several and c.source else text


def _status(r: RuleResult) -> Text:
    """``pass (3 checked)``, ``FAIL (1 of 3)``, ``warn (1 of 3)``."""
    if r.passed:
        return Text(f"pass ({r.checked} checked)", style="ta.ok")
    count = f"({len(r.connections)} of {r.checked})"
    if r.rule.severity == "warning":
        return Text(f"warn {count}", style="ta.warning")
    return Text(f"FAIL {count}", style="ta.bad")


def check_summary(result: CheckResult) -> RenderableType:
    """The rules, pass or fail, then every violating connection with its evidence."""
    several = len(result.captures) > 1
    table = Table(title="Teardown check", header_style="bold", show_lines=False)
    table.add_column("rule", overflow="fold")
    table.add_column("severity", no_wrap=True)
    table.add_column("conditions", ratio=2, overflow="fold")
    table.add_column("where", ratio=1)
    table.add_column("result")
    for r in result.results:
        table.add_row(Text(r.rule.name), Text(r.rule.severity),
                      Text(conditions_text(r.rule)), Text(where_text(r.rule) or "all"),
                      _status(r))
    parts: list[RenderableType] = [table]
    for r in result.results:
        if r.passed:
            continue
        style = "ta.warning" if r.rule.severity == "warning" else "ta.bad"
        parts.append(Text(f"{r.rule.name} ({r.rule.severity}): {len(r.connections)} of "
                          f"{r.checked} connections", style=style))
        for v in r.violations[:LIST_AT_MOST]:
            # one line per violation however narrow the terminal (CI logs get grepped);
            # print with crop=False
            parts.append(Text(f"  {_where(v, several)}: {v.evidence}", no_wrap=True,
                              overflow="ignore"))
        if len(r.violations) > LIST_AT_MOST:
            parts.append(Text(f"  ... and {len(r.violations) - LIST_AT_MOST} more "
                              f"(--format json or --junit lists them all)", style="dim"))
    for r in result.results:
        if r.passed and r.checked == 0:
            parts.append(Text(f"note: {r.rule.name}: no connection in its scope", style="dim"))
    verdict = "check passed" if result.passed else "check failed"
    parts.append(Text(f"{verdict}: {result.summary()}",
                      style="ta.ok" if result.passed else "ta.bad"))
    return Group(*parts)


def check_json(result: CheckResult) -> str:
    return dumps(result.to_dict())


# --- JUnit XML ---------------------------------------------------------------------------

def _headline(r: RuleResult) -> str:
    n = len(r.connections)
    return f"{n} {'connection violates' if n == 1 else 'connections violate'} {r.rule.name}"


def _failure_message(r: RuleResult) -> str:
    named = "; ".join(f"connection {c.id} {four_tuple(c)}" for c in r.connections)
    return f"{_headline(r)}: {named}"


def check_junit(result: CheckResult) -> str:
    """JUnit XML: one testsuite, one testcase per rule; an error rule violated is a failure.

    Every violating connection is named, with its 4-tuple, in the failure's
    ``message`` and, with the evidence, in its text.  A warning rule violated
    passes, with the evidence in ``system-out``.
    """
    failures = len(result.failed)
    counts = {"tests": str(len(result.results)), "failures": str(failures), "errors": "0",
              "skipped": "0", "time": "0"}
    import xml.etree.ElementTree as ET  # (imported here: only --junit needs it)

    suites = ET.Element("testsuites", {"name": "teardown-analyzer check", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": "teardown-analyzer check", **counts})
    props = ET.SubElement(suite, "properties")
    for cap in result.captures:
        ET.SubElement(props, "property", name="capture", value=str(cap["source"]))
    ET.SubElement(props, "property", name="connections", value=str(result.connections))
    several = len(result.captures) > 1
    for r in result.results:
        attrs: dict[str, str] = {"classname": "teardown-analyzer.check", "name": r.rule.name,
                                 "time": "0"}
        if r.rule.origin is not None:
            attrs["file"], attrs["line"] = r.rule.origin[0], str(r.rule.origin[1])
        case = ET.SubElement(suite, "testcase", attrs)
        lines = [f"{_where(v, several)}: {v.evidence}" for v in r.violations]
        if not r.passed and r.rule.severity == "error":
            fail = ET.SubElement(case, "failure", message=_failure_message(r), type="error")
            fail.text = "\n".join(lines)
        elif not r.passed:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(f"warning: {line}" for line in lines)
    ET.indent(suites)
    body = ET.tostring(suites, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


# --- GitHub Actions workflow commands ----------------------------------------------------

def _gh_data(text: str) -> str:
    # https://github.com/actions/toolkit/blob/main/packages/core/src/command.ts (escapeData)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def check_github(result: CheckResult) -> str:
    """One ``::error`` (or ``::warning``) annotation per violated rule, evidence included;
    and a ``::warning`` per capture that lost packets (the rules judged what it kept).

    A rule from a rules file points at its ``[[rule]]`` line.
    """
    several = len(result.captures) > 1
    out = [f"::warning title=teardown check capture::{_gh_data(c['source'])} lost "
           f"{c['dropped']} packets (pcapng interface statistics): the rules judged what it "
           f"kept" for c in result.captures if c.get("dropped")]
    for r in result.results:
        if r.passed:
            continue
        level = "error" if r.rule.severity == "error" else "warning"
        props: list[tuple[str, Any]] = []
        if r.rule.origin is not None:
            props += [("file", r.rule.origin[0]), ("line", r.rule.origin[1])]
        props.append(("title", f"teardown check {r.rule.name}"))
        lines = [_headline(r)]
        lines += [f"{_where(v, several)}: {v.evidence}" for v in r.violations]
        prop_text = ",".join(f"{k}={_gh_property(str(v))}" for k, v in props)
        out.append(f"::{level} {prop_text}::{_gh_data(chr(10).join(lines))}")
    return "".join(line + "\n" for line in out)


__all__ = ["check_summary", "check_json", "check_junit", "check_github", "conditions_text",
           "where_text"]
