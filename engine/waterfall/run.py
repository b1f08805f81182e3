"""One tick's waterfall: who pays when an account's equity no longer covers its margin.

Order within a tick, every money movement a ledger posting through the book:

1. Liquidation (engine.waterfall.takeover): breached accounts in priority order, taken
   over by the insurance fund at their bankruptcy value, in full or in partial steps.
2. Unwind (optional input, engine.waterfall.fund): the fund closes its positions at given
   execution prices against the unwind account, which stands for the market outside.
3. The deficit to cover: this tick's insurance payouts, the unwind's loss against the
   mark, and any deficit carried in (the fund below its floor before the tick). The fund
   carries what its equity above the floor (with the tick's fees, takeover surplus and
   unwind gains) absorbs, `fund_drawdown`; the rest, its shortfall below the floor, goes to
4. ADL (engine.waterfall.adl), then 5. socialized loss (engine.waterfall.socialize), and
   what is left is `unallocated_loss` (an event; the fund's deficit below its floor):
   fund_drawdown + adl_amount + socialized_amount + unallocated_loss == deficit_to_cover,
   asserted to the unit. ADL and socialized loss never leave a payer unsafe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.book.book import STATUS_LIQUIDATE, Book
from engine.waterfall.adl import run_adl
from engine.waterfall.events import EventLog, WaterfallResult
from engine.waterfall.fund import fund_shortfall, unwind_fund
from engine.waterfall.models import Models, model_sweep, prepare_takeovers, uses_models
from engine.waterfall.profile import Profile, reserved_mask
from engine.waterfall.socialize import socialize_loss
from engine.waterfall.stop_out import stop_out_accounts
from engine.waterfall.takeover import liquidate_account, liquidate_in_runs, liquidation_order


@dataclass(frozen=True)
class SweptRows:
    """A sweep's figures for some account rows (all of them, or an incremental tick's)."""

    rows: np.ndarray
    equity: np.ndarray
    maintenance_margin: np.ndarray
    status: np.ndarray


def run_waterfall(
    book: Book,
    profile: Profile,
    *,
    unwind_prices: dict[str, int] | None = None,
    batch: bool = True,
    swept: SweptRows | None = None,
    models: Models | None = None,
    priority: Callable[[np.ndarray], np.ndarray] | None = None,
) -> WaterfallResult:
    """One tick's waterfall at the book's current marks. The fund must be open.

    `batch=False` takes every account over one at a time through the book's operations
    (the reference the batch path is tested against); the results are the same. `swept`,
    a sweep already done at these marks over rows that include every breached account
    (a full or an incremental sweep), saves the waterfall its own full sweep. `models`: the
    state of the profile's risk models (engine.waterfall.models): their steps run before the
    takeovers, and the profile's stop-out replaces the takeover step. `priority` maps
    account ids to the liquidation order's first key (lower first; engine.exchange).
    """
    fund = profile.fund_account_id
    result = WaterfallResult(log=EventLog([i.symbol for i in book.instruments.instruments]))
    result.fund_balance_before = int(book.balance[book.row_of(fund)])
    result.fund_equity_before = book.account_margin(fund)[0]
    if swept is None and uses_models(profile):
        swept = SweptRows(*model_sweep(book, profile))
    if swept is None:
        risk = book.sweep(with_initial_margin=False)
        swept = SweptRows(
            np.arange(book.n_accounts, dtype=np.int64),
            risk.equity,
            risk.maintenance_margin,
            risk.status,
        )
    breached = np.flatnonzero(swept.status >= STATUS_LIQUIDATE)
    breached = breached[~reserved_mask(book.account_id[swept.rows[breached]], profile)]
    rows = swept.rows[breached]
    if not profile.negative_balance_protection:
        # A flat account in debt stays bankrupt in every sweep; its debt was kept when it
        # was taken over, and there is nothing left to take.
        open_positions = np.bincount(
            book.position_owner()[book.pos_qty != 0], minlength=book.n_accounts
        )
        keep = open_positions[rows] > 0
        rows, breached = rows[keep], breached[keep]
    equity = swept.equity[breached]
    maintenance = swept.maintenance_margin[breached]
    if models is not None:
        rows, equity, maintenance = prepare_takeovers(
            book, profile, models, rows, equity, maintenance, result
        )
    ids = book.account_id[rows]
    first_key = None if priority is None else priority(ids)
    order = np.asarray(liquidation_order(ids, equity, maintenance, first_key), dtype=np.int64)
    if profile.stop_out is not None:
        stop_out_accounts(book, profile, rows[order], result)
    elif batch:
        liquidate_in_runs(book, profile, rows[order], equity[order], maintenance[order], result)
    else:
        for i in order.tolist():
            liquidate_account(
                book, profile, int(ids[i]), int(equity[i]), int(maintenance[i]), result
            )
    result.accounts_liquidated += len(order)
    if unwind_prices:
        unwind_fund(book, profile, unwind_prices, result)
    floor = profile.fund_floor_units(book.instruments.money_decimals)
    cover_deficit(book, profile, floor, result, batch=batch)
    result.fund_balance_after = int(book.balance[book.row_of(fund)])
    result.fund_equity_after = book.account_margin(fund)[0]
    return result


def cover_deficit(
    book: Book, profile: Profile, floor: int, result: WaterfallResult, *, batch: bool
) -> None:
    """Steps 3-5 after the takeovers and the unwind: the deficit to cover, what the fund
    carries, ADL, socialized loss, and the unallocated rest, to the unit."""
    fund = profile.fund_account_id
    shortfall = fund_shortfall(book, profile, floor)
    carried_in = max(0, floor - result.fund_equity_before)
    result.deficit_to_cover = result.insurance_paid + result.unwind_loss + carried_in
    result.fund_drawdown = result.deficit_to_cover - shortfall
    assert result.fund_drawdown >= 0, (
        f"fund {fund}: short {shortfall} of its floor, more than the deficit"
        f" {result.deficit_to_cover} it took on"
    )
    if profile.adl_enabled:
        run_adl(book, profile, floor, result, batch=batch)
    if profile.socialized_loss_enabled:
        socialize_loss(book, profile, floor, result)
    result.unallocated_loss = fund_shortfall(book, profile, floor)
    if result.unallocated_loss:
        result.log.append(
            "unallocated_loss", book.new_event_id(), fund, -1, 0, 0, result.unallocated_loss
        )
    parts = (
        result.fund_drawdown,
        result.adl_amount,
        result.socialized_amount,
        result.unallocated_loss,
    )
    assert min(parts) >= 0 and sum(parts) == result.deficit_to_cover, (
        f"fund {fund}: drawdown + adl + socialized + unallocated {parts} != deficit to cover"
        f" {result.deficit_to_cover}"
    )
