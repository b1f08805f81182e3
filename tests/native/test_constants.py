"""The constants Python and C share are one definition: the native module's values (read
from the C headers) equal every Python name for them, and the codes reports and snapshots
store are pinned."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from bench import baselines
from engine import _native
from engine.book import book, fixed
from tests import reference

pytestmark = pytest.mark.kernel


def test_rate_scale_is_one_value() -> None:
    assert _native.RATE_SCALE == 10**8 == 10**fixed.RATE_DECIMALS
    assert fixed.RATE_SCALE == _native.RATE_SCALE
    assert reference.RATE_SCALE == _native.RATE_SCALE
    assert baselines.RATE_SCALE == _native.RATE_SCALE


def test_status_codes_and_names() -> None:
    codes = (book.STATUS_OK, book.STATUS_MARGIN_CALL, book.STATUS_LIQUIDATE, book.STATUS_BANKRUPT)
    native = (
        _native.STATUS_OK,
        _native.STATUS_MARGIN_CALL,
        _native.STATUS_LIQUIDATE,
        _native.STATUS_BANKRUPT,
    )
    assert codes == native == (0, 1, 2, 3)  # stored as int8 in snapshots and reports
    assert book.STATUS_NAMES is _native.STATUS_NAMES
    assert _native.STATUS_NAMES == ("ok", "margin_call", "liquidate", "bankrupt")


def test_other_shared_limits() -> None:
    assert book.POSITION_TICK_VALUE_MAX == _native.POSITION_TICK_VALUE_MAX == 2**62
    assert reference.NULL_PRICE == _native.NULL_PRICE == -1
    assert _native.ADL_SCORE_SCALE == 10**8
    assert (_native.ADL_POLICY_PNL_LEVERAGE, _native.ADL_POLICY_HYPERLIQUID) == (0, 1)


# An empty book whose only tier is not the unbounded last tier the kernels require: the
# binding's shape checks pass, no position is read, so a release build returns normally.
BROKEN_TIERS = """
import numpy as np
from engine import _native
i64 = np.int64
_native.sweep_accounts(
    np.zeros(1, dtype=i64), np.zeros(0, dtype=i64), np.zeros(0, dtype=np.int32),
    np.zeros(0, dtype=i64), np.zeros(0, dtype=i64), np.zeros(0, dtype=np.int32),
    np.zeros(1, dtype=i64), np.array([0, 1], dtype=i64), np.array([5], dtype=i64),
    np.zeros(1, dtype=i64), np.zeros(1, dtype=i64), np.ones(1, dtype=i64), 10**8,
)
"""


def test_debug_build_asserts_kernel_preconditions() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BROKEN_TIERS], capture_output=True, text=True, check=False
    )
    if _native.KERNEL_DEBUG:
        assert result.returncode == -signal.SIGABRT
        assert "kernel precondition failed" in result.stderr
        assert "INT64_MAX" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
