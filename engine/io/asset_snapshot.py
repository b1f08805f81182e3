"""Snapshots of an asset-liability book (engine.margin.accounts.AssetBook): its whole state in
one Arrow IPC file with a SHA-256 checksum, written atomically -- the futures book's format
(engine.io.snapshot) for margin financing and spot margin.

One record batch whose rows are sections told apart by the `section` column:
`account` rows (account_id, call_days), in the book's row order; `holding` rows
(account_id, asset, held, owed), every account and asset with a balance or a debt, by row
then asset; `asset` rows (asset, symbol, price, price_set). Amounts are raw integers in asset
units. The schema metadata carries the asset table, the house accounts' balances per asset
and ledger, the lender's opening debts and the interest accrued per asset, the accounts
allowed an overdraft (the insurance fund), the next event id, the caller's metadata (the
service state) and the checksum.

The ledgers are not part of the state: a restored book starts new ledgers whose opening
postings carry every balance, debt and house balance over, so the audit
(engine.margin.audit) holds from the snapshot on, and equal books give equal bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from engine.book.fixed import RATE_SCALE
from engine.book.ledger import EXTERNAL, Reason
from engine.io.snapshot import SUFFIX, SnapshotError, read_checked, write_checked
from engine.margin.accounts import HELD, LENDER, OWED, AssetBook
from engine.margin.assets import AssetTable

FORMAT = "asset_liability/1"
SECTIONS = ("account", "holding", "asset")
SCHEMA = pa.schema(
    [
        ("section", pa.dictionary(pa.int8(), pa.string())),
        ("account_id", pa.int64()),
        ("call_days", pa.int64()),
        ("asset", pa.int32()),
        ("symbol", pa.string()),
        ("held", pa.int64()),
        ("owed", pa.int64()),
        ("price", pa.int64()),
        ("price_set", pa.bool_()),
    ]
)


def assets_to_dict(assets: AssetTable) -> dict[str, Any]:
    """The asset table as AssetTable.from_dict reads it (rates as exact decimal text)."""
    return {
        "money_decimals": assets.money_decimals,
        "money_asset": assets.symbols[assets.money],
        "assets": [
            {
                "symbol": a.symbol,
                "decimals": a.decimals,
                "collateral_rate": str(Decimal(a.collateral_rate) / RATE_SCALE),
            }
            for a in assets.assets
        ],
    }


def asset_book_batch(book: AssetBook) -> pa.RecordBatch:
    n, k = book.n_accounts, len(book.assets)
    held, owed = book.held, book.owed
    asset_of, row_of = np.nonzero((held != 0) | (owed != 0))
    order = np.lexsort((asset_of, row_of))  # by row, then asset
    asset_of, row_of = asset_of[order], row_of[order]
    m = len(row_of)
    lengths = (n, m, k)

    def column(parts: list[Any], dtype: Any) -> pa.Array:
        values, mask = [], []
        for part, length in zip(parts, lengths, strict=True):
            values.append(np.zeros(length, dtype) if part is None else np.asarray(part, dtype))
            mask.append(np.full(length, part is None))
        return pa.array(np.concatenate(values), mask=np.concatenate(mask))

    section = np.concatenate([np.full(size, i, np.int8) for i, size in enumerate(lengths)])
    symbols = pa.array([None] * (n + m) + book.assets.symbols, type=pa.string())
    return pa.record_batch(
        {
            "section": pa.DictionaryArray.from_arrays(pa.array(section), pa.array(list(SECTIONS))),
            "account_id": column([book.account_id, book.account_id[row_of], None], np.int64),
            "call_days": column([book.call_days[:n], None, None], np.int64),
            "asset": column([None, asset_of, np.arange(k)], np.int32),
            "symbol": symbols,
            "held": column([None, held[asset_of, row_of], None], np.int64),
            "owed": column([None, owed[asset_of, row_of], None], np.int64),
            "price": column([None, None, book.price], np.int64),
            "price_set": column([None, None, book.price_set], np.bool_),
        },
        schema=SCHEMA,
    )


def asset_book_metadata(book: AssetBook, extra: dict[str, Any]) -> dict[str, str]:
    house = {
        side_name: [{str(a): v for a, v in sorted(h.items())} for h in book.house[side]]
        for side_name, side in (("held", HELD), ("owed", OWED))
    }
    return {
        "format_version": FORMAT,
        "assets": json.dumps(assets_to_dict(book.assets), sort_keys=True),
        "house": json.dumps(house, sort_keys=True),
        "book": json.dumps(
            {
                "opening_debt": [int(v) for v in book.opening_debt],
                "interest_accrued": [int(v) for v in book.interest_accrued],
                "overdraft_accounts": sorted(book.overdraft_accounts),
                "next_event_id": book._next_event_id,
            },
            sort_keys=True,
        ),
        "extra": json.dumps(extra, sort_keys=True),
    }


def write_asset_snapshot(book: AssetBook, path: str | Path, extra: dict[str, Any]) -> Path:
    """Write atomically (engine.io.snapshot.write_checked)."""
    return write_checked(asset_book_batch(book), asset_book_metadata(book, extra), path)


def read_asset_snapshot(path: str | Path) -> tuple[AssetBook, dict[str, Any]]:
    """The book and the caller's metadata; SnapshotError (and nothing else) on a file that
    is not a valid asset-liability snapshot: the checksum is verified before any value is
    used."""
    path = Path(path)
    try:
        return _read(path)
    except (SnapshotError, MemoryError):
        raise
    except Exception as exc:  # a corrupt file may fail anywhere in pyarrow, json or the book
        raise SnapshotError(
            f"{path}: unreadable ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def _read(path: Path) -> tuple[AssetBook, dict[str, Any]]:
    batch, raw, extra = read_checked(path, SCHEMA, FORMAT, "an asset-liability snapshot")
    return _book_from(batch, raw), extra


def _book_from(batch: pa.RecordBatch, raw: dict[str, str]) -> AssetBook:
    assets = AssetTable.from_dict(json.loads(raw["assets"]))
    settings = json.loads(raw["book"])
    house = json.loads(raw["house"])
    section = batch.column("section").indices.to_numpy()
    bounds = np.searchsorted(section, [0, 1, 2, 3])
    acc, hold, ins = (slice(int(bounds[i]), int(bounds[i + 1])) for i in range(3))

    def values(name: str, part: slice) -> np.ndarray:
        column = batch.column(name).slice(part.start, part.stop - part.start)
        return np.asarray(column.to_numpy(zero_copy_only=False))

    ids = values("account_id", acc).astype(np.int64)
    n, k = len(ids), len(assets)
    held = np.zeros((k, n), dtype=np.int64)
    owed = np.zeros((k, n), dtype=np.int64)
    rows = np.searchsorted(ids, values("account_id", hold), sorter=np.argsort(ids))
    rows = np.argsort(ids)[rows]
    asset = values("asset", hold).astype(np.int64)
    held[asset, rows] = values("held", hold)
    owed[asset, rows] = values("owed", hold)
    book = AssetBook(assets)
    # Opening postings: non-negative balances and debts by load, then a deficit (an
    # overdraft account's money below zero) and the house accounts' balances.
    book.load(ids, np.maximum(held, 0), owed)
    deficit = np.flatnonzero(held[assets.money] < 0)
    for row in deficit.tolist():
        account = int(ids[row])
        assert account in settings["overdraft_accounts"], f"account {account}: negative balance"
        book.post(
            HELD,
            assets.money,
            account,
            EXTERNAL,
            -int(held[assets.money, row]),
            Reason.OPENING_BALANCE,
            0,
        )
    for side, name in ((HELD, "held"), (OWED, "owed")):
        for a, saved in enumerate(house[name]):
            for account_text, balance in saved.items():
                account = int(account_text)
                if account != EXTERNAL and not (side == OWED and account == LENDER):
                    book.post(side, a, EXTERNAL, account, int(balance), Reason.OPENING_BALANCE, 0)
            now = {str(acc_): v for acc_, v in book.house[side][a].items()}
            if now != {str(x): int(v) for x, v in saved.items()}:
                raise SnapshotError(f"house balances of asset {a} ({name}) do not add up")
    book.call_days[:n] = values("call_days", acc)
    for a in range(k):
        if bool(values("price_set", ins)[a]) and a != assets.money:
            book.set_price(a, int(values("price", ins)[a]))
    book.opening_debt = [int(v) for v in settings["opening_debt"]]
    book.interest_accrued = [int(v) for v in settings["interest_accrued"]]
    book.overdraft_accounts = {int(a) for a in settings["overdraft_accounts"]}
    book._next_event_id = int(settings["next_event_id"])
    return book


def latest_valid_asset_snapshot(
    directory: str | Path,
    check: Callable[[Path, AssetBook, dict[str, Any]], None] | None = None,
) -> tuple[tuple[Path, AssetBook, dict[str, Any]] | None, list[str]]:
    """The newest snapshot in `directory` whose checksum verifies and that `check` (raising
    SnapshotError to refuse one) accepts, and why the newer ones were skipped."""
    skipped = []
    for path in sorted(Path(directory).glob(f"*{SUFFIX}"), reverse=True):
        try:
            book, extra = read_asset_snapshot(path)
            if check is not None:
                check(path, book, extra)
        except SnapshotError as exc:
            skipped.append(str(exc))
            continue
        return (path, book, extra), skipped
    return None, skipped
