"""The command line: parse options, call the library, pick a renderer.  Nothing else.

Exit statuses: 0 success, 1 a ``check`` rule violated, 2 usage error, 3 a capture
could not be read (see :mod:`teardown_analyzer.errors`).
"""

from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterable, Iterator, Sequence

import click
from rich.console import Console
from rich.text import Text

from . import errors
from .analysis import Options, Report, analyze
from .check import CONDITIONS, evaluate, inline_rules, parse_rules
from .report import (ProgressFn, as_listing, connections_table, iter_listing, legend,
                     iter_report_csv, iter_report_json, iter_report_jsonl, ladder,
                     report_markdown, select, totals_text)
from .render import THEME, hex_json, hex_markdown, hex_table, svg_of

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class DefaultGroup(click.Group):
    """A group whose default command is ``analyze``: ``teardown-analyze capture.pcap`` works."""

    default_command = "analyze"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = list(args)
        pre = []
        while rest and rest[0] == "--debug":  # the group's own option
            pre.append(rest.pop(0))
        if rest and rest[0] not in self.commands and rest[0] not in ("-h", "--help",
                                                                      "--version"):
            rest.insert(0, self.default_command)
        return super().parse_args(ctx, pre + rest)


def _stdout_console() -> Console:
    return Console(theme=THEME, highlight=False)


def _stderr_console() -> Console:
    return Console(theme=THEME, stderr=True, highlight=False)


_jobs_option = click.option(
    "--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
    help="Processes to use (one capture is split by connection; a large pcap or pcapng file "
         "is first walked by byte range; the connections summarised are shared out too).")


@click.group(cls=DefaultGroup, context_settings=CONTEXT)
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
@click.version_option(package_name="teardown-analyzer")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Reconstruct how every TCP connection in a packet capture was closed.

    \b
    Examples:
      teardown-analyze capture.pcap
      teardown-analyze hex capture.pcap --packet 4 --lang zh
      tcpdump -w - -i eth0 port 80 | teardown-analyze -
    """
    ctx.obj = {"debug": debug}


@cli.command("analyze")
@click.argument("captures", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl", "csv",
                                                    "markdown"]),
              default="table", show_default=True)
@click.option("--all", "show_all", is_flag=True,
              help="Show every connection, not only the unusual ones of a large capture.")
@click.option("--flow", "flows", type=int, multiple=True, metavar="ID",
              help="Show the ladder of connection ID (repeatable).")
@click.option("--detail", is_flag=True, help="Show the ladder of every connection.")
@click.option("--kernel", is_flag=True,
              help="Name the Linux code path behind each transition (with --flow/--detail).")
@click.option("--time-wait", "time_wait", type=click.FloatRange(min=0), default=60.0,
              show_default=True, metavar="SECONDS",
              help="TIME_WAIT length of the stack (Linux: 60 s).")
@_jobs_option
@click.option("--max-connections", type=click.IntRange(min=1), default=None,
              help="Cap on connections tracked at once; the longest idle are evicted.")
@click.option("--quiet", "-q", is_flag=True,
              help="No warnings and no progress bar on standard error.")
def analyze_cmd(captures: tuple[str, ...], fmt: str, show_all: bool, flows: tuple[int, ...],
                detail: bool, kernel: bool, time_wait: float, jobs: int,
                max_connections: int | None, quiet: bool) -> None:
    """Reconstruct how every TCP connection in the captures was closed.

    CAPTURES are pcap or pcapng files (gzip allowed), or - for standard input.

    \b
    Examples:
      teardown-analyze capture.pcap
      teardown-analyze capture.pcap --flow 3 --kernel
      teardown-analyze capture.pcap --format json
    """
    wants_ladder = detail or bool(flows)
    options = Options(time_wait_s=time_wait, keep_ladder=wants_ladder,
                      max_connections=max_connections)
    report = _run_analysis(captures, options, jobs, quiet)
    console = _stdout_console()
    if fmt == "json":
        _stream(report, quiet, lambda bar: iter_report_json(report, wants_ladder, jobs, bar))
    elif fmt == "jsonl":
        _stream(report, quiet, lambda bar: iter_report_jsonl(report, wants_ladder, jobs, bar))
    elif fmt == "csv":
        _stream(report, quiet, lambda bar: iter_report_csv(report, jobs, bar))
    elif fmt == "markdown":
        click.echo(report_markdown(report), nl=False)
    elif wants_ladder:
        chosen = report.connections if detail else select(report, flows)
        missing = set(flows) - {c.id for c in chosen}
        if missing:
            raise errors.UsageError(f"--flow: no connection {sorted(missing)[0]} (ids run "
                                    f"from 1 to {len(report.connections)})")
        for conn in chosen:
            console.print(ladder(conn, kernel))
            console.print()
    elif as_listing(report, show_all):
        marks: set[str] = set()
        _stream(report, quiet, lambda bar: iter_listing(report, jobs, bar, marks))
        console.print(totals_text(report))
        for line in legend(marks):
            console.print(Text(line, style="dim"))
    else:
        console.print(connections_table(report, show_all))
    _finish(report, quiet)


def _stream(report: Report, quiet: bool, pieces: Callable[[ProgressFn], Iterable[str]]
            ) -> None:
    """Write ``pieces`` (made with a progress callback, or None) to standard output, with a
    bar counting the connections written on a terminal's standard error: only when
    standard output is not a terminal too (a file or a pipe), where nothing else shows
    progress; output on the terminal shows its own, and a bar would be drawn through it."""
    out = sys.stdout
    err = _stderr_console()
    bar = not quiet and err.is_terminal and not out.isatty() and bool(report.connections)
    with _counting_bar(err, "writing", len(report.connections)) if bar else nullcontext() \
            as progress:
        for piece in pieces(progress):
            out.write(piece)
        out.flush()


@contextmanager
def _counting_bar(err: Console, verb: str, total: int | None = None
                  ) -> Iterator[Callable[..., None]]:
    """A bar counting connections (``verb`` them) on ``err``: told how many are done, and
    how many in all if that was not known at the start."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn(verb), BarColumn(), MofNCompleteColumn(),
                  TextColumn("connections"), console=err, transient=True) as bar:
        task = bar.add_task("", total=total)
        yield lambda done, total=total: bar.update(task, completed=done, total=total)


def _run_analysis(captures: Sequence[str], options: Options, jobs: int,
                  quiet: bool) -> Report:
    """The analysis, with a progress bar on a terminal's standard error."""
    err = _stderr_console()
    if quiet or not err.is_terminal:
        return analyze(captures, options, jobs)
    import os
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    total = sum(os.path.getsize(p) for p in captures if p != "-" and os.path.isfile(p))
    with Progress(TextColumn("analysing"), BarColumn(), DownloadColumn(),
                  TextColumn("{task.fields[packets]} packets"), console=err,
                  transient=True) as bar:
        task = bar.add_task("", total=total or None, packets=0)
        return analyze(captures, options, jobs,
                       lambda packets, done: bar.update(task, completed=done,
                                                        packets=packets))


def _finish(report: Report, quiet: bool) -> None:
    """Warnings on stderr; a capture that broke off part-way still ends with status 3."""
    err = _stderr_console()
    broken = None
    for info in report.captures:
        if not quiet:
            for w in info.warnings:
                err.print(f"warning: {info.source}: {errors.printable(w)}",
                          style="ta.warning", markup=False, soft_wrap=True)
        if info.error is not None and broken is None:
            broken = info.error
    if broken is not None:
        if not quiet:
            err.print(f"warning: {broken.source}: the packets before the problem were "
                      f"analysed", style="ta.warning", markup=False, soft_wrap=True)
        raise broken


def _condition_options(f: Any) -> Any:
    """One option per condition of :data:`check.CONDITIONS`, the registry rules files use."""
    for cond in reversed(list(CONDITIONS.values())):
        if cond.flag:
            f = click.option(cond.option, cond.key, is_flag=True, help=cond.help)(f)
        else:
            f = click.option(cond.option, cond.key, metavar=cond.metavar, help=cond.help)(f)
    return f


@cli.command("check")
@click.argument("captures", nargs=-1, required=True)
@click.option("--expect", "rules_file", type=click.Path(exists=True, dir_okay=False),
              metavar="RULES.toml", help="A rules file: named [[rule]] tables.")
@_condition_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--junit", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write a JUnit XML report (one testcase per rule) to FILE.")
@click.option("--github", is_flag=True,
              help="Also print GitHub Actions annotations (::error / ::warning).")
@click.option("--time-wait", "time_wait", type=click.FloatRange(min=0), default=60.0,
              show_default=True, metavar="SECONDS",
              help="TIME_WAIT length of the stack (Linux: 60 s).")
@_jobs_option
@click.option("--quiet", "-q", is_flag=True,
              help="No warnings and no progress bar on standard error.")
def check_cmd(captures: tuple[str, ...], rules_file: str | None, fmt: str, junit: str | None,
              github: bool, time_wait: float, jobs: int, quiet: bool,
              **conditions: Any) -> None:
    """Fail (exit 1) when the teardowns in the captures break a rule: a CI gate.

    Rules come from --expect RULES.toml and from the inline options; each inline
    option is one rule of severity error.  Exit 0: every error rule holds; 1: one
    is violated; 2: a usage or rules-file mistake; 3: a capture cannot be read.

    \b
    Examples:
      teardown-analyze check trace.pcap --no-rst --time-wait-on client
      teardown-analyze check trace.pcap --max-half-close 2s --kind four-way,three-way
      teardown-analyze check trace.pcap --expect rules.toml --junit teardown.xml --github
    """
    from .check_render import check_github, check_json, check_junit, check_summary

    rules = inline_rules(conditions)
    if rules_file is not None:
        try:
            with open(rules_file, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise errors.UsageError(f"--expect: cannot read {rules_file}: {exc}") from exc
        rules = parse_rules(text, rules_file) + rules
    if not rules:
        raise errors.UsageError("no rules: give --expect RULES.toml or an inline rule "
                                "such as --no-rst (see check --help)")
    if github and fmt == "json":
        raise errors.UsageError("--github and --format json both write to standard output; "
                                "use one of them (--junit writes to a file)")
    report = _run_analysis(captures, Options(time_wait_s=time_wait, keep_ladder=False), jobs,
                           quiet)
    err = _stderr_console()
    # (a bar for the connections the facts do not clear, summarised to be judged)
    with _counting_bar(err, "checking") if not quiet and err.is_terminal else nullcontext() \
            as progress:
        result = evaluate(rules, report, jobs, progress)
    if fmt == "json":
        click.echo(check_json(result), nl=False)
    else:
        _stdout_console().print(check_summary(result), crop=False)
    if junit:
        try:
            with open(junit, "w", encoding="utf-8") as fh:
                fh.write(check_junit(result))
        except OSError as exc:
            raise errors.UsageError(f"--junit: cannot write {junit}: {exc.strerror}") from exc
    if github:
        click.echo(check_github(result), nl=False)
    _finish(report, quiet)
    if not result.passed:
        raise errors.CheckFailed(f"check failed: {result.summary()}")


@cli.command("hex")
@click.argument("capture", required=False)
@click.option("--packet", "-p", type=int, help="Packet number in CAPTURE (from 1).")
@click.option("--raw", "raw", help="A TCP header as hex text (spaces, colons, 0x allowed).")
@click.option("--src", help="Source IP address, to verify the checksum of --raw.")
@click.option("--dst", help="Destination IP address, to verify the checksum of --raw.")
@click.option("--with-ip", is_flag=True, help="Add the IP header's rows (with --raw: the "
                                              "hex starts with the IP header).")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json", "svg"]),
              default="table", show_default=True)
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of standard output.")
def hex_cmd(capture: str | None, packet: int | None, raw: str | None, src: str | None,
            dst: str | None, with_ip: bool, fmt: str, lang: str, output: str | None) -> None:
    """Annotate a TCP header byte for byte, as a table to paste into a write-up.

    \b
    Examples:
      teardown-analyze hex capture.pcap --packet 4
      teardown-analyze hex --raw "80 26 13 8a 00 00 07 d2 7e 08 ba a0 80 11 05 b4 9e 1c 00 00
      01 01 08 0a 00 00 7e db 00 85 c7 30" --src 172.16.48.13 --dst 172.16.48.1 --lang zh
    """
    from .hexview import annotate_packet, annotate_raw, parse_hex  # (only this command's)

    if raw is not None and capture is not None:
        raise click.UsageError("give either CAPTURE with --packet, or --raw, not both")
    if raw is not None:
        result = annotate_raw(parse_hex(raw), src, dst, lang, with_ip)
    elif capture is not None:
        if packet is None:
            raise click.UsageError("--packet N is required with CAPTURE")
        if src or dst:
            raise click.UsageError("--src/--dst are for --raw; a capture has its addresses")
        result = annotate_packet(capture, packet, lang, with_ip)
    else:
        raise click.UsageError("give CAPTURE --packet N, or --raw HEX")
    rows = list(result.rows)
    title = None if result.frame is None else f"packet {result.frame.index}"
    context = result.context or []
    if fmt == "markdown":
        _emit(hex_markdown(rows, lang) + "".join(f"\n{line}\n" for line in context), output)
    elif fmt == "json":
        _emit(hex_json(rows), output)
    elif fmt == "svg":
        _emit(svg_of(hex_table(rows, lang, title)), output)
    else:
        if output:
            console = Console(theme=THEME, file=open(output, "w", encoding="utf-8"),
                              width=120, highlight=False)
        else:
            console = _stdout_console()
        console.print(hex_table(rows, lang, title))
        for line in context:
            console.print(line, markup=False, highlight=False)
        for problem in result.header.problems:
            console.print(problem, style="ta.warning", markup=False)


def _emit(text: str, output: str | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        click.echo(text, nl=False)


def main(argv: Sequence[str] | None = None) -> Any:
    """Entry point: run the CLI, turn the project's errors into one line and an exit status."""
    # numpy's OpenBLAS starts a thread per other core when numpy is imported (here, when
    # a capture is first read), and each spins about 0.1 s waiting for work: CPU taken
    # from the analysis, which makes no BLAS call.  Unless the user chose a number.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="teardown-analyze", standalone_mode=False)
    except click.exceptions.Abort:
        _stderr_console().print("aborted", style="ta.bad", markup=False)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(errors.EXIT_USAGE if exc.exit_code == 2 else exc.exit_code)
    except errors.TeardownError as exc:
        if debug:
            traceback.print_exc()
        _stderr_console().print(f"error: {errors.printable(str(exc))}", style="ta.bad",
                                markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            traceback.print_exc()
        _stderr_console().print(f"internal error: {type(exc).__name__}: "
                                f"{errors.printable(str(exc))} (run with --debug for a "
                                f"traceback)", style="ta.bad", markup=False, soft_wrap=True)
        sys.exit(70)
    sys.exit(0)
