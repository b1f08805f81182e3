"""Kafka pieces that need no broker (engine.service.kafka_common, kafka_batches): key
partitioning, the backend factory's refusals, and the deterministic batch cut."""

from __future__ import annotations

import pytest

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.service.kafka_batches import Buffers
from engine.service.kafka_common import AccountPartitions, make_source, partition_for_key
from engine.service.ports import Record


def test_account_partitions_follow_the_key() -> None:
    partitions = AccountPartitions(3)
    for account in (1, 2, 17, 10**12):
        expected = partition_for_key(str(account).encode(), 3)
        assert partitions(account) == expected == partitions(account)
        assert 0 <= expected < 3


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(Rejected) as caught:
        make_source("nope", "127.0.0.1:1", "prices", "account-events")
    assert caught.value.reason == RejectReason.UNSUPPORTED_OPTION


def test_cut_waits_for_full_or_caught_up_partitions() -> None:
    buffers = Buffers(2, "prices")
    for offset in range(3):
        buffers.add(Record("prices", 0, offset, None, b"p"))
    buffers.add(Record("account-events", 0, 0, None, b"e"))
    assigned = [("account-events", 0), ("prices", 0)]
    # account-events holds 1 of 2 and may still fill: no batch yet.
    assert buffers.cut(assigned, lambda tp: False) is None
    # Caught up: events first, then 2 prices (batch_records per partition).
    batch = buffers.cut(assigned, lambda tp: True)
    assert batch is not None
    assert [(r.topic, r.offset) for r in batch] == [
        ("account-events", 0),
        ("prices", 0),
        ("prices", 1),
    ]
    # A journaled tick is re-cut at exactly its end offsets.
    assert buffers.cut_until({"prices:0": 3}, lambda tp: 3) == [Record("prices", 0, 2, None, b"p")]
