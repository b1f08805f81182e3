"""The batch kernel's (account row, instrument) table, seeded and read back from Python.

csrc/account_events.h (pair_table) keeps, per (row, instrument) a batch names, the position
waiting for a slot (PositionStore.pending) and the account's leverage setting, in an
open-addressing table with linear probing. This class owns its columns, inserts with the
same hash as the C code, and turns entries back into the book's dicts.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = 2**64 - 1


class PairTable:
    """The kernel's open-addressing table (pair_table in csrc/account_events.h), seeded
    and read back here with the same hash."""

    def __init__(self, capacity: int, n_instruments: int) -> None:
        cap = 64
        while cap < capacity:
            cap *= 2
        self.n_instruments = max(n_instruments, 1)
        self.key = np.full(cap, -1, dtype=np.int64)
        self.pending = np.zeros(cap, dtype=np.int8)
        self.qty = np.zeros(cap, dtype=np.int64)
        self.cost = np.zeros(cap, dtype=np.int64)
        self.leverage = np.zeros(cap, dtype=np.int64)
        self.setting = np.zeros(cap, dtype=np.int64)
        self.setting_changed = np.zeros(cap, dtype=np.int8)
        self.n_keys = 0
        self.n_pending = 0

    def _home(self, key: int) -> int:
        h = (key * _GOLDEN) & _MASK64  # modulo 2**64, as uint64 in C
        return (h ^ (h >> 29)) & (len(self.key) - 1)

    def insert(self, key: int) -> int:
        mask = len(self.key) - 1
        i = self._home(key)
        while self.key[i] >= 0 and self.key[i] != key:
            i = (i + 1) & mask
        if self.key[i] < 0:
            assert 2 * (self.n_keys + 1) <= len(self.key), "pair table sized too small"
            self.key[i] = key
            self.n_keys += 1
        return i

    def seed_pending(self, pending: dict[tuple[int, int], list[int]]) -> None:
        self.pending[:] = 0
        for (row, inst), (qty, cost, lev) in pending.items():
            i = self.insert(row * self.n_instruments + inst)
            self.pending[i] = 1
            self.qty[i], self.cost[i], self.leverage[i] = qty, cost, lev
        self.n_pending = len(pending)

    def seed_setting(self, row: int, inst: int, setting: int | None) -> None:
        i = self.insert(row * self.n_instruments + inst)
        self.setting[i] = 0 if setting is None else setting

    def as_tuple(self) -> tuple[object, ...]:
        return (
            self.key,
            self.pending,
            self.qty,
            self.cost,
            self.leverage,
            self.setting,
            self.setting_changed,
            self.n_keys,
            self.n_pending,
        )

    def pending_positions(self) -> dict[tuple[int, int], list[int]]:
        at = np.flatnonzero(self.pending).tolist()
        n = self.n_instruments
        return {
            (int(self.key[i]) // n, int(self.key[i]) % n): [
                int(self.qty[i]),
                int(self.cost[i]),
                int(self.leverage[i]),
            ]
            for i in at
        }

    def take_changed_settings(self) -> list[tuple[int, int, int]]:
        at = np.flatnonzero(self.setting_changed)
        if not len(at):
            return []
        self.setting_changed[at] = 0
        n = self.n_instruments
        return [(int(self.key[i]) // n, int(self.key[i]) % n, int(self.setting[i])) for i in at]
