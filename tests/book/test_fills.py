"""The fill rule (engine.book.fills): one closing rule, and the identity every fill keeps."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book.fills import close_lots, close_lots_many, fill_position


def test_close_lots_worked_example() -> None:
    # Long 3 lots with cost 100 (entry 33.33...), close 1 at lot value 40:
    # closed cost = ceil(100 * 1 / 3) = 34, realized = 1 * 40 - 34 = 6, left (2, 66).
    assert close_lots(3, 100, 1, 40) == (2, 66, 6)
    # Short -3 with cost -100, close -1 at 30: closed cost = ceil(-100 * -1 / -3) = -33,
    # realized = -30 - (-33) = 3, left (-2, -67).
    assert close_lots(-3, -100, -1, 30) == (-2, -67, 3)
    # Closing all takes all the cost.
    assert close_lots(3, 100, 3, 40) == (0, 0, 20)


@settings(max_examples=300, deadline=None)
@given(
    qty=st.integers(-(10**6), 10**6).filter(bool),
    entry=st.integers(1, 10**9),
    fill=st.integers(-(10**6), 10**6).filter(bool),
    lot_value=st.integers(1, 10**9),
)
def test_fill_keeps_cost_minus_realized_equal_lots_times_value(
    qty: int, entry: int, fill: int, lot_value: int
) -> None:
    cost = qty * entry
    new_qty, new_cost, realized = fill_position(qty, cost, fill, lot_value)
    assert new_qty == qty + fill
    assert (new_cost - cost) - realized == fill * lot_value
    assert new_qty != 0 or new_cost == 0


def test_close_lots_many_equals_close_lots() -> None:
    qty = np.array([5, -7, 3, 10], dtype=np.int64)
    cost = np.array([501, -699, 299, 1003], dtype=np.int64)
    closed = np.array([5, -2, 1, 7], dtype=np.int64)
    lot_value = np.array([110, 95, 100, 101], dtype=np.int64)
    q, c, r = close_lots_many(qty, cost, closed, lot_value)
    for j in range(len(qty)):
        expected = close_lots(int(qty[j]), int(cost[j]), int(closed[j]), int(lot_value[j]))
        assert (int(q[j]), int(c[j]), int(r[j])) == expected
