"""The risk models' input files, checked, and the book with its model state they make.

Beside the accounts, positions and marks of engine.io.book_inputs:

- collateral balances (`--collateral`): `account_id`, `asset`, `qty` -- one row per account
  and collateral asset, qty a positive decimal on the asset's `qty_step` (the profile's
  `[collateral]` assets); the account must be in the accounts file.
- collateral prices (`--collateral-prices`): `asset`, `price` -- a decimal on the asset's
  `price_step`, in the money currency per whole asset, >= 0; every held asset needs one.
- isolated positions: optional columns of the positions file, `isolated` (true/false, 1/0;
  empty = false) and `isolated_margin` (a decimal in the money currency, >= 0, only on
  isolated rows). An isolated row is held by a sub-account of its account (ids from the
  profile's `isolated.subaccount_base` up, in file order) whose balance is the position's
  margin; the account's `balance` column is its cross wallet, apart from it.

Every refusal names the file, the 1-based data row and the column.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.book.limits import VALUE_MAX
from engine.book.reasons import RejectReason
from engine.io.book_inputs import BookInputs, book_from_inputs
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
from engine.waterfall.models import Models, uses_models
from engine.waterfall.profile import Profile

COLLATERAL_COLUMNS = ("account_id", "asset", "qty")
COLLATERAL_PRICE_COLUMNS = ("asset", "price")
ISOLATED_COLUMNS = ("isolated", "isolated_margin")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


def _asset_column(table: pa.Table, column: Column, symbols: list[str]) -> np.ndarray:
    array = pc.utf8_trim_whitespace(combined(table, column.name).cast(pa.string()))
    index = pc.index_in(array, value_set=pa.array(symbols, type=pa.string()))
    row = first_row(np.asarray(index.is_null().to_numpy(zero_copy_only=False)))
    if row is not None:
        raise column.reject(
            RejectReason.UNKNOWN_ASSET,
            row,
            f"{array[row].as_py()!r} is not a collateral asset of the profile ({symbols})",
        )
    return np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)


def _isolated_columns(path: Path, n: int, money: Grid) -> tuple[np.ndarray, np.ndarray] | None:
    table = read_table(path, (), ISOLATED_COLUMNS)
    if "isolated" not in table.column_names:
        if "isolated_margin" in table.column_names:
            raise Rejected(
                RejectReason.MISSING_COLUMN, f"{path}: isolated_margin without an isolated column"
            )
        return None
    column = Column(path, "isolated")
    text = pc.utf8_lower(pc.utf8_trim_whitespace(combined(table, "isolated").cast(pa.string())))
    values = [v or "" for v in text.to_pylist()]
    bad = first_row(np.array([v not in _TRUE + _FALSE for v in values], dtype=bool))
    if bad is not None:
        raise column.reject(RejectReason.INVALID_VALUE, bad, f"{values[bad]!r}: not true/false")
    flag = np.array([v in _TRUE for v in values], dtype=bool)
    margin = np.zeros(n, dtype=np.int64)
    if "isolated_margin" in table.column_names:
        margin_col = Column(path, "isolated_margin")
        filled = table.set_column(
            table.column_names.index("isolated_margin"),
            "isolated_margin",
            pc.fill_null(combined(table, "isolated_margin").cast(pa.string()), "0"),
        )
        margin = decimal_column(filled, margin_col, money)
        row = first_row(margin < 0)
        if row is not None:
            raise margin_col.reject(RejectReason.INVALID_AMOUNT, row, "must not be negative")
        row = first_row((margin != 0) & ~flag)
        if row is not None:
            raise margin_col.reject(RejectReason.NOT_ISOLATED, row, "margin on a cross position")
    return flag, margin


def _isolate(
    profile: Profile, instruments: InstrumentTable, inputs: BookInputs
) -> tuple[BookInputs, list[tuple[int, int, int]]]:
    """Inputs with isolated rows moved to sub-accounts; the (sub, owner, instrument) list."""
    positions = inputs.positions
    money = Grid([instruments.money_step], ["money unit"])
    columns = _isolated_columns(positions.path, len(positions.qty), money)
    if columns is None or not columns[0].any():
        return inputs, []
    flag, margin = columns
    if profile.isolated is None:
        raise Rejected(
            RejectReason.NOT_ISOLATED,
            f"{positions.path}: isolated positions, but profile {profile.name!r} has no"
            " [isolated] section",
        )
    base = profile.isolated.subaccount_base
    column = Column(inputs.accounts.path, "account_id")
    row = first_row(inputs.accounts.account_id >= base)
    if row is not None:
        raise column.reject(
            RejectReason.INVALID_ACCOUNT, row, f"ids from {base} up are isolated sub-accounts"
        )
    rows = np.flatnonzero(flag)
    subs = base + np.arange(len(rows), dtype=np.int64)
    owner_ids = positions.account_id[rows]
    account_ids = positions.account_id.copy()
    account_ids[rows] = subs
    accounts = dataclasses.replace(
        inputs.accounts,
        account_id=np.concatenate([inputs.accounts.account_id, subs]),
        balance=np.concatenate([inputs.accounts.balance, margin[rows]]),
    )
    moved = dataclasses.replace(positions, account_id=account_ids)
    subs_list = list(
        zip(subs.tolist(), owner_ids.tolist(), positions.instrument[rows].tolist(), strict=True)
    )
    return BookInputs(accounts, moved, inputs.marks), subs_list


def _load_collateral(
    book: Book, models: Models, profile: Profile, holdings: Path | None, prices: Path | None
) -> None:
    if holdings is None and prices is None:
        return
    collateral = models.collateral
    if collateral is None or profile.collateral is None:
        raise Rejected(
            RejectReason.UNKNOWN_ASSET,
            f"collateral inputs, but profile {profile.name!r} has no [collateral] section",
        )
    if holdings is None or prices is None:
        raise Rejected(RejectReason.MISSING_FILE, "give both --collateral and --collateral-prices")
    symbols = [a.symbol for a in profile.collateral.assets]
    table = read_table(prices, COLLATERAL_PRICE_COLUMNS)
    asset_col = Column(prices, "asset")
    asset = _asset_column(table, asset_col, symbols)
    repeat = first_repeat(asset)
    if repeat is not None:
        raise asset_col.reject(RejectReason.DUPLICATE_SYMBOL, repeat[1], "asset repeats")
    steps = Grid(
        [a.price_step for a in profile.collateral.assets],
        [f"{s} price step" for s in symbols],
        asset,
    )
    price = decimal_column(table, Column(prices, "price"), steps)
    row = first_row(price < 0)
    if row is not None:
        raise Column(prices, "price").reject(
            RejectReason.INVALID_PRICE, row, "must not be negative"
        )
    for a, p in zip(asset.tolist(), price.tolist(), strict=True):
        collateral.set_price(symbols[a], p)

    table = read_table(holdings, COLLATERAL_COLUMNS)
    ids = int_column(table, Column(holdings, "account_id"))
    asset = _asset_column(table, Column(holdings, "asset"), symbols)
    steps = Grid(
        [a.qty_step for a in profile.collateral.assets], [f"{s} qty step" for s in symbols], asset
    )
    qty_col = Column(holdings, "qty")
    qty = decimal_column(table, qty_col, steps)
    row = first_row((qty <= 0) | (qty > VALUE_MAX))
    if row is not None:
        raise qty_col.reject(RejectReason.INVALID_QTY, row, "must be positive")
    repeat = first_repeat(ids * len(symbols) + asset)
    if repeat is not None:
        raise Column(holdings, "asset").reject(
            RejectReason.DUPLICATE_POSITION, repeat[1], f"repeats row {repeat[0] + 1}"
        )
    rows = book.index.rows(ids)
    row = first_row(rows < 0)
    if row is not None:
        raise Column(holdings, "account_id").reject(
            RejectReason.UNKNOWN_ACCOUNT, row, f"account {ids[row]} is not in the accounts file"
        )
    unpriced = [s for s, p in zip(symbols, collateral.price, strict=True) if p is None]
    row = first_row(np.isin(asset, [symbols.index(s) for s in unpriced]))
    if row is not None:
        raise Column(holdings, "asset").reject(
            RejectReason.NO_MARK, row, f"no price for {symbols[asset[row]]} in {prices}"
        )
    event_id = book.new_event_id()
    for i, (account, a, q) in enumerate(
        zip(ids.tolist(), asset.tolist(), qty.tolist(), strict=True)
    ):
        try:
            collateral.deposit(account, symbols[a], q, event_id)
        except Rejected as exc:
            raise qty_col.reject(exc.reason, i, exc.detail) from None


def needs_models(
    profile: Profile,
    instruments: InstrumentTable,
    positions: Path,
    collateral: Path | None,
    collateral_prices: Path | None,
) -> bool:
    """Whether a batch run needs model_book: the profile selects a model, collateral files
    are given, or the positions file marks a position isolated (refused without [isolated])."""
    if uses_models(profile) or collateral is not None or collateral_prices is not None:
        return True
    money = Grid([instruments.money_step], ["money unit"])
    n = read_table(positions, ()).num_rows
    columns = _isolated_columns(Path(positions), n, money)
    return columns is not None and bool(columns[0].any())


def model_book(
    profile: Profile,
    instruments: InstrumentTable,
    inputs: BookInputs,
    *,
    warning_rate: int,
    collateral: Path | None = None,
    collateral_prices: Path | None = None,
) -> tuple[Book, Models]:
    """The book of the files with the profile's model state: isolated positions in their
    sub-accounts, collateral deposited at its prices."""
    inputs, subs = _isolate(profile, instruments, inputs)
    book = book_from_inputs(
        instruments, inputs.accounts, inputs.positions, inputs.marks, warning_rate=warning_rate
    )
    models = Models.for_profile(book, profile)
    if subs:
        assert models.isolated is not None
        for sub, owner, inst in subs:
            if (owner, inst) in models.isolated.by_owner:
                raise Rejected(
                    RejectReason.DUPLICATE_POSITION,
                    f"{inputs.positions.path}: account {owner} holds"
                    f" {instruments.instruments[inst].symbol} isolated twice",
                )
            models.isolated.register(sub, owner, inst)
    _load_collateral(book, models, profile, collateral, collateral_prices)
    return book, models
