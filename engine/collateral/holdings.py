"""Collateral assets held by the book's accounts: quantities, prices, haircut values.

Units: an asset's quantity is an integer number of its `qty_step`, its price an integer number
of its `price_step` (money currency per whole asset). The money value of q steps at p ticks is
q x p x F money units, F = qty_step x price_step / money_step (an exact fraction), and the
value that counts as margin is

    value(q, p) = floor(q x p x F x (1 - haircut))        per (account, asset)

rounded down (the house's favour), summed over the account's assets. The book adds that sum to
the cash balance in every risk view (Book.collateral_value, read by Book.risk_balance), so
equity = balance + sum of haircut values + unrealized PnL, and the sweep's status is decided on
it exactly, in integers.

Takeover (the profile's `collateral.sale = "haircut_value"`): before a breached account is
taken over, each of its assets is sold to the market at exactly the value that counted, one
posting EXTERNAL -> account (Reason.COLLATERAL_SALE) per account; the quantities leave the
venue (an asset-ledger `sale` row). So the cash equity the takeover moves equals the equity the
sweep saw, and the fund takes the account over at its bankruptcy value as for any account.

Conservation: money through the book's ledger (engine.waterfall.conservation); assets through
the asset ledger here: per asset, holdings = deposits - withdrawals - sales, and every cached
value equals the formula (`audit`). Every refusal is a Rejected, with nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from engine.book.book import Book
from engine.book.errors import Rejected, as_int
from engine.book.fixed import RATE_SCALE
from engine.book.ledger import EXTERNAL, Reason
from engine.book.limits import BALANCE_MAX
from engine.book.reasons import RejectReason
from engine.collateral.rules import CollateralAssetRule, CollateralRules

ASSET_LEDGER_KINDS = ("deposit", "withdraw", "sale")


class CollateralAuditError(AssertionError):
    pass


@dataclass(frozen=True)
class AssetMove:
    """One row of the asset ledger: `qty` steps of `asset` into (deposit) or out of the
    account (withdraw, sale); for a sale `value` is the money it was sold for."""

    event_id: int
    account_id: int
    asset: int
    qty: int
    kind: str
    value: int = 0


class CollateralBook:
    """The collateral of one book's accounts under a profile's `[collateral]` rules."""

    def __init__(self, book: Book, rules: CollateralRules) -> None:
        self.book = book
        self.rules = rules
        self.assets: tuple[CollateralAssetRule, ...] = rules.assets
        self.index = {a.symbol: i for i, a in enumerate(self.assets)}
        money_step = Fraction(book.instruments.money_step)
        factors = [
            Fraction(a.qty_step) * Fraction(a.price_step) / money_step * (RATE_SCALE - a.haircut)
            for a in self.assets
        ]
        # value(q, p) = floor(q * p * num / den), the haircut folded in
        self._num = [f.numerator for f in factors]
        self._den = [f.denominator * RATE_SCALE for f in factors]
        self.price: list[int | None] = [None] * len(self.assets)
        self.qty: list[dict[int, int]] = [{} for _ in self.assets]  # asset -> row -> steps
        self._value: list[dict[int, int]] = [{} for _ in self.assets]  # asset -> row -> money
        self.moves: list[AssetMove] = []
        self.value_by_row = np.zeros(max(16, book.n_accounts), dtype=np.int64)
        book.collateral_value = self.value_by_row

    # ----- values ------------------------------------------------------------------------
    def value_of(self, asset: int, qty: int, price: int | None) -> int:
        """The haircut value in money units of `qty` steps at `price` ticks (0 unpriced)."""
        if price is None or qty == 0:
            return 0
        return qty * price * self._num[asset] // self._den[asset]

    def row_value(self, row: int) -> int:
        return int(self.value_by_row[row]) if row < len(self.value_by_row) else 0

    def holdings_of(self, account_id: int) -> dict[str, int]:
        """{asset symbol: steps} of one account (assets held only)."""
        row = self.book.row_of(account_id)
        return {a.symbol: q[row] for a, q in zip(self.assets, self.qty, strict=True) if row in q}

    def prices_ready(self) -> bool:
        """Every asset somebody holds has a price (until then the service does not sweep)."""
        return all(p is not None or not q for p, q in zip(self.price, self.qty, strict=True))

    def asset(self, symbol: str) -> int:
        index = self.index.get(symbol)
        if index is None:
            raise Rejected(
                RejectReason.UNKNOWN_ASSET,
                f"collateral asset {symbol[:64]!r} is not in the profile's [collateral] assets",
            )
        return index

    def _grow(self) -> None:
        n = self.book.n_accounts
        if n <= len(self.value_by_row):
            return
        grown = np.zeros(max(n, 2 * len(self.value_by_row)), dtype=np.int64)
        grown[: len(self.value_by_row)] = self.value_by_row
        self.value_by_row = grown
        self.book.collateral_value = grown

    def _set(self, asset: int, row: int, qty: int, value: int) -> None:
        old = self._value[asset].get(row, 0)
        if qty:
            self.qty[asset][row] = qty
            self._value[asset][row] = value
        else:
            self.qty[asset].pop(row, None)
            self._value[asset].pop(row, None)
        self.value_by_row[row] += value - old
        self.book.changed_rows.add(row)

    # ----- operations --------------------------------------------------------------------
    def set_price(self, symbol: str, price: int) -> None:
        """A collateral price (ticks of its price_step) revalues every holder of the asset."""
        asset = self.asset(symbol)
        price = as_int(price, "collateral price")
        if not price >= 0:
            raise Rejected(RejectReason.INVALID_PRICE, f"{symbol}: price must not be negative")
        new = {row: self.value_of(asset, q, price) for row, q in self.qty[asset].items()}
        for row, value in new.items():
            total = self.row_value(row) - self._value[asset].get(row, 0) + value
            if total > BALANCE_MAX:
                account = int(self.book.account_id[row])
                raise Rejected(
                    RejectReason.OVERFLOW,
                    f"{symbol} at {price}: account {account}'s collateral value passes"
                    f" {BALANCE_MAX} units",
                )
        self.price[asset] = price
        for row, value in new.items():
            self._set(asset, row, self.qty[asset][row], value)

    def deposit(self, account_id: int, symbol: str, qty: int, event_id: int) -> None:
        """`qty` steps (> 0) of an asset into an account (opened when new)."""
        asset = self.asset(symbol)
        qty = as_int(qty, "qty")
        account_id = as_int(account_id, "account_id")
        if not qty > 0:
            raise Rejected(RejectReason.INVALID_QTY, f"collateral deposit must be positive: {qty}")
        book = self.book
        row = book.index.find(account_id)
        held = 0 if row is None else self.qty[asset].get(row, 0)
        value = self.value_of(asset, held + qty, self.price[asset])
        old = 0 if row is None else self.row_value(row) - self._value[asset].get(row, 0)
        if old + value > BALANCE_MAX or held + qty > BALANCE_MAX:
            raise Rejected(
                RejectReason.OVERFLOW,
                f"account {account_id}: collateral of {symbol} would pass {BALANCE_MAX} units",
            )
        if row is None:
            row = book.open_account(account_id)
        self._grow()
        self._set(asset, row, held + qty, value)
        self.moves.append(AssetMove(event_id, account_id, asset, qty, "deposit"))
        assert self.qty[asset][row] == held + qty, f"account {account_id}: deposit misapplied"

    def withdraw(self, account_id: int, symbol: str, qty: int, event_id: int) -> None:
        """Refused beyond the holding, or when equity after it falls below the account's
        initial margin (the rule a cash withdrawal meets)."""
        asset = self.asset(symbol)
        qty = as_int(qty, "qty")
        if not qty > 0:
            raise Rejected(
                RejectReason.INVALID_QTY, f"collateral withdrawal must be positive: {qty}"
            )
        book = self.book
        row = book.row_of(account_id)
        held = self.qty[asset].get(row, 0)
        if qty > held:
            raise Rejected(
                RejectReason.INSUFFICIENT_COLLATERAL,
                f"account {account_id}: withdrawing {qty} steps of {symbol}, holds {held}",
            )
        old_value = self._value[asset].get(row, 0)
        new_value = self.value_of(asset, held - qty, self.price[asset])
        equity, initial_margin = book._account_equity_and_initial_margin(row)
        if equity - (old_value - new_value) < initial_margin:
            raise Rejected(
                RejectReason.INSUFFICIENT_MARGIN,
                f"account {account_id}: withdrawing {qty} steps of {symbol} leaves equity"
                f" {equity - (old_value - new_value)} below initial margin {initial_margin}",
            )
        self._set(asset, row, held - qty, new_value)
        self.moves.append(AssetMove(event_id, account_id, asset, qty, "withdraw"))

    def sell_for_takeover(self, rows: np.ndarray, event_id: int) -> dict[int, int]:
        """Sell every asset of the accounts at `rows` at its haircut value (the value the
        sweep counted): one COLLATERAL_SALE posting per account. Returns {row: money}."""
        book = self.book
        sold: dict[int, int] = {}
        for row in sorted(set(np.asarray(rows, dtype=np.int64).tolist())):
            value = self.row_value(row)
            held = [(a, q[row]) for a, q in enumerate(self.qty) if row in q]
            if not held:
                continue
            account_id = int(book.account_id[row])
            balance = int(book.balance[row])
            for asset, qty in held:
                part = self._value[asset][row]
                self.moves.append(AssetMove(event_id, account_id, asset, qty, "sale", part))
                self._set(asset, row, 0, 0)
            if value:
                book.transfer(EXTERNAL, account_id, value, Reason.COLLATERAL_SALE, event_id)
            sold[row] = value
            assert self.row_value(row) == 0 and int(book.balance[row]) == balance + value, (
                f"account {account_id}: collateral sale moved other than its haircut value"
            )
        return sold

    def load_holding(self, account_id: int, symbol: str, qty: int) -> None:
        """A holding carried over from a snapshot (an account of the book holding none of
        the asset yet): valued at the asset's price, with an opening asset-ledger row
        (event id 0, as the book's opening postings)."""
        asset, row = self.asset(symbol), self.book.row_of(account_id)
        assert qty > 0 and row not in self.qty[asset], (account_id, symbol, qty)
        self._grow()
        self._set(asset, row, qty, self.value_of(asset, qty, self.price[asset]))
        self.moves.append(AssetMove(0, account_id, asset, qty, "deposit"))

    # ----- audit -------------------------------------------------------------------------
    def audit(self) -> None:
        """Per asset: holdings = deposits - withdrawals - sales; every cached value equals the
        formula at the current price; the book reads these values."""
        net = [0] * len(self.assets)
        for move in self.moves:
            net[move.asset] += move.qty if move.kind == "deposit" else -move.qty
        for asset, rule in enumerate(self.assets):
            held = sum(self.qty[asset].values())
            if held != net[asset] or min(self.qty[asset].values(), default=1) <= 0:
                raise CollateralAuditError(
                    f"{rule.symbol}: accounts hold {held} steps, the asset ledger says {net[asset]}"
                )
        by_row = np.zeros(len(self.value_by_row), dtype=np.int64)
        for asset, holders in enumerate(self.qty):
            for row, qty in holders.items():
                value = self.value_of(asset, qty, self.price[asset])
                if self._value[asset][row] != value:
                    account = int(self.book.account_id[row])
                    raise CollateralAuditError(f"account {account}: stale value of asset {asset}")
                by_row[row] += value
        if not np.array_equal(by_row, self.value_by_row):
            raise CollateralAuditError("collateral values per account differ from their sum")
        if self.book.collateral_value is not self.value_by_row:
            raise CollateralAuditError("the book does not read this collateral's values")
