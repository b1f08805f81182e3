"""Account balances and the ledger: every balance change is a double-entry posting.

`Balances` holds the account ids and balances as int64 columns by account row, the id ->
row index, the house accounts' balances (negative ids, engine.book.ledger) and the ledger.
Its only writers are `post`, `post_many` and `transfer`, each posting to the ledger and
changing both balances by the same amount, so the ledger alone rebuilds every balance and
all balances, house accounts included, sum to zero. Rows whose balance changed are added
to `changed_rows` for the incremental sweep.
"""

from __future__ import annotations

import numpy as np

from engine.book.accounts import AccountIndex, UnknownAccountError
from engine.book.errors import Rejected, as_int
from engine.book.ledger import HOUSE_ACCOUNTS, Ledger, Reason
from engine.book.reasons import RejectReason


class Balances:
    def __init__(self) -> None:
        self.ledger = Ledger()
        self.index = AccountIndex()
        self.house_balance = dict.fromkeys(HOUSE_ACCOUNTS, 0)
        self.n_accounts = 0
        self.ids = np.zeros(16, dtype=np.int64)  # capacity; rows [0, n_accounts) are live
        self.amount = np.zeros(16, dtype=np.int64)
        # Rows whose balance or positions changed since a consumer (the incremental sweep)
        # last drained this set.
        self.changed_rows: set[int] = set()

    def _grow(self, extra: int) -> None:
        need = self.n_accounts + extra
        if need <= len(self.amount):
            return
        cap = max(need, 2 * len(self.amount))
        for name in ("ids", "amount"):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=np.int64)
            new[: self.n_accounts] = old[: self.n_accounts]
            setattr(self, name, new)

    def add(self, account_id: int) -> int:
        """A new account row at balance 0 (the caller checked the id is new and valid)."""
        self._grow(1)
        row = self.index.add(account_id)
        self.ids[row] = account_id
        self.amount[row] = 0
        self.n_accounts += 1
        return row

    def drop_newest(self, count: int) -> None:
        """Forget the accounts from row `count` on (an undo of `add`; their balances are 0)."""
        assert not self.amount[count : self.n_accounts].any(), "dropping accounts that hold money"
        self.index.drop_newest(count)
        self.changed_rows.difference_update(range(count, self.n_accounts))
        self.n_accounts = min(self.n_accounts, count)

    def load(self, index: AccountIndex, account_ids: np.ndarray, rows: np.ndarray) -> None:
        """Accounts of a fresh book from checked columns, at balance 0."""
        assert self.n_accounts == 0, "a load starts from an empty book"
        n = len(account_ids)
        self._grow(n)
        self.index = index
        self.ids[rows] = account_ids
        self.n_accounts = n

    def row_of(self, account_id: int) -> int:
        try:
            return self.index.row(account_id)
        except UnknownAccountError:
            raise Rejected(RejectReason.UNKNOWN_ACCOUNT, f"unknown account {account_id}") from None

    def of(self, account: int) -> int:
        """The balance of a known account (house accounts are negative ids)."""
        if account < 0:
            return self.house_balance[account]
        return int(self.amount[self.index.row(account)])

    def post(self, debit: int, credit: int, amount: int, reason: Reason, event_id: int) -> None:
        """Ledger posting plus the matching balance changes. amount may be of either sign."""
        if amount == 0:
            return
        if amount < 0:
            debit, credit, amount = credit, debit, -amount
        self.ledger.post(debit, credit, amount, reason, event_id)
        for account, delta in ((debit, -amount), (credit, amount)):
            if account < 0:
                self.house_balance[account] += delta
            else:
                row = self.index.row(account)
                self.amount[row] += delta
                self.changed_rows.add(row)

    def transfer(self, debit: int, credit: int, amount: int, reason: Reason, event_id: int) -> None:
        """Move `amount` (> 0 money units) between two known accounts as one ledger posting."""
        amount = as_int(amount, "amount")
        if not amount > 0:
            raise Rejected(
                RejectReason.INVALID_AMOUNT, f"transfer amount must be positive, got {amount}"
            )
        for account in (debit, credit):
            if account < 0:
                if account not in self.house_balance:
                    raise Rejected(RejectReason.UNKNOWN_ACCOUNT, f"unknown house account {account}")
            else:
                self.row_of(account)
        before = self.of(debit), self.of(credit)
        self.post(debit, credit, amount, reason, event_id)
        after = self.of(debit), self.of(credit)
        assert after == (before[0] - amount, before[1] + amount), (
            f"transfer {debit} -> {credit} of {amount} misposted"
        )

    def post_many(
        self,
        debit: np.ndarray | int,
        credit: np.ndarray | int,
        amount: np.ndarray,
        reason: Reason,
        event_ids: np.ndarray | int,
    ) -> None:
        """Many ledger postings with their balance changes; amounts are signed: a negative
        amount moves money from `credit` to `debit`. Zero amounts move nothing. Accounts
        must exist (house accounts are negative ids)."""
        amount = np.asarray(amount, dtype=np.int64)
        debit = np.broadcast_to(np.asarray(debit, dtype=np.int64), amount.shape)
        credit = np.broadcast_to(np.asarray(credit, dtype=np.int64), amount.shape)
        forward = amount >= 0
        payer = np.where(forward, debit, credit)
        payee = np.where(forward, credit, debit)
        magnitude = np.abs(amount)
        for house in np.unique(np.concatenate([payer[payer < 0], payee[payee < 0]])).tolist():
            if house not in self.house_balance:
                raise Rejected(RejectReason.UNKNOWN_ACCOUNT, f"unknown house account {house}")
        self.ledger.post_many(
            payer, payee, magnitude, reason, np.asarray(event_ids, dtype=np.int64)
        )
        for ids, sign in ((payer, -1), (payee, 1)):
            trader = ids >= 0
            rows = self.index.rows(ids[trader])
            assert (rows >= 0).all(), f"posting to unknown accounts {ids[trader][rows < 0][:10]}"
            np.add.at(self.amount, rows, sign * magnitude[trader])
            self.changed_rows.update(rows[magnitude[trader] != 0].tolist())
            for house in np.unique(ids[~trader]).tolist():
                self.house_balance[house] += sign * int(magnitude[ids == house].sum())
