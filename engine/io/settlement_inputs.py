"""The settlement's input files (CSV or Parquet; decimals as text, exactly on their grid).

- prices: `symbol, settlement_price` (ticks of the symbol's tick size);
- funding: `symbol` and, per row, `funding_rate` (per interval, e.g. 0.0001), or
  `index_price` to compute it (optional `interest_rate`, `rate_cap`);
- fees: `account_id, fee`, accrued trading fees in money (a negative fee is a rebate).

Prices and funding have a row per instrument, so each value is converted on its own by
engine.book.fixed; fees have a row per account and go through engine.io.columns' vectorized
columns. Every refusal names the file, the 1-based data row and the column.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from engine.book.errors import Rejected
from engine.book.fixed import FixedPointError, parse_decimal, to_rate, to_units
from engine.book.instruments import InstrumentTable
from engine.book.reasons import RejectReason
from engine.io.columns import (
    Column,
    Grid,
    as_text,
    combined,
    decimal_column,
    first_repeat,
    int_column,
    symbol_column,
)
from engine.io.tables import read_table
from engine.settlement.fees import FeesInput
from engine.settlement.funding import INTEREST_RATE_DEFAULT, FundingInput

PRICE_COLUMNS = ("symbol", "settlement_price")
FUNDING_COLUMNS = ("symbol",)
FUNDING_OPTIONAL_COLUMNS = ("funding_rate", "index_price", "interest_rate", "rate_cap")
FEE_COLUMNS = ("account_id", "fee")


def read_prices(path: str | Path, instruments: InstrumentTable) -> dict[int, int]:
    """Settlement prices in ticks, by instrument index."""
    path = Path(path)
    table = read_table(path, PRICE_COLUMNS)
    insts = _instruments(path, table, instruments)
    column = Column(path, "settlement_price")
    prices = {}
    for row, (inst, text) in enumerate(zip(insts, _texts(table, column), strict=True)):
        price = _exact(column, row, text, instruments.instruments[inst].tick_size)
        if not price > 0:
            raise column.reject(RejectReason.INVALID_PRICE, row, "must be positive")
        prices[inst] = price
    return prices


def read_funding(path: str | Path, instruments: InstrumentTable) -> list[FundingInput]:
    """One FundingInput per row: a given rate, or an index price (rates over RATE_SCALE)."""
    path = Path(path)
    table = read_table(path, FUNDING_COLUMNS, FUNDING_OPTIONAL_COLUMNS)
    if "funding_rate" not in table.column_names and "index_price" not in table.column_names:
        raise Rejected(
            RejectReason.MISSING_COLUMN,
            f"{path}: needs a funding_rate or an index_price column (or both)",
        )
    insts = _instruments(path, table, instruments)
    column = {name: Column(path, name) for name in FUNDING_OPTIONAL_COLUMNS}
    texts = {
        name: _texts(table, column[name]) if name in table.column_names else [None] * len(insts)
        for name in FUNDING_OPTIONAL_COLUMNS
    }
    out = []
    for row, inst in enumerate(insts):
        tick = instruments.instruments[inst].tick_size
        rate_text, index_text = texts["funding_rate"][row], texts["index_price"][row]
        if rate_text is None and index_text is None:
            raise column["funding_rate"].reject(
                RejectReason.MISSING_VALUE, row, "needs a funding_rate or an index_price"
            )
        interest_text, cap_text = texts["interest_rate"][row], texts["rate_cap"][row]
        out.append(
            FundingInput(
                inst,
                rate=None
                if rate_text is None
                else _exact(column["funding_rate"], row, rate_text, None),
                index_price=None
                if index_text is None
                else _exact(column["index_price"], row, index_text, tick),
                interest_rate=INTEREST_RATE_DEFAULT
                if interest_text is None
                else _exact(column["interest_rate"], row, interest_text, None),
                rate_cap=None
                if cap_text is None
                else _exact(column["rate_cap"], row, cap_text, None),
            )
        )
    return out


def read_fees(path: str | Path, instruments: InstrumentTable) -> FeesInput:
    """Fees by account id, in money units (the accounts are checked against the book later)."""
    path = Path(path)
    table = read_table(path, FEE_COLUMNS)
    ids = int_column(table, Column(path, "account_id"))
    money = Grid([instruments.money_step], ["money unit"])
    amount = decimal_column(table, Column(path, "fee"), money)
    return FeesInput(ids, amount)


def _instruments(path: Path, table: pa.Table, instruments: InstrumentTable) -> list[int]:
    """The instrument index of each row's symbol; a symbol may appear once."""
    column = Column(path, "symbol")
    inst = symbol_column(table, column, instruments)
    repeat = first_repeat(inst)
    if repeat is not None:
        earlier, later = repeat
        symbol = instruments.instruments[inst[later]].symbol
        raise column.reject(
            RejectReason.DUPLICATE_SYMBOL, later, f"{symbol} repeats row {earlier + 1}"
        )
    return [int(i) for i in inst.tolist()]


def _texts(table: pa.Table, column: Column) -> list[str | None]:
    """A small column's values as trimmed text (floats at their shortest round-trip form),
    None where empty."""
    array = as_text(combined(table, column.name), column, "decimal numbers")
    return [text or None for text in array.to_pylist()]


def _exact(column: Column, row: int, text: str | None, step: Decimal | None) -> int:
    """`text` as an exact integer: units of `step`, or a rate over RATE_SCALE (step None)."""
    if text is None:
        raise column.reject(RejectReason.MISSING_VALUE, row, "missing value")
    try:
        value = parse_decimal(text, column.name)
        return to_rate(value, column.name) if step is None else to_units(value, step, column.name)
    except FixedPointError as exc:
        problem = str(exc).split(": ", 1)[-1]
        raise column.reject(RejectReason.INVALID_VALUE, row, problem) from None
