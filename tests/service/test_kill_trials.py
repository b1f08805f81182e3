"""Outputs are delivered before the snapshot that covers them: `clearing serve` killed with
SIGKILL right after a snapshot loses no output (bench.kill_trials, two trials here; run the
bench for more), and a sink whose delivery fails gets no snapshot covering its tick."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from bench.kill_trials import run_trials
from engine.io.snapshot import read_snapshot
from engine.service import app, messages
from engine.service.kafka_common import create_topics
from engine.service.ports import Topics
from engine.service.state import ServiceConfig
from tests.service.scenario import TS0

pytestmark = pytest.mark.kafka


def test_a_kill_right_after_a_snapshot_loses_no_output(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    trials = run_trials(kafka_bootstrap, 2, tmp_path)
    assert all(t.killed for t in trials)
    for t in trials:
        assert t.ok, (t.kill_tick, t.lost[:5], t.extra[:5], t.differing[:5], t.book_equal)


def test_no_snapshot_covers_outputs_the_broker_refused(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # The dead-letter topic takes records of at most 200 bytes: the dead letter of the 4th
    # price (its bytes in base64 and more) is refused by the broker. That tick's snapshot
    # must not be written: the newest one is tick 3's, before the refused output.
    tag = uuid.uuid4().hex[:10]
    inputs, outputs = f"refuse-in-{tag}-", f"refuse-out-{tag}-"
    base = Topics()
    create_topics(kafka_bootstrap, {inputs + base.prices: 1, inputs + base.account_events: 1})
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        topics = [
            NewTopic(outputs + name, 1, 1, topic_configs={"max.message.bytes": "200"})
            if name == base.dead_letter
            else NewTopic(outputs + name, 1, 1)
            for name in (*base.outputs(), base.journal)
        ]
        admin.create_topics(topics)
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for seq in (1, 2, 3):
        doc = messages.price_doc("BTCUSDT", TS0, seq, mark_price="100000")
        producer.send(inputs + base.prices, key=b"BTCUSDT", value=messages.encode(doc))
    bad = b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":4,"mark_price":"NaN","pad":"' + b"x" * 300
    producer.send(inputs + base.prices, key=b"BTCUSDT", value=bad + b'"}')
    producer.flush()
    producer.close()
    snaps = tmp_path / "snap"
    config = app.ServeConfig(
        service=ServiceConfig(
            topics=dataclasses.replace(
                Topics.with_prefix(outputs),
                prices=inputs + base.prices,
                account_events=inputs + base.account_events,
            )
        ),
        bootstrap_servers=kafka_bootstrap,
        snapshot_dir=snaps,
        snapshot_every_ticks=1,
        batch_records=1,
        fund="1000",
        exit_when_idle=True,
    )
    with pytest.raises(RuntimeError, match="output records failed"):
        app.serve(config, log=lambda line: None)
    newest = sorted(snaps.glob("*.arrow"))[-1]
    assert newest.name == "tick-000000000003.arrow"
    _, extra = read_snapshot(newest)
    assert extra["service"]["offsets"][inputs + base.prices + ":0"] == 3
