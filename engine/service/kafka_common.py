"""Kafka pieces independent of the client backend: key partitioning, topic creation, and the
factory that picks a backend.

Backends: "kafka-python" (the default, engine.service.kafka_python) and "confluent"
(engine.service.kafka_confluent, when confluent-kafka is installed). The journal is always
kafka-python's.

Keys. Producers key account events by the account id in decimal and prices by symbol,
partitioned with the Java client's murmur2 (kafka-python's default; confluent-kafka needs
`partitioner=murmur2_random`), so `partition_for_key` says which partition holds an account.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.service import kafka_security
from engine.service.kafka_confluent import ConfluentSink, ConfluentSource
from engine.service.kafka_python import KafkaSink, KafkaSource

BACKENDS = ("kafka-python", "confluent")


def have_confluent() -> bool:
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return False
    return True


# ----- partitioning ----------------------------------------------------------------------
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
def create_topics(
    bootstrap: str, partitions: Mapping[str, int], security: Mapping[str, str] | None = None
) -> None:
    """Create the topics that do not exist yet (replication factor 1: a single broker).
    `security`: TLS / SASL settings by their librdkafka names (engine.service.kafka_security)."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="clearing-admin",
        **kafka_security.for_kafka_python(security or {}),
    )
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


# ----- the backend factory ---------------------------------------------------------------
def make_source(
    backend: str,
    bootstrap: str,
    prices_topic: str,
    events_topic: str,
    *,
    security: Mapping[str, str] | None = None,
    **options: Any,
) -> Any:
    """The backend's source; `security`: TLS / SASL settings by their librdkafka names
    (engine.service.kafka_security), translated for kafka-python."""
    security = security or {}
    if backend == "kafka-python":
        return KafkaSource(
            bootstrap,
            prices_topic,
            events_topic,
            security=kafka_security.for_kafka_python(security),
            **options,
        )
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
        return ConfluentSource(
            bootstrap,
            prices_topic,
            events_topic,
            security=kafka_security.for_confluent(security),
            **options,
        )
    raise Rejected(
        RejectReason.UNSUPPORTED_OPTION, f"backend {backend!r}: expected one of {BACKENDS}"
    )


def make_sink(
    backend: str, bootstrap: str, *, security: Mapping[str, str] | None = None, **options: Any
) -> Any:
    security = security or {}
    if backend == "confluent" and have_confluent():
        return ConfluentSink(bootstrap, security=kafka_security.for_confluent(security), **options)
    return KafkaSink(bootstrap, security=kafka_security.for_kafka_python(security), **options)
