"""Append-only double-entry ledger of every money movement.

A posting moves `amount` (> 0, money units) from `debit` to `credit`; an account's balance is
its credits minus its debits, so the balances of all accounts, house accounts included, sum
to zero at all times. Trader and fund accounts have ids >= 0; house accounts are negative:
EXTERNAL is the world outside the venue (deposits come from it), CLEARING is the other side
of trade settlement (realized PnL), FEES collects trading fees.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

EXTERNAL = -1
CLEARING = -2
FEES = -3
FUNDING_POOL = -4  # funding passes through it; it keeps the rounding remainder
HOUSE_ACCOUNTS = {
    EXTERNAL: "external",
    CLEARING: "clearing",
    FEES: "fees",
    FUNDING_POOL: "funding_pool",
}


class Reason(IntEnum):
    OPENING_BALANCE = 1
    DEPOSIT = 2
    WITHDRAW = 3
    REALIZED_PNL = 4
    TRADING_FEE = 5
    LIQUIDATION_FEE = 6
    TAKEOVER = 7
    INSURANCE_PAYOUT = 8
    ADL = 9
    SOCIALIZED_LOSS = 10
    FUNDING = 11
    VARIATION_MARGIN = 12
    COLLATERAL_SALE = 13  # a breached account's collateral sold at its haircut value
    ISOLATED_MARGIN = 14  # margin moved between an account and its isolated position
    # Asset-liability accounts (engine.margin): a loan paid out and owed, its repayment,
    # interest added to what is owed, collateral sold (or a debt bought back) by force, and a
    # customer's own spot trade against the market.
    BORROW = 31
    REPAY = 32
    INTEREST = 33
    FORCED_SALE = 34
    SPOT_TRADE = 35


_COLUMNS = ("seq", "event_id", "debit", "credit", "amount", "reason")


class Ledger:
    """Columnar, growable, append-only. Postings are never edited or removed.

    A streaming service moves its postings out at each checkpoint (engine.io.ledger_segments:
    `take_all`): then memory holds only the postings since, `base` counts those before them,
    and `seq` stays the posting's place in the whole ledger."""

    def __init__(self, capacity: int = 1024) -> None:
        self._cols = {name: np.zeros(max(capacity, 16), dtype=np.int64) for name in _COLUMNS}
        self._len = 0
        self.base = 0  # postings moved out of memory before the first one held

    def __len__(self) -> int:
        return self._len

    def _reserve(self, extra: int) -> None:
        need = self._len + extra
        cap = len(self._cols["seq"])
        if need <= cap:
            return
        new_cap = max(need, cap * 2)
        for name, col in self._cols.items():
            grown = np.zeros(new_cap, dtype=np.int64)
            grown[: self._len] = col[: self._len]
            self._cols[name] = grown

    def post(self, debit: int, credit: int, amount: int, reason: Reason, event_id: int) -> None:
        assert amount > 0, f"posting amount must be positive, got {amount}"
        assert debit != credit, f"posting from account {debit} to itself"
        self._reserve(1)
        i = self._len
        self._cols["seq"][i] = self.base + i
        self._cols["event_id"][i] = event_id
        self._cols["debit"][i] = debit
        self._cols["credit"][i] = credit
        self._cols["amount"][i] = amount
        self._cols["reason"][i] = int(reason)
        self._len += 1

    def post_many(
        self,
        debit: np.ndarray,
        credit: np.ndarray,
        amount: np.ndarray,
        reason: Reason,
        event_id: np.ndarray,
    ) -> None:
        """Vectorized post; zero amounts are skipped (a posting moves something)."""
        amount = np.asarray(amount, dtype=np.int64)
        keep = amount != 0
        assert (amount >= 0).all(), "posting amounts must not be negative"
        n = int(keep.sum())
        if n == 0:
            return
        debit_k = np.broadcast_to(np.asarray(debit, dtype=np.int64), amount.shape)[keep]
        credit_k = np.broadcast_to(np.asarray(credit, dtype=np.int64), amount.shape)[keep]
        assert (debit_k != credit_k).all(), "posting from an account to itself"
        self._reserve(n)
        s = slice(self._len, self._len + n)
        self._cols["seq"][s] = np.arange(self.base + self._len, self.base + self._len + n)
        self._cols["event_id"][s] = np.broadcast_to(
            np.asarray(event_id, dtype=np.int64), amount.shape
        )[keep]
        self._cols["debit"][s] = debit_k
        self._cols["credit"][s] = credit_k
        self._cols["amount"][s] = amount[keep]
        self._cols["reason"][s] = int(reason)
        self._len += n

    def append(
        self,
        event_id: np.ndarray,
        debit: np.ndarray,
        credit: np.ndarray,
        amount: np.ndarray,
        reason: np.ndarray,
    ) -> None:
        """Postings already in order, each with its own reason (the batch kernel's output,
        engine.book.batch): amounts > 0, debit != credit, as `post` would append them."""
        n = len(amount)
        if n == 0:
            return
        assert (amount > 0).all(), "posting amounts must be positive"
        assert (debit != credit).all(), "posting from an account to itself"
        self._reserve(n)
        s = slice(self._len, self._len + n)
        self._cols["seq"][s] = np.arange(self.base + self._len, self.base + self._len + n)
        self._cols["event_id"][s] = event_id
        self._cols["debit"][s] = debit
        self._cols["credit"][s] = credit
        self._cols["amount"][s] = amount
        self._cols["reason"][s] = reason
        self._len += n

    def drop_newest(self, length: int) -> None:
        """Forget the postings from `length` on: the undo of a record that failed half way
        (engine.service.rollback); postings are otherwise never edited or removed."""
        assert 0 <= length <= self._len, f"cannot shorten a ledger of {self._len} to {length}"
        self._len = length

    def take_all(self) -> dict[str, np.ndarray]:
        """The postings held (copies of their columns), moved out: memory keeps none, `base`
        counts them (a checkpoint of a streamed ledger)."""
        taken = {name: self.column(name).copy() for name in _COLUMNS}
        self.restart(self.base + self._len)
        return taken

    def restart(self, base: int) -> None:
        """Forget the postings held; the next one is the ledger's `base`-th (a restore that
        continues a streamed ledger, engine.io.ledger_segments)."""
        self._cols = {name: np.zeros(1024, dtype=np.int64) for name in _COLUMNS}
        self._len = 0
        self.base = base

    def column(self, name: str) -> np.ndarray:
        return self._cols[name][: self._len]

    def net_by_account(self) -> tuple[np.ndarray, np.ndarray]:
        """(account ids, credits - debits) over every account that appears in a posting."""
        debit, credit, amount = self.column("debit"), self.column("credit"), self.column("amount")
        ids = np.concatenate([credit, debit])
        signed = np.concatenate([amount, -amount])
        unique, inverse = np.unique(ids, return_inverse=True)
        net = np.zeros(len(unique), dtype=np.int64)
        np.add.at(net, inverse, signed)
        return unique, net
