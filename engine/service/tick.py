"""One tick of the service: a batch of input records in, the output records out,
deterministic, no I/O of its own. (Over 400 lines: the per-record checks -- authorization,
fill rules, limits, price sanity -- must stay next to the apply they guard.)

A tick (Service.tick) takes a batch of records (topic, partition, offset, key, value bytes)
and returns the output records it publishes, in order.

The order (engine.service.order.tick_order): by event time (`ts`) across topics, ties by
topic (account events before prices), then partition, then offset; each partition keeps
its offset order, and a record that does not parse takes the time of the one before it in
its partition (those before the first that parses: that one's), which moves no other record. The
order depends only on the batch, so a live run and a replay of its journal apply the
same. The records in that order:

1. an account event: validated (engine.service.messages), deduplicated by event id (ids
   must increase within a partition; one at or below the last seen there is a
   `duplicate_event_id`, one more than EVENT_ID_GAP_MAX above it -- 0 for a partition with
   none -- is an `invalid_event_id`), then applied to the book. A fill moves both sides
   atomically; when the events topic is sharded, each shard applies the sides whose
   accounts are keyed into the record's partition (the producer sends a fill once per
   partition involved). An account event that follows accepted prices first closes their
   step (below), so it sees the marks they set.
2. a price: validated, `stale_sequence` unless seq rises per symbol, then price sanity
   (Service._price_accepted): a price p against the reference r -- the symbol's mark as
   the tick opened -- is held, not acted on, when |p - r| x 10^8 > band_rate x r, until
   `band_confirm` prices in a row lie outside the band on the same side in as many ticks
   (a move counts once per tick, so within one tick a mark moves at most the band however
   many prices walk it); a symbol's first price is held until `band_confirm` prices in a
   row agree within the band; a seq more than SEQ_GAP_MAX above the last accepted one is
   held the same way; an index of an even count of sources takes the mean of the middle
   two (rounded to the tick toward the previous mark), refused (`price_out_of_band`) when
   they disagree by more than the band. Accepted prices are conflated until the next
   account event or the end of the tick: the last one per instrument becomes its mark.

Each step (a run of accepted prices, closed by an account event or the end of the tick;
the end of the tick is a step even without prices; an event refused whatever the marks --
Service._refused_before_marks -- closes none) then runs:

3. the sweep: engine.risk.incremental.IncrementalSweep (its statuses equal a full sweep's),
   or a full sweep; nothing runs until every instrument with open positions has a mark.
4. margin calls: an account entering `margin_call` status gets one event.
5. the waterfall (engine.waterfall.run.run_waterfall) when a trader account is at
   `liquidate` or worse, or the insurance fund is below its floor; otherwise it would do
   nothing, so skipping it changes nothing.

Every rejected record is dead-lettered with its reason and original bytes and changes no
state: not the book, not the last event id of its partition, not a symbol's last seq, not
the service's event time. Only an applied event, or an accepted price, moves those (a price
held by the band moves only its hold count). The event time a tick closes with is the
largest accepted ts, but at most TS_SKEW_MAX past the event time it opened with
(engine.service.order.EventTime). The output documents and their ids are
engine.service.outputs'.

Who may do what (authorization at the ingest): no account event may name a house account
(an id at or above RESERVED_ACCOUNT_BASE, or the profile's fund or unwind account:
engine.waterfall.profile.is_reserved) -- `reserved_account`. A deposit may not open an
account beyond ACCOUNTS_MAX, nor take a balance beyond BALANCE_MAX (`limit_exceeded`,
`overflow`); a fill may not open a position beyond POSITION_SLOTS_MAX. With `fill_checks`
on (the default) a fill needs a mark for its symbol (`no_mark`), lies within band_rate of
that mark (`price_out_of_band`; no band when band_rate is 0), keeps each side's position
value at the mark within VALUE_MAX (`overflow`), and every side whose exposure grows (|qty|
up, or a flip) must end with equity at the marks >= its initial margin, the rule a
withdrawal meets (`insufficient_margin`); a side that only reduces is always let through.

Poison pills: if applying one record raises anything else, the book is put back as it was
before that record (engine.service.rollback) and the record is dead-lettered with
`internal_error`; the service goes on with the next record.

Determinism: the state after a tick depends only on the state before and the batch. How
records are cut into batches is the source's choice (the Kafka sources cut them
deterministically when catching up, engine.service.kafka_batches); the driver
(engine.service.driver.run) journals each tick's end offsets before publishing, and on
recovery re-cuts the journaled ticks exactly, so a replay after a crash reproduces the run
that crashed, bit for bit, outputs and ids included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from engine.book.book import (
    STATUS_LIQUIDATE,
    STATUS_MARGIN_CALL,
    Book,
)
from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE
from engine.book.limits import (
    ACCOUNTS_MAX,
    BALANCE_MAX,
    EVENT_ID_GAP_MAX,
    POSITION_SLOTS_MAX,
    RESERVED_ACCOUNT_BASE,
    SEQ_GAP_MAX,
    VALUE_MAX,
)
from engine.book.reasons import RejectReason
from engine.exchange.exchange_tick import ExchangeState, ExchangeTickResult, exchange_tick
from engine.exchange.margin_change import apply_margin_change
from engine.risk.incremental import IncrementalSweep
from engine.service import isolated_events, messages
from engine.service.event_batch import apply_account_records
from engine.service.exchange_outputs import call_outcome_doc, deadline_call_doc, reduction_doc
from engine.service.ingest import PlainEvent, is_arrow_batch
from engine.service.messages import Deposit, Fill, LeverageChange, PriceUpdate, Withdraw
from engine.service.order import EventTime, tick_order
from engine.service.outputs import (
    TickOutputs,
    event_doc,
    fund_doc,
    margin_call_doc,
    rejected_doc,
    topic_of_event,
)
from engine.service.ports import Output, Record, tp_name
from engine.service.rollback import Savepoint
from engine.service.state import ServiceConfig, ServiceState, TickStats
from engine.waterfall.events import Event, WaterfallResult
from engine.waterfall.models import Models, model_sweep, uses_models
from engine.waterfall.profile import Profile, is_reserved
from engine.waterfall.run import SweptRows, run_waterfall

# What a held price is waiting to confirm (the first element of ServiceState.held's lists).
HELD_BELOW, HELD_ABOVE, HELD_FIRST, HELD_SEQ_JUMP = -1, 1, 0, 2


class Service:
    """The engine's state behind a stream: a book, a profile and the service state."""

    # Account events through the C batch path (engine.book.batch); off: one by one, the
    # reference path. Both give the same state and outputs.
    batch_account_events = True

    def __init__(
        self,
        book: Book,
        profile: Profile,
        config: ServiceConfig | None = None,
        state: ServiceState | None = None,
        *,
        partition_of_account: Callable[[int], int] | None = None,
        clock: Callable[[], float] | None = None,
        models: Models | None = None,
    ) -> None:
        if book.index.find(profile.fund_account_id) is None:
            raise ValueError("the insurance fund's account must be open (engine.waterfall)")
        self.book = book
        self.profile = profile
        # The profile's risk models (engine.waterfall.models): their state, and whether a tick
        # takes their path (a full model sweep, their steps before the takeovers).
        self.models = models if models is not None else Models.for_profile(book, profile)
        self._with_models = uses_models(profile)
        self.config = config or ServiceConfig()
        self.state = state or ServiceState()
        # None: this instance owns every account (one partition, files, or no sharding).
        self.partition_of_account = partition_of_account
        self.clock = clock
        self.fund_floor = profile.fund_floor_units(book.instruments.money_decimals)
        self._incremental: IncrementalSweep | None = None
        self._previous_lot_value: np.ndarray | None = None
        self._marked_now: set[str] = set()  # symbols whose mark this tick set
        self._margin_call = np.zeros(book.n_accounts, dtype=bool)
        rows = book.index.rows(np.asarray(self.state.margin_call, dtype=np.int64))
        assert (rows >= 0).all(), "margin-call accounts must be in the book"
        self._margin_call[rows] = True
        self.last_stats = TickStats()
        # Futures exchange conventions (engine.exchange): classes, margin calls, limits.
        self.exchange = ExchangeState(book.instruments)
        self.exchange.load_dict(self.state.exchange)
        # The journal position saved with the snapshot this service was restored from.
        self.journal_position = 0

    def extra(self) -> dict[str, Any]:
        # The flags cover the accounts known at the last sweep; accounts only grow.
        self.state.margin_call = self.book.account_id[np.flatnonzero(self._margin_call)].tolist()
        self.state.exchange = self.exchange.to_dict()
        return {"service": self.state.to_extra(self.config.shard)}

    # ----- one tick ----------------------------------------------------------------------
    def tick(self, records: Sequence[Record]) -> list[Output]:
        """Apply one batch; returns the outputs in publication order."""
        topics = self.config.topics
        state = self.state
        state.tick += 1
        stats = TickStats(records=len(records))
        self.last_stats = stats
        out = TickOutputs(self.config.shard, state.tick)
        for record in records:
            name = tp_name(record.topic, record.partition)
            assert record.offset >= state.offsets.get(name, 0), f"{name}: offset went back"
            state.offsets[name] = record.offset + 1
            if record.topic not in (topics.account_events, topics.prices):
                raise AssertionError(f"record from a topic the service does not read: {name}")
        book = self.book
        # The band's anchor: each symbol's mark as the tick opens (cumulative moves within a
        # tick are banded against it, not against the last accepted price).
        self._opening_mark = np.where(book.mark_set, book.mark, 0).astype(np.int64)
        self._first_accepted: dict[int, int] = {}
        self._marked_now = set()
        tick_ts = EventTime(state.tick_ts)
        assets = () if self.profile.collateral is None else self.profile.collateral.assets
        pending: dict[int, PriceUpdate] = {}  # accepted prices not yet marks: one step
        collateral: dict[str, messages.CollateralPrice] = {}  # likewise, collateral assets
        run: list[Record] = []  # consecutive account-event records: one batch
        known: list[PlainEvent | None] = []  # the rows tick_order already decoded
        # The C batch knows the plain futures book: no collateral, risk models or margin per
        # contract (those events go one by one, through the same rules).
        batchable = not assets and not self._with_models and not self._per_contract()
        ordered = tick_order(
            records, topics, state.tick_ts, book.instruments, assets, plain=batchable
        )
        for record, message in ordered:
            if batchable and (
                isinstance(
                    message, PlainEvent | Rejected | Deposit | Withdraw | Fill | LeverageChange
                )
                and record.topic == topics.account_events
                and not is_arrow_batch(record.value)  # an unreadable columnar batch: below
            ):
                # A run of account events: applied together (engine.service.event_batch:
                # the C batch path, or one by one), after the prices before it took effect
                # (an event refused whatever the marks does not close their step).
                if pending and not self._refused_before_marks(record, message):
                    self._step(out, stats, pending, collateral)
                    pending, collateral = {}, {}
                run.append(record)
                known.append(message if isinstance(message, PlainEvent) else None)
                continue
            if run:
                apply_account_records(self, run, out, stats, tick_ts, known=known)
                run, known = [], []
            if isinstance(message, Rejected):
                self._dead_letter(out, stats, record, message)
                continue
            if isinstance(message, messages.CollateralPrice):
                try:
                    if self._collateral_price(message, collateral):
                        tick_ts.accept(message.ts)
                    else:
                        stats.prices_held += 1
                    stats.prices += 1
                except Rejected as exc:
                    self._dead_letter(out, stats, record, exc)
                continue
            if isinstance(message, (messages.MarginChangeMessage, messages.SettlementPrice)):
                if pending or collateral:
                    # Applied at the marks of the prices before it (engine.exchange).
                    self._step(out, stats, pending, collateral)
                    pending, collateral = {}, {}
                try:
                    self._parameter(out, message)
                    tick_ts.accept(message.ts)
                    stats.prices += 1
                except Rejected as exc:
                    self._dead_letter(out, stats, record, exc)
                continue
            if isinstance(message, PriceUpdate):
                try:
                    update = self._guarded_price(message)
                    if update is not None:
                        pending[update.instrument] = update
                        tick_ts.accept(update.ts)
                    else:
                        stats.prices_held += 1
                    stats.prices += 1
                except Rejected as exc:
                    self._dead_letter(out, stats, record, exc)
                continue
            if (pending or collateral) and not self._refused_before_marks(record, message):
                # An account event after prices: those prices' marks and their risk first.
                self._step(out, stats, pending, collateral)
                pending, collateral = {}, {}
            try:
                if isinstance(message, isolated_events.IsolatedFill):  # to its sub-accounts
                    message = isolated_events.resolve_fill(self.models.isolated, message)
                self._apply_event(record, message)
                tick_ts.accept(message.ts)
                stats.account_events += 1
            except Rejected as exc:
                self._dead_letter(out, stats, record, exc)
        if run:
            apply_account_records(self, run, out, stats, tick_ts, known=known)
        state.tick_ts = tick_ts.closing()
        self._step(out, stats, pending, collateral)
        stats.outputs = out.counts
        return out.finish(state.tick_ts)

    def _step(
        self,
        out: TickOutputs,
        stats: TickStats,
        accepted: dict[int, PriceUpdate],
        collateral_prices: dict[str, messages.CollateralPrice],
    ) -> None:
        """Set the marks of a run of accepted prices (the last per instrument; collateral
        assets' prices likewise) and run the risk at them: the sweep, margin calls and the
        waterfall."""
        self._marked_now = set()
        for _, update in sorted(accepted.items()):
            # Within the day's price limits, when the instrument has them (engine.exchange).
            self.book.set_mark(
                update.symbol, self.exchange.limits.clamp(update.instrument, update.price)
            )
            self.state.mark_seq[update.symbol] = update.seq
            self._marked_now.add(update.symbol)
        for symbol, collateral in sorted(collateral_prices.items()):
            assert self.models.collateral is not None
            self.models.collateral.set_price(symbol, collateral.price)
        if self._marks_ready():
            self._risk(out, stats)
        elif self._incremental is None:
            self.book.changed_rows.clear()

    def _per_contract(self) -> bool:
        """Whether an instrument's margin is a fixed amount per contract (engine.exchange)."""
        table = self.book.instruments
        return bool(table.tier_mm_per_contract.any() or table.tier_im_per_contract.any())

    def _dead_letter(
        self, out: TickOutputs, stats: TickStats, record: Record, exc: Rejected
    ) -> None:
        stats.rejects[exc.reason] = stats.rejects.get(exc.reason, 0) + 1
        out.add(self.config.topics.dead_letter, record.key or b"", rejected_doc(record, exc))

    # ----- account events ----------------------------------------------------------------
    def _owned(self, account: int, partition: int) -> bool:
        return self.partition_of_account is None or self.partition_of_account(account) == partition

    def _refused_before_marks(self, record: Record, message: Any) -> bool:
        """Whether the account event will be refused whatever the marks and the risk at
        them: it does not parse, its id is a duplicate or a jump, it names a house account,
        or (unsharded) an account it needs is not open -- a step (marks, sweep, waterfall)
        opens or spends none of those. Such an event does not close the prices' step before
        it, so the tick's steps, and the state, are those of the accepted records alone."""
        if isinstance(message, Rejected):
            return True
        last = self.state.last_event_id.get(tp_name(record.topic, record.partition), 0)
        if not 0 < message.event_id - last <= EVENT_ID_GAP_MAX:
            return True
        plain = isinstance(message, PlainEvent)  # read by the fast path (engine.service.ingest)
        accounts = message.accounts if plain else messages.accounts_of(message)
        if any(is_reserved(account, self.profile) for account in accounts):
            return True
        needs_open = (
            message.needs_open_accounts
            if plain
            else isinstance(message, Withdraw | Fill | LeverageChange)
        )
        if self.partition_of_account is None and needs_open:
            return any(self.book.index.find(account) is None for account in accounts)
        return False

    def _apply_event(self, record: Record, event: messages.AccountEvent) -> None:
        """Dedup, authorize, apply all or nothing; the event id counts as seen only once
        the event is applied."""
        name = tp_name(record.topic, record.partition)
        last = self.state.last_event_id.get(name, 0)
        if event.event_id <= last:
            raise Rejected(
                RejectReason.DUPLICATE_EVENT_ID,
                f"event id {event.event_id} is not above {last}, the last seen in {name}",
            )
        if event.event_id - last > EVENT_ID_GAP_MAX:
            raise Rejected(
                RejectReason.INVALID_EVENT_ID,
                f"event id {event.event_id} is more than {EVENT_ID_GAP_MAX} above {last},"
                f" the last seen in {name}",
            )
        for account in messages.accounts_of(event):
            if is_reserved(account, self.profile):
                raise Rejected(
                    RejectReason.RESERVED_ACCOUNT,
                    f"account {account} is a house account; the stream may not move it",
                )
        savepoint = Savepoint(self.book, messages.accounts_of(event))
        try:
            self._apply_to_book(record, event)
        except Rejected:
            savepoint.restore()
            raise
        except OverflowError as exc:
            savepoint.restore()
            raise Rejected(RejectReason.OVERFLOW, f"event {event.event_id}: {exc}") from None
        except Exception as exc:
            savepoint.restore()
            raise Rejected(
                RejectReason.INTERNAL_ERROR,
                f"event {event.event_id}: {type(exc).__name__}: {str(exc)[:300]}",
            ) from None
        self.state.last_event_id[name] = event.event_id

    def _apply_to_book(self, record: Record, event: messages.AccountEvent) -> None:
        book = self.book
        if isinstance(event, Deposit):
            row = book.index.find(event.account)
            if row is None and book.n_accounts >= ACCOUNTS_MAX:
                raise Rejected(
                    RejectReason.LIMIT_EXCEEDED,
                    f"account {event.account}: the book holds {ACCOUNTS_MAX} accounts, the most",
                )
            if row is not None and int(book.balance[row]) + event.amount > BALANCE_MAX:
                raise Rejected(
                    RejectReason.OVERFLOW,
                    f"account {event.account}: the balance would pass {BALANCE_MAX} units",
                )
            if row is None and event.amount > BALANCE_MAX:
                raise Rejected(
                    RejectReason.OVERFLOW, f"deposit {event.amount} above {BALANCE_MAX} units"
                )
            book.deposit(event.account, event.amount, event_id=event.event_id)
        elif isinstance(event, Withdraw):
            book.withdraw(event.account, event.amount, event_id=event.event_id)
        elif isinstance(event, LeverageChange):
            book.set_leverage(event.account, event.symbol, event.leverage)
        elif isinstance(event, messages.CollateralTransfer):
            collateral = self.models.collateral
            assert collateral is not None, "collateral events parse only with [collateral]"
            move = collateral.withdraw if event.withdraw else collateral.deposit
            move(event.account, event.asset, event.qty, event.event_id)
        elif isinstance(event, isolated_events.IsolatedMargin):
            isolated_events.apply_isolated_margin(book, self.models.isolated, event)
        elif isinstance(event, messages.AccountClassChange):
            book.row_of(event.account)  # the account must exist (unknown_account)
            self.exchange.classes.set(event.account, event.account_class)
        else:
            assert isinstance(event, Fill)
            sides = [
                (account, qty, fee)
                for account, qty, fee in (
                    (event.buyer, event.qty, event.buyer_fee),
                    (event.seller, -event.qty, event.seller_fee),
                )
                if self._owned(account, record.partition)
            ]
            if not sides:
                raise Rejected(
                    RejectReason.NOT_OWNED, f"no side of fill {event.event_id} is keyed here"
                )
            before = [book.position(account, event.symbol)[0] for account, _, _ in sides]
            if self.config.fill_checks:
                self._check_fill_price(event)
            self._check_position_slots(event, before)
            book.apply_trade(event.symbol, event.price, sides, event_id=event.event_id)
            self._check_fill_value(event, sides)
            if self.config.fill_checks:
                self._check_fill_margin(event, sides, before)

    def _check_fill_value(self, fill: Fill, sides: list[tuple[int, int, int]]) -> None:
        """After the trade is written (the caller rolls it back on a refusal): with a mark,
        each side's position value at it stays within VALUE_MAX, so no sweep overflows."""
        book = self.book
        lot_value = int(book.mark_lot_value[fill.instrument])
        for account, _, _ in sides:
            qty_after = book.position(account, fill.symbol)[0]
            if abs(qty_after) * lot_value > VALUE_MAX:
                raise Rejected(
                    RejectReason.OVERFLOW,
                    f"account {account}: a position of {qty_after} lots is too large at the mark",
                )

    def _check_fill_price(self, fill: Fill) -> None:
        book = self.book
        if not book.mark_set[fill.instrument]:
            raise Rejected(RejectReason.NO_MARK, f"fill {fill.event_id}: no mark for {fill.symbol}")
        mark = int(book.mark[fill.instrument])
        band = self.config.band_rate
        if band and abs(fill.price - mark) * RATE_SCALE > band * mark:
            raise Rejected(
                RejectReason.PRICE_OUT_OF_BAND,
                f"fill {fill.event_id}: price {fill.price} ticks is more than"
                f" {band}/{RATE_SCALE} away from the mark {mark}",
            )

    def _check_position_slots(self, fill: Fill, before: list[int]) -> None:
        book = self.book
        opening = sum(1 for qty in before if qty == 0)
        slots = len(book.pos_qty) + len(book.positions.pending)
        if opening and slots + opening > POSITION_SLOTS_MAX:
            raise Rejected(
                RejectReason.LIMIT_EXCEEDED,
                f"fill {fill.event_id}: the book holds {slots} position slots, the most",
            )

    def _check_fill_margin(
        self, fill: Fill, sides: list[tuple[int, int, int]], before: list[int]
    ) -> None:
        """After the trade is written (the caller rolls it back on a refusal): each side
        whose exposure grew must meet its initial margin at the marks."""
        book = self.book
        for (account, _, _), qty_before in zip(sides, before, strict=True):
            qty_after = book.position(account, fill.symbol)[0]
            grew = abs(qty_after) > abs(qty_before) or qty_after * qty_before < 0
            if not grew:
                continue
            equity, initial_margin = book._account_equity_and_initial_margin(book.row_of(account))
            if equity < initial_margin:
                raise Rejected(
                    RejectReason.INSUFFICIENT_MARGIN,
                    f"fill {fill.event_id}: account {account} would hold equity {equity}"
                    f" below its initial margin {initial_margin}",
                )

    # ----- prices ------------------------------------------------------------------------
    def _guarded_price(self, update: PriceUpdate) -> PriceUpdate | None:
        """_price_accepted with the poison-pill guard: an exception puts the symbol's price
        state back and becomes an `internal_error` rejection."""
        state, symbol = self.state, update.symbol
        saved_seq = state.last_price_seq.get(symbol)
        saved_held = state.held.get(symbol)
        saved_held = None if saved_held is None else list(saved_held)
        saved_first = self._first_accepted.get(update.instrument)
        try:
            return self._price_accepted(update)
        except Exception as exc:
            for table, value in ((state.last_price_seq, saved_seq), (state.held, saved_held)):
                if value is None:
                    table.pop(symbol, None)
                else:
                    table[symbol] = value  # type: ignore[assignment]
            if saved_first is None:
                self._first_accepted.pop(update.instrument, None)
            if isinstance(exc, Rejected):
                raise
            raise Rejected(
                RejectReason.INTERNAL_ERROR, f"{symbol}: {type(exc).__name__}: {str(exc)[:300]}"
            ) from None

    def _within_band(self, price: int, reference: int) -> bool:
        band = self.config.band_rate
        return band == 0 or abs(price - reference) * RATE_SCALE <= band * reference

    def _index_price(self, update: PriceUpdate) -> PriceUpdate:
        """An even count of index sources: the mean of the two middle ones, rounded to the
        tick toward the previous mark (down without one); refused (`price_out_of_band`)
        when the two lie farther apart than the band: one of them is wrong, and the service
        cannot tell which."""
        low, high = update.price, update.price_high
        if high <= low:
            return update
        if not self._within_band(high, low):
            raise Rejected(
                RejectReason.PRICE_OUT_OF_BAND,
                f"{update.symbol}: the middle index sources {low} and {high} ticks disagree"
                f" by more than the band",
            )
        mean, odd = divmod(low + high, 2)
        book = self.book
        if odd and book.mark_set[update.instrument] and int(book.mark[update.instrument]) > mean:
            mean += 1
        return replace(update, price=mean, price_high=0)

    def _price_accepted(self, update: PriceUpdate) -> PriceUpdate | None:
        """The price to mark with, or None while the band holds it. Only an accepted price
        becomes the symbol's last seq.

        The reference is the symbol's mark as the tick opened; a symbol without one is
        referenced to the first price accepted for it in this tick, and its very first
        price is held like an out-of-band one. A held price is confirmed by `band_confirm`
        prices in a row of the same kind (below the band, above it, first prices, or a seq
        jump), each with a seq above the last held one and at most SEQ_GAP_MAX above it,
        and (first prices and seq jumps) within the band of the one before: the last of
        them is accepted. Prices below or above the band, and seq jumps, count once per
        tick: within one tick a mark moves at most the band from its opening mark, however
        many prices walk it. Any other price starts the count again, so a redelivered held
        price never counts twice and a held price never blocks the prices after it. A seq
        more than SEQ_GAP_MAX above the symbol's last accepted seq is held the same way, so
        one message cannot push the seq to its bound and freeze the symbol."""
        state, symbol = self.state, update.symbol
        last_seq = state.last_price_seq.get(symbol, -1)
        if update.seq <= last_seq:
            raise Rejected(
                RejectReason.STALE_SEQUENCE, f"{symbol}: seq {update.seq} is not above {last_seq}"
            )
        update = self._index_price(update)
        reference = int(self._opening_mark[update.instrument])
        if reference == 0:
            reference = self._first_accepted.get(update.instrument, 0)
        jump = last_seq >= 0 and update.seq - last_seq > SEQ_GAP_MAX
        if reference == 0:
            kind = HELD_FIRST
            inside = self.config.band_rate == 0 and not jump
        elif not self._within_band(update.price, reference):
            kind = HELD_ABOVE if update.price > reference else HELD_BELOW
            inside = False
        else:
            kind, inside = HELD_SEQ_JUMP, not jump
        if not inside:
            held = state.held.get(symbol) or []
            follows = (
                len(held) >= 3 and held[0] == kind and held[2] < update.seq <= held[2] + SEQ_GAP_MAX
            )
            if follows and kind in (HELD_FIRST, HELD_SEQ_JUMP):
                follows = len(held) > 3 and self._within_band(update.price, held[3])
            count = held[1] + 1 if follows else 1
            if follows and kind != HELD_FIRST and len(held) > 4 and held[4] == state.tick:
                count = held[1]  # a move away from a mark counts once per tick
            if count < self.config.band_confirm:
                state.held[symbol] = [kind, count, update.seq, update.price, state.tick]
                return None
        state.held.pop(symbol, None)
        state.last_price_seq[symbol] = update.seq
        self._first_accepted.setdefault(update.instrument, update.price)
        return update

    def _collateral_price(
        self, update: messages.CollateralPrice, accepted: dict[str, messages.CollateralPrice]
    ) -> bool:
        """A collateral price under the instrument prices' rule (_guarded_price; its asset
        numbered after the instruments, its reference its price as the tick opened); the
        last accepted one of a step counts. False: held by the band."""
        collateral = self.models.collateral
        assert collateral is not None, "collateral prices parse only with [collateral]"
        index = len(self.book.instruments) + collateral.asset(update.symbol)
        if len(self._opening_mark) <= index:  # the tick's first: the assets' opening prices
            opening = [0 if p is None else p for p in collateral.price]
            self._opening_mark = np.append(
                self._opening_mark[: len(self.book.instruments)], opening
            )
        price = PriceUpdate(update.symbol, index, update.ts, update.seq, update.price, 0)
        if self._guarded_price(price) is None:
            return False
        accepted[update.symbol] = update
        return True

    def _marks_ready(self) -> bool:
        book = self.book
        if self.models.collateral is not None and not self.models.collateral.prices_ready():
            return False
        if book.mark_set.all():
            return True
        book.compact()
        return bool(book.mark_set[book.pos_instrument[book.pos_qty != 0]].all())

    # ----- risk --------------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock() if self.clock is not None else 0.0

    def _risk(self, out: TickOutputs, stats: TickStats) -> None:
        book, profile = self.book, self.profile
        started = self._now()
        incremental = None if self._with_models else self._choose_incremental()
        if self._with_models:
            rows, equity, maintenance, status = model_sweep(book, profile)
            book.changed_rows.clear()
            stats.full_sweep = True
        elif incremental is not None:
            result = incremental.tick()
            rows, equity, maintenance, status = (
                result.rows,
                result.equity,
                result.maintenance_margin,
                result.status,
            )
            stats.full_sweep = result.full_sweep
        else:
            risk = book.sweep(with_initial_margin=False)
            book.changed_rows.clear()
            rows = np.arange(book.n_accounts, dtype=np.int64)
            equity, maintenance, status = risk.equity, risk.maintenance_margin, risk.status
            stats.full_sweep = True
        stats.swept_accounts = len(rows)
        stats.sweep_s = self._now() - started
        trader = book.account_id[rows] < RESERVED_ACCOUNT_BASE
        trader &= book.account_id[rows] != profile.fund_account_id
        trader &= book.account_id[rows] != profile.unwind_account_id
        self._margin_calls(out, rows, equity, maintenance, status, trader)
        breached = bool((trader & (status >= STATUS_LIQUIDATE)).any())
        fund_short = book.account_margin(profile.fund_account_id)[0] < self.fund_floor
        called = len(self.exchange.pending) > 0
        if not (breached or fund_short or called):
            return
        started = self._now()
        swept = SweptRows(rows, equity, maintenance, status)
        if self.exchange.active(profile):
            done = exchange_tick(
                book, profile, self.exchange, self.state.tick_ts, swept, models=self.models
            )
            self._exchange_outputs(out, done)
            waterfall = done.waterfall
        else:
            waterfall = run_waterfall(book, profile, swept=swept, models=self.models)
        stats.waterfall = True
        stats.accounts_liquidated = waterfall.accounts_liquidated
        stats.waterfall_s = self._now() - started
        self._waterfall_outputs(out, waterfall)

    def _choose_incremental(self) -> IncrementalSweep | None:
        """The incremental sweep when it helps, None for a plain full sweep.

        Both give the exact statuses; only the cost differs. A move beyond
        `incremental_move_max` (relative, over all instruments) reaches so many accounts that
        the index would re-anchor (a full sweep plus a sort) every tick: then a plain full
        sweep is cheaper, and the index is rebuilt at the first quiet tick after.
        """
        lot_value = self.book.mark_lot_value
        previous, self._previous_lot_value = self._previous_lot_value, lot_value.copy()
        limit = self.config.incremental_move_max
        if not self.config.incremental:
            return None
        if self._incremental is not None and self._incremental.max_relative_move() > limit:
            self._incremental = None
        if self._incremental is None and _relative_move(previous, lot_value) <= limit:
            self._incremental = IncrementalSweep(self.book)
        return self._incremental

    def _margin_calls(
        self,
        out: TickOutputs,
        rows: np.ndarray,
        equity: np.ndarray,
        maintenance: np.ndarray,
        status: np.ndarray,
        trader: np.ndarray,
    ) -> None:
        n = self.book.n_accounts
        now = np.zeros(n, dtype=bool)
        in_call = (status == STATUS_MARGIN_CALL) & trader
        now[rows[in_call]] = True
        before = np.zeros(n, dtype=bool)
        before[: len(self._margin_call)] = self._margin_call
        entered = np.nonzero(now & ~before)[0]
        self._margin_call = now
        if not len(entered):
            return
        money = self.book.instruments.money_decimals
        where = np.searchsorted(rows, entered)
        for row, i in zip(entered.tolist(), where.tolist(), strict=True):
            e, mm = int(equity[i]), int(maintenance[i])
            account = int(self.book.account_id[row])
            out.add(
                self.config.topics.margin_calls,
                messages.account_key(account),
                margin_call_doc(account, e, mm, money),
            )

    # ----- futures exchange conventions (engine.exchange) -----------------------------
    def _parameter(
        self, out: TickOutputs, message: messages.MarginChangeMessage | messages.SettlementPrice
    ) -> None:
        """A margin_change or settlement_price message on the prices topic, applied where it
        stands in the tick's order, at the marks of the prices before it. A margin change
        re-anchors the sweep and publishes the calls it makes."""
        if isinstance(message, messages.SettlementPrice):
            self.exchange.limits.set_reference(message.instrument, message.price)
            return
        calls = apply_margin_change(
            self.book,
            self.profile,
            message.change,
            message.ts,
            self.exchange.pending,
            marks_ready=self._marks_ready(),
        )
        self._incremental = None  # every margin figure of the index is stale
        money = self.book.instruments.money_decimals
        for call in calls:
            key = messages.account_key(call.account_id)
            out.add(self.config.topics.margin_calls, key, deadline_call_doc(call, money))

    def _exchange_outputs(self, out: TickOutputs, done: ExchangeTickResult) -> None:
        topics, money = self.config.topics, self.book.instruments.money_decimals
        for reduction in done.reductions:
            key = messages.account_key(reduction.account_id)
            out.add(topics.liquidations, key, reduction_doc(self.book, reduction))
        for call in done.calls:
            key = messages.account_key(call.account_id)
            out.add(topics.margin_calls, key, deadline_call_doc(call, money))
        for outcome, accounts in (("met", done.settled.met), ("lapsed", done.settled.lapsed)):
            for account_id in accounts:
                key = messages.account_key(account_id)
                out.add(topics.margin_calls, key, call_outcome_doc(account_id, outcome))

    def _waterfall_outputs(self, out: TickOutputs, result: WaterfallResult) -> None:
        topics = self.config.topics
        for event in result.events:
            key = messages.account_key(event.account_id)
            out.add(topic_of_event(topics, event.kind), key, self._event_doc(event))
        fund = self.profile.fund_account_id
        money = self.book.instruments.money_decimals
        out.add(topics.insurance, messages.account_key(fund), fund_doc(result, fund, money))

    def _event_doc(self, event: Event) -> dict[str, Any]:
        doc = event_doc(self.book, event, self.state.mark_seq.get(event.symbol))
        if event.symbol:
            # True when this step's price moved that mark (so that price message triggered
            # it); false for a position of an account breached by another instrument's move.
            doc["mark_in_tick"] = event.symbol in self._marked_now
        return doc


def _relative_move(before: np.ndarray | None, after: np.ndarray) -> float:
    """max |after - before| / before over instruments (inf when one left zero); a screening
    figure in floats, it picks a sweep method and decides nothing."""
    if before is None or len(before) != len(after):
        return np.inf
    if ((before == 0) & (after != 0)).any():
        return np.inf
    moved = before != 0
    if not moved.any():
        return 0.0
    b = before[moved].astype(np.float64)
    return float((np.abs(after[moved].astype(np.float64) - b) / b).max())
