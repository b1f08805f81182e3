"""Arguments and loading shared by the batch subcommands that read a book from files
(`risk`, `liquidate`, `settle`): one definition of the options and of how the files become
a book, so the commands cannot drift apart."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.book.book import Book
from engine.book.fixed import RATE_SCALE, FixedPointError, parse_decimal, to_rate
from engine.book.instruments import InstrumentTable
from engine.io.tables import Accounts, Marks, Positions


def add_book_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--instruments", required=required, type=Path, help="JSON or TOML")
    parser.add_argument("--accounts", required=required, type=Path, help="account_id, balance")
    parser.add_argument(
        "--positions",
        required=required,
        type=Path,
        help="account_id, symbol, qty, entry_price [, leverage]",
    )


def add_marks_and_out_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--marks", required=True, type=Path, help="symbol, mark_price")
    parser.add_argument("--out", required=True, type=Path, help="output directory")


def warning_rate(text: str, option: str = "--warning-level") -> int:
    """A warning level such as 0.8 as a rate over RATE_SCALE, in (0, 1]."""
    rate = to_rate(parse_decimal(text, option), option)
    if not 0 < rate <= RATE_SCALE:
        raise FixedPointError(f"{option}: must be above 0 and at most 1, got {text}")
    return rate


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
