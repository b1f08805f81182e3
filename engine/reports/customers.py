"""Customers and the house: who a report counts.

House accounts (ids from RESERVED_ACCOUNT_BASE up, the profile's insurance fund and its unwind
account: engine.waterfall.profile.reserved_mask) are never customers. Customer counts and
status tallies leave them out; the fund is reported apart (`fund_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.book.book import STATUS_NAMES, Book
from engine.book.fixed import format_units
from engine.waterfall.profile import Profile, reserved_mask


def customer_mask(book: Book, profile: Profile) -> np.ndarray:
    """Per account row: a customer (not a house account)."""
    return ~reserved_mask(book.account_id, profile)


@dataclass(frozen=True)
class StatusTally:
    """Customers by margin status (every name of STATUS_NAMES), and the house accounts
    left out of the count."""

    customers: int
    by_status: dict[str, int]
    house: int

    def text(self) -> str:
        return ", ".join(f"{name} {count:,}" for name, count in self.by_status.items())


def status_tally(book: Book, status: np.ndarray, profile: Profile) -> StatusTally:
    """`status`: a sweep's status per account row of `book`."""
    customers = customer_mask(book, profile)
    counts = np.bincount(np.asarray(status)[customers], minlength=len(STATUS_NAMES))
    return StatusTally(
        customers=int(customers.sum()),
        by_status=dict(zip(STATUS_NAMES, counts.tolist(), strict=True)),
        house=int((~customers).sum()),
    )


@dataclass(frozen=True)
class FundState:
    """The insurance fund's account at the book's marks (money units)."""

    account_id: int
    status: str
    balance: int
    equity: int
    maintenance_margin: int
    positions: int

    def as_json(self, decimals: int) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "status": self.status,
            "balance": format_units(self.balance, decimals),
            "equity": format_units(self.equity, decimals),
            "maintenance_margin": format_units(self.maintenance_margin, decimals),
            "positions": self.positions,
        }

    def text(self, decimals: int) -> str:
        return (
            f"{self.account_id}: {self.status}, balance {format_units(self.balance, decimals)},"
            f" equity {format_units(self.equity, decimals)}, maintenance margin"
            f" {format_units(self.maintenance_margin, decimals)}, positions {self.positions}"
        )


def fund_state(book: Book, status: np.ndarray, profile: Profile) -> FundState | None:
    """The fund's state (None when the book has no fund account); `status` as for
    status_tally."""
    fund = profile.fund_account_id
    row = book.index.find(fund)
    if row is None:
        return None
    equity, maintenance = book.account_margin(fund)
    return FundState(
        account_id=fund,
        status=STATUS_NAMES[int(status[row])],
        balance=int(book.balance[row]),
        equity=equity,
        maintenance_margin=maintenance,
        positions=len(book.positions_of(fund)),
    )
