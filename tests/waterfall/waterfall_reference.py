"""Plain-Python references of the waterfall kernels (csrc/adl.h, csrc/allocation.h)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.book.ledger import Reason

INT64_MAX = 2**63 - 1
SCALE = 10**8
PNL_LEVERAGE, HYPERLIQUID = 0, 1


def _clamp(v: int) -> int:
    return max(-INT64_MAX, min(INT64_MAX, v))


def adl_scores(
    policy: int, upnl: list[int], cost_abs: list[int], notional: list[int], equity: list[int]
) -> list[int]:
    out = []
    for u, c, n, e in zip(upnl, cost_abs, notional, equity, strict=True):
        lev = _clamp(n * SCALE // e) if e > 0 else INT64_MAX
        lev = max(lev, 1)
        if policy == PNL_LEVERAGE:
            if c > 0:
                pnl = _clamp(u * SCALE // c)
            else:
                pnl = INT64_MAX if u > 0 else (-INT64_MAX if u < 0 else 0)
            out.append(_clamp(pnl * lev // SCALE) if u >= 0 else _clamp(pnl * SCALE // lev))
        else:
            ratio = _clamp(n * SCALE // c) if c > 0 else INT64_MAX
            out.append(_clamp(ratio * lev // SCALE))
    return out


def adl_top_k(
    group: list[int], score: list[int], account_id: list[int], n_groups: int, k: int
) -> list[list[int]]:
    """Per group, the best k candidate indices: higher score first, then lower account id."""
    ranked = sorted(range(len(group)), key=lambda j: (-score[j], account_id[j]))
    return [[j for j in ranked if group[j] == g][:k] for g in range(n_groups)]


def allocate_largest_remainder(
    weight: list[int], account_id: list[int], total: int
) -> tuple[list[int], int]:
    w_sum = sum(weight)
    if total >= w_sum:
        return list(weight), w_sum
    parts = [total * w // w_sum for w in weight]
    remainders = [total * w % w_sum for w in weight]
    left = total - sum(parts)
    order = sorted(
        (j for j in range(len(weight)) if weight[j] > 0),
        key=lambda j: (-remainders[j], account_id[j]),
    )
    for j in order[:left]:
        parts[j] += 1
    return parts, total


def closed_profit(qty: int, cost: int, k: int, lot_value: int) -> int:
    """Realized PnL of closing k of |qty| lots at lot_value (Book.apply_fill's rounding)."""
    closed = k if qty > 0 else -k
    return closed * lot_value - -((-cost * closed) // qty)


def lots_to_cover(qty: int, cost: int, cap_lots: int, lot_value: int, need: int) -> int:
    """Least k in [1, cap_lots] with closed_profit(k) >= need (cap_lots if none), by bisection."""
    lo, hi = 1, cap_lots
    while lo < hi:
        mid = (lo + hi) // 2
        if closed_profit(qty, cost, mid, lot_value) >= need:
            hi = mid
        else:
            lo = mid + 1
    return lo


def adl_queue_sequential(
    book: Any, profile: Any, floor: int
) -> list[tuple[int, str, int, int, int]]:
    """The queue policies one candidate at a time through the book's public operations,
    re-reading every position and equity from the book (the first implementation of
    engine.waterfall.adl, kept as its reference). Returns (account, symbol, lots, price, amount)."""
    fund = profile.fund_account_id
    need = max(0, floor - book.account_margin(fund)[0])
    actions = []
    for inst, fund_qty, _ in book.positions_of(fund):
        if need == 0:
            break
        side = -1 if fund_qty > 0 else 1
        margins = book.position_margins()
        owner = book.position_owner()
        ids = book.account_id[owner]
        equity = book.sweep(with_initial_margin=False).equity
        slots = np.flatnonzero(
            (book.pos_instrument == inst)
            & (np.sign(book.pos_qty) == side)
            & (margins["unrealized_pnl"] > 0)
            & (equity[owner] > 0)
            & (ids < profile.fund_account_id)
        )
        scores = adl_scores(
            PNL_LEVERAGE if profile.adl_policy == "pnl_leverage" else HYPERLIQUID,
            margins["unrealized_pnl"][slots].tolist(),
            np.abs(book.pos_cost[slots]).tolist(),
            margins["notional"][slots].tolist(),
            equity[owner[slots]].tolist(),
        )
        queue = sorted(range(len(slots)), key=lambda j: (-scores[j], int(ids[slots[j]])))
        symbol = book.instruments.instruments[inst].symbol
        price = int(book.mark[inst])
        lot_value = int(book.mark_lot_value[inst])
        fund_lots = abs(fund_qty)
        for j in queue:
            if need == 0 or fund_lots == 0:
                break
            account = int(ids[slots[j]])
            qty, cost = book.position(account, symbol)
            cap = min(abs(qty), fund_lots)
            account_equity = book.account_margin(account)[0]
            have = min(closed_profit(qty, cost, cap, lot_value), account_equity)
            if cap == 0 or account_equity <= 0 or have <= 0:
                continue
            lots = cap if have <= need else lots_to_cover(qty, cost, cap, lot_value, need)
            amount = min(need, closed_profit(qty, cost, lots, lot_value), account_equity)
            side_lots = lots if qty > 0 else -lots
            event_id = book.new_event_id()
            book.apply_fill(account, symbol, -side_lots, price, event_id=event_id)
            book.apply_fill(fund, symbol, side_lots, price, event_id=event_id)
            book.transfer(account, fund, amount, Reason.ADL, event_id)
            actions.append((account, symbol, side_lots, price, amount))
            need -= amount
            fund_lots -= lots
    return actions
