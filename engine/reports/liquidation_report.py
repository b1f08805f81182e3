"""One tick of the liquidation waterfall on a book read from files, and its tables.

The book of the input files (engine.io.book_inputs) is refused if it holds a house account
(ids from 2^62 up, and the profile's fund and unwind accounts); the insurance fund is opened
with its opening balance, the book swept at the marks and the waterfall run once
(engine.waterfall.run.run_waterfall), then audited (engine.waterfall.conservation;
open interest too when the input book nets to zero per instrument). Written to the output
folder, whole (engine.reports.out_dir: a previous run's tables are replaced, any other file
refused):

- events.parquet: one row per action (liquidation of a position, liquidation fee,
  takeover, insurance payout, ADL, socialized loss, unallocated loss) in the order taken
  (engine.reports.event_tables: kind, ids, symbol, qty and price in their units beside
  qty_lots and price_ticks, amount and notional in money).
- ledger.parquet: every posting of the book (engine.io.ledger_export), opening
  balances included.
- accounts.parquet, positions.parquet: the risk report after the waterfall
  (engine.reports.risk_tables) with `adl_quantile`, the 1-5 ADL lights under the
  profile's policy (0: out of ADL's reach; per account, its highest position), and
  `house`: true for house accounts (the fund), which are not customers
  (engine.reports.customers).
- margin_calls.parquet, price_limits.parquet, forced_reductions.parquet: with the futures
  exchange inputs or conventions (engine.reports.exchange_batch), what they did.
- insurance.parquet: one row: the fund's balance and equity before and after the tick, the
  waterfall's totals (fees, takeover surplus, payouts, ADL shortfall / taken / overshoot,
  socialized, unallocated, debt kept), the fund's own state after the tick (status,
  maintenance margin, open positions) and the customers after the tick, by status.

Decimal columns follow engine.reports.decimals (decimal128: money at the money scale, prices
and sizes in their units); every table carries the run's metadata (engine.reports.run_info)
in its schema.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.book.reasons import RejectReason
from engine.exchange.exchange_tick import ExchangeTickResult, exchange_tick
from engine.io.book_inputs import book_from_inputs, nets_to_zero, read_book_inputs
from engine.io.ledger_export import ledger_to_arrow
from engine.io.model_inputs import model_book, needs_models
from engine.reports.customers import FundState, StatusTally, fund_state, status_tally
from engine.reports.decimals import money_array
from engine.reports.event_tables import events_table
from engine.reports.exchange_batch import (
    ExchangeInputs,
    ExchangeRun,
    forced_reductions_table,
    input_digests,
    margin_calls_table,
    prepare,
    price_limits_table,
)
from engine.reports.model_tables import with_model_columns
from engine.reports.out_dir import write_tables_whole
from engine.reports.risk_tables import risk_tables
from engine.reports.run_info import builtin_digest, input_digest, run_info, with_run_info
from engine.waterfall.conservation import audit
from engine.waterfall.events import WaterfallResult
from engine.waterfall.fund import open_fund
from engine.waterfall.models import model_sweep
from engine.waterfall.profile import Profile, ProfileError, reserved_mask
from engine.waterfall.quantiles import account_adl_quantiles, adl_quantiles
from engine.waterfall.run import run_waterfall

# Money totals of the result written to insurance.parquet, in this order.
RESULT_MONEY = (
    "fund_balance_before",
    "fund_equity_before",
    "fund_balance_after",
    "fund_equity_after",
    "liquidation_fees",
    "takeover_surplus",
    "insurance_paid",
    "debt_kept",
    "adl_shortfall",
    "adl_amount",
    "adl_overshoot",
    "socialized_amount",
    "unallocated_loss",
    "unwind_loss",
    "deficit_to_cover",
    "fund_drawdown",
)


@dataclass(frozen=True)
class LiquidationTick:
    book: Book  # after the tick
    result: WaterfallResult
    closed: bool  # the input book nets to zero per instrument: open interest was audited
    paths: list[Path]
    seconds: tuple[float, float, float, float]  # load, waterfall, audit and report, write
    customers: StatusTally  # after the tick; house accounts are not customers
    fund: FundState
    exchange: ExchangeRun | None = None  # futures exchange conventions applied (engine.exchange)
    exchange_tick: ExchangeTickResult | None = None


def liquidation_tick(
    profile: Profile,
    instruments: InstrumentTable,
    accounts_path: Path,
    positions_path: Path,
    marks_path: Path,
    out: Path,
    *,
    fund_amount: int,
    warning_rate: int,
    command: Sequence[str] | None = None,
    collateral: Path | None = None,
    collateral_prices: Path | None = None,
    exchange: ExchangeInputs | None = None,
) -> LiquidationTick:
    """Read the files, run one tick of the waterfall with the fund opened at `fund_amount`
    money units, audit it and write the tables under `out` (see the module docstring).
    `command`: what ran it, for the metadata (default: this process's command line)."""
    started = time.perf_counter()
    try:
        floor = profile.fund_floor_units(instruments.money_decimals)
    except ProfileError as exc:
        raise Rejected(RejectReason.INVALID_PROFILE, str(exc)) from None
    inputs = read_book_inputs(instruments, accounts_path, positions_path, marks_path)
    accounts, positions, marks = inputs.accounts, inputs.positions, inputs.marks
    reserved = np.flatnonzero(reserved_mask(accounts.account_id, profile))
    if len(reserved):
        row = int(reserved[0])
        raise Rejected(
            RejectReason.RESERVED_ACCOUNT,
            f"{accounts.path}: row {row + 1}: account id {accounts.account_id[row]} is the"
            " house's (ids from 2^62 up, and the profile's fund and unwind accounts)",
        )
    # Hashed once read: a missing or unreadable file is refused by the reader first.
    info = run_info(
        profile=profile.name,
        inputs={
            "instruments": builtin_digest("instruments (as loaded)", instruments.to_dict()),
            "accounts": input_digest(accounts_path),
            "positions": input_digest(positions_path),
            "marks": input_digest(marks_path),
            **input_digests(exchange),
        },
        command=command,
    )
    models = None
    if needs_models(profile, instruments, positions_path, collateral, collateral_prices):
        book, models = model_book(
            profile,
            instruments,
            inputs,
            warning_rate=warning_rate,
            collateral=collateral,
            collateral_prices=collateral_prices,
        )
    else:
        book = book_from_inputs(instruments, accounts, positions, marks, warning_rate=warning_rate)
    closed = nets_to_zero(instruments, positions)
    open_fund(book, profile, fund_amount)
    run = tick = None
    if exchange is not None and (
        exchange.previous_settlement or exchange.margin_change or profile.exchange.proprietary_first
    ):
        # Futures exchange conventions (engine.exchange.exchange_tick): limits, margin
        # changes with calls, forced reduction, account classes; then the waterfall.
        run = prepare(book, profile, accounts.path, exchange)
    loaded = time.perf_counter()
    if run is not None:
        tick = exchange_tick(book, profile, run.state, run.now_ts, models=models)
        result = tick.waterfall
    else:
        result = run_waterfall(book, profile, models=models)
    liquidated = time.perf_counter()
    audit(book, closed=closed)  # raises ConservationError, naming what differs
    if models is not None:
        models.audit()

    account_table, position_table = adl_risk_tables(book, profile)
    if models is not None:
        account_table = with_model_columns(account_table, book, profile, models)
    account_table = with_house_column(account_table, profile)
    position_table = with_house_column(position_table, profile)
    status = book.sweep(with_initial_margin=False).status
    if models is not None:
        status = model_sweep(book, profile)[3]
    customers = status_tally(book, status, profile)
    fund = fund_state(book, status, profile)
    assert fund is not None, "the fund was opened"
    tables = {
        "events": events_table(book.instruments, result),
        "ledger": ledger_to_arrow(book.ledger),
        "accounts": account_table,
        "positions": position_table,
        "insurance": insurance_table(book, profile, result, floor, fund, customers),
    }
    if run is not None and tick is not None:
        money = instruments.money_decimals
        tables["margin_calls"] = margin_calls_table(run.calls + tick.calls, money)
        tables["price_limits"] = price_limits_table(book, run)
        tables["forced_reductions"] = forced_reductions_table(book, tick.reductions)
    reported = time.perf_counter()
    paths = write_tables_whole(out, {name: with_run_info(t, info) for name, t in tables.items()})
    written = time.perf_counter()
    seconds = (loaded - started, liquidated - loaded, reported - liquidated, written - reported)
    return LiquidationTick(book, result, closed, paths, seconds, customers, fund, run, tick)


def with_house_column(table: pa.Table, profile: Profile) -> pa.Table:
    """`table` with `house`: true on rows of house accounts (the fund), which are not
    customers and are left out of every customer count."""
    house = reserved_mask(table["account_id"].to_numpy(), profile)
    return table.append_column("house", pa.array(house, type=pa.bool_()))


def adl_risk_tables(book: Book, profile: Profile) -> tuple[pa.Table, pa.Table]:
    """The risk tables (accounts, positions) with the ADL light of each row appended."""
    account_table, position_table = risk_tables(book)
    lights = adl_quantiles(book, profile)
    live = np.flatnonzero(book.pos_qty != 0)
    position_table = position_table.append_column(
        "adl_quantile", pa.array(lights[live], type=pa.int8())
    )
    account_table = account_table.append_column(
        "adl_quantile", pa.array(account_adl_quantiles(book, profile, lights), type=pa.int8())
    )
    return account_table, position_table


def insurance_table(
    book: Book,
    profile: Profile,
    result: WaterfallResult,
    floor: int,
    fund: FundState,
    customers: StatusTally,
) -> pa.Table:
    money = book.instruments.money_decimals
    columns: dict[str, pa.Array] = {
        "fund_account_id": pa.array([profile.fund_account_id], type=pa.int64()),
        "accounts_liquidated": pa.array([result.accounts_liquidated], type=pa.int64()),
    }
    columns["floor"] = money_array(np.array([floor], dtype=np.int64), money)
    for name in RESULT_MONEY:
        columns[name] = money_array(np.array([getattr(result, name)], dtype=np.int64), money)
    columns["fund_status"] = pa.array([fund.status], type=pa.string())
    columns["fund_maintenance_margin"] = money_array(
        np.array([fund.maintenance_margin], dtype=np.int64), money
    )
    columns["fund_positions"] = pa.array([fund.positions], type=pa.int64())
    columns["customers"] = pa.array([customers.customers], type=pa.int64())
    for name, count in customers.by_status.items():
        columns[f"customers_{name}"] = pa.array([count], type=pa.int64())
    return pa.table(columns)
