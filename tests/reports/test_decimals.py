"""The output convention read back: decimal128 columns equal the exact values through
pyarrow, polars and duckdb; grid columns mix instruments at the largest scale; UTC times."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from engine.book.instruments import InstrumentTable
from engine.reports.decimals import decimal_array, grid_array, money_array, utc_times

EDGES = np.array(
    [0, 1, -1, 10**8, -(10**8), 123_456_789_012, 2**63 - 1, -(2**63) + 1, -(2**63)],
    dtype=np.int64,
)


def _exact(units: np.ndarray, scale: int) -> list[Decimal]:
    return [Decimal(int(u)).scaleb(-scale) for u in units]


def test_decimal128_round_trips_through_pyarrow_polars_and_duckdb(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    units = np.concatenate([EDGES, rng.integers(-(2**62), 2**62, 500)])
    valid = np.ones(len(units), dtype=bool)
    valid[[3, 100, 200]] = False
    table = pa.table(
        {
            "i": pa.array(np.arange(len(units))),
            "money": money_array(units, 8),
            "price": decimal_array(units, 5, valid),
            "whole": decimal_array(units, 0),
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    expected = {
        "money": _exact(units, 8),
        "price": [d if ok else None for d, ok in zip(_exact(units, 5), valid, strict=True)],
        "whole": _exact(units, 0),
    }
    back = pq.read_table(path)
    assert back.schema.field("money").type == pa.decimal128(19, 8)
    frame = pl.read_parquet(path)
    assert frame.schema["money"] == pl.Decimal(19, 8)
    rows = duckdb.sql(f"SELECT money, price, whole FROM '{path}' ORDER BY i").fetchall()
    for name, values in expected.items():
        assert back[name].to_pylist() == values, name
        assert frame[name].to_list() == values, name
        assert [row[list(expected).index(name)] for row in rows] == values, name
    # The exact text keeps the column's scale.
    assert str(back["money"][0].as_py()) == "0E-8" and format(back["money"][3].as_py(), "f") == (
        "1.00000000"
    )
    # Arithmetic in duckdb stays exact: 1e-8 + 1 is 1.00000001.
    total = duckdb.sql(f"SELECT sum(money) FROM '{path}' WHERE i IN (1, 3)").fetchall()
    assert total == [(Decimal("1.00000001"),)]


def test_grid_columns_take_the_largest_scale_and_stay_exact() -> None:
    instruments = InstrumentTable.from_dict(
        {
            "instruments": [
                {
                    "symbol": "BTCUSDT",
                    "tick_size": "0.1",
                    "lot_size": "0.001",
                    "tiers": [{"max_notional": None, "mmr": "0.01", "max_leverage": 10}],
                },
                {
                    "symbol": "ALTUSDT",
                    "tick_size": "0.00001",
                    "lot_size": "1",
                    "tiers": [{"max_notional": None, "mmr": "0.01", "max_leverage": 10}],
                },
            ]
        }
    )
    ticks = np.array([1_220_000, 250_000, 2**62, 7], dtype=np.int64)
    inst = np.array([0, 1, 0, 1])
    prices = grid_array(ticks, inst, instruments, tick=True, valid=np.array([1, 1, 1, 0], bool))
    assert prices.type == pa.decimal128(19, 5)
    # 2**62 ticks of 0.1 do not fit int64 at 5 places: null, as an invalid row is.
    assert prices.to_pylist() == [Decimal("122000.0"), Decimal("2.5"), None, None]
    lots = grid_array(np.array([1500, -3]), np.array([0, 1]), instruments, tick=False)
    assert lots.type == pa.decimal128(19, 3) and lots.to_pylist() == [Decimal("1.5"), Decimal(-3)]


def test_utc_times() -> None:
    start = datetime(2025, 10, 10, 12, tzinfo=UTC)
    times = utc_times(start, np.array([0, 90, 86_400]))
    assert times.type == pa.timestamp("us", tz="UTC")
    assert [t.isoformat() for t in times.to_pylist()] == [
        "2025-10-10T12:00:00+00:00",
        "2025-10-10T12:01:30+00:00",
        "2025-10-11T12:00:00+00:00",
    ]
