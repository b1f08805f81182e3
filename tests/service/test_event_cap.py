"""Bounded account-event work per tick (`--max-events-per-tick`, engine.service.kafka_batches):
a batch takes at most N account-event records, shared over the account-events partitions
(N // k each, the first N % k one more), while prices are cut as before; the rest waits
for the next ticks, and a restart re-cuts the journaled ticks the same way."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from engine.service import messages
from engine.service.app import ServeConfig, serve
from engine.service.files_adapter import ListStream, StreamSource
from engine.service.kafka_batches import Buffers, event_shares
from engine.service.ports import Record
from engine.service.state import ServiceConfig
from tests.service.scenario import scenario


def test_event_shares() -> None:
    assert event_shares(10, 3) == [4, 3, 3]
    assert event_shares(2, 3) == [1, 1, 1]  # every partition moves
    assert event_shares(7, 1) == [7]
    with pytest.raises(ValueError):
        event_shares(0, 1)


def test_the_memory_source_caps_events_not_prices() -> None:
    streams = {
        ("account-events", 0): ListStream([(None, b"e")] * 20),
        ("account-events", 1): ListStream([(None, b"e")] * 20),
        ("prices", 0): ListStream([(None, b"p")] * 20),
    }
    source = StreamSource(streams, batch_records=8, max_events=5)
    batch = source.next_batch()
    assert batch is not None
    taken = [(r.topic, r.partition) for r in batch]
    assert taken.count(("account-events", 0)) == 3
    assert taken.count(("account-events", 1)) == 2
    assert taken.count(("prices", 0)) == 8


def test_the_kafka_cut_caps_events_and_counts_a_partition_full_at_its_share() -> None:
    buffers = Buffers(100, "prices", max_events=4)
    for offset in range(10):
        buffers.add(Record("account-events", 0, offset, None, b"e"))
    buffers.add(Record("prices", 0, 0, None, b"p"))
    assigned = [("account-events", 0), ("prices", 0)]
    # the events partition is full at 4, the prices one caught up
    batch = buffers.cut(assigned, lambda tp: tp[0] == "prices")
    assert batch is not None
    assert [(r.topic, r.offset) for r in batch] == [("account-events", i) for i in range(4)] + [
        ("prices", 0)
    ]


def test_serve_with_a_cap_ends_where_it_ends_without_and_restarts_the_same(
    tmp_path: Path,
) -> None:
    events, prices = scenario(n_pairs=20, n_prices=20, seed=4)
    (tmp_path / "events.jsonl").write_bytes(b"".join(messages.encode(d) + b"\n" for d in events))
    (tmp_path / "prices.jsonl").write_bytes(b"".join(messages.encode(d) + b"\n" for d in prices))

    def config(root: Path, **kw: object) -> ServeConfig:
        return ServeConfig(
            service=ServiceConfig(band_rate=0, fill_checks=False),
            prices_file=tmp_path / "prices.jsonl",
            events_file=tmp_path / "events.jsonl",
            fund="1000",
            batch_records=10,
            max_events_per_tick=3,
            snapshot_dir=root,
            snapshot_every_ticks=4,
            snapshot_interval_s=0,
            **kw,  # type: ignore[arg-type]
        )

    whole, result, _ = serve(config(tmp_path / "a"), log=lambda line: None)
    assert result.ticks >= len(events) // 3  # at most 3 account events a tick
    serve(config(tmp_path / "b", max_ticks=7), log=lambda line: None)
    resumed, _, _ = serve(config(tmp_path / "b"), log=lambda line: None)
    assert resumed.state.tick == whole.state.tick
    assert resumed.extra() == whole.extra()
    assert (
        deque(sorted((tmp_path / "a").glob("*.arrow")), 1)[0].read_bytes()
        == deque(sorted((tmp_path / "b").glob("*.arrow")), 1)[0].read_bytes()
    )
