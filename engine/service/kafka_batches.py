"""What both Kafka backends (engine.service.kafka_python, engine.service.kafka_confluent)
share: the deterministic cut of polled records into batches, and the client defaults.

Consumption. Auto-commit is off everywhere: the offsets in the service's snapshots are the
truth, and a restart seeks to them. Polls drain many records into per-partition buffers; a
batch is cut when every partition has `batch_records` buffered or has nothing more in the
log right now (its next offset has reached the high watermark the broker last reported).
While catching up on a log that is already written the cut so depends only on the log,
never on poll timing; live, it takes what has arrived. A journaled tick is re-cut at
exactly its end offsets.

Bounded account-event work per tick (`max_events`, `clearing serve --max-events-per-tick`):
a batch takes at most that many account-event records, shared over the assigned
account-events partitions in partition order (`event_shares`: N // k each, the first N % k
one more), and a partition counts as full at its share. Prices are not capped (only
`batch_records` bounds them), so a price never waits behind an account-event backlog: the
tick applies it with the events cut before it, in the tick order (engine.service.order), and
the events after the cut, older or not, wait for the next ticks. The cut still depends only
on the log, and a replay re-cuts the journaled end offsets. An Arrow batch record counts
as one record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

from engine.service.ports import Record

BATCH_RECORDS_DEFAULT = 5000
POLL_MS_DEFAULT = 50
REPLAY_WAIT_S = 60.0  # how long a journaled tick may wait for its records
LINGER_MS_DEFAULT = 2


def event_shares(max_events: int, n_partitions: int) -> list[int]:
    """Each account-events partition's share of a tick's `max_events` records, in
    partition order (N // k each, the first N % k one more; at least 1 each)."""
    if max_events < 1:
        raise ValueError("max_events_per_tick must be at least 1")
    base, extra = divmod(max_events, max(n_partitions, 1))
    return [max(base + (i < extra), 1) for i in range(n_partitions)]


class Buffers:
    """Polled records per (topic, partition), waiting to be cut into a batch."""

    def __init__(
        self, batch_records: int, prices_topic: str, max_events: int | None = None
    ) -> None:
        if batch_records < 1:
            raise ValueError("batch_records must be at least 1")
        self.batch_records = batch_records
        self.prices_topic = prices_topic
        self.max_events = max_events
        if max_events is not None:
            event_shares(max_events, 1)  # checks it
        self.queues: dict[tuple[str, int], deque[Record]] = {}

    def limits(self, assigned: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Records each partition may give this batch."""
        limit = {tp: self.batch_records for tp in assigned}
        if self.max_events is not None:
            events = sorted(tp for tp in assigned if tp[0] != self.prices_topic)
            for tp, share in zip(events, event_shares(self.max_events, len(events)), strict=True):
                limit[tp] = min(limit[tp], share)
        return limit

    def add(self, record: Record) -> None:
        self.queues.setdefault((record.topic, record.partition), deque()).append(record)

    def drop(self, keep: set[tuple[str, int]]) -> None:
        for tp in list(self.queues):
            if tp not in keep:
                del self.queues[tp]

    def buffered(self, tp: tuple[str, int]) -> int:
        queue = self.queues.get(tp)
        return len(queue) if queue else 0

    def _order(self, tps: list[tuple[str, int]]) -> list[tuple[str, int]]:
        # Account events before prices, each by partition (the tick reorders the batch by
        # event time itself: engine.service.tick.tick_order).
        return sorted(tps, key=lambda tp: (tp[0] == self.prices_topic, tp[0], tp[1]))

    def cut(
        self, assigned: list[tuple[str, int]], caught_up: Callable[[tuple[str, int]], bool]
    ) -> list[Record] | None:
        """A batch when every partition is full or caught up ([] when all are empty and
        caught up); None while some partition may still fill."""
        limit = self.limits(assigned)
        for tp in assigned:
            if self.buffered(tp) < limit[tp] and not caught_up(tp):
                return None
        batch: list[Record] = []
        for tp in self._order(assigned):
            queue = self.queues.get(tp)
            for _ in range(min(limit[tp], len(queue) if queue else 0)):
                assert queue is not None
                batch.append(queue.popleft())
        return batch

    def cut_until(
        self, until: Mapping[str, int], position: Callable[[tuple[str, int]], int | None]
    ) -> list[Record] | None:
        """Exactly the records below `until`, or None while the consumer has not yet read
        past the end of every partition named there."""
        ends = {}
        for name, end in until.items():
            topic, partition = name.rsplit(":", 1)
            tp = (topic, int(partition))
            at = position(tp)
            if at is None or at < end:
                return None
            ends[tp] = end
        batch: list[Record] = []
        for tp in self._order(list(ends)):
            queue = self.queues.get(tp, deque())
            while queue and queue[0].offset < ends[tp]:
                batch.append(queue.popleft())
        return batch
