"""The futures exchange conventions in the service: parameter messages on the prices
topic, account classes as account events, margin calls with deadlines, clamped marks,
forced reduction; the conservation audit after every tick; a snapshot carries the state."""

from __future__ import annotations

import json

from engine.service import messages
from engine.service.ports import Record
from engine.service.state import ServiceConfig, ServiceState
from engine.service.tick import Service
from engine.waterfall.conservation import audit
from engine.waterfall.profile import Profile
from tests.exchange.example import example_book

DAY_MS = 86_400_000
T0 = 1_586_822_400_000
CRUDE_13000 = [{"margin_per_contract": {"maintenance": "13000", "initial": "14300"}}]


class Feed:
    """Records for one service, offsets counted per topic."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.offsets: dict[str, int] = {}

    def tick(self, *items: tuple[str, dict, bytes]) -> list[dict]:
        records = []
        for topic, doc, key in items:
            offset = self.offsets.get(topic, 0)
            self.offsets[topic] = offset + 1
            records.append(Record(topic, 0, offset, key, messages.encode(doc)))
        outputs = self.service.tick(records)
        audit(self.service.book, closed=True)
        return [json.loads(o.value) | {"topic": o.topic} for o in outputs]


def price(symbol: str, ts: int, seq: int, mark: str) -> tuple[str, dict, bytes]:
    return ("prices", messages.price_doc(symbol, ts, seq, mark_price=mark), symbol.encode())


def parameter(doc: dict) -> tuple[str, dict, bytes]:
    return ("prices", doc, doc["symbol"].encode())


def service_of(profile: Profile) -> Service:
    book, _ = example_book(profile)
    return Service(book, profile, ServiceConfig(band_rate=0))


def kinds(outputs: list[dict], kind: str) -> list[dict]:
    return [o for o in outputs if o["kind"] == kind]


def test_margin_change_message_calls_holds_then_liquidates_after_the_deadline() -> None:
    profile = Profile.shipped("cme-like")
    service = service_of(profile)
    feed = Feed(service)
    out = feed.tick(parameter(messages.margin_change_doc("CLZ0", T0, CRUDE_13000)))
    # 2001: long 10, equity 100,000 against 10 x 13,000 = 130,000: called, due a day later.
    (call,) = [o for o in kinds(out, "margin_call") if "deadline_ts" in o]
    assert call["account"] == 2001 and call["reason"] == "margin_change"
    assert call["deadline_ts"] == T0 + DAY_MS
    assert call["call_amount"] == "43000.00" and call["shortfall_units"] == 3_000_000 + 1
    liquidated = {o["account"] for o in kinds(out, "liquidation") if o["symbol"] == "CLZ0"}
    assert liquidated == {2003}  # short before the change: no call
    assert service.book.position(2001, "CLZ0")[0] == 10
    # The state rides in the snapshot's extra and comes back.
    extra = service.extra()["service"]
    assert extra["exchange"]["margin_calls"] == {"2001": T0 + DAY_MS}
    restored = ServiceState.from_extra(extra)
    assert Service(service.book, profile, service.config, restored).exchange.pending.deadlines == {
        2001: T0 + DAY_MS
    }
    # Before the deadline a price keeps it held; at the deadline it lapses.
    out = feed.tick(price("CLZ0", T0 + DAY_MS - 1, 1, "40.00"))
    assert kinds(out, "margin_call_lapsed") == [] and service.book.position(2001, "CLZ0")[0] == 10
    out = feed.tick(price("CLZ0", T0 + DAY_MS, 2, "40.00"))
    assert [o["account"] for o in kinds(out, "margin_call_lapsed")] == [2001]
    assert service.book.position(2001, "CLZ0")[0] == 0


def test_a_deposit_meets_the_call() -> None:
    service = service_of(Profile.shipped("cme-like"))
    feed = Feed(service)
    feed.tick(parameter(messages.margin_change_doc("CLZ0", T0, CRUDE_13000)))
    deposit = messages.deposit_doc(1, T0 + 5, 2001, "30000.01")
    out = feed.tick(("account-events", deposit, b"2001"))
    assert [o["account"] for o in kinds(out, "margin_call_met")] == [2001]
    assert len(service.exchange.pending) == 0


def test_limit_up_clamps_the_mark_and_reduces_proprietary_first() -> None:
    service = service_of(Profile.shipped("cffex-like"))
    feed = Feed(service)
    classes = messages.account_class_doc(1, T0, 3001, "proprietary")
    out = feed.tick(
        ("account-events", classes, b"3001"),
        parameter(messages.settlement_price_doc("CU2012", T0, "68000")),
        price("CU2012", T0 + 1, 1, "72000"),
    )
    assert kinds(out, "rejected") == []
    assert service.exchange.classes.to_list() == [3001]
    assert int(service.book.mark[1]) == 7_140  # 72,000 clamped to 71,400
    sides = {(o["account"], o["role"], o["qty"]) for o in kinds(out, "forced_reduction")}
    assert sides == {
        (3001, "reducer", "-2"),
        (3003, "counterparty", "1"),
        (3004, "counterparty", "1"),
    }
    assert service.extra()["service"]["exchange"]["previous_settlement"] == {"CU2012": 6_800}


def test_bad_parameter_messages_are_dead_lettered_with_their_reason() -> None:
    service = service_of(Profile.shipped("cffex-like"))
    feed = Feed(service)
    bad_tiers = [{"margin_per_contract": {"maintenance": "2", "initial": "1"}}]
    out = feed.tick(
        parameter({"v": 1, "type": "halt", "symbol": "CU2012", "ts": 1}),
        parameter(messages.settlement_price_doc("CLZ0", 1, "40.00")),
        parameter(messages.margin_change_doc("CLZ0", 1, bad_tiers)),
        ("account-events", messages.account_class_doc(1, 1, 3001, "member"), b"3001"),
    )
    reasons = [o["reason"] for o in kinds(out, "rejected")]
    assert reasons == [
        "invalid_account_class",
        "unknown_type",
        "no_price_limit",
        "invalid_margin_change",
    ]


def test_a_snapshot_carries_the_new_margin_and_the_open_calls(tmp_path) -> None:
    from engine.io.snapshot import read_snapshot, write_snapshot

    profile = Profile.shipped("cme-like")
    service = service_of(profile)
    feed = Feed(service)
    feed.tick(parameter(messages.margin_change_doc("CLZ0", T0, CRUDE_13000)))
    path = write_snapshot(service.book, tmp_path / "s.arrow", service.extra())
    book, extra = read_snapshot(path)
    assert book.instruments.tier_mm_per_contract.tolist() == [1_300_000, 0]
    restored = Service(book, profile, service.config, ServiceState.from_extra(extra["service"]))
    assert restored.exchange.pending.deadlines == {2001: T0 + DAY_MS}
    # The restored service goes on as the original: the call lapses at the deadline.
    for svc in (service, restored):
        resumed = Feed(svc)
        resumed.offsets = dict(feed.offsets)
        out = resumed.tick(price("CLZ0", T0 + DAY_MS, 1, "40.00"))
        assert [o["account"] for o in kinds(out, "margin_call_lapsed")] == [2001]
