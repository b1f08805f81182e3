"""Output documents (engine.service.outputs): the head and ids of a tick's outputs, the
topic of each waterfall event kind, and a dead letter's fields."""

from __future__ import annotations

import base64
import json

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.service.outputs import (
    ADL_KINDS,
    INSURANCE_KINDS,
    LIQUIDATION_KINDS,
    TickOutputs,
    margin_call_doc,
    rejected_doc,
    topic_of_event,
)
from engine.service.ports import Output, Record, Topics


def test_outputs_are_numbered_in_publication_order() -> None:
    out = TickOutputs("a", 7)
    out.add("liquidations", b"1", {"kind": "liquidation", "account": 1})
    out.add("insurance", b"9", {"kind": "fund", "account": 9})
    out.add("liquidations", b"2", {"kind": "liquidation", "account": 2})
    assert out.counts == {"liquidations": 2, "insurance": 1}
    records = out.finish(1_760_140_800_000)
    assert [r.topic for r in records] == ["liquidations", "insurance", "liquidations"]
    assert records[0] == Output(
        "liquidations",
        b"1",
        b'{"v":1,"id":"a-7-0","tick":7,"ts":1760140800000,"kind":"liquidation","account":1}',
    )
    assert [json.loads(r.value)["id"] for r in records] == ["a-7-0", "a-7-1", "a-7-2"]


def test_every_waterfall_kind_has_one_topic() -> None:
    topics = Topics.with_prefix("x-")
    assert not set(LIQUIDATION_KINDS) & set(ADL_KINDS)
    assert not set(ADL_KINDS) & set(INSURANCE_KINDS)
    assert {topic_of_event(topics, k) for k in LIQUIDATION_KINDS} == {"x-liquidations"}
    assert {topic_of_event(topics, k) for k in ADL_KINDS} == {"x-adl"}
    assert {topic_of_event(topics, k) for k in INSURANCE_KINDS} == {"x-insurance"}


def test_dead_letter_and_margin_call_documents() -> None:
    record = Record("prices", 2, 41, None, b'{"v":1}')
    doc = rejected_doc(record, Rejected(RejectReason.MISSING_FIELD, "no symbol"))
    assert doc["reason"] == "missing_field" and doc["detail"] == "no symbol"
    assert (doc["topic"], doc["partition"], doc["offset"], doc["key"]) == ("prices", 2, 41, None)
    assert base64.b64decode(doc["value"]) == record.value
    # 150 USDT equity against 120 USDT maintenance at 8 money decimals.
    call = margin_call_doc(5, 150 * 10**8, 120 * 10**8, 8)
    assert call["equity"] == "150.00000000" and call["maintenance_margin_units"] == 12 * 10**9
