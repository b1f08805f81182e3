"""The insurance fund's account: opening it, its shortfall, its fills and its unwind.

Positions reach the fund as pairs of fills at the mark: the trader gives k lots, the fund
takes them (open interest still nets to zero). The batch paths (takeover, ADL) plan many
such pairs at once with `plan_fills` -- the traders' side with the fill rule over columns,
the fund's side replayed in order, since the fund's rounding depends on its position
before each fill -- and hand the plan to `Book.commit_fills`, which checks and writes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.book.book import Book
from engine.book.fills import FillBatch, close_lots_many, fill_position, position_fits
from engine.book.limits import FLOAT_SCREEN_MAX
from engine.waterfall.events import WaterfallResult
from engine.waterfall.profile import Profile


def open_fund(book: Book, profile: Profile, amount: int) -> None:
    """The insurance fund's account, funded from EXTERNAL (a deposit) when amount > 0."""
    if book.index.find(profile.fund_account_id) is None:
        book.open_account(profile.fund_account_id)
    if amount > 0:
        book.deposit(profile.fund_account_id, amount)


def fund_shortfall(book: Book, profile: Profile, floor: int) -> int:
    """How far the fund's equity is below `floor` (money units; 0 when it is not)."""
    return max(0, floor - book.account_margin(profile.fund_account_id)[0])


def unwind_fund(
    book: Book, profile: Profile, prices: dict[str, int], result: WaterfallResult
) -> None:
    """The fund closes its position in each priced symbol at that execution price (ticks)
    against the unwind account, which stands for the market outside the book; what that
    loses against the mark adds to result.unwind_loss."""
    fund, market = profile.fund_account_id, profile.unwind_account_id
    if book.index.find(market) is None:
        book.open_account(market)
    for inst, qty, cost in book.positions_of(fund):
        symbol = book.instruments.instruments[inst].symbol
        if symbol not in prices:
            continue
        price = prices[symbol]
        event_id = book.new_event_id()
        unrealized = qty * int(book.mark_lot_value[inst]) - cost
        realized = book.apply_fill(fund, symbol, -qty, price, event_id=event_id)
        book.apply_fill(market, symbol, qty, price, event_id=event_id)
        result.log.append("unwind", event_id, fund, inst, qty, price, realized)
        # The fund's equity at the mark moves by what the price realizes beyond the mark.
        result.unwind_loss += max(0, unrealized - realized)


def fund_fills(
    qty: int, cost: int, fills: Sequence[int], lot_value: int, tick_value: int
) -> tuple[list[int], int, int] | None:
    """The realized PnL of each fill of a position at one lot value, in turn, exactly as
    Book.apply_fill computes it; with the position after. None where the position would
    leave the range apply_fill accepts."""
    realized = []
    for q in fills:
        qty, cost, r = fill_position(qty, cost, q, lot_value)
        if not position_fits(qty, cost, tick_value):
            return None
        realized.append(r)
    return realized, qty, cost


def plan_fills(
    book: Book, fund_row: int, slots: np.ndarray, rows: np.ndarray, closed: np.ndarray
) -> FillBatch | None:
    """The plan of closing `closed` lots of each slot (owned by the account at `rows`)
    against the fund at the mark, or None when a value could leave the range the book
    checks (the caller then goes one by one). Slots index the compacted columns, so the
    caller compacts before choosing them and nothing may compact before the commit."""
    inst = book.pos_instrument[slots].astype(np.int64)
    qty = book.pos_qty[slots]
    cost = book.pos_cost[slots]
    lot_value = book.mark_lot_value[inst]
    assert (book.mark[inst] > 0).all(), "a position is moved at a positive mark"
    assert (
        (closed != 0) & (np.sign(closed) == np.sign(qty)) & (np.abs(closed) <= np.abs(qty))
    ).all()
    if (np.abs(qty).astype(np.float64) * lot_value.astype(np.float64) > FLOAT_SCREEN_MAX).any():
        return None
    qty_after, cost_after, trader_realized = close_lots_many(qty, cost, closed, lot_value)
    fund_realized = np.zeros(len(slots), dtype=np.int64)
    fund_positions: dict[int, tuple[int, int]] = {}
    held = {i: (q, c) for i, q, c in book.positions_of(int(book.account_id[fund_row]))}
    tick_value = book.instruments.tick_value
    # The fund takes each slot's lots in the given order; per instrument that is a
    # subsequence, replayed with plain integers (one-sided runs add up without rounding).
    order = np.argsort(inst, kind="stable")
    bounds = np.flatnonzero(np.diff(inst[order])) + 1
    for group in np.split(order, bounds):
        if len(group) == 0:
            continue
        i = int(inst[group[0]])
        q0, c0 = held.get(i, (0, 0))
        fills = closed[group]
        lv = int(lot_value[group[0]])
        if (fills > 0).all() and q0 >= 0 or (fills < 0).all() and q0 <= 0:
            total = sum(fills.tolist())
            q1, c1 = q0 + total, c0 + total * lv
            if not position_fits(q1, c1, int(tick_value[i])):
                return None
            fund_positions[i] = (q1, c1)
            continue
        replay = fund_fills(q0, c0, fills.tolist(), lv, int(tick_value[i]))
        if replay is None:
            return None
        realized, q1, c1 = replay
        fund_realized[group] = realized
        fund_positions[i] = (q1, c1)
    return FillBatch(
        slots=slots,
        rows=rows,
        instrument=inst,
        closed=closed,
        lot_value=lot_value,
        qty_after=qty_after,
        cost_after=cost_after,
        realized=trader_realized,
        counterparty_realized=fund_realized,
        counterparty_positions=fund_positions,
    )
