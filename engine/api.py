"""The engine from Python (notebooks, scripts): `import engine`, then

    book = engine.load_book(accounts, positions, marks)      # files or in-memory tables
    risk = engine.sweep(book)                                 # .accounts, .positions
    prices = engine.liquidation_prices(book)
    tick = engine.liquidate(book, insurance_fund="10000")     # .events, .accounts, ...
    day = engine.settle(book, settlement_prices, date="2025-10-11")
    run = engine.stress_test("2025-10-11", accounts=2000)          # .steps, .accounts, ...

Every result is Arrow tables with readable columns (engine.reports.decimals: money and
prices as exact decimal128 in their units, symbols as strings, UTC times), which
`polars.from_arrow`, `duckdb.sql("... FROM tbl")` or `tbl.to_pandas()` take as they are.
Inputs are paths (CSV or Parquet) or tables: a pyarrow Table, or anything that exports the
Arrow C stream (`__arrow_c_stream__`: polars and pandas >= 2.2 DataFrames, duckdb results).
They pass the same checks as the command line's files; a refusal (engine.Rejected) names
the table, the row and the column. docs/api.md walks through an example.

`liquidate`, `settle` and `stress_test` change the book they run on, as the engine does: load
the book again to start over.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE, parse_decimal, to_rate, to_units
from engine.book.instruments import InstrumentTable
from engine.book.reasons import RejectReason
from engine.io.book_inputs import book_from_inputs, read_book_inputs
from engine.io.settlement_inputs import read_fees, read_funding, read_prices
from engine.reports.customers import fund_state, status_tally
from engine.reports.event_tables import events_table
from engine.reports.liquidation_report import adl_risk_tables, insurance_table, with_house_column
from engine.reports.risk_tables import risk_tables
from engine.reports.run_info import read_run_info, with_run_info
from engine.reports.settlement_tables import ledger_table, statements_table
from engine.reports.stress_run import prepare, run_forward, stress_run_info
from engine.reports.stress_tables import forward_summary
from engine.settlement.dates import settlement_date
from engine.settlement.run import settle as settle_book
from engine.stress.scenario import load_scenario
from engine.stress.scenario_model import Scenario, ScenarioError
from engine.waterfall.conservation import audit
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import DEFAULT_PROFILE, PROFILES_DIR, Profile, ProfileError
from engine.waterfall.profile import reserved_mask as _reserved_mask
from engine.waterfall.run import run_waterfall

__all__ = [
    "Book",
    "Rejected",
    "RiskTables",
    "SettlementTables",
    "StressRun",
    "WaterfallTables",
    "describe",
    "events_table",
    "liquidation_prices",
    "load_book",
    "settle",
    "stress_test",
    "sweep",
    "liquidate",
]

INSTRUMENTS_DEFAULT = Path(__file__).parent / "data" / "instruments.json"
WARNING_LEVEL_DEFAULT = "0.8"

# A path to a CSV or Parquet file, or a table (pyarrow, or anything with __arrow_c_stream__).
TableLike = Any


class RiskTables(NamedTuple):
    accounts: pa.Table  # account_id, balance, equity, maintenance/initial margin, ratio, status
    positions: pa.Table  # account_id, symbol, qty, entry/mark price, margins, liquidation...


class WaterfallTables(NamedTuple):
    events: pa.Table  # one row per action, in order (engine.reports.event_tables)
    accounts: pa.Table  # the risk tables after the tick, with adl_quantile and house
    positions: pa.Table
    insurance: pa.Table  # one row: the fund before and after, the waterfall's totals


class SettlementTables(NamedTuple):
    statements: pa.Table  # one row per account: the day's statement, closing risk, status
    ledger: pa.Table  # every posting of the settlement


@dataclass(frozen=True)
class StressRun:
    """A forward stress run: the tables `clearing stress` writes, and its summary."""

    events: pa.Table
    steps: pa.Table
    prices: pa.Table
    accounts: pa.Table  # per account: opening / closing equity, loss (stress_accounts)
    summary: dict[str, Any]
    book: Book  # after the run


# ----- inputs ------------------------------------------------------------------------------
def as_arrow(data: TableLike) -> pa.Table:
    """A pyarrow Table of `data`: a Table, a RecordBatch, or any Arrow C stream exporter.
    Text columns become plain `string` (polars exports string views)."""
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif hasattr(data, "__arrow_c_stream__"):
        table = pa.table(data)
    else:
        raise TypeError(
            f"expected a path, a pyarrow Table or an object with __arrow_c_stream__ (polars,"
            f" pandas >= 2.2), got {type(data).__name__}"
        )
    text = (pa.types.is_large_string, pa.types.is_string_view)
    for i, field in enumerate(table.schema):
        if any(test(field.type) for test in text):
            table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
    return table


@contextmanager
def _as_files(tables: Mapping[str, TableLike]) -> Iterator[dict[str, Path]]:
    """Paths for the inputs: files as they are, tables written to a temporary Parquet file
    so they pass the file readers' checks; a refusal names the table, not the file."""
    with tempfile.TemporaryDirectory(prefix="engine-api-") as tmp:
        paths: dict[str, Path] = {}
        for name, data in tables.items():
            if isinstance(data, (str, Path)):
                paths[name] = Path(data)
            else:
                paths[name] = Path(tmp) / f"{name}.parquet"
                pq.write_table(as_arrow(data), paths[name])
        try:
            yield paths
        except Rejected as exc:
            detail = exc.detail
            for name, path in paths.items():
                if path.parent == Path(tmp):
                    detail = detail.replace(str(path), f"{name} table")
            if detail == exc.detail:
                raise
            raise Rejected(exc.reason, detail) from None


def _instruments(instruments: str | Path | InstrumentTable | Mapping[str, Any] | None) -> Any:
    if instruments is None:
        return InstrumentTable.load(INSTRUMENTS_DEFAULT)
    if isinstance(instruments, InstrumentTable):
        return instruments
    if isinstance(instruments, Mapping):
        return InstrumentTable.from_dict(dict(instruments))
    return InstrumentTable.load(instruments)


def _profile(profile: str | Path | Profile) -> Profile:
    try:
        if isinstance(profile, Profile):
            return profile
        if isinstance(profile, str) and (PROFILES_DIR / f"{profile}.toml").is_file():
            return Profile.shipped(profile)
        return Profile.load(profile)
    except ProfileError as exc:
        raise Rejected(RejectReason.INVALID_PROFILE, str(exc)) from None


def _money_units(amount: str | int | Decimal, decimals: int, what: str) -> int:
    value = parse_decimal(str(amount), what)
    units = to_units(value, Decimal(1).scaleb(-decimals), what)
    if units < 0:
        raise Rejected(RejectReason.INVALID_VALUE, f"{what}: must not be negative, got {amount}")
    return units


# ----- the surface -------------------------------------------------------------------------
def load_book(
    accounts: TableLike,
    positions: TableLike,
    marks: TableLike,
    *,
    instruments: str | Path | InstrumentTable | Mapping[str, Any] | None = None,
    warning_level: str | Decimal = WARNING_LEVEL_DEFAULT,
) -> Book:
    """The book of accounts (`account_id, balance`), positions (`account_id, symbol, qty,
    entry_price`, optional `leverage`) and marks (`symbol, mark_price`), in the money,
    size and price units of `instruments` (a file, a table, a dict; default the shipped
    engine/data/instruments.json). `warning_level`: the margin ratio of a margin call."""
    table = _instruments(instruments)
    rate = to_rate(parse_decimal(str(warning_level), "warning_level"), "warning_level")
    if not 0 < rate <= RATE_SCALE:
        raise Rejected(RejectReason.INVALID_VALUE, "warning_level: must be in (0, 1]")
    inputs = {"accounts": accounts, "positions": positions, "marks": marks}
    with _as_files(inputs) as paths:
        read = read_book_inputs(table, paths["accounts"], paths["positions"], paths["marks"])
        return book_from_inputs(table, read.accounts, read.positions, read.marks, warning_rate=rate)


def sweep(book: Book) -> RiskTables:
    """Equity, margins and status per account, and every open position, at the book's
    marks (the `clearing risk` report)."""
    return RiskTables(*risk_tables(book))


def liquidation_prices(book: Book) -> pa.Table:
    """Per open position: the mark, and the prices at which it is liquidated and bankrupt
    (null where no price breaches)."""
    positions = risk_tables(book)[1]
    columns = ["account_id", "symbol", "qty", "mark_price", "liquidation_price"]
    return positions.select([*columns, "bankruptcy_price"])


def liquidate(
    book: Book,
    *,
    profile: str | Path | Profile = DEFAULT_PROFILE,
    insurance_fund: str | int | Decimal = "0",
    open_insurance_fund: bool = True,
) -> WaterfallTables:
    """One tick of the liquidation waterfall at the book's marks (the `clearing liquidate`
    run): the insurance fund's account is opened with `insurance_fund` (a decimal in the
    money currency) unless `open_insurance_fund` is False, every breaching account is
    liquidated, then ADL and socialized loss as `profile` says. Audited for conservation."""
    rules = _profile(profile)
    money = book.instruments.money_decimals
    try:
        floor = rules.fund_floor_units(money)
    except ProfileError as exc:
        raise Rejected(RejectReason.INVALID_PROFILE, str(exc)) from None
    if open_insurance_fund:
        house = np.flatnonzero(_reserved_mask(book.account_id, rules))
        if len(house) and book.index.find(rules.fund_account_id) is None:
            raise Rejected(
                RejectReason.RESERVED_ACCOUNT,
                f"account id {book.account_id[house[0]]} is the house's (the profile's fund"
                " or unwind account, or ids from 2^62 up)",
            )
        open_fund(book, rules, _money_units(insurance_fund, money, "insurance_fund"))
    open_interest = np.zeros(len(book.instruments), dtype=np.int64)
    np.add.at(open_interest, book.pos_instrument, book.pos_qty)
    result = run_waterfall(book, rules)
    audit(book, closed=not open_interest.any())
    accounts, positions = adl_risk_tables(book, rules)
    status = book.sweep(with_initial_margin=False).status
    customers = status_tally(book, status, rules)
    fund = fund_state(book, status, rules)
    if fund is None:
        raise Rejected(RejectReason.INVALID_VALUE, "no insurance fund: open_insurance_fund=True")
    return WaterfallTables(
        events_table(book.instruments, result),
        with_house_column(accounts, rules),
        with_house_column(positions, rules),
        insurance_table(book, rules, result, floor, fund, customers),
    )


def settle(
    book: Book,
    prices: TableLike,
    *,
    date: str,
    profile: str | Path | Profile = DEFAULT_PROFILE,
    funding: TableLike | None = None,
    fees: TableLike | None = None,
) -> SettlementTables:
    """The end-of-day settlement for `date` (YYYY-MM-DD) at `prices` (`symbol,
    settlement_price`), with optional `funding` (`symbol`, `funding_rate` ...) and `fees`
    (`account_id, fee`) tables (the `clearing settle` run, without its files)."""
    rules = _profile(profile)
    day = settlement_date(date)
    instruments = book.instruments
    inputs = {"prices": prices} | {
        name: data for name, data in (("funding", funding), ("fees", fees)) if data is not None
    }
    with _as_files(inputs) as paths:
        price_ticks = read_prices(paths["prices"], instruments)
        funding_in = read_funding(paths["funding"], instruments) if "funding" in paths else None
        fees_in = read_fees(paths["fees"], instruments) if "fees" in paths else None
    result = settle_book(
        book, price_ticks, date=day, profile=rules, funding=funding_in, fees=fees_in
    )
    return SettlementTables(statements_table(book, result), ledger_table(book, result))


def stress_test(
    scenario: str | Path | Scenario = "2025-10-11",
    *,
    accounts: int | None = None,
    seed: int | None = None,
    on_step: Callable[[Book, Any], None] | None = None,
) -> StressRun:
    """The scenario's cascade, step by step (the forward `clearing stress` run, without its
    files and charts): a built-in name, a .toml / .json file or a Scenario; `accounts` and
    `seed` size a synthetic book (default the scenario's)."""
    if not isinstance(scenario, Scenario):
        try:
            scenario = load_scenario(scenario)
        except ScenarioError as exc:
            raise Rejected(RejectReason.INVALID_SCENARIO, str(exc)) from None
    sized, factory = prepare(scenario, accounts, seed)
    info = stress_run_info(sized, ["engine.api.stress_test", sized.source or sized.name])
    run = run_forward(sized, factory(), on_step=on_step)
    status = run.book.sweep(with_initial_margin=False).status
    summary = {
        "scenario": sized.name,
        "run": info,
        "start_utc": sized.at(0).isoformat().replace("+00:00", "Z"),
        "end_utc": sized.at(sized.duration_s).isoformat().replace("+00:00", "Z"),
        "forward": forward_summary(
            run.result,
            run.n_accounts,
            run.n_positions,
            customers=status_tally(run.book, status, sized.profile),
            fund=fund_state(run.book, status, sized.profile),
        ),
    }
    tables = {name: with_run_info(t, info) for name, t in run.tables().items()}
    return StressRun(
        tables["events"], tables["steps"], tables["prices"], tables["accounts"], summary, run.book
    )


def describe(path: str | Path) -> dict[str, Any] | None:
    """The run metadata of an output Parquet file (engine.reports.run_info), or None."""
    return read_run_info(pq.read_schema(path))
