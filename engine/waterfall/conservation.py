"""The auditor: rebuilds every balance from the ledger and checks that money was conserved
(`audit`, the whole ledger; `audit_since`, a streamed ledger from its last checkpoint).

Checks, each failing loudly with the offending ids:
- every trader, fund and house balance equals its credits minus debits in the ledger;
- all balances, house accounts included, sum to zero (the EXTERNAL account holds minus the
  opening balances and net deposits), i.e. balances + funds + house = opening + deposits -
  withdrawals, to the unit;
- in a closed book (`closed=True`): open interest nets to zero per instrument, and the
  clearing account plus the open cost basis equals the cost basis loaded at opening.

Sums never wrap: a total over many int64 values is taken exactly (`exact_sum`: the high
and low 32 bits summed apart, then joined as a Python int), and a house account's ledger
net is summed the same way. A trader's net may use int64 arithmetic: each posting is
below 2^63 and the true net is a balance, which the book keeps within int64, so the
modular result is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.book.book import Book
from engine.book.ledger import CLEARING, EXTERNAL


class ConservationError(AssertionError):
    pass


def exact_sum(values: np.ndarray) -> int:
    """The exact sum of int64 values as a Python int (no wrap at any count below 2^31)."""
    values = np.asarray(values, dtype=np.int64)
    high = int((values >> 32).sum(dtype=np.int64))
    low = int((values & 0xFFFFFFFF).sum(dtype=np.int64))
    return high * 2**32 + low


def _house_nets(book: Book) -> dict[int, int]:
    """Credits minus debits of each house account in the ledger, exactly."""
    ledger = book.ledger
    debit, credit, amount = ledger.column("debit"), ledger.column("credit"), ledger.column("amount")
    return {
        house: exact_sum(amount[credit == house]) - exact_sum(amount[debit == house])
        for house in book.house_balance
    }


@dataclass(frozen=True)
class AuditReport:
    accounts: int
    postings: int
    net_external: int  # opening balances + deposits - withdrawals
    total_held: int  # balances of traders and funds plus house accounts other than external

    @property
    def ok(self) -> bool:
        return self.net_external == self.total_held


def audit(book: Book, *, closed: bool = False) -> AuditReport:
    ids, net = book.ledger.net_by_account()
    expected = _house_nets(book)
    for house, balance in book.house_balance.items():
        if expected[house] != balance:
            raise ConservationError(
                f"house account {house}: balance {balance} but ledger says {expected[house]}"
            )
    rows = book.index.rows(ids[ids >= 0])
    if (rows < 0).any():
        raise ConservationError(f"ledger names unknown accounts {ids[ids >= 0][rows < 0][:10]}")
    ledger_balance = np.zeros(book.n_accounts, dtype=np.int64)
    ledger_balance[rows] = net[ids >= 0]
    wrong = np.nonzero(ledger_balance != book.balance)[0]
    if len(wrong):
        shown = book.account_id[wrong[:10]].tolist()
        raise ConservationError(f"balances differ from the ledger for accounts {shown}")
    held = exact_sum(book.balance) + sum(v for k, v in book.house_balance.items() if k != EXTERNAL)
    net_external = -book.house_balance[EXTERNAL]
    if held != net_external:
        raise ConservationError(
            f"money not conserved: held {held} != opening + deposits - withdrawals {net_external}"
        )
    if closed:
        book.compact()
        oi = np.zeros(len(book.instruments), dtype=np.int64)
        np.add.at(oi, book.pos_instrument, book.pos_qty)
        bad = np.nonzero(oi)[0]
        if len(bad):
            symbols = [book.instruments.instruments[i].symbol for i in bad[:10]]
            raise ConservationError(f"open interest does not net to zero for {symbols}")
        open_cost = exact_sum(book.pos_cost)
        if book.house_balance[CLEARING] + open_cost != book.opening_position_cost:
            raise ConservationError(
                f"clearing balance {book.house_balance[CLEARING]} + open cost {open_cost}"
                f" != opening cost {book.opening_position_cost}"
            )
    return AuditReport(book.n_accounts, len(book.ledger), net_external, held)


# ----- the checkpointed audit: a streamed ledger (engine.io.ledger_segments) ----------------
@dataclass(frozen=True)
class Checkpoint:
    """Every balance when the ledger's postings so far left memory: account ids (sorted)
    with their balances, and the house accounts'."""

    account_id: np.ndarray
    balance: np.ndarray
    house_balance: dict[int, int]

    @classmethod
    def of_book(cls, book: Book) -> Checkpoint:
        order = np.argsort(book.account_id, kind="stable")
        return cls(
            book.account_id[order].copy(), book.balance[order].copy(), dict(book.house_balance)
        )


def audit_since(book: Book, checkpoint: Checkpoint) -> AuditReport:
    """`audit` for a book whose ledger holds only the postings since `checkpoint`: each
    balance, house accounts included, is its balance at the checkpoint plus its credits
    minus debits since, and all balances still sum to zero. (The full-ledger `audit` stays
    the batch jobs' check.)"""
    ids, net = book.ledger.net_by_account()
    expected = _house_nets(book)
    for house, balance in book.house_balance.items():
        was = checkpoint.house_balance.get(house, 0)
        if was + expected[house] != balance:
            raise ConservationError(
                f"house account {house}: balance {balance} but checkpoint {was} + ledger"
                f" since {expected[house]}"
            )
    rows = book.index.rows(ids[ids >= 0])
    if (rows < 0).any():
        raise ConservationError(f"ledger names unknown accounts {ids[ids >= 0][rows < 0][:10]}")
    since = np.zeros(book.n_accounts, dtype=np.int64)
    since[rows] = net[ids >= 0]
    at = np.searchsorted(checkpoint.account_id, book.account_id)
    at = np.minimum(at, max(len(checkpoint.account_id) - 1, 0))
    known = (
        checkpoint.account_id[at] == book.account_id
        if len(checkpoint.account_id)
        else np.zeros(book.n_accounts, dtype=bool)
    )
    opening = np.where(known, checkpoint.balance[at] if len(checkpoint.balance) else 0, 0)
    wrong = np.nonzero(opening + since != book.balance)[0]
    if len(wrong):
        shown = book.account_id[wrong[:10]].tolist()
        raise ConservationError(
            f"balances differ from the checkpoint plus the ledger for accounts {shown}"
        )
    gone = np.setdiff1d(checkpoint.account_id, book.account_id)
    if len(gone):
        raise ConservationError(f"accounts {gone[:10].tolist()} left the book")
    held = exact_sum(book.balance) + sum(v for k, v in book.house_balance.items() if k != EXTERNAL)
    net_external = -book.house_balance[EXTERNAL]
    if held != net_external:
        raise ConservationError(
            f"money not conserved: held {held} != opening + deposits - withdrawals {net_external}"
        )
    return AuditReport(book.n_accounts, book.ledger.base + len(book.ledger), net_external, held)
