"""Settlement charts (PNG, matplotlib): margin ratios, PnL and funding by instrument, losers.

Figures are drawn for reading (floats of the exact figures); a figure printed as text is the
tables' (engine.reports.chart_style.money_text: half even to the cent from the integer), and
every money axis names the currency. Each `chart_*` writes its PNG; the `*_figure` function
beside it returns the matplotlib Figure (what the tests inspect).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from engine.book.book import Book
from engine.book.fixed import RATE_SCALE
from engine.reports.chart_style import money_axis, money_text, save
from engine.reports.settlement_summary import account_label
from engine.settlement.results import SettlementResult

LOG_COUNTS_ABOVE = 200  # a histogram whose tallest bar is higher gets a log count axis
MARGIN_RATIO_BINS_PCT = np.arange(0, 105, 5)  # 0-5%, ..., 95-100%, then ">= 100%"
CHART_MARGIN, CHART_INSTRUMENTS, CHART_LOSERS = (
    "margin_ratio.png",
    "pnl_funding_by_instrument.png",
    "largest_losers.png",
)


def _display(units: np.ndarray | int, md: int) -> np.ndarray:
    return np.asarray(units, dtype=np.float64) / 10.0**md


def _margin_ratio_histogram(risk_ratio: np.ndarray, has_margin: np.ndarray) -> np.ndarray:
    """Counts per 5% bin of maintenance margin / equity, the last bin >= 100% (or equity <= 0)."""
    pct = risk_ratio[has_margin] * 100.0
    counts, _ = np.histogram(np.minimum(pct, 100.0), bins=[*MARGIN_RATIO_BINS_PCT, np.inf])
    return counts


def chart_margin_ratio(
    path: Path, result: SettlementResult, warning_pct: float, traders_excluded: np.ndarray
) -> None:
    save(margin_ratio_figure(result, warning_pct, traders_excluded), path)


def margin_ratio_figure(
    result: SettlementResult, warning_pct: float, traders_excluded: np.ndarray
) -> Figure:
    """Histogram of trader accounts by margin ratio, before liquidations and after."""
    fig = Figure(figsize=(9, 4.8))
    ax = fig.subplots()
    left = MARGIN_RATIO_BINS_PCT.astype(float)
    width = 5.0
    most = 0
    for risk, label, color, hatch, offset in (
        (result.before_waterfall, "at settlement prices, before liquidations", "#e69f00", "//", 0),
        (result.closing, "after the waterfall", "#0072b2", "", 1),
    ):
        has_margin = (risk.maintenance_margin > 0) & ~traders_excluded
        counts = _margin_ratio_histogram(risk.margin_ratio, has_margin)
        most = max(most, int(counts.max()))
        ax.bar(
            left + width * (0.05 + 0.45 * offset),
            counts,
            width=width * 0.45,
            align="edge",
            color=color,
            hatch=hatch,
            label=label,
        )
    if most > LOG_COUNTS_ABOVE:
        ax.set_yscale("log")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axvline(warning_pct, color="k", linestyle="-.", label=f"margin call {warning_pct:g}%")
    ax.axvline(100.0, color="#d55e00", linestyle="--", label="liquidation 100%")
    ax.set_xlim(0, 105)
    ax.set_xticks([*range(0, 101, 10)], [f"{x}%" for x in range(0, 100, 10)] + ["≥100%"])
    ax.set_xlabel("margin ratio = maintenance margin / equity, % (accounts with open positions)")
    ax.set_ylabel("trader accounts (count" + (", log scale)" if most > LOG_COUNTS_ABOVE else ")"))
    ax.set_title(f"Margin ratio distribution, settlement {result.date}")
    ax.legend(loc="upper center", fontsize="small")
    return fig


def chart_instruments(
    path: Path, book: Book, result: SettlementResult, currency: str, chosen: np.ndarray
) -> None:
    save(instruments_figure(book, result, currency, chosen), path)


def instruments_figure(
    book: Book, result: SettlementResult, currency: str, chosen: np.ndarray
) -> Figure:
    """Mark-to-market gains and losses, and funding paid, of the `chosen` instruments."""
    t = result.instruments
    md = book.instruments.money_decimals
    symbols = [book.instruments.instruments[k].symbol for k in chosen.tolist()]
    y = np.arange(len(chosen))
    fig = Figure(figsize=(11, 0.45 * max(len(chosen), 4) + 1.6))
    ax_pnl, ax_funding = fig.subplots(1, 2, sharey=True)
    ax_pnl.barh(y, _display(t.mtm_gains[chosen], md), color="#009e73", label="gains")
    ax_pnl.barh(y, _display(t.mtm_losses[chosen], md), color="#d55e00", hatch="//", label="losses")
    ax_pnl.axvline(0, color="black", linewidth=0.8)
    ax_pnl.set_yticks(y, symbols)
    ax_pnl.invert_yaxis()
    ax_pnl.set_xlabel(f"PnL of the day, {currency}")
    ax_pnl.set_title("Mark-to-market PnL of holders\n(dated: variation margin realized)")
    ax_pnl.xaxis.set_major_formatter(money_axis(currency))
    ax_pnl.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax_pnl.legend(loc="lower right", fontsize="small")
    paid = _display(t.funding_paid[chosen], md)
    ax_funding.barh(y, paid, color="#cc79a7")
    for yi, k in zip(y.tolist(), chosen.tolist(), strict=True):
        rate = int(t.funding_rate[k])
        if rate:
            side = "longs pay" if rate > 0 else "shorts pay"
            ax_funding.annotate(
                f" {rate / RATE_SCALE:+.4%} ({side})",
                (float(paid[yi]), yi),
                va="center",
                fontsize="x-small",
            )
    ax_funding.margins(x=0.35)
    ax_funding.set_xlabel(f"funding paid, {currency}")
    ax_funding.set_title("Funding paid (perpetuals)")
    ax_funding.xaxis.set_major_formatter(money_axis(currency))
    ax_funding.xaxis.set_major_locator(MaxNLocator(nbins=5))
    fig.suptitle(f"PnL and funding by instrument, settlement {result.date}")
    return fig


def chart_losers(
    path: Path, book: Book, result: SettlementResult, rows: np.ndarray, currency: str
) -> None:
    save(losers_figure(book, result, rows, currency), path)


def losers_figure(book: Book, result: SettlementResult, rows: np.ndarray, currency: str) -> Figure:
    """The day's equity change of the account `rows` (the largest losers), each bar labelled
    with the table's figure."""
    md = book.instruments.money_decimals
    change_units = result.closing.equity[rows] - result.opening_equity[rows]
    change = _display(change_units, md)
    labels = [account_label(int(book.account_id[r])) for r in rows.tolist()]
    fig = Figure(figsize=(9, 0.45 * max(len(rows), 4) + 1.6))
    ax = fig.subplots()
    y = np.arange(len(rows))
    ax.barh(y, change, color="#d55e00")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    for yi, value, units in zip(y.tolist(), change.tolist(), change_units.tolist(), strict=True):
        ax.annotate(
            f" {money_text(units, md)} ", (value, yi), va="center", ha="right", fontsize="small"
        )
    ax.margins(x=0.18)
    ax.xaxis.set_major_formatter(money_axis(currency))
    ax.set_xlabel(f"equity change of the day ({currency})")
    ax.set_title(f"Ten largest losers, settlement {result.date}")
    if not len(rows):
        ax.text(0.5, 0.5, "no account lost equity", ha="center", transform=ax.transAxes)
    return fig
