"""The liquidation map of a stress run's book before the run (`liquidation_map.png`):
notional at risk by liquidation price, longs and shorts apart: one market by price level
(with the cumulative notional from the mark), and every market by distance from its mark.

Read from the engine's exact cross liquidation prices (`liquidation_levels`), drawn by
`liquidation_map_figure` (engine.reports.chart_style for units and colours).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from engine._native import NULL_PRICE
from engine.book.book import Book
from engine.book.limits import RESERVED_ACCOUNT_BASE
from engine.reports.chart_style import (
    DEFAULT_START,
    LONG_COLOR,
    SHORT_COLOR,
    save,
    utc_text,
)
from engine.reports.settlement_summary import CURRENCY_DEFAULT

MAP_DISTANCE_MAX = 0.6  # the map spans +-60% from the mark
MAP_BIN = 0.02
MAP_PRICE_BINS = 80


# -------------------------------------------------------------------
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
