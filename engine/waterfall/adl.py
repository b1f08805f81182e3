"""Auto-deleveraging: what the insurance fund cannot carry, taken from profit, safely.

ADL runs while the fund's equity is below its floor; the shortfall is S = floor - equity.
It closes opposite-side trader positions in profit against the fund's positions and moves
money from those traders to the fund (`adl`); what it cannot cover goes on to socialized
loss (engine.waterfall.socialize), then is reported unallocated, never invented.

The rules every policy keeps (the waterfall's promise):
- Payer safety. A payer is left safe: if it still holds positions, equity after >
  maintenance after (its status is not liquidate nor bankrupt); if it ends flat, equity
  after >= 0. Each account has a safe capacity, cap = equity - maintenance - 1 unit while
  positions remain (the maintenance before the close bounds the one after: closing lots
  only lowers it), cap = equity when it ends flat, never negative; a payment never
  exceeds it, and an account whose cap is 0 is skipped (the queue moves on).
- Profit only. A payer pays at most the profit, at the mark, of the lots it closes (the
  fill rule's realized PnL, engine.book.fills): it never realizes a loss against its entry.
- The price (`[adl] price = "bankruptcy"`, queue policies). This tick's bankrupt takeovers
  form tranches (engine.waterfall.tranches): per defaulter and instrument, in liquidation
  order, the lots the fund took and the defaulter's deficit share. Payers in queue order
  are matched to tranche lots in order; each pays min(tranche value of its lots, their
  profit, its cap) -- the same as closing them at the bankruptcy price, or nearer the mark
  where a cap binds. Lots change hands as a pair of fills at the mark and the payment
  moves on top; the event's price is the effective price (mark -/+ amount / (lots x tick
  value), rounded toward the mark). Lots the fund holds from other takeovers or earlier
  ticks carry no premium and are not ADL'd; the lots it does not need stay with it.
- The quantity (`[adl] quantity`). "fewest" (default): the fewest lots that cover S, only
  the last one's price trimmed, so ADL takes exactly S (overshoot 0). "whole": each payer
  position closes whole (up to the tranche lots left) and pays its full value; what is
  taken beyond S is `adl_overshoot` and stays with the fund; adl_amount counts what
  covered S.
- `pro_rata` and `risk_water_filling` keep their allocation at the mark
  (engine.waterfall.adl_queue, engine.waterfall.water_filling), every weight and payment
  capped by the safe cap and by the profit of the lots closed.

This module applies the selections, in a batch through Book.commit_fills or one pair of
fills at a time (the reference path).
"""

from __future__ import annotations

import numpy as np

from engine.book.book import Book
from engine.book.ledger import Reason
from engine.book.limits import FLOAT_SCREEN_MAX
from engine.waterfall.adl_book import POLICY_CODES, AdlBook, Selection
from engine.waterfall.adl_queue import select_pro_rata, select_queue
from engine.waterfall.events import KIND_CODE, WaterfallResult
from engine.waterfall.fund import fund_shortfall, plan_fills
from engine.waterfall.profile import Profile
from engine.waterfall.tranches import tick_tranches
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
    # the effective price: what is paid per lot on top of the mark, toward the mark
    premium = amounts // np.maximum(lots * int(book.instruments.tick_value[inst]), 1)
    event_price = np.where(lots > 0, price - np.sign(closed) * premium, price)
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
                "price": event_price,
                "amount": amounts,
            }
        )
    else:
        symbol = book.instruments.instruments[inst].symbol
        for account_id, side_lots, amount, paid_price in zip(
            account_ids.tolist(),
            closed.tolist(),
            amounts.tolist(),
            event_price.tolist(),
            strict=True,
        ):
            event_id = book.new_event_id()
            if side_lots:
                book.apply_fill(account_id, symbol, -side_lots, price, event_id=event_id)
                book.apply_fill(fund, symbol, side_lots, price, event_id=event_id)
            if amount:
                book.transfer(account_id, fund, amount, Reason.ADL, event_id)
            result.log.append("adl", event_id, account_id, inst, side_lots, paid_price, amount)
    taken = sum(amounts.tolist())
    # Lots change hands at the mark, which moves no equity: the fund gains what is paid.
    assert book.account_equity(fund) - fund_equity == taken, f"fund {fund}: ADL misposted"
    state.acted(slots, amounts)
    return taken


def run_adl(
    book: Book, profile: Profile, floor: int, result: WaterfallResult, *, batch: bool = True
) -> None:
    """ADL of the fund's shortfall below `floor`, after this tick's takeovers (read from
    result.log for the tranches). Sets adl_shortfall, adl_amount and adl_overshoot."""
    need = fund_shortfall(book, profile, floor)
    result.adl_shortfall = need
    if need == 0:
        return
    if not result.log.symbols:  # a result made outside run_waterfall
        result.log.symbols = tuple(i.symbol for i in book.instruments.instruments)
    fund_positions = book.positions_of(profile.fund_account_id)
    policy = profile.adl_policy
    lines = tick_tranches(book, result.log, fund_positions) if policy in POLICY_CODES else {}
    state = AdlBook(book, profile)
    taken = 0
    if policy == "pro_rata":
        selections = select_pro_rata(state, fund_positions, need)
        for inst, selection in sorted(selections.items()):
            taken += apply_selection(state, profile, inst, selection, result, batch=batch)
    else:
        whole = profile.adl_quantity == "whole"
        for inst, fund_qty, _ in fund_positions:
            if taken >= need:
                break
            if policy == "risk_water_filling":
                selection = select_water_filling(state, inst, fund_qty, need - taken)
            elif inst in lines:
                selection = select_queue(
                    state, inst, fund_qty, need - taken, policy, lines[inst], whole=whole
                )
            else:
                continue
            taken += apply_selection(state, profile, inst, selection, result, batch=batch)
    result.adl_amount += min(taken, need)
    result.adl_overshoot = max(0, taken - need)
    assert result.adl_overshoot == 0 or profile.adl_quantity == "whole", (
        "ADL took more than the shortfall"
    )
    assert fund_shortfall(book, profile, floor) == max(0, need - taken), "ADL moved what it reports"
