"""The asset-liability sweep on a synthetic book, for `python -m bench`.

Each account holds money and about two of the other three assets and owes money or one
asset; most accounts are ok and some are in every other status; the columns are built directly (no
ledger), since the sweep reads only them.
"""

from __future__ import annotations

import numpy as np

from engine import _native
from engine.book.fixed import RATE_SCALE

ASSETS = 4  # money + three others
CALL_LEVEL, LIQUIDATION_LEVEL = 13 * RATE_SCALE // 10, 11 * RATE_SCALE // 10


def synthetic_columns(n_accounts: int, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    held = np.zeros((ASSETS, n_accounts), dtype=np.int64)
    owed = np.zeros((ASSETS, n_accounts), dtype=np.int64)
    held[0] = rng.integers(0, 10**10, n_accounts)
    for k in range(1, ASSETS):
        mine = rng.random(n_accounts) < 2 / 3
        held[k, mine] = rng.integers(1, 10**9, int(mine.sum()))
    debt_asset = rng.integers(0, ASSETS, n_accounts)
    # Debts of up to about half the money held: most accounts ok, a few percent called.
    owed[debt_asset, np.arange(n_accounts)] = rng.integers(0, 6 * 10**9, n_accounts) // (
        1 + 3 * (debt_asset != 0)
    )
    return {
        "held": held,
        "owed": owed,
        # Prices off the whole-unit grid, so the values take their divisions.
        "price": np.array([10**8, 3 * 10**8 + 12_345, 10**8 // 2 + 7, 7 * 10**8 + 1]),
        "unit": np.array([10**8] * ASSETS, dtype=np.int64),
        "rate": np.array([RATE_SCALE, RATE_SCALE * 95 // 100, RATE_SCALE * 7 // 10, 0]),
    }


def output_arrays(n_accounts: int) -> tuple[np.ndarray, ...]:
    """Output arrays to reuse between sweeps (touched once, so no page faults later)."""
    return (
        np.zeros(n_accounts, dtype=np.int64),
        np.zeros(n_accounts, dtype=np.int64),
        np.zeros(n_accounts, dtype=np.int64),
        np.zeros(n_accounts, dtype=np.int8),
    )


def sweep(
    columns: dict[str, np.ndarray], threads: int = 1, out: tuple[np.ndarray, ...] | None = None
) -> tuple[np.ndarray, ...]:
    held = columns["held"]
    return _native.sweep_asset_liability(
        held,
        columns["owed"],
        held.shape[1],
        columns["price"],
        columns["unit"],
        columns["rate"].astype(np.int64),
        CALL_LEVEL,
        LIQUIDATION_LEVEL,
        threads,
        out,
    )
