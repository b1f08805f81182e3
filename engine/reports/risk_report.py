"""`clearing risk`'s run: the book of the input files at their marks and its risk report
(engine.reports.risk_tables), written as accounts.parquet and positions.parquet, and the
customers by margin status. House accounts (ids from 2^62 up, the shipped profile's fund and
unwind accounts) are not customers (engine.reports.customers); the input reader refuses ids
from 2^62 up, so a book from files holds none of them. The output directory is written whole
(engine.reports.out_dir): a previous run's tables are replaced, any other file refused."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.io.book_inputs import book_from_inputs, read_book_inputs
from engine.io.model_inputs import model_book, needs_models
from engine.reports.customers import StatusTally, status_tally
from engine.reports.exchange_batch import (
    ExchangeInputs,
    ExchangeRun,
    input_digests,
    margin_calls_table,
    prepare,
    price_limits_table,
)
from engine.reports.model_tables import with_model_columns
from engine.reports.out_dir import write_tables_whole
from engine.reports.risk_tables import risk_tables
from engine.reports.run_info import input_digest, run_info, with_run_info
from engine.waterfall.models import model_sweep
from engine.waterfall.profile import Profile


@dataclass(frozen=True)
class RiskReport:
    book: Book
    n_positions: int
    paths: list[Path]
    seconds: tuple[float, float, float]  # load, risk, write
    customers: StatusTally
    exchange: ExchangeRun | None = None  # price limits and margin changes applied


def write_risk_report(
    instruments_path: Path,
    accounts_path: Path,
    positions_path: Path,
    marks_path: Path,
    out: Path,
    *,
    warning_rate: int,
    command: Sequence[str] | None = None,
    profile: Profile | None = None,
    collateral: Path | None = None,
    collateral_prices: Path | None = None,
    exchange: ExchangeInputs | None = None,
) -> RiskReport:
    """Read the files, build the book at the marks, write its risk tables under `out`, each
    with the run's metadata (engine.reports.run_info; `command` defaults to sys.argv).
    With a `profile` that selects risk models (engine.waterfall.models), collateral files or
    isolated positions, the book carries the models' inputs and the accounts table their
    columns (engine.reports.model_tables). With `exchange` inputs (engine.reports.exchange_batch)
    the marks are clamped to the day's price limits and margin changes are installed first
    (with the profile's grace for margin calls); margin_calls and price_limits tables are
    written too."""
    started = time.perf_counter()
    instruments = InstrumentTable.load(instruments_path)
    inputs = read_book_inputs(instruments, accounts_path, positions_path, marks_path)
    # Hashed once read: a missing or unreadable file is refused by the reader first.
    info = run_info(
        profile=None,
        inputs={
            "instruments": input_digest(instruments_path),
            "accounts": input_digest(accounts_path),
            "positions": input_digest(positions_path),
            "marks": input_digest(marks_path),
            **input_digests(exchange),
        },
        command=command,
    )
    models = None
    chosen = profile or Profile.shipped()
    if needs_models(chosen, instruments, positions_path, collateral, collateral_prices):
        book, models = model_book(
            chosen,
            instruments,
            inputs,
            warning_rate=warning_rate,
            collateral=collateral,
            collateral_prices=collateral_prices,
        )
    else:
        book = book_from_inputs(
            instruments, inputs.accounts, inputs.positions, inputs.marks, warning_rate=warning_rate
        )
    run = None
    if exchange is not None and (exchange.previous_settlement or exchange.margin_change):
        run = prepare(book, chosen, accounts_path, exchange)
    loaded = time.perf_counter()
    account_table, position_table = risk_tables(book)
    if models is not None:
        account_table = with_model_columns(account_table, book, chosen, models)
    tables = {"accounts": account_table, "positions": position_table}
    if run is not None:
        tables["margin_calls"] = margin_calls_table(run.calls, instruments.money_decimals)
        tables["price_limits"] = price_limits_table(book, run)
    computed = time.perf_counter()
    paths = write_tables_whole(out, {name: with_run_info(t, info) for name, t in tables.items()})
    written = time.perf_counter()
    seconds = (loaded - started, computed - loaded, written - computed)
    status = book.sweep(with_initial_margin=False).status
    if models is not None:
        status = model_sweep(book, chosen)[3]
    customers = status_tally(book, status, Profile.shipped())
    return RiskReport(book, position_table.num_rows, paths, seconds, customers, run)
