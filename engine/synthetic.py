"""Seeded synthetic books for benchmarks, the demo and tests: columns, not Python objects.

Leverage mix after the seeds (about 60% of traders at 5x or more, 20% at 10x, a tail to
100x), a long bias, and heavy-tailed sizes. The same seed gives the same book, bit for bit.
"""

from __future__ import annotations

import numpy as np

from engine.book import Book
from engine.instruments import InstrumentTable

USDT = 10**8


def synthetic_instruments(n_instruments: int) -> InstrumentTable:
    """BTC-like tiers on every instrument; prices on a 0.01 tick, sizes on a 0.001 lot."""
    tiers = [
        {"max_notional": "50000", "mmr": "0.004", "max_leverage": 125},
        {"max_notional": "250000", "mmr": "0.005", "max_leverage": 100},
        {"max_notional": "1000000", "mmr": "0.01", "max_leverage": 50},
        {"max_notional": "10000000", "mmr": "0.025", "max_leverage": 20},
        {"max_notional": None, "mmr": "0.05", "max_leverage": 10},
    ]
    return InstrumentTable.from_dict(
        {
            "money_decimals": 8,
            "instruments": [
                {
                    "symbol": f"SYN{i:04d}USDT",
                    "tick_size": "0.01",
                    "lot_size": "0.001",
                    "tiers": tiers,
                }
                for i in range(n_instruments)
            ],
        }
    )


def synthetic_marks(n_instruments: int, seed: int) -> np.ndarray:
    """Mark prices in ticks (0.01): log-uniform from 0.1 to 100000."""
    rng = np.random.default_rng([seed, 1])
    return np.round(10 ** rng.uniform(1, 7, n_instruments)).astype(np.int64)


def synthetic_book(
    n_accounts: int,
    n_positions: int,
    n_instruments: int = 100,
    *,
    seed: int = 7,
    long_share: float = 0.6,
) -> Book:
    """A book of about n_positions positions over n_accounts accounts, marked at entry +-2%."""
    rng = np.random.default_rng(seed)
    instruments = synthetic_instruments(n_instruments)
    marks = synthetic_marks(n_instruments, seed)
    per_account = rng.poisson(max(n_positions / max(n_accounts, 1) - 1, 0), n_accounts) + 1
    per_account = np.minimum(per_account, n_instruments)
    owner = np.repeat(np.arange(n_accounts, dtype=np.int64), per_account)
    # Distinct instruments within an account: a random offset plus a stride of 1.
    first = rng.integers(0, n_instruments, n_accounts)
    within = np.arange(len(owner)) - np.repeat(np.cumsum(per_account) - per_account, per_account)
    inst = ((np.repeat(first, per_account) + within) % n_instruments).astype(np.int32)
    entry = np.maximum(1, np.round(marks[inst] * rng.uniform(0.98, 1.02, len(owner)))).astype(
        np.int64
    )
    notional_usdt = np.minimum(rng.pareto(1.5, len(owner)) * 200 + 10, 5_000_000)
    # lots = notional / (price * 0.01 * 0.001)
    lots = np.maximum(1, notional_usdt / (entry * 1e-5)).astype(np.int64)
    side = np.where(rng.random(len(owner)) < long_share, 1, -1)
    qty = side * lots
    tick_value = instruments.tick_value[inst]
    cost = qty * entry * tick_value
    leverage = rng.choice(
        np.array([1, 2, 3, 5, 10, 20, 50, 100], dtype=np.int32),
        len(owner),
        p=[0.1, 0.15, 0.15, 0.2, 0.2, 0.12, 0.05, 0.03],
    )
    account_notional = np.bincount(owner, weights=np.abs(cost) / USDT, minlength=n_accounts)
    account_leverage = rng.choice(
        np.array([1.0, 2, 3, 5, 10, 20, 50, 100]),
        n_accounts,
        p=[0.1, 0.15, 0.15, 0.2, 0.2, 0.12, 0.05, 0.03],
    )
    balance = np.round(account_notional / account_leverage * USDT).astype(np.int64)
    account_ids = np.arange(1, n_accounts + 1, dtype=np.int64) * 10 + 3
    book = Book.from_arrays(
        instruments, account_ids, balance, account_ids[owner], inst, qty, cost, leverage
    )
    for i, symbol in enumerate(instruments.index):
        book.set_mark(symbol, int(marks[i]))
    return book
