"""Account id -> row index, for millions of accounts without a Python object per account.

Rows are assigned in insertion order. Lookups go through a sorted copy of the ids (binary
search, vectorized for batches) plus a small dict of ids added since the last re-sort.
"""

from __future__ import annotations

import numpy as np

PENDING_MAX = 65_536


class UnknownAccountError(KeyError):
    def __init__(self, account_id: int) -> None:
        super().__init__(f"unknown account {account_id}")
        self.account_id = account_id

    def __str__(self) -> str:
        return str(self.args[0])


class AccountIndex:
    def __init__(self) -> None:
        self._sorted_ids = np.zeros(0, dtype=np.int64)
        self._sorted_rows = np.zeros(0, dtype=np.int64)
        self._pending: dict[int, int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def find(self, account_id: int) -> int | None:
        row = self._pending.get(account_id)
        if row is not None:
            return row
        pos = int(np.searchsorted(self._sorted_ids, account_id))
        if pos < len(self._sorted_ids) and self._sorted_ids[pos] == account_id:
            return int(self._sorted_rows[pos])
        return None

    def row(self, account_id: int) -> int:
        row = self.find(account_id)
        if row is None:
            raise UnknownAccountError(account_id)
        return row

    def add(self, account_id: int) -> int:
        assert self.find(account_id) is None, f"account {account_id} already exists"
        row = self._count
        self._pending[account_id] = row
        self._count += 1
        if len(self._pending) > PENDING_MAX:
            self._merge_pending()
        return row

    def drop_newest(self, count: int) -> None:
        """Forget every row from `count` on: the accounts added last (an undo of `add`)."""
        if count >= self._count:
            return
        self._pending = {a: r for a, r in self._pending.items() if r < count}
        keep = self._sorted_rows < count
        self._sorted_ids, self._sorted_rows = self._sorted_ids[keep], self._sorted_rows[keep]
        self._count = count

    def add_many(self, account_ids: np.ndarray) -> np.ndarray:
        """Rows for new, distinct ids (the caller checks they are new and distinct)."""
        self._merge_pending()
        rows = np.arange(self._count, self._count + len(account_ids), dtype=np.int64)
        ids = np.concatenate([self._sorted_ids, np.asarray(account_ids, dtype=np.int64)])
        all_rows = np.concatenate([self._sorted_rows, rows])
        order = np.argsort(ids, kind="stable")
        self._sorted_ids, self._sorted_rows = ids[order], all_rows[order]
        self._count += len(account_ids)
        return rows

    def rows(self, account_ids: np.ndarray) -> np.ndarray:
        """Rows of many ids; -1 where an id is unknown."""
        self._merge_pending()
        ids = np.asarray(account_ids, dtype=np.int64)
        pos = np.searchsorted(self._sorted_ids, ids)
        pos_c = np.minimum(pos, max(len(self._sorted_ids) - 1, 0))
        if len(self._sorted_ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        found = self._sorted_ids[pos_c] == ids
        return np.where(found, self._sorted_rows[pos_c], -1)

    def _merge_pending(self) -> None:
        if not self._pending:
            return
        ids = np.fromiter(self._pending.keys(), dtype=np.int64, count=len(self._pending))
        rows = np.fromiter(self._pending.values(), dtype=np.int64, count=len(self._pending))
        self._pending.clear()
        ids = np.concatenate([self._sorted_ids, ids])
        rows = np.concatenate([self._sorted_rows, rows])
        order = np.argsort(ids, kind="stable")
        self._sorted_ids, self._sorted_rows = ids[order], rows[order]
