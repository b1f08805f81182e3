"""ADL tranches: the premium this tick's bankrupt takeovers left in the fund's lots.

A bankrupt account d taken over with negative-balance protection costs the fund its
deficit D_d (the `insurance_payout`). D_d is split over d's positions in proportion to
their notional at the mark, exactly (largest remainder, ties by instrument index): the
tranche of d in instrument i is the L lots the fund took from d there, carrying A, its
share of D_d. Closing those lots at d's bankruptcy price instead of the mark moves
exactly A to the fund: lots [a, b) of a tranche are worth floor(A b / L) - floor(A a / L).

Per instrument the tranches line up in liquidation order (`TrancheLine`), on the side of
the fund's position now and up to its size (when the fund holds fewer lots -- unwound, or
netted against an opposite takeover -- the line is cut at its size from the end; a
tranche cut short keeps floor(A L' / L) of its value). Lots the fund holds from takeovers
that were not bankrupt, or from earlier ticks, carry no premium and are in no tranche. The
line is read in Python integers (products exceed int64), once per ADL payer.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import numpy as np

from engine.book.book import Book
from engine.waterfall.events import KIND_CODE, EventLog


class TrancheLine:
    """The tranches of one instrument in order: lots, values and their running sums.
    `value_at(x)` is C(x), the value of the first x lots; lots [a, b) are worth
    C(b) - C(a)."""

    def __init__(self, lots: list[int], values: list[int]) -> None:
        assert all(n > 0 for n in lots) and all(v > 0 for v in values)
        self.lots = lots
        self.values = values
        self.lot_start = [0, *np.cumsum(lots, dtype=object).tolist()]
        self.value_start = [0, *np.cumsum(values, dtype=object).tolist()]

    @property
    def total_lots(self) -> int:
        return int(self.lot_start[-1])

    @property
    def total_value(self) -> int:
        return int(self.value_start[-1])

    def value_at(self, x: int) -> int:
        """C(x): the value of lots [0, x), 0 <= x <= total_lots."""
        assert 0 <= x <= self.total_lots
        t = bisect_right(self.lot_start, x) - 1
        if t == len(self.lots):
            return self.total_value
        return int(self.value_start[t]) + self.values[t] * (x - self.lot_start[t]) // self.lots[t]

    def least_lots(self, target: int) -> int | None:
        """Least x with C(x) >= target; None when even all the lots are worth less."""
        if target <= 0:
            return 0
        if target > self.total_value:
            return None
        t = bisect_left(self.value_start, target) - 1  # value_start[t] < target <= [t + 1]
        short = target - int(self.value_start[t])
        # least y with floor(A y / L) >= short: A y >= short L
        y = -((-short * self.lots[t]) // self.values[t])
        return int(self.lot_start[t]) + y


def deficit_shares(
    group: np.ndarray, instrument: np.ndarray, weight: np.ndarray, total: np.ndarray
) -> np.ndarray:
    """Split total[g] over the rows of each group g in proportion to `weight` (> 0),
    exactly: floor(total w / W) each, the units left one each to the largest remainders,
    ties by instrument index. Vectorized; the products go through Python integers only
    for groups of more than one row."""
    n_groups = len(total)
    count = np.bincount(group, minlength=n_groups)
    share = total[group].copy()
    multi = np.flatnonzero(count[group] > 1)
    if len(multi) == 0:
        return share
    g = group[multi]
    w = weight[multi].astype(object)
    w_sum = np.zeros(n_groups, dtype=object)
    np.add.at(w_sum, g, w)
    exact = total[g].astype(object) * w
    base = (exact // w_sum[g]).astype(np.int64)
    remainder = (exact % w_sum[g]).astype(np.int64)  # < W, which fits: a notional sum
    given = np.zeros(n_groups, dtype=np.int64)
    np.add.at(given, g, base)
    left = total - given
    order = np.lexsort((instrument[multi], -remainder, g))
    g_sorted = g[order]
    first = np.flatnonzero(np.concatenate([[True], g_sorted[1:] != g_sorted[:-1]]))
    rank = np.arange(len(order)) - np.repeat(first, np.diff(np.concatenate([first, [len(order)]])))
    bump = np.zeros(len(multi), dtype=np.int64)
    bump[order] = (rank < left[g_sorted]).astype(np.int64)
    share[multi] = base + bump
    return share


def tick_tranches(
    book: Book, log: EventLog, fund_positions: list[tuple[int, int, int]]
) -> dict[int, TrancheLine]:
    """The tranches of this tick's bankrupt takeovers, per instrument the fund holds, read
    from the tick's events: each `insurance_payout` and the `liquidation` events of the
    same takeover (same event id)."""
    cols = log.columns()
    kind = cols["kind"]
    pay = np.flatnonzero(kind == KIND_CODE["insurance_payout"])
    if len(pay) == 0:
        return {}
    pay_event, pay_amount = cols["event_id"][pay], cols["amount"][pay]
    by_event = np.argsort(pay_event, kind="stable")
    liq = np.flatnonzero(kind == KIND_CODE["liquidation"])
    at = np.searchsorted(pay_event[by_event], cols["event_id"][liq])
    at = np.minimum(at, len(pay) - 1)
    match = pay_event[by_event][at] == cols["event_id"][liq]
    liq, group = liq[match], by_event[at[match]]
    instrument, qty = cols["instrument"][liq], cols["qty"][liq]
    weight = np.abs(qty) * book.mark_lot_value[instrument]
    share = deficit_shares(group, instrument, weight, pay_amount)
    assert (share >= 0).all() and int(share.sum()) == int(pay_amount.sum())
    lines: dict[int, TrancheLine] = {}
    for inst, fund_qty, _ in fund_positions:
        mine = np.flatnonzero(
            (instrument == inst) & (np.sign(qty) == np.sign(fund_qty)) & (share > 0)
        )
        n = np.abs(qty[mine])
        before = np.cumsum(n) - n
        kept = np.clip(abs(fund_qty) - before, 0, n)
        value = share[mine].copy()
        cut = np.flatnonzero((kept > 0) & (kept < n))  # at most one: the last one kept
        for j in cut.tolist():
            value[j] = int(value[j]) * int(kept[j]) // int(n[j])
        keep = (kept > 0) & (value > 0)
        lots, values = kept[keep].tolist(), value[keep].tolist()
        if lots:
            lines[inst] = TrancheLine(lots, values)
    return lines
