"""End-to-end check of the real Kafka broker from scripts/kafka.sh.

Run: .venv/bin/python -m pytest -q tests/service/test_kafka_broker.py -o markers=kafka
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.serializer import Deserializer, Serializer

pytestmark = pytest.mark.kafka

N_MESSAGES = 1000
N_PARTITIONS = 3


class _StrSerializer(Serializer):
    def serialize(self, topic, headers, data):
        return data.encode("utf-8")


class _StrDeserializer(Deserializer):
    def deserialize(self, topic, headers, data):
        return data.decode("utf-8")


class _JsonSerializer(Serializer):
    def serialize(self, topic, headers, data):
        return json.dumps(data, sort_keys=True).encode("utf-8")


class _JsonDeserializer(Deserializer):
    def deserialize(self, topic, headers, data):
        return json.loads(data.decode("utf-8"))


def _wait_for_partitions(
    consumer: KafkaConsumer, topic: str, n: int, timeout_s: float = 30
) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        parts = consumer.partitions_for_topic(topic)
        if parts and len(parts) == n:
            return parts
        time.sleep(0.2)
    raise AssertionError(f"topic {topic} did not show {n} partitions within {timeout_s}s")


def test_roundtrip_keyed_json_three_partitions(kafka_bootstrap: str) -> None:  # noqa: F811
    topic = f"test-roundtrip-{uuid.uuid4().hex[:12]}"

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="test-admin")
    try:
        admin.create_topics(
            [NewTopic(name=topic, num_partitions=N_PARTITIONS, replication_factor=1)]
        )
    finally:
        admin.close()

    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        key_serializer=_StrSerializer(),
        value_serializer=_JsonSerializer(),
        acks="all",
        linger_ms=5,
        max_in_flight_requests_per_connection=1,  # keep per-partition order under retries
    )
    sent: dict[str, dict] = {}
    # per partition, the sequence numbers in the order the broker assigned offsets
    sent_order: dict[int, list[tuple[int, int]]] = defaultdict(list)
    futures = []
    try:
        for i in range(N_MESSAGES):
            key = f"member-{i % 37:02d}"
            value = {"seq": i, "key": key, "amount": i * 1.25, "note": f"msg ü {i}"}
            sent[str(i)] = {"key": key, "value": value}
            futures.append((i, producer.send(topic, key=key, value=value)))
        producer.flush(timeout=60)
        for i, fut in futures:
            md = fut.get(timeout=30)
            sent_order[md.partition].append((md.offset, i))
    finally:
        producer.close(timeout=30)

    assert len(sent_order) == N_PARTITIONS, "37 distinct keys should land on all 3 partitions"
    # same key -> same partition
    key_partition: dict[str, int] = {}
    for p, items in sent_order.items():
        for _, i in items:
            key = sent[str(i)]["key"]
            assert key_partition.setdefault(key, p) == p

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        key_deserializer=_StrDeserializer(),
        value_deserializer=_JsonDeserializer(),
        consumer_timeout_ms=1000,
    )
    received: dict[int, list[tuple[int, str, dict]]] = defaultdict(list)
    try:
        parts = _wait_for_partitions(consumer, topic, N_PARTITIONS)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        total = 0
        deadline = time.monotonic() + 60
        while total < N_MESSAGES and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500, max_records=500)
            for tp, records in batch.items():
                for r in records:
                    received[tp.partition].append((r.offset, r.key, r.value))
                    total += 1
    finally:
        consumer.close()

    seqs = [v["seq"] for recs in received.values() for _, _, v in recs]
    assert len(seqs) == N_MESSAGES, f"got {len(seqs)} of {N_MESSAGES} messages"
    assert sorted(seqs) == list(range(N_MESSAGES)), "every message exactly once"

    for p, recs in received.items():
        offsets = [o for o, _, _ in recs]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        # consumed order == produce order (by broker offset) within the partition
        assert [v["seq"] for _, _, v in recs] == [i for _, i in sorted(sent_order[p])]
        for _, key, value in recs:
            expected = sent[str(value["seq"])]
            assert key == expected["key"]
            assert value == expected["value"]
            assert key_partition[key] == p
