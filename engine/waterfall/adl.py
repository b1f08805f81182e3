"""Auto-deleveraging and socialized loss: what the insurance fund cannot carry.

ADL runs while the fund's equity is below its floor; the shortfall is S = floor - equity.
It closes opposite-side trader positions in profit against the fund's positions (in each
instrument the fund holds, by instrument index) and moves money from those traders to the
fund (`adl`), exactly S in total when there is enough profit (overshoot 0), and reports
what is left, never inventing it.

The price. The issue asks for the lots to be "closed against the fund at the bankruptcy
price until the shortfall is covered, and not one unit more". Here k lots change hands as a
pair of fills at the mark and the trader pays the fund an amount A on top: the same as
closing those k lots at the price m -/+ A / (k x lot value), the price at which the fund's
equity, after closing those k lots, is back at exactly its floor. That is the bankruptcy
price of the fund's slice, and it is what "bankruptcy price" means here, for three reasons:
(1) the fund is a pool over many liquidated accounts and instruments, so no single
liquidated order's bankruptcy price applies to it (Binance closes each liquidated order at
its own); (2) one price for all of the fund's lots, set to take exactly S, closes more lots
than S needs and can lie beyond some traders' entries, taking principal, not profit;
(3) money is integer and ticks discrete: the price is implied by an integer transfer.
The fund's lots not needed stay with it, to be unwound. Per trader the amount is capped by
the profit of the lots it closes (queue and water-filling: the trader never realizes a
loss against its entry, so never loses principal) and always by its equity.

Policies (profile adl.policy):
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
- `risk_water_filling`: minimax leverage (Campbell, Hey, Moallemi, Nutz 2026, "Risk-Based
  Auto-Deleveraging"). Account leverage is account notional / equity at the mark. Cut the
  most levered accounts first down to a common level: at level L each account above it
  closes the least lots x with (N - x v) <= L (E - P(x)), P(x) the profit of those lots,
  which it pays. The level is the highest (at 10^-8) whose cuts cover S, or the lowest at
  which the cuts fit the fund's position; with enough, the payments are trimmed to exactly
  S in proportion to P(x) (largest remainder), which only lowers every leverage further.
  An account whose leverage a cut would raise (its equity is mostly unrealized profit:
  N x max step of P > v x E) is never cut; what is still short moves on to the next
  instrument, then to socialized loss.

ADL quantile. adl_quantiles() gives each position its 1-5 "lights": its quintile within
(instrument, side) among the positions ADL could take now (in profit, account equity > 0,
not a house account), ranked by the profile's policy (queue score; profit for pro_rata;
account leverage for risk_water_filling), 5 = first in line. 0 = ADL would not take from it.

Socialized loss. What is still short is allocated over the trader accounts in profit,
pro rata to min(unrealized profit, equity), with exact largest-remainder rounding
(csrc/allocation.h); the parts sum to the loss to the unit, each at most its weight, and a
loss beyond all profit is reported as unallocated, never invented.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine import _native
from engine.book.book import Book
from engine.book.fixed import INT64_MAX
from engine.book.ledger import Reason
from engine.waterfall.profile import Profile
from engine.waterfall.waterfall import (
    BATCH_SAFE_MAX,
    KIND_CODE,
    WaterfallResult,
    commit_fills,
    plan_fills,
    reserved_mask,
)

POLICY_CODES = {
    "pnl_leverage": _native.ADL_POLICY_PNL_LEVERAGE,
    "hyperliquid": _native.ADL_POLICY_HYPERLIQUID,
}
TOP_K_FIRST = 64
LIGHTS = 5
LEVEL_SCALE = _native.ADL_SCORE_SCALE  # leverage levels are integers at 10^-8


def fund_shortfall(book: Book, profile: Profile, floor: int) -> int:
    return max(0, floor - book.account_margin(profile.fund_account_id)[0])


def closed_profit(qty: int, cost: int, k: int, lot_value: int) -> int:
    """Realized PnL of closing k of |qty| lots at lot_value, exactly as Book.apply_fill does."""
    closed = k if qty > 0 else -k
    closed_cost = -((-cost * closed) // qty)  # ceil: the house's favour
    return closed * lot_value - closed_cost


def lots_to_cover(qty: int, cost: int, cap_lots: int, lot_value: int, need: int) -> int:
    """Least k in [1, cap_lots] with closed_profit(k) >= need; cap_lots if none does. For a
    position in profit (the only kind ADL closes).

    closed_profit(k) is non-decreasing in k and lies in (k U / |qty| - 1, k U / |qty|], U the
    whole position's profit (the closed cost is rounded by less than one unit). So the
    integer closed_profit(k0) >= need for k0 = ceil(need |qty| / U), and closed_profit(k0 - 1)
    <= (k0 - 1) U / |qty| < need: k0 is the answer, the two loops only guard that argument.
    """
    profit = closed_profit(qty, cost, abs(qty), lot_value)
    k = min(max(1, -((-need * abs(qty)) // profit)), cap_lots) if profit > 0 else cap_lots
    while k < cap_lots and closed_profit(qty, cost, k, lot_value) < need:
        k += 1
    while k > 1 and closed_profit(qty, cost, k - 1, lot_value) >= need:
        k -= 1
    return k


def account_leverage(notional: np.ndarray, equity: np.ndarray) -> np.ndarray:
    """floor(notional x 10^8 / equity) per account, at least 1, INT64_MAX where equity <= 0.

    The ADL score kernel computes exactly this, in 128 bits, as its leverage factor; with
    cost = notional its profit-to-entry factor is exactly 1 (csrc/adl.h, hyperliquid)."""
    notional = np.ascontiguousarray(notional, dtype=np.int64)
    safe = np.maximum(notional, 1)  # a zero cost reads as an infinite factor in the kernel
    lev = _native.adl_scores(
        _native.ADL_POLICY_HYPERLIQUID,
        np.zeros(len(notional), dtype=np.int64),
        safe,
        safe,
        np.ascontiguousarray(equity, dtype=np.int64),
    )
    return np.where(notional > 0, lev, np.where(np.asarray(equity) > 0, 1, INT64_MAX))


class AdlBook:
    """What one ADL run reads from the book, computed once and kept current as ADL acts:
    per slot unrealized PnL and notional, per account equity and notional, the slots of
    each instrument. Closing lots at the mark leaves equity unchanged, so only the money
    paid changes an account's equity; ADL only shrinks positions, so slots never move."""

    def __init__(self, book: Book, profile: Profile) -> None:
        book.compact()
        self.book = book
        self._qty_column = book.pos_qty
        margins = book.position_margins()
        self.owner = book.position_owner()
        self.upnl = margins["unrealized_pnl"]
        self.notional = margins["notional"]
        self.equity = book.sweep(with_initial_margin=False).equity.copy()
        self.trader = ~reserved_mask(book.account_id, profile)
        order = np.argsort(book.pos_instrument, kind="stable")
        self._by_instrument = order
        self._instrument_start = np.searchsorted(
            book.pos_instrument[order], np.arange(len(book.instruments) + 1)
        )
        self._account_notional: np.ndarray | None = None

    def candidates(self, inst: int, side: int) -> np.ndarray:
        """Slots of trader positions in `inst` on `side` (+1 long, -1 short), in profit, of
        accounts with positive equity; in slot order."""
        assert self.book.pos_qty is self._qty_column, "the book was compacted during ADL"
        slots = self._by_instrument[self._instrument_start[inst] : self._instrument_start[inst + 1]]
        rows = self.owner[slots]
        keep = (
            (np.sign(self.book.pos_qty[slots]) == side)
            & (self.upnl[slots] > 0)
            & (self.equity[rows] > 0)
            & self.trader[rows]
        )
        return slots[keep]

    def account_notional(self) -> np.ndarray:
        if self._account_notional is None:
            total = np.zeros(self.book.n_accounts, dtype=np.float64)
            np.add.at(total, self.owner, self.notional.astype(np.float64))
            if not (total < 2.0**62).all():
                raise OverflowError("an account's notional exceeds int64")
            self._account_notional = np.zeros(self.book.n_accounts, dtype=np.int64)
            np.add.at(self._account_notional, self.owner, self.notional)
        return self._account_notional

    def acted(self, slots: np.ndarray, amounts: np.ndarray) -> None:
        """Refresh after lots of `slots` closed at the mark and `amounts` were paid."""
        book = self.book
        lot_value = book.mark_lot_value[book.pos_instrument[slots]]
        rows = self.owner[slots]
        notional_after = np.abs(book.pos_qty[slots]) * lot_value
        if self._account_notional is not None:
            np.subtract.at(self._account_notional, rows, self.notional[slots] - notional_after)
        self.notional[slots] = notional_after
        self.upnl[slots] = book.pos_qty[slots] * lot_value - book.pos_cost[slots]
        np.subtract.at(self.equity, rows, amounts)


# ----- selection: who gives how many lots and how much money --------------------------
Selection = tuple[np.ndarray, np.ndarray, np.ndarray]  # slots, lots >= 0, amounts >= 0


def _empty() -> Selection:
    return (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


def select_queue(state: AdlBook, inst: int, fund_qty: int, need: int, policy: str) -> Selection:
    """The queue of pnl_leverage / hyperliquid in one instrument, best first."""
    book = state.book
    slots = state.candidates(inst, -1 if fund_qty > 0 else 1)
    n = len(slots)
    if n == 0:
        return _empty()
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
        return _empty()
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
    if float(np.abs(u).astype(np.float64).sum()) < 2.0**62:
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
        return _empty()
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
        return _empty()
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
    profit = np.asarray(
        [
            closed_profit(qty[j], cost[j], x, lot_value) if x else 0
            for j, x in zip(chosen.tolist(), xs, strict=True)
        ],
        dtype=np.int64,
    )
    if money > need:
        tie = np.ascontiguousarray(book.account_id[rows[chosen]])
        profit, _ = _native.allocate_largest_remainder(profit, tie, need)
    keep = (x_arr > 0) | (profit > 0)
    return slots[chosen[keep]], x_arr[keep], profit[keep]


# ----- applying a selection --------------------------------------------------------------
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
        span[moving] += np.abs(plan.trader_realized)
        fund_span = (
            abs(float(book.balance[fund_row]))
            + float(amounts.sum())
            + float(np.abs(plan.fund_realized).astype(np.float64).sum())
        )
        if (span > BATCH_SAFE_MAX).any() or fund_span > BATCH_SAFE_MAX:
            plan = None
    if plan is not None:
        first = book.new_event_id()
        for _ in range(len(slots) - 1):
            book.new_event_id()
        event_ids = np.arange(first, first + len(slots), dtype=np.int64)
        commit_fills(book, fund, fund_row, plan, event_ids[moving])
        assert (amounts >= 0).all(), "ADL only moves profit to the fund"
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
    state.acted(slots, amounts)
    return sum(amounts.tolist())


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


# ----- ADL quantile ----------------------------------------------------------------------
def adl_quantiles(book: Book, profile: Profile) -> np.ndarray:
    """Lights (1-5, 0 = out of ADL's reach) per position slot of the compacted book."""
    state = AdlBook(book, profile)
    rows = state.owner
    qty = book.pos_qty
    eligible = np.flatnonzero(
        (qty != 0) & (state.upnl > 0) & (state.equity[rows] > 0) & state.trader[rows]
    )
    lights = np.zeros(len(qty), dtype=np.int8)
    if len(eligible) == 0:
        return lights
    e_rows = rows[eligible]
    policy = profile.adl_policy
    if policy in POLICY_CODES:
        score = _native.adl_scores(
            POLICY_CODES[policy],
            state.upnl[eligible],
            np.abs(book.pos_cost[eligible]),
            state.notional[eligible],
            state.equity[e_rows],
        )
    elif policy == "pro_rata":
        score = state.upnl[eligible]
    else:
        score = account_leverage(state.account_notional()[e_rows], state.equity[e_rows])
    group = book.pos_instrument[eligible].astype(np.int64) * 2 + (qty[eligible] > 0)
    order = np.lexsort((book.account_id[e_rows], -score, group))
    g = group[order]
    start = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
    size = np.diff(np.concatenate([start, [len(g)]]))
    rank = np.arange(len(g)) - np.repeat(start, size)
    lights[eligible[order]] = LIGHTS - (LIGHTS * rank) // np.repeat(size, size)
    return lights


def account_adl_quantiles(
    book: Book, profile: Profile, lights: np.ndarray | None = None
) -> np.ndarray:
    """Per account row, the most lights of any of its positions (0 when none)."""
    if lights is None:
        lights = adl_quantiles(book, profile)
    best = np.zeros(book.n_accounts, dtype=np.int8)
    np.maximum.at(best, book.position_owner(), lights)
    return best


# ----- socialized loss -------------------------------------------------------------------
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
        (upnl > 0) & (equity > 0) & ~reserved_mask(book.account_id, profile),
        np.minimum(upnl, equity),
        0,
    )
    rows = np.nonzero(weight)[0]
    account_ids = np.ascontiguousarray(book.account_id[rows])
    parts, allocated = _native.allocate_largest_remainder(weight[rows], account_ids, need)
    assert allocated == sum(parts.tolist()) <= need
    event_id = book.new_event_id()
    paying = parts > 0
    book.post_many(account_ids[paying], fund, parts[paying], Reason.SOCIALIZED_LOSS, event_id)
    n = int(paying.sum())
    result.log.extend(
        {
            "kind": np.full(n, KIND_CODE["socialized_loss"]),
            "event_id": np.full(n, event_id),
            "account_id": account_ids[paying],
            "instrument": np.full(n, -1),
            "qty": np.zeros(n, dtype=np.int64),
            "price": np.zeros(n, dtype=np.int64),
            "amount": parts[paying],
        }
    )
    result.socialized_amount += allocated
    result.unallocated_loss = need - allocated
    if result.unallocated_loss:
        result.log.append("unallocated_loss", event_id, fund, -1, 0, 0, result.unallocated_loss)
