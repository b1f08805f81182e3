"""The position store: every open position as numpy columns grouped by account (CSR).

The slots of account row `a` are `acct_start[a]:acct_start[a + 1]`; per slot the columns
hold the instrument index, qty (lots, signed), cost (money units, the entry value, with the
sign of qty) and leverage. A slot with qty == 0 and cost == 0 is free and weighs nothing in
a sweep. A position opened in an account without a free slot waits in a small pending map
until `compact()` (run before any pass that needs the CSR) rebuilds the columns.

The store knows nothing of money: the book posts the PnL that goes with each write.
"""

from __future__ import annotations

import numpy as np


class PositionStore:
    def __init__(self, n_instruments: int) -> None:
        self.n_instruments = n_instruments
        self.acct_start = np.zeros(1, dtype=np.int64)
        self.instrument = np.zeros(0, dtype=np.int32)
        self.qty = np.zeros(0, dtype=np.int64)
        self.cost = np.zeros(0, dtype=np.int64)
        self.leverage = np.zeros(0, dtype=np.int32)
        # (account row, instrument) -> [qty, cost, leverage] of positions without a slot yet.
        self.pending: dict[tuple[int, int], list[int]] = {}

    @property
    def n_accounts(self) -> int:
        return len(self.acct_start) - 1

    def add_account(self) -> None:
        """An account row with no slots, after the last one."""
        self.acct_start = np.append(self.acct_start, self.acct_start[-1])

    def add_accounts(self, count: int) -> None:
        """`count` account rows with no slots, after the last one."""
        self.acct_start = np.concatenate(
            [self.acct_start, np.full(count, self.acct_start[-1], dtype=np.int64)]
        )

    def drop_newest_accounts(self, count: int) -> None:
        """Forget account rows from `count` on; they must hold no positions."""
        assert self.acct_start[count] == self.acct_start[-1], "dropping rows that hold slots"
        assert not any(row >= count for row, _ in self.pending), "dropping rows with positions"
        self.acct_start = self.acct_start[: count + 1].copy()

    def load(
        self,
        acct_start: np.ndarray,
        instrument: np.ndarray,
        qty: np.ndarray,
        cost: np.ndarray,
        leverage: np.ndarray,
    ) -> None:
        """Replace every column with validated ones, already in CSR order."""
        assert len(instrument) == len(qty) == len(cost) == len(leverage) == acct_start[-1]
        self.acct_start, self.instrument, self.qty = acct_start, instrument, qty
        self.cost, self.leverage = cost, leverage
        self.pending.clear()

    # ----- one position ------------------------------------------------------------------
    def find_slot(self, row: int, inst: int) -> int | None:
        """The slot holding an open position of account row `row` in `inst`, if any."""
        lo, hi = int(self.acct_start[row]), int(self.acct_start[row + 1])
        for p in range(lo, hi):
            if self.qty[p] != 0 and self.instrument[p] == inst:
                return p
        return None

    def _free_slot(self, row: int) -> int | None:
        lo, hi = int(self.acct_start[row]), int(self.acct_start[row + 1])
        for p in range(lo, hi):
            if self.qty[p] == 0 and self.cost[p] == 0:
                return p
        return None

    def get(self, row: int, inst: int) -> tuple[int, int]:
        """(qty, cost) of account row `row` in `inst`; (0, 0) if flat."""
        pending = self.pending.get((row, inst))
        if pending is not None:
            return pending[0], pending[1]
        p = self.find_slot(row, inst)
        if p is None:
            return 0, 0
        return int(self.qty[p]), int(self.cost[p])

    def put(self, row: int, inst: int, qty: int, cost: int, leverage: int) -> None:
        """Write a position; `leverage` is used when it takes a new slot."""
        assert qty != 0 or cost == 0, f"account row {row}: a flat position carries no cost"
        key = (row, inst)
        if key in self.pending:
            if qty == 0:
                del self.pending[key]
            else:
                self.pending[key][:2] = [qty, cost]
            return
        p = self.find_slot(row, inst)
        if p is None and qty != 0:
            p = self._free_slot(row)
            if p is None:
                self.pending[key] = [qty, cost, leverage]
                return
            self.instrument[p] = inst
            self.leverage[p] = leverage
        if p is not None:
            self.qty[p] = qty
            self.cost[p] = cost

    def set_leverage(self, row: int, inst: int, leverage: int) -> None:
        if (row, inst) in self.pending:
            self.pending[(row, inst)][2] = leverage
        p = self.find_slot(row, inst)
        if p is not None:
            self.leverage[p] = leverage

    def has_pending(self, row: int) -> bool:
        return any(r == row for r, _ in self.pending)

    def of_row(self, row: int) -> list[tuple[int, int, int]]:
        """(instrument index, qty, cost) of every open position of a row, by index."""
        lo, hi = int(self.acct_start[row]), int(self.acct_start[row + 1])
        found = {
            int(self.instrument[p]): (int(self.qty[p]), int(self.cost[p]))
            for p in range(lo, hi)
            if self.qty[p] != 0
        }
        for (r, inst), pending in self.pending.items():
            if r == row:
                found[inst] = (pending[0], pending[1])
        return [(inst, qty, cost) for inst, (qty, cost) in sorted(found.items())]

    # ----- many slots --------------------------------------------------------------------
    def write_slots(self, slots: np.ndarray, qty: np.ndarray, cost: np.ndarray) -> None:
        """Write qty and cost of existing slots. Slots index the columns as they are: the
        caller chose them after its last compact."""
        assert ((qty != 0) | (cost == 0)).all(), "a flat position carries no cost"
        self.qty[slots] = qty
        self.cost[slots] = cost

    # ----- layout ------------------------------------------------------------------------
    def compact(self, *, canonical: bool = False) -> None:
        """Fold pending positions into the CSR columns, dropping free slots.

        `canonical` also re-lays a store whose slots were reused, so positions sit in
        (account row, instrument) order with no free slots: two stores holding the same
        positions then have the same columns, whatever their history.
        """
        n_accounts = self.n_accounts
        if not self.pending:
            if not canonical:
                return
            owner = self.owner()
            key = owner * max(self.n_instruments, 1) + self.instrument
            if (self.qty != 0).all() and bool((key[1:] > key[:-1]).all()):
                return
        owner = np.repeat(np.arange(n_accounts, dtype=np.int64), np.diff(self.acct_start))
        live = self.qty != 0
        keys = list(self.pending)
        values = list(self.pending.values())
        owner = np.concatenate([owner[live], np.array([k[0] for k in keys], dtype=np.int64)])
        inst = np.concatenate(
            [self.instrument[live], np.array([k[1] for k in keys], dtype=np.int32)]
        )
        qty = np.concatenate([self.qty[live], np.array([v[0] for v in values], np.int64)])
        cost = np.concatenate([self.cost[live], np.array([v[1] for v in values], np.int64)])
        lev = np.concatenate(
            [self.leverage[live], np.array([v[2] for v in values], dtype=np.int32)]
        )
        order = np.lexsort((inst, owner))
        self.instrument, self.qty = inst[order], qty[order]
        self.cost, self.leverage = cost[order], lev[order]
        self.acct_start = np.zeros(n_accounts + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=n_accounts), out=self.acct_start[1:])
        self.pending.clear()

    def owner(self) -> np.ndarray:
        """Account row of every slot (after compact)."""
        self.compact()
        return np.repeat(np.arange(self.n_accounts, dtype=np.int64), np.diff(self.acct_start))
