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


def tranches(book: Any, events: list[Any], fund_positions: list[tuple[int, int, int]]) -> dict:
    """Per instrument the fund holds, its tranches [(lots, value)] in liquidation order: each
    insurance payout split over the defaulter's positions taken over in the same event by
    notional at the mark (largest remainder, ties by instrument), on the fund's side and cut
    at the fund's size from the end."""
    symbols = [i.symbol for i in book.instruments.instruments]
    payout = {e.event_id: e.amount for e in events if e.kind == "insurance_payout"}
    taken: dict[int, list[tuple[int, int]]] = {}
    for e in events:
        if e.kind == "liquidation" and e.event_id in payout:
            taken.setdefault(e.event_id, []).append((symbols.index(e.symbol), e.qty))
    rows = []  # (event, instrument, qty, share) in event order
    for event_id, positions in taken.items():
        total = payout[event_id]
        weight = [abs(q) * int(book.mark_lot_value[i]) for i, q in positions]
        w_sum = sum(weight)
        share = [total * w // w_sum for w in weight]
        left = total - sum(share)
        ranked = sorted(
            range(len(positions)), key=lambda j: (-(total * weight[j] % w_sum), positions[j][0])
        )
        for j in ranked[:left]:
            share[j] += 1
        rows += [(i, q, a) for (i, q), a in zip(positions, share, strict=True)]
    out = {}
    for inst, fund_qty, _ in fund_positions:
        room, line = abs(fund_qty), []
        for i, q, a in rows:
            if i == inst and q * fund_qty > 0 and a > 0 and room > 0:
                kept = min(abs(q), room)
                room -= kept
                if a * kept // abs(q) > 0:
                    line.append((kept, a * kept // abs(q)))
        if line:
            out[inst] = line
    return out


def tranche_value(line: list[tuple[int, int]], a: int, b: int) -> int:
    """Value of tranche lots [a, b): per tranche floor(A y / L) of its first y lots."""

    def c(x: int) -> int:
        total = 0
        for lots, value in line:
            total += value * min(max(x, 0), lots) // lots
            x -= lots
        return total

    return c(b) - c(a)


def _pays(
    line: list[tuple[int, int]],
    at: int,
    k: int,
    qty: int,
    cost: int,
    lot_value: int,
    equity: int,
    maintenance: int,
    only_position: bool,
) -> int:
    """What a payer pays for k tranche lots from `at`: min(their value, their profit, its
    safe cap -- equity when it ends flat, equity - maintenance - 1 otherwise)."""
    flat = only_position and k == abs(qty)
    cap = max(0, equity if flat else equity - maintenance - 1)
    value = tranche_value(line, at, at + k)
    return min(value, closed_profit(qty, cost, k, lot_value), cap)


def adl_queue_sequential(
    book: Any, profile: Any, floor: int, prior: Any
) -> list[tuple[int, str, int, int, int]]:
    """The queue policies one candidate at a time through the book's public operations,
    re-reading every position and equity from the book (the first implementation of
    engine.waterfall.adl, kept as its reference), at the bankruptcy price of the tranches
    of `prior` (the result whose takeovers left the fund short), fewest lots. Returns
    (account, symbol, lots, effective price, amount)."""
    fund = profile.fund_account_id
    need = max(0, floor - book.account_margin(fund)[0])
    actions: list[tuple[int, str, int, int, int]] = []
    fund_positions = book.positions_of(fund)
    lines = tranches(book, prior.events, fund_positions)
    risk = book.sweep(with_initial_margin=False)
    maintenance_before = dict(
        zip(book.account_id.tolist(), risk.maintenance_margin.tolist(), strict=True)
    )
    for inst, fund_qty, _ in fund_positions:
        if need == 0:
            break
        if inst not in lines:
            continue
        line = lines[inst]
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
        tick_value = int(book.instruments.tick_value[inst])
        total_lots, at = sum(lots for lots, _ in line), 0
        for j in queue:
            if need == 0 or at == total_lots:
                break
            account = int(ids[slots[j]])
            qty, cost = book.position(account, symbol)
            most = min(abs(qty), total_lots - at)
            account_equity = book.account_margin(account)[0]
            only = len(book.positions_of(account)) == 1

            payer = (qty, cost, lot_value, account_equity, maintenance_before[account], only)
            amount = min(need, _pays(line, at, most, *payer))
            if amount <= 0:
                continue
            lots = next(k for k in range(1, most + 1) if _pays(line, at, k, *payer) >= amount)
            side_lots = lots if qty > 0 else -lots
            event_id = book.new_event_id()
            book.apply_fill(account, symbol, -side_lots, price, event_id=event_id)
            book.apply_fill(fund, symbol, side_lots, price, event_id=event_id)
            book.transfer(account, fund, amount, Reason.ADL, event_id)
            premium = amount // (lots * tick_value)
            paid_price = price - premium if qty > 0 else price + premium
            actions.append((account, symbol, side_lots, paid_price, amount))
            need -= amount
            at += lots
    return actions
