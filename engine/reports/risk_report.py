"""`clearing risk`'s run: the book of the input files at their marks and its risk report
(engine.reports.risk_tables), written as accounts.parquet and positions.parquet."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.io.book_inputs import book_from_inputs, read_book_inputs
from engine.io.tables import write_tables
from engine.reports.risk_tables import risk_tables


@dataclass(frozen=True)
class RiskReport:
    book: Book
    n_positions: int
    paths: list[Path]
    seconds: tuple[float, float, float]  # load, risk, write


def write_risk_report(
    instruments_path: Path,
    accounts_path: Path,
    positions_path: Path,
    marks_path: Path,
    out: Path,
    *,
    warning_rate: int,
) -> RiskReport:
    """Read the files, build the book at the marks, write its risk tables under `out`."""
    started = time.perf_counter()
    instruments = InstrumentTable.load(instruments_path)
    inputs = read_book_inputs(instruments, accounts_path, positions_path, marks_path)
    book = book_from_inputs(
        instruments, inputs.accounts, inputs.positions, inputs.marks, warning_rate=warning_rate
    )
    loaded = time.perf_counter()
    account_table, position_table = risk_tables(book)
    computed = time.perf_counter()
    paths = write_tables(out, {"accounts": account_table, "positions": position_table})
    written = time.perf_counter()
    seconds = (loaded - started, computed - loaded, written - computed)
    return RiskReport(book, position_table.num_rows, paths, seconds)
