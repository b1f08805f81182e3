"""CSV and Parquet input tables, checked and converted to the book's fixed-point columns.

This is the ingest boundary for files: nothing downstream sees a float or an unchecked id.
A file is read by its suffix (.csv, .parquet or .pq). CSV columns are read as text so a
decimal stays exactly what was written; a float column (Parquet) is taken at its shortest
round-trip decimal form (pyarrow's float64 -> string cast), then parsed like text.

Decimal columns become integers on their grid without a per-row Python loop: the text is
cast to decimal128 at the finest scale of the grid, the unscaled 128-bit integers are read
from the array's buffer, must fit int64 at that scale, and must be multiples of the row's
step (a 0.5 tick at one decimal is a step of 5). Prices are in ticks of the row's
instrument, quantities in its lots, balances in money units. Entry prices, like marks, must
lie on the tick grid; a position's cost basis is qty * entry * tick_value money units.

Every refusal is a Rejected whose message names the file, the 1-based data row (the header
is not counted) and the column; within a column it is the first bad row. Only that error
path looks at single rows in Python.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from engine.book.errors import Rejected
from engine.book.fixed import decimals_of
from engine.book.instruments import InstrumentTable
from engine.book.limits import (
    DEFAULT_LEVERAGE,
    INT64_MAX,
    INT64_MIN,
    LEVERAGE_MAX,
    POSITION_TICK_VALUE_MAX,
    RESERVED_ACCOUNT_BASE,
    VALUE_MAX,
)
from engine.book.reasons import RejectReason

ACCOUNT_COLUMNS = ("account_id", "balance")
POSITION_COLUMNS = ("account_id", "symbol", "qty", "entry_price")
POSITION_OPTIONAL_COLUMNS = ("leverage",)
MARK_COLUMNS = ("symbol", "mark_price")
DECIMAL_PRECISION = 38  # digits of decimal128
# Account ids below DENSE_IDS_FACTOR x count + DENSE_IDS_SLACK are looked up in a table.
DENSE_IDS_FACTOR = 4
DENSE_IDS_SLACK = 1024
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

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
_NOT_FINITE = {"nan", "-nan", "+nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"}


@dataclass(frozen=True)
class Accounts:
    path: Path
    account_id: np.ndarray  # int64, distinct, >= 0
    balance: np.ndarray  # int64 money units


@dataclass(frozen=True)
class Positions:
    path: Path
    account_id: np.ndarray  # int64
    instrument: np.ndarray  # int32 index into the InstrumentTable
    qty: np.ndarray  # int64 lots, signed, never 0
    entry_price: np.ndarray  # int64 ticks, > 0
    cost: np.ndarray  # int64 money units: qty * entry_price * tick_value
    leverage: np.ndarray  # int32


@dataclass(frozen=True)
class Marks:
    path: Path
    instrument: np.ndarray  # int32, distinct
    price: np.ndarray  # int64 ticks, >= 0


@dataclass(frozen=True)
class BookInputs:
    """The three input files, each valid alone and consistent with the others."""

    accounts: Accounts
    positions: Positions
    marks: Marks


@dataclass(frozen=True)
class _Column:
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


# ----- reading ---------------------------------------------------------------------------
def read_table(path: str | Path, required: Sequence[str], optional: Sequence[str] = ()) -> pa.Table:
    """The required and present optional columns of a CSV or Parquet file.

    CSV columns are strings (an empty field is null), so no value passes through a float.
    """
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise Rejected(
            RejectReason.INVALID_FILE,
            f"{path}: unknown file type (expected {', '.join(sorted(SUFFIXES))})",
        )
    if not path.is_file():
        raise Rejected(RejectReason.MISSING_FILE, f"{path}: no such file")
    wanted = [*required, *optional]
    try:
        if kind == "csv":
            options = pcsv.ConvertOptions(
                column_types=dict.fromkeys(wanted, pa.string()),
                strings_can_be_null=True,
                null_values=[""],
            )
            table = pcsv.read_csv(path, convert_options=options)
        else:
            names = pq.read_schema(path).names
            table = pq.read_table(path, columns=[n for n in wanted if n in names])
    except (pa.ArrowInvalid, OSError) as exc:
        raise Rejected(RejectReason.INVALID_FILE, f"{path}: cannot read as {kind}: {exc}") from None
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise Rejected(
            RejectReason.MISSING_COLUMN,
            f"{path}: missing column {missing[0]!r} (needs {', '.join(required)})",
        )
    return table.select([n for n in wanted if n in table.column_names])


def _combined(table: pa.Table, name: str) -> pa.Array:
    array = table.column(name).combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def _first(mask: np.ndarray) -> int | None:
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


def _as_text(array: pa.Array, column: _Column, expected: str) -> pa.Array:
    """Strings with surrounding blanks removed; floats at their shortest round-trip text."""
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pc.utf8_trim_whitespace(array)
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        return array.cast(pa.string())
    raise Rejected(
        RejectReason.INVALID_TYPE, f"{column.path}: column {column.name!r}: expected {expected}"
    )


def int_column(table: pa.Table, column: _Column, *, missing: int | None = None) -> np.ndarray:
    """An int64 column; integer text or integer types only. Nulls become `missing` if given."""
    array = _combined(table, column.name)
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


def decimal_column(table: pa.Table, column: _Column, grid: Grid) -> np.ndarray:
    """Exact integers (multiples of the row's step) of a decimal column, vectorized.

    A null or a value that does not parse ends the checked prefix; the rows before it are
    still checked for range and grid, so the refusal names the first bad row either way.
    """
    array = _as_text(_combined(table, column.name), column, "decimal numbers")
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
    row = _first(~screened)
    if row is not None:
        end = row
        refusal = _explain(column, grid, end, _text_at(head, end))
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
        refusal = _explain(column, grid, end, _text_at(head, end))
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
    row = _first(bad)
    if row is not None:
        raise _explain(column, grid, row, _text_at(head, row))
    if refusal is not None:
        raise refusal
    return low // step_per_row


def _explain(column: _Column, grid: Grid, row: int, text: str) -> Rejected:
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
        return column.reject(
            RejectReason.OFF_GRID,
            row,
            f"{text} is not a multiple of the {grid.labels[g]} {grid.steps[g]}",
        )
    return column.reject(RejectReason.OUT_OF_RANGE, row, f"{text} is out of range")


def symbol_column(table: pa.Table, column: _Column, instruments: InstrumentTable) -> np.ndarray:
    """Instrument index (int32) of each row's symbol."""
    array = _combined(table, column.name)
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


def _price_grid(instruments: InstrumentTable, group: np.ndarray) -> Grid:
    insts = instruments.instruments
    return Grid([i.tick_size for i in insts], [f"{i.symbol} tick size" for i in insts], group)


def _first_repeat(keys: np.ndarray) -> tuple[int, int] | None:
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


def read_accounts(path: str | Path, instruments: InstrumentTable) -> Accounts:
    path = Path(path)
    table = read_table(path, ACCOUNT_COLUMNS)
    ids = int_column(table, _Column(path, "account_id"))
    row = _first(ids < 0)
    if row is not None:
        raise _Column(path, "account_id").reject(
            RejectReason.INVALID_ACCOUNT, row, f"account ids must be >= 0, got {ids[row]}"
        )
    row = _first(ids >= RESERVED_ACCOUNT_BASE)
    if row is not None:
        raise _Column(path, "account_id").reject(
            RejectReason.INVALID_ACCOUNT,
            row,
            f"account ids from {RESERVED_ACCOUNT_BASE} up are reserved for the house,"
            f" got {ids[row]}",
        )
    repeat = _first_repeat(ids)
    if repeat is not None:
        earlier, later = repeat
        raise _Column(path, "account_id").reject(
            RejectReason.DUPLICATE_ACCOUNT, later, f"account {ids[later]} repeats row {earlier + 1}"
        )
    money = Grid([instruments.money_step], ["money unit"])
    balance = decimal_column(table, _Column(path, "balance"), money)
    return Accounts(path, ids, balance)


def read_positions(
    path: str | Path, instruments: InstrumentTable, default_leverage: int = DEFAULT_LEVERAGE
) -> Positions:
    path = Path(path)
    table = read_table(path, POSITION_COLUMNS, POSITION_OPTIONAL_COLUMNS)
    ids = int_column(table, _Column(path, "account_id"))
    inst = symbol_column(table, _Column(path, "symbol"), instruments)
    insts = instruments.instruments
    lots = Grid([i.lot_size for i in insts], [f"{i.symbol} lot size" for i in insts], inst)
    qty_col = _Column(path, "qty")
    qty = decimal_column(table, qty_col, lots)
    row = _first(qty == 0)
    if row is not None:
        raise qty_col.reject(RejectReason.INVALID_QTY, row, "qty must not be zero")
    tick_value = instruments.tick_value[inst]
    # Both bounds are the book's: the value of one tick stays below 2**62, and so does cost.
    row = _first(np.abs(qty) > POSITION_TICK_VALUE_MAX // tick_value)
    if row is not None:
        raise qty_col.reject(RejectReason.OUT_OF_RANGE, row, "position too large")
    entry_col = _Column(path, "entry_price")
    entry = decimal_column(table, entry_col, _price_grid(instruments, inst))
    row = _first(~(entry > 0))
    if row is not None:
        raise entry_col.reject(RejectReason.INVALID_PRICE, row, "entry price must be positive")
    tick_value_abs = np.abs(qty) * tick_value
    row = _first(entry > VALUE_MAX // tick_value_abs)
    if row is not None:
        raise entry_col.reject(RejectReason.OUT_OF_RANGE, row, "qty x entry price is too large")
    cost = qty * tick_value * entry
    if "leverage" in table.column_names:
        lev_col = _Column(path, "leverage")
        leverage = int_column(table, lev_col, missing=default_leverage)
        row = _first((leverage < 1) | (leverage > LEVERAGE_MAX))
        if row is not None:
            raise lev_col.reject(
                RejectReason.INVALID_LEVERAGE,
                row,
                f"leverage must be 1..{LEVERAGE_MAX}, got {leverage[row]}",
            )
    else:
        leverage = np.full(len(qty), default_leverage, dtype=np.int64)
    return Positions(path, ids, inst, qty, entry, cost, leverage.astype(np.int32))


def read_marks(path: str | Path, instruments: InstrumentTable) -> Marks:
    path = Path(path)
    table = read_table(path, MARK_COLUMNS)
    symbol_col = _Column(path, "symbol")
    inst = symbol_column(table, symbol_col, instruments)
    repeat = _first_repeat(inst)
    if repeat is not None:
        earlier, later = repeat
        symbol = instruments.instruments[inst[later]].symbol
        raise symbol_col.reject(
            RejectReason.DUPLICATE_SYMBOL, later, f"{symbol} repeats row {earlier + 1}"
        )
    price_col = _Column(path, "mark_price")
    price = decimal_column(table, price_col, _price_grid(instruments, inst))
    row = _first(price < 0)
    if row is not None:
        raise price_col.reject(RejectReason.INVALID_PRICE, row, "mark price must not be negative")
    row = _first(price > INT64_MAX // instruments.tick_value[inst])
    if row is not None:
        raise price_col.reject(RejectReason.OUT_OF_RANGE, row, "mark price too large")
    return Marks(path, inst, price)


def _account_rows(known: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row in `known` (distinct ids >= 0) of each id, -1 where unknown."""
    if len(known) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    top = int(known.max())
    if top <= DENSE_IDS_FACTOR * len(known) + DENSE_IDS_SLACK:
        # Ids that are nearly 0..n: a direct table beats a binary search per position.
        table = np.full(top + 1, -1, dtype=np.int64)
        table[known] = np.arange(len(known))
        inside = (ids >= 0) & (ids <= top)
        return np.where(inside, table[np.where(inside, ids, 0)], -1)
    order = np.argsort(known)
    ordered = known[order]
    at = np.minimum(np.searchsorted(ordered, ids), len(known) - 1)
    return np.where(ordered[at] == ids, order[at], -1)


def read_book_inputs(
    instruments: InstrumentTable,
    accounts_path: str | Path,
    positions_path: str | Path,
    marks_path: str | Path,
    *,
    default_leverage: int = DEFAULT_LEVERAGE,
) -> BookInputs:
    """All three files, with the checks across them: every position's account exists, holds
    the symbol once, and the symbol has a mark."""
    accounts = read_accounts(accounts_path, instruments)
    positions = read_positions(positions_path, instruments, default_leverage)
    marks = read_marks(marks_path, instruments)
    account_col = _Column(positions.path, "account_id")
    at = _account_rows(accounts.account_id, positions.account_id)
    row = _first(at < 0)
    if row is not None:
        raise account_col.reject(
            RejectReason.UNKNOWN_ACCOUNT,
            row,
            f"account {positions.account_id[row]} is not in {accounts.path}",
        )
    repeat = _first_repeat(at * max(len(instruments), 1) + positions.instrument)
    if repeat is not None:
        earlier, later = repeat
        symbol = instruments.instruments[positions.instrument[later]].symbol
        raise Rejected(
            RejectReason.DUPLICATE_POSITION,
            f"{positions.path}: row {later + 1}: account {positions.account_id[later]}"
            f" already holds {symbol} at row {earlier + 1}",
        )
    has_mark = np.zeros(len(instruments), dtype=bool)
    has_mark[marks.instrument] = True
    row = _first(~has_mark[positions.instrument])
    if row is not None:
        symbol = instruments.instruments[positions.instrument[row]].symbol
        raise Rejected(
            RejectReason.NO_MARK,
            f"{positions.path}: row {row + 1}: no mark price for {symbol} in {marks.path}",
        )
    return BookInputs(accounts, positions, marks)


# ----- writing ---------------------------------------------------------------------------
def write_parquet(table: pa.Table, path: str | Path) -> Path:
    """Write through a temporary file and a rename, so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def write_tables(out_dir: str | Path, tables: Mapping[str, pa.Table]) -> list[Path]:
    """`out_dir/<name>.parquet` for each table (the directory is created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # One file per thread: the Parquet writer is single-threaded and releases the GIL.
    with ThreadPoolExecutor(max_workers=max(1, len(tables))) as pool:
        return list(
            pool.map(
                lambda item: write_parquet(item[1], out / f"{item[0]}.parquet"), tables.items()
            )
        )
