"""Poison pills through the real broker: each single hostile message a fault campaign found
(one that crashed `clearing serve`, again on every restart, or froze a market or a
partition for good) is dead-lettered with a reason; the service exits 0, and again when
restarted over the same snapshot directory; the conservation audit passes; and the normal
deposit, fill and prices sent after the pills are applied (the partition takes later event
ids, the market still moves).

Run: .venv/bin/python -m pytest -q tests/service/test_poison_pills_broker.py
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from engine.cli import serve as serve_cli
from engine.io.ledger_segments import audit_whole
from engine.service import app, messages
from engine.service.kafka_common import create_topics
from engine.service.ports import Topics
from engine.service.tick import Service
from tests.service.scenario import TS0
from tests.service.test_service_kafka import _args, _consume, _produce, _unique

pytestmark = pytest.mark.kafka
BIG = 2**63 - 1  # the largest int64


def _event(doc: dict[str, Any]) -> tuple[bytes, bytes]:
    # One partition: a fill is sent once, under its buyer's key.
    return messages.routing_keys(doc)[0], messages.encode(doc)


def _price(seq: int, mark: str, ts: int = TS0) -> tuple[bytes, bytes]:
    return b"BTCUSDT", messages.encode(messages.price_doc("BTCUSDT", ts, seq, mark_price=mark))


def _nested_deposit() -> bytes:
    """A 2 KB deposit whose extra field nests 1,000 levels."""
    plain = messages.encode(messages.deposit_doc(4, TS0, 1, "1"))
    return plain[:-1] + b',"extra":' + b"[" * 1000 + b"]" * 1000 + b"}"


def _serve(args: Any) -> Service:
    config = serve_cli.config_of(args)
    service, _, status = app.serve(config, log=lambda line: None)
    assert status == 0
    assert config.ledger_directory is not None
    assert audit_whole(service.book, config.ledger_directory).ok
    return service


def test_poison_pills_are_dead_lettered_and_survive_a_restart(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    bootstrap = kafka_bootstrap
    inputs, outputs = _unique("pill-in"), _unique("pill-out")
    base = Topics()
    # One account-events partition: every event below shares it.
    partitions = {inputs + base.prices: 1, inputs + base.account_events: 1}
    for name in (*base.outputs(), base.journal):
        partitions[outputs + name] = 1
    create_topics(bootstrap, partitions)
    events, prices = inputs + base.account_events, inputs + base.prices

    # Two funded accounts and a confirmed BTC mark of 100000 (three prints confirm a first).
    seed = [
        _event(messages.deposit_doc(1, TS0, 1, "10000")),
        _event(messages.deposit_doc(2, TS0, 2, "10000")),
    ]
    _produce(bootstrap, events, seed)
    _produce(bootstrap, prices, [_price(seq, "100000") for seq in (1, 2, 3)])
    snaps = tmp_path / "snap"
    service = _serve(_args(bootstrap, inputs, outputs, snaps))
    assert int(service.book.mark[0]) == 1_000_000

    assert 2000 < len(_nested_deposit()) < 2200
    pill_events = [
        (b"1", _nested_deposit()),
        _event(messages.deposit_doc(BIG, TS0, 1, "1")),
        _event(messages.fill_doc(5, TS0, "BTCUSDT", "0.1", "1000000", 1, 2)),
        _event(messages.withdraw_doc(BIG, TS0, 999, "1")),  # refused by the book anyway
        _event(messages.deposit_doc(6, BIG, 1, "1")),
    ]
    pill_prices = [_price(BIG, "50000"), _price(4, "100000", BIG)]
    # After the pills, in the same partition and market: normal records.
    after_events = [
        _event(messages.deposit_doc(7, TS0 + 1, 1, "5")),
        _event(messages.fill_doc(8, TS0 + 1, "BTCUSDT", "100000", "0.01", 1, 2)),
    ]
    _produce(bootstrap, events, pill_events + after_events)
    _produce(bootstrap, prices, [*pill_prices, _price(4, "100500", TS0 + 1)])
    service = _serve(_args(bootstrap, inputs, outputs, snaps))
    assert service.book.account_equity(1) > 0
    assert service.book.position(1, "BTCUSDT")[0] == 10
    assert service.book.position(2, "BTCUSDT")[0] == -10
    assert int(service.book.mark[0]) == 1_005_000
    assert service.state.last_event_id == {events + ":0": 8}
    assert service.state.tick_ts == TS0 + 1

    letters = _consume(bootstrap, outputs + base.dead_letter)
    got = sorted((d["reason"], base64.b64decode(d["value"])) for d in letters)
    assert got == sorted(
        [
            ("too_deep", pill_events[0][1]),
            ("invalid_event_id", pill_events[1][1]),
            ("overflow", pill_events[2][1]),
            ("invalid_event_id", pill_events[3][1]),
            ("invalid_timestamp", pill_events[4][1]),
            ("invalid_sequence", pill_prices[0][1]),
            ("invalid_timestamp", pill_prices[1][1]),
        ]
    )
    assert all(d["detail"] for d in letters)

    # Restarted over the same snapshots: no crash, no new dead letter, and the market and
    # the partition still move (a -40% move: three prints in a row outside the band, in as
    # many ticks).
    after_restart = [_event(messages.deposit_doc(9, TS0 + 5, 2, "5"))]
    _produce(bootstrap, events, after_restart)
    _produce(bootstrap, prices, [_price(seq, "60000", TS0 + seq) for seq in (5, 6, 7)])
    service = _serve(_args(bootstrap, inputs, outputs, snaps, "--batch-records", "1"))
    assert int(service.book.mark[0]) == 600_000
    assert service.state.last_event_id == {events + ":0": 9}
    assert service.state.last_price_seq["BTCUSDT"] == 7
    assert service.state.tick_ts == TS0 + 7
    assert len(_consume(bootstrap, outputs + base.dead_letter)) == len(letters)
