"""What one ADL run reads from the book, and the profit arithmetic every ADL policy shares.

`AdlBook` computes once per run the per slot unrealized PnL and notional, the per account
equity, maintenance margin, open positions and notional, and the slots of each instrument,
keeps them current as ADL acts, and gives each account's safe capacity (what it can pay
and stay safe: equity - maintenance - 1 unit while positions remain, equity when flat).
`closed_profit` is the fill rule's realized PnL of closing k lots (engine.book.fills), and
`lots_to_cover` the least lots whose profit covers an amount. A policy's choice is a
`Selection`: slots, lots each gives (>= 0), money each pays (>= 0).
"""

from __future__ import annotations

import numpy as np

from engine import _native
from engine.book.book import Book
from engine.book.fills import close_lots
from engine.book.limits import INT64_MAX, VALUE_MAX
from engine.waterfall.profile import Profile, reserved_mask

POLICY_CODES = {
    "pnl_leverage": _native.ADL_POLICY_PNL_LEVERAGE,
    "hyperliquid": _native.ADL_POLICY_HYPERLIQUID,
}
LEVEL_SCALE = _native.ADL_SCORE_SCALE  # leverage levels are integers at 10^-8
Selection = tuple[np.ndarray, np.ndarray, np.ndarray]  # slots, lots >= 0, amounts >= 0


def empty_selection() -> Selection:
    return (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


def closed_profit(qty: int, cost: int, k: int, lot_value: int) -> int:
    """Realized PnL of closing k of |qty| lots at lot_value, exactly as Book.apply_fill does."""
    return close_lots(qty, cost, k if qty > 0 else -k, lot_value)[2]


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
        risk = book.sweep(with_initial_margin=False)
        self.equity = risk.equity.copy()
        # Maintenance before ADL: closing lots only lowers it, so it bounds every later one.
        self.maintenance = risk.maintenance_margin.copy()
        self.open_positions = np.bincount(
            self.owner[book.pos_qty != 0], minlength=book.n_accounts
        ).astype(np.int64)
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
            if not (total < float(VALUE_MAX)).all():
                raise OverflowError("an account's notional exceeds int64")
            self._account_notional = np.zeros(self.book.n_accounts, dtype=np.int64)
            np.add.at(self._account_notional, self.owner, self.notional)
        return self._account_notional

    def safe_cap(self, row: int, flat_after: bool) -> int:
        """What the account at `row` can pay and stay safe: its equity when it ends flat,
        else equity - maintenance - 1 unit (equity after > maintenance after); >= 0."""
        equity = int(self.equity[row])
        return max(0, equity if flat_after else equity - int(self.maintenance[row]) - 1)

    def safe_caps(self) -> np.ndarray:
        """safe_cap per account row for accounts that keep positions (the bound a policy
        that does not know yet which lots go uses)."""
        return np.maximum(self.equity - self.maintenance - 1, 0)

    def acted(self, slots: np.ndarray, amounts: np.ndarray) -> None:
        """Refresh after lots of `slots` closed at the mark and `amounts` were paid."""
        book = self.book
        lot_value = book.mark_lot_value[book.pos_instrument[slots]]
        rows = self.owner[slots]
        emptied = (self.notional[slots] > 0) & (book.pos_qty[slots] == 0)
        np.subtract.at(self.open_positions, rows[emptied], 1)
        notional_after = np.abs(book.pos_qty[slots]) * lot_value
        if self._account_notional is not None:
            np.subtract.at(self._account_notional, rows, self.notional[slots] - notional_after)
        self.notional[slots] = notional_after
        self.upnl[slots] = book.pos_qty[slots] * lot_value - book.pos_cost[slots]
        np.subtract.at(self.equity, rows, amounts)
