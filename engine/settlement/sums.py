"""Exact sums of int64 columns per account and per instrument.

A position slot's amount is summed over its account's CSR segment (book.acct_start) or over
its instrument; a float screen over the same magnitudes (below engine.book.limits'
FLOAT_SCREEN_MAX) only decides whether a value might not fit, which sends the rare case to
a refusal before anything changes.
"""

from __future__ import annotations

import numpy as np

from engine.book.limits import FLOAT_SCREEN_MAX


def per_account(values: np.ndarray, acct_start: np.ndarray) -> np.ndarray:
    """Sum of a per-slot int64 column over each account's CSR segment, exactly.

    Prefix sums wrap modulo 2**64, and a difference of two wrapped prefix sums is the exact
    segment sum whenever that sum fits int64 (the caller screens that).
    """
    prefix = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(values, out=prefix[1:])
    return prefix[acct_start[1:]] - prefix[acct_start[:-1]]


def per_account_abs_float(values: np.ndarray, acct_start: np.ndarray) -> np.ndarray:
    """Sum of |values| over each account's segment, as floats (for screening only)."""
    prefix = np.zeros(len(values) + 1, dtype=np.float64)
    np.cumsum(np.abs(values.astype(np.float64)), out=prefix[1:])
    return prefix[acct_start[1:]] - prefix[acct_start[:-1]]


def per_instrument(values: np.ndarray, instrument: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, instrument, values)
    return out


def total(values: np.ndarray) -> int:
    """Sum as a Python int (exact whatever the length)."""
    if not len(values):
        return 0
    if float(np.abs(values.astype(np.float64)).sum()) < FLOAT_SCREEN_MAX:
        return int(values.sum(dtype=np.int64))
    return sum(values.tolist())
