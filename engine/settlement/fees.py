"""Accrued trading fees: a signed amount per account (> 0 charged, < 0 rebated) to or from FEES."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.limits import VALUE_MAX
from engine.book.reasons import RejectReason


@dataclass(frozen=True)
class FeesInput:
    account_id: np.ndarray  # int64, distinct
    amount: np.ndarray  # int64 money units; > 0 charged, < 0 rebated


def fees_per_account(book: Book, fees: FeesInput | None) -> np.ndarray:
    """Each account row's fee (0 where none), or Rejected for an unknown or repeated account
    or an amount beyond VALUE_MAX."""
    account_fees = np.zeros(book.n_accounts, dtype=np.int64)
    if fees is None:
        return account_fees
    rows = book.index.rows(fees.account_id)
    unknown = np.flatnonzero(rows < 0)
    if len(unknown):
        raise Rejected(
            RejectReason.UNKNOWN_ACCOUNT,
            f"fees: account {int(fees.account_id[unknown[0]])} unknown",
        )
    ordered = np.sort(rows)
    if (ordered[1:] == ordered[:-1]).any():
        dup = int(ordered[np.flatnonzero(ordered[1:] == ordered[:-1])[0]])
        raise Rejected(
            RejectReason.DUPLICATE_ACCOUNT, f"fees: account {int(book.account_id[dup])} twice"
        )
    if (np.abs(fees.amount) > VALUE_MAX).any():
        raise Rejected(RejectReason.OVERFLOW, "fees: an amount exceeds 2**62 money units")
    account_fees[rows] = fees.amount
    return account_fees
