"""Isolated positions inside an account: each one a sub-account with its own margin.

An isolated position is held by a sub-account of its owner: an account of the book whose
balance is the position's margin and which holds that one position, so the sweep evaluates it
like any account (its liquidation price is engine.risk.isolated's formula) and a loss on it
never reaches the owner's cross balance. Sub-account ids are allocated from the profile's
`isolated.subaccount_base` up, one per (owner, instrument), in the order they are opened;
owners' ids must lie below the base.

Auto-add margin (engine.waterfall.models): when an isolated position breaches, the owner's
free balance -- what the owner could withdraw: min(cash balance, equity - initial margin,
and equity - maintenance margin - 1 unit while it holds positions) -- moves into it first, one
ledger posting (Reason.ISOLATED_MARGIN), when that makes it safe; otherwise nothing moves and
the position is liquidated like any account.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.book.book import Book
from engine.book.errors import Rejected, as_int
from engine.book.limits import RESERVED_ACCOUNT_BASE
from engine.book.reasons import RejectReason


@dataclass(frozen=True)
class IsolatedPosition:
    sub_account: int
    owner: int
    instrument: int


class IsolatedRegistry:
    """Which sub-account holds which owner's isolated position."""

    def __init__(self, book: Book, subaccount_base: int) -> None:
        assert 0 < subaccount_base < RESERVED_ACCOUNT_BASE
        self.book = book
        self.base = subaccount_base
        self.by_sub: dict[int, IsolatedPosition] = {}
        self.by_owner: dict[tuple[int, int], int] = {}

    def __len__(self) -> int:
        return len(self.by_sub)

    def is_sub_account(self, account_id: int) -> bool:
        return account_id in self.by_sub

    def sub_account(self, owner: int, symbol: str) -> int | None:
        inst = self.book.instruments.index.get(symbol)
        return None if inst is None else self.by_owner.get((owner, inst))

    def check_owner(self, owner: int) -> int:
        owner = as_int(owner, "account_id")
        if not 0 <= owner < self.base:
            raise Rejected(
                RejectReason.INVALID_ACCOUNT,
                f"account {owner}: owners of isolated positions have ids below {self.base}",
            )
        if owner in self.by_sub:
            raise Rejected(
                RejectReason.NOT_ISOLATED, f"account {owner} is itself an isolated position"
            )
        return owner

    def open(self, owner: int, symbol: str) -> int:
        """The sub-account of (owner, symbol), opened in the book when new."""
        owner = self.check_owner(owner)
        inst = self.book.instruments.index.get(symbol)
        if inst is None:
            raise Rejected(RejectReason.UNKNOWN_SYMBOL, f"unknown symbol {symbol[:64]!r}")
        existing = self.by_owner.get((owner, inst))
        if existing is not None:
            return existing
        sub = self.base + len(self.by_sub)
        assert sub < RESERVED_ACCOUNT_BASE, "isolated sub-account ids ran into the house range"
        if self.book.index.find(sub) is None:
            self.book.open_account(sub)
        self.register(sub, owner, inst)
        return sub

    def register(self, sub: int, owner: int, inst: int) -> None:
        """Record a sub-account already in the book (a load)."""
        assert sub not in self.by_sub and (owner, inst) not in self.by_owner, (sub, owner, inst)
        self.by_sub[sub] = IsolatedPosition(sub, owner, inst)
        self.by_owner[(owner, inst)] = sub

    def free_balance(self, owner: int) -> int:
        """What the owner can move out and stay safe (0 when nothing)."""
        book = self.book
        row = book.row_of(owner)
        equity, initial_margin = book._account_equity_and_initial_margin(row)
        free = min(int(book.balance[row]), equity - initial_margin)
        if book.positions_of(owner):
            free = min(free, equity - book.account_margin(owner)[1] - 1)
        return max(free, 0)
