"""Settlement outputs: statements, ledger, summary, charts and the risk officer's report.

- `statements.parquet`: one row per account. Money columns are Parquet decimals at the
  book's money scale (exact, and numbers to polars and duckdb); margin_ratio is a float
  (maintenance margin / equity, for display; +inf where equity <= 0 with margin due).
  closing_balance = opening_balance + realized_pnl + funding - fees - liquidation_losses.
- `ledger.parquet`: every posting of the run (not the opening postings that carried the
  balances in). Negative account ids are house accounts (names in summary.json); `symbol`
  is set on variation-margin and funding postings.
- `summary.json`: totals per instrument, the insurance fund's movement, the house accounts,
  the conservation checks; money as exact decimal strings.
- `report.md` with PNG charts: rounded for reading (0.01 of the currency); the exact
  figures are in the two files above.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from engine.book.book import STATUS_NAMES, Book
from engine.book.fixed import RATE_SCALE, format_units
from engine.book.ledger import FUNDING_POOL, HOUSE_ACCOUNTS, Reason
from engine.book.limits import RESERVED_ACCOUNT_BASE
from engine.settlement.results import SettlementResult
from engine.waterfall.profile import Profile

CURRENCY_DEFAULT = "USDT"
MONEY_PRECISION = 19  # decimal digits: every int64 fits
INSTRUMENTS_IN_REPORT = 20
INSTRUMENTS_IN_CHART = 15
LOSERS = 10
NEGATIVE_IN_SUMMARY = 100
NEGATIVE_IN_REPORT = 20
CHART_DPI = 110
LOG_COUNTS_ABOVE = 200  # a histogram whose tallest bar is higher gets a log count axis
MARGIN_RATIO_BINS_PCT = np.arange(0, 105, 5)  # 0-5%, ..., 95-100%, then ">= 100%"
STATEMENTS, LEDGER, SUMMARY, REPORT = (
    "statements.parquet",
    "ledger.parquet",
    "summary.json",
    "report.md",
)
CHART_MARGIN, CHART_INSTRUMENTS, CHART_LOSERS = (
    "margin_ratio.png",
    "pnl_funding_by_instrument.png",
    "largest_losers.png",
)


# ----- exact columns -----------------------------------------------------------------------
def money_array(units: np.ndarray, decimals: int) -> pa.Array:
    """Raw int64 money units as a decimal128 column without a float or a per-row loop."""
    assert sys.byteorder == "little", "decimal128 words are written little-endian"
    units = np.ascontiguousarray(units, dtype=np.int64)
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = units >> 63  # the high word sign-extends the low one
    return pa.Array.from_buffers(
        pa.decimal128(MONEY_PRECISION, decimals), len(units), [None, pa.py_buffer(words)]
    )


def statements_table(book: Book, result: SettlementResult) -> pa.Table:
    md = book.instruments.money_decimals
    closing = result.closing
    columns: dict[str, pa.Array] = {"account_id": pa.array(book.account_id, type=pa.int64())}
    for name, units in (
        ("opening_balance", result.opening_balance),
        ("realized_pnl", result.realized_pnl),
        ("funding", result.funding),
        ("fees", result.fees),
        ("liquidation_losses", result.liquidation_losses),
        ("closing_balance", book.balance),
        ("unrealized_pnl", closing.equity - book.balance),
        ("equity", closing.equity),
        ("maintenance_margin", closing.maintenance_margin),
        ("opening_equity", result.opening_equity),
        ("equity_change", closing.equity - result.opening_equity),
    ):
        columns[name] = money_array(units, md)
    columns["margin_ratio"] = pa.array(closing.margin_ratio, type=pa.float64())
    columns["status"] = pa.DictionaryArray.from_arrays(
        pa.array(closing.status.astype(np.int8)), pa.array(list(STATUS_NAMES))
    )
    return pa.table(columns)


def ledger_table(book: Book, result: SettlementResult) -> pa.Table:
    ledger = book.ledger
    start = result.ledger_start
    event_id = ledger.column("event_id")[start:]
    symbol_code = np.full(len(event_id), -1, dtype=np.int32)
    if result.event_instrument:
        top = max(result.event_instrument)
        lookup = np.full(top - result.event_start + 1, -1, dtype=np.int32)
        for event, inst in result.event_instrument.items():
            lookup[event - result.event_start] = inst
        inside = (event_id >= result.event_start) & (event_id <= top)
        symbol_code[inside] = lookup[event_id[inside] - result.event_start]
    symbols = pa.array([i.symbol for i in book.instruments.instruments], type=pa.string())
    reason_names = pa.array([""] + [r.name.lower() for r in Reason], type=pa.string())
    return pa.table(
        {
            "seq": pa.array(ledger.column("seq")[start:]),
            "event_id": pa.array(event_id),
            "debit": pa.array(ledger.column("debit")[start:]),
            "credit": pa.array(ledger.column("credit")[start:]),
            "amount": money_array(ledger.column("amount")[start:], book.instruments.money_decimals),
            "reason": pa.DictionaryArray.from_arrays(
                pa.array(ledger.column("reason")[start:].astype(np.int8)), reason_names
            ),
            "symbol": pa.DictionaryArray.from_arrays(
                pa.array(symbol_code, mask=symbol_code < 0), symbols
            ),
        }
    )


# ----- summary -----------------------------------------------------------------------------
def house_book(book: Book, profile: Profile) -> np.ndarray:
    """Rows of the house's own book accounts (funds, the unwind counterparty)."""
    reserved = book.account_id >= RESERVED_ACCOUNT_BASE
    return reserved | np.isin(book.account_id, [profile.fund_account_id, profile.unwind_account_id])


def _money(units: int, md: int) -> str:
    return format_units(int(units), md)


def _decimal_text(steps: int, step: Decimal) -> str:
    """Exact text of `steps` grid steps, at the step's places (0.1 x 1010000 -> 101000.0)."""
    return f"{Decimal(int(steps)) * step:f}"


def _rate_text(rate: int) -> str:
    return format_units(int(rate), 8)


def _total(values: np.ndarray) -> int:
    return sum(values.tolist()) if len(values) else 0


def instrument_rows(book: Book, result: SettlementResult) -> list[dict[str, Any]]:
    """Instruments that were priced or held, in the instrument file's order."""
    t = result.instruments
    md = book.instruments.money_decimals
    rows = []
    for k, inst in enumerate(book.instruments.instruments):
        if not (t.priced[k] or t.positions[k]):
            continue
        rows.append(
            {
                "symbol": inst.symbol,
                "kind": inst.kind,
                "settlement_price": _decimal_text(int(t.settlement_price[k]), inst.tick_size),
                "positions": int(t.positions[k]),
                "open_interest_long": _decimal_text(int(t.long_lots[k]), inst.lot_size),
                "open_interest_short": _decimal_text(-int(t.short_lots[k]), inst.lot_size),
                "open_interest_nets_to_zero": int(t.long_lots[k]) + int(t.short_lots[k]) == 0,
                "variation_margin_gains": _money(t.variation_margin_gains[k], md),
                "variation_margin_losses": _money(t.variation_margin_losses[k], md),
                "mtm_gains": _money(t.mtm_gains[k], md),
                "mtm_losses": _money(t.mtm_losses[k], md),
                "funding_rate": _rate_text(int(t.funding_rate[k])),
                "funding_rate_source": t.funding_source[k],
                "funding_paid": _money(t.funding_paid[k], md),
                "funding_received": _money(t.funding_received[k], md),
                "funding_to_pool": _money(t.funding_to_pool[k], md),
            }
        )
    return rows


def summary_dict(
    book: Book,
    result: SettlementResult,
    profile: Profile,
    *,
    source: dict[str, str],
    settled_dates: Sequence[str],
    currency: str = CURRENCY_DEFAULT,
) -> dict[str, Any]:
    md = book.instruments.money_decimals
    t = result.instruments
    w = result.waterfall
    fund_id = profile.fund_account_id
    negative = result.negative_rows
    live = book.pos_qty != 0

    traders = ~house_book(book, profile)

    def status_counts(status: np.ndarray) -> dict[str, int]:
        counts = np.bincount(status[traders], minlength=len(STATUS_NAMES)).tolist()
        return dict(zip(STATUS_NAMES, counts, strict=True))

    return {
        "date": result.date,
        "profile": result.profile,
        "currency": currency,
        "money_decimals": md,
        "source": source,
        "counts": {
            "accounts": book.n_accounts,
            "accounts_at_opening": result.n_accounts_opening,
            "positions_after": int(live.sum()),
            "instruments_settled": int(t.priced.sum()),
            "accounts_liquidated": w.accounts_liquidated,
        },
        "totals": {
            "variation_margin_gains": _money(_total(t.variation_margin_gains), md),
            "variation_margin_losses": _money(_total(t.variation_margin_losses), md),
            "mtm_gains": _money(_total(t.mtm_gains), md),
            "mtm_losses": _money(_total(t.mtm_losses), md),
            "realized_pnl": _money(_total(result.realized_pnl), md),
            "funding_paid": _money(_total(t.funding_paid), md),
            "funding_received": _money(_total(t.funding_received), md),
            "funding_to_pool": _money(_total(t.funding_to_pool), md),
            "fees": _money(_total(result.fees), md),
            "liquidation_fees": _money(w.liquidation_fees, md),
            "takeover_surplus": _money(w.takeover_surplus, md),
            "insurance_paid": _money(w.insurance_paid, md),
            "debt_kept": _money(w.debt_kept, md),
            "adl": _money(w.adl_amount, md),
            "socialized_loss": _money(w.socialized_amount, md),
            "unallocated_loss": _money(w.unallocated_loss, md),
        },
        "instruments": instrument_rows(book, result),
        "insurance_fund": {
            "account_id": fund_id,
            "balance_before": _money(w.fund_balance_before, md),
            "balance_after": _money(w.fund_balance_after, md),
            "equity_before": _money(w.fund_equity_before, md),
            "equity_after": _money(w.fund_equity_after, md),
            "equity_change": _money(w.fund_equity_after - w.fund_equity_before, md),
        },
        "house_accounts": {
            name: {
                "account_id": account,
                "balance_before": _money(result.house_before.get(account, 0), md),
                "balance_after": _money(result.house_after[account], md),
            }
            for account, name in HOUSE_ACCOUNTS.items()
        },
        "trader_status_before_waterfall": status_counts(result.before_waterfall.status),
        "trader_status_after": status_counts(result.closing.status),
        "waterfall_events": w.summary(),
        "accounts_negative": {
            "count": len(negative),
            "total_equity": _money(_total(result.closing.equity[negative]), md),
            "accounts": [
                {
                    "account_id": int(book.account_id[r]),
                    "balance": _money(book.balance[r], md),
                    "equity": _money(result.closing.equity[r], md),
                }
                for r in negative[:NEGATIVE_IN_SUMMARY].tolist()
            ],
        },
        "conservation": {
            "before": {
                "ok": result.audit_before.ok,
                "held": _money(result.audit_before.total_held, md),
                "deposited_net": _money(result.audit_before.net_external, md),
            },
            "after": {
                "ok": result.audit_after.ok,
                "held": _money(result.audit_after.total_held, md),
                "deposited_net": _money(result.audit_after.net_external, md),
            },
            "closed_book_checked": result.closed_book,
            **result.checks,
        },
        "settled_dates": list(settled_dates),
    }


# ----- charts ------------------------------------------------------------------------------
def _display(units: np.ndarray | int, md: int) -> np.ndarray:
    return np.asarray(units, dtype=np.float64) / 10.0**md


def _axis_money(currency: str) -> FuncFormatter:
    def fmt(value: float, _pos: int) -> str:
        magnitude = abs(value)
        for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if magnitude >= scale:
                return f"{value / scale:,.1f}{suffix}"
        return f"{value:,.0f}"

    return FuncFormatter(fmt)


def _margin_ratio_histogram(risk_ratio: np.ndarray, has_margin: np.ndarray) -> np.ndarray:
    """Counts per 5% bin of maintenance margin / equity, the last bin >= 100% (or equity <= 0)."""
    pct = risk_ratio[has_margin] * 100.0
    counts, _ = np.histogram(np.minimum(pct, 100.0), bins=[*MARGIN_RATIO_BINS_PCT, np.inf])
    return counts


def chart_margin_ratio(
    path: Path, result: SettlementResult, warning_pct: float, traders_excluded: np.ndarray
) -> None:
    fig = Figure(figsize=(9, 4.8))
    ax = fig.subplots()
    left = MARGIN_RATIO_BINS_PCT.astype(float)
    width = 5.0
    most = 0
    for risk, label, alpha in (
        (result.before_waterfall, "at settlement prices, before liquidations", 0.45),
        (result.closing, "after the waterfall", 0.9),
    ):
        has_margin = (risk.maintenance_margin > 0) & ~traders_excluded
        counts = _margin_ratio_histogram(risk.margin_ratio, has_margin)
        most = max(most, int(counts.max()))
        ax.bar(left + width / 2, counts, width=width * 0.9, alpha=alpha, label=label)
    if most > LOG_COUNTS_ABOVE:
        ax.set_yscale("log")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axvline(
        warning_pct, color="tab:orange", linestyle="--", label=f"margin call {warning_pct:g}%"
    )
    ax.axvline(100.0, color="tab:red", linestyle="--", label="liquidation 100%")
    ax.set_xlim(0, 105)
    ax.set_xticks([*range(0, 101, 10)], [f"{x}%" for x in range(0, 100, 10)] + ["≥100%"])
    ax.set_xlabel("margin ratio = maintenance margin / equity (accounts with open positions)")
    ax.set_ylabel("trader accounts")
    ax.set_title(f"Margin ratio distribution, settlement {result.date}")
    ax.legend(loc="upper center", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=CHART_DPI, metadata={"Software": None})


def _top_instruments(result: SettlementResult, n: int) -> np.ndarray:
    t = result.instruments
    gross = (t.mtm_gains - t.mtm_losses).astype(np.float64) + t.funding_paid.astype(np.float64)
    candidates = np.flatnonzero(t.priced | (t.positions > 0))
    order = candidates[np.lexsort((candidates, -gross[candidates]))]
    return order[:n]


def chart_instruments(
    path: Path, book: Book, result: SettlementResult, currency: str, chosen: np.ndarray
) -> None:
    t = result.instruments
    md = book.instruments.money_decimals
    symbols = [book.instruments.instruments[k].symbol for k in chosen.tolist()]
    y = np.arange(len(chosen))
    fig = Figure(figsize=(11, 0.45 * max(len(chosen), 4) + 1.6))
    ax_pnl, ax_funding = fig.subplots(1, 2, sharey=True)
    ax_pnl.barh(y, _display(t.mtm_gains[chosen], md), color="tab:green", label="gains")
    ax_pnl.barh(y, _display(t.mtm_losses[chosen], md), color="tab:red", label="losses")
    ax_pnl.axvline(0, color="black", linewidth=0.8)
    ax_pnl.set_yticks(y, symbols)
    ax_pnl.invert_yaxis()
    ax_pnl.set_xlabel(f"{currency}")
    ax_pnl.set_title("Mark-to-market PnL of holders\n(dated: variation margin realized)")
    ax_pnl.xaxis.set_major_formatter(_axis_money(currency))
    ax_pnl.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax_pnl.legend(loc="lower right", fontsize="small")
    paid = _display(t.funding_paid[chosen], md)
    ax_funding.barh(y, paid, color="tab:purple")
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
    ax_funding.set_xlabel(f"{currency}")
    ax_funding.set_title("Funding paid (perpetuals)")
    ax_funding.xaxis.set_major_formatter(_axis_money(currency))
    ax_funding.xaxis.set_major_locator(MaxNLocator(nbins=5))
    fig.suptitle(f"PnL and funding by instrument, settlement {result.date}")
    fig.tight_layout()
    fig.savefig(path, dpi=CHART_DPI, metadata={"Software": None})


def largest_losers(book: Book, result: SettlementResult, n: int = LOSERS) -> np.ndarray:
    """Rows of the n largest equity losses of the day, largest first (ties by account id)."""
    change = result.closing.equity - result.opening_equity
    losing = np.flatnonzero(change < 0)
    if len(losing) > n:
        # Exact n-th smallest change, then every row at or below it, ordered by (change, id).
        cut = np.partition(change[losing], n - 1)[n - 1]
        losing = losing[change[losing] <= cut]
    order = np.lexsort((book.account_id[losing], change[losing]))
    return losing[order][:n]


def chart_losers(
    path: Path, book: Book, result: SettlementResult, rows: np.ndarray, currency: str
) -> None:
    md = book.instruments.money_decimals
    change = _display(result.closing.equity[rows] - result.opening_equity[rows], md)
    labels = [_account_label(int(book.account_id[r])) for r in rows.tolist()]
    fig = Figure(figsize=(9, 0.45 * max(len(rows), 4) + 1.6))
    ax = fig.subplots()
    y = np.arange(len(rows))
    ax.barh(y, change, color="tab:red")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    for yi, value in zip(y.tolist(), change.tolist(), strict=True):
        ax.annotate(f" {value:,.2f} ", (value, yi), va="center", ha="right", fontsize="small")
    ax.margins(x=0.18)
    ax.xaxis.set_major_formatter(_axis_money(currency))
    ax.set_xlabel(f"equity change of the day ({currency})")
    ax.set_title(f"Ten largest losers, settlement {result.date}")
    if not len(rows):
        ax.text(0.5, 0.5, "no account lost equity", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=CHART_DPI, metadata={"Software": None})


def _account_label(account_id: int) -> str:
    if account_id >= RESERVED_ACCOUNT_BASE:
        return "house book (fund)"
    return f"account {account_id}"


# ----- report ------------------------------------------------------------------------------
def _fmt(units: int, md: int) -> str:
    """Rounded to 0.01 (half even) for reading; exact values are in the data files."""
    value = Decimal(int(units)).scaleb(-md)
    if md > 2:
        value = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return f"{value:,}"


def report_markdown(
    book: Book,
    result: SettlementResult,
    summary: dict[str, Any],
    chosen: np.ndarray,
    losers: np.ndarray,
) -> str:
    md = book.instruments.money_decimals
    cur = summary["currency"]
    t = result.instruments
    w = result.waterfall
    conservation = summary["conservation"]
    checks_ok = all(
        v for k, v in conservation.items() if isinstance(v, bool) and k != "closed_book_checked"
    )

    def money(units: int) -> str:
        return f"{_fmt(units, md)} {cur}"

    lines = [
        f"# End-of-day settlement — {result.date}",
        "",
        f"Profile `{result.profile}`. Amounts in {cur}, rounded to 0.01 for reading; exact"
        f" figures (10^-{md}) are in `statements.parquet`, `ledger.parquet` and `summary.json`.",
        f"Input: {', '.join(f'{k} `{v}`' for k, v in summary['source'].items())}.",
        "",
        "## At a glance",
        "",
        "| | |",
        "|---|---|",
        f"| Accounts / open positions after settlement | {book.n_accounts:,} /"
        f" {summary['counts']['positions_after']:,} |",
        f"| Instruments settled | {summary['counts']['instruments_settled']:,} |",
        f"| Variation margin realized (dated futures) | {money(_total(t.variation_margin_gains))}"
        f" paid to holders, {money(-_total(t.variation_margin_losses))} paid by holders |",
        f"| Mark-to-market of the day (all holders) | {money(_total(t.mtm_gains))} gains,"
        f" {money(-_total(t.mtm_losses))} losses |",
        f"| Funding (perpetuals) | {money(_total(t.funding_paid))} paid,"
        f" {money(_total(t.funding_received))} received,"
        f" {format_units(_total(t.funding_to_pool), md)} {cur} to the funding pool"
        " (rounding, plus any open-interest imbalance of the input book) |",
        f"| Trading fees accrued | {money(_total(result.fees))} |",
        f"| Accounts liquidated | {w.accounts_liquidated:,} (liquidation fees"
        f" {money(w.liquidation_fees)}) |",
        f"| Insurance fund equity | {money(w.fund_equity_before)} → {money(w.fund_equity_after)}"
        f" (paid out {money(w.insurance_paid)}) |",
        f"| ADL / socialized loss | {money(w.adl_amount)} / {money(w.socialized_amount)}"
        f" (unallocated {money(w.unallocated_loss)}) |",
        f"| Accounts left with negative equity | {len(result.negative_rows):,}"
        f" (total {money(_total(result.closing.equity[result.negative_rows]))}) |",
        f"| Conservation and netting checks | {'all passed' if checks_ok else 'FAILED'} |",
        "",
        "## Account status",
        "",
        "Trader accounts (the house book is reported with the insurance fund above).",
        "",
        "| status | before liquidations | after settlement |",
        "|---|---:|---:|",
    ]
    for name in STATUS_NAMES:
        lines.append(
            f"| {name} | {summary['trader_status_before_waterfall'][name]:,} |"
            f" {summary['trader_status_after'][name]:,} |"
        )
    lines += [
        "",
        f"![Margin ratio distribution]({CHART_MARGIN})",
        "",
        "## Instruments",
        "",
        f"Largest {min(len(chosen), INSTRUMENTS_IN_REPORT)} by gross mark-to-market and funding"
        f" ({int((t.priced | (t.positions > 0)).sum()):,} in `summary.json`). Funding rate per"
        " interval: positive, longs pay shorts.",
        "",
        "| instrument | kind | settlement price | positions | MTM gains | MTM losses |"
        " funding rate | funding paid | to pool |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k in chosen[:INSTRUMENTS_IN_REPORT].tolist():
        inst = book.instruments.instruments[k]
        rate = int(t.funding_rate[k])
        rate_text = (
            f"{Decimal(rate).scaleb(-8) * 100:.4f}% ({t.funding_source[k]})"
            if t.funding_source[k] != "none"
            else "—"
        )
        lines.append(
            f"| {inst.symbol} | {inst.kind} |"
            f" {_decimal_text(int(t.settlement_price[k]), inst.tick_size)} |"
            f" {int(t.positions[k]):,} | {_fmt(int(t.mtm_gains[k]), md)} |"
            f" {_fmt(int(t.mtm_losses[k]), md)} | {rate_text} |"
            f" {_fmt(int(t.funding_paid[k]), md)} | {_fmt(int(t.funding_to_pool[k]), md)} |"
        )
    lines += [
        "",
        f"![PnL and funding by instrument]({CHART_INSTRUMENTS})",
        "",
        "## Ten largest losers",
        "",
        "Equity change of the day: closing equity at the settlement prices against opening"
        " equity at the previous marks (at entry where the book had none).",
        "",
        "| account | opening equity | closing equity | change | realized PnL | funding | fees |"
        " liquidation losses | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in losers.tolist():
        opening, closing = int(result.opening_equity[r]), int(result.closing.equity[r])
        lines.append(
            f"| {_account_label(int(book.account_id[r]))} | {_fmt(opening, md)} |"
            f" {_fmt(closing, md)} | {_fmt(closing - opening, md)} |"
            f" {_fmt(int(result.realized_pnl[r]), md)} | {_fmt(int(result.funding[r]), md)} |"
            f" {_fmt(int(result.fees[r]), md)} | {_fmt(int(result.liquidation_losses[r]), md)} |"
            f" {STATUS_NAMES[int(result.closing.status[r])]} |"
        )
    if not len(losers):
        lines.append("| — | | | | | | | | |")
    lines += ["", f"![Ten largest losers]({CHART_LOSERS})", "", "## Accounts left negative", ""]
    negative = result.negative_rows
    if len(negative):
        lines += [
            "Equity below zero after the waterfall: debt mode keeps a deficit on the account;"
            " a house-book account is negative when the waterfall could not make it whole.",
            "",
            "| account | balance | equity |",
            "|---|---:|---:|",
        ]
        for r in negative[:NEGATIVE_IN_REPORT].tolist():
            lines.append(
                f"| {_account_label(int(book.account_id[r]))} | {_fmt(int(book.balance[r]), md)} |"
                f" {_fmt(int(result.closing.equity[r]), md)} |"
            )
        if len(negative) > NEGATIVE_IN_REPORT:
            lines.append(f"\n{len(negative) - NEGATIVE_IN_REPORT:,} more in `summary.json`.")
    else:
        lines.append("None.")
    lines += [
        "",
        "## Checks",
        "",
        "| check | result |",
        "|---|---|",
    ]
    closed = (
        "passed" if result.closed_book else "not applicable (open interest does not net to zero)"
    )
    lines.append(f"| closed book: open interest nets, clearing + cost basis kept | {closed} |")
    for name, value in conservation.items():
        if isinstance(value, bool) and name != "closed_book_checked":
            lines.append(f"| {name.replace('_', ' ')} | {'passed' if value else 'FAILED'} |")
    lines += [
        f"| money held after (balances + fund + house) | {money(result.audit_after.total_held)}"
        f" = net deposits {money(result.audit_after.net_external)} |",
        "",
        "## Conventions",
        "",
        "- Dated futures: variation margin = size × (settlement price − cost basis), realized"
        " into the balance; the cost basis is reset to the settlement price.",
        "- Perpetuals: unrealized PnL stays; funding = notional at the settlement price × rate."
        " Payers round up; receivers share exactly what is owed to them, rounded down, the"
        " units left going to the largest fractional parts; the remainder goes to the funding"
        f" pool (house account {FUNDING_POOL}): rounding units in a closed book, more when the"
        " input's longs and shorts do not net to zero.",
        "- A computed rate is premium + clamp(interest − premium, ±0.05%), capped at"
        " ±0.75 × the first tier's maintenance rate unless the funding file gives a cap;"
        " premium = (settlement price − index) / index.",
        f"- Margin ratio = maintenance margin / equity; margin call at"
        f" {book.warning_rate / RATE_SCALE:.0%}, liquidation at 100%.",
        "- Statement: closing balance = opening balance + realized PnL + funding − fees −"
        " liquidation losses (liquidation fee, takeover, ADL, socialized loss, less any"
        " insurance payout).",
        "",
    ]
    return "\n".join(lines)


def write_outputs(
    out: Path,
    book: Book,
    result: SettlementResult,
    profile: Profile,
    *,
    source: dict[str, str],
    settled_dates: Sequence[str],
    currency: str = CURRENCY_DEFAULT,
) -> list[Path]:
    """Every output but the snapshot, into `out` (an existing, empty directory)."""
    paths = []
    path = out / STATEMENTS
    pq.write_table(statements_table(book, result), path)
    paths.append(path)
    path = out / LEDGER
    pq.write_table(ledger_table(book, result), path)
    paths.append(path)
    summary = summary_dict(
        book, result, profile, source=source, settled_dates=settled_dates, currency=currency
    )
    warning_pct = 100.0 * book.warning_rate / RATE_SCALE
    chart_margin_ratio(out / CHART_MARGIN, result, warning_pct, house_book(book, profile))
    chosen = _top_instruments(result, INSTRUMENTS_IN_CHART)
    chart_instruments(out / CHART_INSTRUMENTS, book, result, currency, chosen)
    losers = largest_losers(book, result)
    chart_losers(out / CHART_LOSERS, book, result, losers, currency)
    paths += [out / CHART_MARGIN, out / CHART_INSTRUMENTS, out / CHART_LOSERS]
    report_chosen = _top_instruments(result, INSTRUMENTS_IN_REPORT)
    path = out / REPORT
    path.write_text(report_markdown(book, result, summary, report_chosen, losers))
    paths.append(path)
    summary["outputs"] = sorted(p.name for p in paths) + [SUMMARY]
    path = out / SUMMARY
    path.write_text(json.dumps(summary, indent=2) + "\n")
    paths.append(path)
    return paths
