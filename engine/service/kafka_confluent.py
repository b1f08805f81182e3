"""The service's source and sink over Kafka with confluent-kafka (librdkafka; optional: the
backend "confluent", used when `import confluent_kafka` works).

Every partition is assigned by hand (no consumer group in this version). Partition-EOF
events and cached watermarks say when a partition is caught up; batches are cut by
engine.service.kafka_batches. The producer partitions keys with murmur2 like the Java
client (`partitioner=murmur2_random`), so engine.service.kafka_common.partition_for_key
holds for its records too. The journal is kafka-python's (engine.service.kafka_python).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

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
        max_events: int | None = None,
        poll_ms: int = POLL_MS_DEFAULT,
        security: Mapping[str, str] | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        self.prices_topic, self.events_topic = prices_topic, events_topic
        self.poll_s = poll_ms / 1000
        self.buffers = Buffers(batch_records, prices_topic, max_events)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"clearing-assign-{uuid.uuid4().hex[:8]}",  # required, never used
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 100,
                "queued.min.messages": 200_000,
                **(security or {}),  # TLS / SASL (engine.service.kafka_security)
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
    """confluent-kafka producer: linger, acks from every replica, idempotent."""

    def __init__(
        self,
        bootstrap: str,
        *,
        linger_ms: int = LINGER_MS_DEFAULT,
        security: Mapping[str, str] | None = None,
    ) -> None:
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
                **(security or {}),  # TLS / SASL (engine.service.kafka_security)
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
