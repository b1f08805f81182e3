"""Margin calls with a deadline: accounts an exchange event left short, held until then.

A futures exchange that raises its margin does not liquidate the accounts the change leaves
short: it calls them for margin, due by a deadline (the profile's
`exchange.margin_call_grace_ms` after the event), and liquidates only those still short
after it. A limit-locked market (engine.exchange.price_limits) holds its breached accounts
the same way. `PendingCalls` is that book of calls, account id -> deadline (epoch ms), and
`settle_calls` decides each tick, for the breached accounts of a sweep, who is held:

- a called account no longer breached (status below `liquidate`) has met its call: removed;
- a called account breached with equity >= 0 before its deadline is held (not liquidated);
- at or after the deadline, or once its equity is negative (bankrupt: the loss is already
  the house's, waiting makes it larger), the call lapses and the waterfall takes the account.

Time is an input (the tick's event time), never a clock read, so a replay is the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.book.book import STATUS_LIQUIDATE

# Why an account was called (the `reason` of a margin call with a deadline).
CALL_REASONS = ("margin_change", "price_limit")


@dataclass(frozen=True)
class MarginCall:
    """One call: money units at the sweep that made it; due by `deadline_ts` (epoch ms)."""

    account_id: int
    reason: str  # one of CALL_REASONS
    equity: int
    maintenance_margin: int
    initial_margin: int
    deadline_ts: int

    @property
    def shortfall(self) -> int:
        """What brings equity back above the maintenance margin: MM - E + 1 unit (> 0)."""
        return max(0, self.maintenance_margin - self.equity + 1)

    @property
    def call_amount(self) -> int:
        """What restores the initial margin, the exchange's call: max(IM - E, shortfall)."""
        return max(self.initial_margin - self.equity, self.shortfall)


@dataclass
class CallsSettled:
    """What settle_calls decided this tick (account ids)."""

    held: list[int] = field(default_factory=list)
    met: list[int] = field(default_factory=list)
    lapsed: list[int] = field(default_factory=list)


class PendingCalls:
    """Open margin calls: account id -> deadline (epoch ms)."""

    def __init__(self, deadlines: dict[int, int] | None = None) -> None:
        self.deadlines: dict[int, int] = dict(deadlines or {})

    def __len__(self) -> int:
        return len(self.deadlines)

    def open(self, account_id: int, deadline_ts: int) -> None:
        """A call; an account already called keeps its earlier deadline."""
        assert deadline_ts >= 0, f"account {account_id}: deadline {deadline_ts}"
        self.deadlines.setdefault(account_id, deadline_ts)

    def settle(
        self,
        now_ts: int,
        account_ids: np.ndarray,
        equity: np.ndarray,
        status: np.ndarray,
        *,
        locked: np.ndarray | None = None,
    ) -> CallsSettled:
        """Decide the called accounts among a sweep's rows (ids, equity, status); a called
        account absent from the rows is ok (the incremental sweep's promise): met.
        `locked` (per row, optional): the account holds the losing side of a limit-locked
        market, where it cannot be unwound: held past its deadline while equity >= 0."""
        settled = CallsSettled()
        if not self.deadlines:
            return settled
        where = {int(a): i for i, a in enumerate(account_ids.tolist())}
        for account_id, deadline in sorted(self.deadlines.items()):
            i = where.get(account_id)
            if i is None or int(status[i]) < STATUS_LIQUIDATE:
                settled.met.append(account_id)
            elif int(equity[i]) >= 0 and (
                now_ts < deadline or (locked is not None and bool(locked[i]))
            ):
                settled.held.append(account_id)
            else:
                settled.lapsed.append(account_id)
        for account_id in settled.met + settled.lapsed:
            del self.deadlines[account_id]
        return settled

    def to_dict(self) -> dict[str, int]:
        return {str(a): d for a, d in sorted(self.deadlines.items())}

    @classmethod
    def from_dict(cls, doc: dict[str, int]) -> PendingCalls:
        return cls({int(a): int(d) for a, d in doc.items()})
