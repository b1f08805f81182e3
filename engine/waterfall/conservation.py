"""The auditor: rebuilds every balance from the ledger and checks that money was conserved.

Checks, each failing loudly with the offending ids:
- every trader, fund and house balance equals its credits minus debits in the ledger;
- all balances, house accounts included, sum to zero (the EXTERNAL account holds minus the
  opening balances and net deposits), i.e. balances + funds + house = opening + deposits -
  withdrawals, to the unit;
- in a closed book (`closed=True`): open interest nets to zero per instrument, and the
  clearing account plus the open cost basis equals the cost basis loaded at opening.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.book.book import Book
from engine.book.ledger import CLEARING, EXTERNAL


class ConservationError(AssertionError):
    pass


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
    expected = dict(zip(ids.tolist(), net.tolist(), strict=True))
    for house, balance in book.house_balance.items():
        if expected.get(house, 0) != balance:
            raise ConservationError(
                f"house account {house}: balance {balance} but ledger says {expected.get(house, 0)}"
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
    held = int(book.balance.sum(dtype=np.int64)) + sum(
        v for k, v in book.house_balance.items() if k != EXTERNAL
    )
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
        open_cost = int(book.pos_cost.sum(dtype=np.int64))
        if book.house_balance[CLEARING] + open_cost != book.opening_position_cost:
            raise ConservationError(
                f"clearing balance {book.house_balance[CLEARING]} + open cost {open_cost}"
                f" != opening cost {book.opening_position_cost}"
            )
    return AuditReport(book.n_accounts, len(book.ledger), net_external, held)
