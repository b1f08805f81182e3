"""What every chart of the reports shares: colours and line styles, money on an axis, time
on an axis, and the one rounding rule.

- Series are told apart by colour *and* line style / marker (a grey-scale print or a
  colour-blind reader still separates them): `series_style(i)`. Longs and shorts have one
  colour each across every chart (`LONG_COLOR`, `SHORT_COLOR`, from the Okabe-Ito palette).
- Money on an axis is labelled with its unit ("M USDT"); a figure printed as text on a chart
  is `money_text`: the tables' formatter (engine.reports.stress_tables.money), rounded half
  even to the cent from the integer, never through a float, so a chart and the table beside
  it say the same number.
- Time on an axis is UTC clock time from the run's start (`DEFAULT_START` when the scenario
  gives none), labelled "UTC".

Figures are built on a bare matplotlib `Figure` (no GUI backend, no global pyplot state) and
saved without a timestamp, so the same run writes the same PNG bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, DateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, ScalarFormatter

from engine.reports.stress_tables import money

DPI = 110
# The built-in scenario replays 2025-10-11; a scenario without a start time is drawn from it.
DEFAULT_START = datetime(2025, 10, 11, tzinfo=UTC)

# Okabe-Ito: distinguishable by colour-blind readers; with `LINE_STYLES` also in grey print.
LONG_COLOR = "#d55e00"  # vermillion
SHORT_COLOR = "#0072b2"  # blue
# (Okabe-Ito's yellow is left out: it does not show on white.)
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000")
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "v", "D", "x", "+", "*", "P", "h")
# The insurance fund's series and flows, the same in every chart.
FUND_COLOR, FUND_LOW_COLOR, IN_COLOR, ADL_COLOR = "#0072b2", "#e69f00", "#009e73", "#cc79a7"


def money_text(units: int, decimals: int) -> str:
    """A money figure printed on a chart: the tables' text (half even, to the cent)."""
    return money(int(units), decimals)


def series_style(i: int) -> dict[str, Any]:
    """Colour, line style and marker of the i-th series: the three cycle with lengths 7, 4
    and 10, so no two of the first 140 series look alike, and no two of the first 7 share
    a colour or of the first 10 a marker."""
    return {
        "color": PALETTE[i % len(PALETTE)],
        "ls": LINE_STYLES[i % len(LINE_STYLES)],
        "marker": MARKERS[i % len(MARKERS)],
    }


def millions(units: np.ndarray | list[int] | int, decimals: int) -> np.ndarray:
    """Money units as display floats in millions of the currency (for an axis only)."""
    return np.asarray(units, dtype=np.float64) / 10.0**decimals / 1e6


def money_axis(currency: str) -> FuncFormatter:
    """Tick labels of a money axis in the currency: 1.5B, 2.0M, 3.5k, 12."""

    def fmt(value: float, _pos: int) -> str:
        magnitude = abs(value)
        for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if magnitude >= scale:
                return f"{value / scale:,.1f}{suffix}"
        return f"{value:,.0f}"

    return FuncFormatter(fmt)


def plain_numbers(ax: Axes, axis: str = "y") -> None:
    """Axis numbers as they are (no offset or 1e6 factor hidden at the axis' end)."""
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(formatter)


def utc_times(start: datetime, t_s: np.ndarray | list[int]) -> np.ndarray:
    """Seconds from the start as UTC datetimes (numpy datetime64, which matplotlib reads
    as UTC)."""
    base = np.datetime64(start.astimezone(UTC).replace(tzinfo=None), "s")
    return base + np.asarray(t_s, dtype=np.int64).astype("timedelta64[s]")


def utc_axis(ax: Axes, start: datetime, span_s: float) -> None:
    """Clock time (UTC) on the x axis, with the date in the label."""
    ax.xaxis.set_major_locator(AutoDateLocator(minticks=4, maxticks=10))
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M" if span_s <= 86_400 else "%m-%d %H:%M"))
    end = start + timedelta(seconds=span_s)
    days = start.strftime("%Y-%m-%d")
    if end.date() != start.date():
        days += f" to {end.strftime('%Y-%m-%d')}"
    ax.set_xlabel(f"time, UTC ({days})")


def utc_text(start: datetime, t_s: int = 0) -> str:
    """A moment of the run as text: 2025-10-11 09:20 UTC."""
    return (start.astimezone(UTC) + timedelta(seconds=t_s)).strftime("%Y-%m-%d %H:%M UTC")


def step_text(step_s: int) -> str:
    """The length of one step, for an axis label: 'per 1-minute step'."""
    if step_s % 60 == 0:
        return f"per {step_s // 60}-minute step"
    return f"per {step_s}-second step"


def save(fig: Figure, path: Path) -> Path:
    """Write the figure as PNG (no timestamp in the file)."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    return path
