"""The native asset-liability sweep against the Fractions reference, on random books."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import _native
from tests.margin import reference as ref

pytestmark = pytest.mark.kernel

S = ref.RATE_SCALE


@st.composite
def books(draw: st.DrawFn, extremes: bool = False) -> dict:
    n_assets = draw(st.integers(1, 5))
    n_accounts = draw(st.integers(0, 12))
    decimals = [draw(st.integers(0, 18 if extremes else 8)) for _ in range(n_assets)]
    value_max = 2**62 if extremes else 10**12
    amount = st.one_of(st.just(0), st.integers(0, value_max), st.integers(0, 1000))
    price = st.one_of(st.just(0), st.integers(0, value_max), st.integers(1, 10**6))
    rate = st.one_of(st.just(0), st.just(S), st.integers(0, S))
    call = draw(st.integers(1, 100 * S))
    liquidation = draw(st.integers(1, call))
    capacity = n_accounts + draw(st.integers(0, 3))
    held = np.zeros((n_assets, capacity), dtype=np.int64)
    owed = np.zeros((n_assets, capacity), dtype=np.int64)
    for k in range(n_assets):
        for a in range(capacity):  # past n_accounts: capacity the kernel must not read
            held[k, a] = draw(amount)
            owed[k, a] = draw(st.one_of(st.just(0), amount))
    return {
        "held": held,
        "owed": owed,
        "n_accounts": n_accounts,
        "price": np.array([draw(price) for _ in range(n_assets)], dtype=np.int64),
        "unit": np.array([10**d for d in decimals], dtype=np.int64),
        "rate": np.array([draw(rate) for _ in range(n_assets)], dtype=np.int64),
        "call": call,
        "liquidation": liquidation,
    }


def expected(book: dict) -> list[tuple[int, int, int, int]] | int:
    """Per account (MV, CV, LV, status), or the index of the first overflowing account."""
    out = []
    for a in range(book["n_accounts"]):
        try:
            out.append(
                ref.account(
                    book["held"][:, a].tolist(),
                    book["owed"][:, a].tolist(),
                    book["price"].tolist(),
                    book["unit"].tolist(),
                    book["rate"].tolist(),
                    book["call"],
                    book["liquidation"],
                )
            )
        except ref.RefOverflow:
            return a
    return out


def native(book: dict, threads: int = 1) -> list[tuple[int, int, int, int]] | int:
    try:
        mv, cv, lv, status = _native.sweep_asset_liability(
            book["held"],
            book["owed"],
            book["n_accounts"],
            book["price"],
            book["unit"],
            book["rate"],
            book["call"],
            book["liquidation"],
            threads,
        )
    except _native.NativeOverflowError as exc:
        return int(exc.index)
    return list(zip(mv.tolist(), cv.tolist(), lv.tolist(), status.tolist(), strict=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_sweep_matches_the_reference(book: dict) -> None:
    assert native(book) == expected(book)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(extremes=True))
def test_sweep_matches_the_reference_at_the_extremes(book: dict) -> None:
    """Values near int64: either the same figures or the same overflowing account."""
    assert native(book) == expected(book)


@settings(max_examples=50, deadline=None)
@given(books())
def test_threads_give_the_same_result(book: dict) -> None:
    assert native(book, threads=2) == native(book, threads=1)


def one_account(held: list[int], owed: list[int], call: int, liquidation: int) -> int:
    """Status of one account whose assets are all priced 1 per unit, rate 1."""
    n = len(held)
    mv, cv, lv, status = _native.sweep_asset_liability(
        np.array(held, dtype=np.int64).reshape(n, 1),
        np.array(owed, dtype=np.int64).reshape(n, 1),
        1,
        np.ones(n, dtype=np.int64),
        np.ones(n, dtype=np.int64),
        np.full(n, S, dtype=np.int64),
        call,
        liquidation,
    )
    return int(status[0])


def test_edges() -> None:
    call, liquidation = 13 * S // 10, 11 * S // 10
    assert one_account([0], [0], call, liquidation) == ref.OK  # nothing held or owed
    assert one_account([5], [0], call, liquidation) == ref.OK  # nothing owed
    assert one_account([0], [1], call, liquidation) == ref.BANKRUPT  # owes, holds nothing
    assert one_account([130], [100], call, liquidation) == ref.OK  # exactly the call level
    assert one_account([129], [100], call, liquidation) == ref.MARGIN_CALL
    assert one_account([110], [100], call, liquidation) == ref.MARGIN_CALL  # at liquidation
    assert one_account([109], [100], call, liquidation) == ref.LIQUIDATE
    assert one_account([100], [100], call, liquidation) == ref.LIQUIDATE  # MV == LV
    assert one_account([99], [100], call, liquidation) == ref.BANKRUPT


def test_bad_arguments_are_refused() -> None:
    held = np.zeros((1, 2), dtype=np.int64)
    one = np.ones(1, dtype=np.int64)
    with pytest.raises(ValueError, match="same shape"):
        _native.sweep_asset_liability(held, np.zeros((1, 3), np.int64), 2, one, one, one, 2, 1)
    with pytest.raises(ValueError, match="capacity"):
        _native.sweep_asset_liability(held, held, 3, one, one, one, 2, 1)
    with pytest.raises(ValueError, match="levels"):
        _native.sweep_asset_liability(held, held, 2, one, one, one, 1, 2)
    with pytest.raises(ValueError, match="asset 0"):
        _native.sweep_asset_liability(held, held, 2, one, np.zeros(1, np.int64), one, 2, 1)
