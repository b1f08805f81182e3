"""`clearing serve` on the real broker from scripts/kafka.sh (no mocks): the published events
equal the batch waterfall's, a stopped and crashed run restarts to the uninterrupted run's
final state, bad input is dead-lettered, and two instances in one group share the
account-events partitions. Every test uses its own topics.

Run: .venv/bin/python -m pytest -q tests/service/test_service_kafka.py
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from engine.cli import serve as serve_cli
from engine.io.ledger_segments import audit_whole
from engine.io.snapshot import book_batch, read_snapshot
from engine.service import app, kafka_common, messages
from engine.service.kafka_common import create_topics, partition_for_key
from engine.service.ports import Topics
from engine.service.tick import Service
from engine.waterfall.conservation import audit
from engine.waterfall.profile import Profile
from tests.service.scenario import TS0, batch_reference, published_events, scenario

pytestmark = pytest.mark.kafka
EVENT_PARTITIONS = 3


def _unique(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}-"


def _create(bootstrap: str, inputs: str, outputs: str) -> None:
    base = Topics()
    partitions = {inputs + base.prices: 1, inputs + base.account_events: EVENT_PARTITIONS}
    for name in (*base.outputs(), base.journal):
        partitions[outputs + name] = 1
    create_topics(bootstrap, partitions)


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def _event_records(events: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
    def partition_of(key: bytes) -> int:
        return partition_for_key(key, EVENT_PARTITIONS)

    return [
        (key, messages.encode(doc))
        for doc in events
        for key in messages.routing_keys(doc, partition_of)
    ]


def _price_records(prices: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
    return [(d["symbol"].encode(), messages.encode(d)) for d in prices]


def _consume(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"{topic}: outputs missing"
            for records in consumer.poll(timeout_ms=200).values():
                out += [json.loads(r.value) for r in records]
        return out
    finally:
        consumer.close()


def _args(
    bootstrap: str, inputs: str, outputs: str, snapshots: Path, *extra: str
) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    base = Topics()
    return parser.parse_args(
        [
            "--bootstrap-servers", bootstrap,
            "--topic-prefix", outputs,
            "--prices-topic", inputs + base.prices,
            "--account-events-topic", inputs + base.account_events,
            "--snapshot-dir", str(snapshots),
            "--fund", "1000",
            "--no-fill-checks",
            "--exit-when-idle",
            *extra,
        ]
    )  # fmt: skip


def _serve(args: argparse.Namespace, **kw: Any) -> Service:
    config = serve_cli.config_of(args)
    service, _, status = app.serve(config, log=lambda line: None, **kw)
    assert status == 0
    assert _audit(service, config.ledger_directory)
    return service


def _audit(service: Service, ledger: Path | None) -> bool:
    """The full audit, over the ledger streamed to segments (the default) and held."""
    return (audit(service.book) if ledger is None else audit_whole(service.book, ledger)).ok


def _final(snapshots: Path) -> tuple[Any, dict[str, Any]]:
    book, extra = read_snapshot(sorted(snapshots.glob("*.arrow"))[-1])
    return book_batch(book), extra["service"]


def test_published_events_equal_the_batch_waterfall(kafka_bootstrap: str, tmp_path: Path) -> None:
    bootstrap = kafka_bootstrap
    inputs, outputs = _unique("in"), _unique("out")
    _create(bootstrap, inputs, outputs)
    events, prices = scenario(n_pairs=30, n_prices=40, seed=3)
    _produce(bootstrap, inputs + "account-events", _event_records(events))
    # Every event in one tick first (1000 a partition), then 3 prices a tick.
    _serve(_args(bootstrap, inputs, outputs, tmp_path, "--batch-records", "1000"))
    _produce(bootstrap, inputs + "prices", _price_records(prices))
    service = _serve(_args(bootstrap, inputs, outputs, tmp_path, "--batch-records", "3"))
    ref_book, expected = batch_reference(
        Profile.shipped(), events, [prices[i : i + 3] for i in range(0, len(prices), 3)]
    )
    published = []
    for topic in ("liquidations", "adl", "insurance"):
        published += _consume(bootstrap, outputs + topic)
    published.sort(key=lambda d: (d["tick"], int(d["id"].rsplit("-", 1)[1])))
    assert len(expected) > 10
    assert published_events(published) == expected
    assert _consume(bootstrap, outputs + "dead-letter") == []

    # The same balances per account as the batch run (rows may be in another order).
    def balances(book: Any) -> dict[int, int]:
        return dict(zip(book.account_id.tolist(), book.balance.tolist(), strict=True))

    assert balances(service.book) == balances(ref_book)


def test_stop_crash_and_restart_equal_an_uninterrupted_run(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    bootstrap = kafka_bootstrap
    inputs, whole, parts = _unique("in"), _unique("whole"), _unique("parts")
    _create(bootstrap, inputs, whole)
    _create(bootstrap, inputs, parts)
    events, prices = scenario(n_pairs=20, n_prices=30, seed=6)
    _produce(bootstrap, inputs + "account-events", _event_records(events))
    _produce(bootstrap, inputs + "prices", _price_records(prices))
    options = ("--batch-records", "4", "--snapshot-every-ticks", "3", "--snapshots-keep", "10")
    _serve(_args(bootstrap, inputs, whole, tmp_path / "whole", *options))
    # Stopped after 8 ticks (a clean stop writes tick 8); restarted for 4 more and killed
    # there: its newest snapshots, ticks 12 and 9, are lost or corrupt, so the last start
    # recovers from tick 8 and re-cuts ticks 9..12 from the journal.
    snaps = tmp_path / "parts"
    _serve(_args(bootstrap, inputs, parts, snaps, *options, "--max-ticks", "8"))
    _serve(_args(bootstrap, inputs, parts, snaps, *options, "--max-ticks", "4"))
    (snaps / "tick-000000000012.arrow").unlink()
    corrupt = snaps / "tick-000000000009.arrow"
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    logs: list[str] = []
    service, result, status = app.serve(
        serve_cli.config_of(_args(bootstrap, inputs, parts, snaps, *options)), log=logs.append
    )
    assert status == 0 and result.replayed == 4
    assert any("snapshot skipped" in line and "tick-000000000009" in line for line in logs)
    assert _audit(service, snaps / "ledger")
    whole_book, whole_state = _final(tmp_path / "whole")
    parts_book, parts_state = _final(snaps)
    assert whole_book.equals(parts_book)
    assert whole_state == parts_state
    # Outputs repeated by the replay carry the same ids and bytes.
    for topic in ("liquidations", "adl", "insurance", "margin-calls"):
        a = {d["id"]: d for d in _consume(bootstrap, whole + topic)}
        b_docs = _consume(bootstrap, parts + topic)
        b = {}
        for doc in b_docs:
            assert b.setdefault(doc["id"], doc) == doc
        assert a == b, topic
    assert _consume(bootstrap, parts + "liquidations"), "the scenario liquidates"


def test_bad_input_is_dead_lettered(kafka_bootstrap: str, tmp_path: Path) -> None:
    bootstrap = kafka_bootstrap
    inputs, outputs = _unique("in"), _unique("out")
    _create(bootstrap, inputs, outputs)
    events = [
        messages.deposit_doc(1, TS0, 1, "10000"),
        messages.deposit_doc(2, TS0, 2, "10000"),
        messages.fill_doc(3, TS0, "BTCUSDT", "100000", "0.1", 1, 2),
    ]
    _produce(bootstrap, inputs + "account-events", _event_records(events))
    # A first price marks once three prints in a row confirm it.
    prices = [messages.price_doc("BTCUSDT", TS0, seq, mark_price="100000") for seq in (1, 2, 3)]
    _produce(bootstrap, inputs + "prices", _price_records(prices))
    _serve(_args(bootstrap, inputs, outputs, tmp_path))
    book_before, state_before = _final(tmp_path)
    duplicate = messages.encode(messages.deposit_doc(3, TS0, 2, "1"))  # id 3 seen for 2's key
    bad_events = [(b"1", b'{"v":1,"type":"deposit",'), (b"2", duplicate)]
    bad_prices = [
        (b"XRPUSDT", messages.encode(messages.price_doc("XRPUSDT", TS0, 2, mark_price="1"))),
        (b"BTCUSDT", b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":2,"mark_price":NaN}'),
    ]
    # Account 2's key goes to one partition: send the duplicate where id 3 was seen.
    partition_2 = partition_for_key(b"2", EVENT_PARTITIONS)
    partition_1 = partition_for_key(b"1", EVENT_PARTITIONS)
    if partition_1 != partition_2:
        bad_events[1] = (b"1", messages.encode(messages.deposit_doc(3, TS0, 1, "1")))
    _produce(bootstrap, inputs + "account-events", bad_events)
    _produce(bootstrap, inputs + "prices", bad_prices)
    service = _serve(_args(bootstrap, inputs, outputs, tmp_path))
    letters = _consume(bootstrap, outputs + "dead-letter")
    got = sorted((d["reason"], base64.b64decode(d["value"])) for d in letters)
    assert got == sorted(
        [
            ("malformed_json", bad_events[0][1]),
            ("duplicate_event_id", bad_events[1][1]),
            ("unknown_symbol", bad_prices[0][1]),
            ("invalid_price", bad_prices[1][1]),
        ]
    )
    assert all(d["detail"] and d["topic"].startswith(inputs) for d in letters)
    book_after, state_after = _final(tmp_path)
    assert book_after.equals(book_before)
    for name in ("last_event_id", "last_price_seq", "mark_seq", "held", "margin_call"):
        assert state_after[name] == state_before[name], name
    assert state_after["tick"] > state_before["tick"]  # it went on ticking
    assert int(service.book.mark[0]) == 1_000_000


def test_two_instances_share_the_account_partitions(kafka_bootstrap: str, tmp_path: Path) -> None:
    bootstrap = kafka_bootstrap
    inputs, outputs = _unique("in"), _unique("out")
    _create(bootstrap, inputs, outputs)
    events = [messages.deposit_doc(i + 1, TS0, 100 + i, "1000") for i in range(60)]
    # Fills across partitions: each side is applied by the shard owning its account.
    events += [
        messages.fill_doc(100 + i, TS0, "BTCUSDT", "100000", "0.01", 100 + i, 130 + i)
        for i in range(30)
    ]
    _produce(bootstrap, inputs + "account-events", _event_records(events))
    # A first price marks once three prints in a row confirm it.
    prices = [messages.price_doc("BTCUSDT", TS0, seq, mark_price="100000") for seq in (1, 2, 3)]
    _produce(bootstrap, inputs + "prices", _price_records(prices))
    group = _unique("group")
    services: dict[str, Service] = {}
    stop = threading.Event()
    results: dict[str, Any] = {}

    def instance(shard: str) -> None:
        args = _args(
            bootstrap, inputs, outputs, tmp_path / shard,
            "--group", group, "--shard", shard, "--group-settle", "2",
        )  # fmt: skip
        args.exit_when_idle = False
        results[shard] = app.serve(
            serve_cli.config_of(args),
            stop=stop.is_set,
            log=lambda line: None,
            started=lambda s: services.update({shard: s}),
        )

    threads = [threading.Thread(target=instance, args=(s,)) for s in ("a", "b")]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    tps = [TopicPartition(inputs + "account-events", p) for p in range(EVENT_PARTITIONS)]
    end = {f"{tp.topic}:{tp.partition}": n for tp, n in consumer.end_offsets(tps).items()}
    consumer.close()
    while time.monotonic() < deadline:
        done = {k: v for s in list(services.values()) for k, v in s.state.offsets.items()}
        if len(services) == 2 and all(done.get(k) == n for k, n in end.items()):
            break
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert set(results) == {"a", "b"}
    owned = {}
    for shard in ("a", "b"):
        service = results[shard][0]
        owned[shard] = {
            int(k.rsplit(":", 1)[1]) for k in service.state.offsets if "account-events" in k
        }
        assert owned[shard], f"shard {shard} got no partition"
        for account in range(100, 160):
            partition = partition_for_key(str(account).encode(), EVENT_PARTITIONS)
            row = service.book.index.find(account)
            assert (row is not None) == (partition in owned[shard])
            if row is not None:
                position = service.book.position(account, "BTCUSDT")[0]
                assert position == (10 if account < 130 else -10)
        assert _audit(service, tmp_path / shard / "ledger")
    assert owned["a"] | owned["b"] == set(range(EVENT_PARTITIONS))
    assert not owned["a"] & owned["b"]


@pytest.mark.skipif(not kafka_common.have_confluent(), reason="confluent-kafka not installed")
def test_confluent_backend_reaches_the_same_state(kafka_bootstrap: str, tmp_path: Path) -> None:
    bootstrap = kafka_bootstrap
    inputs, one, two = _unique("in"), _unique("kp"), _unique("ck")
    _create(bootstrap, inputs, one)
    _create(bootstrap, inputs, two)
    events, prices = scenario(n_pairs=10, n_prices=12, seed=4)
    _produce(bootstrap, inputs + "account-events", _event_records(events))
    _produce(bootstrap, inputs + "prices", _price_records(prices))
    _serve(_args(bootstrap, inputs, one, tmp_path / "kp", "--batch-records", "5"))
    _serve(
        _args(
            bootstrap, inputs, two, tmp_path / "ck", "--batch-records", "5",
            "--backend", "confluent",
        )
    )  # fmt: skip
    a, b = _final(tmp_path / "kp"), _final(tmp_path / "ck")
    assert a[0].equals(b[0]) and a[1] == b[1]
    assert _consume(bootstrap, one + "liquidations") == _consume(bootstrap, two + "liquidations")
