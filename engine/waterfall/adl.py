"""Auto-deleveraging: what the insurance fund cannot carry, taken from profit.

ADL runs while the fund's equity is below its floor; the shortfall is S = floor - equity.
It closes opposite-side trader positions in profit against the fund's positions (in each
instrument the fund holds, by instrument index) and moves money from those traders to the
fund (`adl`), exactly S in total when there is enough profit (overshoot 0), and reports
what is left, never inventing it.

The price. Lots are closed against the fund at the bankruptcy price until the shortfall is
covered, and not one unit more. Here k lots change hands as a pair of fills at the mark and
the trader pays the fund an amount A on top: the same as closing those k lots at the price
m -/+ A / (k x lot value), the price at which the fund's equity, after closing those k
lots, is back at exactly its floor. That is the bankruptcy price of the fund's slice, and
it is what "bankruptcy price" means here, for three reasons: (1) the fund is a pool over
many liquidated accounts and instruments, so no single liquidated order's bankruptcy price
applies to it (Binance closes each liquidated order at its own); (2) one price for all of
the fund's lots, set to take exactly S, closes more lots than S needs and can lie beyond
some traders' entries, taking principal, not profit; (3) money is integer and ticks
discrete: the price is implied by an integer transfer. The fund's lots not needed stay
with it, to be unwound. Per trader the amount is capped by the profit of the lots it
closes (queue and water-filling: the trader never realizes a loss against its entry, so
never loses principal) and always by its equity.

Policies (profile adl.policy): `pnl_leverage` and `hyperliquid` (a queue) and `pro_rata`
in engine.waterfall.adl_queue, `risk_water_filling` (minimax leverage) in
engine.waterfall.water_filling; this module applies their selections, in a batch through
Book.commit_fills or one pair of fills at a time (the reference path).
"""

from __future__ import annotations

import numpy as np

from engine.book.book import Book
from engine.book.ledger import Reason
from engine.book.limits import FLOAT_SCREEN_MAX
from engine.waterfall.adl_book import AdlBook, Selection
from engine.waterfall.adl_queue import select_pro_rata, select_queue
from engine.waterfall.events import KIND_CODE, WaterfallResult
from engine.waterfall.fund import fund_shortfall, plan_fills
from engine.waterfall.profile import Profile
from engine.waterfall.water_filling import select_water_filling


def apply_selection(
    state: AdlBook,
    profile: Profile,
    inst: int,
    selection: Selection,
    result: WaterfallResult,
    *,
    batch: bool,
) -> int:
    """Close the lots against the fund at the mark and move the amounts; returns the total."""
    book = state.book
    slots, lots, amounts = selection
    if len(slots) == 0:
        return 0
    fund = profile.fund_account_id
    fund_row = book.row_of(fund)
    rows = state.owner[slots]
    account_ids = book.account_id[rows]
    closed = np.where(book.pos_qty[slots] > 0, lots, -lots)
    price = int(book.mark[inst])
    moving = lots > 0
    plan = (
        plan_fills(book, fund_row, slots[moving], rows[moving], closed[moving]) if batch else None
    )
    if plan is not None:
        span = np.abs(book.balance[rows]).astype(np.float64) + amounts
        span[moving] += np.abs(plan.realized)
        fund_span = (
            abs(float(book.balance[fund_row]))
            + float(amounts.sum())
            + float(np.abs(plan.counterparty_realized).astype(np.float64).sum())
        )
        if (span > FLOAT_SCREEN_MAX).any() or fund_span > FLOAT_SCREEN_MAX:
            plan = None
    assert (amounts >= 0).all(), f"accounts {account_ids[amounts < 0][:10]}: ADL only takes"
    fund_equity = book.account_equity(fund)
    if plan is not None:
        event_ids = book.new_event_ids(len(slots))
        book.commit_fills(plan, fund, event_ids[moving])
        book.post_many(account_ids, fund, amounts, Reason.ADL, event_ids)
        n = len(slots)
        result.log.extend(
            {
                "kind": np.full(n, KIND_CODE["adl"]),
                "event_id": event_ids,
                "account_id": account_ids,
                "instrument": np.full(n, inst),
                "qty": closed,
                "price": np.full(n, price),
                "amount": amounts,
            }
        )
    else:
        symbol = book.instruments.instruments[inst].symbol
        for account_id, side_lots, amount in zip(
            account_ids.tolist(), closed.tolist(), amounts.tolist(), strict=True
        ):
            event_id = book.new_event_id()
            if side_lots:
                book.apply_fill(account_id, symbol, -side_lots, price, event_id=event_id)
                book.apply_fill(fund, symbol, side_lots, price, event_id=event_id)
            if amount:
                book.transfer(account_id, fund, amount, Reason.ADL, event_id)
            result.log.append("adl", event_id, account_id, inst, side_lots, price, amount)
    taken = sum(amounts.tolist())
    # Lots change hands at the mark, which moves no equity: the fund gains what is paid.
    assert book.account_equity(fund) - fund_equity == taken, f"fund {fund}: ADL misposted"
    state.acted(slots, amounts)
    return taken


def run_adl(
    book: Book, profile: Profile, floor: int, result: WaterfallResult, *, batch: bool = True
) -> None:
    need = fund_shortfall(book, profile, floor)
    result.adl_shortfall = need
    if need == 0:
        return
    if not result.log.symbols:  # a result made outside run_waterfall
        result.log.symbols = tuple(i.symbol for i in book.instruments.instruments)
    state = AdlBook(book, profile)
    fund_positions = book.positions_of(profile.fund_account_id)
    taken = 0
    policy = profile.adl_policy
    if policy == "pro_rata":
        selections = select_pro_rata(state, fund_positions, need)
        for inst, selection in sorted(selections.items()):
            taken += apply_selection(state, profile, inst, selection, result, batch=batch)
    else:
        for inst, fund_qty, _ in fund_positions:
            if taken == need:
                break
            if policy == "risk_water_filling":
                selection = select_water_filling(state, inst, fund_qty, need - taken)
            else:
                selection = select_queue(state, inst, fund_qty, need - taken, policy)
            taken += apply_selection(state, profile, inst, selection, result, batch=batch)
    result.adl_amount += taken
    result.adl_overshoot = max(0, taken - result.adl_shortfall)
    assert result.adl_overshoot == 0, "ADL took more profit than the shortfall"
    assert fund_shortfall(book, profile, floor) == need - taken, "ADL moved what it reports"
