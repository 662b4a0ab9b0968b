"""Renderers: results in, rich renderables or text out.  Nothing here prints.

The console is created by the CLI and handed in; styles are looked up by name in
:data:`THEME`, never written as colour literals elsewhere.  Text that comes from a
capture is never interpreted as rich markup (``Text`` objects, not markup strings).
"""

from __future__ import annotations

import io
import json
from typing import Any, Sequence

import orjson
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text
from rich.theme import Theme

from .annotate import Row

THEME = Theme({
    "ta.offset": "dim",
    "ta.bytes": "bold cyan",
    "ta.label": "",
    "ta.value": "bold",
    "ta.flag": "magenta",
    "ta.ok": "green",
    "ta.bad": "bold red",
    "ta.section": "bold underline",
    "ta.anomaly": "yellow",
    "ta.warning": "yellow",
    "ta.state": "cyan",
})

_HEADINGS = {
    "en": ("Offset", "Bytes", "Field", "Value", "Meaning"),
    "zh": ("偏移", "数据内容", "字段", "值", "含义"),
}
_SECTIONS = {
    "en": {"ip": "IP header", "tcp": "Basic TCP header", "tcp-options": "TCP options"},
    "zh": {"ip": "IP首部", "tcp": "基本TCP首部", "tcp-options": "TCP选项"},
}


def hex_table(rows: Sequence[Row], lang: str = "en", title: str | None = None) -> Table:
    """A rich table of annotated rows, with a section line where the header changes."""
    table = Table(title=title, show_lines=False, header_style="bold")
    for heading in _HEADINGS[lang]:
        table.add_column(heading, overflow="fold")
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            table.add_row("", Text(_SECTIONS[lang][section], style="ta.section"), "", "", "")
        table.add_row(Text(str(row.offset), style="ta.offset"),
                      Text(row.bytes, style="ta.bytes"),
                      Text(row.label, style="ta.label"),
                      Text(row.value, style=row.style or "ta.value"),
                      Text(row.meaning, style=row.style))
    return table


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def hex_markdown(rows: Sequence[Row], lang: str = "en") -> str:
    """A pipe table ready to paste into a write-up."""
    heads = _HEADINGS[lang]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            lines.append(f"| | **{_SECTIONS[lang][section]}** | | | |")
        cells = (str(row.offset), f"`{row.bytes}`" if row.bytes else "", row.label,
                 row.value, row.meaning)
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def hex_json(rows: Sequence[Row]) -> str:
    """The rows as a JSON list."""
    return dumps([r.to_dict() for r in rows])


def dumps(data: Any, line: bool = False) -> str:
    """The one place JSON is serialised: keys sorted, text as UTF-8; indented by two
    spaces and ending in a newline, or (``line``) one compact line without one.  orjson
    writes a report's connection five to seven times faster than json's C encoder (8
    against 40-57 µs for the benchmark's; with json they were a fifth of ``--format
    json``).  A string orjson refuses, a capture's path that is not UTF-8 (Python keeps
    its bytes as lone surrogates), is written by json as escapes (``\\udce9``), which
    ``json.loads`` and ``os.fsencode`` turn back into the path's bytes."""
    option = orjson.OPT_SORT_KEYS if line else orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    try:
        text = orjson.dumps(data, option=option).decode()
    except orjson.JSONEncodeError:
        text = json.dumps(data, sort_keys=True, indent=None if line else 2,
                          separators=(",", ":") if line else None)
    return text if line else text + "\n"


def svg_of(renderable: RenderableType, width: int = 120, title: str = "teardown-analyzer") -> str:
    """An SVG picture of a renderable, through rich's export."""
    console = Console(record=True, width=width, theme=THEME, file=io.StringIO(),
                      force_terminal=True, color_system="truecolor")
    console.print(renderable)
    return console.export_svg(title=title)
