"""Money moves of the run: ledger postings per position slot, and the balance column.

Each amount is posted between a trader account and a house account (CLEARING, FUNDING_POOL,
FEES); the balances move by the same amounts per account. The conservation audits before and
after the run prove the two sides agree.
"""

from __future__ import annotations

import numpy as np

from engine.book.book import Book
from engine.book.ledger import Reason


def post_slots(
    book: Book,
    account_ids: np.ndarray,
    house: int,
    amount: np.ndarray,
    reason: Reason,
    event_ids: np.ndarray,
) -> None:
    """One ledger posting per nonzero amount: > 0 the house pays the account, < 0 the reverse.

    The balances move in `apply_balances`; this writes the ledger side only, vectorized
    (Book has no bulk posting yet, and one Python call per position would take minutes).
    """
    keep = np.flatnonzero(amount)
    if not len(keep):
        return
    amount_k = amount[keep]
    ids_k = account_ids[keep]
    pays = amount_k > 0
    book.ledger.post_many(
        np.where(pays, house, ids_k),
        np.where(pays, ids_k, house),
        np.abs(amount_k),
        reason,
        event_ids[keep],
    )


def apply_balances(book: Book, delta: np.ndarray) -> None:
    # The book's balance column is written in place, alongside the postings made above;
    # the audits before and after the run prove the two agree.
    rows = np.flatnonzero(delta)
    book.balance[rows] += delta[rows]
    book.changed_rows.update(rows.tolist())


def event_ids(book: Book, per_instrument: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """A fresh event id for each instrument where `per_instrument` is set (0 elsewhere)."""
    ids = np.zeros(len(per_instrument), dtype=np.int64)
    for k in np.flatnonzero(per_instrument).tolist():
        ids[k] = book.new_event_id()
    return ids, {int(ids[k]): k for k in np.flatnonzero(per_instrument).tolist()}
