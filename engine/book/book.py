"""The book: accounts, balances and marks, with positions in a PositionStore it owns.

Money is exact integers. Every change of a balance is a ledger posting, so the ledger
alone rebuilds every balance (engine.waterfall.conservation is the auditor). Each public
operation validates everything first and mutates after, so a rejected operation leaves
the book exactly as it was.

What lives where: account balances and the ledger in engine.book.balances, the position
columns and their layout in engine.book.positions, the fill rule (realized PnL, closing part
of a position, batches of fill pairs) in engine.book.fills, the margin views (sweep,
liquidation prices) in engine.risk.sweep, bulk loading in engine.book.loader. The book ties
them together; its column attributes (`balance`, `pos_qty`, `acct_start`, ...) read the
parts' current arrays. This module runs over 400 lines because it is the one surface the
rest of the engine uses: about thirty short delegating properties and methods, plus each
public operation's validation, which must stay next to the write it guards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine import _native
from engine.book.accounts import AccountIndex
from engine.book.balances import Balances
from engine.book.errors import Rejected, as_int
from engine.book.fills import FillBatch, PlannedFill, check_batch, check_batch_written, plan_fill
from engine.book.fixed import RATE_SCALE
from engine.book.instruments import InstrumentTable
from engine.book.ledger import CLEARING, EXTERNAL, FEES, Ledger, Reason
from engine.book.limits import (
    DEFAULT_LEVERAGE,
    INT64_MAX,
    LEVERAGE_MAX,
    POSITION_TICK_VALUE_MAX,
    WARNING_RATE_DEFAULT,
)
from engine.book.loader import check_columns, install
from engine.book.positions import PositionStore
from engine.book.reasons import RejectReason
from engine.risk.sweep import Risk, RiskView

# Account status codes (in order of severity) and their names, defined once in csrc/margin.h.
STATUS_NAMES = _native.STATUS_NAMES
STATUS_OK, STATUS_MARGIN_CALL = _native.STATUS_OK, _native.STATUS_MARGIN_CALL
STATUS_LIQUIDATE, STATUS_BANKRUPT = _native.STATUS_LIQUIDATE, _native.STATUS_BANKRUPT


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
        self.balances = Balances()
        n_inst = len(instruments)
        self.positions = PositionStore(n_inst)
        self._leverage_setting: dict[tuple[int, int], int] = {}
        self.mark = np.zeros(n_inst, dtype=np.int64)
        self.mark_lot_value = np.zeros(n_inst, dtype=np.int64)
        self.mark_set = np.zeros(n_inst, dtype=bool)
        self.risk = RiskView(self.positions, instruments, self.mark_lot_value)
        self._next_event_id = 1
        self.sweep_threads = 1
        # Cost basis of positions loaded from outside (not built by fills in this book): the
        # clearing account's balance plus the open cost basis equals this in a closed book.
        self.opening_position_cost = 0
        # Money value of each row's collateral assets (engine.collateral), added to the
        # balance in every risk view; None when the book holds no collateral.
        self.collateral_value: np.ndarray | None = None

    # ----- accounts' columns (engine.book.balances) --------------------------------------
    @property
    def n_accounts(self) -> int:
        return self.balances.n_accounts

    @property
    def account_id(self) -> np.ndarray:
        return self.balances.ids[: self.balances.n_accounts]

    @property
    def balance(self) -> np.ndarray:
        return self.balances.amount[: self.balances.n_accounts]

    @property
    def _balance(self) -> np.ndarray:
        return self.balances.amount

    def risk_balance(self) -> np.ndarray:
        """What the risk views count as each row's wallet: the balance plus the haircut
        value of its collateral (engine.collateral; the balance alone without any)."""
        if self.collateral_value is None:
            return self.balance
        n = self.n_accounts
        extra = np.zeros(n, dtype=np.int64)
        k = min(n, len(self.collateral_value))
        extra[:k] = self.collateral_value[:k]
        if ((extra > 0) & (self.balance > INT64_MAX - extra)).any():
            raise OverflowError("a balance plus its collateral value exceeds int64")
        return self.balance + extra

    @property
    def index(self) -> AccountIndex:
        return self.balances.index

    @property
    def ledger(self) -> Ledger:
        return self.balances.ledger

    @property
    def house_balance(self) -> dict[int, int]:
        return self.balances.house_balance

    @property
    def changed_rows(self) -> set[int]:
        """Rows whose balance or positions changed since a consumer (the incremental
        sweep) last drained this set."""
        return self.balances.changed_rows

    # The position store's columns (replaced by compact(): read them after it, keep no copy).
    @property
    def acct_start(self) -> np.ndarray:
        return self.positions.acct_start

    @property
    def pos_instrument(self) -> np.ndarray:
        return self.positions.instrument

    @property
    def pos_qty(self) -> np.ndarray:
        return self.positions.qty

    @property
    def pos_cost(self) -> np.ndarray:
        return self.positions.cost

    @property
    def pos_leverage(self) -> np.ndarray:
        return self.positions.leverage

    @property
    def _pending(self) -> dict[tuple[int, int], list[int]]:
        return self.positions.pending

    def _event_id(self, event_id: int | None) -> int:
        if event_id is None:
            event_id = self._next_event_id
        self._next_event_id = max(self._next_event_id, event_id + 1)
        return event_id

    def _post(self, debit: int, credit: int, amount: int, reason: Reason, event_id: int) -> None:
        """Ledger posting plus the matching balance changes. amount may be of either sign."""
        self.balances.post(debit, credit, amount, reason, event_id)

    # ----- accounts ----------------------------------------------------------------------
    def row_of(self, account_id: int) -> int:
        return self.balances.row_of(account_id)

    def open_account(self, account_id: int) -> int:
        account_id = as_int(account_id, "account_id")
        if account_id < 0:
            raise Rejected(
                RejectReason.INVALID_ACCOUNT, f"account ids must be >= 0, got {account_id}"
            )
        if self.index.find(account_id) is not None:
            raise Rejected(RejectReason.DUPLICATE_ACCOUNT, f"account {account_id} already exists")
        row = self.balances.add(account_id)
        self.positions.add_account()
        return row

    def deposit(self, account_id: int, amount: int, event_id: int | None = None) -> None:
        account_id = as_int(account_id, "account_id")
        amount = as_int(amount, "amount")
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
        account_id = as_int(account_id, "account_id")
        amount = as_int(amount, "amount")
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
        before = int(self._balance[row])
        self._post(account_id, EXTERNAL, amount, Reason.WITHDRAW, self._event_id(event_id))
        after = int(self._balance[row])
        assert after == before - amount >= 0, f"account {account_id}: withdrawal {amount} misposted"

    def _account_equity_and_initial_margin(self, row: int) -> tuple[int, int]:
        if self.positions.has_pending(row):
            self.compact()
        lo, hi = int(self.acct_start[row]), int(self.acct_start[row + 1])
        live = np.nonzero(self.pos_qty[lo:hi])[0]
        unmarked = [int(i) for i in self.pos_instrument[lo:hi][live] if not self.mark_set[i]]
        if unmarked:
            symbol = self.instruments.instruments[unmarked[0]].symbol
            raise Rejected(RejectReason.NO_MARK, f"no mark price yet for {symbol}")
        risk = self.risk.sweep_slots(
            lo, hi, self._risk_row(row), self.warning_rate, with_initial_margin=True
        )
        assert risk.initial_margin is not None
        return int(risk.equity[0]), int(risk.initial_margin[0])

    # ----- positions ---------------------------------------------------------------------
    def position(self, account_id: int, symbol: str) -> tuple[int, int]:
        """(qty lots, cost money units) of an account in an instrument; (0, 0) if flat."""
        return self.positions.get(self.row_of(account_id), self._instrument(symbol))

    def _instrument(self, symbol: str) -> int:
        try:
            return self.instruments.symbol_index(symbol)
        except KeyError:
            raise Rejected(RejectReason.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}") from None

    def _leverage_for(self, row: int, inst: int) -> int:
        return self._leverage_setting.get((row, inst), self.default_leverage)

    def _store_position(self, row: int, inst: int, qty: int, cost: int) -> None:
        self.changed_rows.add(row)
        self.positions.put(row, inst, qty, cost, self._leverage_for(row, inst))

    def positions_of(self, account_id: int) -> list[tuple[int, int, int]]:
        """(instrument index, qty lots, cost money units) of every open position, by index."""
        return self.positions.of_row(self.row_of(account_id))

    def account_equity(self, account_id: int) -> int:
        """Balance plus unrealized PnL at the marks, exact, without touching the layout."""
        row = self.row_of(account_id)
        upnl = sum(
            q * int(self.mark_lot_value[inst]) - c for inst, q, c in self.positions.of_row(row)
        )
        return int(self._risk_row(row)[0]) + upnl

    def _risk_row(self, row: int) -> np.ndarray:
        """risk_balance of one row, as a length-1 array."""
        if self.collateral_value is None or row >= len(self.collateral_value):
            return self._balance[row : row + 1]
        total = int(self._balance[row]) + int(self.collateral_value[row])
        if total > INT64_MAX:
            raise OverflowError(f"account row {row}: balance plus collateral value exceeds int64")
        return np.array([total], dtype=np.int64)

    def account_margin(self, account_id: int) -> tuple[int, int]:
        """(equity, maintenance margin) of one account at the current marks, exact."""
        row = self.row_of(account_id)
        if self.positions.has_pending(row):
            self.compact()
        lo, hi = int(self.acct_start[row]), int(self.acct_start[row + 1])
        risk = self.risk.sweep_slots(
            lo, hi, self._risk_row(row), self.warning_rate, with_initial_margin=False
        )
        return int(risk.equity[0]), int(risk.maintenance_margin[0])

    # ----- fills -------------------------------------------------------------------------
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

        Opens, increases, reduces, closes or flips the position (the rule is
        engine.book.fills.fill_position: the closed part's cost is rounded up, the house's
        favour; closing the whole position removes its whole cost). Returns the realized PnL.
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
    ) -> PlannedFill:
        """Validate one fill side and compute its result; changes nothing."""
        account_id = as_int(account_id, "account_id")
        qty = as_int(qty, "qty")
        price = as_int(price, "price")
        fee = as_int(fee, "fee")
        row = self.row_of(account_id)
        inst = self._instrument(symbol)
        return plan_fill(
            account_id,
            row,
            inst,
            self.positions.get(row, inst),
            int(self._balance[row]),
            qty,
            price,
            fee,
            int(self.instruments.tick_value[inst]),
            f"account {account_id} {symbol}",
        )

    def _commit_fill(self, fill: PlannedFill, event: int) -> None:
        balance = int(self._balance[fill.row])
        self._store_position(fill.row, fill.instrument, fill.qty, fill.cost)
        self._post(CLEARING, fill.account_id, fill.realized, Reason.REALIZED_PNL, event)
        self._post(fill.account_id, FEES, fill.fee, Reason.TRADING_FEE, event)
        assert self.positions.get(fill.row, fill.instrument) == (fill.qty, fill.cost)
        assert int(self._balance[fill.row]) == balance + fill.realized - fill.fee, (
            f"account {fill.account_id}: a fill moved other money than its PnL and fee"
        )

    def set_position(self, row: int, instrument: int, qty: int, cost: int) -> None:
        """Write a position computed elsewhere (a batch of fills replayed exactly); the
        caller posts the money that goes with it. Prefer commit_fills, which checks both."""
        if abs(qty) * int(self.instruments.tick_value[instrument]) > POSITION_TICK_VALUE_MAX:
            raise Rejected(RejectReason.OVERFLOW, f"account row {row}: position too large")
        assert qty != 0 or cost == 0, "a flat position carries no cost"
        self._store_position(row, instrument, qty, cost)

    def commit_fills(self, batch: FillBatch, counterparty: int, event_ids: np.ndarray) -> None:
        """Write a batch of fill pairs planned at the mark (engine.book.fills.FillBatch):
        slot j's owner gives batch.closed[j] lots to `counterparty`, and both sides' realized
        PnL is posted (clearing <-> account) with event id event_ids[j]. The slots index the
        columns as they are: the planner compacted before choosing them. Checked against
        the fill rule before the write (fills.check_batch) and read back after."""
        cp_row = self.row_of(counterparty)
        slots, rows = batch.slots, batch.rows
        p = self.positions
        check_batch(batch, p, cp_row, counterparty, self.account_id)
        p.write_slots(slots, batch.qty_after, batch.cost_after)
        for inst, (qty, cost) in batch.counterparty_positions.items():
            self.set_position(cp_row, inst, qty, cost)
        account_ids = self.account_id[rows]
        self.post_many(CLEARING, account_ids, batch.realized, Reason.REALIZED_PNL, event_ids)
        self.post_many(
            CLEARING,
            np.full(len(slots), counterparty),
            batch.counterparty_realized,
            Reason.REALIZED_PNL,
            event_ids,
        )
        self.changed_rows.update(rows.tolist())
        self.changed_rows.add(cp_row)
        check_batch_written(batch, p, cp_row, counterparty)

    # ----- leverage ----------------------------------------------------------------------
    def set_leverage(self, account_id: int, symbol: str, leverage: int) -> None:
        """Refused above the max leverage of the tier at the position's notional."""
        account_id = as_int(account_id, "account_id")
        leverage = as_int(leverage, "leverage")
        row = self.row_of(account_id)
        inst = self._instrument(symbol)
        if not 1 <= leverage <= LEVERAGE_MAX:
            raise Rejected(RejectReason.INVALID_LEVERAGE, f"leverage must be 1..{LEVERAGE_MAX}")
        qty, _ = self.positions.get(row, inst)
        notional = abs(qty) * int(self.mark_lot_value[inst])
        tier = self.instruments.tier_for(inst, notional)
        if leverage > tier.max_leverage:
            raise Rejected(
                RejectReason.LEVERAGE_ABOVE_MAX,
                f"account {account_id} {symbol}: leverage {leverage} above the tier's"
                f" max {tier.max_leverage} at notional {notional}",
            )
        previous = self._leverage_setting.get((row, inst))
        self._set_slot_leverage(row, inst, leverage)
        if qty == 0 or leverage >= self._leverage_for_setting(previous):
            return
        # Lowering the leverage of an open position: checked at the new leverage, and any
        # refusal (no mark, insufficient margin) puts the old setting back exactly.
        try:
            equity, initial_margin = self._account_equity_and_initial_margin(row)
            if equity < initial_margin:
                raise Rejected(
                    RejectReason.INSUFFICIENT_MARGIN,
                    f"account {account_id}: equity {equity} below the initial margin"
                    f" {initial_margin} at leverage {leverage}",
                )
        except BaseException:
            self._set_slot_leverage(row, inst, previous)
            raise

    def _leverage_for_setting(self, setting: int | None) -> int:
        return self.default_leverage if setting is None else setting

    def _set_slot_leverage(self, row: int, inst: int, leverage: int | None) -> None:
        """Set (or with None clear back to the default) an account's leverage in `inst`."""
        if leverage is None:
            self._leverage_setting.pop((row, inst), None)
            leverage = self.default_leverage
        else:
            self._leverage_setting[(row, inst)] = leverage
        self.positions.set_leverage(row, inst, leverage)

    # ----- postings (the waterfall's, settlement's) --------------------------------------
    def new_event_id(self) -> int:
        """The next event id of this book (ids only grow; the waterfall numbers its actions)."""
        return self._event_id(None)

    def new_event_ids(self, n: int) -> np.ndarray:
        """The next `n` event ids, consecutive."""
        first = self._next_event_id
        self._next_event_id += n
        return np.arange(first, first + n, dtype=np.int64)

    def transfer(self, debit: int, credit: int, amount: int, reason: Reason, event_id: int) -> None:
        """Move `amount` (> 0 money units) between two known accounts as one ledger posting.

        For the waterfall's movements (liquidation fee, takeover, insurance payout, ADL,
        socialized loss); trades go through apply_fill. House accounts are negative ids.
        """
        self.balances.transfer(debit, credit, amount, reason, event_id)

    def post_many(
        self,
        debit: np.ndarray | int,
        credit: np.ndarray | int,
        amount: np.ndarray,
        reason: Reason,
        event_ids: np.ndarray | int,
    ) -> None:
        """Many ledger postings with their balance changes (engine.book.balances): amounts
        are signed, a negative amount moves money from `credit` to `debit`."""
        self.balances.post_many(debit, credit, amount, reason, event_ids)

    # ----- marks -------------------------------------------------------------------------
    def set_mark(self, symbol: str, price: int) -> None:
        price = as_int(price, "mark price")
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
        """Fold pending positions into the columns (engine.book.positions.PositionStore)."""
        self.positions.compact(canonical=canonical)

    def position_owner(self) -> np.ndarray:
        """Account row of every position slot (after compact)."""
        return self.positions.owner()

    # ----- risk views (engine.risk.sweep) ------------------------------------------------
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
        try:
            return self.risk.sweep(
                self.risk_balance(),
                self.warning_rate,
                with_initial_margin=with_initial_margin,
                threads=self.sweep_threads if threads is None else threads,
                reuse_buffers=reuse_buffers,
            )
        except _native.NativeOverflowError as exc:
            account = int(self.account_id[exc.index])
            raise OverflowError(f"account {account}: a notional or total exceeds int64") from None

    def sweep_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Equity, maintenance margin and status of the given account rows only."""
        return self.risk.sweep_rows(rows, self.risk_balance(), self.warning_rate)

    def position_margins(self) -> dict[str, np.ndarray]:
        """Per slot: notional, unrealized_pnl, maintenance_margin, initial_margin, tier."""
        return self.risk.position_margins()

    def liquidation_prices(self) -> tuple[np.ndarray, np.ndarray]:
        """Cross liquidation and bankruptcy price (ticks; NULL_PRICE = none) of each slot."""
        self.compact()
        return self.risk.liquidation_prices(self.risk_balance())

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
        """A book from columns, validated as a whole (engine.book.loader); opening balances
        become postings. Raises Rejected naming the first offending row (0-based) of the
        column at fault."""
        book = cls(instruments, **options)
        checked = check_columns(
            instruments,
            account_ids,
            balances,
            pos_account_ids,
            pos_instrument,
            pos_qty,
            pos_cost,
            pos_leverage,
            book.default_leverage,
        )
        book.opening_position_cost = install(checked, book.balances, book.positions)
        return book
