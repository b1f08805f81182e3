"""The exchange's forced position reduction (强制减仓) in a limit-locked market.

When a contract closes at its limit, the losing side cannot trade out: at limit up no one
sells, so shorts cannot buy back; at limit down no one buys. Chinese futures exchanges then
reduce positions by rule: the losing positions that must be closed are matched, at the
limit price, against the profitable positions on the other side, allocated pro rata to
their size. Here, for one locked instrument:

- reducers: the breached accounts given (in liquidation order), each with its whole
  position on the losing side of the instrument (shorts at limit up, longs at limit down);
- counterparties: every other trader account (no house account) holding the opposite side
  with an unrealized profit at the limit price, weighted by its lots;
- R = min(lots wanted, lots available) are closed: the reducers in their order take what
  they need until R is spent; the counterparties' parts are R pro rata to their lots, exact
  largest-remainder rounding, ties to the lower account id (csrc/allocation.h, as the
  waterfall's socialized loss), each part at most the counterparty's position.

All sides trade at the limit price, which is the mark, with no fee: every side's equity is
unchanged (its unrealized PnL on the lots closed is realized into its balance) and its
maintenance margin can only fall (fewer lots). So the payer-safety rule of ADL and
socialized loss (a payer is left safe) holds without a cap: a counterparty is never made
less safe; both are asserted around the write, with the ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine import _native
from engine.book.book import Book
from engine.exchange.price_limits import LIMIT_UP
from engine.waterfall.profile import Profile, reserved_mask


@dataclass(frozen=True)
class Reduction:
    """One side of a forced reduction: lots closed, signed as the position before."""

    event_id: int
    account_id: int
    instrument: int
    qty: int
    price: int  # ticks: the limit price
    realized: int  # money units realized into the balance
    reducer: bool  # True: the breached account; False: a profitable counterparty


def forced_reduction(
    book: Book, profile: Profile, instrument: int, locked_side: int, reducers: list[int]
) -> list[Reduction]:
    """Reduce the losing positions of `reducers` (account ids, in liquidation order) in the
    locked `instrument` against profitable opposite positions (module docstring)."""
    losing = -1 if locked_side == LIMIT_UP else 1  # the sign of the positions that lose
    symbol = book.instruments.instruments[instrument].symbol
    price = int(book.mark[instrument])
    lot_value = int(book.mark_lot_value[instrument])
    book.compact()
    demand = []
    for account_id in reducers:
        qty, _ = book.position(account_id, symbol)
        if qty * losing > 0:
            demand.append((account_id, abs(qty)))
    if not demand:
        return []
    owner = book.position_owner()
    qty_col, cost_col = book.pos_qty, book.pos_cost
    ids = book.account_id[owner]
    upnl = qty_col * lot_value - cost_col  # the book keeps |qty| * lot value within int64
    candidate = (
        (book.pos_instrument == instrument)
        & (qty_col * losing < 0)
        & (upnl > 0)
        & ~reserved_mask(ids, profile)
        & ~np.isin(ids, [a for a, _ in demand])
    )
    slots = np.flatnonzero(candidate)
    order = np.argsort(ids[slots], kind="stable")
    slots = slots[order]
    weight = np.abs(qty_col[slots]).astype(np.int64)
    counter_ids = np.ascontiguousarray(ids[slots], dtype=np.int64)
    wanted = sum(need for _, need in demand)
    total = min(wanted, int(weight.sum()))
    if total == 0:
        return []
    parts, allocated = _native.allocate_largest_remainder(weight, counter_ids, total)
    assert allocated == total == sum(parts.tolist()), f"{symbol}: parts do not sum to {total}"
    assert (parts <= weight).all(), f"{symbol}: a part beyond its counterparty's position"
    sides: list[tuple[int, int, int]] = []
    left = total
    for account_id, need in demand:
        take = min(need, left)
        left -= take
        if take:
            sides.append((account_id, -losing * take, 0))
    sides += [(int(a), losing * int(p), 0) for a, p in zip(counter_ids, parts, strict=True) if p]
    assert left == 0 and sum(q for _, q, _ in sides) == 0, f"{symbol}: the trade does not net"
    rows = np.array([book.row_of(a) for a, _, _ in sides], dtype=np.int64)
    equity_before, mm_before, _ = book.sweep_rows(rows)
    event_id = book.new_event_id()
    realized = book.apply_trade(symbol, price, sides, event_id=event_id)
    equity_after, mm_after, _ = book.sweep_rows(rows)
    unchanged = equity_after == equity_before
    assert unchanged.all(), (
        f"{symbol}: forced reduction moved the equity of"
        f" {[sides[i][0] for i in np.flatnonzero(~unchanged)]}"
    )
    worse = mm_after > mm_before
    assert not worse.any(), (
        f"{symbol}: forced reduction raised the maintenance margin of"
        f" {[sides[i][0] for i in np.flatnonzero(worse)]}"
    )
    n_reducers = sum(1 for a, _, _ in sides if a in dict(demand))
    return [
        Reduction(event_id, a, instrument, -q, price, r, i < n_reducers)
        for i, ((a, q, _), r) in enumerate(zip(sides, realized, strict=True))
    ]
