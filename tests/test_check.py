"""``check``: rules, their evaluation on the real captures, exit statuses, the reports.

Every condition passes on one real capture of ``sample_pcaps/`` and fails on another
(``CASES``); the expected evidence is taken from the analysis of the same capture
(packet numbers, durations), so the tests follow the captures if they are re-made.
"""

from __future__ import annotations

import io
import json
import pathlib
import re
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

import pcapbuild as pb
from teardown_analyzer import check
from teardown_analyzer.analysis import ConnectionResult, Report, analyze
from teardown_analyzer.check_render import (check_github, check_json, check_junit,
                                            check_summary)
from teardown_analyzer.errors import UsageError
from teardown_analyzer.render import THEME

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "rules.toml"


def sample(name: str) -> str:
    path = pb.SAMPLES / f"{name}.pcap"
    if not path.is_file():
        pytest.skip(f"sample_pcaps/{name}.pcap is not there yet")
    return str(path)


def report_of(name: str) -> Report:
    return analyze([sample(name)])


def only(name: str) -> ConnectionResult:
    conns = report_of(name).connections
    assert len(conns) == 1
    return conns[0]


def first_fin(c: ConnectionResult) -> dict:
    fins = [f for f in (c.directions[s]["fin"] for s in ("client", "server")) if f]
    return min(fins, key=lambda f: f["ts"])


# condition key: (option value (None for a flag), TOML value, capture where it holds,
# capture where it fails, evidence expected from the failing connection)
CASES = {
    "no_rst": (None, "true", "four_way", "rst_linger0",
               lambda c: f"RST from client at packet {c.rsts[0]['packet']}"),
    "initiator": ("client", '["client"]', "four_way", "server_first",
                  lambda c: f"closed by server (first FIN at packet {first_fin(c)['packet']}), "
                            f"expected client"),
    "time_wait_on": ("client", '"client"', "four_way", "server_first",
                     lambda c: f"TIME_WAIT on server (entered at packet "
                               f"{c.time_wait['entered_packet']}), expected on the client"),
    "max_half_close": ("500ms", '"500ms"', "four_way", "half_close",
                       lambda c: f"half-close {c.half_close_s:.3f} s (packet "
                                 f"{c.directions['client']['fin']['packet']} to packet "
                                 f"{c.directions['server']['fin']['packet']}) > 500ms"),
    "no_half_open": (None, "true", "four_way", "close_wait_leak",
                     lambda c: f"half-open: server left in CLOSE_WAIT for at least "
                               f"{c.half_close_s:.3f} s (since packet "
                               f"{[s for s in c.server_states if s.state == 'CLOSE_WAIT'][0].packet}"
                               f", to the capture's last packet), no FIN from the server"),
    "kind": ("four-way", '["four-way"]', "four_way", "three_way",
             lambda c: "close kind three-way, expected four-way"),
    "max_fin_retransmits": ("0", "0", "four_way", "lost_last_ack",
                            lambda c: f"server's FIN (packet "
                                      f"{c.directions['server']['fin']['packet']}) retransmitted "
                                      f"1 time (packet "
                                      f"{c.directions['server']['fin']['retransmissions'][0]['packet']}"
                                      f") > 0"),
}


def test_every_condition_has_a_passing_and_a_failing_capture():
    assert set(CASES) == set(check.CONDITIONS)


def _option_args(key: str) -> list[str]:
    value = CASES[key][0]
    cond = check.CONDITIONS[key]
    return [cond.option] if value is None else [cond.option, value]


@pytest.mark.parametrize("key", sorted(CASES))
def test_inline_option_passes_and_fails_on_real_captures(run_cli, key):
    _, _, good, bad, evidence = CASES[key]
    code, out, err = run_cli("check", sample(good), *_option_args(key))
    assert code == 0, out + err
    assert "check passed: all 1 rule hold (1 connection)" in out and "error" not in err
    code, out, err = run_cli("check", sample(bad), *_option_args(key))
    assert code == 1, out + err
    c = only(bad)
    option = check.CONDITIONS[key].option
    line = f"{option}: connection {c.id} {check.four_tuple(c)}: {evidence(c)}"
    result = check.evaluate(check.inline_rules({key: CASES[key][0] or True}), report_of(bad))
    assert [v.message(option) for v in result.results[0].violations] == [line]
    assert evidence(c) in out and "check failed" in out
    assert err.strip().splitlines()[-1] == \
        "error: check failed: 1 of 1 rule failed (1 connection)"


@pytest.mark.parametrize("key", sorted(CASES))
def test_rules_file_condition_passes_and_fails_on_real_captures(key):
    _, toml_value, good, bad, evidence = CASES[key]
    rules = check.parse_rules(f'[[rule]]\nname = "r"\n{key} = {toml_value}\n', "r.toml")
    assert rules[0].origin == ("r.toml", 1)
    assert check.evaluate(rules, report_of(good)).passed
    result = check.evaluate(rules, report_of(bad))
    assert not result.passed
    (violation,) = result.results[0].violations
    assert violation.condition == key and violation.evidence == evidence(only(bad))


def test_no_rst_names_every_rst():
    c = only("rst_linger0")
    assert check.CONDITIONS["no_rst"].test(c, True) == \
        f"RST from client at packet {c.rsts[0]['packet']}"
    assert check.CONDITIONS["no_rst"].test(c, False) is None


@pytest.mark.parametrize("name", ["rst_linger0", "rst_unread"])
def test_time_wait_on_passes_a_connection_without_time_wait(name):
    c = only(name)
    assert c.time_wait is None
    for side in ("client", "server"):
        assert check.CONDITIONS["time_wait_on"].test(c, side) is None


def test_simultaneous_close_satisfies_time_wait_on_either_side_and_initiator_both():
    c = only("simultaneous")
    assert c.time_wait["side"] == "both" and c.initiator == "both"
    for side in ("client", "server"):
        assert check.CONDITIONS["time_wait_on"].test(c, side) is None
    assert check.CONDITIONS["initiator"].test(c, ("both",)) is None
    assert check.CONDITIONS["initiator"].test(c, ("client", "server")) == \
        "closed by both (simultaneous close), expected client or server"


def test_initiator_of_an_abortive_close_is_the_rst_sender(run_cli):
    c = only("rst_linger0")
    assert check.CONDITIONS["initiator"].test(c, ("server",)) == \
        f"closed by client (RST at packet {c.rsts[0]['packet']}), expected server"
    code, _, _ = run_cli("check", sample("rst_linger0"), "--initiator", "client,server")
    assert code == 0


def test_max_half_close_of_a_half_open_connection_runs_to_the_last_packet():
    c = only("close_wait_leak")
    fin = c.directions["client"]["fin"]["packet"]
    assert check.CONDITIONS["max_half_close"].test(c, check.parse_duration("1ms")) == \
        f"half-close {c.half_close_s:.3f} s (packet {fin} to the capture's last packet, no " \
        f"second FIN) > 1ms"
    assert check.CONDITIONS["max_half_close"].test(c, check.parse_duration("1m")) is None


def test_the_writeup_half_close_against_a_limit():
    report = analyze([str(pb.WRITEUP)])
    rules = check.inline_rules({"max_half_close": "2s"})
    (v,) = check.evaluate(rules, report).results[0].violations
    assert v.message("--max-half-close") == (
        "--max-half-close: connection 1 172.16.48.13:32806 -> 172.16.48.1:5002: "
        "half-close 12.041 s (packet 6 to packet 8) > 2s")
    assert check.evaluate(check.inline_rules({"max_half_close": "12.1s"}), report).passed


# --- values and scope --------------------------------------------------------------------

@pytest.mark.parametrize("text,ns", [("500ms", 500_000_000), ("2s", 2_000_000_000),
                                     ("1.5s", 1_500_000_000), ("250us", 250_000),
                                     ("1m", 60_000_000_000), (" 10 ms ", 10_000_000),
                                     ("0s", 0), (".5s", 500_000_000), ("7ns", 7)])
def test_durations(text, ns):
    assert check.parse_duration(text).ns == ns


@pytest.mark.parametrize("bad", ["2", "2 sec", "s", "-1s", "1h", "", "1.2.3s", 2, 1.5, True])
def test_bad_durations_name_the_value(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        check.parse_duration(bad)


def test_bad_inline_value_is_a_usage_error_naming_option_and_value(run_cli):
    code, out, err = run_cli("check", sample("four_way"), "--max-half-close", "2 sec")
    assert code == 2 and out == ""
    assert err.strip() == ("error: --max-half-close: bad duration '2 sec' (a number and a "
                           "unit: 500ms, 2s, 1.5s, 250us, 1m)")
    for args, text in ((["--initiator", "client,cleint"], "--initiator: 'cleint' is not one"),
                       (["--kind", "four_way"], "--kind: 'four_way' is not one of four-way"),
                       (["--time-wait-on", "both"], "--time-wait-on: expected client or "
                                                    "server, got 'both'"),
                       (["--max-fin-retransmits", "-1"], "--max-fin-retransmits: expected a "
                                                         "whole number")):
        code, _, err = run_cli("check", sample("four_way"), *args)
        assert code == 2 and text in err, err


def test_where_scopes_a_rule():
    report = analyze([sample("four_way"), sample("rst_linger0")])
    rst = [c for c in report.connections if c.kind == "rst"][0]
    text = """
[[rule]]
name = "on the rst port"
where = { server_port = %d }
no_rst = true

[[rule]]
name = "elsewhere"
where = { server_port = [1, 2], client_ip = "198.18.0.0/16" }
no_rst = true

[[rule]]
name = "clients in the net"
no_rst = true
[rule.where]
client_ip = ["10.0.0.0/8", "198.18.0.0/15"]
server_ip = "%s"

[[rule]]
name = "graceful only"
where.kind = ["four-way", "three-way"]
no_rst = true
""" % (rst.server[1], rst.server[0])
    results = check.evaluate(check.parse_rules(text, "w.toml"), report).results
    assert [(r.rule.name, r.checked, len(r.violations)) for r in results] == [
        ("on the rst port", 1, 1), ("elsewhere", 0, 0), ("clients in the net", 2, 1),
        ("graceful only", 1, 0)]
    assert results[2].rule.where.to_dict() == {"client_ip": ["10.0.0.0/8", "198.18.0.0/15"],
                                               "server_ip": [f"{rst.server[0]}/32"]}


def test_warning_rules_report_but_do_not_fail(run_cli, tmp_path):
    rules = tmp_path / "r.toml"
    rules.write_text('[[rule]]\nname = "soft"\nseverity = "warning"\nno_rst = true\n')
    code, out, err = run_cli("check", sample("rst_linger0"), "--expect", str(rules))
    assert code == 0 and err == ""
    assert "warn (1 of 1)" in out and "check passed: 0 of 1 rule hold, 1 with warnings" in out


# --- exit statuses -----------------------------------------------------------------------

def test_no_rule_at_all_is_a_usage_error(run_cli):
    code, out, err = run_cli("check", sample("four_way"))
    assert code == 2 and out == "" and "no rules" in err and "--expect" in err


def test_missing_capture_argument_and_missing_rules_file_are_usage_errors(run_cli, tmp_path):
    code, _, _ = run_cli("check", "--no-rst")
    assert code == 2
    code, _, err = run_cli("check", sample("four_way"), "--expect", str(tmp_path / "no.toml"))
    assert code == 2 and "no.toml" in err


def test_github_and_json_together_is_a_usage_error(run_cli):
    code, out, err = run_cli("check", sample("four_way"), "--no-rst", "--github",
                             "--format", "json")
    assert code == 2 and out == "" and "--github" in err


def test_unreadable_capture_is_exit_3(run_cli, tmp_path):
    path = tmp_path / "not.pcap"
    path.write_bytes(b"GET / HTTP/1.1\r\n\r\n")
    code, out, err = run_cli("check", str(path), "--no-rst")
    assert code == 3 and out == "" and len(err.strip().splitlines()) == 1


def test_capture_cut_off_mid_record_is_analysed_reported_and_exit_3(run_cli, tmp_path):
    """Every whole record is analysed and the summary printed; the cut still wins: 3."""
    blob = pathlib.Path(sample("rst_linger0")).read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(blob + pb.pcap_record(pb.Rec(0, b"\x45" + b"\0" * 59))[:30])
    junit = tmp_path / "j.xml"
    code, out, err = run_cli("check", str(path), "--no-rst", "--junit", str(junit))
    assert code == 3
    c = only("rst_linger0")
    assert f"RST from client at packet {c.rsts[0]['packet']}" in out
    assert "check failed" in out
    assert "the packets before the problem were analysed" in err
    assert f"byte {len(blob)}" in err.strip().splitlines()[-1]
    assert ET.parse(junit).getroot().get("failures") == "1"


def test_several_captures_and_exit_1_when_any_error_rule_fails(run_cli):
    code, out, _ = run_cli("check", sample("four_way"), sample("three_way"),
                           "--kind", "four-way,three-way", "--no-rst")
    assert code == 0 and "all 2 rules hold (2 connections)" in out
    code, out, _ = run_cli("check", sample("four_way"), sample("rst_linger0"),
                           "--kind", "four-way,three-way", "--no-rst")
    assert code == 1
    assert f"({sample('rst_linger0')})" in out  # the capture is named when there are several


# --- rules-file errors -------------------------------------------------------------------

GOOD = '''# rules
[[rule]]
name = "first"
no_rst = true

[[rule]]
name = "second"
severity = "error"
where = { server_port = 80, client_ip = "10.0.0.0/8" }
kind = ["four-way"]
max_half_close = "2s"

[[rule]]
name = "third"
max_fin_retransmits = 1
[rule.where]
server_port = 443
kind = "four-way"
'''


@pytest.mark.parametrize("old,new,line,text", [
    ('no_rst = true', 'no_rsts = true', 4,
     "rule 'first': no_rsts: unknown key (known: name, severity, where, no_rst, initiator, "
     "time_wait_on, max_half_close, no_half_open, kind, max_fin_retransmits); did you mean "
     "'no_rst'?"),
    ('no_rst = true', 'no_rst = "yes"', 4, "rule 'first': no_rst: expected true or false, "
                                           "got 'yes'"),
    ('max_half_close = "2s"', 'max_half_close = "2 sec"', 11,
     "rule 'second': max_half_close: bad duration '2 sec'"),
    ('max_half_close = "2s"', 'max_half_close = 2', 11,
     "rule 'second': max_half_close: bad duration 2"),
    ('kind = ["four-way"]', 'kind = ["four-way", "4way"]', 10,
     "rule 'second': kind: '4way' is not one of four-way"),
    ('severity = "error"', 'severity = "fatal"', 8,
     "rule 'second': severity: 'fatal' is not one of error, warning"),
    ('client_ip = "10.0.0.0/8"', 'client_ip = "10.0.0.300"', 9,
     "rule 'second': where.client_ip: '10.0.0.300' is not an IP address or network"),
    ('client_ip = "10.0.0.0/8"', 'clientip = "10.0.0.0/8"', 9,
     "rule 'second': where.clientip: unknown key (known: server_port, client_port, "
     "server_ip, client_ip, kind); did you mean 'client_ip'?"),
    ('server_port = 443', 'server_port = 70000', 17,
     "rule 'third': where.server_port: 70000 is not a port number"),
    ('kind = "four-way"', 'kinds = "four-way"', 18, "rule 'third': where.kinds: unknown key"),
    ('max_fin_retransmits = 1', 'max_fin_retransmits = -1', 15,
     "rule 'third': max_fin_retransmits: expected a whole number >= 0, got -1"),
    ('max_fin_retransmits = 1', 'max_fin_retransmits = 1\ninitiator = ["server", "nobody"]',
     16, "rule 'third': initiator: 'nobody' is not one of client, server, both"),
    ('name = "second"', 'name = "first"', 7, "name: two rules are named 'first'"),
    ('name = "third"', 'title = "third"', 14, "rule 3: title: unknown key"),
    ('name = "third"\n', '', 13, "rule 3: name: every rule needs a name"),
    ('no_rst = true', 'no_rst = false', 3,
     "rule 'first': name: no condition (give one of no_rst, initiator"),
    ('[[rule]]\nname = "first"', 'version = 2\n[[rule]]\nname = "first"', 2,
     "unknown key 'version' (a rules file holds [[rule]] tables)"),
])
def test_rules_file_errors_name_file_line_and_key(old, new, line, text):
    assert GOOD.count(old) == 1
    broken = GOOD.replace(old, new)
    with pytest.raises(UsageError) as exc:
        check.parse_rules(broken, "ci/rules.toml")
    assert str(exc.value).startswith(f"ci/rules.toml:{line}: "), str(exc.value)
    assert text in str(exc.value)


def test_good_rules_file_parses():
    rules = check.parse_rules(GOOD, "ci/rules.toml")
    assert [(r.name, r.severity, r.origin) for r in rules] == [
        ("first", "error", ("ci/rules.toml", 2)), ("second", "error", ("ci/rules.toml", 6)),
        ("third", "error", ("ci/rules.toml", 13))]
    assert rules[1].to_dict()["conditions"] == {"kind": ["four-way"], "max_half_close": "2s"}


@pytest.mark.parametrize("text,needle", [
    ("[[rule]\nname = 'x'\n", "not valid TOML"),
    ("[[rule]]\nname = 'x'\nno_rst = true\nno_rst = true\n", "(at line 4"),
    ("# nothing\n", "no rules"),
    ("rule = 3\n", "no rules"),
    ("[[rule]]\nname = 'x'\nwhere = 3\nno_rst = true\n", "x.toml:3: rule 'x': where: expected a "
                                                         "table"),
])
def test_rules_file_structure_errors(text, needle):
    with pytest.raises(UsageError, match=re.escape(needle)):
        check.parse_rules(text, "x.toml")


def test_rules_file_error_through_the_cli_is_exit_2_one_line(run_cli, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(GOOD.replace("no_rst = true", "no_rsts = true"))
    code, out, err = run_cli("check", sample("four_way"), "--expect", str(rules))
    assert code == 2 and out == ""
    assert err.startswith(f"error: {rules}:4: rule 'first': no_rsts: unknown key")
    assert len(err.strip().splitlines()) == 1


def test_the_example_rules_file_parses_and_comments_every_condition():
    text = EXAMPLE.read_text(encoding="utf-8")
    rules = check.parse_rules(text, str(EXAMPLE))
    used = {key for r in rules for key, _ in r.conditions}
    assert used == set(check.CONDITIONS)
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for key in [*check.CONDITIONS, *check.WHERE_KEYS, "severity", "name"]:
        assert re.search(rf"\b{key}\b", comments), key
    # every [[rule]] has a comment of its own just above it
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if line == "[[rule]]"]
    assert len(headers) == len(rules) and all(lines[i - 1].startswith("#") for i in headers)


def test_example_rules_file_on_real_captures(run_cli):
    code, out, _ = run_cli("check", sample("four_way"), "--expect", str(EXAMPLE))
    assert code == 0
    code, out, _ = run_cli("check", sample("four_way"), sample("close_wait_leak"),
                           "--expect", str(EXAMPLE))
    assert code == 1 and "no-close-wait-leak (error): 1 of 2 connections" in out


# --- reports -----------------------------------------------------------------------------

def _mixed_result() -> check.CheckResult:
    rules = check.parse_rules(
        '[[rule]]\nname = "no resets"\nno_rst = true\n\n'
        '[[rule]]\nname = "client closes"\ninitiator = "client"\ntime_wait_on = "client"\n\n'
        '[[rule]]\nname = "soft <&> \\"quotes\\""\nseverity = "warning"\nkind = "four-way"\n',
        "rules.toml")
    return check.evaluate(rules, analyze([sample("four_way"), sample("rst_linger0"),
                                          sample("server_first")]))


def test_junit_parsed_back_with_a_standard_xml_parser(tmp_path, run_cli):
    result = _mixed_result()
    path = tmp_path / "junit.xml"
    path.write_text(check_junit(result), encoding="utf-8")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "2"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["no resets", "client closes",
                                              'soft <&> "quotes"']
    assert [c.get("line") for c in cases] == ["1", "5", "10"]
    by_id = {c.id: c for c in analyze([sample("four_way"), sample("rst_linger0"),
                                       sample("server_first")]).connections}
    rst = next(c for c in by_id.values() if c.kind == "rst")
    server = next(c for c in by_id.values() if c.initiator == "server")
    fail = cases[0].find("failure")
    assert fail.get("message") == (f"1 connection violates no resets: connection {rst.id} "
                                   f"{rst.client[0]}:{rst.client[1]} -> "
                                   f"{rst.server[0]}:{rst.server[1]}")
    assert f"RST from client at packet {rst.rsts[0]['packet']}" in fail.text
    fail = cases[1].find("failure")
    assert fail.get("message").startswith("1 connection violates client closes: ")
    assert f"connection {server.id} {check.four_tuple(server)}" in fail.get("message")
    assert "closed by server" in fail.text and "TIME_WAIT on server" in fail.text
    # the warning rule is not a failure; its evidence is in system-out
    assert cases[2].find("failure") is None
    out = cases[2].find("system-out").text
    assert out.count("warning: ") == 1 and "close kind rst" in out
    # the CLI writes the same document
    code, _, _ = run_cli("check", sample("four_way"), "--no-rst", "--junit", str(path))
    root = ET.parse(path).getroot()
    assert code == 0 and root.get("failures") == "0"
    assert [c.get("name") for c in root.iter("testcase")] == ["--no-rst"]
    assert root.find("testsuite/testcase").get("file") is None


def test_the_report_says_what_a_capture_lost(run_cli, tmp_path):
    """A pcapng trace whose statistics say it lost packets (an edited capture: four_way's
    records with dumpcap's statistics block): the JSON report says how many, a warning
    says what it means, and --github adds a warning annotation."""
    linktype, records = pb.read_pcap(sample("four_way"))
    path = tmp_path / "lossy.pcapng"
    path.write_bytes(pb.shb() + pb.idb(linktype, 65535) + b"".join(
        pb.epb(0, r.ts_ns // 1000, r.data) for r in records) + pb.isb(0, ifrecv=14, ifdrop=3))
    code, out, err = run_cli("check", str(path), "--no-rst", "--format", "json")
    assert code == 0
    (capture,) = json.loads(out)["captures"]
    assert (capture["packets"], capture["dropped"]) == (len(records), 3)
    assert "the capture lost 3 packets (pcapng interface statistics" in err
    code, out, _ = run_cli("check", str(path), "--no-rst", "--github")
    assert code == 0 and out.splitlines()[-1] == (
        f"::warning title=teardown check capture::{path} lost 3 packets (pcapng interface "
        f"statistics): the rules judged what it kept")


def test_json_report(run_cli):
    code, out, _ = run_cli("check", sample("four_way"), sample("rst_linger0"), "--no-rst",
                           "--max-half-close", "2s", "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert data["schema"] == "teardown-analyzer/1" and data["check"] == "failed"
    assert data["connections"] == 2 and len(data["captures"]) == 2
    assert [c["dropped"] for c in data["captures"]] == [None, None]  # (pcap: not recorded)
    no_rst, half = data["rules"]
    assert (no_rst["name"], no_rst["passed"], no_rst["checked"]) == ("--no-rst", False, 2)
    assert no_rst["conditions"] == {"no_rst": True} and no_rst["origin"] is None
    (v,) = no_rst["violations"]
    assert v["condition"] == "no_rst" and v["capture"] == sample("rst_linger0")
    assert v["evidence"].startswith("RST from client at packet")
    assert half["passed"] and half["conditions"] == {"max_half_close": "2s"}
    assert json.loads(check_json(_mixed_result()))["summary"] == \
        "2 of 3 rules failed, 1 with warnings (3 connections)"


def test_github_annotations(run_cli):
    text = check_github(_mixed_result())
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("::error file=rules.toml,line=1,title=teardown check no "
                               "resets::1 connection violates no resets%0Aconnection ")
    assert lines[2].startswith("::warning file=rules.toml,line=10,")
    code, out, _ = run_cli("check", sample("rst_linger0"), "--no-rst", "--github")
    assert code == 1
    (line,) = [x for x in out.splitlines() if x.startswith("::")]
    assert line.startswith("::error title=teardown check --no-rst::1 connection violates "
                           "--no-rst%0Aconnection 1 ")
    code, out, _ = run_cli("check", sample("four_way"), "--no-rst", "--github")
    assert code == 0 and "::" not in out


def test_github_escaping():
    c = only("rst_linger0")
    rule = check.Rule("a,b:c%d\ne", "error", check.Where(), (("no_rst", True),))
    v = check.Violation("no_rst", check.Subject.of(c), "x")
    result = check.CheckResult((check.RuleResult(rule, 1, (v,)),), 1)
    (line,) = check_github(result).splitlines()
    assert line.startswith("::error title=teardown check a%2Cb%3Ac%25d%0Ae::1 connection "
                           "violates a,b:c%25d%0Ae%0Aconnection")


def test_rich_summary_text():
    console = Console(file=io.StringIO(), width=100, color_system=None, theme=THEME)
    console.print(check_summary(_mixed_result()), crop=False)
    text = console.file.getvalue()
    assert "Teardown check" in text
    for needle in ("no resets", "FAIL (1 of 3)", "client closes", "warn (1 of 3)",
                   "initiator client; time_wait_on client", "check failed: 2 of 3 rules "
                   "failed, 1 with warnings (3 connections)"):
        assert needle in text, needle
    # one line per violation, naming the capture (there are several)
    assert re.search(r"^  connection \d+ \S+ -> \S+ \(.*rst_linger0\.pcap\): RST from client "
                     r"at packet \d+$", text, re.M)


def test_check_help(run_cli):
    code, out, _ = run_cli("check", "--help")
    assert code == 0 and "Example" in out
    for cond in check.CONDITIONS.values():
        assert cond.option in out


def test_readme_documents_check():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## `check`: captures as CI gates", 1)[1].split("\n## ", 1)[0]
    for cond in check.CONDITIONS.values():
        assert cond.option in section
    assert "teardown-analyze check" in section and "--junit" in section
    assert "examples/rules.toml" in section and "TIME_WAIT at all" in section


# --- evaluation from the coded facts -----------------------------------------------------

def _generated(tmp_path_factory) -> str:
    """The benchmark's synthetic capture, small: every kind of close, RSTs, half-opens,
    retransmitted FINs, IPv6."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_capture",
                                                  ROOT / "benchmarks" / "make_capture.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    path = tmp_path_factory.mktemp("facts") / "mix.pcap"
    gen.generate(str(path), 600, seed=3)
    return str(path)


@pytest.fixture(scope="module")
def facts_report(tmp_path_factory) -> Report:
    """The sample captures (their odd connections go through the tracker) and the
    synthetic mix (most of its connections are recognised a window at a time)."""
    return analyze(sorted(str(p) for p in pb.SAMPLES.glob("*.pcap*")
                          if p.stat().st_size < 1 << 20)  # (not port_reuse: 30,000)
                   + [_generated(tmp_path_factory)])


def test_the_coded_facts_are_what_every_decoded_connection_says(facts_report):
    from teardown_analyzer.results import HALF_NONE, INITIATORS, KINDS, TIME_WAIT_SIDES
    facts = facts_report.connections.facts()
    def half(c):  # (in ns)
        return HALF_NONE if c.half_close_s is None else round(c.half_close_s * 1e9)
    said = [(c.kind, c.time_wait and c.time_wait["side"], c.initiator, len(c.rsts), c.unusual,
             max(len(d["fin"]["retransmissions"]) if d["fin"] else 0
                 for d in c.directions.values()), half(c))
            for c in facts_report.connections]
    coded = [(KINDS[k], TIME_WAIT_SIDES[t], INITIATORS[i], r, u, f, h)
             for k, t, i, r, u, f, h in
             zip(facts.kind.tolist(), facts.time_wait.tolist(), facts.initiator.tolist(),
                 facts.rsts.tolist(), facts.unusual.tolist(),
                 facts.fin_retransmits.tolist(), facts.half_close_ns.tolist())]
    assert coded == said
    # and the endpoints a scope by port or address reads from the blobs, undecoded
    from teardown_analyzer.analysis import endpoints
    assert [endpoints(blob) for blob in facts_report.connections.blobs()] == \
        [(c.client, c.server) for c in facts_report.connections]
    # every kind, both initiators and TIME_WAIT sides, RSTs, FINs sent again, half-closes
    # (ended, running to the end of the capture, none): the comparison covers them
    assert {s[0] for s in said} == set(KINDS) and {s[2] for s in said} == set(INITIATORS)
    assert {s[1] for s in said} == set(TIME_WAIT_SIDES) and max(s[3] for s in said) >= 1
    assert max(s[5] for s in said) >= 1 and HALF_NONE in {s[6] for s in said}
    assert len({s[6] for s in said if s[0] == "half-open"}) > 10
    assert len({s[6] for s in said}) > 100


def test_a_fin_sent_again_more_often_than_the_facts_count_is_decoded():
    """The facts count a FIN's retransmissions up to FIN_RETX_CAP ("that many or more"):
    a connection at the cap is decoded whatever the limit."""
    import numpy as np
    from teardown_analyzer.results import FIN_RETX_CAP, HALF_NONE, Facts
    counts = np.array([0, 3, FIN_RETX_CAP - 1, FIN_RETX_CAP])
    facts = Facts(*[np.zeros(4, np.int64)] * 5, counts, np.full(4, HALF_NONE))
    clears = check.CONDITIONS["max_fin_retransmits"].clears
    assert clears(facts, 3).tolist() == [True, True, False, False]
    assert clears(facts, 10**6).tolist() == [True, True, True, False]


@pytest.mark.parametrize("late", [False, True])
def test_a_half_open_close_timed_past_int64(tmp_path, late):
    """The real CLOSE_WAIT leak as a pcapng whose times pass what int64 holds in
    nanoseconds: after its first FIN and before the capture's end (the half-close still
    coded exactly), or before it all (coded HALF_CAP: that long or longer, decoded).
    --max-half-close judges it as its summary says."""
    from teardown_analyzer.results import HALF_CAP
    linktype, recs = pb.read_pcap(pb.SAMPLES / "close_wait_leak.pcap")
    base = 2**63 + 5 if late else 2**63 - 60_000_000
    path = tmp_path / "late.pcapng"
    path.write_bytes(pb.shb() + pb.idb(linktype, tsresol=9) + b"".join(
        pb.epb(0, base + r.ts_ns - recs[0].ts_ns, r.data) for r in recs))
    report = analyze([str(path)])
    (c,) = list(report.connections)
    # (its FIN is the 8th packet, 51.350 ms after the first; the last 40.323 ms after it)
    assert (c.kind, c.half_close_s) == ("half-open", 0.040323)
    assert report.connections.facts().half_close_ns.tolist() == \
        [HALF_CAP if late else 40_323_000]
    for limit, violated in (("40ms", True), ("41ms", False)):
        rules = check.parse_rules(f"[[rule]]\nname = 'r'\nmax_half_close = '{limit}'\n",
                                  "rules.toml")
        (got,) = check.evaluate(rules, report).results
        assert len(got.violations) == violated, limit


RULE_SETS = [
    "no_rst = true", "kind = ['four-way', 'three-way']", "time_wait_on = 'client'",
    "time_wait_on = 'server'", "initiator = 'client'", "initiator = ['server', 'both']",
    "max_half_close = '10ms'", "max_half_close = '5s'", "no_half_open = true",
    "max_half_close = '1ms'", "max_half_close = '60m'", "max_fin_retransmits = 0",
    "max_fin_retransmits = 1",
    "no_rst = true\ninitiator = 'client'\ntime_wait_on = 'client'",
    "where = { kind = ['rst', 'fin-then-rst'] }\ninitiator = 'server'",
    "where = { server_port = [80, 8080] }\nno_rst = true",
    "where = { client_ip = ['10.1.0.0/24'], kind = ['four-way'] }\ntime_wait_on = 'client'",
    "where = { server_ip = ['2001:db8::/32', '192.0.2.11/32'] }\nmax_half_close = '10ms'",
    "where = { client_port = [33421, 33135, 34592], server_port = [80] }\nkind = ['four-way']",
]


def test_rules_judged_from_the_facts_as_from_every_decoded_connection(facts_report,
                                                                      monkeypatch):
    """``evaluate`` decodes only the connections the facts do not clear; what it finds
    equals testing every condition on every decoded connection."""
    from teardown_analyzer import results
    conns = list(facts_report.connections)
    decoded = []
    unpack = results._unpack
    monkeypatch.setattr(results, "_unpack", lambda *a: decoded.append(1) or unpack(*a))
    for text in RULE_SETS:
        rules = check.parse_rules(f"[[rule]]\nname = 'r'\n{text}\n", "rules.toml")
        (rule,) = rules
        decoded.clear()
        (got,) = check.evaluate(rules, facts_report).results
        scope = [c for c in conns if rule.where.matches(c)]
        expected = [(key, c.id, evidence) for c in scope for key, value in rule.conditions
                    if (evidence := check.CONDITIONS[key].test(c, value)) is not None]
        assert (got.checked, [(v.condition, v.connection.id, v.evidence)
                              for v in got.violations]) == (len(scope), expected), text
        assert {v.connection for v in got.violations} == \
            {check.Subject.of(c) for c in conns if c.id in {e[1] for e in expected}}
        # decided by the facts (and a scope by the endpoints read from the blobs): only
        # the violating connections are decoded (none when the rule holds:
        # max_fin_retransmits = 1, max_half_close = '60m')
        assert len(decoded) == len({e[1] for e in expected}) < len(conns), text
        assert bool(decoded) == (text not in ("max_fin_retransmits = 1",
                                              "max_half_close = '60m'")), text
