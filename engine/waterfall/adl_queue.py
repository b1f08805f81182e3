"""ADL selection by queue (`pnl_leverage`, `hyperliquid`) and by share (`pro_rata`).

- `pnl_leverage`, `hyperliquid`: a queue. Opposite positions in profit are scored by
  csrc/adl.h (floored int64, ties by account id) and taken best first from a top-k
  selection that grows only when the first k run out. From a position of q lots, k lots
  go, k the least number whose profit covers what is still short (closed form, exact), and
  the trader pays min(still short, profit of those k lots, equity): the last one taken
  pays a part, everyone before it the whole profit of the lots it closed.
- `pro_rata`: every opposite position in profit, over all the fund's instruments at once,
  pays a share of S in proportion to its profit (weights capped so an account's weights sum
  to at most its equity), exact by largest-remainder rounding (csrc/allocation.h; ties by
  account id, then instrument). Each closes the least lots whose profit covers its share.
  When those lots exceed the fund's position in an instrument, the fund's lots are shared
  out in proportion to them (largest remainder again) and the shares are still paid in
  full: a haircut of profit, never more than the position's profit.
"""

from __future__ import annotations

import numpy as np

from engine import _native
from engine.book.limits import VALUE_MAX
from engine.waterfall.adl_book import (
    POLICY_CODES,
    AdlBook,
    Selection,
    closed_profit,
    empty_selection,
    lots_to_cover,
)

TOP_K_FIRST = 64


def select_queue(state: AdlBook, inst: int, fund_qty: int, need: int, policy: str) -> Selection:
    """The queue of pnl_leverage / hyperliquid in one instrument, best first."""
    book = state.book
    slots = state.candidates(inst, -1 if fund_qty > 0 else 1)
    n = len(slots)
    if n == 0:
        return empty_selection()
    rows = state.owner[slots]
    score = _native.adl_scores(
        POLICY_CODES[policy],
        state.upnl[slots],
        np.abs(book.pos_cost[slots]),
        state.notional[slots],
        state.equity[rows],
    )
    ids = np.ascontiguousarray(book.account_id[rows])
    lot_value = int(book.mark_lot_value[inst])
    fund_lots = abs(fund_qty)
    picked: list[tuple[int, int, int]] = []
    # Candidates are visited best first; the top-k grows only when the first k run out.
    k, seen = min(TOP_K_FIRST, n), 0
    while need > 0 and fund_lots > 0 and k > 0:
        top, count = _native.adl_top_k(np.zeros(n, dtype=np.int64), score, ids, 1, k)
        block = top[0, seen : count[0]]
        columns = (
            block.tolist(),
            book.pos_qty[slots[block]].tolist(),
            book.pos_cost[slots[block]].tolist(),
            state.upnl[slots[block]].tolist(),
            state.equity[rows[block]].tolist(),
        )
        for j, qty, cost, upnl, equity in zip(*columns, strict=True):
            if need == 0 or fund_lots == 0:
                break
            cap = min(abs(qty), fund_lots)
            # The whole position's realized profit is its unrealized PnL, to the unit.
            profit = upnl if cap == abs(qty) else closed_profit(qty, cost, cap, lot_value)
            have = min(profit, equity)
            if have <= 0:
                continue
            if have <= need:
                lots, amount = cap, have
            else:
                lots = lots_to_cover(qty, cost, cap, lot_value, need)
                amount = min(need, closed_profit(qty, cost, lots, lot_value), equity)
            picked.append((j, lots, amount))
            need -= amount
            fund_lots -= lots
        seen = int(count[0])
        k = min(k * 4, n) if seen < n else 0
    if not picked:
        return empty_selection()
    j_list, lots_list, amount_list = zip(*picked, strict=True)
    return (
        slots[np.asarray(j_list, dtype=np.int64)],
        np.asarray(lots_list, dtype=np.int64),
        np.asarray(amount_list, dtype=np.int64),
    )


def capped_weights(
    rows: np.ndarray, slots: np.ndarray, upnl: np.ndarray, equity: np.ndarray
) -> np.ndarray:
    """Profit weights capped so each account's weights sum to min(its profits, its equity):
    its slots in slot order take min(running profit, equity) in turn."""
    order = np.lexsort((slots, rows))
    r, u = rows[order], upnl[order]
    e = equity[r]
    weight_sorted = np.zeros(len(order), dtype=np.int64)
    if float(np.abs(u).astype(np.float64).sum()) < float(VALUE_MAX):
        cum = np.cumsum(u)
        first = np.flatnonzero(np.concatenate([[True], r[1:] != r[:-1]]))
        before = np.repeat(cum[first] - u[first], np.diff(np.concatenate([first, [len(r)]])))
        cum -= before
        weight_sorted = np.minimum(cum, e) - np.minimum(cum - u, e)
    else:
        running, last = 0, -1
        for i, (row, profit, eq) in enumerate(zip(r.tolist(), u.tolist(), e.tolist(), strict=True)):
            running = profit if row != last else running + profit
            last = row
            weight_sorted[i] = min(running, eq) - min(running - profit, eq)
    weight = np.empty_like(weight_sorted)
    weight[order] = np.maximum(weight_sorted, 0)
    return weight


def select_pro_rata(
    state: AdlBook, fund_positions: list[tuple[int, int, int]], need: int
) -> dict[int, Selection]:
    """pro_rata over every instrument the fund holds at once; a selection per instrument."""
    book = state.book
    per_inst = [state.candidates(inst, -1 if q > 0 else 1) for inst, q, _ in fund_positions]
    if not per_inst or sum(len(s) for s in per_inst) == 0:
        return {}
    slots = np.concatenate(per_inst)
    inst_of = book.pos_instrument[slots].astype(np.int64)
    rows = state.owner[slots]
    ids = book.account_id[rows]
    weight = capped_weights(rows, slots, state.upnl[slots], state.equity)
    tie = np.empty(len(slots), dtype=np.int64)
    tie[np.lexsort((inst_of, ids))] = np.arange(len(slots))
    share, _ = _native.allocate_largest_remainder(weight, tie, need)
    selections: dict[int, Selection] = {}
    for inst, fund_qty, _ in fund_positions:
        mine = np.flatnonzero((inst_of == inst) & (share > 0))
        if len(mine) == 0:
            continue
        lot_value = int(book.mark_lot_value[inst])
        qty = book.pos_qty[slots[mine]].tolist()
        cost = book.pos_cost[slots[mine]].tolist()
        lots = np.asarray(
            [
                lots_to_cover(q, c, abs(q), lot_value, a)
                for q, c, a in zip(qty, cost, share[mine].tolist(), strict=True)
            ],
            dtype=np.int64,
        )
        if int(lots.sum()) > abs(fund_qty):
            lots, _ = _native.allocate_largest_remainder(lots, tie[mine], abs(fund_qty))
        selections[inst] = (slots[mine], lots, share[mine])
    return selections
