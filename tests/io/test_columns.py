"""engine.io.columns: exact integer, decimal and symbol columns, every refusal located."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from engine.book.errors import Rejected
from engine.io.columns import Column, Grid, decimal_column


def _random_decimal_texts(rng: np.random.Generator, n: int) -> list[str]:
    texts = []
    for _ in range(n):
        whole = "".join(rng.choice(list("0123456789"), rng.integers(0, 24)))
        frac = "".join(rng.choice(list("0123456789"), rng.integers(0, 16)))
        text = rng.choice(["", "-", "+"]) + whole + ("." + frac if frac or not whole else "")
        if text.strip("+-.") == "":
            text += "0"
        if rng.random() < 0.3:
            text += rng.choice(["e", "E"]) + str(int(rng.integers(-45, 45)))
        texts.append(str(text))
    return texts


def test_decimal_column_agrees_with_python_decimal() -> None:
    # pyarrow's own string -> decimal cast is wrong on overflow and large exponents; the
    # screening in front of it must leave only what it gets exactly right.
    rng = np.random.default_rng(11)
    grid = Grid([Decimal("0.05")], ["tick size"])  # 2 places, step 5
    column = Column(Path("fuzz.csv"), "x")
    texts = _random_decimal_texts(rng, 4000) + ["9" * 36, "1e-99", "0e-99", "5e-2"]
    expected: dict[str, int | None] = {}
    for text in texts:
        steps = Fraction(Decimal(text)) / Fraction(grid.steps[0])
        units = steps * 5
        fits = -(2**63) < units < 2**63 and len(text) <= 38
        expected[text] = int(steps) if steps.denominator == 1 and fits else None
    good = [t for t in texts if expected[t] is not None]
    assert len(good) > 200
    got = decimal_column(pa.table({"x": good}), column, grid)
    assert got.tolist() == [expected[t] for t in good]
    for text in [t for t in texts if expected[t] is None][:400]:
        with pytest.raises(Rejected):
            decimal_column(pa.table({"x": [text]}), column, grid)
