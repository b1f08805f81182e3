"""The book: accounts and positions as numpy columns, money as exact integers.

Positions are grouped by account (CSR): the slots of account row `a` are
`acct_start[a]:acct_start[a + 1]`. A slot with qty == 0 and cost == 0 is free and weighs
nothing in a sweep. A position opened in an account without a free slot waits in a small
pending map until `compact()` (run before any pass that needs the CSR) rebuilds the columns.

Every change of a balance is a ledger posting, so the ledger alone rebuilds every balance
(see engine.conservation). Each public operation validates everything first and mutates
after, so a rejected operation leaves the book exactly as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine import _native
from engine.book.accounts import AccountIndex, UnknownAccountError
from engine.book.errors import Rejected
from engine.book.fixed import INT64_MAX, RATE_SCALE
from engine.book.instruments import InstrumentTable
from engine.book.ledger import CLEARING, EXTERNAL, FEES, HOUSE_ACCOUNTS, Ledger, Reason
from engine.book.reasons import RejectReason

# Account status codes (in order of severity) and their names, defined once in csrc/margin.h.
STATUS_NAMES = _native.STATUS_NAMES
STATUS_OK, STATUS_MARGIN_CALL = _native.STATUS_OK, _native.STATUS_MARGIN_CALL
STATUS_LIQUIDATE, STATUS_BANKRUPT = _native.STATUS_LIQUIDATE, _native.STATUS_BANKRUPT
WARNING_RATE_DEFAULT = 80_000_000  # 0.8
DEFAULT_LEVERAGE = 20
# |qty| * tick_value (a position's value per tick) stays below this so every product the
# kernels form fits 128 bits with room (csrc/liquidation_price.h).
POSITION_TICK_VALUE_MAX = 2**62
LEVERAGE_MAX = 10_000
BALANCE_MAX = 2**62  # a fill may not take a balance beyond +-this
PARALLEL_ACCOUNTS_MIN = 100_000


def _as_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise Rejected(
            RejectReason.INVALID_VALUE, f"{what} must be an integer number of units, got {value!r}"
        )
    return int(value)


@dataclass(frozen=True)
class _PlannedFill:
    account_id: int
    row: int
    instrument: int
    qty: int  # the position after the fill
    cost: int
    realized: int
    fee: int


@dataclass(frozen=True)
class Risk:
    """One sweep's results per account row (money units; status codes as STATUS_NAMES)."""

    equity: np.ndarray
    maintenance_margin: np.ndarray
    initial_margin: np.ndarray | None
    status: np.ndarray

    @property
    def margin_ratio(self) -> np.ndarray:
        """maintenance_margin / equity for display (inf when equity <= 0 with margin due)."""
        mm = self.maintenance_margin.astype(np.float64)
        eq = self.equity.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(eq > 0, mm / np.where(eq > 0, eq, 1.0), np.inf)
        return np.where(mm == 0, 0.0, ratio)


class Book:
    def __init__(
        self,
        instruments: InstrumentTable,
        *,
        warning_rate: int = WARNING_RATE_DEFAULT,
        default_leverage: int = DEFAULT_LEVERAGE,
    ) -> None:
        if not 0 < warning_rate <= RATE_SCALE:
            raise ValueError("warning_rate must be in (0, 1]")
        self.instruments = instruments
        self.warning_rate = warning_rate
        self.default_leverage = default_leverage
        self.ledger = Ledger()
        self.index = AccountIndex()
        self.house_balance = dict.fromkeys(HOUSE_ACCOUNTS, 0)
        self._n_accounts = 0
        self._account_id = np.zeros(16, dtype=np.int64)
        self._balance = np.zeros(16, dtype=np.int64)
        self.acct_start = np.zeros(1, dtype=np.int64)
        self.pos_instrument = np.zeros(0, dtype=np.int32)
        self.pos_qty = np.zeros(0, dtype=np.int64)
        self.pos_cost = np.zeros(0, dtype=np.int64)
        self.pos_leverage = np.zeros(0, dtype=np.int32)
        self._pending: dict[tuple[int, int], list[int]] = {}
        self._leverage_setting: dict[tuple[int, int], int] = {}
        n_inst = len(instruments)
        self.mark = np.zeros(n_inst, dtype=np.int64)
        self.mark_lot_value = np.zeros(n_inst, dtype=np.int64)
        self.mark_set = np.zeros(n_inst, dtype=bool)
        self._next_event_id = 1
        self.sweep_threads = 1
        # Rows whose balance or positions changed since a consumer (the incremental sweep)
        # last drained this set.
        self.changed_rows: set[int] = set()
        self._sweep_buffers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        # Cost basis of positions loaded from outside (not built by fills in this book): the
        # clearing account's balance plus the open cost basis equals this in a closed book.
        self.opening_position_cost = 0

    # ----- columns -----------------------------------------------------------------------
    @property
    def n_accounts(self) -> int:
        return self._n_accounts

    @property
    def account_id(self) -> np.ndarray:
        return self._account_id[: self._n_accounts]

    @property
    def balance(self) -> np.ndarray:
        return self._balance[: self._n_accounts]

    def _event_id(self, event_id: int | None) -> int:
        if event_id is None:
            event_id = self._next_event_id
        self._next_event_id = max(self._next_event_id, event_id + 1)
        return event_id

    def _grow_accounts(self, extra: int) -> None:
        need = self._n_accounts + extra
        if need <= len(self._balance):
            return
        cap = max(need, 2 * len(self._balance))
        for name in ("_account_id", "_balance"):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=np.int64)
            new[: self._n_accounts] = old[: self._n_accounts]
            setattr(self, name, new)

    def _post(self, debit: int, credit: int, amount: int, reason: Reason, event_id: int) -> None:
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
                self._balance[row] += delta
                self.changed_rows.add(row)

    # ----- accounts ----------------------------------------------------------------------
    def row_of(self, account_id: int) -> int:
        try:
            return self.index.row(account_id)
        except UnknownAccountError:
            raise Rejected(RejectReason.UNKNOWN_ACCOUNT, f"unknown account {account_id}") from None

    def open_account(self, account_id: int) -> int:
        account_id = _as_int(account_id, "account_id")
        if account_id < 0:
            raise Rejected(
                RejectReason.INVALID_ACCOUNT, f"account ids must be >= 0, got {account_id}"
            )
        if self.index.find(account_id) is not None:
            raise Rejected(RejectReason.DUPLICATE_ACCOUNT, f"account {account_id} already exists")
        self._grow_accounts(1)
        row = self.index.add(account_id)
        self._account_id[row] = account_id
        self._balance[row] = 0
        self.acct_start = np.append(self.acct_start, self.acct_start[-1])
        self._n_accounts += 1
        return row

    def deposit(self, account_id: int, amount: int, event_id: int | None = None) -> None:
        account_id = _as_int(account_id, "account_id")
        amount = _as_int(amount, "amount")
        if not amount > 0:
            raise Rejected(
                RejectReason.INVALID_AMOUNT, f"deposit amount must be positive, got {amount}"
            )
        row = self.index.find(account_id)
        if row is not None and int(self._balance[row]) + amount > INT64_MAX:
            raise Rejected(
                RejectReason.OVERFLOW, f"account {account_id}: balance would exceed int64"
            )
        if row is None:
            self.open_account(account_id)
        self._post(EXTERNAL, account_id, amount, Reason.DEPOSIT, self._event_id(event_id))

    def withdraw(self, account_id: int, amount: int, event_id: int | None = None) -> None:
        """Refused if equity after it would fall below the account's initial margin."""
        account_id = _as_int(account_id, "account_id")
        amount = _as_int(amount, "amount")
        if not amount > 0:
            raise Rejected(
                RejectReason.INVALID_AMOUNT, f"withdraw amount must be positive, got {amount}"
            )
        row = self.row_of(account_id)
        equity, initial_margin = self._account_equity_and_initial_margin(row)
        if equity - amount < initial_margin or amount > int(self._balance[row]):
            raise Rejected(
                RejectReason.INSUFFICIENT_MARGIN,
                f"account {account_id}: withdrawing {amount} leaves equity {equity - amount}"
                f" below initial margin {initial_margin} (or exceeds the balance)",
            )
        self._post(account_id, EXTERNAL, amount, Reason.WITHDRAW, self._event_id(event_id))

    def _account_equity_and_initial_margin(self, row: int) -> tuple[int, int]:
        if any(r == row for r, _ in self._pending):
            self.compact()
        lo, hi = int(self.acct_start[row]), int(self.acct_start[row + 1])
        live = np.nonzero(self.pos_qty[lo:hi])[0]
        unmarked = [int(i) for i in self.pos_instrument[lo:hi][live] if not self.mark_set[i]]
        if unmarked:
            symbol = self.instruments.instruments[unmarked[0]].symbol
            raise Rejected(RejectReason.NO_MARK, f"no mark price yet for {symbol}")
        risk = self._sweep_rows(lo, hi, self._balance[row : row + 1], with_initial_margin=True)
        assert risk.initial_margin is not None
        return int(risk.equity[0]), int(risk.initial_margin[0])

    # ----- positions ---------------------------------------------------------------------
    def _find_slot(self, row: int, instrument: int) -> int | None:
        lo, hi = int(self.acct_start[row]), int(self.acct_start[row + 1])
        for p in range(lo, hi):
            if self.pos_qty[p] != 0 and self.pos_instrument[p] == instrument:
                return p
        return None

    def _free_slot(self, row: int) -> int | None:
        lo, hi = int(self.acct_start[row]), int(self.acct_start[row + 1])
        for p in range(lo, hi):
            if self.pos_qty[p] == 0 and self.pos_cost[p] == 0:
                return p
        return None

    def position(self, account_id: int, symbol: str) -> tuple[int, int]:
        """(qty lots, cost money units) of an account in an instrument; (0, 0) if flat."""
        row = self.row_of(account_id)
        inst = self._instrument(symbol)
        return self._position(row, inst)

    def _position(self, row: int, inst: int) -> tuple[int, int]:
        pending = self._pending.get((row, inst))
        if pending is not None:
            return pending[0], pending[1]
        p = self._find_slot(row, inst)
        if p is None:
            return 0, 0
        return int(self.pos_qty[p]), int(self.pos_cost[p])

    def _instrument(self, symbol: str) -> int:
        try:
            return self.instruments.symbol_index(symbol)
        except KeyError:
            raise Rejected(RejectReason.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}") from None

    def _leverage_for(self, row: int, inst: int) -> int:
        return self._leverage_setting.get((row, inst), self.default_leverage)

    def apply_fill(
        self,
        account_id: int,
        symbol: str,
        qty: int,
        price: int,
        *,
        fee: int = 0,
        event_id: int | None = None,
    ) -> int:
        """Apply one side of a trade (qty lots signed, price ticks, fee money units).

        Opens, increases, reduces, closes or flips the position. Realized PnL of the closed
        part is `closed_qty * price * tick_value - closed_cost`, where the closed part's cost
        is rounded up (the house's favour); closing the whole position removes its whole
        cost, so nothing drifts over a position's life. Returns the realized PnL.
        """
        fill = self._plan_fill(account_id, symbol, qty, price, fee)
        self._commit_fill(fill, self._event_id(event_id))
        return fill.realized

    def apply_trade(
        self,
        symbol: str,
        price: int,
        sides: Sequence[tuple[int, int, int]],
        *,
        event_id: int | None = None,
    ) -> list[int]:
        """Every side (account, qty, fee) of one trade, applied whole or not at all: all
        sides are checked before any is applied. Returns each side's realized PnL."""
        accounts = [side[0] for side in sides]
        if len(set(accounts)) != len(accounts):
            raise Rejected(
                RejectReason.INVALID_TRADE, f"an account appears twice in one trade: {accounts}"
            )
        fills = [self._plan_fill(a, symbol, q, price, f) for a, q, f in sides]
        event = self._event_id(event_id)
        for fill in fills:
            self._commit_fill(fill, event)
        return [fill.realized for fill in fills]

    def _plan_fill(
        self, account_id: int, symbol: str, qty: int, price: int, fee: int
    ) -> _PlannedFill:
        """Validate one fill side and compute its result; changes nothing."""
        account_id = _as_int(account_id, "account_id")
        qty = _as_int(qty, "qty")
        price = _as_int(price, "price")
        fee = _as_int(fee, "fee")
        row = self.row_of(account_id)
        inst = self._instrument(symbol)
        if qty == 0:
            raise Rejected(RejectReason.INVALID_QTY, "fill qty must not be zero")
        if not price > 0:
            raise Rejected(RejectReason.INVALID_PRICE, f"fill price must be positive, got {price}")
        if fee < 0:
            raise Rejected(RejectReason.INVALID_AMOUNT, f"fee must not be negative, got {fee}")
        tick_value = int(self.instruments.tick_value[inst])
        old_qty, old_cost = self._position(row, inst)
        new_qty = old_qty + qty
        fill_value = qty * price * tick_value
        if old_qty == 0 or (old_qty > 0) == (qty > 0):
            realized = 0
            new_cost = old_cost + fill_value
        else:
            closed = -qty if abs(qty) <= abs(old_qty) else old_qty
            closed_cost = -((-old_cost * closed) // old_qty)  # ceil(old_cost * closed / old_qty)
            realized = closed * price * tick_value - closed_cost
            new_cost = old_cost - closed_cost
            if new_qty != 0 and (new_qty > 0) != (old_qty > 0):
                new_cost = new_qty * price * tick_value  # the flipped remainder opens here
            assert new_qty != 0 or new_cost == 0, "a closed position must carry no cost"
        if abs(new_qty) * tick_value > POSITION_TICK_VALUE_MAX or abs(new_cost) > 2**62:
            raise Rejected(
                RejectReason.OVERFLOW, f"account {account_id} {symbol}: position too large"
            )
        new_balance = int(self._balance[row]) + realized - fee
        if not -BALANCE_MAX <= new_balance <= BALANCE_MAX:
            raise Rejected(RejectReason.OVERFLOW, f"account {account_id}: balance out of range")
        return _PlannedFill(account_id, row, inst, new_qty, new_cost, realized, fee)

    def _commit_fill(self, fill: _PlannedFill, event: int) -> None:
        self._store_position(fill.row, fill.instrument, fill.qty, fill.cost)
        self._post(CLEARING, fill.account_id, fill.realized, Reason.REALIZED_PNL, event)
        self._post(fill.account_id, FEES, fill.fee, Reason.TRADING_FEE, event)

    def _store_position(self, row: int, inst: int, qty: int, cost: int) -> None:
        self.changed_rows.add(row)
        key = (row, inst)
        if key in self._pending:
            if qty == 0:
                del self._pending[key]
            else:
                self._pending[key][:2] = [qty, cost]
            return
        p = self._find_slot(row, inst)
        if p is None and qty != 0:
            p = self._free_slot(row)
            if p is None:
                self._pending[key] = [qty, cost, self._leverage_for(row, inst)]
                return
            self.pos_instrument[p] = inst
            self.pos_leverage[p] = self._leverage_for(row, inst)
        if p is not None:
            self.pos_qty[p] = qty
            self.pos_cost[p] = cost

    def set_leverage(self, account_id: int, symbol: str, leverage: int) -> None:
        """Refused above the max leverage of the tier at the position's notional."""
        account_id = _as_int(account_id, "account_id")
        leverage = _as_int(leverage, "leverage")
        row = self.row_of(account_id)
        inst = self._instrument(symbol)
        if not 1 <= leverage <= LEVERAGE_MAX:
            raise Rejected(RejectReason.INVALID_LEVERAGE, f"leverage must be 1..{LEVERAGE_MAX}")
        qty, _ = self._position(row, inst)
        notional = abs(qty) * int(self.mark_lot_value[inst])
        tier = self.instruments.tier_for(inst, notional)
        if leverage > tier.max_leverage:
            raise Rejected(
                RejectReason.LEVERAGE_ABOVE_MAX,
                f"account {account_id} {symbol}: leverage {leverage} above the tier's"
                f" max {tier.max_leverage} at notional {notional}",
            )
        previous = self._leverage_for(row, inst)
        self._set_slot_leverage(row, inst, leverage)
        if qty != 0 and leverage < previous:
            equity, initial_margin = self._account_equity_and_initial_margin(row)
            if equity < initial_margin:
                self._set_slot_leverage(row, inst, previous)
                raise Rejected(
                    RejectReason.INSUFFICIENT_MARGIN,
                    f"account {account_id}: equity {equity} below the initial margin"
                    f" {initial_margin} at leverage {leverage}",
                )

    def _set_slot_leverage(self, row: int, inst: int, leverage: int) -> None:
        self._leverage_setting[(row, inst)] = leverage
        if (row, inst) in self._pending:
            self._pending[(row, inst)][2] = leverage
        p = self._find_slot(row, inst)
        if p is not None:
            self.pos_leverage[p] = leverage

    # ----- waterfall support (engine.waterfall) ------------------------------------------
    def new_event_id(self) -> int:
        """The next event id of this book (ids only grow; the waterfall numbers its actions)."""
        return self._event_id(None)

    def transfer(self, debit: int, credit: int, amount: int, reason: Reason, event_id: int) -> None:
        """Move `amount` (> 0 money units) between two known accounts as one ledger posting.

        For the waterfall's movements (liquidation fee, takeover, insurance payout, ADL,
        socialized loss); trades go through apply_fill. House accounts are negative ids.
        """
        amount = _as_int(amount, "amount")
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
        self._post(debit, credit, amount, reason, event_id)

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
            np.add.at(self._balance, rows, sign * magnitude[trader])
            self.changed_rows.update(rows[magnitude[trader] != 0].tolist())
            for house in np.unique(ids[~trader]).tolist():
                self.house_balance[house] += sign * int(magnitude[ids == house].sum())

    def set_position(self, row: int, instrument: int, qty: int, cost: int) -> None:
        """Write a position computed elsewhere (a batch of fills replayed exactly, as the
        waterfall's takeover does); the caller posts the money that goes with it."""
        if abs(qty) * int(self.instruments.tick_value[instrument]) > POSITION_TICK_VALUE_MAX:
            raise Rejected(RejectReason.OVERFLOW, f"account row {row}: position too large")
        assert qty != 0 or cost == 0, "a flat position carries no cost"
        self._store_position(row, instrument, qty, cost)

    def positions_of(self, account_id: int) -> list[tuple[int, int, int]]:
        """(instrument index, qty lots, cost money units) of every open position, by index."""
        row = self.row_of(account_id)
        lo, hi = int(self.acct_start[row]), int(self.acct_start[row + 1])
        found = {
            int(self.pos_instrument[p]): (int(self.pos_qty[p]), int(self.pos_cost[p]))
            for p in range(lo, hi)
            if self.pos_qty[p] != 0
        }
        for (r, inst), pending in self._pending.items():
            if r == row:
                found[inst] = (pending[0], pending[1])
        return [(inst, qty, cost) for inst, (qty, cost) in sorted(found.items())]

    def account_margin(self, account_id: int) -> tuple[int, int]:
        """(equity, maintenance margin) of one account at the current marks, exact."""
        row = self.row_of(account_id)
        if any(r == row for r, _ in self._pending):
            self.compact()
        lo, hi = int(self.acct_start[row]), int(self.acct_start[row + 1])
        risk = self._sweep_rows(lo, hi, self._balance[row : row + 1], with_initial_margin=False)
        return int(risk.equity[0]), int(risk.maintenance_margin[0])

    # ----- marks -------------------------------------------------------------------------
    def set_mark(self, symbol: str, price: int) -> None:
        price = _as_int(price, "mark price")
        inst = self._instrument(symbol)
        if not price >= 0:
            raise Rejected(RejectReason.INVALID_PRICE, f"{symbol}: mark price must not be negative")
        lot_value = price * int(self.instruments.tick_value[inst])
        if lot_value > INT64_MAX:
            raise Rejected(RejectReason.OVERFLOW, f"{symbol}: mark price {price} too large")
        self.mark[inst] = price
        self.mark_lot_value[inst] = lot_value
        self.mark_set[inst] = True

    # ----- layout ------------------------------------------------------------------------
    def compact(self, *, canonical: bool = False) -> None:
        """Fold pending positions into the CSR columns, dropping free slots.

        `canonical` also re-lays a book whose slots were reused, so positions sit in
        (account row, instrument) order with no free slots: two books holding the same
        positions then have the same columns, whatever their history.
        """
        if not self._pending:
            if not canonical:
                return
            owner = self.position_owner()
            key = owner * max(len(self.instruments), 1) + self.pos_instrument
            if (self.pos_qty != 0).all() and bool((key[1:] > key[:-1]).all()):
                return
        counts = np.diff(self.acct_start)
        owner = np.repeat(np.arange(self._n_accounts, dtype=np.int64), counts)
        live = self.pos_qty != 0
        keys = list(self._pending)
        values = list(self._pending.values())
        owner = np.concatenate([owner[live], np.array([k[0] for k in keys], dtype=np.int64)])
        inst = np.concatenate(
            [self.pos_instrument[live], np.array([k[1] for k in keys], dtype=np.int32)]
        )
        qty = np.concatenate([self.pos_qty[live], np.array([v[0] for v in values], np.int64)])
        cost = np.concatenate([self.pos_cost[live], np.array([v[1] for v in values], np.int64)])
        lev = np.concatenate(
            [self.pos_leverage[live], np.array([v[2] for v in values], dtype=np.int32)]
        )
        order = np.lexsort((inst, owner))
        self.pos_instrument, self.pos_qty = inst[order], qty[order]
        self.pos_cost, self.pos_leverage = cost[order], lev[order]
        self.acct_start = np.zeros(self._n_accounts + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=self._n_accounts), out=self.acct_start[1:])
        self._pending.clear()

    def position_owner(self) -> np.ndarray:
        """Account row of every position slot (after compact)."""
        self.compact()
        return np.repeat(np.arange(self._n_accounts, dtype=np.int64), np.diff(self.acct_start))

    # ----- risk --------------------------------------------------------------------------
    def _position_columns(self, lo: int = 0, hi: int | None = None) -> tuple[np.ndarray, ...]:
        """The slot columns the margin kernels read, in their order (a slice for one account)."""
        part = slice(lo, hi)
        return (
            self.pos_instrument[part],
            self.pos_qty[part],
            self.pos_cost[part],
            self.pos_leverage[part],
            self.mark_lot_value,
        )

    def _tier_args(self) -> tuple[np.ndarray, ...]:
        t = self.instruments
        return (
            t.tier_start,
            t.tier_max_notional,
            t.tier_mmr,
            t.tier_maintenance_amount,
            t.tier_max_leverage,
        )

    def _sweep_rows(
        self, lo: int, hi: int, balance: np.ndarray, *, with_initial_margin: bool
    ) -> Risk:
        starts = np.array([0, hi - lo], dtype=np.int64)
        eq, mm, im, st = _native.sweep_accounts(
            starts,
            np.ascontiguousarray(balance, dtype=np.int64),
            *self._position_columns(lo, hi),
            *self._tier_args(),
            self.warning_rate,
            with_initial_margin,
        )
        return Risk(eq, mm, im, st)

    def sweep(
        self,
        *,
        with_initial_margin: bool = True,
        threads: int | None = None,
        reuse_buffers: bool = False,
    ) -> Risk:
        """Equity, margins and status of every account at the current marks (exact).

        `threads` (default `self.sweep_threads`) splits the accounts over OpenMP threads;
        the result is the same for any count. `reuse_buffers` writes into arrays the book
        keeps (no page faults on fresh memory each tick); the next such sweep overwrites
        them, so a caller keeping results across ticks copies them.
        """
        self.compact()
        out = None
        if reuse_buffers:
            n = self._n_accounts
            if self._sweep_buffers is None or len(self._sweep_buffers[0]) != n:
                self._sweep_buffers = (
                    np.empty(n, dtype=np.int64),
                    np.empty(n, dtype=np.int64),
                    np.empty(n, dtype=np.int8),
                )
            out = self._sweep_buffers
        try:
            eq, mm, im, st = _native.sweep_accounts(
                self.acct_start,
                self.balance,
                *self._position_columns(),
                *self._tier_args(),
                self.warning_rate,
                with_initial_margin,
                self._thread_count(threads),
                out,
            )
        except _native.NativeOverflowError as exc:
            account = int(self.account_id[exc.index])
            raise OverflowError(f"account {account}: a notional or total exceeds int64") from None
        return Risk(eq, mm, im, st)

    def _thread_count(self, threads: int | None) -> int:
        # Waking a thread costs tens of microseconds on a busy box: small books stay on one.
        wanted = self.sweep_threads if threads is None else threads
        return wanted if self._n_accounts >= PARALLEL_ACCOUNTS_MIN else 1

    def sweep_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Equity, maintenance margin and status of the given account rows only."""
        self.compact()
        return _native.sweep_account_rows(
            np.ascontiguousarray(rows, dtype=np.int64),
            self.acct_start,
            self.balance,
            *self._position_columns(),
            *self._tier_args(),
            self.warning_rate,
        )

    def position_margins(self) -> dict[str, np.ndarray]:
        """Per slot: notional, unrealized_pnl, maintenance_margin, initial_margin, tier."""
        self.compact()
        notional, upnl, mm, im, tier = _native.position_margins(
            *self._position_columns(),
            *self._tier_args(),
        )
        return {
            "notional": notional,
            "unrealized_pnl": upnl,
            "maintenance_margin": mm,
            "initial_margin": im,
            "tier": tier,
        }

    def liquidation_prices(self) -> tuple[np.ndarray, np.ndarray]:
        """Cross liquidation and bankruptcy price (ticks; NULL_PRICE = none) of each slot."""
        self.compact()
        t = self.instruments
        return _native.liquidation_prices(
            self.acct_start,
            self.balance,
            self.pos_instrument,
            self.pos_qty,
            self.pos_cost,
            t.tick_value,
            self.mark_lot_value,
            t.tier_start,
            t.tier_max_notional,
            t.tier_mmr,
            t.tier_maintenance_amount,
        )

    # ----- bulk load ---------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        instruments: InstrumentTable,
        account_ids: np.ndarray,
        balances: np.ndarray,
        pos_account_ids: np.ndarray,
        pos_instrument: np.ndarray,
        pos_qty: np.ndarray,
        pos_cost: np.ndarray,
        pos_leverage: np.ndarray | None = None,
        **options: int,
    ) -> Book:
        """A book from columns, validated as a whole; opening balances become postings.

        Raises Rejected naming the first offending row (0-based) of the column at fault.
        """
        book = cls(instruments, **options)
        account_ids = np.asarray(account_ids, dtype=np.int64)
        balances = np.asarray(balances, dtype=np.int64)
        n = len(account_ids)
        _first_bad(
            account_ids < 0, RejectReason.INVALID_ACCOUNT, "accounts", "account_id must be >= 0"
        )
        sorted_ids = np.sort(account_ids)
        dup = np.nonzero(sorted_ids[1:] == sorted_ids[:-1])[0]
        if len(dup):
            row = int(np.nonzero(account_ids == sorted_ids[dup[0]])[0][1])
            raise Rejected(
                RejectReason.DUPLICATE_ACCOUNT, f"accounts row {row}: account id repeated"
            )
        pos_account_ids = np.asarray(pos_account_ids, dtype=np.int64)
        pos_instrument = np.asarray(pos_instrument, dtype=np.int32)
        pos_qty = np.asarray(pos_qty, dtype=np.int64)
        pos_cost = np.asarray(pos_cost, dtype=np.int64)
        if pos_leverage is None:
            pos_leverage = np.full(len(pos_qty), book.default_leverage, dtype=np.int32)
        pos_leverage = np.asarray(pos_leverage, dtype=np.int32)
        book._grow_accounts(n)
        rows = book.index.add_many(account_ids)
        book._account_id[:n] = account_ids
        book._n_accounts = n
        owner = book.index.rows(pos_account_ids)
        _first_bad(
            owner < 0, RejectReason.UNKNOWN_ACCOUNT, "positions", "account_id not in accounts"
        )
        _first_bad(
            (pos_instrument < 0) | (pos_instrument >= len(instruments)),
            RejectReason.UNKNOWN_SYMBOL,
            "positions",
            "unknown instrument",
        )
        _first_bad(pos_qty == 0, RejectReason.INVALID_QTY, "positions", "qty must not be zero")
        tick_value = instruments.tick_value[pos_instrument]
        with np.errstate(over="ignore"):
            too_big = (np.abs(pos_qty) > POSITION_TICK_VALUE_MAX // np.maximum(tick_value, 1)) | (
                np.abs(pos_cost) > 2**62
            )
        _first_bad(too_big, RejectReason.OVERFLOW, "positions", "position too large")
        _first_bad(
            (pos_cost != 0) & ((pos_cost > 0) != (pos_qty > 0)),
            RejectReason.INVALID_COST,
            "positions",
            "entry value must have the sign of qty",
        )
        _first_bad(
            (pos_leverage < 1) | (pos_leverage > LEVERAGE_MAX),
            RejectReason.INVALID_LEVERAGE,
            "positions",
            f"leverage must be 1..{LEVERAGE_MAX}",
        )
        key = owner * max(len(instruments), 1) + pos_instrument
        order = np.lexsort((pos_instrument, owner))
        dup_pos = np.nonzero(key[order][1:] == key[order][:-1])[0]
        if len(dup_pos):
            row = int(max(order[dup_pos[0]], order[dup_pos[0] + 1]))
            raise Rejected(
                RejectReason.DUPLICATE_POSITION,
                f"positions row {row}: account already holds this symbol",
            )
        book.pos_instrument = pos_instrument[order]
        book.pos_qty = pos_qty[order]
        book.pos_cost = pos_cost[order]
        book.pos_leverage = pos_leverage[order]
        book.acct_start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=n), out=book.acct_start[1:])
        book.ledger.post_many(
            np.where(balances >= 0, EXTERNAL, account_ids),
            np.where(balances >= 0, account_ids, EXTERNAL),
            np.abs(balances),
            Reason.OPENING_BALANCE,
            np.zeros(n, dtype=np.int64),
        )
        book._balance[rows] = balances
        book.house_balance[EXTERNAL] = -int(balances.sum(dtype=np.int64))
        book.opening_position_cost = int(book.pos_cost.sum(dtype=np.int64))
        return book


def _first_bad(mask: np.ndarray, reason: RejectReason, table: str, message: str) -> None:
    bad = np.nonzero(mask)[0]
    if len(bad):
        raise Rejected(reason, f"{table} row {int(bad[0])}: {message}")
