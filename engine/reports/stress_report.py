"""The stress run's `report.html`: the tables printed on screen and the charts, in one
self-contained page (engine.reports.html_report) that opens with the run's time, the
engine's version, the profile and the inputs.

A scenario is an input even when it is built in or was read from a file this module never
sees, so it is identified by the sha256 of its canonical form as run (every field: paths,
impact, book, profile, instruments), and the book by its snapshot file's sha256 or by its
synthetic recipe (accounts, seed, long share).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table

from engine.book.instruments import InstrumentTable
from engine.reports.chart_style import DEFAULT_START
from engine.reports.html_report import (
    RunInfo,
    document,
    file_sha256,
    heading,
    image_html,
    paragraph,
    rich_table_html,
)
from engine.stress.scenario_model import Scenario

REPORT_HTML = "report.html"
CAPTIONS = {
    "price_liquidations.png": "Marks and liquidations",
    "insurance_fund.png": "The insurance fund",
    "liquidation_map.png": "Liquidation map before the run",
    "reverse_stress.png": "The fund against the size of the move",
}


def scenario_start(scenario: Scenario) -> datetime:
    """The UTC time of the scenario's t = 0: its `start` where it has one (a datetime or ISO
    text), else DEFAULT_START (the built-in scenario's day)."""
    start = getattr(scenario, "start", None)
    if isinstance(start, str):
        start = datetime.fromisoformat(start.replace("Z", "+00:00"))
    if isinstance(start, datetime):
        return start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    return DEFAULT_START


def _plain(value: Any) -> Any:
    """A JSON-able, deterministic form of a scenario's fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, InstrumentTable):
        return {
            "money_decimals": value.money_decimals,
            "instruments": [_plain(i) for i in value.instruments],
        }
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return {"path": str(value), "sha256": file_sha256(value) if value.is_file() else None}
    if isinstance(value, Decimal | Fraction):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def write(path: Path, scenario: Scenario, info: RunInfo, shown: Sequence[Any]) -> Path:
    """report.html: `shown` in order (rich tables as tables, PNG paths as images)."""
    body = [
        paragraph(scenario.description) if scenario.description else "",
        paragraph(
            f"Scenario `{scenario.name}` from {scenario_start(scenario):%Y-%m-%d %H:%M} UTC,"
            f" {scenario.duration_s / 3600:g} h in steps of {scenario.step_s} s. Money rounded"
            " to 0.01 of the currency for reading; the exact figures are in `summary.json`"
            " and the Parquet files beside this report."
        ),
    ]
    for item in shown:
        if isinstance(item, Path):
            caption = CAPTIONS.get(item.name, item.stem)
            body += [heading(caption), image_html(item, caption)]
        elif isinstance(item, Table | Group):
            title = "Reverse stress test" if isinstance(item, Group) else "The cascade"
            body += [heading(title), rich_table_html(item)]
    path.write_text(document(f"Stress run — {scenario.name}", info, body))
    return path
