"""The margin sweep and liquidation-price kernels against the plain-Python references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import _native
from tests import reference as ref

pytestmark = pytest.mark.kernel

S = ref.RATE_SCALE
MMR_STEP = 10**4  # mmr on a 4-decimal grid, tick values multiples of 10**4: so any
# notional can be a tier bound and every maintenance amount is a whole money unit.


def derive_tiers(bounds: list[int], mmrs: list[int], levs: list[int]) -> list[ref.RefTier]:
    tiers, cum, prev_bound, prev_mmr = [], 0, 0, 0
    for k, (bound, mmr, lev) in enumerate(zip(bounds + [ref.INT64_MAX], mmrs, levs, strict=True)):
        if k:
            step = prev_bound * (mmr - prev_mmr)
            assert step % S == 0
            cum += step // S
        tiers.append(ref.RefTier(bound, mmr, cum, lev))
        prev_bound, prev_mmr = bound, mmr
    return tiers


def flatten(tiers: list[list[ref.RefTier]]) -> tuple[np.ndarray, ...]:
    start = np.cumsum([0] + [len(t) for t in tiers]).astype(np.int64)
    flat = [t for inst in tiers for t in inst]
    return (
        start,
        np.array([t.max_notional for t in flat], dtype=np.int64),
        np.array([t.mmr for t in flat], dtype=np.int64),
        np.array([t.maintenance_amount for t in flat], dtype=np.int64),
        np.array([t.max_leverage for t in flat], dtype=np.int64),
    )


def per_contract(tiers: list[list[ref.RefTier]]) -> dict[str, np.ndarray]:
    """The per-contract tier columns, as the kernels' keyword arguments."""
    flat = [t for inst in tiers for t in inst]
    return {
        "tier_mm_per_contract": np.array([t.mm_per_contract for t in flat], dtype=np.int64),
        "tier_im_per_contract": np.array([t.im_per_contract for t in flat], dtype=np.int64),
    }


def csr(positions: list[list[ref.RefPosition]]) -> tuple[np.ndarray, ...]:
    flat = [p for account in positions for p in account]
    start = np.cumsum([0] + [len(a) for a in positions]).astype(np.int64)
    return (
        start,
        np.array([p.instrument for p in flat], dtype=np.int32),
        np.array([p.qty for p in flat], dtype=np.int64),
        np.array([p.cost for p in flat], dtype=np.int64),
        np.array([p.leverage for p in flat], dtype=np.int32),
    )


@st.composite
def books(draw: st.DrawFn, extremes: bool = False) -> dict:
    n_inst = draw(st.integers(1, 3))
    tick_value = [MMR_STEP * draw(st.integers(1, 1000)) for _ in range(n_inst)]
    price_max = 2**40 if extremes else 10**7
    marks = [draw(st.integers(0, price_max)) for _ in range(n_inst)]
    marks = [m if draw(st.booleans()) else max(m % 1000, 1) for m in marks]
    marks = [min(m, ref.INT64_MAX // tv) for m, tv in zip(marks, tick_value, strict=True)]
    mark_lot_value = [m * tv for m, tv in zip(marks, tick_value, strict=True)]
    qty_max = 2**20 if extremes else 10**4
    n_accounts = draw(st.integers(0, 6))
    positions: list[list[ref.RefPosition]] = []
    for _ in range(n_accounts):
        account = []
        for inst in draw(st.lists(st.integers(0, n_inst - 1), max_size=4, unique=True)):
            qty = draw(st.integers(-qty_max, qty_max).filter(lambda q: q != 0))
            if draw(st.integers(0, 9)) == 0:
                qty = draw(st.sampled_from([1, -1]))  # one-lot positions
            # The book keeps |qty| * tick_value and |cost| within 2**62.
            qty = max(min(qty, 2**62 // tick_value[inst]), -(2**62) // tick_value[inst])
            entry_max = max(1, min(price_max, 2**62 // (abs(qty) * tick_value[inst])))
            entry = draw(st.integers(1, entry_max))
            cost = qty * entry * tick_value[inst]
            lev = draw(st.sampled_from([1, 3, 10, 20, 50, 125, 1000]))
            account.append(ref.RefPosition(inst, qty, cost, lev))
        if draw(st.integers(0, 5)) == 0:
            account.append(ref.RefPosition(0, 0, 0, 1))  # a free slot
        positions.append(account)
    notionals = sorted(
        {abs(p.qty) * mark_lot_value[p.instrument] for a in positions for p in a if p.qty}
    )
    tiers = []
    for _ in range(n_inst):
        n_tiers = draw(st.integers(1, 4))
        # Bounds often sit exactly on a notional of the book, to hit tier boundaries.
        candidates = [n for n in notionals if 0 < n < ref.INT64_MAX] + [
            MMR_STEP * draw(st.integers(1, 10**9)) for _ in range(3)
        ]
        bounds = sorted(set(draw(st.permutations(candidates))[: n_tiers - 1]))
        mmrs = sorted(MMR_STEP * draw(st.integers(0, S // MMR_STEP - 1)) for _ in bounds)
        mmrs = sorted([MMR_STEP * draw(st.integers(0, 500))] + mmrs)
        levs = sorted((draw(st.integers(1, 200)) for _ in mmrs), reverse=True)
        inst_tiers = derive_tiers(bounds, mmrs, levs)
        # Some instruments also hold a fixed margin per contract (one amount per instrument,
        # as the loader keeps it), and some a fixed initial margin per contract.
        if draw(st.integers(0, 2)) == 0:
            pc_max = 2**62 if extremes else 10**12
            mm_pc = draw(st.integers(1, pc_max))
            im_pc = draw(st.sampled_from([0, mm_pc, min(2 * mm_pc, ref.INT64_MAX)]))
            for tier in inst_tiers:
                tier.mm_per_contract, tier.im_per_contract = mm_pc, im_pc
        tiers.append(inst_tiers)
    balance_max = 2**62 if extremes else 10**15
    balances = [draw(st.integers(-(10**12), balance_max)) for _ in range(n_accounts)]
    if n_accounts and draw(st.booleans()):
        balances[0] = 0
    warning_rate = draw(st.integers(1, S))
    return {
        "balances": balances,
        "positions": positions,
        "mark_lot_value": mark_lot_value,
        "tick_value": tick_value,
        "tiers": tiers,
        "warning_rate": warning_rate,
    }


def run_sweep(book: dict, with_initial_margin: bool = True) -> tuple[np.ndarray, ...]:
    start, inst, qty, cost, lev = csr(book["positions"])
    return _native.sweep_accounts(
        start,
        np.array(book["balances"], dtype=np.int64),
        inst,
        qty,
        cost,
        lev,
        np.array(book["mark_lot_value"], dtype=np.int64),
        *flatten(book["tiers"]),
        book["warning_rate"],
        with_initial_margin,
        **per_contract(book["tiers"]),
    )


def check_sweep(book: dict) -> None:
    try:
        expected = ref.sweep(
            book["balances"],
            book["positions"],
            book["mark_lot_value"],
            book["tiers"],
            book["warning_rate"],
        )
    except ref.RefOverflow:
        with pytest.raises(_native.NativeOverflowError):
            run_sweep(book)
        return
    equity, mm, im, status = run_sweep(book)
    got = list(zip(equity.tolist(), mm.tolist(), im.tolist(), status.tolist(), strict=True))
    assert got == expected
    equity2, mm2, im2, status2 = run_sweep(book, with_initial_margin=False)
    assert im2 is None
    assert (equity2 == equity).all() and (mm2 == mm).all() and (status2 == status).all()


def check_prices(book: dict) -> None:
    try:
        ref.sweep(book["balances"], book["positions"], book["mark_lot_value"], book["tiers"], S)
    except ref.RefOverflow:
        return
    start, inst, qty, cost, _ = csr(book["positions"])
    tiers = flatten(book["tiers"])
    liq, bkr = _native.liquidation_prices(
        start,
        np.array(book["balances"], dtype=np.int64),
        inst,
        qty,
        cost,
        np.array(book["tick_value"], dtype=np.int64),
        np.array(book["mark_lot_value"], dtype=np.int64),
        *tiers[:4],
        tier_mm_per_contract=per_contract(book["tiers"])["tier_mm_per_contract"],
    )
    expected = ref.liquidation_prices(
        book["balances"],
        book["positions"],
        book["mark_lot_value"],
        book["tick_value"],
        book["tiers"],
    )
    flat = [pair for account in expected for pair in account]
    assert list(zip(liq.tolist(), bkr.tolist(), strict=True)) == flat


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_sweep_matches_reference(book: dict) -> None:
    check_sweep(book)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(extremes=True))
def test_sweep_matches_reference_near_int64_limits(book: dict) -> None:
    check_sweep(book)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_liquidation_prices_match_reference(book: dict) -> None:
    check_prices(book)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(extremes=True))
def test_liquidation_prices_match_reference_near_limits(book: dict) -> None:
    check_prices(book)


def _one_tier_book(balance: int, qty: int, cost: int, mark_lot_value: int, mmr: int) -> dict:
    return {
        "balances": [balance],
        "positions": [[ref.RefPosition(0, qty, cost, 10)]],
        "mark_lot_value": [mark_lot_value],
        "tick_value": [1],
        "tiers": [derive_tiers([], [mmr], [100])],
        "warning_rate": 80_000_000,
    }


def test_status_boundaries_are_exact() -> None:
    # One lot, tick value 1, mark 1000: notional 1000, mmr 1% -> MM = 10.
    # equity = balance + 1000 - cost; cost 1000 -> equity = balance.
    statuses = {}
    for balance in (-1, 0, 10, 11, 12, 13, 100):
        book = _one_tier_book(balance, 1, 1000, 1000, 1_000_000)
        statuses[balance] = int(run_sweep(book)[3][0])
        check_sweep(book)
    # -1 bankrupt; 0 and 10 liquidate (E <= MM); 11, 12 margin call (10 >= 0.8 E <=> E <= 12.5)
    assert statuses == {-1: 3, 0: 2, 10: 2, 11: 1, 12: 1, 13: 0, 100: 0}


def test_empty_book_and_accounts_without_positions() -> None:
    book = {
        "balances": [],
        "positions": [],
        "mark_lot_value": [5],
        "tick_value": [1],
        "tiers": [derive_tiers([], [0], [10])],
        "warning_rate": S,
    }
    equity, mm, im, status = run_sweep(book)
    assert len(equity) == len(status) == 0
    book["balances"], book["positions"] = [0, 7, -3], [[], [], []]
    equity, mm, im, status = run_sweep(book)
    assert equity.tolist() == [0, 7, -3] and status.tolist() == [0, 0, 3]


def test_zero_mark_price() -> None:
    # At a zero mark a long is worth nothing: equity = balance - cost.
    book = _one_tier_book(500, 2, 400, 0, 5_000_000)
    check_sweep(book)
    check_prices(book)
    equity, mm, _, status = run_sweep(book)
    assert equity[0] == 100 and mm[0] == 0 and status[0] == 0


def test_overflowing_notional_is_reported_with_its_account() -> None:
    book = _one_tier_book(0, 2**40, 0, 2**40, 0)
    book["balances"] = [0, 0]
    book["positions"] = [[], book["positions"][0]]
    with pytest.raises(_native.NativeOverflowError) as err:
        run_sweep(book)
    assert err.value.index == 1


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="acct_start"):
        _native.sweep_accounts(
            np.zeros(3, dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int32),
            np.zeros(1, dtype=np.int64),
            np.array([0, 1], dtype=np.int64),
            np.array([ref.INT64_MAX], dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            np.ones(1, dtype=np.int64),
            S,
        )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), st.data())
def test_row_subset_and_threads_match_the_full_sweep(book: dict, data: st.DataObject) -> None:
    try:
        full = run_sweep(book, with_initial_margin=False)
    except _native.NativeOverflowError:
        return
    start, inst, qty, cost, lev = csr(book["positions"])
    n = len(book["balances"])
    rows = np.array(data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=8)) if n else [])
    args = (
        start,
        np.array(book["balances"], dtype=np.int64),
        inst,
        qty,
        cost,
        lev,
        np.array(book["mark_lot_value"], dtype=np.int64),
        *flatten(book["tiers"]),
        book["warning_rate"],
    )
    kwargs = per_contract(book["tiers"])
    equity, mm, status = _native.sweep_account_rows(rows.astype(np.int64), *args, **kwargs)
    assert np.array_equal(equity, full[0][rows.astype(np.int64)])
    assert np.array_equal(mm, full[1][rows.astype(np.int64)])
    assert np.array_equal(status, full[3][rows.astype(np.int64)])
    threaded = _native.sweep_accounts(*args, False, 2, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(threaded[::3], full[::3], strict=True))


def test_threads_on_a_large_book_match_one_thread() -> None:
    from engine.stress.synthetic import synthetic_book

    book = synthetic_book(120_000, 360_000, 50, seed=5)  # above PARALLEL_ACCOUNTS_MIN
    one = book.sweep(threads=1)
    two = book.sweep(threads=2)
    for a, b in zip(
        (one.equity, one.maintenance_margin, one.initial_margin, one.status),
        (two.equity, two.maintenance_margin, two.initial_margin, two.status),
        strict=True,
    ):
        assert np.array_equal(a, b)


def test_margins_whose_sum_across_accounts_exceeds_int64() -> None:
    # Eight accounts, each one position of notional 2^62 at mmr 0.5: MM = 2^61 each, so the
    # running sum over the accounts passes int64 while every account's own figures fit.
    notional = 2**62
    book = {
        "balances": [2**62] * 8,
        "positions": [[ref.RefPosition(0, 1, notional, 10)] for _ in range(8)],
        "mark_lot_value": [notional],
        "tick_value": [1],
        "tiers": [derive_tiers([], [S // 2], [100])],
        "warning_rate": S // 2,
    }
    check_sweep(book)
    equity, mm, _, status = run_sweep(book, with_initial_margin=False)
    assert mm.tolist() == [2**61] * 8 and status.tolist() == [1] * 8


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_account_exposure_matches_reference(book: dict) -> None:
    start, inst, qty, _, _ = csr(book["positions"])
    gross, live = _native.account_exposure(
        start, inst, qty, np.array(book["mark_lot_value"], dtype=np.int64)
    )
    for a, account in enumerate(book["positions"]):
        exact = sum(abs(p.qty) * book["mark_lot_value"][p.instrument] for p in account)
        assert abs(gross[a] - exact) <= 1e-12 * exact
        assert live[a] == sum(1 for p in account if p.qty)


def test_tier_columns_of_unequal_length_are_rejected() -> None:
    book = _one_tier_book(100, 1, 1000, 1000, 1_000_000)
    start, inst, qty, cost, lev = csr(book["positions"])
    tier_start, bounds, mmr, cum, max_lev = flatten(book["tiers"])
    balance = np.array(book["balances"], dtype=np.int64)
    marks = np.array(book["mark_lot_value"], dtype=np.int64)
    short = max_lev[:0]
    with pytest.raises(ValueError, match="tier columns"):
        _native.sweep_accounts(
            start, balance, inst, qty, cost, lev, marks, tier_start, bounds, mmr, cum, short, S
        )
    with pytest.raises(ValueError, match="tier columns"):
        _native.position_margins(inst, qty, cost, lev, marks, tier_start, bounds, mmr, cum, short)
    with pytest.raises(ValueError, match="tier columns"):
        _native.liquidation_prices(
            start,
            balance,
            inst,
            qty,
            cost,
            np.ones(1, dtype=np.int64),
            marks,
            tier_start,
            bounds,
            mmr[:0],
            cum,
        )


def test_per_contract_margin_worked_example() -> None:
    # Crude oil at a CME-style fixed margin: 2 lots, maintenance 9,000 and initial 9,900 per
    # contract, no rate part. Tick value 1, mark 40,000 a lot (the notional plays no part).
    # MM = 2 x 9,000 = 18,000; IM = 2 x 9,900 = 19,800 whatever the leverage.
    book = _one_tier_book(18_000, 2, 80_000, 40_000, 0)
    book["tiers"][0][0].mm_per_contract = 9_000
    book["tiers"][0][0].im_per_contract = 9_900
    check_sweep(book)
    check_prices(book)
    equity, mm, im, status = run_sweep(book)
    # equity = 18,000 + 2 x 40,000 - 80,000 = 18,000 <= MM: liquidate
    assert (equity[0], mm[0], im[0], status[0]) == (18_000, 18_000, 19_800, 2)
    # The margin raised to 13,000 a contract: MM = 26,000; a balance of 32,500 then sits at
    # the warning level exactly (26,000 >= 0.8 x 32,500 = 26,000): a margin call.
    book["tiers"][0][0].mm_per_contract = 13_000
    book["balances"] = [32_500]
    equity, mm, im, status = run_sweep(book)
    assert (mm[0], status[0]) == (26_000, 1)
    # Liquidation price of the long (balance 32,500, cost 80,000): equity at lot value m is
    # 32,500 + 2m - 80,000 and MM stays 26,000: breach at 2m <= 73,500, m <= 36,750.
    liq, _ = _native.liquidation_prices(
        np.array([0, 1], dtype=np.int64),
        np.array([32_500], dtype=np.int64),
        np.array([0], dtype=np.int32),
        np.array([2], dtype=np.int64),
        np.array([80_000], dtype=np.int64),
        np.array([1], dtype=np.int64),
        np.array([40_000], dtype=np.int64),
        *flatten(book["tiers"])[:4],
        tier_mm_per_contract=np.array([13_000], dtype=np.int64),
    )
    assert liq.tolist() == [36_750]


def test_per_contract_margin_beyond_int64_is_an_overflow() -> None:
    # 4 lots x 2^62 per contract does not fit int64: the account is named.
    book = _one_tier_book(0, 4, 4, 1, 0)
    book["tiers"][0][0].mm_per_contract = 2**62
    book["balances"] = [0, 0]
    book["positions"] = [[], book["positions"][0]]
    with pytest.raises(_native.NativeOverflowError) as err:
        run_sweep(book, with_initial_margin=False)
    assert err.value.index == 1
