"""Isolated positions opened and funded from the stream (engine.service.isolated_events):
the `isolated_margin` event and fills with `buyer_isolated` / `seller_isolated`, through the
service's tick with the shipped isolated-auto-add profile and no code building the registry;
the conservation audit after every tick; refusals named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.service import messages
from engine.service.files_adapter import MemorySink, StreamSource
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.waterfall.conservation import audit
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile
from tests.service.scenario import run_audited, streams_of

DATA = Path(__file__).resolve().parents[2] / "engine" / "data"
TS0 = 1_700_000_000_000
USDT = 10**8


def _service(profile_name: str = "isolated-auto-add") -> Service:
    profile = Profile.shipped(profile_name)
    table = InstrumentTable.load(DATA / "instruments.json")
    book = Book(table, warning_rate=profile.warning_rate, default_leverage=100)
    open_fund(book, profile, 1_000 * 10**table.money_decimals)
    return Service(book, profile, ServiceConfig(band_rate=0))


def _run(service: Service, events: list[dict[str, Any]], prices: list[dict[str, Any]]) -> list:
    sink = MemorySink()
    run_audited(service, StreamSource(streams_of(events, prices), batch_records=4), sink)
    return sink.docs()


def isolated_margin_doc(
    event_id: int, ts: int, account: int, symbol: str, amount: str, leverage: int | None = None
) -> dict[str, Any]:
    doc = {
        "v": 1,
        "type": "isolated_margin",
        "event_id": event_id,
        "ts": ts,
        "account": account,
        "symbol": symbol,
        "amount": amount,
    }
    if leverage is not None:
        doc["leverage"] = leverage
    return doc


def _opening_prices() -> list[dict[str, Any]]:
    return [
        messages.price_doc(symbol, TS0, 1, mark_price=price)
        for symbol, price in (
            ("BTCUSDT", "50000"),
            ("ETHUSDT", "3000"),
            ("SOLUSDT", "150"),
            ("DOGEUSDT", "0.15"),
        )
    ]


def test_an_isolated_position_opened_from_the_stream_is_topped_up() -> None:
    # Owner 1 deposits 15,000 USDT and moves 10,000 into an isolated BTCUSDT position at 3x
    # (its sub-account opens on this first use: the profile's base, 2^61); the isolated
    # side buys 0.6 BTC at 50,000 (IM 30,000 / 3 = 10,000: exactly covered). At 33,400:
    # equity 10,000 - 0.6 x 16,600 = 40 <= MM 80.16 (0.4% of 20,040): the owner's free
    # 5,000 moves in (margin_top_up) and nothing is liquidated.
    service = _service()
    sub = 2**61
    events = [
        messages.deposit_doc(1, TS0 + 1, 1, "15000"),
        messages.deposit_doc(2, TS0 + 1, 3, "1000000"),
        isolated_margin_doc(3, TS0 + 1, 1, "BTCUSDT", "10000", leverage=3),
        messages.fill_doc(4, TS0 + 1, "BTCUSDT", "50000", "0.6", 1, 3) | {"buyer_isolated": True},
    ]
    prices = _opening_prices() + [messages.price_doc("BTCUSDT", TS0 + 2, 2, mark_price="33400")]
    docs = _run(service, events, prices)
    assert [d for d in docs if d.get("kind") == "rejected"] == []
    registry = service.models.isolated
    assert registry is not None and registry.sub_account(1, "BTCUSDT") == sub
    book = service.book
    assert book.position(sub, "BTCUSDT")[0] == 600  # 0.6 BTC in lots of 0.001
    assert book.position(1, "BTCUSDT")[0] == 0  # the owner's cross book holds nothing
    top_ups = [(d["account"], d["amount_units"]) for d in docs if d["kind"] == "margin_top_up"]
    assert top_ups == [(sub, 5_000 * USDT)]
    assert not [d for d in docs if d["kind"] == "liquidation"]
    assert book.account_margin(sub)[0] == 5_040 * USDT
    assert book.balance[book.row_of(1)] == 0
    assert audit(book, closed=True).ok


def test_margin_moves_out_of_an_isolated_position_within_its_free_balance() -> None:
    service = _service()
    sub = 2**61
    events = [
        messages.deposit_doc(1, TS0 + 1, 1, "15000"),
        messages.deposit_doc(2, TS0 + 1, 3, "1000000"),
        isolated_margin_doc(3, TS0 + 1, 1, "BTCUSDT", "12000", leverage=3),
        messages.fill_doc(4, TS0 + 1, "BTCUSDT", "50000", "0.6", 1, 3) | {"buyer_isolated": True},
        # IM 10,000 of 12,000: 2,000 is free; 2,000.01 is not.
        isolated_margin_doc(5, TS0 + 1, 1, "BTCUSDT", "-2000.01"),
        isolated_margin_doc(6, TS0 + 1, 1, "BTCUSDT", "-2000"),
    ]
    docs = _run(service, events, _opening_prices())
    rejected = [d["reason"] for d in docs if d.get("kind") == "rejected"]
    assert rejected == ["insufficient_margin"]
    book = service.book
    assert book.balance[book.row_of(sub)] == 10_000 * USDT
    assert book.balance[book.row_of(1)] == 5_000 * USDT
    assert audit(book, closed=True).ok


def test_isolated_events_are_refused_by_name() -> None:
    service = _service()
    events = [
        messages.deposit_doc(1, TS0 + 1, 1, "100"),
        isolated_margin_doc(2, TS0 + 1, 1, "BTCUSDT", "100.01"),  # more than it has
        isolated_margin_doc(3, TS0 + 1, 1, "BTCUSDT", "-1"),  # never opened
        isolated_margin_doc(4, TS0 + 1, 1, "NOPE", "1"),
        isolated_margin_doc(5, TS0 + 1, 1, "BTCUSDT", "0"),
        isolated_margin_doc(6, TS0 + 1, 2**61 + 5, "BTCUSDT", "1"),  # not an owner id
        messages.fill_doc(7, TS0 + 1, "BTCUSDT", "50000", "0.01", 1, 3) | {"buyer_isolated": True},
        messages.fill_doc(8, TS0 + 1, "BTCUSDT", "50000", "0.01", 1, 3) | {"buyer_isolated": 1},
    ]
    docs = _run(service, events, _opening_prices())
    rejected = [d["reason"] for d in docs if d.get("kind") == "rejected"]
    assert rejected == [
        "insufficient_margin",
        "not_isolated",
        "unknown_symbol",
        "invalid_amount",
        "invalid_account",
        "not_isolated",
        "invalid_field",
    ]
    assert service.models.isolated is not None and len(service.models.isolated) == 0
    assert service.book.balance[service.book.row_of(1)] == 100 * USDT


def test_without_an_isolated_section_the_events_are_refused() -> None:
    service = _service("binance-like")
    events = [
        messages.deposit_doc(1, TS0 + 1, 1, "100"),
        isolated_margin_doc(2, TS0 + 1, 1, "BTCUSDT", "10"),
        messages.fill_doc(3, TS0 + 1, "BTCUSDT", "50000", "0.01", 1, 3) | {"seller_isolated": True},
    ]
    docs = _run(service, events, _opening_prices())
    rejected = [d["reason"] for d in docs if d.get("kind") == "rejected"]
    assert rejected == ["not_isolated", "not_isolated"]
