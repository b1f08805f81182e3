"""The book of the input files: the columns engine.io.tables read, made one Book.

Shared by every batch run that starts from files (`clearing risk`, `liquidate`, `settle`),
so they cannot drift apart in how the files become a book.
"""

from __future__ import annotations

import numpy as np

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.io.tables import Accounts, Marks, Positions


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
