"""The columnar account-event format (engine.service.ingest: an Arrow IPC stream of events
per record) against JSON: the same events give the same outputs and snapshot bytes; each
row keeps its identity and is refused alone, its dead letter naming the record and row."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from engine.io.snapshot import write_snapshot
from engine.service import messages
from engine.service.ingest import ACCOUNT_EVENTS_SCHEMA, encode_arrow_events
from engine.service.ports import Output, Record
from engine.service.tick import Service
from engine.waterfall.profile import Profile
from tests.service.scenario import TOPICS, TS0, memory_service, scenario

EVENTS, PRICES = TOPICS.account_events, TOPICS.prices
CHUNK = 7


def _json_records(docs: list[dict[str, Any]]) -> list[Record]:
    return [Record(EVENTS, 0, k, None, messages.encode(d)) for k, d in enumerate(docs)]


def _arrow_records(docs: list[dict[str, Any]]) -> list[Record]:
    """Batches of CHUNK events, each at the offset of its last event's JSON record (offsets
    may have gaps), so the consumed offsets equal the JSON run's."""
    records = []
    for start in range(0, len(docs), CHUNK):
        chunk = docs[start : start + CHUNK]
        offset = start + len(chunk) - 1
        records.append(Record(EVENTS, 0, offset, None, encode_arrow_events(chunk)))
    return records


def _price_records(prices: list[dict[str, Any]]) -> list[Record]:
    return [Record(PRICES, 0, k, None, messages.encode(d)) for k, d in enumerate(prices)]


def test_arrow_and_json_give_the_same_outputs_and_snapshot(tmp_path: Path) -> None:
    docs, prices = scenario()
    json_events = _json_records(docs)
    arrow_events = _arrow_records(docs)
    # the halves cut at a batch boundary in both
    cut = (len(arrow_events) // 2) * CHUNK
    (tmp_path / "json").mkdir()
    (tmp_path / "arrow").mkdir()
    want_out, want_snap = _run_cut(json_events, cut, prices, tmp_path / "json")
    got_out, got_snap = _run_cut(arrow_events, len(arrow_events) // 2, prices, tmp_path / "arrow")
    assert any(json.loads(o.value).get("kind") == "liquidation" for o in want_out)
    assert got_out == want_out
    assert got_snap == want_snap


def _run_cut(
    events: list[Record], cut: int, prices: list[dict[str, Any]], tmp: Path
) -> tuple[list[Output], bytes]:
    service = memory_service(Profile.shipped())
    price_records = _price_records(prices)
    outputs = service.tick(events[:cut])
    outputs += service.tick(events[cut:] + price_records[:10])
    for k in range(10, len(price_records), 5):
        outputs += service.tick(price_records[k : k + 5])
    service.book.compact(canonical=True)
    path = write_snapshot(service.book, tmp / "snap.arrow", service.extra())
    return outputs, path.read_bytes()


def _dead(outputs: list[Output]) -> list[dict[str, Any]]:
    return [json.loads(o.value) for o in outputs if o.topic == TOPICS.dead_letter]


def _hostile() -> list[dict[str, Any]]:
    return [
        messages.deposit_doc(1, TS0, 1, "1000"),
        messages.deposit_doc(2, TS0, 1, "-3"),  # invalid_amount
        messages.deposit_doc(2, TS0, 2, "1000"),
        messages.deposit_doc(2, TS0, 3, "1000"),  # duplicate_event_id
        messages.deposit_doc(4, TS0, Profile.shipped().fund_account_id, "5"),  # reserved
        messages.fill_doc(5, TS0, "NOPE", "1", "1", 1, 2),  # unknown_symbol
        messages.fill_doc(6, TS0, "BTCUSDT", "100000.05", "0.001", 1, 2),  # off_grid
        messages.withdraw_doc(7, TS0, 99, "1"),  # unknown_account
        messages.leverage_doc(8, TS0, 1, "BTCUSDT", 0),  # invalid_leverage
        messages.fill_doc(9, TS0, "BTCUSDT", "100000", "0.001", 1, 2),
    ]


def _service() -> Service:
    return memory_service(Profile.shipped())


def test_rows_are_refused_alone_with_the_json_reasons() -> None:
    docs = _hostile()
    want = _dead(_service().tick(_json_records(docs)))
    got = _dead(_service().tick([Record(EVENTS, 0, 50, None, encode_arrow_events(docs))]))
    assert [(d["reason"], d["detail"]) for d in got] == [(d["reason"], d["detail"]) for d in want]
    assert [d["reason"] for d in got] == [
        "invalid_amount",
        "duplicate_event_id",
        "reserved_account",
        "unknown_symbol",
        "off_grid",
        "unknown_account",
        "invalid_leverage",
    ]
    assert [d["row"] for d in got] == [1, 3, 4, 5, 6, 7, 8]
    assert {d["offset"] for d in got} == {50}
    assert all("row" not in d for d in want)
    # the dead letter's bytes are the refused event alone, as JSON
    assert json.loads(base64.b64decode(got[0]["value"]))["event_id"] == 2


def test_an_unreadable_batch_is_one_dead_letter_and_changes_nothing() -> None:
    service = _service()
    before = service.book.balance.copy()
    value = encode_arrow_events(_hostile())
    outputs = service.tick(
        [
            Record(EVENTS, 0, 0, None, value[:-40]),  # truncated
            Record(EVENTS, 0, 1, None, b"\xff\xff\xff\xffnot arrow"),
        ]
    )
    dead = _dead(outputs)
    assert [d["reason"] for d in dead] == ["invalid_input", "invalid_input"]
    assert all("row" not in d for d in dead)
    assert (service.book.balance == before).all()
    assert service.state.offsets[f"{EVENTS}:0"] == 2


def test_schema_columns_types_and_decimal128() -> None:
    docs = [messages.deposit_doc(1, TS0, 1, "1000.5"), messages.deposit_doc(2, TS0, 2, "7")]
    table = pa.table(
        {
            "type": ["deposit", "deposit"],
            "event_id": [1, 2],
            "ts": [TS0, TS0],
            "account": [1, 2],
            "amount": pa.array([Decimal("1000.5"), Decimal("7")], pa.decimal128(20, 8)),
        }
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    service = _service()
    outputs = service.tick([Record(EVENTS, 0, 1, None, sink.getvalue().to_pybytes())])
    assert _dead(outputs) == []
    ref = _service()
    ref.tick(_json_records(docs))
    assert service.book.balance.tolist() == ref.book.balance.tolist()
    # a float column is not a decimal: the whole batch is refused
    bad = pa.table({"type": ["deposit"], "amount": pa.array([1.5], pa.float64())})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, bad.schema) as writer:
        writer.write_table(bad)
    dead = _dead(_service().tick([Record(EVENTS, 0, 0, None, sink.getvalue().to_pybytes())]))
    assert [d["reason"] for d in dead] == ["invalid_input"]
    assert ACCOUNT_EVENTS_SCHEMA.names[:3] == ["type", "event_id", "ts"]


@pytest.mark.parametrize("batch", [False, True])
def test_per_event_path_reads_arrow_too(batch: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Service, "batch_account_events", batch)
    docs = _hostile()
    got = _dead(_service().tick([Record(EVENTS, 0, 50, None, encode_arrow_events(docs))]))
    assert len(got) == 7
