"""The ADL ranking and largest-remainder allocation kernels against their Python references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _native
from tests.waterfall import waterfall_reference as ref

pytestmark = pytest.mark.kernel

i64 = st.integers(-(2**62), 2**62)
pos64 = st.integers(0, 2**62)


def _arr(values: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


@settings(max_examples=200, deadline=None)
@given(
    policy=st.sampled_from([ref.PNL_LEVERAGE, ref.HYPERLIQUID]),
    rows=st.lists(st.tuples(i64, pos64, pos64, i64), max_size=20),
)
def test_adl_scores_match_reference(policy: int, rows: list[tuple[int, int, int, int]]) -> None:
    cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[], [], [], []]
    got = _native.adl_scores(policy, *(_arr(c) for c in cols))
    assert got.tolist() == ref.adl_scores(policy, *cols)


def test_adl_score_worked_example() -> None:
    # profit 100 on cost 1000 (10%), notional 1100 over equity 500 (2.2x): 0.1 * 2.2 = 0.22;
    # loss 50 on 1000 (-5%) at 950 / 500 = 1.9x: -0.05 / 1.9 = -0.026315789.. -> floor
    score = _native.adl_scores(
        ref.PNL_LEVERAGE, _arr([100, -50]), _arr([1000, 1000]), _arr([1100, 950]), _arr([500, 500])
    )
    assert score.tolist() == [22_000_000, -2_631_579]
    with pytest.raises(ValueError, match="unknown ADL policy"):
        _native.adl_scores(7, _arr([1]), _arr([1]), _arr([1]), _arr([1]))


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    n_groups=st.integers(0, 4),
    k=st.integers(1, 6),
)
def test_adl_top_k_matches_reference(data: st.DataObject, n_groups: int, k: int) -> None:
    n = data.draw(st.integers(0, 30)) if n_groups else 0
    group = data.draw(st.lists(st.integers(0, max(n_groups - 1, 0)), min_size=n, max_size=n))
    # few distinct scores so ties are common; distinct ids as in a book
    score = data.draw(st.lists(st.integers(-2, 2), min_size=n, max_size=n))
    ids = data.draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n, unique=True))
    top, count = _native.adl_top_k(_arr(group), _arr(score), _arr(ids), n_groups, k)
    expected = ref.adl_top_k(group, score, ids, n_groups, k)
    assert [top[g, : count[g]].tolist() for g in range(n_groups)] == expected


def test_adl_top_k_ties_and_empty_side() -> None:
    # group 0: scores 5, 7, 7 -> the two 7s first, account 0 before account 2; group 1 empty
    top, count = _native.adl_top_k(_arr([0, 0, 0]), _arr([5, 7, 7]), _arr([1, 2, 0]), 2, 2)
    assert count.tolist() == [2, 0]
    assert top[0].tolist() == [2, 1]
    with pytest.raises(ValueError, match="group out of range"):
        _native.adl_top_k(_arr([3]), _arr([1]), _arr([1]), 2, 1)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    big=st.booleans(),
)
def test_allocation_matches_reference(data: st.DataObject, big: bool) -> None:
    cap = 2**58 if big else 10
    weight = data.draw(st.lists(st.integers(0, cap), max_size=12))
    ids = data.draw(
        st.lists(st.integers(0, 100), min_size=len(weight), max_size=len(weight), unique=True)
    )
    total = data.draw(st.integers(0, 2 * sum(weight) + 5))
    part, allocated = _native.allocate_largest_remainder(_arr(weight), _arr(ids), total)
    exp_part, exp_allocated = ref.allocate_largest_remainder(weight, ids, total)
    assert part.tolist() == exp_part
    assert allocated == exp_allocated == min(total, sum(weight))
    assert sum(part.tolist()) == allocated
    assert all(0 <= p <= w for p, w in zip(part.tolist(), weight, strict=True))


def test_allocation_worked_examples() -> None:
    # 4 over weights 2, 2, 2: floor(4 * 2 / 6) = 1 each, 1 left; remainders all 8 mod 6 = 2,
    # so the tie goes to the lowest account id (3 < 5 < 9)
    part, allocated = _native.allocate_largest_remainder(_arr([2, 2, 2]), _arr([9, 3, 5]), 4)
    assert (part.tolist(), allocated) == ([1, 2, 1], 4)
    # loss larger than all profit: every weight is taken in full, 100 - 30 stays unallocated
    part, allocated = _native.allocate_largest_remainder(_arr([10, 20]), _arr([1, 2]), 100)
    assert (part.tolist(), allocated) == ([10, 20], 30)
    # no one to allocate to
    part, allocated = _native.allocate_largest_remainder(_arr([]), _arr([]), 5)
    assert (part.tolist(), allocated) == ([], 0)
    with pytest.raises(ValueError):
        _native.allocate_largest_remainder(_arr([-1]), _arr([1]), 5)
    with pytest.raises(ValueError):
        _native.allocate_largest_remainder(_arr([2**62, 2**62]), _arr([1, 2]), 5)
