"""The order a tick applies its batch in: event time across topics, ties by topic
(account events before prices), partition, offset, each partition in offset order; and the
event time a tick closes with (EventTime: bounded by TS_SKEW_MAX).

A merge of the partitions by the event time of their next record, so a partition's records
keep their offset order (event ids and seqs must rise within it) whatever their `ts`. The
order depends only on the batch: a live run and a replay of its journal, which re-cuts
the same batches, apply the same order (engine.service.tick, docs/service.md).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.book.limits import TS_SKEW_MAX
from engine.service import isolated_events, messages
from engine.service.ingest import FastDecoder, arrow_rows, is_arrow_batch
from engine.service.ports import Record, Topics


def _units(records: Sequence[Record], topics: Topics) -> Iterator[tuple[Record, Rejected | None]]:
    """The records, a columnar batch of account events as one record per event
    (engine.service.ingest.arrow_rows), or as itself with its refusal when unreadable."""
    for record in records:
        if record.topic == topics.account_events and is_arrow_batch(record.value):
            try:
                rows = arrow_rows(record)
            except Rejected as exc:
                yield record, exc
                continue
            for row in rows:
                yield row, None
        else:
            yield record, None


def tick_order(
    records: Sequence[Record],
    topics: Topics,
    opening_ts: int,
    instruments: InstrumentTable,
    collateral_assets: Sequence[Any] = (),
    *,
    plain: bool = False,
) -> Iterator[tuple[Record, Any]]:
    """The batch parsed, in the order a tick applies it: by event time across topics, ties
    by topic (account events before prices), partition, offset; each partition keeps its
    offset order (a merge of the partitions by the event time of their next record); a
    columnar batch record's events come out one by one, in row order, as records of their
    own. A record that does not parse takes the event time of the record before it in its
    partition (the first ones, that of the first record of their partition that parses; the
    tick's opening event time when none does) and comes out as its Rejected: just after
    the record before it or just before the one after it, so it moves no other record, and
    the records that parse come out in the same order with or without it. A live run and a
    replay cut the same batches, so they apply the same order.
    With collateral assets (a multi-asset profile), their events and prices parse as such.
    `plain` (a tick that applies its account events as one batch, which decodes them itself):
    an account event in the plain producer form comes out as its engine.service.ingest.
    PlainEvent, read by the fast path alone (the same event time; the rest as before)."""
    fast = FastDecoder(instruments) if plain and not collateral_assets else None
    queues: dict[tuple[int, str, int], list[tuple[int, Record, Any]]] = {}
    for record, refused in _units(records, topics):
        events = record.topic == topics.account_events
        key = (0 if events else 1, record.topic, record.partition)
        queue = queues.setdefault(key, [])
        message: Any
        try:
            if refused is not None:
                raise refused
            assets = collateral_assets
            if (
                events
                and fast is not None
                and not isolated_events.might_be_isolated(record.value)
                and (message := fast(record)) is not None
            ):
                pass
            elif events:
                message = (
                    (
                        isolated_events.might_be_isolated(record.value)
                        and isolated_events.parse_isolated_event(
                            record.value, record.key, instruments
                        )
                    )
                    or (
                        assets and messages.parse_collateral_event(record.value, record.key, assets)
                    )
                    or messages.parse_account_event(record.value, record.key, instruments)
                )
            else:
                # A parameter message (engine.exchange) carries a `type`; a price does not.
                parse = (
                    messages.parse_parameter
                    if messages.is_parameter(record.value)
                    else messages.parse_price
                )
                message = (
                    assets and messages.parse_collateral_price(record.value, record.key, assets)
                ) or parse(record.value, record.key, instruments)
            ts = message.ts
        except Rejected as exc:
            message, ts = exc, queue[-1][0] if queue else -1
        queue.append((ts, record, message))
    for queue in queues.values():
        # The records before the first that parses: that record's time (or the opening's).
        lead = next((i for i, (_, _, m) in enumerate(queue) if not isinstance(m, Rejected)), None)
        first_ts = opening_ts if lead is None else queue[lead][0]
        for i in range(len(queue) if lead is None else lead):
            queue[i] = (first_ts, *queue[i][1:])
        assert all(
            (a[1].offset, a[1].row) < (b[1].offset, b[1].row)
            for a, b in zip(queue, queue[1:], strict=False)
        )
    heads = [(queue[0][0], key, queue[0][1].offset, 0) for key, queue in queues.items()]
    heapq.heapify(heads)
    while heads:
        _, key, _, i = heapq.heappop(heads)
        queue = queues[key]
        _, record, message = queue[i]
        yield record, message
        if i + 1 < len(queue):
            ts = queue[i + 1][0]
            heapq.heappush(heads, (ts, key, queue[i + 1][1].offset, i + 1))


@dataclass
class EventTime:
    """A tick's event time: `accept` each applied message's ts; `closing()` is the largest
    accepted ts, but never below the opening event time (it only rises) and at most
    TS_SKEW_MAX past it -- for a fresh service (opening 0), past the earliest accepted ts --
    so one message with a ts far ahead cannot set the service's event time for good."""

    opening: int
    high: int = 0  # the largest accepted ts
    low: int = -1  # the smallest accepted ts; -1: none yet

    def accept(self, ts: int) -> None:
        self.high = max(self.high, ts)
        self.low = ts if self.low < 0 else min(self.low, ts)

    def closing(self) -> int:
        if self.high <= self.opening:
            return self.opening
        base = self.opening if self.opening > 0 else self.low
        return min(self.high, base + TS_SKEW_MAX)
