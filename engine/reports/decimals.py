"""Output columns in one convention, so a quant opens any file in polars or duckdb as is.

- Money: Arrow decimal128(19, money_decimals), exact (every int64 of units fits 19 digits).
- Prices and quantities: decimal128 in their units (not ticks and lots). A column that mixes
  instruments takes the largest scale among them (BTC at 0.1 and an alt at 0.00001 share
  scale 5); the value is exact at that scale. Raw integer columns may stay beside them,
  named for their unit (`qty_lots`, `price_ticks`).
- Times: timestamp[us, UTC].
- Symbols and kinds: strings.

Every builder works on whole numpy columns: no float and no per-row Python loop.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from engine.book.instruments import InstrumentTable
from engine.book.limits import INT64_MAX

DECIMAL_PRECISION = 19  # decimal digits: every int64 fits
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def decimal_array(units: np.ndarray, scale: int, valid: np.ndarray | None = None) -> pa.Array:
    """int64 `units` of 10**-scale as decimal128(19, scale); null where not `valid`."""
    assert sys.byteorder == "little", "decimal128 words are written little-endian"
    units = np.ascontiguousarray(units, dtype=np.int64)
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = units >> 63  # the high word sign-extends the low one
    bitmap = None
    null_count = 0
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid.astype(bool), bitorder="little"))
        null_count = int(len(valid) - np.count_nonzero(valid))
    return pa.Array.from_buffers(
        pa.decimal128(DECIMAL_PRECISION, scale),
        len(units),
        [bitmap, pa.py_buffer(words)],
        null_count=null_count,
    )


def money_array(units: np.ndarray, decimals: int) -> pa.Array:
    """Raw int64 money units as a decimal128 column at the money scale."""
    return decimal_array(units, decimals)


def grid_scale(instruments: InstrumentTable, *, tick: bool) -> tuple[np.ndarray, int]:
    """(units of 10**-scale in one tick (or lot) per instrument, scale): the scale is the
    largest number of places among the instruments' tick (lot) sizes."""
    steps = [i.tick_size if tick else i.lot_size for i in instruments.instruments]
    places = [i.price_decimals if tick else i.qty_decimals for i in instruments.instruments]
    scale = max(places, default=0)
    per_step = np.asarray([int(s.scaleb(scale)) for s in steps], dtype=np.int64)
    return per_step, scale


def grid_array(
    steps: np.ndarray,
    instrument: np.ndarray,
    instruments: InstrumentTable,
    *,
    tick: bool,
    valid: np.ndarray | None = None,
) -> pa.Array:
    """Integer ticks (tick=True) or lots of `instrument` as prices (quantities) in their
    units, decimal128 at the column's scale (grid_scale); null where not `valid` or where
    the value does not fit int64 at that scale."""
    per_step, scale = grid_scale(instruments, tick=tick)
    steps = np.asarray(steps, dtype=np.int64)
    instrument = np.asarray(instrument)
    if len(per_step) == 0:
        return decimal_array(np.zeros(len(steps), dtype=np.int64), scale, valid)
    size = per_step[np.where(instrument >= 0, instrument, 0)]
    fits = np.abs(steps) <= INT64_MAX // size
    ok = fits if valid is None else fits & valid
    return decimal_array(np.where(ok, steps, 0) * size, scale, ok)


def utc_times(start: datetime, t_s: np.ndarray) -> pa.Array:
    """`start` + `t_s` seconds as timestamp[us, UTC] (`start` is timezone-aware)."""
    assert start.tzinfo is not None, "a start time carries its zone"
    start_us = (start - EPOCH) // timedelta(microseconds=1)
    micros = start_us + np.asarray(t_s, dtype=np.int64) * 1_000_000
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"))
