"""Baselines the native sweep is measured against, in the same process.

`numpy_sweep` is the same exact tiered computation written the way one would in numpy:
gather, multiply, a tier search by levels, then per-account sums with `reduceat`. It is
exact for books whose products fit int64 (true of the synthetic books), and
tests/test_bench_baselines.py checks it against the native sweep so the ratio compares
like with like.
"""

from __future__ import annotations

import numpy as np

from engine.book.book import Book

RATE_SCALE = 10**8


def numpy_sweep(book: Book) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = book.instruments
    inst = book.pos_instrument
    value = book.pos_qty * book.mark_lot_value[inst]
    notional = np.abs(value)
    upnl = value - book.pos_cost
    k = t.tier_start[inst]
    last = t.tier_start[inst + 1] - 1
    for _ in range(int(np.diff(t.tier_start).max()) - 1):
        k = np.where((notional > t.tier_max_notional[k]) & (k < last), k + 1, k)
    a, b = np.divmod(notional, RATE_SCALE)
    mmr = t.tier_mmr[k]
    mm = a * mmr + (b * mmr + RATE_SCALE - 1) // RATE_SCALE - t.tier_maintenance_amount[k]
    mm = np.where(book.pos_qty != 0, mm, 0)
    starts = book.acct_start[:-1]
    counts = np.diff(book.acct_start)
    nonempty = counts > 0
    equity = book.balance.copy()
    maintenance = np.zeros(book.n_accounts, dtype=np.int64)
    if len(upnl):
        equity[nonempty] += np.add.reduceat(upnl, starts[nonempty])
        maintenance[nonempty] = np.add.reduceat(mm, starts[nonempty])
    has_position = np.zeros(book.n_accounts, dtype=bool)
    if len(upnl):
        has_position[nonempty] = np.logical_or.reduceat(book.pos_qty != 0, starts[nonempty])
    status = np.zeros(book.n_accounts, dtype=np.int8)
    # mm * S >= w * E exactly, in int64 after dividing both rates by their gcd (0.8 -> 5, 4)
    g = np.gcd(RATE_SCALE, book.warning_rate)
    warn = has_position & (maintenance * (RATE_SCALE // g) >= (book.warning_rate // g) * equity)
    status[warn] = 1
    status[has_position & (equity <= maintenance)] = 2
    status[equity < 0] = 3
    return equity, maintenance, status
