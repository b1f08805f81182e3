"""The shipped futures example (engine/data/futures) as a book, for the exchange tests."""

from __future__ import annotations

from pathlib import Path

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.exchange.account_classes import read_account_classes
from engine.exchange.exchange_tick import ExchangeState
from engine.io.book_inputs import book_from_inputs, read_book_inputs
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile

DATA = Path(__file__).resolve().parents[2] / "engine" / "data" / "futures"


def example_book(profile: Profile, fund: int = 0) -> tuple[Book, ExchangeState]:
    instruments = InstrumentTable.load(DATA / "instruments.json")
    inputs = read_book_inputs(
        instruments, DATA / "accounts.csv", DATA / "positions.csv", DATA / "marks.csv"
    )
    book = book_from_inputs(
        instruments,
        inputs.accounts,
        inputs.positions,
        inputs.marks,
        warning_rate=profile.warning_rate,
    )
    open_fund(book, profile, fund)
    state = ExchangeState(instruments)
    state.classes = read_account_classes(DATA / "accounts.csv")
    return book, state
