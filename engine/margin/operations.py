"""What a customer (or the settlement) does to an asset-liability account, each one or more
ledger postings through the AssetBook: deposit, withdraw, borrow, repay, a spot trade
against the market, and interest accrual.

Each operation checks everything first and writes after, so a rejected one leaves the book
as it was; each asserts its postings moved exactly what it says (before and after). A
withdrawal or a loan must leave the account's maintenance ratio at or above the call level
(`insufficient_margin` otherwise): a customer cannot walk into a margin call. Repaying and
depositing are always allowed; interest accrues whatever the ratio.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE
from engine.book.ledger import EXTERNAL, Reason
from engine.book.limits import VALUE_MAX
from engine.book.reasons import RejectReason
from engine.margin.accounts import HELD, LENDER, MARKET, OWED, AssetBook
from engine.margin.ratio import STATUS_OK, account_values, status_of
from engine.waterfall.profile import AssetLiabilityRules


def deposit(
    book: AssetBook, account_id: int, asset: int, amount: int, event_id: int | None = None
) -> None:
    """`amount` units of `asset` in from outside; opens the account when it is new."""
    account_id = book._trader(account_id)
    amount = book._amount(amount, "deposit")
    row = book.index.find(account_id)
    book._fits(HELD, asset, row, amount)
    if row is None:
        row = book.open_account(account_id)
    before = int(book.held_columns[asset, row])
    book.post(HELD, asset, EXTERNAL, account_id, amount, Reason.DEPOSIT, book._event_id(event_id))
    assert int(book.held_columns[asset, row]) == before + amount, f"account {account_id}: deposit"


def withdraw(
    book: AssetBook,
    rules: AssetLiabilityRules,
    account_id: int,
    asset: int,
    amount: int,
    event_id: int | None = None,
) -> None:
    """`amount` units of `asset` out; refused beyond the balance or below the call level."""
    account_id = book._trader(account_id)
    amount = book._amount(amount, "withdraw")
    row = book.row_of(account_id)
    before = int(book.held_columns[asset, row])
    if amount > before:
        raise Rejected(
            RejectReason.INSUFFICIENT_MARGIN,
            f"account {account_id}: withdrawing {amount} of {book.assets.symbols[asset]}"
            f" exceeds the balance {before}",
        )
    _check_ratio_after(book, rules, row, account_id, {asset: -amount}, {}, "withdrawing")
    book.post(HELD, asset, account_id, EXTERNAL, amount, Reason.WITHDRAW, book._event_id(event_id))
    assert int(book.held_columns[asset, row]) == before - amount >= 0, f"account {account_id}"


def borrow(
    book: AssetBook,
    rules: AssetLiabilityRules,
    account_id: int,
    asset: int,
    amount: int,
    event_id: int | None = None,
) -> None:
    """A loan of `amount` units of `asset` from the lender: held and owed both rise."""
    account_id = book._trader(account_id)
    amount = book._amount(amount, "borrow")
    row = book.row_of(account_id)
    if not book.price_set[asset]:
        raise Rejected(RejectReason.NO_MARK, f"no price for {book.assets.symbols[asset]}")
    book._fits(HELD, asset, row, amount)
    book._fits(OWED, asset, row, amount)
    _check_ratio_after(book, rules, row, account_id, {asset: amount}, {asset: amount}, "borrowing")
    held0, owed0 = int(book.held_columns[asset, row]), int(book.owed_columns[asset, row])
    event_id = book._event_id(event_id)
    book.post(HELD, asset, LENDER, account_id, amount, Reason.BORROW, event_id)
    book.post(OWED, asset, LENDER, account_id, amount, Reason.BORROW, event_id)
    assert int(book.held_columns[asset, row]) == held0 + amount, f"account {account_id}: loan"
    assert int(book.owed_columns[asset, row]) == owed0 + amount, f"account {account_id}: debt"


def repay(
    book: AssetBook, account_id: int, asset: int, amount: int, event_id: int | None = None
) -> None:
    """`amount` units of `asset` paid back to the lender from the account's balance."""
    account_id = book._trader(account_id)
    amount = book._amount(amount, "repay")
    row = book.row_of(account_id)
    held0, owed0 = int(book.held_columns[asset, row]), int(book.owed_columns[asset, row])
    if amount > owed0 or amount > held0:
        raise Rejected(
            RejectReason.INVALID_AMOUNT,
            f"account {account_id}: repaying {amount} of {book.assets.symbols[asset]}, but owes"
            f" {owed0} and holds {held0}",
        )
    repay_posting(book, account_id, asset, amount, book._event_id(event_id))
    assert int(book.held_columns[asset, row]) == held0 - amount, f"account {account_id}: repay"
    assert int(book.owed_columns[asset, row]) == owed0 - amount, f"account {account_id}: repay"


def repay_posting(book: AssetBook, account_id: int, asset: int, amount: int, event_id: int) -> None:
    """The two postings of a repayment (checked by the caller)."""
    book.post(HELD, asset, account_id, LENDER, amount, Reason.REPAY, event_id)
    book.post(OWED, asset, account_id, LENDER, amount, Reason.REPAY, event_id)


def trade_cost(qty: int, price: int, unit: int) -> int:
    """Money units a spot trade of `qty` units moves, in the house's favour: a buyer pays
    ceil(qty x price / unit), a seller receives floor(|qty| x price / unit)."""
    if qty >= 0:
        return -(-qty * price // unit)
    return -qty * price // unit


def spot_trade(
    book: AssetBook,
    rules: AssetLiabilityRules,
    account_id: int,
    asset: int,
    qty: int,
    event_id: int | None = None,
) -> int:
    """Buy (qty > 0) or sell (qty < 0) units of `asset` against the market at its price,
    paying or receiving money (trade_cost). Returns the money moved. A trade may not leave
    the account below the call level, nor any balance negative."""
    account_id = book._trader(account_id)
    money = book.assets.money
    if asset == money or qty == 0 or not abs(qty) <= VALUE_MAX:
        raise Rejected(RejectReason.INVALID_QTY, "trade a non-money asset by a non-zero qty")
    if not book.price_set[asset]:
        raise Rejected(RejectReason.NO_MARK, f"no price for {book.assets.symbols[asset]}")
    row = book.row_of(account_id)
    cost = trade_cost(qty, int(book.price[asset]), int(book.assets.unit[asset]))
    cash = -cost if qty > 0 else cost
    if (
        int(book.held_columns[asset, row]) + qty < 0
        or int(book.held_columns[money, row]) + cash < 0
    ):
        raise Rejected(RejectReason.INSUFFICIENT_MARGIN, f"account {account_id}: balance too low")
    book._fits(HELD, asset, row, max(qty, 0))
    book._fits(HELD, money, row, max(cash, 0))
    _check_ratio_after(book, rules, row, account_id, {asset: qty, money: cash}, {}, "trading")
    event_id = book._event_id(event_id)
    book.post(HELD, asset, MARKET, account_id, qty, Reason.SPOT_TRADE, event_id)
    book.post(HELD, money, MARKET, account_id, cash, Reason.SPOT_TRADE, event_id)
    return cost


def accrue_interest(book: AssetBook, rates: Mapping[int, int], event_id: int | None = None) -> int:
    """Interest for one period on every debt: asset k's rate (over RATE_SCALE, per period)
    adds ceil(owed x rate / S) to what each account owes (a posting LENDER -> account in the
    owed ledger). Interest accrues on the whole debt, earlier interest included. All rates
    are checked before anything is written. Returns the units accrued, summed over assets."""
    n = book.n_accounts
    planned: dict[int, np.ndarray] = {}
    for k, rate in sorted(rates.items()):
        if not 0 <= rate <= RATE_SCALE:
            raise Rejected(RejectReason.INVALID_VALUE, f"interest rate of asset {k} not in [0, 1]")
        owed = book.owed_columns[k, :n].tolist()
        # owed <= 2^62 and rate <= 2^27: the product is formed with Python integers.
        interest = [-(-o * rate // RATE_SCALE) for o in owed]
        if any(o + i > VALUE_MAX for o, i in zip(owed, interest, strict=True)):
            raise Rejected(RejectReason.OVERFLOW, "interest would take a debt beyond 2^62")
        planned[k] = np.asarray(interest, dtype=np.int64)
    event_id = book._event_id(event_id)
    total = 0
    for k, amounts in planned.items():
        before = sum(book.owed_columns[k, :n].tolist())
        book.ledgers[OWED][k].post_many(
            np.full(n, LENDER, dtype=np.int64),
            book.account_id,
            amounts,
            Reason.INTEREST,
            np.full(n, event_id, dtype=np.int64),
        )
        book.owed_columns[k, :n] += amounts
        accrued = sum(amounts.tolist())
        book.house[OWED][k][LENDER] -= accrued
        book.interest_accrued[k] += accrued
        assert sum(book.owed_columns[k, :n].tolist()) == before + accrued, f"interest of {k}"
        total += accrued
    return total


def _check_ratio_after(
    book: AssetBook,
    rules: AssetLiabilityRules,
    row: int,
    account_id: int,
    held_change: Mapping[int, int],
    owed_change: Mapping[int, int],
    doing: str,
) -> None:
    """Refuse unless the account would be at or above the call level after the change."""
    held, owed = book.held_columns, book.owed_columns
    for k, d in held_change.items():
        held[k, row] += d
    for k, d in owed_change.items():
        owed[k, row] += d
    try:
        status = status_of(*account_values(book, row), rules)
    finally:
        for k, d in held_change.items():
            held[k, row] -= d
        for k, d in owed_change.items():
            owed[k, row] -= d
    if status != STATUS_OK:
        raise Rejected(
            RejectReason.INSUFFICIENT_MARGIN,
            f"account {account_id}: {doing} would leave the maintenance ratio below the call level",
        )
