"""The auditor of an asset-liability book: rebuilds every column from the ledgers.

Checks, per asset, each failing loudly with the offending ids:
- every account's held and owed balance equals its credits minus debits in that asset's
  held or owed ledger, and every house account's balance equals its ledger net;
- each ledger's balances, house accounts included, sum to zero (units are only moved);
- the lender's identity: the lender's held balance plus the accounts' debts equals the
  opening debts plus the interest accrued (a loan, a repayment and a write-off by the fund
  each change both sides by the same amount);
- no balance is negative (the insurance fund's money balance excepted: its deficit) and no
  debt is negative.
Sums are exact (engine.waterfall.conservation.exact_sum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.margin.accounts import HELD, LENDER, OWED, SIDE_NAMES, AssetBook
from engine.waterfall.conservation import ConservationError, exact_sum


@dataclass(frozen=True)
class AssetAuditReport:
    accounts: int
    postings: int
    debts: tuple[int, ...]  # per asset, the accounts' total debt


def audit(book: AssetBook) -> AssetAuditReport:
    n = book.n_accounts
    postings = 0
    for side in (HELD, OWED):
        for k, symbol in enumerate(book.assets.symbols):
            where = f"{symbol} {SIDE_NAMES[side]}"
            ledger = book.ledgers[side][k]
            postings += len(ledger)
            debit, credit = ledger.column("debit"), ledger.column("credit")
            amount = ledger.column("amount")
            for house, balance in book.house[side][k].items():
                net = exact_sum(amount[credit == house]) - exact_sum(amount[debit == house])
                if net != balance:
                    raise ConservationError(
                        f"{where}: house account {house} holds {balance}, ledger says {net}"
                    )
            ids, nets = ledger.net_by_account()
            traders = ids >= 0
            rows = book.index.rows(ids[traders])
            if (rows < 0).any():
                raise ConservationError(
                    f"{where}: ledger names unknown accounts {ids[traders][rows < 0][:10]}"
                )
            rebuilt = np.zeros(n, dtype=np.int64)
            rebuilt[rows] = nets[traders]
            column = book._cols[side][k, :n]
            wrong = np.flatnonzero(rebuilt != column)
            if len(wrong):
                raise ConservationError(
                    f"{where}: balances differ from the ledger for accounts"
                    f" {book.account_id[wrong[:10]].tolist()}"
                )
            total = exact_sum(column) + sum(book.house[side][k].values())
            if total != 0:
                raise ConservationError(f"{where}: balances sum to {total}, not zero")
            negative = column < 0
            if side == HELD and k == book.assets.money:
                allowed = np.isin(book.account_id, list(book.overdraft_accounts))
                negative &= ~allowed
            if negative.any():
                raise ConservationError(
                    f"{where}: negative for accounts {book.account_id[negative][:10].tolist()}"
                )
    debts = []
    for k, symbol in enumerate(book.assets.symbols):
        debt = exact_sum(book.owed[k])
        lent = book.house[HELD][k][LENDER]
        if lent + debt != book.opening_debt[k] + book.interest_accrued[k]:
            raise ConservationError(
                f"{symbol}: lender {lent} + debts {debt} != opening debts"
                f" {book.opening_debt[k]} + interest {book.interest_accrued[k]}"
            )
        debts.append(debt)
    return AssetAuditReport(n, postings, tuple(debts))
