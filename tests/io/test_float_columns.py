"""Float columns (pandas, Parquet doubles) on a decimal grid: taken as the grid value within
the stated tolerance, refused with the distance and the fix otherwise."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from engine.book.errors import Rejected
from engine.io.columns import (
    FLOAT_STEP_TOLERANCE,
    Column,
    Grid,
    decimal_column,
)

COLUMN = Column(Path("marks.parquet"), "mark_price")
TICK = Grid([Decimal("0.1")], ["BTCUSDT tick size"])


def _read(values: list[float | None], grid: Grid = TICK) -> list[int]:
    return decimal_column(pa.table({"mark_price": values}), COLUMN, grid).tolist()


def test_float_arithmetic_noise_is_rounded_to_the_grid() -> None:
    assert 0.1 + 0.2 != 0.3
    assert _read([0.1 + 0.2, 60700.1, 0.0, 0.1 + 0.2 - 0.3, -12.3]) == [3, 607001, 0, 0, -123]
    # Per-row grids (a tick size per symbol) snap each row to its own step.
    grid = Grid([Decimal("0.1"), Decimal("0.001")], ["a", "b"], np.array([0, 1, 1]))
    assert _read([0.1 + 0.2, 0.1 + 0.2, 1.001 * 3], grid) == [3, 300, 3003]


def test_a_float_off_the_grid_is_refused_with_the_fix() -> None:
    with pytest.raises(Rejected) as caught:
        _read([0.1 + 0.2, 0.35])
    message = str(caught.value)
    assert "row 2, column 'mark_price': 0.35 is not a multiple of the BTCUSDT tick size 0.1" in (
        message
    )
    assert "df['mark_price'].round(1)" in message and "text or decimal128" in message


def test_the_tolerance_is_what_it_says() -> None:
    step = 0.1
    inside = 1000.0 + step * FLOAT_STEP_TOLERANCE * 0.5
    # 1000.00005: within a thousandth of a step, but 5e-8 relative is over FLOAT_RELATIVE_TOLERANCE.
    with pytest.raises(Rejected, match="a float column"):
        _read([inside])
    # 1e9 + 1e-3 of a step off: relative 1e-13, and exactly the step bound: accepted.
    assert _read([1e9 + step * FLOAT_STEP_TOLERANCE * 0.9]) == [10_000_000_000]


def test_text_is_never_rounded() -> None:
    with pytest.raises(Rejected, match="0.30000000000000004 is not a multiple"):
        decimal_column(pa.table({"mark_price": ["0.30000000000000004"]}), COLUMN, TICK)
