"""The service loop: one tick per batch of input records, deterministic, no I/O of its own.

A tick (Service.tick) takes a batch of records (topic, partition, offset, key, value bytes)
and returns the output records it publishes, in order:

1. account events, in batch order: validated (engine.service.messages), deduplicated by
   event id (ids must increase within a partition; one at or below the last seen there is a
   `duplicate_event_id`), then applied to the book. A fill moves both sides atomically; when
   the events topic is sharded, each shard applies the sides whose accounts are keyed into
   the record's partition (the producer sends a fill once per partition involved).
2. prices, in batch order: validated, `stale_sequence` unless seq rises per symbol, then the
   band: a price p against the reference r (the last accepted mark) is held, not acted on,
   when |p - r| x 10^8 > band_rate x r, until `band_confirm` prices in a row lie outside the
   band on the same side (the market really moved: the last of them is accepted). Accepted
   prices are conflated: the last one per instrument becomes its mark.
3. the sweep: engine.incremental.IncrementalSweep (its statuses equal a full sweep's), or a
   full sweep; nothing runs until every instrument with open positions has a mark.
4. margin calls: an account entering `margin_call` status gets one event.
5. the waterfall (engine.waterfall.run_waterfall) when a trader account is at `liquidate` or
   worse, or the insurance fund is below its floor; otherwise it would do nothing, so
   skipping it changes nothing.

Every rejected record is dead-lettered with its reason and original bytes and changes no
state (except that a well-formed account event's id counts as seen). Output ids are
`{shard}-{tick}-{n}`: a replay of the same tick with the same input gives the same ids.

Determinism: the state after a tick depends only on the state before and the batch. How
records are cut into batches is the source's choice (engine.service.kafka_adapter cuts them
deterministically when it is catching up); `run` journals each tick's end offsets before
publishing, and on recovery re-cuts the journaled ticks exactly, so a replay after a crash
reproduces the run that crashed, bit for bit, outputs and ids included.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

import numpy as np

from engine.book.book import (
    STATUS_LIQUIDATE,
    STATUS_MARGIN_CALL,
    Book,
)
from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE, format_units
from engine.book.reasons import RejectReason
from engine.risk.incremental import IncrementalSweep
from engine.service import messages
from engine.service.messages import Deposit, Fill, LeverageChange, PriceUpdate, Withdraw
from engine.waterfall.profile import RESERVED_ACCOUNT_BASE, Profile
from engine.waterfall.waterfall import Event, SweptRows, WaterfallResult, run_waterfall

STATE_FORMAT = 1
BAND_RATE_DEFAULT = 10_000_000  # 10% of the last mark
BAND_CONFIRM_DEFAULT = 3
INCREMENTAL_MOVE_MAX_DEFAULT = 0.003


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class Output(NamedTuple):
    topic: str
    key: bytes
    value: bytes


def tp_name(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


@dataclass(frozen=True)
class Topics:
    prices: str = "prices"
    account_events: str = "account-events"
    liquidations: str = "liquidations"
    adl: str = "adl"
    margin_calls: str = "margin-calls"
    insurance: str = "insurance"
    dead_letter: str = "dead-letter"
    journal: str = "clearing-journal"

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        base = cls()
        return cls(**{name: prefix + getattr(base, name) for name in base.__dataclass_fields__})

    def outputs(self) -> tuple[str, ...]:
        return (self.liquidations, self.adl, self.margin_calls, self.insurance, self.dead_letter)


@dataclass(frozen=True)
class ServiceConfig:
    topics: Topics = Topics()
    shard: str = "0"
    band_rate: int = BAND_RATE_DEFAULT  # over RATE_SCALE; 0 turns the band off
    band_confirm: int = BAND_CONFIRM_DEFAULT
    incremental: bool = True
    incremental_move_max: float = INCREMENTAL_MOVE_MAX_DEFAULT  # see Service._choose_incremental

    def __post_init__(self) -> None:
        if not 0 <= self.band_rate <= 100 * RATE_SCALE:
            raise ValueError("band_rate must be in [0, 100] x RATE_SCALE")
        if not 1 <= self.band_confirm <= 1_000_000:
            raise ValueError("band_confirm must be at least 1")


# The waterfall's event kinds by output topic.
LIQUIDATION_KINDS = ("liquidation", "liquidation_fee", "takeover")
ADL_KINDS = ("adl", "socialized_loss")
INSURANCE_KINDS = ("insurance_payout", "unwind", "unallocated_loss")


@dataclass
class TickStats:
    """What one tick did, for metrics (not part of the state)."""

    records: int = 0
    account_events: int = 0
    prices: int = 0
    prices_held: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)
    swept_accounts: int = 0
    full_sweep: bool = False
    waterfall: bool = False
    accounts_liquidated: int = 0
    sweep_s: float = 0.0
    waterfall_s: float = 0.0


@dataclass
class ServiceState:
    """Everything besides the book that a snapshot must carry to resume bit-identically."""

    tick: int = 0
    tick_ts: int = 0
    offsets: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> next offset
    last_event_id: dict[str, int] = field(default_factory=dict)  # per events partition
    last_price_seq: dict[str, int] = field(default_factory=dict)  # per symbol
    mark_seq: dict[str, int] = field(default_factory=dict)  # seq of the price behind a mark
    held: dict[str, list[int]] = field(default_factory=dict)  # symbol -> [side, count]
    margin_call: list[int] = field(default_factory=list)  # account ids in margin call

    def to_extra(self, shard: str) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "shard": shard,
            "tick": self.tick,
            "tick_ts": self.tick_ts,
            "offsets": dict(sorted(self.offsets.items())),
            "last_event_id": dict(sorted(self.last_event_id.items())),
            "last_price_seq": dict(sorted(self.last_price_seq.items())),
            "mark_seq": dict(sorted(self.mark_seq.items())),
            "held": dict(sorted(self.held.items())),
            "margin_call": sorted(self.margin_call),
        }

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> ServiceState:
        if extra.get("format") != STATE_FORMAT:
            raise ValueError(f"service state format {extra.get('format')!r}, expected 1")
        return cls(
            tick=int(extra["tick"]),
            tick_ts=int(extra["tick_ts"]),
            offsets={k: int(v) for k, v in extra["offsets"].items()},
            last_event_id={k: int(v) for k, v in extra["last_event_id"].items()},
            last_price_seq={k: int(v) for k, v in extra["last_price_seq"].items()},
            mark_seq={k: int(v) for k, v in extra["mark_seq"].items()},
            held={k: [int(v[0]), int(v[1])] for k, v in extra["held"].items()},
            margin_call=[int(a) for a in extra["margin_call"]],
        )


class Service:
    """The engine's state behind a stream: a book, a profile and the service state."""

    def __init__(
        self,
        book: Book,
        profile: Profile,
        config: ServiceConfig | None = None,
        state: ServiceState | None = None,
        *,
        partition_of_account: Callable[[int], int] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if book.index.find(profile.fund_account_id) is None:
            raise ValueError("the insurance fund's account must be open (engine.waterfall)")
        self.book = book
        self.profile = profile
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
        # The journal position saved with the snapshot this service was restored from.
        self.journal_position = 0

    def extra(self) -> dict[str, Any]:
        # The flags cover the accounts known at the last sweep; accounts only grow.
        self.state.margin_call = self.book.account_id[np.flatnonzero(self._margin_call)].tolist()
        return {"service": self.state.to_extra(self.config.shard)}

    # ----- one tick ----------------------------------------------------------------------
    def tick(self, records: Sequence[Record]) -> list[Output]:
        """Apply one batch; returns the outputs in publication order."""
        topics = self.config.topics
        state = self.state
        state.tick += 1
        stats = TickStats(records=len(records))
        self.last_stats = stats
        out = _Outputs(self.config.shard, state.tick)
        events, prices = [], []
        for record in records:
            name = tp_name(record.topic, record.partition)
            assert record.offset >= state.offsets.get(name, 0), f"{name}: offset went back"
            state.offsets[name] = record.offset + 1
            if record.topic == topics.account_events:
                events.append(record)
            elif record.topic == topics.prices:
                prices.append(record)
            else:
                raise AssertionError(f"record from a topic the service does not read: {name}")
        tick_ts = state.tick_ts
        instruments = self.book.instruments
        for record in events:
            try:
                event = messages.parse_account_event(record.value, record.key, instruments)
                tick_ts = max(tick_ts, event.ts)
                self._apply_event(record, event)
                stats.account_events += 1
            except Rejected as exc:
                self._dead_letter(out, stats, record, exc)
        accepted: dict[int, PriceUpdate] = {}
        for record in prices:
            try:
                update = messages.parse_price(record.value, record.key, instruments)
                tick_ts = max(tick_ts, update.ts)
                if self._price_accepted(update, accepted):
                    accepted[update.instrument] = update
                else:
                    stats.prices_held += 1
                stats.prices += 1
            except Rejected as exc:
                self._dead_letter(out, stats, record, exc)
        state.tick_ts = tick_ts
        self._marked_now = set()
        for _, update in sorted(accepted.items()):
            self.book.set_mark(update.symbol, update.price)
            state.mark_seq[update.symbol] = update.seq
            self._marked_now.add(update.symbol)
        if self._marks_ready():
            self._risk(out, stats)
        elif self._incremental is None:
            self.book.changed_rows.clear()
        stats.outputs = out.counts
        return out.finish(tick_ts)

    def _dead_letter(self, out: _Outputs, stats: TickStats, record: Record, exc: Rejected) -> None:
        stats.rejects[exc.reason] = stats.rejects.get(exc.reason, 0) + 1
        out.add(
            self.config.topics.dead_letter,
            record.key or b"",
            {
                "kind": "rejected",
                "reason": exc.reason,
                "detail": exc.detail,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "key": None if record.key is None else base64.b64encode(record.key).decode(),
                "value": base64.b64encode(record.value).decode(),
            },
        )

    # ----- account events ----------------------------------------------------------------
    def _owned(self, account: int, partition: int) -> bool:
        return self.partition_of_account is None or self.partition_of_account(account) == partition

    def _apply_event(self, record: Record, event: messages.AccountEvent) -> None:
        name = tp_name(record.topic, record.partition)
        last = self.state.last_event_id.get(name, 0)
        if event.event_id <= last:
            raise Rejected(
                RejectReason.DUPLICATE_EVENT_ID,
                f"event id {event.event_id} is not above {last}, the last seen in {name}",
            )
        # Seen from here on, even if the book refuses it: a redelivery is a duplicate.
        self.state.last_event_id[name] = event.event_id
        book = self.book
        if isinstance(event, Deposit):
            book.deposit(event.account, event.amount, event_id=event.event_id)
        elif isinstance(event, Withdraw):
            book.withdraw(event.account, event.amount, event_id=event.event_id)
        elif isinstance(event, LeverageChange):
            book.set_leverage(event.account, event.symbol, event.leverage)
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
            book.apply_trade(event.symbol, event.price, sides, event_id=event.event_id)

    # ----- prices ------------------------------------------------------------------------
    def _price_accepted(self, update: PriceUpdate, accepted: dict[int, PriceUpdate]) -> bool:
        state, symbol = self.state, update.symbol
        last_seq = state.last_price_seq.get(symbol, -1)
        if update.seq <= last_seq:
            raise Rejected(
                RejectReason.STALE_SEQUENCE, f"{symbol}: seq {update.seq} is not above {last_seq}"
            )
        state.last_price_seq[symbol] = update.seq
        band = self.config.band_rate
        if update.instrument in accepted:
            reference = accepted[update.instrument].price
        elif self.book.mark_set[update.instrument]:
            reference = int(self.book.mark[update.instrument])
        else:
            reference = 0
        if band == 0 or reference == 0:
            state.held.pop(symbol, None)
            return True
        if abs(update.price - reference) * RATE_SCALE <= band * reference:
            state.held.pop(symbol, None)
            return True
        side = 1 if update.price > reference else -1
        held = state.held.get(symbol)
        count = held[1] + 1 if held is not None and held[0] == side else 1
        if count >= self.config.band_confirm:
            state.held.pop(symbol, None)
            return True
        state.held[symbol] = [side, count]
        return False

    def _marks_ready(self) -> bool:
        book = self.book
        if book.mark_set.all():
            return True
        book.compact()
        return bool(book.mark_set[book.pos_instrument[book.pos_qty != 0]].all())

    # ----- risk --------------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock() if self.clock is not None else 0.0

    def _risk(self, out: _Outputs, stats: TickStats) -> None:
        book, profile = self.book, self.profile
        started = self._now()
        incremental = self._choose_incremental()
        if incremental is not None:
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
        if not (breached or fund_short):
            return
        started = self._now()
        swept = SweptRows(rows, equity, maintenance, status)
        waterfall = run_waterfall(book, profile, swept=swept)
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
        out: _Outputs,
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
                {
                    "kind": "margin_call",
                    "account": account,
                    "equity": format_units(e, money),
                    "maintenance_margin": format_units(mm, money),
                    "equity_units": e,
                    "maintenance_margin_units": mm,
                },
            )

    def _waterfall_outputs(self, out: _Outputs, result: WaterfallResult) -> None:
        topics = self.config.topics
        for event in result.events:
            if event.kind in LIQUIDATION_KINDS:
                topic = topics.liquidations
            elif event.kind in ADL_KINDS:
                topic = topics.adl
            else:
                assert event.kind in INSURANCE_KINDS, event.kind
                topic = topics.insurance
            out.add(topic, messages.account_key(event.account_id), self._event_doc(event))
        money = self.book.instruments.money_decimals
        fund = self.profile.fund_account_id
        out.add(
            topics.insurance,
            messages.account_key(fund),
            {
                "kind": "fund",
                "account": fund,
                "accounts_liquidated": result.accounts_liquidated,
                "balance_before": format_units(result.fund_balance_before, money),
                "balance_after": format_units(result.fund_balance_after, money),
                "equity_before": format_units(result.fund_equity_before, money),
                "equity_after": format_units(result.fund_equity_after, money),
                "balance_after_units": result.fund_balance_after,
                "equity_after_units": result.fund_equity_after,
                "liquidation_fees_units": result.liquidation_fees,
                "insurance_paid_units": result.insurance_paid,
                "adl_units": result.adl_amount,
                "socialized_units": result.socialized_amount,
                "unallocated_units": result.unallocated_loss,
            },
        )

    def _event_doc(self, event: Event) -> dict[str, Any]:
        doc = event_doc(self.book, event, self.state.mark_seq.get(event.symbol))
        if event.symbol:
            # True when this tick's price moved that mark (so that price message triggered
            # it); false for a position of an account breached by another instrument's move.
            doc["mark_in_tick"] = event.symbol in self._marked_now
        return doc


def event_doc(book: Book, event: Event, mark_seq: int | None = None) -> dict[str, Any]:
    """A waterfall event as published: decimal strings for reading, raw integers for exact
    comparison (qty_lots, price_ticks, amount_units)."""
    doc: dict[str, Any] = {
        "kind": event.kind,
        "account": event.account_id,
        "book_event_id": event.event_id,
        "amount": format_units(event.amount, book.instruments.money_decimals),
        "amount_units": event.amount,
    }
    if event.symbol:
        inst = book.instruments.instruments[book.instruments.symbol_index(event.symbol)]
        doc["symbol"] = event.symbol
        doc["qty"] = str(Decimal(event.qty) * inst.lot_size)
        doc["price"] = str(Decimal(event.price) * inst.tick_size)
        doc["qty_lots"] = event.qty
        doc["price_ticks"] = event.price
        if mark_seq is not None:
            doc["mark_seq"] = mark_seq  # the price message that set the mark used
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


class _Outputs:
    """Output records of one tick, numbered in publication order."""

    def __init__(self, shard: str, tick: int) -> None:
        self.shard = shard
        self.tick = tick
        self.docs: list[tuple[str, bytes, dict[str, Any]]] = []
        self.counts: dict[str, int] = {}

    def add(self, topic: str, key: bytes, doc: dict[str, Any]) -> None:
        self.docs.append((topic, key, doc))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def finish(self, ts: int) -> list[Output]:
        """Serialized, each with its id and the tick's event time (the latest input ts)."""
        records = []
        for n, (topic, key, doc) in enumerate(self.docs):
            head = {
                "v": messages.SCHEMA_VERSION,
                "id": f"{self.shard}-{self.tick}-{n}",
                "tick": self.tick,
                "ts": ts,
            }
            value = json.dumps({**head, **doc}, separators=(",", ":")).encode()
            records.append(Output(topic, key, value))
        return records


# ----- the driver: source -> service -> sink, with journal, snapshots and metrics --------
class Source(Protocol):
    def next_batch(self, until: Mapping[str, int] | None = None) -> list[Record] | None:
        """The next batch; [] when nothing is waiting now; None when a finite input ended.
        With `until` ("topic:partition" -> end offset), exactly the records below those
        offsets (a journaled tick being replayed)."""
        ...

    def seek(self, offsets: Mapping[str, int]) -> None: ...

    def lag(self) -> dict[str, int]: ...

    def idle(self) -> bool:
        """Nothing buffered and nothing more in the input right now."""
        ...

    def close(self) -> None: ...


class Sink(Protocol):
    def publish(self, topic: str, key: bytes, value: bytes) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Journal(Protocol):
    """Where each tick's end offsets are recorded before its outputs are published."""

    position: int  # the journal's next offset: saved in snapshots, read from on recovery

    def append(self, tick: int, end: Mapping[str, int]) -> None:
        """Durable when it returns."""
        ...

    def entries_after(self, tick: int, position: int) -> list[tuple[int, dict[str, int]]]: ...

    def close(self) -> None: ...


class Snapshots(Protocol):
    def maybe_write(self, service: Service, now: float, extra: dict[str, Any]) -> None: ...

    def write(self, service: Service, extra: dict[str, Any]) -> object: ...


class Metrics(Protocol):
    def observe_tick(self, stats: TickStats, seconds: float) -> None: ...

    def observe_lag(self, lag: Mapping[str, int]) -> None: ...

    def maybe_log(self, now: float, service: Service) -> None: ...


@dataclass
class RunResult:
    ticks: int = 0
    replayed: int = 0
    records: int = 0
    outputs: int = 0
    stopped_by: str = ""


def batch_end(records: Iterable[Record]) -> dict[str, int]:
    end: dict[str, int] = {}
    for record in records:
        end[tp_name(record.topic, record.partition)] = record.offset + 1
    return dict(sorted(end.items()))


def run(
    service: Service,
    source: Source,
    sink: Sink,
    *,
    journal: Journal | None = None,
    snapshots: Snapshots | None = None,
    metrics: Metrics | None = None,
    stop: Callable[[], bool] | None = None,
    max_ticks: int | None = None,
    exit_when_idle: bool = False,
    final_snapshot: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Drive the service until the input ends, `stop()` says so, `max_ticks` ticks ran, or
    (with exit_when_idle) nothing is waiting. Journaled ticks after the service's tick are
    replayed first, cut exactly as they were, and not journaled again."""
    result = RunResult()

    def step(batch: list[Record], replaying: bool) -> None:
        started = clock()
        outputs = service.tick(batch)
        if journal is not None and not replaying:
            journal.append(service.state.tick, batch_end(batch))
        for output in outputs:
            sink.publish(output.topic, output.key, output.value)
        result.records += len(batch)
        result.outputs += len(outputs)
        if metrics is not None:
            metrics.observe_tick(service.last_stats, clock() - started)

    def extra() -> dict[str, Any]:
        return {"journal_position": journal.position if journal is not None else 0}

    if journal is not None:
        for tick, end in journal.entries_after(service.state.tick, service.journal_position):
            batch = source.next_batch(until=end)
            if batch is None or batch_end(batch) != end or service.state.tick + 1 != tick:
                raise RuntimeError(f"journal: tick {tick} cannot be re-cut at {end}")
            step(batch, replaying=True)
            result.replayed += 1
    while True:
        if stop is not None and stop():
            result.stopped_by = "stop"
            break
        if max_ticks is not None and result.ticks >= max_ticks:
            result.stopped_by = "max_ticks"
            break
        batch = source.next_batch()
        now = clock()
        if batch is None:
            result.stopped_by = "end_of_input"
            break
        if batch:
            step(batch, replaying=False)
            result.ticks += 1
            if snapshots is not None:
                snapshots.maybe_write(service, now, extra())
        elif exit_when_idle and source.idle():
            result.stopped_by = "idle"
            break
        if metrics is not None:
            metrics.observe_lag(source.lag())
            metrics.maybe_log(now, service)
    sink.flush()
    if snapshots is not None and final_snapshot:
        snapshots.write(service, extra())
    return result
