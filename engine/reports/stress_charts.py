"""PNG charts of a stress run, for a risk officer: what happened, when, and how close it was.

- `price_liquidations.png`: each market's mark (% from its start) over the run, and the
  notional liquidated per step (long / short), the whole run and a zoom on the busiest
  hours through the rebound that followed;
- `insurance_fund.png`: the fund's equity after each step and its low within the step, on
  an axis scaled to its change, with its start, low and end; below, its flows;
- `liquidation_map.png`: notional at risk by liquidation price before the run (the
  "liquidation map"), longs and shorts apart: one market by price level, and every market
  by distance from its mark;
- `reverse_stress.png`: the fund's start, low and end against the size of the move, the
  threshold marked (at the table's precision), and the flows that cover each run's
  deficit, stacked.

Each chart has a `*_figure` function that returns the matplotlib Figure (what the tests
inspect) and one that writes the PNG. Money axes carry the currency, time axes are UTC from
the run's start (engine.reports.chart_style); floats appear here only for display, and a
figure printed on a chart is the tables' text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, ScalarFormatter

from engine._native import NULL_PRICE
from engine.book.book import Book
from engine.book.limits import RESERVED_ACCOUNT_BASE
from engine.reports.chart_style import (
    DEFAULT_START,
    LONG_COLOR,
    SHORT_COLOR,
    millions,
    money_text,
    save,
    series_style,
    step_text,
    utc_axis,
    utc_text,
    utc_times,
)
from engine.reports.settlement_summary import CURRENCY_DEFAULT
from engine.reports.stress_tables import pct
from engine.stress.reverse import ReverseStressResult
from engine.stress.simulation_result import SimulationResult

MAP_DISTANCE_MAX = 0.6  # the map spans +-60% from the mark
MAP_BIN = 0.02
MAP_PRICE_BINS = 80
ZOOM_HOURS = 2.0
REBOUND_SHARE = 0.5  # the zoom runs on until the lowest mark has won back this share of its fall
REBOUND_MARGIN_S = 1800  # ... and this long after
FUND_COLOR, FUND_LOW_COLOR, IN_COLOR, ADL_COLOR = "#0072b2", "#e69f00", "#009e73", "#cc79a7"


def _plain(ax: Axes, axis: str = "y") -> None:
    """Axis numbers as they are (no offset or 1e6 factor hidden at the axis' end)."""
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(formatter)


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
    _plain(ax)
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


# ----- the liquidation map -------------------------------------------------------------------
@dataclass(frozen=True)
class LiquidationLevels:
    """Notional (currency units, display floats) by liquidation price, per instrument,
    longs and shorts apart."""

    symbols: tuple[str, ...]
    marks: np.ndarray  # price (currency) per instrument
    distance_edges: np.ndarray  # fraction from the mark
    long_by_distance: np.ndarray  # [instrument, bin]
    short_by_distance: np.ndarray
    main: str
    price_edges: np.ndarray  # main instrument: price levels (currency)
    long_by_price: np.ndarray
    short_by_price: np.ndarray

    @property
    def by_distance(self) -> np.ndarray:
        return self.long_by_distance + self.short_by_distance


def liquidation_levels(book: Book, symbols: list[str], main: str) -> LiquidationLevels:
    """Read before the run: where the trader positions would be liquidated (other marks
    held), from the engine's exact cross liquidation prices."""
    liq, _ = book.liquidation_prices()
    owner_ids = book.account_id[book.position_owner()]
    table = book.instruments
    tick = np.array([float(i.tick_size) for i in table.instruments])
    scale = 10.0**table.money_decimals
    live = (book.pos_qty != 0) & (liq != NULL_PRICE) & (owner_ids < RESERVED_ACCOUNT_BASE)
    notional = np.abs(book.pos_qty) * book.mark_lot_value[book.pos_instrument] / scale
    edges = np.arange(-MAP_DISTANCE_MAX, MAP_DISTANCE_MAX + MAP_BIN / 2, MAP_BIN)
    insts = [table.symbol_index(s) for s in symbols]
    grids = np.zeros((2, len(insts), len(edges) - 1))
    for row, inst in enumerate(insts):
        mark = float(book.mark[inst])
        for side, sign in enumerate((1, -1)):
            mask = live & (book.pos_instrument == inst) & (np.sign(book.pos_qty) == sign)
            distance = liq[mask] / mark - 1.0
            grids[side, row], _ = np.histogram(distance, bins=edges, weights=notional[mask])
    m = table.symbol_index(main)
    mark_price = float(book.mark[m]) * tick[m]
    price_edges = np.linspace(mark_price * 0.7, mark_price * 1.3, MAP_PRICE_BINS + 1)
    mask = live & (book.pos_instrument == m)
    prices = liq[mask] * tick[m]
    longs = book.pos_qty[mask] > 0
    long_hist, _ = np.histogram(prices[longs], bins=price_edges, weights=notional[mask][longs])
    short_hist, _ = np.histogram(prices[~longs], bins=price_edges, weights=notional[mask][~longs])
    return LiquidationLevels(
        symbols=tuple(symbols),
        marks=np.array([float(book.mark[i]) * tick[i] for i in insts]),
        distance_edges=edges,
        long_by_distance=grids[0],
        short_by_distance=grids[1],
        main=main,
        price_edges=price_edges,
        long_by_price=long_hist,
        short_by_price=short_hist,
    )


def liquidation_map(
    levels: LiquidationLevels,
    path: Path,
    *,
    start: datetime = DEFAULT_START,
    currency: str = CURRENCY_DEFAULT,
) -> Path:
    return save(liquidation_map_figure(levels, start=start, currency=currency), path)


def liquidation_map_figure(
    levels: LiquidationLevels, *, start: datetime = DEFAULT_START, currency: str = CURRENCY_DEFAULT
) -> Figure:
    fig = Figure(figsize=(14, 10))
    grid = fig.add_gridspec(2, 3, height_ratios=[2, 3], width_ratios=[20, 20, 1])
    top = fig.add_subplot(grid[0, :2])
    heat_long = fig.add_subplot(grid[1, 0])
    heat_short = fig.add_subplot(grid[1, 1], sharey=heat_long)
    bar_axis = fig.add_subplot(grid[1, 2])
    centers = (levels.price_edges[:-1] + levels.price_edges[1:]) / 2
    bin_width = levels.price_edges[1] - levels.price_edges[0]
    top.bar(
        centers,
        levels.long_by_price / 1e6,
        width=bin_width * 0.9,
        color=LONG_COLOR,
        label="longs liquidated at this price",
    )
    top.bar(
        centers,
        levels.short_by_price / 1e6,
        width=bin_width * 0.9,
        color=SHORT_COLOR,
        hatch="//",
        label="shorts liquidated at this price",
    )
    main_mark = (
        levels.marks[levels.symbols.index(levels.main)] if levels.main in levels.symbols else None
    )
    twin = top.twinx()
    if main_mark is not None:
        top.axvline(main_mark, color="k", lw=1, ls="--", label=f"mark {main_mark:,.2f} {currency}")
        below, above = centers <= main_mark, centers >= main_mark
        cum_long = np.cumsum(levels.long_by_price[::-1])[::-1] / 1e6
        cum_short = np.cumsum(levels.short_by_price) / 1e6
        twin.plot(
            centers[below],
            cum_long[below],
            color=LONG_COLOR,
            lw=1.2,
            ls=":",
            label="longs, cumulative from the mark (right axis)",
        )
        twin.plot(
            centers[above],
            cum_short[above],
            color=SHORT_COLOR,
            lw=1.2,
            ls="-.",
            label="shorts, cumulative from the mark (right axis)",
        )
    twin.set_ylabel(f"cumulative from the mark, M {currency}")
    top.set_title(
        f"liquidation map {levels.main} at {utc_text(start)}, before the run:"
        " notional at risk by liquidation price, longs and shorts"
    )
    top.set_xlabel(f"{levels.main} liquidation price, {currency}")
    top.set_ylabel(f"notional, M {currency}\nper {bin_width:,.0f} {currency} price bin")
    handles, labels = top.get_legend_handles_labels()
    more_handles, more_labels = twin.get_legend_handles_labels()
    top.legend(handles + more_handles, labels + more_labels, fontsize=8, loc="upper right")
    top.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.0f}"))
    both = np.concatenate([levels.long_by_distance.ravel(), levels.short_by_distance.ravel()])
    positive = both[both > 0]
    norm = LogNorm(vmin=max(positive.min(), 1.0), vmax=positive.max()) if len(positive) else None
    extent = (
        100 * levels.distance_edges[0],
        100 * levels.distance_edges[-1],
        len(levels.symbols) - 0.5,
        -0.5,
    )
    image = None
    for heat, values, side in (
        (heat_long, levels.long_by_distance, "longs"),
        (heat_short, levels.short_by_distance, "shorts"),
    ):
        image = heat.imshow(
            np.where(values > 0, values, np.nan),
            aspect="auto",
            cmap="inferno",
            norm=norm,
            extent=extent,
            interpolation="nearest",
        )
        heat.set_facecolor("0.93")
        heat.set_xlim(*_side_range(values, levels.distance_edges, side == "longs"))
        heat.axvline(0, color="0.4", lw=0.8)
        heat.set_xlabel(f"liquidation price, % from the current mark ({100 * MAP_BIN:g}% bins)")
        heat.set_title(f"{side}: notional at risk by distance to liquidation (all markets)")
    heat_long.set_yticks(range(len(levels.symbols)), labels=list(levels.symbols), fontsize=8)
    heat_short.tick_params(labelleft=False)
    if image is not None:
        fig.colorbar(image, cax=bar_axis, label=f"notional, {currency} (log scale; grey: none)")
    return fig


def _side_range(values: np.ndarray, edges: np.ndarray, longs: bool) -> tuple[float, float]:
    """The x range (%) of one side's heat map: from the mark outwards, as far as the map
    goes, and past the mark only as far as that side has notional (none is cut off)."""
    used = np.flatnonzero(values.sum(axis=0) > 0)
    lo, hi = 100 * float(edges[0]), 100 * float(edges[-1])
    if not len(used):
        return (lo, 0.0) if longs else (0.0, hi)
    if longs:
        return lo, max(0.0, 100 * float(edges[used[-1] + 1]))
    return min(0.0, 100 * float(edges[used[0]])), hi


# ----- the reverse stress test ---------------------------------------------------------------
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
