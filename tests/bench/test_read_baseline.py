"""The benchmark's bandwidth baseline (bench/csrc/read_bandwidth.c) reads every column it
names: its checksum equals the same fold written out in Python."""

from __future__ import annotations

import numpy as np
import pytest
from bench._read_baseline import read_sweep_columns

pytestmark = pytest.mark.kernel


def test_read_baseline_checksum_matches_reference() -> None:
    rng = np.random.default_rng(3)
    start = np.array([0, 2, 2, 5], dtype=np.int64)
    balance = rng.integers(-(2**40), 2**40, 3)
    inst = rng.integers(0, 9, 5).astype(np.int32)
    qty = rng.integers(-(2**50), 2**50, 5)
    cost = rng.integers(-(2**60), 2**60, 5)
    mask = 2**64 - 1
    expected = int(start[-1])
    for a in range(3):
        expected = (expected + ((int(start[a]) ^ int(balance[a])) & mask)) & mask
    for p in range(5):
        expected = (expected + ((int(inst[p]) ^ int(qty[p]) ^ int(cost[p])) & mask)) & mask
    assert read_sweep_columns(start, balance, inst, qty, cost) == expected


def test_read_baseline_rejects_mismatched_columns() -> None:
    one = np.zeros(1, dtype=np.int64)
    with pytest.raises(ValueError, match="acct_start"):
        read_sweep_columns(one, one, np.zeros(0, dtype=np.int32), one[:0], one[:0])
    with pytest.raises(ValueError, match="equal lengths"):
        read_sweep_columns(
            np.zeros(2, dtype=np.int64), one, np.zeros(1, dtype=np.int32), one, one[:0]
        )
