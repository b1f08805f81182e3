"""Self-contained HTML reports (`report.html`): one file a committee can open, mail or print
to PDF from a browser, with no link outside itself.

Every report opens with what a reader needs to trust it (`RunInfo`): when it was run (UTC),
the engine's version, the waterfall profile, the command line, and each input with its
sha256. Charts are embedded as PNG (base64 `data:` URIs); tables come from the settlement
report's Markdown (`markdown_html`, the subset that report writes) or from the rich tables a
stress run prints (`rich_table_html`). Figures are the ones the tables print, so the HTML,
the Markdown and the screen agree.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table

from engine.reports.run_info import DISTRIBUTION

HASH_CHUNK = 1 << 20
STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 90%; }
th, td { border: 1px solid #ccc; padding: .25em .6em; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.alert td { color: #b00020; }
table.meta td:first-child { font-weight: bold; white-space: nowrap; }
code { font-family: Menlo, Consolas, monospace; font-size: 90%; word-break: break-all; }
img { max-width: 100%; border: 1px solid #ddd; margin: .5em 0; }
caption { font-weight: bold; text-align: left; padding: .3em 0; white-space: pre-line; }
@media print { h2 { page-break-before: auto; } img, table { page-break-inside: avoid; } }
"""


@dataclass(frozen=True)
class RunInfo:
    """What the report says about its run: inputs maps a name to a file (hashed) or to a
    description of an input that is not a file (with its own sha256, see `text_sha256`)."""

    run_at: datetime
    engine_version: str
    profile: str
    inputs: Mapping[str, tuple[str, str]]  # name -> (what: a path or a description, sha256)
    command: str

    @classmethod
    def from_metadata(cls, info: Mapping[str, Any]) -> RunInfo:
        """The same facts from a run's metadata document (engine.reports.run_info), so a
        report and the Parquet files beside it say the same thing."""
        command = info.get("command") or []
        return cls(
            run_at=datetime.fromisoformat(str(info["created_utc"]).replace("Z", "+00:00")),
            engine_version=str(info.get("engine_version", "unknown")),
            profile=str(info.get("profile")),
            inputs={
                name: (str(item["source"]), str(item["sha256"]))
                for name, item in dict(info.get("inputs", {})).items()
            },
            command=" ".join(command) if isinstance(command, list) else str(command),
        )

    def rows(self) -> list[tuple[str, str]]:
        rows = [
            ("run at", self.run_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
            ("engine version", f"{DISTRIBUTION} {self.engine_version}"),
            ("profile", self.profile),
            ("command", self.command),
        ]
        for name, (what, digest) in self.inputs.items():
            rows.append((f"input: {name}", f"{what}\nsha256 {digest}"))
        return rows


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ----- the document ----------------------------------------------------------------------
def document(title: str, info: RunInfo, body: Iterable[str]) -> str:
    """A whole HTML page: the title, the run's facts, then `body` (HTML fragments)."""
    meta = "".join(
        f"<tr><td>{html.escape(k)}</td><td><code>{_lines(v)}</code></td></tr>"
        for k, v in info.rows()
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<table class="meta"><caption>About this run</caption>{meta}</table>',
        *body,
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _lines(text: str) -> str:
    return "<br>".join(html.escape(line) for line in text.split("\n"))


def heading(text: str, level: int = 2) -> str:
    return f"<h{level}>{html.escape(text)}</h{level}>"


def paragraph(text: str) -> str:
    return f"<p>{_inline(text)}</p>"


def image_html(path: Path, alt: str) -> str:
    """The PNG at `path`, embedded."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


# ----- rich tables -----------------------------------------------------------------------
def rich_table_html(renderable: Table | Group) -> str:
    """A rich table (or a group of them) as HTML tables, the same cells; rows styled red
    are marked as alerts."""
    if isinstance(renderable, Group):
        return "\n".join(
            rich_table_html(r) for r in renderable.renderables if isinstance(r, Table | Group)
        )
    table = renderable
    columns = table.columns
    head = "".join(f"<th>{html.escape(str(c.header))}</th>" for c in columns)
    cells = [[str(cell) for cell in c.cells] for c in columns]
    rows = []
    for i, row in enumerate(table.rows):
        alert = ' class="alert"' if row.style is not None and "red" in str(row.style) else ""
        tds = "".join(
            f'<td class="{"num" if c.justify == "right" else "text"}">'
            f"{html.escape(cells[j][i])}</td>"
            for j, c in enumerate(columns)
        )
        rows.append(f"<tr{alert}>{tds}</tr>")
    caption = f"<caption>{html.escape(str(table.title))}</caption>" if table.title else ""
    return f"<table>{caption}<tr>{head}</tr>{''.join(rows)}</table>"


# ----- Markdown (the subset report.md is written in) -------------------------------------
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")
_ALIGN_ROW = re.compile(r"^\|(\s*:?-+:?\s*\|)+$")


def markdown_html(text: str, images: Path) -> str:
    """The settlement report's Markdown as HTML: headings, paragraphs, bullet lists, pipe
    tables (with their alignment row), `code`, and images, read from the folder `images`
    and embedded. The first level-1 heading is left out (the document has the title)."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    skipped_title = False
    while i < len(lines):
        line = lines[i].rstrip()
        if not line:
            i += 1
        elif line.startswith("# ") and not skipped_title:
            skipped_title = True
            i += 1
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif match := _IMAGE.match(line):
            out.append(image_html(images / match.group(2), match.group(1)))
            i += 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i].rstrip())
                i += 1
            out.append(_table(block))
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
        else:
            block = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|", "- ")):
                block.append(lines[i].strip())
                i += 1
            out.append(paragraph(" ".join(block)))
    return "\n".join(out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(block: list[str]) -> str:
    head = _cells(block[0])
    body = block[1:]
    right = [False] * len(head)
    if body and _ALIGN_ROW.match(body[0].replace(" ", "")):
        right = [c.endswith(":") for c in _cells(body[0])]
        body = body[1:]
    header = "".join(f"<th>{_inline(c)}</th>" for c in head) if any(head) else ""
    rows = []
    for line in body:
        tds = "".join(
            f'<td class="{"num" if j < len(right) and right[j] else "text"}">{_inline(c)}</td>'
            for j, c in enumerate(_cells(line))
        )
        rows.append(f"<tr>{tds}</tr>")
    return f"<table>{f'<tr>{header}</tr>' if header else ''}{''.join(rows)}</table>"


def _inline(text: str) -> str:
    """Escaped text with `code` spans."""
    parts = text.split("`")
    return "".join(
        f"<code>{html.escape(p)}</code>" if k % 2 else html.escape(p) for k, p in enumerate(parts)
    )
