"""Renderers for the main analysis: the connections table, the ladder, JSON, CSV, Markdown.

Every renderer takes a :class:`~teardown_analyzer.analysis.Report` (or one
connection) and returns a rich renderable or a string; the CLI prints it.
"""

from __future__ import annotations

import csv
from functools import partial
import io
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from .analysis import ConnectionResult, Report, StateEntry
from .flows import KEEPALIVE_GAVE_UP
from .kernelpaths import kernel_path
from .render import dumps
from .states import NOT_SHOWN, Event, SideState

FOLD_ABOVE = 50
"""Tables with more connections than this show the unusual ones and fold the rest."""
MAX_ROWS = 200
"""At most this many unusual connections in a folded table."""
ProgressFn = Optional[Callable[[int], None]]
"""What the streaming renderers tell how many connections they have written (or None)."""


def _ep(ep: tuple[str, int]) -> str:
    ip, port = ep
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _seq(states: Sequence[StateEntry]) -> str:
    """A side's states, "—" for none: no socket of its own seen to take part (a SYN
    unanswered, or answered by a RST from no socket); ``*`` marks one inferred, ``?`` one
    no segment shows."""
    return " → ".join(s.state + _mark(s) for s in states) or "—"


def _mark(s: StateEntry) -> str:
    return "*" if s.inferred else "?" if s.note.startswith(NOT_SHOWN) else ""


def _tw(c: ConnectionResult) -> str:
    tw = c.time_wait
    if not tw:
        return ""
    parts = [f"{tw['side']}"]
    if tw["fin_reacks"]:
        parts.append(f"{tw['fin_reacks']} re-ACK")
    if tw["reuse"]:
        parts.append(f"reuse +{tw['reuse']['after_s']:.3f}s → {tw['reuse']['outcome']}")
    if tw["end"] and tw["end"].startswith("inferred"):
        parts.append("expired*")
    return ", ".join(parts)


def _dur(s: float | None) -> str:
    if s is None:
        return ""
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.3f} s"


def connections_table(report: Report, show_all: bool = False) -> RenderableType:
    """One row per connection, then the totals."""
    conns: Sequence[ConnectionResult] = report.connections
    folded = cut = 0
    if not show_all and len(conns) > FOLD_ABOVE:
        unusual = report.connections.facts().unusual.nonzero()[0].tolist()
        folded = len(conns) - len(unusual)
        cut = max(0, len(unusual) - MAX_ROWS)
        conns = [report.connections[i] for i in unusual[:MAX_ROWS]]
    table = Table(title="TCP teardowns", header_style="bold", show_lines=True)
    # (name; its words kept whole; the width it prefers, see _Fitted)
    columns = (("id", True, None), ("client → server", False, 23), ("close", True, None),
               ("client states", True, 13), ("server states", True, 13),
               ("details", False, 20))
    for name, _, _ in columns:
        table.add_column(name, overflow="fold")
    for c in conns:
        close = Text(c.kind, style=_kind_style(c.kind))
        if c.initiator:
            close.append(f"\nby {c.initiator}")
        details = _details(c)
        table.add_row(Text(str(c.id)), Text(f"{_ep(c.client)}\n→ {_ep(c.server)}"), close,
                      Text(_seq(c.client_states), style="ta.state"),
                      Text(_seq(c.server_states), style="ta.state"),
                      Text("\n".join(details)).append(
                          "".join(f"\n{a}" for a in c.anomalies[:3]) if details
                          else "\n".join(c.anomalies[:3]), style="ta.anomaly"))
    # (no table at all when no row is left to show: a header over nothing says nothing)
    parts: list[RenderableType] = [_Fitted(table, [c[1] for c in columns],
                                           [c[2] for c in columns])] if conns else []
    if folded:
        parts.append(Text(f"{folded} connections with nothing unusual (closed normally, or "
                          f"still open) are folded (--all shows them)", style="dim"))
    if cut:
        parts.append(Text(f"{cut} more unusual connections not shown (--all shows every "
                          f"connection; --format json/csv lists them all)", style="dim"))
    parts.append(totals_text(report))
    parts.extend(Text(line, style="dim")
                 for line in legend(set().union(*(_marks(c) for c in conns))))
    return Group(*parts)


def _details(c: ConnectionResult) -> list[str]:
    """What the tables say of ``c`` beside its states: how long it was half-closed, its
    TIME_WAIT, the keepalive and zero-window probes each side sent and a keepalive
    timeout's RST."""
    details = []
    if c.half_close_s is not None:
        details.append(f"half-close {_dur(c.half_close_s)}")
    if c.time_wait:
        details.append(f"TIME_WAIT {_tw(c)}")
    for key, what in (("keepalive_probes", "keepalive"), ("window_probes", "zero-window")):
        probes = [f"{role} {c.directions[role][key]}" for role in ("client", "server")
                  if c.directions[role][key]]
        if probes:
            details.append(f"{what} probes: {', '.join(probes)}")
    details.extend(f"keepalive timeout: the {r['from']}'s RST" for r in c.rsts
                   if KEEPALIVE_GAVE_UP in r["note"])
    return details


def _marks(c: ConnectionResult) -> set[str]:
    """What the marks :func:`_seq` puts on ``c``'s states stand for, for the legend:
    ``held`` for a ``*`` at a FIN that waited behind data (``flows.held_fin_note``),
    ``timer`` for any other ``*``, ``?`` for a state not shown."""
    marks = set()
    for s in (*c.client_states, *c.server_states):
        mark = _mark(s)
        if mark == "*":
            marks.add("held" if s.event == "SEND_FIN" else "timer")
        elif mark:
            marks.add(mark)
    return marks


def legend(marks: set[str]) -> list[str]:
    """What ``marks`` (of :func:`_marks`) mean."""
    lines = []
    starred = [what for key, what in (
        ("timer", "inferred (a timer, or a silent expiry the next packet proves), not seen "
                  "on the wire"),
        ("held", "a latest time: the FIN waited behind data, and close() or shutdown() "
                 "came at it or before")) if key in marks]
    if starred:
        lines.append("* " + "; or, ".join(starred))
    if "?" in marks:
        lines.append("? not shown: no segment tells whether the side went through this "
                     "state (--detail gives the other reading)")
    return lines


class _Fitted:
    """A table whose columns are given their widths here, to fit the console: each its
    widest line if they all fit.  Otherwise each is first given its least width (for a
    column of ``whole`` words, such as state names, its longest word; for one of folded
    text, such as addresses, :data:`FOLDED`), then what it ``prefers`` (an address of
    IPv4 on one line, a state and its arrow), then its widest line, a level at a time:
    where a level does not fit, what is left of the console's width is shared in
    proportion to what each column lacks of it.  (Left to rich, a table with long cells
    in a narrow console breaks state names, or is drawn wider than the console, which
    crops its right edge.)  Rich measures no cell of a column of a given width, which
    makes a large table quicker to draw too."""

    def __init__(self, table: Table, whole: Sequence[bool], prefers: Sequence[int | None]
                 ) -> None:
        self.table = table
        self.levels: list[list[int]] = [[], [], []]  # least, preferred, widest
        for column, keep, wish in zip(table.columns, whole, prefers):
            lines = [line for cell in (column.header, *column.cells) for line in
                     (cell.plain if isinstance(cell, Text) else str(cell)).split("\n")]
            widest = max(map(cell_len, lines))
            longest = max((cell_len(w) for line in lines for w in line.split()), default=1)
            least = longest if keep else min(widest, FOLDED)
            self.levels[0].append(least)
            self.levels[1].append(max(least, min(widest, wish or widest)))
            self.levels[2].append(widest)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        room = options.max_width - 3 * len(self.table.columns) - 1  # (borders, padding)
        widths = self.levels[0]
        for level in self.levels[1:]:
            if sum(level) <= room:
                widths = level
                continue
            lacking = [want - got for want, got in zip(level, widths)]
            spare = room - sum(widths)
            if spare > 0:
                more = [spare * lack // sum(lacking) for lack in lacking]
                for i in sorted(range(len(more)), key=lambda i: more[i] - lacking[i])[
                        :spare - sum(more)]:  # (the remainder of the rounding)
                    more[i] += 1
                widths = [w + m for w, m in zip(widths, more)]
            break
        for column, width in zip(self.table.columns, widths):
            column.width = width
        yield self.table


FOLDED = 8
"""The narrowest a column of folded text (addresses, details) is made (:class:`_Fitted`)."""


LIST_ABOVE = 2000
"""``--all`` with more connections than this prints one line per connection instead of the
table: rich lays a table out at about 1 ms a row and holds every row until it prints."""


def as_listing(report: Report, show_all: bool) -> bool:
    """Whether ``--all`` prints :func:`iter_listing` rather than the table."""
    return show_all and len(report.connections) > LIST_ABOVE


def listing_line(c: ConnectionResult) -> str:
    """One connection on one line (``--all`` on a large capture)."""
    close = c.kind + (f" by {c.initiator}" if c.initiator else "")
    details = _details(c) + list(c.anomalies)
    return (f"{c.id:>7}  {_ep(c.client)} → {_ep(c.server)}  {close}  client: "
            f"{_seq(c.client_states)}  server: {_seq(c.server_states)}"
            + (f"  | {'; '.join(details)}" if details else "") + "\n")


def _listing_entry(c: ConnectionResult) -> tuple[str, set[str]]:
    return listing_line(c), _marks(c)


def iter_listing(report: Report, jobs: int = 1, progress: ProgressFn = None,
                 marks: set[str] | None = None) -> Iterator[str]:
    """Every connection, a line each, rendered by ``jobs`` processes; what the marks on
    their states stand for (:func:`_marks`) added to ``marks``, for :func:`legend`."""
    yield "     id  client → server  close  client: states  server: states  | details\n"
    for line, marked in report.connections.rendered(_listing_entry, jobs, progress):
        if marks is not None:
            marks |= marked
        yield line


def _kind_style(kind: str) -> str:
    return "ta.bad" if kind in ("rst", "fin-then-rst", "half-open") else ""


def totals_text(report: Report) -> Text:
    t = report.totals()
    kinds = ", ".join(f"{k} {n}" for k, n in t["kinds"].items() if n)
    count = t["connections"]
    line = (f"{count} connection{'' if count == 1 else 's'}: {kinds or 'none'}; "
            f"RSTs {t['rsts']}; "
            f"half-open {t['half_open']}; TIME_WAIT on client {t['time_wait']['client']}, "
            f"on server {t['time_wait']['server']}")
    skipped: dict[str, int] = {}
    for per in report.skipped.values():
        for reason, n in per.items():
            skipped[reason] = skipped.get(reason, 0) + n
    if skipped:
        line += "\nskipped packets: " + ", ".join(f"{r} {n}" for r, n in sorted(skipped.items()))
    for info in report.captures:
        if info.stopped_ts_ns is not None and info.last_ts_ns is not None:
            name = f"{info.source}: " if len(report.captures) > 1 else ""
            line += (f"\n{name}the capture stopped "
                     f"{_dur((info.stopped_ts_ns - info.last_ts_ns) / 1e9)} after its last "
                     f"packet (pcapng interface statistics); all but its last second taken "
                     f"as silence")
    return Text(line)


def _ts(ts: float, base: float) -> str:
    return f"+{ts - base:.6f}"


def ladder(c: ConnectionResult, kernel: bool = False) -> RenderableType:
    """The ladder of one connection: every packet of the handshake and teardown.

    The notes go under the table, numbered, with their number in the packet's row and at
    the state they explain: so that the table keeps to 80 columns, and a note is written
    out once however many places it explains."""
    head = Text(f"connection {c.id}: {_ep(c.client)} (client) ↔ {_ep(c.server)} (server), "
                f"{c.kind}, initiator {c.initiator or '-'}", style="bold")
    base = min([c.first_ts] + [st["ts"] for st in c.ladder])  # an unsorted merge: no -t
    notes: dict[str, int] = {}

    def mark(note: str) -> str:
        return f"[{notes.setdefault(note, len(notes) + 1)}]" if note else ""

    table = Table(header_style="bold", box=None, pad_edge=False, padding=(0, 1, 0, 0))
    for name in ("pkt", "time", "client", "", "server", "flags", "seq", "ack", "len",
                 "client\nstate", "server\nstate", "note"):
        table.add_column(name, no_wrap=True)
    isn = {"client": c.directions["client"]["isn"], "server": c.directions["server"]["isn"]}
    for st in c.ladder:
        frm = st["from"]
        to = "server" if frm == "client" else "client"
        rel_seq = _rel(st["seq"], isn[frm])
        rel_ack = _rel(st["ack"], isn[to]) if "ACK" in st["flags"] else ""
        arrow = "──▶" if frm == "client" else "◀──"
        table.add_row(str(st["packet"]), _ts(st["ts"], base),
                      "●" if frm == "client" else "", arrow, "●" if frm == "server" else "",
                      ",".join(st["flags"]), str(rel_seq), str(rel_ack), str(st["len"]),
                      Text(st["states"]["client"] or "—", style="ta.state"),
                      Text(st["states"]["server"] or "—", style="ta.state"),
                      Text(mark(st["note"]), style="ta.anomaly"))
    parts: list[RenderableType] = [head, table]
    parts += [Text(f"[{n}] {note}", style="ta.anomaly") for note, n in notes.items()]
    if c.vantage:
        v = c.vantage
        rt = v["round_trip_s"]
        parts.append(Text(f"capture point: {v['point']} (RTT {v['rtt_s'] * 1000:.3f} ms; round "
                          f"trip to the client {rt['client'] * 1000:.3f} ms, to the server "
                          f"{rt['server'] * 1000:.3f} ms); {v['lag']}", style="dim"))
    for role, states in (("client", c.client_states), ("server", c.server_states)):
        parts.append(Text(f"{role}: {_seq(states)}", style="ta.state"))
        for s in states:
            line = f"  {s.state:<12} packet {s.packet:<6} {_ts(s.ts, base)}"
            if s.note:
                line += f"  {mark(s.note) if s.note in notes else s.note}"
            parts.append(Text(line))
            if kernel and s.event:
                path = kernel_path(SideState(s.old), SideState(s.state), Event(s.event))
                if path:
                    parts.append(Text(f"      v5.8: {path[0]}", style="dim"))
                    if path[1] != "same":
                        parts.append(Text(f"      current: {path[1]}", style="dim"))
    for a in c.anomalies:
        parts.append(Text(f"anomaly: {a}", style="ta.anomaly"))
    for n in c.notes:
        if n.partition(": ")[2] not in notes:  # ("packet N: " and a note not written above)
            parts.append(Text(f"note: {n}"))
    return Group(*parts)


def _rel(value: int, isn: int | None) -> int | str:
    if isn is None:
        return value
    return (value - isn) & 0xFFFFFFFF


def report_json(report: Report, ladder: bool = False) -> str:
    return "".join(iter_report_json(report, ladder))


def _indented(value: Any, depth: int) -> str:
    return dumps(value).rstrip("\n").replace("\n", "\n" + " " * depth)


def _json_line(c: ConnectionResult, ladder: bool = False) -> str:
    return dumps(c.to_dict(ladder), line=True)


def iter_report_json(report: Report, ladder: bool = False, jobs: int = 1,
                     progress: ProgressFn = None) -> Iterator[str]:
    """The JSON document in pieces, one connection at a time, so a capture of a million
    connections is never held as one string.  Each connection is one compact line;
    ``jobs`` processes render them; ``progress`` is told how many are out (see
    :meth:`~teardown_analyzer.results.ResultStore.rendered`)."""
    head = report.to_dict(ladder=False, connections=False)
    yield "{\n"
    yield f'  "captures": {_indented(head["captures"], 2)},\n'
    if not report.connections:
        yield '  "connections": [],\n'
    else:
        yield '  "connections": [\n'
        last = len(report.connections) - 1
        lines = report.connections.rendered(partial(_json_line, ladder=ladder), jobs,
                                            progress)
        for i, line in enumerate(lines):
            yield "    " + line + (",\n" if i < last else "\n")
        yield "  ],\n"
    yield f'  "schema": {dumps(head["schema"], line=True)},\n'
    yield f'  "totals": {_indented(head["totals"], 2)}\n'
    yield "}\n"


def report_jsonl(report: Report, ladder: bool = False) -> str:
    return "".join(iter_report_jsonl(report, ladder))


def iter_report_jsonl(report: Report, ladder: bool = False, jobs: int = 1,
                      progress: ProgressFn = None) -> Iterator[str]:
    for line in report.connections.rendered(partial(_json_line, ladder=ladder), jobs,
                                            progress):
        yield line + "\n"


CSV_COLUMNS = ("id", "capture", "client_ip", "client_port", "server_ip", "server_port",
               "first_ts", "last_ts", "handshake", "kind", "initiator", "half_close_s",
               "half_close_bytes", "client_states", "server_states", "client_final",
               "server_final", "time_wait_side", "fin_reacks", "rsts", "zeek_state",
               "anomalies")


def _flat(c: ConnectionResult) -> list[Any]:
    return [c.id, c.source, c.client[0], c.client[1], c.server[0], c.server[1], c.first_ts,
            c.last_ts, c.handshake, c.kind, c.initiator or "", c.half_close_s
            if c.half_close_s is not None else "", c.half_close_bytes,
            " ".join(s.state for s in c.client_states),
            " ".join(s.state for s in c.server_states), c.client_final, c.server_final,
            c.time_wait["side"] if c.time_wait else "",
            c.time_wait["fin_reacks"] if c.time_wait else "", len(c.rsts), c.zeek_state,
            "; ".join(c.anomalies)]


def report_csv(report: Report) -> str:
    return "".join(iter_report_csv(report))


def _csv_line(row: Iterable[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()


def _csv_connection(c: ConnectionResult) -> str:
    return _csv_line(_flat(c))


def iter_report_csv(report: Report, jobs: int = 1, progress: ProgressFn = None
                    ) -> Iterator[str]:
    yield _csv_line(CSV_COLUMNS)
    yield from report.connections.rendered(_csv_connection, jobs, progress)


def report_markdown(report: Report) -> str:
    heads = ("id", "client", "server", "initiator", "kind", "client states",
             "server states", "half-close", "TIME_WAIT", "anomalies")
    out = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    marks: set[str] = set()
    for c in report.connections:
        marks |= _marks(c)
        cells = [str(c.id), _ep(c.client), _ep(c.server), c.initiator or "", c.kind,
                 _seq(c.client_states), _seq(c.server_states), _dur(c.half_close_s),
                 _tw(c), "; ".join(c.anomalies)]
        out.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    out.append("")
    out.append(totals_text(report).plain)
    out.extend(f"\n{line.replace('*', chr(92) + '*', 1)}" for line in
               legend(marks))
    return "\n".join(out) + "\n"


def select(report: Report, ids: Iterable[int]) -> list[ConnectionResult]:
    """The connections with these ids, in id order; ids that do not exist are left out.
    The n-th connection has id n, so only the chosen ones are decoded."""
    n = len(report.connections)
    return [report.connections[i - 1] for i in sorted(set(ids)) if 1 <= i <= n]
