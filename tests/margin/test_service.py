"""The asset-liability service: asset events and prices in, margin calls and forced
sales out, every tick audited."""

from __future__ import annotations

import json

import pytest

from engine.margin.accounts import AssetBook
from engine.margin.audit import audit
from engine.margin.liquidation import open_fund
from engine.service import messages
from engine.service.asset_liability_tick import AssetLiabilityService
from engine.service.ports import Record
from engine.service.state import ServiceConfig
from engine.waterfall.profile import Profile
from tests.margin.test_worked_examples import SECURITIES


class Stream:
    def __init__(self, config: ServiceConfig | None = None) -> None:
        profile = Profile.shipped("securities-margin")
        book = AssetBook(SECURITIES)
        open_fund(book, profile, 100_000)  # 1,000 yuan
        # No band unless asked: the worked example's moves are beyond it.
        config = ServiceConfig(band_rate=0) if config is None else config
        self.service = AssetLiabilityService(book, profile, config)
        self.offset = 0
        self.event_id = 0

    def record(self, topic: str, key: str, doc: dict) -> Record:
        self.offset += 1
        return Record(topic, 0, self.offset, key.encode(), messages.encode(doc))

    def event(self, kind: str, account: int, asset: str, amount: str) -> Record:
        self.event_id += 1
        doc = messages.asset_event_doc(kind, self.event_id, 1000, account, asset, amount)
        return self.record("account-events", str(account), doc)

    def price(self, asset: str, seq: int, price: str) -> Record:
        return self.record("prices", asset, messages.asset_price_doc(asset, 1000, seq, price))

    def tick(self, *records: Record) -> list[tuple[str, dict]]:
        outputs = self.service.tick(records)
        audit(self.service.book)
        return [(o.topic, json.loads(o.value)) for o in outputs]


def test_the_financed_buyer_through_the_stream() -> None:
    s = Stream()
    # 2,000 shares worth 20,000 come in; 10,000 yuan borrowed against them and taken out:
    # the account holds 20,000 of stock and owes 10,000 (ratio 200%).
    # (A tick applies account events before prices: the price comes a tick earlier.)
    assert s.tick(s.price("SH600000", 1, "10.00")) == []
    out = s.tick(
        s.event("asset_deposit", 1, "SH600000", "2000"),
        s.event("borrow", 1, "CNY", "10000"),
        s.event("asset_withdraw", 1, "CNY", "10000"),
    )
    assert out == []
    assert s.service.book.owed[:, 1].tolist() == [1_000_000, 0]
    # 6.50: 13,000 / 10,000 = 130%, not below: nothing.
    assert s.tick(s.price("SH600000", 2, "6.50")) == []
    # 6.49: 12,980 / 10,000 = 129.8%: one margin call, once.
    out = s.tick(s.price("SH600000", 3, "6.49"))
    assert [(t, d["kind"], d["maintenance_ratio"]) for t, d in out] == [
        ("margin-calls", "margin_call", "1.2980")
    ]
    assert s.tick(s.price("SH600000", 4, "6.40")) == []  # still called: no second call
    # 5.49: 10,980 / 10,000 = 109.8% < 110%: forced sale of ceil(10,000 / 5.49) = 1,822
    # shares for 1,822 x 5.49 = 10,002.78; the debt is repaid.
    out = s.tick(s.price("SH600000", 5, "5.49"))
    kinds = [(t, d["kind"]) for t, d in out]
    assert kinds == [("liquidations", "liquidation"), ("insurance", "fund")]
    assert out[0][1]["qty"] == "-1822" and out[0][1]["amount"] == "10002.78"
    assert s.service.book.owed[:, 1].tolist() == [0, 0]
    assert s.service.book.held[:, 1].tolist() == [278, 178]


def test_bad_records_are_dead_lettered_and_change_nothing() -> None:
    s = Stream()
    s.tick(s.price("SH600000", 1, "10.00"), s.event("asset_deposit", 1, "CNY", "100"))
    held = s.service.book.held.copy()
    bad = [
        s.event("borrow", 1, "CNY", "1000"),  # 1,100 / 1,000 = 110% < 130%
        s.event("asset_deposit", 1, "CNY", "0.001"),  # off the 0.01 grid
        s.event("asset_deposit", 1, "XYZ", "1"),
        s.event("repay", 1, "CNY", "1"),  # owes nothing
        s.event("asset_withdraw", 1, "CNY", "101"),
        s.event("asset_deposit", 4611686018427387904, "CNY", "1"),
        s.record("account-events", "1", messages.asset_event_doc("repay", 1, 0, 1, "CNY", "1")),
        s.price("SH600000", 1, "11"),  # stale seq
        s.price("CNY", 9, "1"),  # the money asset has no price
        s.price("SH600000", 10, "1.001"),  # off the money grid
    ]
    out = s.tick(*bad)
    assert [d["reason"] for _, d in out] == [
        "insufficient_margin",
        "invalid_amount",
        "unknown_symbol",
        "invalid_amount",
        "insufficient_margin",
        "reserved_account",
        "duplicate_event_id",
        "stale_sequence",
        "invalid_price",
        "off_grid",
    ]
    assert (s.service.book.held == held).all()


def test_a_futures_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="not an asset-liability model"):
        AssetLiabilityService(AssetBook(SECURITIES), Profile.shipped())
