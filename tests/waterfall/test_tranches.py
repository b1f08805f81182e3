"""Tranches: the deficit split over a defaulter's positions, and the value of tranche lots."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.waterfall.tranches import TrancheLine, deficit_shares


def test_deficit_split_by_notional_with_ties_to_the_lower_instrument() -> None:
    # Defaulter 0: 10 units over three equal notionals: 3 each, remainders equal, the unit
    # left to the lowest instrument index (2 before 5 and 7, whatever the row order).
    # Defaulter 1: one position takes its whole 7.
    # Defaulter 2: 100 over notionals 1 and 2: 33.33 and 66.67: 33 and 67 (larger remainder).
    group = np.array([0, 0, 0, 1, 2, 2])
    instrument = np.array([7, 2, 5, 0, 0, 1])
    weight = np.array([5, 5, 5, 9, 1, 2])
    total = np.array([10, 7, 100])
    assert deficit_shares(group, instrument, weight, total).tolist() == [3, 4, 3, 7, 33, 67]


@settings(max_examples=200, deadline=None)
@given(
    tranches=st.lists(
        st.tuples(st.integers(1, 50), st.integers(1, 10**15)), min_size=1, max_size=5
    ),
    data=st.data(),
)
def test_tranche_line_equals_a_scan(tranches: list[tuple[int, int]], data: st.DataObject) -> None:
    # C(x) = sum over tranches of floor(A y / L), y the tranche's lots among the first x;
    # least_lots(t) is the least x with C(x) >= t.
    line = TrancheLine([n for n, _ in tranches], [a for _, a in tranches])

    def c(x: int) -> int:
        total = 0
        for n, a in tranches:
            total += a * min(max(x, 0), n) // n
            x -= n
        return total

    values = [c(x) for x in range(line.total_lots + 1)]
    assert [line.value_at(x) for x in range(line.total_lots + 1)] == values
    target = data.draw(st.integers(0, values[-1] + 1))
    want = next((x for x, v in enumerate(values) if v >= target), None)
    assert line.least_lots(target) == want
