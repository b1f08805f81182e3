"""The reverse stress test's chart (`reverse_stress.png`): the fund's start, low and end
against the size of the move, the threshold marked at the table's precision
(engine.reports.stress_tables.pct), and the flows that cover each run's deficit, stacked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from engine.reports.chart_style import (
    ADL_COLOR,
    FUND_COLOR,
    FUND_LOW_COLOR,
    IN_COLOR,
    LONG_COLOR,
    millions,
    save,
)
from engine.reports.settlement_summary import CURRENCY_DEFAULT
from engine.reports.stress_tables import pct
from engine.stress.reverse import ReverseStressResult


# ---------------------------------------------------------------
def reverse_stress_curve(
    result: ReverseStressResult,
    path: Path,
    money_decimals: int,
    *,
    currency: str = CURRENCY_DEFAULT,
) -> Path:
    return save(reverse_stress_figure(result, money_decimals, currency=currency), path)


def reverse_stress_figure(
    result: ReverseStressResult, money_decimals: int, *, currency: str = CURRENCY_DEFAULT
) -> Figure:
    """Top: the fund's stocks (equity at the start, its low, at the end) against the move.
    Bottom: the flows over each run, stacked as they cover the deficit (fund drawdown,
    ADL, socialized, unallocated), with the deficit to cover drawn on top: they meet. The
    threshold is printed as the table prints it (stress_tables.pct)."""
    points = result.points
    move = np.array([100.0 * float(p.move) for p in points])
    exhausted = np.array([p.fund_exhausted for p in points], dtype=bool)

    def series(name: str) -> np.ndarray:
        return millions([getattr(p, name) for p in points], money_decimals)

    fig = Figure(figsize=(11, 9.5))
    ax, flows = fig.subplots(2, 1, sharex=True)
    ax.plot(move, series("fund_start"), color="0.45", lw=0.9, ls="--", label="fund start")
    ax.plot(move, series("fund_low"), color=FUND_COLOR, lw=1.3, marker="o", ms=4, label="fund low")
    ax.plot(
        move,
        series("fund_end"),
        color=FUND_LOW_COLOR,
        lw=1.3,
        ls="-.",
        marker="s",
        ms=4,
        label="fund end",
    )
    low = series("fund_low")
    ax.scatter(
        move[exhausted],
        low[exhausted],
        color=LONG_COLOR,
        marker="x",
        zorder=3,
        s=40,
        label="exhausted",
    )
    ax.axhline(0, color="k", lw=0.8)
    threshold = None
    if result.move is not None:
        threshold = f"threshold {pct(result.move)} (bracket {pct(result.tolerance)})"
    for axis in (ax, flows):
        if result.move is not None:
            axis.axvline(100 * float(result.move), color=LONG_COLOR, ls="--", lw=1, label=threshold)
        axis.grid(alpha=0.3)
    ax.set_ylabel(f"insurance fund equity, M {currency}")
    twin = ax.twinx()
    twin.plot(
        move,
        series("liquidated_notional"),
        color="0.45",
        lw=1,
        ls=":",
        label="liquidated notional (right axis)",
    )
    twin.set_ylabel(f"liquidated notional, M {currency} (dotted)")
    title = (
        f"the fund survives every move up to {pct(result.move_max)}"
        if result.move is None
        else f"the fund is exhausted from a move of {pct(result.move)}"
    )
    ax.set_title(f"reverse stress: {title}")
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = twin.get_legend_handles_labels()
    ax.legend(handles + more_handles, labels + more_labels, fontsize=8, loc="lower left")
    width = 0.8 * float(np.min(np.diff(move))) if len(move) > 1 else 1.0
    bottom_pos, bottom_neg = np.zeros(len(points)), np.zeros(len(points))
    for name, label, color, hatch in (
        ("fund_drawdown", "fund drawdown", FUND_COLOR, ""),
        ("adl_amount", "ADL", ADL_COLOR, "//"),
        ("socialized", "socialized", LONG_COLOR, "xx"),
        ("unallocated", "unallocated", "k", ".."),
    ):
        values = series(name)
        bottom = np.where(values >= 0, bottom_pos, bottom_neg)
        flows.bar(move, values, width=width, bottom=bottom, color=color, hatch=hatch, label=label)
        bottom_pos += np.maximum(values, 0)
        bottom_neg += np.minimum(values, 0)
    flows.plot(
        move,
        series("deficit_to_cover"),
        color=IN_COLOR,
        marker="_",
        ms=14,
        lw=0,
        mew=2,
        label="deficit to cover",
    )
    flows.margins(y=0.06)
    flows.set_xlabel("move size m, % (each market moves by m x its direction)")
    flows.set_ylabel(f"over the run, M {currency}")
    flows.set_title("deficit to cover = fund drawdown + ADL + socialized + unallocated")
    flows.legend(fontsize=8, loc="upper left")
    return fig
