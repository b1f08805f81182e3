"""PNG charts of a stress run, for a risk officer: what happened, when, and how close it was.

- `price_liquidations.png`: each market's mark (% from its start) over the run, and the
  notional liquidated per step (long / short), the whole run and a zoom on the worst hour;
- `insurance_fund.png`: the fund's equity after each step and its low within the step;
- `liquidation_map.png`: notional at risk by liquidation price before the run (the
  "liquidation map"): one market by price level, and every market by distance from its mark;
- `reverse_stress.png`: the fund's start, low and end against the size of the move, the
  threshold marked, and the flows that cover each run's deficit, stacked.

Floats appear here only for display. Matplotlib runs on its Agg backend (no display needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from engine._native import NULL_PRICE  # noqa: E402
from engine.book.book import Book  # noqa: E402
from engine.book.limits import RESERVED_ACCOUNT_BASE  # noqa: E402
from engine.stress.reverse import ReverseStressResult  # noqa: E402
from engine.stress.simulation_result import SimulationResult  # noqa: E402

DPI = 110
LONG_COLOR = "#d62728"
SHORT_COLOR = "#2ca02c"
MAP_DISTANCE_MAX = 0.6  # the map spans +-60% from the mark
MAP_BIN = 0.02
MAP_PRICE_BINS = 80
ZOOM_HOURS = 2.0


def _money(units: np.ndarray | list[int] | int, decimals: int) -> np.ndarray:
    return np.asarray(units, dtype=np.float64) / 10.0**decimals


def _hours(result: SimulationResult) -> np.ndarray:
    return np.array([s.t_s for s in result.steps], dtype=np.float64) / 3600.0


def price_liquidations(result: SimulationResult, path: Path, *, main: str | None = None) -> Path:
    steps = result.steps
    hours = _hours(result)
    symbols = list(steps[0].marks) if steps else []
    main = main if main in symbols else (symbols[0] if symbols else None)
    long_m = _money([s.liquidated_long for s in steps], result.money_decimals) / 1e6
    short_m = _money([s.liquidated_short for s in steps], result.money_decimals) / 1e6
    fig, axes = plt.subplots(
        2, 2, figsize=(15, 8), sharex="col", gridspec_kw={"width_ratios": [3, 2]}
    )
    window = _busiest_window(hours, long_m + short_m, ZOOM_HOURS)
    width = (hours[1] - hours[0]) * 0.9 if len(hours) > 1 else 0.01
    for col, mask in enumerate((np.ones(len(hours), dtype=bool), window)):
        ax = axes[0, col]
        for symbol in symbols:
            start = steps[0].exogenous[symbol]
            marks = np.array([s.marks[symbol] for s in steps], dtype=np.float64)
            change = 100.0 * (marks / start - 1.0)
            strong = symbol == main or len(symbols) <= 3 or symbol.startswith("ETH")
            ax.plot(
                hours[mask],
                change[mask],
                lw=1.8 if strong else 0.8,
                alpha=1.0 if strong else 0.55,
                label=symbol,
            )
        ax.set_ylabel("mark, % from start")
        ax.grid(alpha=0.3)
        bars = axes[1, col]
        bars.bar(hours[mask], long_m[mask], width=width, color=LONG_COLOR, label="long")
        bars.bar(
            hours[mask],
            short_m[mask],
            width=width,
            bottom=long_m[mask],
            color=SHORT_COLOR,
            label="short",
        )
        bars.set_ylabel("liquidated notional per step, M")
        bars.set_xlabel("hours from start")
        bars.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=2, loc="lower left")
    axes[1, 0].legend(fontsize=8)
    axes[0, 0].set_title(f"{result.scenario}: marks and liquidations, whole run")
    axes[0, 1].set_title(f"zoom: the {ZOOM_HOURS:g} hours with the most liquidations")
    return _save(fig, path)


def _busiest_window(hours: np.ndarray, liquidated: np.ndarray, span_h: float) -> np.ndarray:
    """Mask of the span_h-hour window with the most liquidated notional (whole run if shorter)."""
    if len(hours) < 2 or hours[-1] - hours[0] <= span_h:
        return np.ones(len(hours), dtype=bool)
    steps = max(1, int(round(span_h / (hours[1] - hours[0]))))
    sums = np.convolve(liquidated, np.ones(steps), mode="valid")
    first = int(np.argmax(sums))
    mask = np.zeros(len(hours), dtype=bool)
    mask[first : first + steps] = True
    return mask


def insurance_fund(result: SimulationResult, path: Path) -> Path:
    steps = result.steps
    hours = _hours(result)
    decimals = result.money_decimals

    def series(name: str) -> np.ndarray:
        return _money([getattr(s, name) for s in steps], decimals) / 1e6

    fig, (ax, flows) = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
    ax.plot(hours, series("fund_equity"), color="#1f77b4", lw=1.6, label="after the step")
    ax.plot(hours, series("fund_equity_low"), color="#ff7f0e", lw=0.8, label="lowest in the step")
    floor = _money(result.floor, decimals) / 1e6
    ax.axhline(floor, color="k", lw=0.8, ls="--", label="floor")
    exhausted = np.array([s.fund_exhausted for s in steps], dtype=bool)
    if exhausted.any():
        ax.scatter(
            hours[exhausted],
            series("fund_equity_low")[exhausted],
            color=LONG_COLOR,
            s=14,
            zorder=3,
            label="exhausted: ADL / socialized loss",
        )
    ax.set_ylabel("fund equity, M")
    ax.set_title(f"{result.scenario}: insurance fund")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    income = np.cumsum(series("liquidation_fees") + series("takeover_surplus"))
    flows.plot(hours, income, color=SHORT_COLOR, label="fees + takeover surplus (in)")
    flows.plot(
        hours,
        -np.cumsum(series("insurance_paid")),
        color=LONG_COLOR,
        label="paid for bankrupt accounts (out)",
    )
    flows.plot(
        hours, np.cumsum(series("unwind_pnl")), color="#9467bd", label="unwind PnL (slippage)"
    )
    flows.plot(
        hours,
        np.cumsum(series("adl_amount") + series("socialized")),
        color="k",
        ls=":",
        label="covered by ADL + socialized loss",
    )
    flows.axhline(0, color="k", lw=0.6)
    flows.set_xlabel("hours from start")
    flows.set_ylabel("cumulative, M")
    flows.grid(alpha=0.3)
    flows.legend(fontsize=8)
    return _save(fig, path)


@dataclass(frozen=True)
class LiquidationLevels:
    """Notional (currency units, display floats) by liquidation price, per instrument."""

    symbols: tuple[str, ...]
    marks: np.ndarray  # price (currency) per instrument
    distance_edges: np.ndarray  # fraction from the mark
    by_distance: np.ndarray  # [instrument, bin]: long + short notional
    main: str
    price_edges: np.ndarray  # main instrument: price levels (currency)
    long_by_price: np.ndarray
    short_by_price: np.ndarray


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
    grid = np.zeros((len(insts), len(edges) - 1))
    for row, inst in enumerate(insts):
        mask = live & (book.pos_instrument == inst)
        mark = float(book.mark[inst])
        distance = liq[mask] / mark - 1.0
        grid[row], _ = np.histogram(distance, bins=edges, weights=notional[mask])
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
        by_distance=grid,
        main=main,
        price_edges=price_edges,
        long_by_price=long_hist,
        short_by_price=short_hist,
    )


def liquidation_map(levels: LiquidationLevels, path: Path) -> Path:
    fig, (top, heat) = plt.subplots(2, 1, figsize=(13, 9), gridspec_kw={"height_ratios": [2, 3]})
    centers = (levels.price_edges[:-1] + levels.price_edges[1:]) / 2
    width = (levels.price_edges[1] - levels.price_edges[0]) * 0.9
    top.bar(
        centers,
        levels.long_by_price / 1e6,
        width=width,
        color=LONG_COLOR,
        label="longs liquidated here",
    )
    top.bar(
        centers,
        levels.short_by_price / 1e6,
        width=width,
        color=SHORT_COLOR,
        label="shorts liquidated here",
    )
    main_mark = (
        levels.marks[levels.symbols.index(levels.main)] if levels.main in levels.symbols else None
    )
    if main_mark is not None:
        top.axvline(main_mark, color="k", lw=1, ls="--", label=f"mark {main_mark:,.2f}")
    cum_long = np.cumsum(levels.long_by_price[::-1])[::-1] / 1e6
    cum_short = np.cumsum(levels.short_by_price) / 1e6
    twin = top.twinx()
    twin.plot(centers, cum_long, color=LONG_COLOR, lw=1, alpha=0.6)
    twin.plot(centers, cum_short, color=SHORT_COLOR, lw=1, alpha=0.6)
    twin.set_ylabel("cumulative from the mark, M")
    top.set_title(f"liquidation map {levels.main}: notional at risk by liquidation price")
    top.set_xlabel("price")
    top.set_ylabel("notional, M")
    top.legend(fontsize=8, loc="upper left")
    data = np.where(levels.by_distance > 0, levels.by_distance, np.nan)
    positive = levels.by_distance[levels.by_distance > 0]
    norm = LogNorm(vmin=max(positive.min(), 1.0), vmax=positive.max()) if len(positive) else None
    image = heat.imshow(
        data,
        aspect="auto",
        cmap="inferno",
        norm=norm,
        extent=(
            100 * levels.distance_edges[0],
            100 * levels.distance_edges[-1],
            len(levels.symbols) - 0.5,
            -0.5,
        ),
        interpolation="nearest",
    )
    heat.set_yticks(range(len(levels.symbols)), labels=list(levels.symbols), fontsize=8)
    heat.axvline(0, color="w", lw=0.8)
    heat.set_xlabel("liquidation price, % from the current mark")
    heat.set_title("notional at risk by distance to liquidation (all markets)")
    fig.colorbar(image, ax=heat, label="notional (currency units)")
    return _save(fig, path)


def reverse_stress_curve(result: ReverseStressResult, path: Path, money_decimals: int) -> Path:
    """Top: the fund's stocks (equity at the start, its low, at the end) against the move.
    Bottom: the flows over each run, stacked as they cover the deficit (fund drawdown,
    ADL, socialized, unallocated), with the deficit to cover drawn on top: they meet."""
    points = result.points
    move = np.array([100.0 * float(p.move) for p in points])
    exhausted = np.array([p.fund_exhausted for p in points], dtype=bool)

    def series(name: str) -> np.ndarray:
        return _money([getattr(p, name) for p in points], money_decimals) / 1e6

    fig, (ax, flows) = plt.subplots(2, 1, figsize=(11, 9), sharex=True)
    ax.plot(move, series("fund_start"), color="#7f7f7f", lw=0.8, ls="--", label="fund start")
    ax.plot(move, series("fund_low"), color="#1f77b4", lw=1.2, marker="o", ms=3, label="fund low")
    ax.plot(move, series("fund_end"), color="#ff7f0e", lw=1.2, marker="s", ms=3, label="fund end")
    low = series("fund_low")
    ax.scatter(move[exhausted], low[exhausted], color=LONG_COLOR, zorder=3, s=22, label="exhausted")
    ax.axhline(0, color="k", lw=0.8)
    for axis in (ax, flows):
        if result.move is not None:
            axis.axvline(100 * float(result.move), color=LONG_COLOR, ls="--", lw=1)
        axis.grid(alpha=0.3)
    ax.set_ylabel("insurance fund equity, M")
    twin = ax.twinx()
    twin.plot(move, series("liquidated_notional"), color="#7f7f7f", lw=1, ls=":")
    twin.set_ylabel("liquidated notional, M (dotted)")
    threshold = "" if result.move is None else f" (threshold {100 * float(result.move):.2f}%)"
    ax.set_title(f"reverse stress: the fund against the size of the move{threshold}")
    ax.legend(fontsize=8, loc="lower left")
    width = 0.8 * float(np.min(np.diff(move))) if len(move) > 1 else 1.0
    bottom_pos, bottom_neg = np.zeros(len(points)), np.zeros(len(points))
    for name, label, color in (
        ("fund_drawdown", "fund drawdown", "#1f77b4"),
        ("adl_amount", "ADL", "#9467bd"),
        ("socialized", "socialized", LONG_COLOR),
        ("unallocated", "unallocated", "k"),
    ):
        values = series(name)
        bottom = np.where(values >= 0, bottom_pos, bottom_neg)
        flows.bar(move, values, width=width, bottom=bottom, color=color, label=label)
        bottom_pos += np.maximum(values, 0)
        bottom_neg += np.minimum(values, 0)
    flows.plot(
        move,
        series("deficit_to_cover"),
        color="#2ca02c",
        marker="_",
        ms=14,
        lw=0,
        mew=2,
        label="deficit to cover",
    )
    flows.set_xlabel("move size m, % (each market moves by m x its direction)")
    flows.set_ylabel("over the run, M")
    flows.set_title("deficit to cover = fund drawdown + ADL + socialized + unallocated")
    flows.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
