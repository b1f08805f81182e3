"""One tick of a futures exchange's rules around the liquidation waterfall.

The state (`ExchangeState`) is the account classes, the open margin calls and the day's
price limits; a tick, at the book's marks (already clamped to the limits), given a sweep:

1. Limit-locked markets (engine.exchange.price_limits): a breached trader account with
   equity >= 0 that holds the losing side of a locked instrument cannot be unwound. With
   `exchange.price_limit_locked = "forced_reduction"` its losing positions there are first
   reduced at the limit price against profitable opposite positions pro rata
   (engine.exchange.forced_reduction; accounts in liquidation order) and it is re-swept.
   Still breached, it gets a margin call (`price_limit`, due after the grace period) and
   is held: a locked account is held past its deadline while the lock lasts. An account
   with negative equity is not held: the fund takes it over at the mark (the limit price),
   like any bankrupt account, since its loss is already the house's.
2. Open margin calls (engine.exchange.margin_calls): met (no longer breached: closed),
   held (before the deadline, or locked), or lapsed (the waterfall takes the account).
3. The waterfall (engine.waterfall.run) over every other breached account, proprietary
   accounts first when `exchange.liquidation_priority = "proprietary_first"`.

Batch and service share this; a profile without an `[exchange]` section and an empty state
make it exactly run_waterfall.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.book.book import STATUS_LIQUIDATE, Book
from engine.book.instruments import InstrumentTable
from engine.exchange.account_classes import AccountClasses
from engine.exchange.forced_reduction import Reduction, forced_reduction
from engine.exchange.margin_calls import CallsSettled, MarginCall, PendingCalls
from engine.exchange.price_limits import DailyLimits
from engine.waterfall.events import WaterfallResult
from engine.waterfall.models import Models
from engine.waterfall.profile import Profile, reserved_mask
from engine.waterfall.run import SweptRows, run_waterfall
from engine.waterfall.takeover import liquidation_order


class ExchangeState:
    """What the exchange's rules remember between ticks (a service snapshot carries it)."""

    def __init__(self, instruments: InstrumentTable) -> None:
        self.classes = AccountClasses()
        self.pending = PendingCalls()
        self.limits = DailyLimits(instruments)

    def active(self, profile: Profile) -> bool:
        """Whether a tick needs this module at all (else run_waterfall alone is the same)."""
        rules = profile.exchange
        return bool(len(self.pending) or self.limits.reference.any() or rules.proprietary_first)

    def to_dict(self) -> dict[str, Any]:
        """Sorted, for a snapshot's `extra`; empty parts are left out."""
        doc: dict[str, Any] = {}
        if len(self.classes.proprietary):
            doc["proprietary"] = self.classes.to_list()
        if len(self.pending):
            doc["margin_calls"] = self.pending.to_dict()
        if self.limits.reference.any():
            doc["previous_settlement"] = self.limits.to_dict()
        return doc

    def load_dict(self, doc: dict[str, Any]) -> None:
        self.classes = AccountClasses(doc.get("proprietary", []))
        self.pending = PendingCalls.from_dict(doc.get("margin_calls", {}))
        self.limits.load_dict(doc.get("previous_settlement", {}))


@dataclass
class ExchangeTickResult:
    waterfall: WaterfallResult
    calls: list[MarginCall] = field(default_factory=list)  # opened this tick
    settled: CallsSettled = field(default_factory=CallsSettled)
    reductions: list[Reduction] = field(default_factory=list)
    locked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))


def _losing_locked(book: Book, rows: np.ndarray, locked: np.ndarray) -> np.ndarray:
    """Per row: the account holds the losing side of a locked instrument."""
    out = np.zeros(len(rows), dtype=bool)
    if not locked.any() or not len(rows):
        return out
    book.compact()
    owner = book.position_owner()
    side = locked[book.pos_instrument].astype(np.int64)
    # limit up (+1) hurts shorts, limit down (-1) hurts longs: qty * side < 0
    losing = (side != 0) & (book.pos_qty * side < 0)
    per_account = np.zeros(book.n_accounts, dtype=bool)
    per_account[owner[losing]] = True
    return per_account[rows]


def exchange_tick(
    book: Book,
    profile: Profile,
    state: ExchangeState,
    now_ts: int,
    swept: SweptRows | None = None,
    models: Models | None = None,
) -> ExchangeTickResult:
    """The tick (module docstring) at the book's marks; `swept` and `models` as for
    run_waterfall."""
    if swept is None:
        risk = book.sweep(with_initial_margin=False)
        rows = np.arange(book.n_accounts, dtype=np.int64)
        swept = SweptRows(rows, risk.equity, risk.maintenance_margin, risk.status)
    rules = profile.exchange
    rows = swept.rows
    equity, maintenance, status = (
        swept.equity.copy(),
        swept.maintenance_margin.copy(),
        swept.status.copy(),
    )
    ids = book.account_id[rows]
    trader = ~reserved_mask(ids, profile)
    locked = state.limits.locked(book)
    in_locked = _losing_locked(book, rows, locked)
    stuck = np.flatnonzero(trader & (status >= STATUS_LIQUIDATE) & (equity >= 0) & in_locked)
    reductions: list[Reduction] = []
    if len(stuck) and rules.forced_reduction:
        order = liquidation_order(
            ids[stuck],
            equity[stuck],
            maintenance[stuck],
            state.classes.priority(ids[stuck]) if rules.proprietary_first else None,
        )
        stuck = stuck[np.asarray(order, dtype=np.int64)]
        for instrument in np.flatnonzero(locked).tolist():
            reductions += forced_reduction(
                book, profile, instrument, int(locked[instrument]), ids[stuck].tolist()
            )
        if reductions:
            # Every side's equity is unchanged; margins fell: re-sweep the rows touched.
            touched = {r.account_id for r in reductions}
            at = np.flatnonzero(np.isin(ids, list(touched)))
            e, m, s = book.sweep_rows(rows[at])
            equity[at], maintenance[at], status[at] = e, m, s
            in_locked = _losing_locked(book, rows, locked)
            stuck = stuck[(status[stuck] >= STATUS_LIQUIDATE) & in_locked[stuck]]
    calls = []
    if len(stuck):
        initial = {}
        for i in stuck.tolist():
            account_id = int(ids[i])
            if account_id in state.pending.deadlines:
                continue
            initial[i] = book._account_equity_and_initial_margin(int(rows[i]))[1]
            deadline = now_ts + rules.margin_call_grace_ms
            state.pending.open(account_id, deadline)
            calls.append(
                MarginCall(
                    account_id,
                    "price_limit",
                    int(equity[i]),
                    int(maintenance[i]),
                    initial[i],
                    deadline,
                )
            )
    settled = state.pending.settle(now_ts, ids, equity, status, locked=in_locked)
    keep = ~np.isin(ids, settled.held) if settled.held else np.ones(len(rows), dtype=bool)
    priority = state.classes.priority if rules.proprietary_first else None
    waterfall = run_waterfall(
        book,
        profile,
        swept=SweptRows(rows[keep], equity[keep], maintenance[keep], status[keep]),
        priority=priority,
        models=models,
    )
    return ExchangeTickResult(waterfall, calls, settled, reductions, locked)
