"""PNG charts of a stress run's cascade, for a risk officer: what happened, when, and how
close it was.

- `price_liquidations.png`: each market's mark (% from its start) over the run, and the
  notional liquidated per step (long / short), the whole run and a zoom on the busiest
  hours through the rebound that followed;
- `insurance_fund.png`: the fund's equity after each step and its low within the step, on
  an axis scaled to its change, with its start, low and end; below, its flows.

The liquidation map is in engine.reports.stress_map_charts, the reverse stress test's chart
in engine.reports.stress_reverse_charts. Each chart has a `*_figure` function that returns
the matplotlib Figure (what the tests inspect) and one that writes the PNG. Money axes
carry the currency, time axes are UTC from the run's start (engine.reports.chart_style);
floats appear here only for display, and a figure printed on a chart is the tables' text.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from matplotlib import dates as mdates
from matplotlib.figure import Figure

from engine.reports.chart_style import (
    ADL_COLOR,
    DEFAULT_START,
    FUND_COLOR,
    FUND_LOW_COLOR,
    IN_COLOR,
    LONG_COLOR,
    SHORT_COLOR,
    millions,
    money_text,
    plain_numbers,
    save,
    series_style,
    step_text,
    utc_axis,
    utc_text,
    utc_times,
)
from engine.reports.settlement_summary import CURRENCY_DEFAULT
from engine.stress.simulation_result import SimulationResult

ZOOM_HOURS = 2.0
REBOUND_SHARE = 0.5  # the zoom runs on until the lowest mark has won back this share of its fall
REBOUND_MARGIN_S = 1800  # ... and this long after


# ----- marks and liquidations ----------------------------------------------------------------
def price_liquidations(
    result: SimulationResult,
    path: Path,
    *,
    main: str | None = None,
    start: datetime = DEFAULT_START,
    currency: str = CURRENCY_DEFAULT,
) -> Path:
    return save(price_liquidations_figure(result, main=main, start=start, currency=currency), path)


def price_liquidations_figure(
    result: SimulationResult,
    *,
    main: str | None = None,
    start: datetime = DEFAULT_START,
    currency: str = CURRENCY_DEFAULT,
) -> Figure:
    steps = result.steps
    t_s = np.array([s.t_s for s in steps], dtype=np.int64)
    x = mdates.date2num(utc_times(start, t_s))
    step_s = int(t_s[1] - t_s[0]) if len(t_s) > 1 else 60
    symbols = list(steps[0].marks) if steps else []
    main = main if main in symbols else (symbols[0] if symbols else None)
    long_m = millions([s.liquidated_long for s in steps], result.money_decimals)
    short_m = millions([s.liquidated_short for s in steps], result.money_decimals)
    change = {
        symbol: 100.0
        * (
            np.array([s.marks[symbol] for s in steps], dtype=np.float64)
            / steps[0].exogenous[symbol]
            - 1.0
        )
        for symbol in symbols
    }
    lowest = np.min(np.array(list(change.values())), axis=0) if symbols else np.zeros(len(t_s))
    window = zoom_window(t_s, long_m + short_m, lowest)
    fig = Figure(figsize=(15, 8.5))
    axes = fig.subplots(2, 2, sharex="col", gridspec_kw={"width_ratios": [3, 2]})
    width = step_s / 86_400 * 0.9
    for col, mask in enumerate((np.ones(len(t_s), dtype=bool), window)):
        ax = axes[0, col]
        every = max(1, int(mask.sum()) // 10)
        for i, symbol in enumerate(symbols):
            strong = symbol == main or len(symbols) <= 3 or symbol.startswith("ETH")
            ax.plot(
                x[mask],
                change[symbol][mask],
                lw=2.0 if strong else 1.0,
                ms=5 if strong else 3.5,
                markevery=(i % every, every),
                label=symbol,
                **series_style(i),
            )
        ax.set_ylabel("mark, % change from the run's start")
        ax.grid(alpha=0.3)
        bars = axes[1, col]
        bars.bar(x[mask], long_m[mask], width=width, color=LONG_COLOR, label="longs liquidated")
        bars.bar(
            x[mask],
            short_m[mask],
            width=width,
            bottom=long_m[mask],
            color=SHORT_COLOR,
            hatch="//",
            label="shorts liquidated",
        )
        bars.set_ylabel(f"liquidated notional, M {currency}\n{step_text(step_s)}")
        bars.grid(alpha=0.3)
        span = float(t_s[mask][-1] - t_s[mask][0]) if mask.any() else 0.0
        utc_axis(bars, start, span)
    if window.any() and not window.all():
        lo, hi = x[window][0], x[window][-1]
        for row, ax in enumerate(axes[:, 0]):
            label = "zoomed on the right" if row == 0 else None
            ax.axvspan(lo, hi, color="0.5", alpha=0.12, lw=0, label=label)
    axes[0, 0].legend(fontsize=7, ncol=2, loc="lower left")
    axes[1, 0].legend(fontsize=8, loc="upper right")
    run_span = f"{utc_text(start)} + {(t_s[-1] - t_s[0]) / 3600:g} h" if len(t_s) else ""
    axes[0, 0].set_title(f"{result.scenario}: marks and liquidations, {run_span}")
    if window.any():
        first, last = int(t_s[window][0]), int(t_s[window][-1])
        axes[0, 1].set_title(
            f"zoom {utc_text(start, first)[11:16]}-{utc_text(start, last)[11:16]} UTC:"
            f" the busiest {ZOOM_HOURS:g} h and the rebound"
        )
    return fig


def zoom_window(t_s: np.ndarray, liquidated: np.ndarray, lowest: np.ndarray) -> np.ndarray:
    """Mask of the steps to zoom on: the ZOOM_HOURS with the most liquidated notional, run on
    through the rebound (until the lowest mark, from its trough at or after the window's
    start, has won back REBOUND_SHARE of its fall, plus REBOUND_MARGIN_S). The whole run
    when it is shorter than ZOOM_HOURS."""
    n = len(t_s)
    span_s = ZOOM_HOURS * 3600
    if n < 2 or t_s[-1] - t_s[0] <= span_s:
        return np.ones(n, dtype=bool)
    step_s = int(t_s[1] - t_s[0])
    k = max(1, int(round(span_s / step_s)))
    sums = np.convolve(liquidated, np.ones(k), mode="valid")
    first = int(np.argmax(sums))
    last = min(n - 1, first + k - 1)
    trough = first + int(np.argmin(lowest[first:]))
    fall = lowest[first] - lowest[trough]
    if fall > 0:
        target = lowest[trough] + REBOUND_SHARE * fall
        back = np.flatnonzero(lowest[trough:] >= target)
        end = trough + int(back[0]) if len(back) else n - 1
        last = max(last, min(n - 1, end + REBOUND_MARGIN_S // step_s))
    mask = np.zeros(n, dtype=bool)
    mask[first : last + 1] = True
    return mask


# ----- the insurance fund --------------------------------------------------------------------
def insurance_fund(
    result: SimulationResult,
    path: Path,
    *,
    start: datetime = DEFAULT_START,
    currency: str = CURRENCY_DEFAULT,
) -> Path:
    return save(insurance_fund_figure(result, start=start, currency=currency), path)


def insurance_fund_figure(
    result: SimulationResult, *, start: datetime = DEFAULT_START, currency: str = CURRENCY_DEFAULT
) -> Figure:
    steps = result.steps
    t_s = np.array([s.t_s for s in steps], dtype=np.int64)
    x = mdates.date2num(utc_times(start, t_s))
    decimals = result.money_decimals

    def units(name: str) -> np.ndarray:
        return np.array([getattr(s, name) for s in steps], dtype=np.int64)

    def series(name: str) -> np.ndarray:
        return millions(units(name), decimals)

    fig = Figure(figsize=(12, 8.5))
    ax, flows = fig.subplots(2, 1, sharex=True)
    equity, low = series("fund_equity"), series("fund_equity_low")
    ax.plot(x, equity, color=FUND_COLOR, lw=1.8, label="after the step")
    ax.plot(x, low, color=FUND_LOW_COLOR, lw=1.0, ls="--", label="lowest within the step")
    exhausted = np.array([s.fund_exhausted for s in steps], dtype=bool)
    if exhausted.any():
        ax.scatter(
            x[exhausted],
            low[exhausted],
            color=LONG_COLOR,
            marker="x",
            s=24,
            zorder=3,
            label="exhausted: ADL / socialized loss",
        )
    floor = float(millions(result.floor, decimals))
    top, bottom = float(max(equity.max(), low.max())), float(min(equity.min(), low.min()))
    pad = max(0.08 * (top - bottom), 0.002 * max(abs(top), 1e-9), 1e-6)
    lo, hi = bottom - pad, top + pad
    floor_label = f"floor {money_text(result.floor, decimals)} {currency}"
    if lo <= floor <= hi:
        ax.axhline(floor, color="k", lw=0.8, ls=":", label=floor_label)
    else:
        side = "below" if floor < lo else "above"
        ax.plot([], [], " ", label=f"{floor_label} ({side} this axis)")
    ax.set_ylim(lo, hi)
    plain_numbers(ax)
    fund_units = units("fund_equity")
    low_units = units("fund_equity_low")
    i_low = int(np.argmin(low_units))
    marks = [(0, "start", "bottom"), (len(steps) - 1, "end", "bottom")]
    if low_units[i_low] < fund_units[0]:
        marks.insert(1, (i_low, "low", "top"))
    for i, what, va in marks:
        value = low_units[i] if what == "low" else fund_units[i]
        ax.annotate(
            f"{what} {money_text(int(value), decimals)} {currency}",
            (x[i], float(millions(value, decimals))),
            xytext=(0, 6 if va == "bottom" else -6),
            textcoords="offset points",
            ha="left" if i == 0 else ("right" if i == len(steps) - 1 else "center"),
            va=va,
            fontsize=8,
        )
    change = int(fund_units[-1] - fund_units[0]) if len(steps) else 0
    sign = "+" if change >= 0 else ""
    ax.set_ylabel(f"fund equity, M {currency}")
    ax.set_title(
        f"{result.scenario}: insurance fund, change over the run"
        f" {sign}{money_text(change, decimals)} {currency}"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    income = np.cumsum(series("liquidation_fees") + series("takeover_surplus"))
    flows.plot(x, income, color=IN_COLOR, lw=1.6, label="fees + takeover surplus (in)")
    flows.plot(
        x,
        -np.cumsum(series("insurance_paid")),
        color=LONG_COLOR,
        lw=1.6,
        ls="--",
        label="paid for bankrupt accounts (out)",
    )
    flows.plot(
        x,
        np.cumsum(series("unwind_pnl")),
        color=ADL_COLOR,
        lw=1.6,
        ls="-.",
        label="unwind PnL (slippage)",
    )
    flows.plot(
        x,
        np.cumsum(series("adl_amount") + series("socialized")),
        color="k",
        lw=1.2,
        ls=":",
        label="covered by ADL + socialized loss",
    )
    flows.axhline(0, color="k", lw=0.6)
    flows.set_ylabel(f"cumulative from the start, M {currency}")
    flows.grid(alpha=0.3)
    flows.legend(fontsize=8)
    utc_axis(flows, start, float(t_s[-1] - t_s[0]) if len(t_s) else 0.0)
    return fig
