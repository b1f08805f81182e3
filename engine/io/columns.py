"""Arrow columns to exact int64 columns: integers, decimals on a grid, symbols.

Decimal columns become integers on their grid without a per-row Python loop: the text is
cast to decimal128 at the finest scale of the grid, the unscaled 128-bit integers are read
from the array's buffer, must fit int64 at that scale, and must be multiples of the row's
step (a 0.5 tick at one decimal is a step of 5).

A float column (Parquet, or a pandas DataFrame) holds binary approximations: 0.1 + 0.2 is
0.30000000000000004. Each float within FLOAT_TOLERANCE of a grid value is taken as that
value: within FLOAT_RELATIVE_TOLERANCE (1e-9) of it relative to its size (at least one
step), and never more than FLOAT_STEP_TOLERANCE (a thousandth) of a step away, so the grid
value meant is never in doubt. Any other float is refused with the distance and the fix
(round the column to the grid, or write the decimals as text or decimal128). Exact text and
decimal columns are never rounded.

Every refusal is a Rejected whose message names the file, the 1-based data row (the header
is not counted) and the column (a `Column`); within a column it is the first bad row. Only
that error path looks at single rows in Python.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.book.errors import Rejected
from engine.book.fixed import decimals_of
from engine.book.instruments import InstrumentTable
from engine.book.limits import INT64_MIN
from engine.book.reasons import RejectReason

DECIMAL_PRECISION = 38  # digits of decimal128
# Text that reaches pyarrow's string -> decimal128 cast. That cast (pyarrow 26) does not
# check overflow when it rescales, and reads past its table of powers of ten for large
# exponents: '9' * 36 at 12 places and '1e-999' come back as wrong numbers, '1e-9999999'
# crashes the process. So only plain decimal text of at most 38 characters (38 digits fit
# 128 bits) with an exponent of at most two digits reaches it, and only when its magnitude,
# screened as a float, is zero or between half a unit and UNITS_SCREEN_MAX units: then every
# rescale is by at most 10**38 and every result fits, so the cast is exact.
_DECIMAL_SYNTAX = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?0*[0-9]{1,2})?$"
DECIMAL_TEXT_MAX = 38
UNITS_SCREEN_MAX = 1e20  # above INT64_MAX units with room for the float's error
# For explaining a refusal only.
_DECIMAL_TEXT = re.compile(_DECIMAL_SYNTAX)
_NUMBER_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INTEGER_TEXT = re.compile(r"-?[0-9]+")
FLOAT_RELATIVE_TOLERANCE = 1e-9
FLOAT_STEP_TOLERANCE = 1e-3
_NOT_FINITE = {"nan", "-nan", "+nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"}


@dataclass(frozen=True)
class Column:
    """Where a column came from, for messages."""

    path: Path
    name: str

    def reject(self, reason: RejectReason, index: int, problem: str) -> Rejected:
        return Rejected(reason, f"{self.path}: row {index + 1}, column {self.name!r}: {problem}")


@dataclass(frozen=True)
class Grid:
    """Steps of a decimal column: `steps[g]` for rows of group g (`group` per row or None)."""

    steps: Sequence[Decimal]
    labels: Sequence[str]  # what a step is, for messages: "BTCUSDT tick size"
    group: np.ndarray | None = None

    @property
    def decimals(self) -> int:
        return max(decimals_of(step) for step in self.steps)

    def step_units(self) -> np.ndarray:
        """Each group's step in units of 10**-decimals (exact: decimals covers every step)."""
        scale = Decimal(10) ** self.decimals
        return np.asarray([int(step * scale) for step in self.steps], dtype=np.int64)

    def group_of(self, index: int) -> int:
        return 0 if self.group is None else int(self.group[index])


def combined(table: pa.Table, name: str) -> pa.Array:
    """A column as one array, dictionary-decoded."""
    array = table.column(name).combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def first_row(mask: np.ndarray) -> int | None:
    """The first row where `mask` is set, or None."""
    bad = np.flatnonzero(mask)
    return int(bad[0]) if len(bad) else None


def _first_null(array: pa.Array) -> int:
    """Index of the first null, or len(array) when there is none."""
    if array.null_count == 0:
        return len(array)
    return int(np.argmax(array.is_null().to_numpy(zero_copy_only=False)))


def _casts(array: pa.Array, target: pa.DataType) -> bool:
    try:
        array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _first_cast_failure(array: pa.Array, target: pa.DataType) -> int:
    """The first row that does not cast, by bisection (the whole array is known to fail)."""
    lo, hi = 0, len(array)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _casts(array.slice(lo, mid - lo), target):
            lo = mid
        else:
            hi = mid
    return lo


def _text_at(array: pa.Array, index: int) -> str:
    value = array.slice(index, 1).cast(pa.string())[0].as_py()
    return "" if value is None else str(value)


def as_text(array: pa.Array, column: Column, expected: str) -> pa.Array:
    """Strings with surrounding blanks removed; floats at their shortest round-trip text."""
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pc.utf8_trim_whitespace(array)
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        return array.cast(pa.string())
    raise Rejected(
        RejectReason.INVALID_TYPE, f"{column.path}: column {column.name!r}: expected {expected}"
    )


def int_column(table: pa.Table, column: Column, *, missing: int | None = None) -> np.ndarray:
    """An int64 column; integer text or integer types only. Nulls become `missing` if given."""
    array = combined(table, column.name)
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        array = pc.utf8_trim_whitespace(array)
    elif not pa.types.is_integer(kind):
        raise Rejected(
            RejectReason.INVALID_TYPE,
            f"{column.path}: column {column.name!r}: expected integers, got {kind}",
        )
    if missing is not None and array.null_count:
        fill = missing if pa.types.is_integer(kind) else str(missing)
        array = array.fill_null(pa.scalar(fill, type=array.type))
    end = _first_null(array)
    head = array.slice(0, end)
    try:
        values = head.cast(pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        failed = _first_cast_failure(head, pa.int64())
        text = _text_at(head, failed)
        problem = (
            "is out of the int64 range" if _INTEGER_TEXT.fullmatch(text) else "is not an integer"
        )
        raise column.reject(RejectReason.INVALID_VALUE, failed, f"{text!r} {problem}") from None
    if end < len(array):
        raise column.reject(RejectReason.MISSING_VALUE, end, "missing value")
    return np.asarray(values, dtype=np.int64)


def snap_floats(array: pa.Array, grid: Grid) -> pa.Array:
    """A float column as text, each value within the float tolerance of a grid value
    replaced by that value's exact text (`units`e-`decimals`); others keep their shortest
    round-trip text, which the grid check then refuses (explained by `_explain`)."""
    text = array.cast(pa.string())
    values = array.cast(pa.float64()).to_numpy(zero_copy_only=False)
    step_units = grid.step_units()
    per_row = step_units[0] if grid.group is None else step_units[grid.group[: len(values)]]
    scale = 10.0**grid.decimals
    with np.errstate(invalid="ignore", over="ignore"):
        step = per_row / scale
        steps = np.rint(values / step)
        nearest = steps * step
        tolerance = np.minimum(
            FLOAT_RELATIVE_TOLERANCE * np.maximum(np.abs(nearest), step),
            FLOAT_STEP_TOLERANCE * step,
        )
        units = steps * per_row
        snap = (
            np.isfinite(values)
            & (np.abs(values - nearest) <= tolerance)
            & (np.abs(units) < 2.0**62)
        )
    if not snap.any():
        return text
    exact = np.where(snap, units, 0).astype(np.int64)
    snapped = pc.binary_join_element_wise(
        pa.array(exact).cast(pa.string()), f"e-{grid.decimals}", ""
    )
    mask = pa.array(snap) if array.null_count == 0 else pc.and_(pa.array(snap), array.is_valid())
    return pc.if_else(mask, snapped, text)


def decimal_column(table: pa.Table, column: Column, grid: Grid) -> np.ndarray:
    """Exact integers (multiples of the row's step) of a decimal column, vectorized.

    A null or a value that does not parse ends the checked prefix; the rows before it are
    still checked for range and grid, so the refusal names the first bad row either way.
    """
    raw = combined(table, column.name)
    from_float = pa.types.is_floating(raw.type)
    array = snap_floats(raw, grid) if from_float else as_text(raw, column, "decimal numbers")
    end = _first_null(array)
    refusal = (
        column.reject(RejectReason.MISSING_VALUE, end, "missing value")
        if end < len(array)
        else None
    )
    head = array.slice(0, end)
    number = pc.and_(
        pc.match_substring_regex(head, _DECIMAL_SYNTAX),
        pc.less_equal(pc.utf8_length(head), DECIMAL_TEXT_MAX),
    )
    approx = pc.if_else(number, head, "0").cast(pa.float64()).to_numpy(zero_copy_only=False)
    magnitude = np.abs(approx) * 10.0**grid.decimals
    screened = number.to_numpy(zero_copy_only=False) & (
        (approx == 0) | ((magnitude >= 0.5) & (magnitude < UNITS_SCREEN_MAX))
    )
    row = first_row(~screened)
    if row is not None:
        end = row
        refusal = _explain(column, grid, end, _text_at(head, end), from_float)
        head = head.slice(0, end)
    zero = approx[:end] == 0
    if zero.any():
        # A zero with an exponent ('0e-99') is rescaled by pyarrow like any other value.
        head = pc.if_else(pa.array(zero), "0", head)
    target = pa.decimal128(DECIMAL_PRECISION, grid.decimals)
    try:
        exact = head.cast(target)
    except pa.ArrowInvalid:
        # Only "would lose data" is left: more decimal places than the grid has.
        end = _first_cast_failure(head, target)
        refusal = _explain(column, grid, end, _text_at(head, end), from_float)
        head = head.slice(0, end)
        exact = head.cast(target)
    words = np.frombuffer(exact.buffers()[1], dtype=np.int64)
    words = words[2 * exact.offset : 2 * (exact.offset + len(exact))]
    low, high = words[0::2], words[1::2]
    # The value fits int64 iff the high word is the sign extension of the low one. INT64_MIN
    # is refused too, so that negating any value read here is safe.
    bad = (high != (low >> 63)) | (low == INT64_MIN)
    step = grid.step_units()
    step_per_row = step[0] if grid.group is None else step[grid.group[:end]]
    bad |= low % step_per_row != 0
    row = first_row(bad)
    if row is not None:
        raise _explain(column, grid, row, _text_at(head, row), from_float)
    if refusal is not None:
        raise refusal
    return low // step_per_row


def _explain(column: Column, grid: Grid, row: int, text: str, from_float: bool = False) -> Rejected:
    """Why one value is refused (error path only)."""
    if text.lower() in _NOT_FINITE:
        return column.reject(RejectReason.INVALID_VALUE, row, f"{text!r} is not finite")
    if not _NUMBER_TEXT.fullmatch(text):
        return column.reject(RejectReason.INVALID_VALUE, row, f"{text!r} is not a decimal number")
    if len(text) > DECIMAL_TEXT_MAX:
        return column.reject(
            RejectReason.INVALID_VALUE,
            row,
            f"{text!r} is longer than {DECIMAL_TEXT_MAX} characters",
        )
    if not _DECIMAL_TEXT.fullmatch(text):
        return column.reject(
            RejectReason.OUT_OF_RANGE, row, f"{text!r} has an exponent out of range"
        )
    value = Decimal(text)
    g = grid.group_of(row)
    units = Fraction(value) / Fraction(grid.steps[g])
    if units.denominator != 1:
        problem = f"{text} is not a multiple of the {grid.labels[g]} {grid.steps[g]}"
        if from_float:
            places = decimals_of(grid.steps[g])
            nearest = round(units) * grid.steps[g]
            off = abs(units - round(units))
            problem += (
                f" (a float column: {float(off):.3g} of a step from {nearest:.{places}f};"
                " floats are rounded to the grid only within"
                f" {FLOAT_RELATIVE_TOLERANCE:g} relative and {FLOAT_STEP_TOLERANCE:g} of a step."
                f" Round the column to {places} places, e.g."
                f" df[{column.name!r}].round({places}), if that is what it"
                " means, or write it as text or decimal128)"
            )
        return column.reject(RejectReason.OFF_GRID, row, problem)
    return column.reject(RejectReason.OUT_OF_RANGE, row, f"{text} is out of range")


def symbol_column(table: pa.Table, column: Column, instruments: InstrumentTable) -> np.ndarray:
    """Instrument index (int32) of each row's symbol."""
    array = combined(table, column.name)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        raise Rejected(
            RejectReason.INVALID_TYPE,
            f"{column.path}: column {column.name!r}: expected symbols (text)",
        )
    array = pc.utf8_trim_whitespace(array)
    row = _first_null(array)
    if row < len(array):
        raise column.reject(RejectReason.MISSING_VALUE, row, "missing value")
    symbols = pa.array([inst.symbol for inst in instruments.instruments], type=array.type)
    index = pc.index_in(array, value_set=symbols)
    row = _first_null(index)
    if row < len(index):
        raise column.reject(
            RejectReason.UNKNOWN_SYMBOL, row, f"unknown symbol {array[row].as_py()!r}"
        )
    return np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int32)


def first_repeat(keys: np.ndarray) -> tuple[int, int] | None:
    """(earlier, later) rows of the first row whose key repeats an earlier row's key."""
    if len(keys) < 2:
        return None
    ordered = np.sort(keys)
    if not (ordered[1:] == ordered[:-1]).any():
        return None
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    later = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
    # Stable order: the smallest later row in a run of equal keys follows the run's first row.
    i = later[np.argmin(order[later])]
    first_of_run = int(np.searchsorted(ordered, ordered[i]))
    return int(order[first_of_run]), int(order[i])
