"""The settlement's figures for reading: summary.json, and the selections the report and
charts share (largest instruments, largest losers). Money as exact decimal strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from engine.book.book import STATUS_NAMES, Book
from engine.book.fixed import format_units
from engine.book.ledger import HOUSE_ACCOUNTS
from engine.book.limits import RESERVED_ACCOUNT_BASE
from engine.settlement.results import SettlementResult
from engine.settlement.sums import total
from engine.waterfall.profile import Profile

CURRENCY_DEFAULT = "USDT"
LOSERS = 10
NEGATIVE_IN_SUMMARY = 100


def house_book(book: Book, profile: Profile) -> np.ndarray:
    """Rows of the house's own book accounts (funds, the unwind counterparty)."""
    reserved = book.account_id >= RESERVED_ACCOUNT_BASE
    return reserved | np.isin(book.account_id, [profile.fund_account_id, profile.unwind_account_id])


def money_text(units: int, md: int) -> str:
    """Exact decimal text of raw money units."""
    return format_units(int(units), md)


def decimal_text(steps: int, step: Decimal) -> str:
    """Exact text of `steps` grid steps, at the step's places (0.1 x 1010000 -> 101000.0)."""
    return f"{Decimal(int(steps)) * step:f}"


def rate_text(rate: int) -> str:
    return format_units(int(rate), 8)


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
                "settlement_price": decimal_text(int(t.settlement_price[k]), inst.tick_size),
                "positions": int(t.positions[k]),
                "open_interest_long": decimal_text(int(t.long_lots[k]), inst.lot_size),
                "open_interest_short": decimal_text(-int(t.short_lots[k]), inst.lot_size),
                "open_interest_nets_to_zero": int(t.long_lots[k]) + int(t.short_lots[k]) == 0,
                "variation_margin_gains": money_text(t.variation_margin_gains[k], md),
                "variation_margin_losses": money_text(t.variation_margin_losses[k], md),
                "mtm_gains": money_text(t.mtm_gains[k], md),
                "mtm_losses": money_text(t.mtm_losses[k], md),
                "funding_rate": rate_text(int(t.funding_rate[k])),
                "funding_rate_source": t.funding_source[k],
                "funding_paid": money_text(t.funding_paid[k], md),
                "funding_received": money_text(t.funding_received[k], md),
                "funding_to_pool": money_text(t.funding_to_pool[k], md),
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
            "variation_margin_gains": money_text(total(t.variation_margin_gains), md),
            "variation_margin_losses": money_text(total(t.variation_margin_losses), md),
            "mtm_gains": money_text(total(t.mtm_gains), md),
            "mtm_losses": money_text(total(t.mtm_losses), md),
            "realized_pnl": money_text(total(result.realized_pnl), md),
            "funding_paid": money_text(total(t.funding_paid), md),
            "funding_received": money_text(total(t.funding_received), md),
            "funding_to_pool": money_text(total(t.funding_to_pool), md),
            "fees": money_text(total(result.fees), md),
            "liquidation_fees": money_text(w.liquidation_fees, md),
            "takeover_surplus": money_text(w.takeover_surplus, md),
            "insurance_paid": money_text(w.insurance_paid, md),
            "debt_kept": money_text(w.debt_kept, md),
            "adl": money_text(w.adl_amount, md),
            "socialized_loss": money_text(w.socialized_amount, md),
            "unallocated_loss": money_text(w.unallocated_loss, md),
        },
        "instruments": instrument_rows(book, result),
        "insurance_fund": {
            "account_id": fund_id,
            "balance_before": money_text(w.fund_balance_before, md),
            "balance_after": money_text(w.fund_balance_after, md),
            "equity_before": money_text(w.fund_equity_before, md),
            "equity_after": money_text(w.fund_equity_after, md),
            "equity_change": money_text(w.fund_equity_after - w.fund_equity_before, md),
        },
        "house_accounts": {
            name: {
                "account_id": account,
                "balance_before": money_text(result.house_before.get(account, 0), md),
                "balance_after": money_text(result.house_after[account], md),
            }
            for account, name in HOUSE_ACCOUNTS.items()
        },
        "trader_status_before_waterfall": status_counts(result.before_waterfall.status),
        "trader_status_after": status_counts(result.closing.status),
        "waterfall_events": w.summary(),
        "accounts_negative": {
            "count": len(negative),
            "total_equity": money_text(total(result.closing.equity[negative]), md),
            "accounts": [
                {
                    "account_id": int(book.account_id[r]),
                    "balance": money_text(book.balance[r], md),
                    "equity": money_text(result.closing.equity[r], md),
                }
                for r in negative[:NEGATIVE_IN_SUMMARY].tolist()
            ],
        },
        "conservation": {
            "before": {
                "ok": result.audit_before.ok,
                "held": money_text(result.audit_before.total_held, md),
                "deposited_net": money_text(result.audit_before.net_external, md),
            },
            "after": {
                "ok": result.audit_after.ok,
                "held": money_text(result.audit_after.total_held, md),
                "deposited_net": money_text(result.audit_after.net_external, md),
            },
            "closed_book_checked": result.closed_book,
            **result.checks,
        },
        "settled_dates": list(settled_dates),
    }


def top_instruments(result: SettlementResult, n: int) -> np.ndarray:
    """Up to n instruments priced or held, largest gross mark-to-market plus funding paid
    first (ties to the lower index)."""
    t = result.instruments
    gross = (t.mtm_gains - t.mtm_losses).astype(np.float64) + t.funding_paid.astype(np.float64)
    candidates = np.flatnonzero(t.priced | (t.positions > 0))
    order = candidates[np.lexsort((candidates, -gross[candidates]))]
    return order[:n]


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


def account_label(account_id: int) -> str:
    """How the report and charts name an account (the house book by its role)."""
    if account_id >= RESERVED_ACCOUNT_BASE:
        return "house book (fund)"
    return f"account {account_id}"
