"""The risk officer's settlement report (report.md): one function per section.

Amounts are rounded to 0.01 of the currency for reading; the exact figures are in
statements.parquet, ledger.parquet and summary.json. The report links the charts of
engine.reports.settlement_charts by file name.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np

from engine.book.book import STATUS_NAMES, Book
from engine.book.fixed import RATE_SCALE, format_units
from engine.book.ledger import FUNDING_POOL
from engine.reports.settlement_charts import CHART_INSTRUMENTS, CHART_LOSERS, CHART_MARGIN
from engine.reports.settlement_summary import account_label, decimal_text
from engine.settlement.results import SettlementResult
from engine.settlement.sums import total

INSTRUMENTS_IN_REPORT = 20
NEGATIVE_IN_REPORT = 20


def rounded(units: int, md: int) -> str:
    """Rounded to 0.01 (half even) for reading; exact values are in the data files."""
    value = Decimal(int(units)).scaleb(-md)
    if md > 2:
        value = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return f"{value:,}"


@dataclass(frozen=True)
class _Report:
    """What every section reads: the book after the run, the result, summary.json's dict."""

    book: Book
    result: SettlementResult
    summary: dict[str, Any]

    @property
    def md(self) -> int:
        return self.book.instruments.money_decimals

    @property
    def currency(self) -> str:
        return str(self.summary["currency"])

    def money(self, units: int) -> str:
        return f"{rounded(units, self.md)} {self.currency}"

    def checks(self) -> dict[str, bool]:
        """The conservation and netting checks by name (closed_book_checked is a condition)."""
        return {
            k: v
            for k, v in self.summary["conservation"].items()
            if isinstance(v, bool) and k != "closed_book_checked"
        }


def report_markdown(
    book: Book,
    result: SettlementResult,
    summary: dict[str, Any],
    chosen: np.ndarray,
    losers: np.ndarray,
) -> str:
    """The whole report; `chosen`: instruments to list, `losers`: account rows to list."""
    r = _Report(book, result, summary)
    sections = (
        _title(r),
        _at_a_glance(r),
        _account_status(r),
        _instruments(r, chosen),
        _largest_losers(r, losers),
        _accounts_negative(r),
        _checks(r),
        _conventions(r),
    )
    return "\n".join(line for section in sections for line in [*section, ""])


def _title(r: _Report) -> list[str]:
    result, cur = r.result, r.currency
    return [
        f"# End-of-day settlement — {result.date}",
        "",
        f"Profile `{result.profile}`. Amounts in {cur}, rounded to 0.01 for reading; exact"
        f" figures (10^-{r.md}) are in `statements.parquet`, `ledger.parquet` and `summary.json`.",
        f"Input: {', '.join(f'{k} `{v}`' for k, v in r.summary['source'].items())}.",
    ]


def _at_a_glance(r: _Report) -> list[str]:
    result, counts, money = r.result, r.summary["counts"], r.money
    t, w = result.instruments, result.waterfall
    checks_ok = all(r.checks().values())
    return [
        "## At a glance",
        "",
        "| | |",
        "|---|---|",
        f"| Accounts / open positions after settlement | {r.book.n_accounts:,} /"
        f" {counts['positions_after']:,} |",
        f"| Instruments settled | {counts['instruments_settled']:,} |",
        f"| Variation margin realized (dated futures) | {money(total(t.variation_margin_gains))}"
        f" paid to holders, {money(-total(t.variation_margin_losses))} paid by holders |",
        f"| Mark-to-market of the day (all holders) | {money(total(t.mtm_gains))} gains,"
        f" {money(-total(t.mtm_losses))} losses |",
        f"| Funding (perpetuals) | {money(total(t.funding_paid))} paid,"
        f" {money(total(t.funding_received))} received,"
        f" {format_units(total(t.funding_to_pool), r.md)} {r.currency} to the funding pool"
        " (rounding, plus any open-interest imbalance of the input book) |",
        f"| Trading fees accrued | {money(total(result.fees))} |",
        f"| Accounts liquidated | {w.accounts_liquidated:,} (liquidation fees"
        f" {money(w.liquidation_fees)}) |",
        f"| Insurance fund equity | {money(w.fund_equity_before)} → {money(w.fund_equity_after)}"
        f" (paid out {money(w.insurance_paid)}) |",
        f"| ADL / socialized loss | {money(w.adl_amount)} / {money(w.socialized_amount)}"
        f" (unallocated {money(w.unallocated_loss)}) |",
        f"| Accounts left with negative equity | {len(result.negative_rows):,}"
        f" (total {money(total(result.closing.equity[result.negative_rows]))}) |",
        f"| Conservation and netting checks | {'all passed' if checks_ok else 'FAILED'} |",
    ]


def _account_status(r: _Report) -> list[str]:
    before, after = r.summary["trader_status_before_waterfall"], r.summary["trader_status_after"]
    return [
        "## Account status",
        "",
        "Trader accounts (the house book is reported with the insurance fund above).",
        "",
        "| status | before liquidations | after settlement |",
        "|---|---:|---:|",
        *(f"| {name} | {before[name]:,} | {after[name]:,} |" for name in STATUS_NAMES),
        "",
        f"![Margin ratio distribution]({CHART_MARGIN})",
    ]


def _instruments(r: _Report, chosen: np.ndarray) -> list[str]:
    t, md = r.result.instruments, r.md
    lines = [
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
        inst = r.book.instruments.instruments[k]
        rate = int(t.funding_rate[k])
        rate_text = (
            f"{Decimal(rate).scaleb(-8) * 100:.4f}% ({t.funding_source[k]})"
            if t.funding_source[k] != "none"
            else "—"
        )
        lines.append(
            f"| {inst.symbol} | {inst.kind} |"
            f" {decimal_text(int(t.settlement_price[k]), inst.tick_size)} |"
            f" {int(t.positions[k]):,} | {rounded(int(t.mtm_gains[k]), md)} |"
            f" {rounded(int(t.mtm_losses[k]), md)} | {rate_text} |"
            f" {rounded(int(t.funding_paid[k]), md)} | {rounded(int(t.funding_to_pool[k]), md)} |"
        )
    return [*lines, "", f"![PnL and funding by instrument]({CHART_INSTRUMENTS})"]


def _largest_losers(r: _Report, losers: np.ndarray) -> list[str]:
    result, md = r.result, r.md
    lines = [
        "## Ten largest losers",
        "",
        "Equity change of the day: closing equity at the settlement prices against opening"
        " equity at the previous marks (at entry where the book had none).",
        "",
        "| account | opening equity | closing equity | change | realized PnL | funding | fees |"
        " liquidation losses | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in losers.tolist():
        opening, closing = int(result.opening_equity[row]), int(result.closing.equity[row])
        lines.append(
            f"| {account_label(int(r.book.account_id[row]))} | {rounded(opening, md)} |"
            f" {rounded(closing, md)} | {rounded(closing - opening, md)} |"
            f" {rounded(int(result.realized_pnl[row]), md)} |"
            f" {rounded(int(result.funding[row]), md)} |"
            f" {rounded(int(result.fees[row]), md)} |"
            f" {rounded(int(result.liquidation_losses[row]), md)} |"
            f" {STATUS_NAMES[int(result.closing.status[row])]} |"
        )
    if not len(losers):
        lines.append("| — | | | | | | | | |")
    return [*lines, "", f"![Ten largest losers]({CHART_LOSERS})"]


def _accounts_negative(r: _Report) -> list[str]:
    lines = ["## Accounts left negative", ""]
    negative = r.result.negative_rows
    if not len(negative):
        return [*lines, "None."]
    lines += [
        "Equity below zero after the waterfall: debt mode keeps a deficit on the account;"
        " a house-book account is negative when the waterfall could not make it whole.",
        "",
        "| account | balance | equity |",
        "|---|---:|---:|",
    ]
    for row in negative[:NEGATIVE_IN_REPORT].tolist():
        lines.append(
            f"| {account_label(int(r.book.account_id[row]))} |"
            f" {rounded(int(r.book.balance[row]), r.md)} |"
            f" {rounded(int(r.result.closing.equity[row]), r.md)} |"
        )
    if len(negative) > NEGATIVE_IN_REPORT:
        lines.append(f"\n{len(negative) - NEGATIVE_IN_REPORT:,} more in `summary.json`.")
    return lines


def _checks(r: _Report) -> list[str]:
    result = r.result
    closed = (
        "passed" if result.closed_book else "not applicable (open interest does not net to zero)"
    )
    return [
        "## Checks",
        "",
        "| check | result |",
        "|---|---|",
        f"| closed book: open interest nets, clearing + cost basis kept | {closed} |",
        *(
            f"| {name.replace('_', ' ')} | {'passed' if value else 'FAILED'} |"
            for name, value in r.checks().items()
        ),
        f"| money held after (balances + fund + house) | {r.money(result.audit_after.total_held)}"
        f" = net deposits {r.money(result.audit_after.net_external)} |",
    ]


def _conventions(r: _Report) -> list[str]:
    return [
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
        f" {r.book.warning_rate / RATE_SCALE:.0%}, liquidation at 100%.",
        "- Statement: closing balance = opening balance + realized PnL + funding − fees −"
        " liquidation losses (liquidation fee, takeover, ADL, socialized loss, less any"
        " insurance payout).",
    ]
