"""Auto-deleveraging and socialized loss: what the insurance fund cannot carry.

ADL. While the fund's equity is below its floor (shortfall S = floor - equity), for each
instrument in which the fund holds a position (by instrument index), the opposite-side
trader positions in profit are ranked by the profile's policy (csrc/adl.h, a top-k
selection: scores floored to int64, ties by account id) and taken in that order. From a
position of q lots, k lots are closed against the fund's position as a pair of fills at the
mark, and the trader pays the fund min(S, realized profit of those k lots, account equity)
(`adl`): the lots change hands at the price at which the fund is made whole, never worse
for the trader than its own entry. k is the least number of lots that covers what is still
short (binary search on the exact realized profit), so the profit taken equals the
shortfall to the unit when there is enough (overshoot 0), and what is left is reported.

Socialized loss. What is still short is allocated over the trader accounts in profit,
pro rata to min(unrealized profit, equity), with exact largest-remainder rounding
(csrc/allocation.h); the parts sum to the loss to the unit, each at most its weight, and a
loss beyond all profit is reported as unallocated, never invented.
"""

from __future__ import annotations

import numpy as np

from engine import _native
from engine.book import Book
from engine.ledger import Reason
from engine.profile import RESERVED_ACCOUNT_BASE, Profile
from engine.waterfall import Event, WaterfallResult

POLICY_CODES = {
    "pnl_leverage": _native.ADL_POLICY_PNL_LEVERAGE,
    "hyperliquid": _native.ADL_POLICY_HYPERLIQUID,
}
TOP_K_FIRST = 64


def fund_shortfall(book: Book, profile: Profile, floor: int) -> int:
    return max(0, floor - book.account_margin(profile.fund_account_id)[0])


def closed_profit(qty: int, cost: int, k: int, lot_value: int) -> int:
    """Realized PnL of closing k of |qty| lots at lot_value, exactly as Book.apply_fill does."""
    closed = k if qty > 0 else -k
    closed_cost = -((-cost * closed) // qty)  # ceil: the house's favour
    return closed * lot_value - closed_cost


def lots_to_cover(qty: int, cost: int, cap_lots: int, lot_value: int, need: int) -> int:
    """Least k in [1, cap_lots] with closed_profit(k) >= need (profit is monotone in k)."""
    lo, hi = 1, cap_lots
    while lo < hi:
        mid = (lo + hi) // 2
        if closed_profit(qty, cost, mid, lot_value) >= need:
            hi = mid
        else:
            lo = mid + 1
    return lo


def adl_candidates(
    book: Book, inst: int, side: int, policy: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slot, account id, score) of the trader positions in `inst` on `side`, in profit."""
    margins = book.position_margins()
    owner = book.position_owner()
    account_ids = book.account_id[owner]
    risk = book.sweep(with_initial_margin=False)
    mask = (
        (book.pos_instrument == inst)
        & (np.sign(book.pos_qty) == side)
        & (margins["unrealized_pnl"] > 0)
        & (risk.equity[owner] > 0)
        & (account_ids < RESERVED_ACCOUNT_BASE)
    )
    slots = np.nonzero(mask)[0]
    score = _native.adl_scores(
        POLICY_CODES[policy],
        margins["unrealized_pnl"][slots],
        np.abs(book.pos_cost[slots]),
        margins["notional"][slots],
        risk.equity[owner[slots]],
    )
    return slots, account_ids[slots], score


def run_adl(book: Book, profile: Profile, floor: int, result: WaterfallResult) -> None:
    fund = profile.fund_account_id
    need = fund_shortfall(book, profile, floor)
    result.adl_shortfall = need
    taken = 0
    for inst, fund_qty, _ in book.positions_of(fund):
        if need == 0:
            break
        opposite = -1 if fund_qty > 0 else 1
        slots, ids, score = adl_candidates(book, inst, opposite, profile.adl_policy)
        symbol = book.instruments.instruments[inst].symbol
        price = int(book.mark[inst])
        lot_value = int(book.mark_lot_value[inst])
        fund_lots = abs(fund_qty)
        # Candidates are visited best first; the top-k grows only when the first k run out.
        k, seen = min(TOP_K_FIRST, len(slots)), 0
        queue: list[int] = []
        while need > 0 and fund_lots > 0 and k > 0:
            top, count = _native.adl_top_k(np.zeros(len(slots), np.int64), score, ids, 1, k)
            queue = [int(j) for j in top[0, : count[0]]]
            for j in queue[seen:]:
                if need == 0 or fund_lots == 0:
                    break
                account_id = int(ids[j])
                qty, cost = book.position(account_id, symbol)
                cap = min(abs(qty), fund_lots)
                equity = book.account_margin(account_id)[0]
                if cap == 0 or equity <= 0:
                    continue
                have = min(closed_profit(qty, cost, cap, lot_value), equity)
                if have <= 0:
                    continue
                lots = cap if have <= need else lots_to_cover(qty, cost, cap, lot_value, need)
                amount = min(need, closed_profit(qty, cost, lots, lot_value), equity)
                event_id = book.new_event_id()
                side_lots = lots if qty > 0 else -lots
                book.apply_fill(account_id, symbol, -side_lots, price, event_id=event_id)
                book.apply_fill(fund, symbol, side_lots, price, event_id=event_id)
                book.transfer(account_id, fund, amount, Reason.ADL, event_id)
                result.events.append(
                    Event("adl", event_id, account_id, symbol, side_lots, price, amount)
                )
                need -= amount
                taken += amount
                fund_lots -= lots
            seen = len(queue)
            k = min(k * 4, len(slots)) if seen < len(slots) else 0
    result.adl_amount += taken
    result.adl_overshoot = max(0, taken - result.adl_shortfall)
    assert result.adl_overshoot == 0, "ADL took more profit than the shortfall"


def socialize_loss(book: Book, profile: Profile, floor: int, result: WaterfallResult) -> None:
    fund = profile.fund_account_id
    need = fund_shortfall(book, profile, floor)
    if need == 0:
        return
    margins = book.position_margins()
    owner = book.position_owner()
    upnl = np.zeros(book.n_accounts, dtype=np.int64)
    np.add.at(upnl, owner, margins["unrealized_pnl"])
    equity = book.sweep(with_initial_margin=False).equity
    weight = np.where(
        (upnl > 0) & (equity > 0) & (book.account_id < RESERVED_ACCOUNT_BASE),
        np.minimum(upnl, equity),
        0,
    )
    rows = np.nonzero(weight)[0]
    parts, allocated = _native.allocate_largest_remainder(
        weight[rows], np.ascontiguousarray(book.account_id[rows]), need
    )
    event_id = book.new_event_id()
    for row, part in zip(rows.tolist(), parts.tolist(), strict=True):
        if part > 0:
            account_id = int(book.account_id[row])
            book.transfer(account_id, fund, part, Reason.SOCIALIZED_LOSS, event_id)
            result.events.append(Event("socialized_loss", event_id, account_id, "", 0, 0, part))
    assert allocated == sum(parts.tolist()) <= need
    result.socialized_amount += allocated
    result.unallocated_loss = need - allocated
    if result.unallocated_loss:
        result.events.append(
            Event("unallocated_loss", event_id, fund, "", 0, 0, result.unallocated_loss)
        )
