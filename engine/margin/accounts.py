"""Asset-liability accounts: what each account holds and owes in every asset, and the ledgers.

`AssetBook` keeps, per asset k and account row a, two int64 columns in asset units:
`held[k, a]` (the balance: cash, coins, shares) and `owed[k, a]` (the liability: borrowed
principal plus accrued interest). Both are asset-major arrays of shape (n_assets,
capacity), the layout the native sweep reads (csrc/asset_liability.h). Every change is a
double-entry posting in that asset's held or owed ledger (engine.book.ledger.Ledger), so the
ledgers alone rebuild every column and each ledger's balances, house accounts included, sum
to zero (engine.margin.audit checks it).

House accounts (negative ids): EXTERNAL (engine.book.ledger) is the world deposits come
from; LENDER is the house's lending desk: a loan is a posting LENDER -> account in the held
ledger (the asset paid out) and one in the owed ledger (the debt), interest a posting
LENDER -> account in the owed ledger, a repayment account -> LENDER in both; MARKET is the
market outside the book, the other side of spot trades and forced sales. So per asset,
lender's held balance + the accounts' debts = opening debts + interest accrued, exactly.

The insurance fund's account (the profile's) is the one account whose money balance may go
below zero: that is its deficit, which the waterfall reports (engine.margin.liquidation).
Every public operation checks everything first and writes after, so a rejected operation
leaves the book as it was.
"""

from __future__ import annotations

import numpy as np

from engine.book.accounts import AccountIndex
from engine.book.errors import Rejected, as_int
from engine.book.ledger import EXTERNAL, Ledger, Reason
from engine.book.limits import RESERVED_ACCOUNT_BASE, VALUE_MAX
from engine.book.reasons import RejectReason
from engine.margin.assets import AssetTable

LENDER = -21  # the house's lending desk
MARKET = -22  # the market outside the book
HELD_HOUSE = (EXTERNAL, LENDER, MARKET)
OWED_HOUSE = (LENDER,)
HELD, OWED = 0, 1
SIDE_NAMES = ("held", "owed")


class AssetBook:
    def __init__(self, assets: AssetTable) -> None:
        self.assets = assets
        n = len(assets)
        self.index = AccountIndex()
        self.n_accounts = 0
        self.ids = np.zeros(16, dtype=np.int64)
        self._cols = (np.zeros((n, 16), dtype=np.int64), np.zeros((n, 16), dtype=np.int64))
        # Settlement days an account's margin call has stood (engine.margin.settle).
        self.call_days = np.zeros(16, dtype=np.int64)
        self.house = (
            [dict.fromkeys(HELD_HOUSE, 0) for _ in range(n)],
            [dict.fromkeys(OWED_HOUSE, 0) for _ in range(n)],
        )
        self.ledgers = ([Ledger() for _ in range(n)], [Ledger() for _ in range(n)])
        self.price = np.zeros(n, dtype=np.int64)  # money units per whole asset
        self.price_set = np.zeros(n, dtype=bool)
        self.price[assets.money] = 10**assets.money_decimals
        self.price_set[assets.money] = True
        self.opening_debt = [0] * n  # per asset, loaded with the book
        self.interest_accrued = [0] * n  # per asset, since the book was opened
        # Accounts allowed a negative money balance: the insurance fund's deficit.
        self.overdraft_accounts: set[int] = set()
        self._next_event_id = 1

    # ----- columns ---------------------------------------------------------------------
    @property
    def held_columns(self) -> np.ndarray:
        """The whole (n_assets, capacity) held array (the kernel's input)."""
        return self._cols[HELD]

    @property
    def owed_columns(self) -> np.ndarray:
        return self._cols[OWED]

    @property
    def held(self) -> np.ndarray:
        return self._cols[HELD][:, : self.n_accounts]

    @property
    def owed(self) -> np.ndarray:
        return self._cols[OWED][:, : self.n_accounts]

    @property
    def account_id(self) -> np.ndarray:
        return self.ids[: self.n_accounts]

    def new_event_id(self) -> int:
        return self._event_id(None)

    def _event_id(self, event_id: int | None) -> int:
        if event_id is None:
            event_id = self._next_event_id
        self._next_event_id = max(self._next_event_id, event_id + 1)
        return event_id

    def _grow(self, extra: int) -> None:
        need = self.n_accounts + extra
        cap = self.ids.shape[0]
        if need <= cap:
            return
        cap = max(need, 2 * cap)
        n = self.n_accounts
        ids = np.zeros(cap, dtype=np.int64)
        ids[:n] = self.ids[:n]
        days = np.zeros(cap, dtype=np.int64)
        days[:n] = self.call_days[:n]
        cols = []
        for old in self._cols:
            new = np.zeros((old.shape[0], cap), dtype=np.int64)
            new[:, :n] = old[:, :n]
            cols.append(new)
        self.ids, self.call_days, self._cols = ids, days, (cols[0], cols[1])

    # ----- postings --------------------------------------------------------------------
    def post(
        self,
        side: int,
        asset: int,
        debit: int,
        credit: int,
        amount: int,
        reason: Reason,
        event_id: int,
    ) -> None:
        """One posting in the held or owed ledger of `asset` with the column changes."""
        if amount == 0:
            return
        if amount < 0:
            debit, credit, amount = credit, debit, -amount
        self.ledgers[side][asset].post(debit, credit, amount, reason, event_id)
        house = self.house[side][asset]
        for account, delta in ((debit, -amount), (credit, amount)):
            if account < 0:
                house[account] += delta
            else:
                self._cols[side][asset, self.index.row(account)] += delta

    def row_of(self, account_id: int) -> int:
        row = self.index.find(account_id)
        if row is None:
            raise Rejected(RejectReason.UNKNOWN_ACCOUNT, f"unknown account {account_id}")
        return row

    def asset_of(self, symbol: str) -> int:
        k = self.assets.asset_index(symbol)
        if k is None:
            raise Rejected(RejectReason.UNKNOWN_SYMBOL, f"unknown asset {symbol[:64]!r}")
        return k

    def of(self, side: int, asset: int, account_id: int) -> int:
        if account_id < 0:
            return self.house[side][asset][account_id]
        return int(self._cols[side][asset, self.row_of(account_id)])

    # ----- loading ---------------------------------------------------------------------
    def open_account(self, account_id: int) -> int:
        account_id = as_int(account_id, "account_id")
        if account_id < 0:
            raise Rejected(
                RejectReason.INVALID_ACCOUNT, f"account ids must be >= 0, got {account_id}"
            )
        if self.index.find(account_id) is not None:
            raise Rejected(RejectReason.DUPLICATE_ACCOUNT, f"account {account_id} already exists")
        self._grow(1)
        row = self.index.add(account_id)
        self.ids[row] = account_id
        self.n_accounts += 1
        return row

    def load(self, account_ids: np.ndarray, held: np.ndarray, owed: np.ndarray) -> None:
        """Accounts of a fresh book with their opening balances and debts: held[k, i] and
        owed[k, i] for account_ids[i] (checked by the caller: ids distinct, >= 0 and
        below the reserved range, amounts in [0, VALUE_MAX]). Openings are postings:
        EXTERNAL -> account (held), LENDER -> account (owed)."""
        assert self.n_accounts == 0, "a load starts from an empty book"
        n = len(account_ids)
        assert held.shape == owed.shape == (len(self.assets), n)
        assert ((held >= 0) & (held <= VALUE_MAX) & (owed >= 0) & (owed <= VALUE_MAX)).all()
        self._grow(n)
        rows = self.index.add_many(np.asarray(account_ids, dtype=np.int64))
        self.ids[rows] = account_ids
        self.n_accounts = n
        event_id = self.new_event_id()
        ids = np.asarray(account_ids, dtype=np.int64)
        for side, values, house in ((HELD, held, EXTERNAL), (OWED, owed, LENDER)):
            for k in range(len(self.assets)):
                amount = np.asarray(values[k], dtype=np.int64)
                self.ledgers[side][k].post_many(
                    np.full(n, house, dtype=np.int64),
                    ids,
                    amount,
                    Reason.OPENING_BALANCE,
                    np.full(n, event_id, dtype=np.int64),
                )
                self._cols[side][k, rows] = amount
                self.house[side][k][house] -= sum(amount.tolist())
        self.opening_debt = [sum(owed[k].tolist()) for k in range(len(self.assets))]

    def set_price(self, asset: int, price: int) -> None:
        """The price of a whole unit of `asset` in money units (the money asset's is fixed)."""
        price = as_int(price, "price")
        if asset == self.assets.money:
            raise Rejected(RejectReason.INVALID_PRICE, "the money asset's price is fixed at 1")
        if not 0 <= price <= VALUE_MAX:
            raise Rejected(RejectReason.INVALID_PRICE, f"price must be 0 to 2^62, got {price}")
        self.price[asset] = price
        self.price_set[asset] = True

    # ----- checks shared by the operations ---------------------------------------------
    def _amount(self, amount: int, what: str) -> int:
        amount = as_int(amount, "amount")
        if not 0 < amount <= VALUE_MAX:
            raise Rejected(
                RejectReason.INVALID_AMOUNT, f"{what} amount must be 1 to 2^62 units, got {amount}"
            )
        return amount

    def _trader(self, account_id: int) -> int:
        account_id = as_int(account_id, "account_id")
        if account_id >= RESERVED_ACCOUNT_BASE or account_id in self.overdraft_accounts:
            raise Rejected(
                RejectReason.RESERVED_ACCOUNT, f"account {account_id} is the house's own"
            )
        return account_id

    def _fits(self, side: int, asset: int, row: int | None, amount: int) -> None:
        now = 0 if row is None else int(self._cols[side][asset, row])
        if now + amount > VALUE_MAX:
            raise Rejected(RejectReason.OVERFLOW, f"a {SIDE_NAMES[side]} balance would exceed 2^62")
