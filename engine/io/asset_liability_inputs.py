"""The input files of an asset-liability book, checked, and the book they make.

The file boundary of `clearing risk` and `clearing liquidate` when the profile's model is
asset_liability (CSV or Parquet, engine.io.tables; every refusal names the file, the
1-based data row and the column):

- balances:    account_id, asset, amount   what each account holds (asset units: a
               decimal on the asset's grid, 10**-decimals; >= 0); one row per account
               and asset at most
- liabilities: account_id, asset, amount   what each account owes: borrowed principal
               plus accrued interest, same units; the account must have a balances row
               (it may hold 0)
- prices:      asset, price                money per whole asset, on the money grid, >= 0;
               every asset held or owed needs one (the money asset's is 1 if given)
- calls (optional):    account_id, days    settlement days an account's margin call has
               stood (engine.margin.settle); accounts not listed: 0
- interest (optional): asset, rate         one period's interest rate, accrued once before
               the sweep (the settlement's accrual, engine.margin.operations)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE
from engine.book.limits import RESERVED_ACCOUNT_BASE, VALUE_MAX
from engine.book.reasons import RejectReason
from engine.io.columns import (
    Column,
    Grid,
    combined,
    decimal_column,
    first_repeat,
    first_row,
    int_column,
)
from engine.io.tables import read_table
from engine.margin.accounts import AssetBook
from engine.margin.assets import AssetTable

HOLDING_COLUMNS = ("account_id", "asset", "amount")
PRICE_COLUMNS = ("asset", "price")
CALL_COLUMNS = ("account_id", "days")
INTEREST_COLUMNS = ("asset", "rate")


@dataclass(frozen=True)
class Holdings:
    path: Path
    account_id: np.ndarray  # int64
    asset: np.ndarray  # int64 index into the AssetTable
    amount: np.ndarray  # int64 asset units, >= 0


def asset_column(table: pa.Table, column: Column, assets: AssetTable) -> np.ndarray:
    """The asset index of each row's symbol."""
    array = combined(table, column.name)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        raise Rejected(
            RejectReason.INVALID_TYPE, f"{column.path}: column {column.name!r}: expected text"
        )
    array = pc.utf8_trim_whitespace(array)
    index = pc.index_in(array, value_set=pa.array(assets.symbols, type=array.type))
    missing = index.is_null().to_numpy(zero_copy_only=False)
    row = first_row(missing)
    if row is not None:
        value = array[row].as_py()
        if value is None:
            raise column.reject(RejectReason.MISSING_VALUE, row, "missing value")
        raise column.reject(RejectReason.UNKNOWN_SYMBOL, row, f"unknown asset {value!r}")
    return np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)


def _account_ids(table: pa.Table, path: Path) -> np.ndarray:
    column = Column(path, "account_id")
    ids = int_column(table, column)
    row = first_row((ids < 0) | (ids >= RESERVED_ACCOUNT_BASE))
    if row is not None:
        raise column.reject(
            RejectReason.INVALID_ACCOUNT,
            row,
            f"account ids must be 0 to {RESERVED_ACCOUNT_BASE - 1}, got {ids[row]}",
        )
    return ids


def read_holdings(path: str | Path, assets: AssetTable) -> Holdings:
    """A balances or liabilities file."""
    path = Path(path)
    table = read_table(path, HOLDING_COLUMNS)
    ids = _account_ids(table, path)
    asset = asset_column(table, Column(path, "asset"), assets)
    repeat = first_repeat(ids * len(assets) + asset) if len(ids) else None
    if repeat is not None:
        earlier, later = repeat
        raise Column(path, "asset").reject(
            RejectReason.DUPLICATE_POSITION,
            later,
            f"account {ids[later]} and {assets.symbols[asset[later]]} repeat row {earlier + 1}",
        )
    steps = [Decimal(1).scaleb(-a.decimals) for a in assets.assets]
    grid = Grid(steps, [f"{a.symbol} unit" for a in assets.assets], asset)
    amount_col = Column(path, "amount")
    amount = decimal_column(table, amount_col, grid)
    row = first_row((amount < 0) | (amount > VALUE_MAX))
    if row is not None:
        raise amount_col.reject(RejectReason.INVALID_AMOUNT, row, "amount must be 0 to 2^62 units")
    return Holdings(path, ids, asset, amount)


def read_prices(path: str | Path, assets: AssetTable) -> dict[int, int]:
    """Asset index -> money units per whole asset."""
    path = Path(path)
    table = read_table(path, PRICE_COLUMNS)
    asset_col = Column(path, "asset")
    asset = asset_column(table, asset_col, assets)
    repeat = first_repeat(asset)
    if repeat is not None:
        earlier, later = repeat
        raise asset_col.reject(
            RejectReason.DUPLICATE_SYMBOL,
            later,
            f"{assets.symbols[asset[later]]} repeats row {earlier + 1}",
        )
    money = Grid([Decimal(1).scaleb(-assets.money_decimals)], ["money unit"])
    price_col = Column(path, "price")
    price = decimal_column(table, price_col, money)
    row = first_row((price < 0) | (price > VALUE_MAX))
    if row is not None:
        raise price_col.reject(RejectReason.INVALID_PRICE, row, "price must be 0 to 2^62 units")
    one = 10**assets.money_decimals
    row = first_row((asset == assets.money) & (price != one))
    if row is not None:
        raise price_col.reject(RejectReason.INVALID_PRICE, row, "the money asset's price is 1")
    return dict(zip(asset.tolist(), price.tolist(), strict=True))


def read_calls(path: str | Path) -> dict[int, int]:
    path = Path(path)
    table = read_table(path, CALL_COLUMNS)
    ids = _account_ids(table, path)
    repeat = first_repeat(ids)
    if repeat is not None:
        raise Column(path, "account_id").reject(
            RejectReason.DUPLICATE_ACCOUNT, repeat[1], f"account {ids[repeat[1]]} repeats"
        )
    days_col = Column(path, "days")
    days = int_column(table, days_col)
    row = first_row((days < 0) | (days > 100_000))
    if row is not None:
        raise days_col.reject(RejectReason.INVALID_VALUE, row, "days must be 0 to 100000")
    return dict(zip(ids.tolist(), days.tolist(), strict=True))


def read_interest(path: str | Path, assets: AssetTable) -> dict[int, int]:
    """Asset index -> one period's interest rate over RATE_SCALE, in [0, 1]."""
    path = Path(path)
    table = read_table(path, INTEREST_COLUMNS)
    asset_col = Column(path, "asset")
    asset = asset_column(table, asset_col, assets)
    repeat = first_repeat(asset)
    if repeat is not None:
        raise asset_col.reject(RejectReason.DUPLICATE_SYMBOL, repeat[1], "asset repeats")
    rate_col = Column(path, "rate")
    rate = decimal_column(table, rate_col, Grid([Decimal(1) / RATE_SCALE], ["rate step"]))
    row = first_row((rate < 0) | (rate > RATE_SCALE))
    if row is not None:
        raise rate_col.reject(RejectReason.INVALID_VALUE, row, "rate must be from 0 to 1")
    return dict(zip(asset.tolist(), rate.tolist(), strict=True))


def book_from_files(
    assets: AssetTable,
    balances_path: str | Path,
    liabilities_path: str | Path,
    prices_path: str | Path,
    calls_path: str | Path | None = None,
) -> AssetBook:
    """The book of the files, priced; every account is a balances row's."""
    balances = read_holdings(balances_path, assets)
    liabilities = read_holdings(liabilities_path, assets)
    prices = read_prices(prices_path, assets)
    ids = np.unique(balances.account_id)
    n_assets = len(assets)
    at = np.searchsorted(ids, liabilities.account_id)
    known = (at < len(ids)) & (ids[np.minimum(at, max(len(ids) - 1, 0))] == liabilities.account_id)
    row = first_row(~known) if len(ids) else (0 if len(liabilities.account_id) else None)
    if row is not None:
        raise Column(liabilities.path, "account_id").reject(
            RejectReason.UNKNOWN_ACCOUNT,
            row,
            f"account {liabilities.account_id[row]} has no row in {balances.path}",
        )
    held = np.zeros((n_assets, len(ids)), dtype=np.int64)
    owed = np.zeros((n_assets, len(ids)), dtype=np.int64)
    held[balances.asset, np.searchsorted(ids, balances.account_id)] = balances.amount
    owed[liabilities.asset, at] = liabilities.amount
    used = held.any(axis=1) | owed.any(axis=1)
    for k in np.flatnonzero(used).tolist():
        if k != assets.money and k not in prices:
            raise Rejected(RejectReason.NO_MARK, f"{prices_path}: no price for {assets.symbols[k]}")
    book = AssetBook(assets)
    book.load(ids, held, owed)
    for k, price in prices.items():
        if k != assets.money:
            book.set_price(k, price)
    if calls_path is not None:
        calls = read_calls(calls_path)
        rows = book.index.rows(np.asarray(list(calls), dtype=np.int64))
        if (rows < 0).any():
            unknown = np.asarray(list(calls))[rows < 0][0]
            raise Rejected(
                RejectReason.UNKNOWN_ACCOUNT, f"{calls_path}: account {unknown} is not in the book"
            )
        book.call_days[rows] = list(calls.values())
    return book
