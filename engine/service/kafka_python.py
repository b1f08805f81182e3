"""The service's source, sink and journal over Kafka with kafka-python (the default backend;
pure Python).

Partitions are assigned by hand: every price partition, and every account-events
partition, or with a consumer group (`group`) the ones the group gives this instance. The
group's assignment must settle before anything is fetched, and a later rebalance stops the
instance (AssignmentChanged): each shard keeps its accounts in its own snapshots. Batches
are cut by engine.service.kafka_batches; partitioning and topic creation are in
engine.service.kafka_common.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.service.kafka_batches import (
    BATCH_RECORDS_DEFAULT,
    LINGER_MS_DEFAULT,
    POLL_MS_DEFAULT,
    REPLAY_WAIT_S,
    Buffers,
)
from engine.service.ports import Record, tp_name

GROUP_SETTLE_S_DEFAULT = 3.0


def partitions_of(consumer: KafkaConsumer, topic: str, timeout_s: float = 30.0) -> list[int]:
    """The topic's partitions, waiting up to timeout_s for the broker to know it."""
    deadline = time.monotonic() + timeout_s
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        if time.monotonic() > deadline:
            raise Rejected(RejectReason.UNKNOWN_TOPIC, f"topic {topic!r} not found on the broker")
        time.sleep(0.1)


class AssignmentChanged(RuntimeError):
    """The consumer group moved account-events partitions after this instance started."""


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
        max_events: int | None = None,
        poll_ms: int = POLL_MS_DEFAULT,
        settle_s: float = GROUP_SETTLE_S_DEFAULT,
        client_id: str = "clearing-serve",
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self.prices_topic, self.events_topic = prices_topic, events_topic
        self.poll_ms = poll_ms
        self.offsets = dict(offsets or {})
        self.buffers = Buffers(batch_records, prices_topic, max_events)
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
            **(security or {}),  # TLS / SASL (engine.service.kafka_security)
        }
        self.consumer = KafkaConsumer(group_id=None, **common)
        price_tps = [
            TopicPartition(prices_topic, p) for p in partitions_of(self.consumer, prices_topic)
        ]
        self.n_event_partitions = len(partitions_of(self.consumer, events_topic))
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
        self,
        bootstrap: str,
        *,
        linger_ms: int = LINGER_MS_DEFAULT,
        client_id: str = "clearing",
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=linger_ms,
            batch_size=512 * 1024,
            acks="all",
            client_id=client_id,
            max_in_flight_requests_per_connection=5,
            enable_idempotence=True,  # keeps per-partition order under retries
            **(security or {}),
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

    def __init__(
        self, bootstrap: str, topic: str, shard: str, *, security: Mapping[str, Any] | None = None
    ) -> None:
        self.bootstrap, self.topic, self.key = bootstrap, topic, shard.encode()
        self.security = dict(security or {})
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=0, **self.security
        )
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, **self.security
        )
        try:
            tp = TopicPartition(topic, 0)
            partitions_of(consumer, topic)
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
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            **self.security,
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
