"""Account events in batches: columns in, applied in order by one C kernel, outcomes out.

`apply_account_events(book, events, rules, last_event_id, one_by_one)` applies a batch of
deposits, withdrawals, fills and leverage changes (`EventColumns`, one row per event, in
stream order) with the rules of the per-event path -- Book's operations plus the service's
checks (`EventRules`; engine.service.tick states them) -- each event all or nothing, and
returns a `BatchOutcome`: per event applied or the RejectReason that refused it.

How: a pre-pass maps the batch's account ids to book rows once (np.unique + the account
index's sorted search), reserves balance rows for accounts a deposit may open, and seeds
the kernel's (row, instrument) table with the book's pending positions and the leverage
settings the batch names. The kernel (csrc/account_events.h) then runs over the columns
without Python; its postings are appended to the ledger in one call. Where the per-event
path would re-lay the position columns (compact) or its roll-back could move a position,
the kernel stops and that one event goes through `one_by_one` (the caller's per-event
path, which raises Rejected when it refuses), and the kernel resumes after it; so the book,
its layout included, the ledger and every outcome are the per-event path's. (Over 400
lines: the loop around the kernel and its write-back into the book's structures belong
together; the kernel's table lives in engine.book.event_pairs.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine import _native
from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.event_pairs import PairTable
from engine.book.limits import (
    ACCOUNTS_MAX,
    BALANCE_MAX,
    LEVERAGE_MAX,
    POSITION_SLOTS_MAX,
    VALUE_MAX,
)
from engine.book.reasons import RejectReason

DEPOSIT = _native.EVENT_DEPOSIT
WITHDRAW = _native.EVENT_WITHDRAW
FILL = _native.EVENT_FILL
LEVERAGE = _native.EVENT_LEVERAGE
APPLIED = _native.EVENT_APPLIED
ONE_BY_ONE = _native.EVENT_ONE_BY_ONE

# The kernel's refusal codes (csrc/account_events.h), in its order from 2 on.
OUTCOME_REASONS: dict[int, RejectReason] = {
    code: reason
    for code, reason in enumerate(
        [
            RejectReason.DUPLICATE_EVENT_ID,
            RejectReason.RESERVED_ACCOUNT,
            RejectReason.NOT_OWNED,
            RejectReason.UNKNOWN_ACCOUNT,
            RejectReason.LIMIT_EXCEEDED,
            RejectReason.OVERFLOW,
            RejectReason.INVALID_AMOUNT,
            RejectReason.INVALID_QTY,
            RejectReason.INVALID_PRICE,
            RejectReason.INVALID_LEVERAGE,
            RejectReason.LEVERAGE_ABOVE_MAX,
            RejectReason.NO_MARK,
            RejectReason.PRICE_OUT_OF_BAND,
            RejectReason.INSUFFICIENT_MARGIN,
            RejectReason.INVALID_TRADE,
        ],
        start=2,
    )
}
assert len(OUTCOME_REASONS) + 2 == _native.EVENT_OUTCOME_COUNT, "a kernel code without a reason"
CODE_OF_REASON = {reason: code for code, reason in OUTCOME_REASONS.items()}

_EVENT_COLUMNS = (
    ("kind", np.int8),
    ("event_id", np.int64),
    ("partition", np.int32),
    ("pre_outcome", np.int8),
    ("account", np.int64),
    ("counterparty", np.int64),
    ("instrument", np.int32),
    ("price", np.int64),
    ("qty", np.int64),
    ("amount", np.int64),
    ("fee", np.int64),
    ("counterparty_fee", np.int64),
    ("leverage", np.int64),
    ("sides", np.int8),
)


@dataclass
class EventColumns:
    """One row per account event, in stream order (units as engine.service.messages):
    kind (DEPOSIT, WITHDRAW, FILL, LEVERAGE); event_id; partition (index into the dedup
    state `last_event_id`); pre_outcome (0, or the code of a refusal found before the book,
    counted after the duplicate check: a house account); account (deposit / withdraw /
    leverage: the account; fill: the buyer); counterparty (fill: the seller); instrument;
    price ticks; qty lots (> 0); amount money; fee (the buyer's), counterparty_fee (the
    seller's); leverage; sides (bit 0: apply the buyer's side here, bit 1: the seller's).
    Columns a kind does not use hold 0."""

    kind: np.ndarray
    event_id: np.ndarray
    partition: np.ndarray
    pre_outcome: np.ndarray
    account: np.ndarray
    counterparty: np.ndarray
    instrument: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    amount: np.ndarray
    fee: np.ndarray
    counterparty_fee: np.ndarray
    leverage: np.ndarray
    sides: np.ndarray

    def __post_init__(self) -> None:
        for name, dtype in _EVENT_COLUMNS:
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype))
        n = len(self.kind)
        assert all(len(getattr(self, name)) == n for name, _ in _EVENT_COLUMNS), (
            "event columns of unequal lengths"
        )

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def empty(cls, n: int) -> EventColumns:
        cols = {name: np.zeros(n, dtype=dtype) for name, dtype in _EVENT_COLUMNS}
        cols["sides"][:] = 3
        return cls(**cols)

    def take(self, rows: np.ndarray) -> EventColumns:
        return EventColumns(**{name: getattr(self, name)[rows] for name, _ in _EVENT_COLUMNS})

    def as_tuple(self, refs: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
        values = [getattr(self, name) for name, _ in _EVENT_COLUMNS]
        values[4], values[5] = refs
        return tuple(values)


@dataclass(frozen=True)
class EventRules:
    """The per-event path's limits and checks (engine.service.tick): fill_checks (a mark,
    the band, the initial margin of a side whose exposure grows), band_rate over RATE_SCALE
    (0: no band), and the most accounts, balance after a deposit and position slots."""

    fill_checks: bool = True
    band_rate: int = 0
    accounts_max: int = ACCOUNTS_MAX
    balance_max: int = BALANCE_MAX
    position_slots_max: int = POSITION_SLOTS_MAX

    def as_tuple(self, default_leverage: int, stop_on_reject: bool) -> tuple[int, ...]:
        return (
            default_leverage,
            LEVERAGE_MAX,
            self.accounts_max,
            self.balance_max,
            BALANCE_MAX,
            VALUE_MAX,
            self.position_slots_max,
            self.band_rate,
            int(self.fill_checks),
            int(stop_on_reject),
        )


@dataclass
class BatchOutcome:
    """Per event: its outcome code (APPLIED or a refusal, OUTCOME_REASONS), and for the
    events that went one by one the refusal the per-event path raised (with its detail)."""

    outcome: np.ndarray
    refusals: dict[int, Rejected] = field(default_factory=dict)
    one_by_one: int = 0  # events the per-event path applied or refused
    kernel_calls: int = 0

    @property
    def applied(self) -> np.ndarray:
        return self.outcome == APPLIED

    def reason(self, i: int) -> RejectReason | None:
        if i in self.refusals:
            return self.refusals[i].reason
        code = int(self.outcome[i])
        return None if code == APPLIED else OUTCOME_REASONS[code]

    def reasons(self) -> list[RejectReason | None]:
        return [self.reason(i) for i in range(len(self.outcome))]


# ----- the batch -------------------------------------------------------------------------
def apply_account_events(
    book: Book,
    events: EventColumns,
    rules: EventRules,
    last_event_id: np.ndarray,
    one_by_one: Callable[[int], None],
    *,
    stop_on_reject: bool = False,
) -> BatchOutcome:
    """Apply `events` in order; `last_event_id` (int64, per partition index) is the dedup
    state, read and advanced. `one_by_one(i)` applies event i the per-event way (keeping
    `last_event_id` current) and raises Rejected when it refuses it; it is called where the
    kernel stops (see the module's docstring), and with `stop_on_reject` for every refused
    event too, so the caller gets the per-event path's refusal details."""
    n = len(events)
    result = BatchOutcome(np.zeros(n, dtype=np.int8))
    if n == 0:
        return result
    n_inst = len(book.instruments)
    is_fill = events.kind == FILL
    ids = np.concatenate([events.account, events.counterparty[is_fill]])
    account_id = np.unique(ids)
    refs = (
        np.searchsorted(account_id, events.account),
        np.where(is_fill, np.searchsorted(account_id, events.counterparty), 0),
    )
    account_row = book.index.rows(account_id)

    pairs = PairTable(4 * (len(book.positions.pending) + 2 * n + n_inst) + 64, n_inst)
    pairs.seed_pending(book.positions.pending)
    settings = book._leverage_setting
    if settings:
        _seed_settings(pairs, settings, events, refs, account_row, is_fill, n_inst)

    tiers = book.instruments
    tier_args = (
        tiers.tick_value,
        tiers.tier_start,
        tiers.tier_max_notional,
        tiers.tier_mmr,
        tiers.tier_maintenance_amount,
        tiers.tier_max_leverage,
    )
    rule_args = rules.as_tuple(book.default_leverage, stop_on_reject)
    event_args = events.as_tuple(refs)
    posts = _native.POSTINGS_PER_EVENT_MAX * n
    out = (
        result.outcome,
        np.zeros(posts, dtype=np.int64),
        np.zeros(posts, dtype=np.int64),
        np.zeros(posts, dtype=np.int64),
        np.zeros(posts, dtype=np.int64),
        np.zeros(posts, dtype=np.int8),
        np.zeros(2 * n, dtype=np.int64),
    )
    mark_set = book.mark_set.view(np.uint8)
    start = 0
    while start < n:
        book.balances._grow(int((account_row < 0).sum()))
        p = book.positions
        state = (
            p.n_accounts,
            book.n_accounts,
            p.acct_start,
            book.balances.amount,
            p.instrument,
            p.qty,
            p.cost,
            p.leverage,
            book.mark,
            book.mark_lot_value,
            mark_set,
        )
        n_before = book.n_accounts
        stop, n_post, n_changed, n_open, n_pending, n_keys, max_event_id, replay, house = (
            _native.apply_account_events(
                event_args,
                (account_id, account_row),
                pairs.as_tuple(),
                state,
                tier_args,
                last_event_id,
                rule_args,
                start,
                out,
            )
        )
        result.kernel_calls += 1
        pairs.n_pending, pairs.n_keys = n_pending, n_keys
        _write_back(book, pairs, account_id, account_row, n_before, n_open, out, n_post, n_changed)
        for h, delta in enumerate(house):
            if delta:
                book.house_balance[-h - 1] += delta
        if max_event_id:
            book._next_event_id = max(book._next_event_id, max_event_id + 1)
        if stop >= n:
            break
        code = int(result.outcome[stop])
        if code == ONE_BY_ONE or replay or stop_on_reject:
            _one(book, events, stop, code, one_by_one, result)
            _resync(book, pairs, events, stop, refs, account_id, account_row)
        start = stop + 1
    return result


def _seed_settings(
    pairs: PairTable,
    settings: dict[tuple[int, int], int],
    events: EventColumns,
    refs: tuple[np.ndarray, np.ndarray],
    account_row: np.ndarray,
    is_fill: np.ndarray,
    n_inst: int,
) -> None:
    """The leverage settings of every (row, instrument) the batch names."""
    named = (events.kind == LEVERAGE) | is_fill
    rows = np.concatenate([account_row[refs[0][named]], account_row[refs[1][is_fill]]])
    inst = np.concatenate([events.instrument[named], events.instrument[is_fill]])
    keys = np.unique(rows[rows >= 0] * n_inst + inst[rows >= 0])
    if len(settings) <= len(keys):
        wanted = set(keys.tolist())
        for (row, i), setting in settings.items():
            if row * n_inst + i in wanted:
                pairs.seed_setting(row, i, setting)
    else:
        for key in keys.tolist():
            found = settings.get((key // n_inst, key % n_inst))
            if found is not None:
                pairs.seed_setting(key // n_inst, key % n_inst, found)


def _write_back(
    book: Book,
    pairs: PairTable,
    account_id: np.ndarray,
    account_row: np.ndarray,
    n_before: int,
    n_open: int,
    out: tuple[np.ndarray, ...],
    n_post: int,
    n_changed: int,
) -> None:
    """What one kernel call did, into the book's own structures: accounts it opened (rows
    in opening order), postings, pending positions, leverage settings, changed rows."""
    if n_open > n_before:
        opened = np.flatnonzero(account_row >= n_before)
        opened = opened[np.argsort(account_row[opened])]
        assert (account_row[opened] == np.arange(n_before, n_open)).all()
        balances = book.balances.amount[n_before:n_open].copy()
        for account in account_id[opened].tolist():
            book.balances.add(account)
        book.positions.add_accounts(n_open - n_before)
        book.balances.amount[n_before:n_open] = balances
    _, event_id, debit, credit, amount, reason, changed = out
    book.ledger.append(
        event_id[:n_post], debit[:n_post], credit[:n_post], amount[:n_post], reason[:n_post]
    )
    if pairs.n_pending or book.positions.pending:
        pending = book.positions.pending
        pending.clear()
        pending.update(pairs.pending_positions())
    for row, inst, setting in pairs.take_changed_settings():
        book._leverage_setting[(row, inst)] = setting
    if n_changed:
        book.changed_rows.update(changed[:n_changed].tolist())


def _one(
    book: Book,
    events: EventColumns,
    i: int,
    code: int,
    one_by_one: Callable[[int], None],
    result: BatchOutcome,
) -> None:
    """Event i through the per-event path; its outcome must be the kernel's where the
    kernel had one."""
    result.one_by_one += 1
    try:
        one_by_one(i)
    except Rejected as exc:
        result.refusals[i] = exc
        if code != ONE_BY_ONE:
            assert exc.reason == OUTCOME_REASONS[code], (
                f"event {int(events.event_id[i])}: the kernel refused it as"
                f" {OUTCOME_REASONS[code]}, the per-event path as {exc.reason}"
            )
        result.outcome[i] = CODE_OF_REASON.get(exc.reason, ONE_BY_ONE)
        return
    assert code == ONE_BY_ONE, (
        f"event {int(events.event_id[i])}: refused by the kernel"
        f" ({OUTCOME_REASONS[code]}), applied by the per-event path"
    )
    result.outcome[i] = APPLIED


def _resync(
    book: Book,
    pairs: PairTable,
    events: EventColumns,
    i: int,
    refs: tuple[np.ndarray, np.ndarray],
    account_id: np.ndarray,
    account_row: np.ndarray,
) -> None:
    """After event i went one by one: its accounts' rows (it may have opened one), the
    pending positions (it may have re-laid the columns) and its leverage setting."""
    named = [int(refs[0][i])] + ([int(refs[1][i])] if events.kind[i] == FILL else [])
    for ref in named:
        row = book.index.find(int(account_id[ref]))
        account_row[ref] = -1 if row is None else row
    pairs.seed_pending(book.positions.pending)
    if events.kind[i] == LEVERAGE and account_row[named[0]] >= 0:
        row, inst = int(account_row[named[0]]), int(events.instrument[i])
        pairs.seed_setting(row, inst, book._leverage_setting.get((row, inst)))
