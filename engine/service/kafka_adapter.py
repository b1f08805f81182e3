"""The service's source, sink and journal over a real Kafka broker.

Two client backends behind one interface: kafka-python (the default; pure Python) and
confluent-kafka (librdkafka, optional: used when `import confluent_kafka` works and
backend="confluent"). Auto-commit is off everywhere: the offsets in the service's snapshots
are the truth, and a restart seeks to them.

Consumption. Partitions are assigned by hand (every price partition, and every
account-events partition, or with a consumer group the ones the group gives this
instance). Polls drain many records into per-partition buffers; a batch is cut when every
partition has `batch_records` buffered or has nothing more in the log right now (its next
offset has reached the high watermark the broker last reported). While catching up on a
log that is already written the cut so depends only on the log, never on poll timing; live,
it takes what has arrived. A journaled tick is re-cut at exactly its end offsets.

Keys. Producers key account events by the account id in decimal and prices by symbol,
partitioned with the Java client's murmur2 (kafka-python's default; confluent-kafka needs
`partitioner=murmur2_random`), so `partition_for_key` says which partition holds an account.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.service.loop import Record, tp_name

BACKENDS = ("kafka-python", "confluent")
BATCH_RECORDS_DEFAULT = 5000
POLL_MS_DEFAULT = 50
REPLAY_WAIT_S = 60.0  # how long a journaled tick may wait for its records
GROUP_SETTLE_S_DEFAULT = 3.0
LINGER_MS_DEFAULT = 2


def have_confluent() -> bool:
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return False
    return True


def partition_for_key(key: bytes, n_partitions: int) -> int:
    """The Java client's default partition of a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % n_partitions


class AccountPartitions:
    """account id -> its account-events partition, memoized (murmur2 is pure Python)."""

    def __init__(self, n_partitions: int) -> None:
        self.n_partitions = n_partitions
        self._cache: dict[int, int] = {}

    def __call__(self, account: int) -> int:
        partition = self._cache.get(account)
        if partition is None:
            partition = partition_for_key(str(account).encode(), self.n_partitions)
            if len(self._cache) < 10_000_000:
                self._cache[account] = partition
        return partition


# ----- topics ----------------------------------------------------------------------------
def create_topics(bootstrap: str, partitions: Mapping[str, int]) -> None:
    """Create the topics that do not exist yet (replication factor 1: a single broker)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="clearing-admin")
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(name=name, num_partitions=n, replication_factor=1)
            for name, n in partitions.items()
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
    finally:
        admin.close()


def _partitions_of(consumer: KafkaConsumer, topic: str, timeout_s: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        if time.monotonic() > deadline:
            raise Rejected(RejectReason.UNKNOWN_TOPIC, f"topic {topic!r} not found on the broker")
        time.sleep(0.1)


# ----- the deterministic cut -------------------------------------------------------------
class _Buffers:
    def __init__(self, batch_records: int, prices_topic: str) -> None:
        if batch_records < 1:
            raise ValueError("batch_records must be at least 1")
        self.batch_records = batch_records
        self.prices_topic = prices_topic
        self.queues: dict[tuple[str, int], deque[Record]] = {}

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
        # Account events before prices, each by partition: the order the loop applies them.
        return sorted(tps, key=lambda tp: (tp[0] == self.prices_topic, tp[0], tp[1]))

    def cut(
        self, assigned: list[tuple[str, int]], caught_up: Callable[[tuple[str, int]], bool]
    ) -> list[Record] | None:
        """A batch when every partition is full or caught up ([] when all are empty and
        caught up); None while some partition may still fill."""
        for tp in assigned:
            if self.buffered(tp) < self.batch_records and not caught_up(tp):
                return None
        batch: list[Record] = []
        for tp in self._order(assigned):
            queue = self.queues.get(tp)
            for _ in range(min(self.batch_records, len(queue) if queue else 0)):
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


class AssignmentChanged(RuntimeError):
    """The consumer group moved account-events partitions after this instance started."""


# ----- kafka-python ----------------------------------------------------------------------
class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked: Any) -> None:
        if self.source.started and revoked:
            self.source.assignment_changed = True

    def on_partitions_assigned(self, assigned: Any) -> None:
        consumer = self.source.group_consumer
        assert consumer is not None
        if assigned and not self.source.started:
            consumer.pause(*assigned)  # nothing is fetched until the group has settled
        self.source.assignment_version += 1


class KafkaSource:
    """kafka-python consumers: prices assigned by hand; account events by hand (group None)
    or through the consumer group `group` (each instance gets a share of the partitions)."""

    def __init__(
        self,
        bootstrap: str,
        prices_topic: str,
        events_topic: str,
        *,
        group: str | None = None,
        offsets: Mapping[str, int] | None = None,
        batch_records: int = BATCH_RECORDS_DEFAULT,
        poll_ms: int = POLL_MS_DEFAULT,
        settle_s: float = GROUP_SETTLE_S_DEFAULT,
        client_id: str = "clearing-serve",
    ) -> None:
        self.prices_topic, self.events_topic = prices_topic, events_topic
        self.poll_ms = poll_ms
        self.offsets = dict(offsets or {})
        self.buffers = _Buffers(batch_records, prices_topic)
        self.started = False
        self.assignment_changed = False
        self.assignment_version = 0
        common: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "client_id": client_id,
            "max_poll_records": 100_000,
            "fetch_max_wait_ms": 100,
            "max_partition_fetch_bytes": 4 * 1024 * 1024,
        }
        self.consumer = KafkaConsumer(group_id=None, **common)
        price_tps = [
            TopicPartition(prices_topic, p) for p in _partitions_of(self.consumer, prices_topic)
        ]
        self.n_event_partitions = len(_partitions_of(self.consumer, events_topic))
        self.group_consumer: KafkaConsumer | None = None
        if group is None:
            event_tps = [TopicPartition(events_topic, p) for p in range(self.n_event_partitions)]
            self.consumer.assign(event_tps + price_tps)
        else:
            self.consumer.assign(price_tps)
            self.group_consumer = KafkaConsumer(
                group_id=group,
                heartbeat_interval_ms=300,
                session_timeout_ms=6000,
                **common,
            )
            self.group_consumer.subscribe([events_topic], listener=_Rebalance(self))
            self._settle(settle_s)
        self._seek_all()
        if self.group_consumer is not None:
            self.group_consumer.resume(*self.group_consumer.assignment())
        self.started = True

    def _settle(self, settle_s: float) -> None:
        """Poll (paused) until the group's assignment has stayed the same for settle_s."""
        assert self.group_consumer is not None
        deadline = time.monotonic() + max(60.0, 10 * settle_s)
        version, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            self.group_consumer.poll(timeout_ms=100)
            if self.assignment_version != version:
                version, since = self.assignment_version, time.monotonic()
            elif self.group_consumer.assignment() and time.monotonic() - since >= settle_s:
                return
        raise Rejected(RejectReason.GROUP_UNSETTLED, "the consumer group gave no stable assignment")

    def _consumers(self) -> list[KafkaConsumer]:
        if self.group_consumer is None:
            return [self.consumer]
        return [self.group_consumer, self.consumer]

    def assigned(self) -> list[tuple[str, int]]:
        tps = []
        for consumer in self._consumers():
            tps += [(tp.topic, tp.partition) for tp in consumer.assignment()]
        return sorted(tps)

    def event_partitions(self) -> list[int]:
        return [p for t, p in self.assigned() if t == self.events_topic]

    def _seek_all(self) -> None:
        for consumer in self._consumers():
            for tp in consumer.assignment():
                offset = self.offsets.get(tp_name(tp.topic, tp.partition))
                if offset is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, offset)

    def seek(self, offsets: Mapping[str, int]) -> None:
        self.offsets = dict(offsets)
        self.buffers.drop(set())
        self._seek_all()

    def _poll(self, timeout_ms: int) -> int:
        n = 0
        for consumer in self._consumers():
            polled = consumer.poll(timeout_ms=timeout_ms, max_records=100_000)
            for tp, records in polled.items():
                for r in records:
                    self.buffers.add(Record(tp.topic, tp.partition, r.offset, r.key, r.value))
                n += len(records)
        return n

    def _consumer_of(self, tp: tuple[str, int]) -> KafkaConsumer:
        if self.group_consumer is not None and tp[0] == self.events_topic:
            return self.group_consumer
        return self.consumer

    def _position(self, tp: tuple[str, int]) -> int | None:
        if tp not in self.assigned():
            return None
        return int(self._consumer_of(tp).position(TopicPartition(*tp)))

    def _caught_up(self, tp: tuple[str, int]) -> bool:
        consumer = self._consumer_of(tp)
        partition = TopicPartition(*tp)
        high = consumer.highwater(partition)
        return high is not None and consumer.position(partition) >= high

    def idle(self) -> bool:
        return all(self.buffers.buffered(tp) == 0 and self._caught_up(tp) for tp in self.assigned())

    def next_batch(self, until: Mapping[str, int] | None = None) -> list[Record] | None:
        # A rebalance seen in the last call raises only now, so that a shutdown under way
        # (another instance leaving first) still ends cleanly.
        if self.assignment_changed:
            raise AssignmentChanged(
                "the consumer group moved account-events partitions; this version keeps each"
                " shard's accounts in its own snapshots, so restart every instance"
            )
        if until is not None:
            deadline = time.monotonic() + REPLAY_WAIT_S
            while True:
                batch = self.buffers.cut_until(until, self._position)
                if batch is not None:
                    return batch
                if time.monotonic() > deadline:
                    raise RuntimeError(f"journaled tick: records up to {until} never arrived")
                self._poll(self.poll_ms)
        self._poll(self.poll_ms)
        deadline = time.monotonic() + 1.0
        while not self.assignment_changed:
            batch = self.buffers.cut(self.assigned(), self._caught_up)
            if batch is not None:
                return batch
            if time.monotonic() > deadline:
                break
            self._poll(self.poll_ms)
        return []  # still filling (the buffers are kept for the next call), or rebalanced

    def lag(self) -> dict[str, int]:
        lag = {}
        for tp in self.assigned():
            consumer, partition = self._consumer_of(tp), TopicPartition(*tp)
            high = consumer.highwater(partition)
            if high is not None:
                lag[tp_name(*tp)] = high - consumer.position(partition) + self.buffers.buffered(tp)
        return lag

    def close(self) -> None:
        for consumer in self._consumers():
            consumer.close()


class KafkaSink:
    """kafka-python producer with linger and large batches; acks from every replica."""

    def __init__(
        self, bootstrap: str, *, linger_ms: int = LINGER_MS_DEFAULT, client_id: str = "clearing"
    ) -> None:
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=linger_ms,
            batch_size=512 * 1024,
            acks="all",
            client_id=client_id,
            max_in_flight_requests_per_connection=5,
            enable_idempotence=True,  # keeps per-partition order under retries
        )
        self.failed = 0
        self.first_error: BaseException | None = None

    def _errback(self, exc: BaseException) -> None:
        self.failed += 1
        self.first_error = self.first_error or exc

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        self.producer.send(topic, key=key, value=value).add_errback(self._errback)

    def flush(self) -> None:
        self.producer.flush()
        if self.failed:
            raise RuntimeError(f"{self.failed} output records failed: {self.first_error}")

    def close(self) -> None:
        self.producer.close()


class KafkaJournal:
    """Each tick's end offsets, keyed by shard, in partition 0 of the journal topic;
    append waits for the broker's acknowledgement (durable before outputs are published)."""

    def __init__(self, bootstrap: str, topic: str, shard: str) -> None:
        self.bootstrap, self.topic, self.key = bootstrap, topic, shard.encode()
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        try:
            tp = TopicPartition(topic, 0)
            _partitions_of(consumer, topic)
            self.position = int(consumer.end_offsets([tp])[tp])
        finally:
            consumer.close()

    def append(self, tick: int, end: Mapping[str, int]) -> None:
        value = json.dumps({"tick": tick, "end": dict(end)}, separators=(",", ":")).encode()
        future = self.producer.send(self.topic, key=self.key, value=value, partition=0)
        self.producer.flush()
        self.position = future.get(timeout=30).offset + 1

    def entries_after(self, tick: int, position: int) -> list[tuple[int, dict[str, int]]]:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None
        )
        try:
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, position)
            end = consumer.end_offsets([tp])[tp]
            entries = []
            while consumer.position(tp) < end:
                for records in consumer.poll(timeout_ms=500).values():
                    for r in records:
                        doc = json.loads(r.value)
                        if r.key == self.key and doc["tick"] > tick:
                            ends = {k: int(v) for k, v in doc["end"].items()}
                            entries.append((int(doc["tick"]), ends))
            return entries
        finally:
            consumer.close()

    def close(self) -> None:
        self.producer.close()


# ----- confluent-kafka -------------------------------------------------------------------
class ConfluentSource:
    """confluent-kafka consumer, every partition assigned by hand (no consumer group in
    this version). Partition-EOF events and cached watermarks say when a partition is
    caught up."""

    def __init__(
        self,
        bootstrap: str,
        prices_topic: str,
        events_topic: str,
        *,
        offsets: Mapping[str, int] | None = None,
        batch_records: int = BATCH_RECORDS_DEFAULT,
        poll_ms: int = POLL_MS_DEFAULT,
    ) -> None:
        from confluent_kafka import Consumer

        self.prices_topic, self.events_topic = prices_topic, events_topic
        self.poll_s = poll_ms / 1000
        self.buffers = _Buffers(batch_records, prices_topic)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"clearing-assign-{uuid.uuid4().hex[:8]}",  # required, never used
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 100,
                "queued.min.messages": 200_000,
            }
        )
        meta = self.consumer.list_topics(timeout=30)
        self._tps: list[tuple[str, int]] = []
        for topic in (events_topic, prices_topic):
            if topic not in meta.topics or meta.topics[topic].error is not None:
                raise Rejected(
                    RejectReason.UNKNOWN_TOPIC, f"topic {topic!r} not found on the broker"
                )
            self._tps += [(topic, p) for p in sorted(meta.topics[topic].partitions)]
        self.n_event_partitions = sum(1 for t, _ in self._tps if t == events_topic)
        self.next_offset: dict[tuple[str, int], int | None] = {}
        self.end: dict[tuple[str, int], int] = {}
        self.seek(offsets or {})

    def assigned(self) -> list[tuple[str, int]]:
        return list(self._tps)

    def event_partitions(self) -> list[int]:
        return [p for t, p in self._tps if t == self.events_topic]

    def seek(self, offsets: Mapping[str, int]) -> None:
        from confluent_kafka import OFFSET_BEGINNING
        from confluent_kafka import TopicPartition as CTopicPartition

        self.buffers.drop(set())
        assignment = []
        for topic, partition in self._tps:
            offset = offsets.get(tp_name(topic, partition))
            self.next_offset[(topic, partition)] = offset
            start = OFFSET_BEGINNING if offset is None else offset
            assignment.append(CTopicPartition(topic, partition, start))
        self.end.clear()
        self.consumer.assign(assignment)

    def _poll(self, timeout_s: float) -> int:
        from confluent_kafka import KafkaError

        messages: list[Any] = self.consumer.consume(num_messages=100_000, timeout=timeout_s)
        n = 0
        for message in messages:
            tp = (message.topic(), message.partition())
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self.end[tp] = message.offset()
                    if self.next_offset.get(tp) is None:
                        self.next_offset[tp] = message.offset()
                    continue
                raise RuntimeError(f"kafka: {error}")
            self.buffers.add(Record(tp[0], tp[1], message.offset(), message.key(), message.value()))
            self.next_offset[tp] = message.offset() + 1
            n += 1
        return n

    def _caught_up(self, tp: tuple[str, int]) -> bool:
        from confluent_kafka import TopicPartition as CTopicPartition

        position = self.next_offset.get(tp)
        if position is None:
            return False
        _, high = self.consumer.get_watermark_offsets(CTopicPartition(*tp), cached=True)
        end = max(self.end.get(tp, -1), high)
        return end >= 0 and position >= end

    def idle(self) -> bool:
        return all(self.buffers.buffered(tp) == 0 and self._caught_up(tp) for tp in self._tps)

    def next_batch(self, until: Mapping[str, int] | None = None) -> list[Record] | None:
        if until is not None:
            deadline = time.monotonic() + REPLAY_WAIT_S
            while True:
                batch = self.buffers.cut_until(until, self.next_offset.get)
                if batch is not None:
                    return batch
                if time.monotonic() > deadline:
                    raise RuntimeError(f"journaled tick: records up to {until} never arrived")
                self._poll(self.poll_s)
        self._poll(self.poll_s)
        deadline = time.monotonic() + 1.0
        while True:
            batch = self.buffers.cut(self._tps, self._caught_up)
            if batch is not None:
                return batch
            if time.monotonic() > deadline:
                return []
            self._poll(self.poll_s)

    def lag(self) -> dict[str, int]:
        from confluent_kafka import TopicPartition as CTopicPartition

        lag = {}
        for tp in self._tps:
            _, high = self.consumer.get_watermark_offsets(CTopicPartition(*tp), cached=True)
            position = self.next_offset.get(tp)
            if high >= 0 and position is not None:
                lag[tp_name(*tp)] = high - position + self.buffers.buffered(tp)
        return lag

    def close(self) -> None:
        self.consumer.close()


class ConfluentSink:
    def __init__(self, bootstrap: str, *, linger_ms: int = LINGER_MS_DEFAULT) -> None:
        from confluent_kafka import Producer

        self.failed = 0
        self.first_error: Any = None
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": linger_ms,
                "acks": "all",
                "enable.idempotence": True,
                "partitioner": "murmur2_random",  # the Java client's partitions for keys
                "queue.buffering.max.messages": 1_000_000,
            }
        )

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.failed += 1
            self.first_error = self.first_error or error

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
                break
            except BufferError:
                self.producer.poll(0.05)  # the local queue is full: let deliveries drain
        self.producer.poll(0)

    def flush(self) -> None:
        self.producer.flush()
        if self.failed:
            raise RuntimeError(f"{self.failed} output records failed: {self.first_error}")

    def close(self) -> None:
        self.producer.flush()


def make_source(
    backend: str, bootstrap: str, prices_topic: str, events_topic: str, **options: Any
) -> Any:
    if backend == "kafka-python":
        return KafkaSource(bootstrap, prices_topic, events_topic, **options)
    if backend == "confluent":
        if not have_confluent():
            raise Rejected(
                RejectReason.UNSUPPORTED_OPTION,
                "backend confluent: confluent-kafka is not installed",
            )
        if options.pop("group", None) is not None:
            raise Rejected(
                RejectReason.UNSUPPORTED_OPTION, "backend confluent: no consumer groups yet"
            )
        options.pop("settle_s", None)
        options.pop("client_id", None)
        return ConfluentSource(bootstrap, prices_topic, events_topic, **options)
    raise Rejected(
        RejectReason.UNSUPPORTED_OPTION, f"backend {backend!r}: expected one of {BACKENDS}"
    )


def make_sink(backend: str, bootstrap: str, **options: Any) -> Any:
    if backend == "confluent" and have_confluent():
        return ConfluentSink(bootstrap, **options)
    return KafkaSink(bootstrap, **options)
