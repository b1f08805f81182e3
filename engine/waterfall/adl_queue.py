"""ADL selection by queue (`pnl_leverage`, `hyperliquid`) and by share (`pro_rata`).

Every payer is left safe and never pays more than the profit at the mark of the lots it
closes (engine.waterfall.adl states the rule).

- `pnl_leverage`, `hyperliquid`: a queue at the bankruptcy price. Opposite positions in
  profit are scored by csrc/adl.h (floored int64, ties by account id) and taken best first
  from a top-k selection that grows only when the first k run out; each is matched to the
  instrument's tranche lots (engine.waterfall.tranches) in order and pays
  min(tranche value of its lots, their profit, its safe cap). Fewest mode: the least lots
  that pay min(still short, the most it can pay), so the last one taken pays a part and
  ADL takes exactly the shortfall; whole mode: its whole position, up to the tranche lots
  left. A payer that can pay nothing (cap 0) is skipped.
- `pro_rata`: every opposite position in profit, over all the fund's instruments at once,
  pays a share of S in proportion to its profit (weights capped so an account's weights sum
  to at most its safe cap), exact by largest-remainder rounding (csrc/allocation.h; ties by
  account id, then instrument), at the mark. Each closes the least lots whose profit covers
  its share. When those lots exceed the fund's position in an instrument, the fund's lots
  are shared out in proportion to them (largest remainder again) and each pays at most the
  profit of the lots it closes; what is left goes on to socialized loss.
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
from engine.waterfall.tranches import TrancheLine

TOP_K_FIRST = 64


def _queue_take(
    state: AdlBook,
    line: TrancheLine,
    at: int,
    slot: int,
    need: int,
    lot_value: int,
    whole: bool,
) -> tuple[int, int]:
    """(lots, amount) the payer at `slot` gives for tranche lots from `at` on; (0, 0) to
    skip it. It pays min(tranche value of its lots, their profit at the mark, its safe
    cap); fewest mode takes the least lots that pay min(need, the most it can pay), whole
    mode closes its whole position (up to the tranche lots left)."""
    book = state.book
    qty, cost = int(book.pos_qty[slot]), int(book.pos_cost[slot])
    row = int(state.owner[slot])
    most = min(abs(qty), line.total_lots - at)
    if most <= 0:
        return 0, 0
    flat_possible = most == abs(qty) and int(state.open_positions[row]) == 1
    start_value = line.value_at(at)

    def value(k: int) -> int:
        return line.value_at(at + k) - start_value

    def pays(k: int) -> int:
        cap = state.safe_cap(row, flat_possible and k == abs(qty))
        return min(value(k), closed_profit(qty, cost, k, lot_value), cap)

    best = pays(most)
    if best <= 0:
        return 0, 0
    if whole:
        return most, best
    amount = min(need, best)
    by_value = line.least_lots(start_value + amount)
    assert by_value is not None
    lots = max(by_value - at, lots_to_cover(qty, cost, most, lot_value, amount))
    if pays(lots) < amount:  # only the flat close has the room: take it
        lots = most
    assert pays(lots) >= amount and 0 < lots <= most
    return lots, amount


def select_queue(
    state: AdlBook,
    inst: int,
    fund_qty: int,
    need: int,
    policy: str,
    line: TrancheLine,
    *,
    whole: bool = False,
) -> Selection:
    """The queue of pnl_leverage / hyperliquid in one instrument, best first, matched to
    the instrument's tranche lots in order (the tranches lie within the fund's position)."""
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
    at = 0  # the next tranche lot
    picked: list[tuple[int, int, int]] = []
    # Candidates are visited best first; the top-k grows only when the first k run out.
    k, seen = min(TOP_K_FIRST, n), 0
    while need > 0 and at < line.total_lots and k > 0:
        top, count = _native.adl_top_k(np.zeros(n, dtype=np.int64), score, ids, 1, k)
        for j in top[0, seen : count[0]].tolist():
            if need <= 0 or at == line.total_lots:
                break
            lots, amount = _queue_take(state, line, at, int(slots[j]), need, lot_value, whole)
            if lots == 0:
                continue
            picked.append((j, lots, amount))
            need -= amount
            at += lots
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
    rows: np.ndarray, slots: np.ndarray, upnl: np.ndarray, cap: np.ndarray
) -> np.ndarray:
    """Profit weights capped so each account's weights sum to min(its profits, its cap)
    (cap per account row: its safe capacity): its slots in slot order take
    min(running profit, cap) in turn."""
    order = np.lexsort((slots, rows))
    r, u = rows[order], upnl[order]
    e = cap[r]
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
    weight = capped_weights(rows, slots, state.upnl[slots], state.safe_caps())
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
        amount = share[mine]
        if int(lots.sum()) > abs(fund_qty):
            lots, _ = _native.allocate_largest_remainder(lots, tie[mine], abs(fund_qty))
            # fewer lots than the share needs: it pays at most their profit
            amount = np.asarray(
                [
                    min(a, closed_profit(q, c, k, lot_value)) if k else 0
                    for q, c, k, a in zip(qty, cost, lots.tolist(), amount.tolist(), strict=True)
                ],
                dtype=np.int64,
            )
        keep = lots > 0
        selections[inst] = (slots[mine][keep], lots[keep], amount[keep])
    return selections
