"""The book's input files (accounts, positions, marks), checked, and the book they make.

Shared by every batch run that starts from files (`clearing risk`, `liquidate`, `settle`),
so they cannot drift apart in how the files become a book. This is the ingest boundary for
files: nothing downstream sees a float or an unchecked id.

Prices are in ticks of the row's instrument, quantities in its lots, balances in money
units (engine.io.columns does the exact conversion). Entry prices, like marks, must lie on
the tick grid; a position's cost basis is qty * entry * tick_value money units. Every
refusal names the file, the 1-based data row and the column.

Marks are sane or refused: positive, on the tick grid, and within a factor of
MARK_ENTRY_RATIO_MAX of the entry prices of the instrument's positions (at least the lowest
entry / 10, at most the highest entry x 10), so a mark typed in the wrong unit (a BTC mark
of 0.1) is not acted on. A positions file with no data rows is refused: a report of nothing
is a mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.book.limits import (
    DEFAULT_LEVERAGE,
    INT64_MAX,
    LEVERAGE_MAX,
    POSITION_TICK_VALUE_MAX,
    RESERVED_ACCOUNT_BASE,
    VALUE_MAX,
)
from engine.book.reasons import RejectReason
from engine.io.columns import (
    Column,
    Grid,
    decimal_column,
    first_repeat,
    first_row,
    int_column,
    symbol_column,
)
from engine.io.tables import read_table

ACCOUNT_COLUMNS = ("account_id", "balance")
POSITION_COLUMNS = ("account_id", "symbol", "qty", "entry_price")
POSITION_OPTIONAL_COLUMNS = ("leverage",)
MARK_COLUMNS = ("symbol", "mark_price")
# Account ids below DENSE_IDS_FACTOR x count + DENSE_IDS_SLACK are looked up in a table.
DENSE_IDS_FACTOR = 4
DENSE_IDS_SLACK = 1024
# A mark must lie within [lowest entry / this, highest entry x this] of its instrument.
MARK_ENTRY_RATIO_MAX = 10


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


def _price_grid(instruments: InstrumentTable, group: np.ndarray) -> Grid:
    insts = instruments.instruments
    return Grid([i.tick_size for i in insts], [f"{i.symbol} tick size" for i in insts], group)


def read_accounts(path: str | Path, instruments: InstrumentTable) -> Accounts:
    path = Path(path)
    table = read_table(path, ACCOUNT_COLUMNS)
    ids = int_column(table, Column(path, "account_id"))
    row = first_row(ids < 0)
    if row is not None:
        raise Column(path, "account_id").reject(
            RejectReason.INVALID_ACCOUNT, row, f"account ids must be >= 0, got {ids[row]}"
        )
    row = first_row(ids >= RESERVED_ACCOUNT_BASE)
    if row is not None:
        raise Column(path, "account_id").reject(
            RejectReason.INVALID_ACCOUNT,
            row,
            f"account ids from {RESERVED_ACCOUNT_BASE} up are reserved for the house,"
            f" got {ids[row]}",
        )
    repeat = first_repeat(ids)
    if repeat is not None:
        earlier, later = repeat
        raise Column(path, "account_id").reject(
            RejectReason.DUPLICATE_ACCOUNT, later, f"account {ids[later]} repeats row {earlier + 1}"
        )
    money = Grid([instruments.money_step], ["money unit"])
    balance = decimal_column(table, Column(path, "balance"), money)
    return Accounts(path, ids, balance)


def read_positions(
    path: str | Path, instruments: InstrumentTable, default_leverage: int = DEFAULT_LEVERAGE
) -> Positions:
    path = Path(path)
    table = read_table(path, POSITION_COLUMNS, POSITION_OPTIONAL_COLUMNS)
    ids = int_column(table, Column(path, "account_id"))
    inst = symbol_column(table, Column(path, "symbol"), instruments)
    insts = instruments.instruments
    lots = Grid([i.lot_size for i in insts], [f"{i.symbol} lot size" for i in insts], inst)
    qty_col = Column(path, "qty")
    qty = decimal_column(table, qty_col, lots)
    row = first_row(qty == 0)
    if row is not None:
        raise qty_col.reject(RejectReason.INVALID_QTY, row, "qty must not be zero")
    tick_value = instruments.tick_value[inst]
    # Both bounds are the book's: the value of one tick stays below 2**62, and so does cost.
    row = first_row(np.abs(qty) > POSITION_TICK_VALUE_MAX // tick_value)
    if row is not None:
        raise qty_col.reject(RejectReason.OUT_OF_RANGE, row, "position too large")
    entry_col = Column(path, "entry_price")
    entry = decimal_column(table, entry_col, _price_grid(instruments, inst))
    row = first_row(~(entry > 0))
    if row is not None:
        raise entry_col.reject(RejectReason.INVALID_PRICE, row, "entry price must be positive")
    tick_value_abs = np.abs(qty) * tick_value
    row = first_row(entry > VALUE_MAX // tick_value_abs)
    if row is not None:
        raise entry_col.reject(RejectReason.OUT_OF_RANGE, row, "qty x entry price is too large")
    cost = qty * tick_value * entry
    if "leverage" in table.column_names:
        lev_col = Column(path, "leverage")
        leverage = int_column(table, lev_col, missing=default_leverage)
        row = first_row((leverage < 1) | (leverage > LEVERAGE_MAX))
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
    symbol_col = Column(path, "symbol")
    inst = symbol_column(table, symbol_col, instruments)
    repeat = first_repeat(inst)
    if repeat is not None:
        earlier, later = repeat
        symbol = instruments.instruments[inst[later]].symbol
        raise symbol_col.reject(
            RejectReason.DUPLICATE_SYMBOL, later, f"{symbol} repeats row {earlier + 1}"
        )
    price_col = Column(path, "mark_price")
    price = decimal_column(table, price_col, _price_grid(instruments, inst))
    row = first_row(~(price > 0))
    if row is not None:
        raise price_col.reject(RejectReason.INVALID_PRICE, row, "mark price must be positive")
    row = first_row(price > INT64_MAX // instruments.tick_value[inst])
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
    if len(positions.qty) == 0:
        raise Rejected(
            RejectReason.INVALID_INPUT, f"{positions.path}: no positions (a header and no rows)"
        )
    marks = read_marks(marks_path, instruments)
    account_col = Column(positions.path, "account_id")
    at = _account_rows(accounts.account_id, positions.account_id)
    row = first_row(at < 0)
    if row is not None:
        raise account_col.reject(
            RejectReason.UNKNOWN_ACCOUNT,
            row,
            f"account {positions.account_id[row]} is not in {accounts.path}",
        )
    repeat = first_repeat(at * max(len(instruments), 1) + positions.instrument)
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
    row = first_row(~has_mark[positions.instrument])
    if row is not None:
        symbol = instruments.instruments[positions.instrument[row]].symbol
        raise Rejected(
            RejectReason.NO_MARK,
            f"{positions.path}: row {row + 1}: no mark price for {symbol} in {marks.path}",
        )
    check_marks_near_entries(instruments, positions, marks)
    return BookInputs(accounts, positions, marks)


def check_marks_near_entries(
    instruments: InstrumentTable, positions: Positions, marks: Marks
) -> None:
    """Each mark of an instrument with positions lies in [lowest entry / MARK_ENTRY_RATIO_MAX,
    highest entry x MARK_ENTRY_RATIO_MAX] (exact integers: mark x ratio >= lowest and
    mark <= highest x ratio)."""
    n = len(instruments)
    lowest = np.full(n, INT64_MAX, dtype=np.int64)
    highest = np.zeros(n, dtype=np.int64)
    np.minimum.at(lowest, positions.instrument, positions.entry_price)
    np.maximum.at(highest, positions.instrument, positions.entry_price)
    for row, (inst, mark) in enumerate(
        zip(marks.instrument.tolist(), marks.price.tolist(), strict=True)
    ):
        if highest[inst] == 0:
            continue  # no position in this instrument
        low, high = int(lowest[inst]), int(highest[inst])
        if mark * MARK_ENTRY_RATIO_MAX < low or mark > high * MARK_ENTRY_RATIO_MAX:
            inst_def = instruments.instruments[inst]
            raise Column(marks.path, "mark_price").reject(
                RejectReason.PRICE_OUT_OF_BAND,
                row,
                f"{inst_def.symbol} mark {mark * inst_def.tick_size} is more than"
                f" {MARK_ENTRY_RATIO_MAX}x away from the positions' entry prices"
                f" ({low * inst_def.tick_size} to {high * inst_def.tick_size})",
            )


def book_from_inputs(
    instruments: InstrumentTable,
    accounts: Accounts,
    positions: Positions,
    marks: Marks | None,
    *,
    warning_rate: int,
) -> Book:
    """The book of the files, validated as a whole, marked at `marks` when given."""
    book = Book.from_arrays(
        instruments,
        accounts.account_id,
        accounts.balance,
        positions.account_id,
        positions.instrument,
        positions.qty,
        positions.cost,
        positions.leverage,
        warning_rate=warning_rate,
    )
    if marks is not None:
        for inst, price in zip(marks.instrument.tolist(), marks.price.tolist(), strict=True):
            book.set_mark(instruments.instruments[inst].symbol, price)
    return book


def nets_to_zero(instruments: InstrumentTable, positions: Positions) -> bool:
    """Open interest nets to zero in every instrument (a closed book)."""
    open_interest = np.zeros(len(instruments), dtype=np.int64)
    np.add.at(open_interest, positions.instrument, positions.qty)
    return not open_interest.any()
