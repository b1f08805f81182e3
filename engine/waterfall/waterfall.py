"""The liquidation waterfall: who pays when an account's equity no longer covers its margin.

Order within one tick (DESIGN.md "The default waterfall"), every money movement a ledger
posting through the book:

1. Liquidation, accounts in priority order: lowest equity / maintenance margin first (an
   exact fraction compare; a bankrupt account without maintenance margin ranks first), ties
   by account id. Full takeover: the liquidation fee min(ceil(rate x notional), equity) goes
   to the fund; each position moves to the fund as a pair of fills at the mark (so open
   interest still nets to zero); then the account's remaining equity R moves to the fund
   (`takeover`). The fund so takes the positions at their bankruptcy value: its equity
   changes by exactly the trader's equity, and the trader ends at exactly 0. If R < 0 the
   fund pays -R (`insurance_payout`, never more) under negative-balance protection; in debt
   mode the account keeps R as its (negative) balance. Partial mode takes step_fraction of
   every position (rounded up to a lot) at the mark with its fee, re-checks, and repeats
   while the account stays breached; a bankrupt account is taken over in full.
2. Unwind (optional input): the fund closes its positions at given execution prices against
   the unwind account, which stands for the market outside the book.
3. ADL when the fund's equity < floor (engine.adl), then 4. socialized loss of what is left.

Two paths give the same state. `liquidate_account` takes one account over through the
book's public operations (apply_fill, transfer); it is the reference and runs the partial
steps. The batch path (`batch=True`, the default) takes a run of consecutive full
takeovers over with numpy: fees, the traders' realized PnL and takeover amounts per
account, the fund's fills replayed in order with plain integers (the fund's rounding
depends on its position before each fill), then one ledger call per reason. Balances,
positions, house accounts, events and the postings themselves are the same as the
reference's; only the ledger's order differs (postings grouped by reason within a batch,
with the same event ids). A batch whose values could leave the range the book checks
falls back to the reference path, which then raises where the book would.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from engine.book.book import POSITION_TICK_VALUE_MAX, STATUS_LIQUIDATE, Book
from engine.book.fixed import RATE_SCALE
from engine.book.ledger import CLEARING, Reason
from engine.waterfall.profile import RESERVED_ACCOUNT_BASE, Profile

PARTIAL_STEPS_MAX = 10_000
EVENT_KINDS = (
    "liquidation",
    "liquidation_fee",
    "takeover",
    "insurance_payout",
    "unwind",
    "adl",
    "socialized_loss",
    "unallocated_loss",
)
KIND_CODE = {kind: code for code, kind in enumerate(EVENT_KINDS)}
NO_INSTRUMENT = -1
# The batch path proves with floats that no running balance or position leaves this bound;
# the book's own checks are at 2^62, so a float error of a few parts in 2^53 cannot matter.
BATCH_SAFE_MAX = float(2**61)
# Relative gap under which two float margin ratios may be out of their exact order.
RATIO_NEAR = 2.0**-48
_EVENT_FIELDS = ("kind", "event_id", "account_id", "instrument", "qty", "price", "amount")


@dataclass(frozen=True)
class Event:
    """One action of the waterfall. qty lots (signed as the trader's position before),
    price ticks (the execution mark), amount money units moved by the action."""

    kind: str  # one of EVENT_KINDS
    event_id: int
    account_id: int
    symbol: str
    qty: int
    price: int
    amount: int


class EventLog:
    """The waterfall's events as int64 columns (kind code, instrument index or -1), so a
    tick with a million actions holds no Python object per action. Iterating gives Events."""

    def __init__(self, symbols: Sequence[str] = ()) -> None:
        self.symbols = tuple(symbols)
        self._rows: list[tuple[int, int, int, int, int, int, int]] = []
        self._chunks: list[dict[str, np.ndarray]] = []
        self._events: list[Event] | None = None

    def append(
        self,
        kind: str,
        event_id: int,
        account_id: int,
        instrument: int,
        qty: int,
        price: int,
        amount: int,
    ) -> None:
        self._rows.append((KIND_CODE[kind], event_id, account_id, instrument, qty, price, amount))
        self._events = None

    def extend(self, columns: dict[str, np.ndarray]) -> None:
        """Append columns named as _EVENT_FIELDS, all of one length."""
        self._flush()
        n = len(columns["kind"])
        assert all(len(columns[name]) == n for name in _EVENT_FIELDS)
        if n:
            self._chunks.append(
                {name: np.asarray(columns[name], np.int64) for name in _EVENT_FIELDS}
            )
            self._events = None

    def _flush(self) -> None:
        if self._rows:
            table = np.array(self._rows, dtype=np.int64).reshape(-1, len(_EVENT_FIELDS))
            self._chunks.append({name: table[:, i].copy() for i, name in enumerate(_EVENT_FIELDS)})
            self._rows = []

    def columns(self) -> dict[str, np.ndarray]:
        self._flush()
        if not self._chunks:
            return {name: np.zeros(0, dtype=np.int64) for name in _EVENT_FIELDS}
        if len(self._chunks) > 1:
            self._chunks = [
                {name: np.concatenate([c[name] for c in self._chunks]) for name in _EVENT_FIELDS}
            ]
        return self._chunks[0]

    def __len__(self) -> int:
        return len(self._rows) + sum(len(c["kind"]) for c in self._chunks)

    def events(self) -> list[Event]:
        if self._events is None:
            cols = self.columns()
            symbols = (*self.symbols, "")  # index -1 (no instrument) is the empty symbol
            self._events = [
                Event(EVENT_KINDS[k], e, a, symbols[i], q, p, m)
                for k, e, a, i, q, p, m in zip(
                    *(cols[name].tolist() for name in _EVENT_FIELDS), strict=True
                )
            ]
        return self._events

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events())

    def counts(self) -> dict[str, int]:
        kinds = np.bincount(self.columns()["kind"], minlength=len(EVENT_KINDS))
        return {EVENT_KINDS[k]: int(n) for k, n in enumerate(kinds.tolist()) if n}


@dataclass
class WaterfallResult:
    log: EventLog = field(default_factory=EventLog)
    accounts_liquidated: int = 0
    fund_balance_before: int = 0
    fund_equity_before: int = 0
    fund_balance_after: int = 0
    fund_equity_after: int = 0
    liquidation_fees: int = 0
    takeover_surplus: int = 0
    insurance_paid: int = 0
    debt_kept: int = 0
    adl_amount: int = 0
    adl_shortfall: int = 0  # what ADL was asked to cover
    adl_overshoot: int = 0  # profit taken beyond the shortfall: 0 by construction
    socialized_amount: int = 0
    unallocated_loss: int = 0  # shortfall left after socialization (no profit to take)

    @property
    def events(self) -> list[Event]:
        return self.log.events()

    def summary(self) -> dict[str, int]:
        return self.log.counts()


def is_reserved(account_id: int, profile: Profile) -> bool:
    """House book accounts (funds, unwind counterparty) are never liquidated or deleveraged."""
    return account_id >= RESERVED_ACCOUNT_BASE or account_id in (
        profile.fund_account_id,
        profile.unwind_account_id,
    )


def reserved_mask(account_ids: np.ndarray, profile: Profile) -> np.ndarray:
    """is_reserved over an array of account ids."""
    ids = np.asarray(account_ids, dtype=np.int64)
    return (
        (ids >= RESERVED_ACCOUNT_BASE)
        | (ids == profile.fund_account_id)
        | (ids == profile.unwind_account_id)
    )


def open_fund(book: Book, profile: Profile, amount: int) -> None:
    """The insurance fund's account, funded from EXTERNAL (a deposit) when amount > 0."""
    if book.index.find(profile.fund_account_id) is None:
        book.open_account(profile.fund_account_id)
    if amount > 0:
        book.deposit(profile.fund_account_id, amount)


def liquidation_order(
    account_ids: Sequence[int] | np.ndarray,
    equity: Sequence[int] | np.ndarray,
    maintenance: Sequence[int] | np.ndarray,
) -> list[int]:
    """Indices in processing order: lowest equity / maintenance first, exactly; ties by id.

    A float sort does the bulk; the float ratios carry a relative error of a few 2^-53, so
    two ratios out of exact order are within RATIO_NEAR of each other and of everything
    between them: each run of near-equal neighbours is re-sorted with exact fractions.
    """
    ids = np.asarray(account_ids, dtype=np.int64)
    e = np.asarray(equity, dtype=np.int64)
    mm = np.asarray(maintenance, dtype=np.int64)
    has_margin = mm > 0
    rank_class = np.where(has_margin, 1, np.where(e < 0, 0, 2))
    ratio = np.where(has_margin, e.astype(np.float64) / np.where(has_margin, mm, 1), 0.0)
    order = np.lexsort((ids, ratio, rank_class))
    r, c = ratio[order], rank_class[order]
    near = (
        (c[1:] == 1)
        & (c[:-1] == 1)
        & (np.abs(r[1:] - r[:-1]) <= RATIO_NEAR * np.maximum(np.abs(r[1:]), np.abs(r[:-1])))
    )
    result = order.tolist()
    if near.any():
        # Runs [start, end] of positions linked by near-equal neighbours.
        edges = np.diff(np.concatenate([[0], near.astype(np.int8), [0]]))
        for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            run = result[start : end + 1]
            result[start : end + 1] = sorted(
                run, key=lambda i: (Fraction(int(e[i]), int(mm[i])), int(ids[i]))
            )
    return result


@dataclass(frozen=True)
class SweptRows:
    """A sweep's figures for some account rows (all of them, or an incremental tick's)."""

    rows: np.ndarray
    equity: np.ndarray
    maintenance_margin: np.ndarray
    status: np.ndarray


def run_waterfall(
    book: Book,
    profile: Profile,
    *,
    unwind_prices: dict[str, int] | None = None,
    batch: bool = True,
    swept: SweptRows | None = None,
) -> WaterfallResult:
    """One tick's waterfall at the book's current marks. The fund must be open.

    `batch=False` takes every account over one at a time through the book's operations
    (the reference the batch path is tested against); the results are the same. `swept`,
    a sweep already done at these marks over rows that include every breached account
    (a full or an incremental sweep), saves the waterfall its own full sweep.
    """
    # engine.adl builds on this module's Event and WaterfallResult, hence the late import.
    from engine.waterfall.adl import fund_shortfall, run_adl, socialize_loss

    fund = profile.fund_account_id
    result = WaterfallResult(log=EventLog([i.symbol for i in book.instruments.instruments]))
    result.fund_balance_before = int(book.balance[book.row_of(fund)])
    result.fund_equity_before = book.account_margin(fund)[0]
    if swept is None:
        risk = book.sweep(with_initial_margin=False)
        swept = SweptRows(
            np.arange(book.n_accounts, dtype=np.int64),
            risk.equity,
            risk.maintenance_margin,
            risk.status,
        )
    breached = np.flatnonzero(swept.status >= STATUS_LIQUIDATE)
    breached = breached[~reserved_mask(book.account_id[swept.rows[breached]], profile)]
    rows = swept.rows[breached]
    if not profile.negative_balance_protection:
        # A flat account in debt stays bankrupt in every sweep; its debt was kept when it
        # was taken over, and there is nothing left to take.
        open_positions = np.bincount(
            book.position_owner()[book.pos_qty != 0], minlength=book.n_accounts
        )
        keep = open_positions[rows] > 0
        rows, breached = rows[keep], breached[keep]
    ids = book.account_id[rows]
    equity = swept.equity[breached]
    maintenance = swept.maintenance_margin[breached]
    order = np.asarray(liquidation_order(ids, equity, maintenance), dtype=np.int64)
    if batch:
        _liquidate_in_runs(book, profile, rows[order], equity[order], maintenance[order], result)
    else:
        for i in order.tolist():
            liquidate_account(
                book, profile, int(ids[i]), int(equity[i]), int(maintenance[i]), result
            )
    result.accounts_liquidated += len(order)
    if unwind_prices:
        unwind_fund(book, profile, unwind_prices, result)
    floor = profile.fund_floor_units(book.instruments.money_decimals)
    if profile.adl_enabled:
        run_adl(book, profile, floor, result, batch=batch)
    if profile.socialized_loss_enabled:
        socialize_loss(book, profile, floor, result)
    else:
        result.unallocated_loss = fund_shortfall(book, profile, floor)
    result.fund_balance_after = int(book.balance[book.row_of(fund)])
    result.fund_equity_after = book.account_margin(fund)[0]
    return result


def _liquidate_in_runs(
    book: Book,
    profile: Profile,
    rows: np.ndarray,
    equity: np.ndarray,
    maintenance: np.ndarray,
    result: WaterfallResult,
) -> None:
    """Accounts in priority order: runs of full takeovers in one batch each, partial steps
    one account at a time in between (they change the fund's position the runs start from)."""
    full = np.ones(len(rows), dtype=bool)
    if profile.partial_liquidation:
        full = equity < 0
    bounds = np.flatnonzero(np.diff(np.concatenate([[-1], full.astype(np.int8), [-1]])))
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if full[start]:
            part = slice(start, end)
            if take_over_batch(book, profile, rows[part], equity[part], result):
                continue
        for i in range(start, end):
            account_id = int(book.account_id[rows[i]])
            liquidate_account(
                book, profile, account_id, int(equity[i]), int(maintenance[i]), result
            )


def _fee(book: Book, profile: Profile, positions: list[tuple[int, int, int]]) -> int:
    notional = sum(abs(q) * int(book.mark_lot_value[inst]) for inst, q, _ in positions)
    return -((-notional * profile.liquidation_fee_rate) // RATE_SCALE)  # ceil: house's favour


def _move_to_fund(
    book: Book, fund: int, account_id: int, inst: int, qty: int, event_id: int
) -> tuple[str, int]:
    """The trader gives `qty` lots (signed as its position) to the fund at the mark."""
    symbol = book.instruments.instruments[inst].symbol
    price = int(book.mark[inst])
    assert price > 0, f"{symbol}: a position is moved at a positive mark"
    book.apply_fill(account_id, symbol, -qty, price, event_id=event_id)
    book.apply_fill(fund, symbol, qty, price, event_id=event_id)
    return symbol, price


def liquidate_account(
    book: Book,
    profile: Profile,
    account_id: int,
    equity: int,
    maintenance: int,
    result: WaterfallResult,
) -> None:
    fund = profile.fund_account_id
    log = result.log
    if profile.partial_liquidation and equity >= 0:
        bankrupt_equity = _partial_steps(book, profile, account_id, equity, maintenance, result)
        if bankrupt_equity is None:
            return
        equity = bankrupt_equity
    event_id = book.new_event_id()
    positions = book.positions_of(account_id)
    fee = min(_fee(book, profile, positions), max(equity, 0))
    if fee > 0:
        book.transfer(account_id, fund, fee, Reason.LIQUIDATION_FEE, event_id)
        result.liquidation_fees += fee
        log.append("liquidation_fee", event_id, account_id, NO_INSTRUMENT, 0, 0, fee)
    for inst, qty, _ in positions:
        _, price = _move_to_fund(book, fund, account_id, inst, qty, event_id)
        log.append("liquidation", event_id, account_id, inst, qty, price, 0)
    remaining = int(book.balance[book.row_of(account_id)])
    # All positions are closed at the mark, so the balance is the equity less the fee.
    assert remaining == equity - fee, "takeover must move exactly the account's equity"
    if remaining > 0:
        book.transfer(account_id, fund, remaining, Reason.TAKEOVER, event_id)
        result.takeover_surplus += remaining
        log.append("takeover", event_id, account_id, NO_INSTRUMENT, 0, 0, remaining)
    elif remaining < 0 and profile.negative_balance_protection:
        book.transfer(fund, account_id, -remaining, Reason.INSURANCE_PAYOUT, event_id)
        result.insurance_paid += -remaining
        log.append("insurance_payout", event_id, account_id, NO_INSTRUMENT, 0, 0, -remaining)
    elif remaining < 0:
        result.debt_kept += -remaining
    after = int(book.balance[book.row_of(account_id)])
    assert after == (min(remaining, 0) if not profile.negative_balance_protection else 0)


def _partial_steps(
    book: Book,
    profile: Profile,
    account_id: int,
    equity: int,
    maintenance: int,
    result: WaterfallResult,
) -> int | None:
    """Step fractions at the mark until safe (None) or bankrupt (its equity, for takeover)."""
    fund = profile.fund_account_id
    for _ in range(PARTIAL_STEPS_MAX):
        positions = book.positions_of(account_id)
        if not positions:
            return None
        if equity < 0:
            return equity
        if equity > maintenance:
            return None
        event_id = book.new_event_id()
        slices = [
            (inst, (1 if q > 0 else -1) * -((-abs(q) * profile.partial_step_rate) // RATE_SCALE))
            for inst, q, _ in positions
        ]
        fee = min(_fee(book, profile, [(i, q, 0) for i, q in slices]), equity)
        if fee > 0:
            book.transfer(account_id, fund, fee, Reason.LIQUIDATION_FEE, event_id)
            result.liquidation_fees += fee
            result.log.append("liquidation_fee", event_id, account_id, NO_INSTRUMENT, 0, 0, fee)
        for inst, q in slices:
            _, price = _move_to_fund(book, fund, account_id, inst, q, event_id)
            result.log.append("liquidation", event_id, account_id, inst, q, price, 0)
        equity, maintenance = book.account_margin(account_id)
    raise AssertionError("partial liquidation did not end within PARTIAL_STEPS_MAX steps")


def unwind_fund(
    book: Book, profile: Profile, prices: dict[str, int], result: WaterfallResult
) -> None:
    """The fund closes its position in each priced symbol at that execution price (ticks)."""
    fund, market = profile.fund_account_id, profile.unwind_account_id
    if book.index.find(market) is None:
        book.open_account(market)
    for inst, qty, _ in book.positions_of(fund):
        symbol = book.instruments.instruments[inst].symbol
        if symbol not in prices:
            continue
        price = prices[symbol]
        event_id = book.new_event_id()
        realized = book.apply_fill(fund, symbol, -qty, price, event_id=event_id)
        book.apply_fill(market, symbol, qty, price, event_id=event_id)
        result.log.append("unwind", event_id, fund, inst, qty, price, realized)


# ----- batch path ------------------------------------------------------------------------
@dataclass
class FillPlan:
    """Trader positions closing `closed` lots (signed as each position) at the mark against
    the fund, in order, with everything Book.apply_fill would compute for both sides."""

    slots: np.ndarray
    rows: np.ndarray  # the trader's account row per slot
    instrument: np.ndarray
    closed: np.ndarray
    price: np.ndarray  # the mark, ticks
    trader_realized: np.ndarray
    qty_after: np.ndarray
    cost_after: np.ndarray
    fund_realized: np.ndarray
    fund_positions: dict[int, tuple[int, int]]  # instrument -> the fund's (qty, cost) after


def fund_fills(
    qty: int, cost: int, fills: Sequence[int], lot_value: int, tick_value: int
) -> tuple[list[int], int, int] | None:
    """The realized PnL of each fill of a position at one lot value, in turn, exactly as
    Book.apply_fill computes it; with the position after. None where the position would
    leave the range apply_fill accepts."""
    realized = []
    for q in fills:
        new_qty = qty + q
        if qty == 0 or (qty > 0) == (q > 0):
            r = 0
            cost += q * lot_value
        else:
            closed = -q if abs(q) <= abs(qty) else qty
            closed_cost = -((-cost * closed) // qty)
            r = closed * lot_value - closed_cost
            cost -= closed_cost
            if new_qty != 0 and (new_qty > 0) != (qty > 0):
                cost = new_qty * lot_value
        if abs(new_qty) * tick_value > POSITION_TICK_VALUE_MAX or abs(cost) > 2**62:
            return None
        qty = new_qty
        realized.append(r)
    return realized, qty, cost


def plan_fills(
    book: Book, fund_row: int, slots: np.ndarray, rows: np.ndarray, closed: np.ndarray
) -> FillPlan | None:
    """The plan of closing `closed` lots of each slot (owned by the account at `rows`)
    against the fund at the mark, or None when a value could leave the range the book
    checks (the caller then goes one by one). Slots index the compacted columns, so the
    caller compacts before choosing them and nothing may compact before the commit."""
    inst = book.pos_instrument[slots].astype(np.int64)
    qty = book.pos_qty[slots]
    cost = book.pos_cost[slots]
    lot_value = book.mark_lot_value[inst]
    price = book.mark[inst]
    assert (price > 0).all(), "a position is moved at a positive mark"
    assert (
        (closed != 0) & (np.sign(closed) == np.sign(qty)) & (np.abs(closed) <= np.abs(qty))
    ).all()
    if (np.abs(qty).astype(np.float64) * lot_value.astype(np.float64) > BATCH_SAFE_MAX).any():
        return None
    full = closed == qty
    closed_cost = cost.copy()
    for j in np.flatnonzero(~full).tolist():  # partial closes: the product needs 128 bits
        c, k, q = int(cost[j]), int(closed[j]), int(qty[j])
        closed_cost[j] = -((-c * k) // q)
    trader_realized = closed * lot_value - closed_cost
    fund_realized = np.zeros(len(slots), dtype=np.int64)
    fund_positions: dict[int, tuple[int, int]] = {}
    held = {i: (q, c) for i, q, c in book.positions_of(int(book.account_id[fund_row]))}
    tick_value = book.instruments.tick_value
    # The fund takes each slot's lots in the given order; per instrument that is a
    # subsequence, replayed with plain integers (one-sided runs add up without rounding).
    order = np.argsort(inst, kind="stable")
    bounds = np.flatnonzero(np.diff(inst[order])) + 1
    for group in np.split(order, bounds):
        if len(group) == 0:
            continue
        i = int(inst[group[0]])
        q0, c0 = held.get(i, (0, 0))
        fills = closed[group]
        lv = int(lot_value[group[0]])
        if (fills > 0).all() and q0 >= 0 or (fills < 0).all() and q0 <= 0:
            total = sum(fills.tolist())
            q1, c1 = q0 + total, c0 + total * lv
            if abs(q1) * int(tick_value[i]) > POSITION_TICK_VALUE_MAX or abs(c1) > 2**62:
                return None
            fund_positions[i] = (q1, c1)
            continue
        replay = fund_fills(q0, c0, fills.tolist(), lv, int(tick_value[i]))
        if replay is None:
            return None
        realized, q1, c1 = replay
        fund_realized[group] = realized
        fund_positions[i] = (q1, c1)
    return FillPlan(
        slots=slots,
        rows=rows,
        instrument=inst,
        closed=closed,
        price=price,
        trader_realized=trader_realized,
        qty_after=qty - closed,
        cost_after=cost - closed_cost,
        fund_realized=fund_realized,
        fund_positions=fund_positions,
    )


def post_pnl(
    book: Book, account_ids: np.ndarray, realized: np.ndarray, event_ids: np.ndarray
) -> None:
    """Realized PnL postings between the clearing account and each account, with balances."""
    book.post_many(CLEARING, account_ids, realized, Reason.REALIZED_PNL, event_ids)


def commit_fills(
    book: Book, fund: int, fund_row: int, plan: FillPlan, event_ids: np.ndarray
) -> None:
    """Write a plan: the traders' slots, the fund's positions and both sides' realized PnL."""
    book.pos_qty[plan.slots] = plan.qty_after
    book.pos_cost[plan.slots] = plan.cost_after
    for inst, (qty, cost) in plan.fund_positions.items():
        book.set_position(fund_row, inst, qty, cost)  # the plan replayed every fill exactly
    post_pnl(book, book.account_id[plan.rows], plan.trader_realized, event_ids)
    post_pnl(book, np.full(len(plan.slots), fund), plan.fund_realized, event_ids)
    book.changed_rows.update(plan.rows.tolist())
    book.changed_rows.add(fund_row)


def take_over_batch(
    book: Book,
    profile: Profile,
    rows: np.ndarray,
    equity: np.ndarray,
    result: WaterfallResult,
) -> bool:
    """Full takeover of the accounts at `rows` (in priority order, equity as swept), with
    the state liquidate_account gives taking them one by one. False, with nothing changed,
    when a running value could leave the range the book checks."""
    n = len(rows)
    if n == 0:
        return True
    fund = profile.fund_account_id
    fund_row = book.row_of(fund)
    book.compact()
    starts, ends = book.acct_start[rows], book.acct_start[rows + 1]
    counts = ends - starts
    member = np.repeat(np.arange(n, dtype=np.int64), counts)  # index into rows, per slot
    slots = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(
        starts - (np.cumsum(counts) - counts), counts
    )
    live = book.pos_qty[slots] != 0
    slots, member = slots[live], member[live]
    # positions_of order: by instrument within an account.
    order = np.lexsort((book.pos_instrument[slots], member))
    slots, member = slots[order], member[order]
    qty = book.pos_qty[slots]
    plan = plan_fills(book, fund_row, slots, rows[member], qty)
    if plan is None:
        return False
    # Fee: ceil(rate x notional) per account, split so no product leaves int64:
    # notional = a * S + b, so ceil(notional * rate / S) = a * rate + ceil(b * rate / S).
    value = np.abs(qty) * book.mark_lot_value[plan.instrument]
    notional_f = np.zeros(n)
    np.add.at(notional_f, member, value.astype(np.float64))
    if (notional_f > BATCH_SAFE_MAX).any():
        return False
    notional = np.zeros(n, dtype=np.int64)
    np.add.at(notional, member, value)
    rate = profile.liquidation_fee_rate
    fee = (notional // RATE_SCALE) * rate - ((-(notional % RATE_SCALE) * rate) // RATE_SCALE)
    fee = np.minimum(fee, np.maximum(equity, 0))
    balance = book.balance[rows]
    realized_sum = np.zeros(n, dtype=np.int64)
    np.add.at(realized_sum, member, plan.trader_realized)
    assert (balance + realized_sum == equity).all(), "takeover must move exactly the equity"
    remaining = equity - fee
    protect = profile.negative_balance_protection
    takeover = np.maximum(remaining, 0)
    payout = np.maximum(-remaining, 0) if protect else np.zeros(n, dtype=np.int64)
    # The book checks each running balance against 2^62; prove from magnitudes it cannot trip.
    trader_span = np.abs(balance).astype(np.float64) + fee
    np.add.at(trader_span, member, np.abs(plan.trader_realized).astype(np.float64))
    fund_span = (
        abs(float(book.balance[fund_row]))
        + float(fee.sum())
        + float(np.abs(plan.fund_realized).astype(np.float64).sum())
        + float(np.abs(remaining).astype(np.float64).sum())
    )
    if (trader_span > BATCH_SAFE_MAX).any() or fund_span > BATCH_SAFE_MAX:
        return False

    first = book.new_event_id()
    for _ in range(n - 1):
        book.new_event_id()
    event_ids = np.arange(first, first + n, dtype=np.int64)
    account_ids = book.account_id[rows]
    # each of these moves money one way only: a sign flip would be a bug, not a refund
    assert (fee >= 0).all() and (takeover >= 0).all() and (payout >= 0).all()
    book.post_many(account_ids, fund, fee, Reason.LIQUIDATION_FEE, event_ids)
    commit_fills(book, fund, fund_row, plan, event_ids[member])
    book.post_many(account_ids, fund, takeover, Reason.TAKEOVER, event_ids)
    book.post_many(fund, account_ids, payout, Reason.INSURANCE_PAYOUT, event_ids)
    expected = np.zeros(n, dtype=np.int64) if protect else np.minimum(remaining, 0)
    assert (book.balance[rows] == expected).all(), "a taken-over account ends at 0 (or its debt)"

    result.liquidation_fees += sum(fee.tolist())
    result.takeover_surplus += sum(takeover.tolist())
    result.insurance_paid += sum(payout.tolist())
    if not protect:
        result.debt_kept += sum(np.maximum(-remaining, 0).tolist())
    # Events in the reference's order: per account its fee, its positions, its takeover.
    k_fee = np.flatnonzero(fee > 0)
    k_take, k_pay = np.flatnonzero(takeover > 0), np.flatnonzero(payout > 0)
    member_of = np.concatenate([k_fee, member, k_take, k_pay])
    stage = np.concatenate(
        [np.zeros(len(k_fee)), np.ones(len(slots)), np.full(len(k_take) + len(k_pay), 2)]
    )
    sequence = np.lexsort((np.arange(len(member_of)), stage, member_of))
    zeros = np.zeros(len(slots), dtype=np.int64)
    columns = {
        "kind": np.concatenate(
            [
                np.full(len(k_fee), KIND_CODE["liquidation_fee"]),
                np.full(len(slots), KIND_CODE["liquidation"]),
                np.full(len(k_take), KIND_CODE["takeover"]),
                np.full(len(k_pay), KIND_CODE["insurance_payout"]),
            ]
        ),
        "event_id": event_ids[member_of],
        "account_id": account_ids[member_of],
        "instrument": np.concatenate(
            [
                np.full(len(k_fee), NO_INSTRUMENT),
                plan.instrument,
                np.full(len(k_take) + len(k_pay), NO_INSTRUMENT),
            ]
        ),
        "qty": np.concatenate(
            [np.zeros(len(k_fee), np.int64), qty, np.zeros(len(k_take) + len(k_pay), np.int64)]
        ),
        "price": np.concatenate(
            [
                np.zeros(len(k_fee), np.int64),
                plan.price,
                np.zeros(len(k_take) + len(k_pay), np.int64),
            ]
        ),
        "amount": np.concatenate([fee[k_fee], zeros, takeover[k_take], payout[k_pay]]),
    }
    result.log.extend({name: col[sequence] for name, col in columns.items()})
    return True
