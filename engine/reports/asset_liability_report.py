"""The batch runs of an asset-liability book: its risk report, and one liquidation tick.

Both read the files of engine.io.asset_liability_inputs (assets table, balances,
liabilities, prices, optional calls and interest), accrue the interest given (one
period, before the sweep), sweep, and write Parquet tables under the output folder in the
output convention of engine.reports.decimals: money as decimal128 at the money scale, asset
amounts as decimal128 in asset units (a column that mixes assets at the largest scale among
them), symbols as strings, and the run's metadata in each schema (engine.reports.run_info).

- accounts.parquet: account_id, status, market_value, collateral_value, liability_value,
  maintenance_ratio (collateral / liability rounded down to 0.0001, decimal128; null when
  nothing is owed), call_days, house (true for the insurance fund).
- balances.parquet: account_id, asset, held, owed: every non-zero holding or debt.
`clearing liquidate` adds, after the close-outs (engine.margin.liquidation) and the audit
(engine.margin.audit):
- events.parquet: seq, kind, event_id, account_id, asset (null for money-only actions), qty
  (signed: a sale negative, a buy-back positive), price, amount (money moved).
- ledger.parquet: every posting of every asset's held and owed ledger, with `asset` and
  `side` columns (engine.io.ledger_export's columns otherwise).
- insurance.parquet: one row: the fund before and after, the payouts, fees, the deficit to
  cover, the fund's drawdown and the unallocated loss.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.io.asset_liability_inputs import book_from_files, read_interest
from engine.io.ledger_export import ledger_to_arrow
from engine.io.tables import write_tables
from engine.margin.accounts import SIDE_NAMES, AssetBook
from engine.margin.assets import AssetTable
from engine.margin.audit import audit
from engine.margin.liquidation import liquidate, open_fund
from engine.margin.operations import accrue_interest
from engine.margin.ratio import RATIO_PLACES, STATUS_NAMES, AssetLiabilityRisk, sweep
from engine.reports.decimals import decimal_array, money_array
from engine.reports.run_info import input_digest, run_info, with_run_info
from engine.waterfall.events import EVENT_KINDS, NO_INSTRUMENT, WaterfallResult
from engine.waterfall.profile import AssetLiabilityRules, Profile, ProfileError, reserved_mask

RESULT_MONEY = (
    "fund_balance_before",
    "fund_balance_after",
    "liquidation_fees",
    "insurance_paid",
    "deficit_to_cover",
    "fund_drawdown",
    "unallocated_loss",
)


@dataclass(frozen=True)
class AssetLiabilityFiles:
    assets: Path
    balances: Path
    liabilities: Path
    prices: Path
    calls: Path | None = None
    interest: Path | None = None


@dataclass(frozen=True)
class AssetLiabilityRun:
    book: AssetBook
    risk: AssetLiabilityRisk  # the last sweep: after the tick, for `liquidate`
    result: WaterfallResult | None  # None for the risk report
    paths: list[Path]
    seconds: tuple[float, float, float]  # load, compute, write


def rules_of(profile: Profile) -> AssetLiabilityRules:
    if profile.asset_liability is None:
        raise Rejected(
            RejectReason.INVALID_PROFILE,
            f"profile {profile.name!r} is not an asset-liability model",
        )
    return profile.asset_liability


def load(files: AssetLiabilityFiles, profile: Profile) -> AssetBook:
    """The book of the files, after one period's interest when an interest file is given."""
    assets = AssetTable.load(files.assets)
    book = book_from_files(assets, files.balances, files.liabilities, files.prices, files.calls)
    reserved = np.flatnonzero(reserved_mask(book.account_id, profile))
    if len(reserved):
        raise Rejected(
            RejectReason.RESERVED_ACCOUNT,
            f"{files.balances}: account {book.account_id[reserved[0]]} is the house's",
        )
    if files.interest is not None:
        accrue_interest(book, read_interest(files.interest, assets))
    return book


def risk_run(files: AssetLiabilityFiles, profile: Profile, out: Path) -> AssetLiabilityRun:
    started = time.perf_counter()
    rules = rules_of(profile)
    book = load(files, profile)
    loaded = time.perf_counter()
    risk = sweep(book, rules)
    swept = time.perf_counter()
    tables = {"accounts": accounts_table(book, risk, profile), "balances": balances_table(book)}
    paths = _write(out, tables, files, profile)
    seconds = (loaded - started, swept - loaded, time.perf_counter() - swept)
    return AssetLiabilityRun(book, risk, None, paths, seconds)


def liquidation_run(
    files: AssetLiabilityFiles, profile: Profile, out: Path, *, fund_amount: int
) -> AssetLiabilityRun:
    started = time.perf_counter()
    rules = rules_of(profile)
    try:
        floor = profile.fund_floor_units(AssetTable.load(files.assets).money_decimals)
    except ProfileError as exc:
        raise Rejected(RejectReason.INVALID_PROFILE, str(exc)) from None
    book = load(files, profile)
    open_fund(book, profile, fund_amount)
    loaded = time.perf_counter()
    result = liquidate(book, profile, sweep(book, rules))
    audit(book)  # raises ConservationError, naming what differs
    risk = sweep(book, rules)
    done = time.perf_counter()
    tables = {
        "events": events_table(book, result),
        "ledger": ledgers_table(book),
        "accounts": accounts_table(book, risk, profile),
        "balances": balances_table(book),
        "insurance": insurance_table(book, profile, result, floor),
    }
    paths = _write(out, tables, files, profile)
    seconds = (loaded - started, done - loaded, time.perf_counter() - done)
    return AssetLiabilityRun(book, risk, result, paths, seconds)


def _write(
    out: Path, tables: dict[str, pa.Table], files: AssetLiabilityFiles, profile: Profile
) -> list[Path]:
    given = {name: input_digest(path) for name, path in vars(files).items() if path is not None}
    info = run_info(profile=profile.name, inputs=given)
    return write_tables(out, {name: with_run_info(t, info) for name, t in tables.items()})


def _asset_amounts(
    book: AssetBook, units: np.ndarray, asset: np.ndarray, valid: np.ndarray | None = None
) -> pa.Array:
    """Asset units of the rows' assets as decimal128 at the largest scale among the valid
    rows' assets; null where not valid or where a value does not fit int64 at that scale."""
    ok = np.ones(len(units), dtype=bool) if valid is None else valid
    places = np.asarray([a.decimals for a in book.assets.assets], dtype=np.int64)
    scale = int(places[np.unique(asset[ok])].max()) if ok.any() else 0
    factor = 10 ** np.maximum(scale - places[asset], 0)
    ok = ok & (np.abs(units) <= np.iinfo(np.int64).max // factor)
    return decimal_array(np.where(ok, units, 0) * factor, scale, ok)


def accounts_table(book: AssetBook, risk: AssetLiabilityRisk, profile: Profile) -> pa.Table:
    money = book.assets.money_decimals
    owes = risk.liability_value > 0
    ratio = [
        c * 10**RATIO_PLACES // v if v else 0
        for c, v in zip(risk.collateral_value.tolist(), risk.liability_value.tolist(), strict=True)
    ]
    ratio_units = np.asarray(ratio, dtype=object)
    ratio_fits = np.asarray([r <= np.iinfo(np.int64).max for r in ratio], dtype=bool) & owes
    ratio_units = np.where(ratio_fits, ratio_units, 0).astype(np.int64)
    return pa.table(
        {
            "account_id": pa.array(book.account_id),
            "status": pc.take(pa.array(STATUS_NAMES), pa.array(risk.status.astype(np.int64))),
            "market_value": money_array(risk.market_value, money),
            "collateral_value": money_array(risk.collateral_value, money),
            "liability_value": money_array(risk.liability_value, money),
            "maintenance_ratio": decimal_array(ratio_units, RATIO_PLACES, ratio_fits),
            "call_days": pa.array(book.call_days[: book.n_accounts]),
            "house": pa.array(reserved_mask(book.account_id, profile), type=pa.bool_()),
        }
    )


def balances_table(book: AssetBook) -> pa.Table:
    """Every non-zero (account, asset) row: held and owed in asset units."""
    asset, row = np.nonzero((book.held != 0) | (book.owed != 0))
    order = np.lexsort((asset, row))
    asset, row = asset[order], row[order]
    return pa.table(
        {
            "account_id": pa.array(book.account_id[row]),
            "asset": pc.take(pa.array(book.assets.symbols), pa.array(asset.astype(np.int64))),
            "held": _asset_amounts(book, book.held[asset, row], asset),
            "owed": _asset_amounts(book, book.owed[asset, row], asset),
        }
    )


def events_table(book: AssetBook, result: WaterfallResult) -> pa.Table:
    cols = result.log.columns()
    asset = cols["instrument"]
    has_asset = asset != NO_INSTRUMENT
    safe = np.where(has_asset, asset, 0)
    money = book.assets.money_decimals
    symbols = pa.array(book.assets.symbols, type=pa.string())
    qty = _asset_amounts(book, cols["qty"], safe, has_asset)
    return pa.table(
        {
            "seq": pa.array(np.arange(len(asset), dtype=np.int64)),
            "kind": pc.take(pa.array(EVENT_KINDS), pa.array(cols["kind"])),
            "event_id": pa.array(cols["event_id"]),
            "account_id": pa.array(cols["account_id"]),
            "asset": pc.take(symbols, pa.array(safe, mask=~has_asset, type=pa.int64())),
            "qty": qty,
            "price": decimal_array(cols["price"], money, has_asset),
            "amount": money_array(cols["amount"], money),
        }
    )


def ledgers_table(book: AssetBook) -> pa.Table:
    parts = []
    for side in (0, 1):
        for k, symbol in enumerate(book.assets.symbols):
            table = ledger_to_arrow(book.ledgers[side][k])
            n = table.num_rows
            table = table.append_column("asset", pa.array([symbol] * n, type=pa.string()))
            parts.append(
                table.append_column("side", pa.array([SIDE_NAMES[side]] * n, type=pa.string()))
            )
    return pa.concat_tables(parts)


def insurance_table(
    book: AssetBook, profile: Profile, result: WaterfallResult, floor: int
) -> pa.Table:
    money = book.assets.money_decimals
    columns: dict[str, pa.Array] = {
        "fund_account_id": pa.array([profile.fund_account_id], type=pa.int64()),
        "accounts_liquidated": pa.array([result.accounts_liquidated], type=pa.int64()),
        "floor": money_array(np.array([floor], dtype=np.int64), money),
    }
    for name in RESULT_MONEY:
        columns[name] = money_array(np.array([getattr(result, name)], dtype=np.int64), money)
    return pa.table(columns)
