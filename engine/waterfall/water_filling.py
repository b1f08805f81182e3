"""ADL selection `risk_water_filling`: minimax leverage.

After Campbell, Hey, Moallemi, Nutz 2026, "Risk-Based Auto-Deleveraging". Account leverage
is account notional / equity at the mark. Cut the most levered accounts first down to a
common level: at level L each account above it closes the least lots x with
(N - x v) <= L (E - P(x)), P(x) the profit of those lots, which it pays. The level is the
highest (at 10^-8) whose cuts cover S, or the lowest at which the cuts fit the fund's
position; with enough, the payments are trimmed to exactly S in proportion to P(x)
(largest remainder), which only lowers every leverage further. An account whose leverage
a cut would raise (its equity is mostly unrealized profit: N x max step of P > v x E) is
never cut. Every payment is capped by the account's safe capacity (equity - maintenance -
1 unit, or its equity when the cut leaves it flat) and a cut that would pay nothing is not
made; what is still short moves on to the next instrument, then to socialized loss.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine import _native
from engine.waterfall.adl_book import (
    LEVEL_SCALE,
    AdlBook,
    Selection,
    account_leverage,
    closed_profit,
    empty_selection,
)


def _least_at_level(
    qty: int, cost: int, lot_value: int, notional: int, equity: int, level: int, guess: int
) -> int:
    """Least x in [0, |qty|] with (notional - x v) * 10^8 <= level * (equity - P(x)), or
    |qty| if none: the lots that bring the account down to `level`. The condition is
    monotone in x for a levelable account; `guess` (from floats) is usually the answer or
    next to it, and a bisection takes over when it is not."""
    cap = abs(qty)

    def at_level(x: int) -> bool:
        return (notional - x * lot_value) * LEVEL_SCALE <= level * (
            equity - closed_profit(qty, cost, x, lot_value)
        )

    x = min(max(guess, 0), cap)
    if at_level(x):
        if x == 0 or not at_level(x - 1):
            return x
        lo, hi = 0, x - 1  # the answer is in [lo, hi] and at_level(hi)
    else:
        if x == cap or at_level(x + 1):
            return min(x + 1, cap)
        if not at_level(cap):
            return cap
        lo, hi = x + 2, cap
    while lo < hi:
        mid = (lo + hi) // 2
        if at_level(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


class _WaterLevel:
    """The levelable candidates of one instrument, most levered first, and the cuts at a
    level: exact with Python integers, guessed with floats to narrow the search."""

    def __init__(
        self,
        qty: list[int],
        cost: list[int],
        upnl: list[int],
        notional: list[int],
        equity: list[int],
        leverage: np.ndarray,
        lot_value: int,
    ) -> None:
        self.cand = list(zip(qty, cost, notional, equity, strict=True))
        self.leverage = leverage  # floor(N * 10^8 / E), non-increasing
        self.lot_value = lot_value
        self.q_f = np.abs(np.asarray(qty, dtype=np.float64))
        self.u_f = np.asarray(upnl, dtype=np.float64)
        self.n_f = np.asarray(notional, dtype=np.float64)
        self.e_f = np.asarray(equity, dtype=np.float64)

    def above(self, level: int) -> int:
        """How many lead the list with floor(N S / E) >= level: every account above the
        level is among them (N S / E > level implies the floor is >= level)."""
        return int(np.searchsorted(-self.leverage, -level, side="right"))

    def guesses(self, level: int, count: int) -> np.ndarray:
        """x solving (N - x v) S = level (E - x U / |q|) in floats, rounded up, in [0, |q|]."""
        q, u = self.q_f[:count], self.u_f[:count]
        n, e = self.n_f[:count], self.e_f[:count]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = q * (n * LEVEL_SCALE - level * e) / (q * self.lot_value * LEVEL_SCALE - level * u)
        return np.clip(np.nan_to_num(np.ceil(x), nan=0.0, posinf=0.0, neginf=0.0), 0, q)

    def enough_float(self, level: int, need: int, fund_lots: int) -> bool:
        count = self.above(level)
        x = self.guesses(level, count)
        money = float((x * self.u_f[:count] / self.q_f[:count]).sum())
        return money >= need or float(x.sum()) > fund_lots

    def cuts(
        self, level: int, stop: Callable[[int, int], bool] | None = None
    ) -> tuple[list[int], int, int]:
        count = self.above(level)
        guesses = self.guesses(level, count).astype(np.int64).tolist()
        xs: list[int] = []
        money = lots = 0
        for (q, c, n, e), guess in zip(self.cand[:count], guesses, strict=True):
            x = _least_at_level(q, c, self.lot_value, n, e, level, guess)
            xs.append(x)
            money += closed_profit(q, c, x, self.lot_value) if x else 0
            lots += x
            if stop is not None and stop(money, lots):
                break
        return xs, money, lots

    def enough(self, level: int, need: int, fund_lots: int) -> bool:
        _, money, lots = self.cuts(level, lambda m, x: m >= need or x > fund_lots)
        return money >= need or lots > fund_lots


def select_water_filling(state: AdlBook, inst: int, fund_qty: int, need: int) -> Selection:
    """risk_water_filling in one instrument: level the most levered accounts down."""
    book = state.book
    slots = state.candidates(inst, -1 if fund_qty > 0 else 1)
    if len(slots) == 0:
        return empty_selection()
    rows = state.owner[slots]
    notional = state.account_notional()[rows]
    equity = state.equity[rows]
    lot_value = int(book.mark_lot_value[inst])
    qty = book.pos_qty[slots].tolist()
    cost = book.pos_cost[slots].tolist()
    # Levelable: each lot's profit step is at most v - floor(entry) (long) or
    # ceil(entry) - v (short), entry = |cost| / |qty|; with N x step <= v x E every cut
    # lowers (N - x v) / (E - P(x)).
    levelable = np.asarray(
        [
            n * (lot_value - abs(c) // abs(q) if q > 0 else -(-abs(c) // abs(q)) - lot_value)
            <= lot_value * e
            for q, c, n, e in zip(qty, cost, notional.tolist(), equity.tolist(), strict=True)
        ],
        dtype=bool,
    )
    pick = np.flatnonzero(levelable)
    if len(pick) == 0:
        return empty_selection()
    lev = account_leverage(notional[pick], equity[pick])
    pick = pick[np.lexsort((book.account_id[rows[pick]], -lev))]
    water = _WaterLevel(
        [qty[j] for j in pick.tolist()],
        [cost[j] for j in pick.tolist()],
        state.upnl[slots[pick]].tolist(),
        notional[pick].tolist(),
        equity[pick].tolist(),
        np.sort(lev)[::-1],
        lot_value,
    )
    fund_lots = abs(fund_qty)
    top = int(water.leverage[0]) + 1  # nobody is above it: never enough
    # The highest level whose cuts cover the need (or overfill the fund's position):
    # bisection in floats for a bracket, then exact bisection inside it. The bracket is
    # checked exactly and widened to the whole range if the floats misled, so the level
    # found is the exact one either way.
    lo, hi = 0, top
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if water.enough_float(mid, need, fund_lots):
            lo = mid
        else:
            hi = mid
    width = 16 + (lo >> 28)
    lo, hi = max(0, lo - width), min(top, hi + width)
    if not water.enough(lo, need, fund_lots):
        lo, hi = 0, lo
    if water.enough(hi, need, fund_lots):
        lo, hi = hi, top
    level = lo
    if water.enough(lo, need, fund_lots):
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if water.enough(mid, need, fund_lots):
                lo = mid
            else:
                hi = mid
        level = lo
        if water.cuts(level)[2] > fund_lots:
            level = hi  # the cuts fit the fund's position one level up, short of the need
    # else even cutting everyone (level 0) is short: take it all
    xs, money, lots = water.cuts(level)
    assert lots <= fund_lots
    chosen = pick[: len(xs)]
    x_arr = np.asarray(xs, dtype=np.int64)
    # Each pays the profit of its cut, at most its safe cap.
    profit = np.asarray(
        [
            min(
                closed_profit(qty[j], cost[j], x, lot_value),
                state.safe_cap(
                    int(rows[j]), x == abs(qty[j]) and int(state.open_positions[rows[j]]) == 1
                ),
            )
            if x
            else 0
            for j, x in zip(chosen.tolist(), xs, strict=True)
        ],
        dtype=np.int64,
    )
    money = sum(profit.tolist())
    if money > need:
        tie = np.ascontiguousarray(book.account_id[rows[chosen]])
        profit, _ = _native.allocate_largest_remainder(profit, tie, need)
    keep = profit > 0  # a cut that pays nothing (cap 0) is not made
    return slots[chosen[keep]], x_arr[keep], profit[keep]
