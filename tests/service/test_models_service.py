"""The risk models in the service: collateral prices in the price stream and collateral
events, FX stop-out, isolated positions with auto-add margin; the conservation audit (and the
collateral's asset audit) after every tick; bad records dead-lettered with named reasons."""

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
from engine.waterfall.models import Models
from engine.waterfall.profile import Profile
from tests.service.scenario import TOPICS, run_audited, streams_of

DATA = Path(__file__).resolve().parents[2] / "engine" / "data"
TS0 = 1_700_000_000_000
USDT = 10**8


def _service(profile: Profile, instruments: str = "instruments.json", fund: int = 1_000) -> Service:
    table = InstrumentTable.load(DATA / instruments)
    book = Book(table, warning_rate=profile.warning_rate, default_leverage=100)
    open_fund(book, profile, fund * 10**table.money_decimals)
    return Service(book, profile, ServiceConfig(band_rate=0, fill_checks=False))


def _run(
    service: Service, events: list[dict[str, Any]], prices: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    sink = MemorySink()
    original = service.tick

    def tick(records: list[Any]) -> list[Any]:
        outputs = original(records)
        service.models.audit()  # the asset ledger, after every tick (the money audit: run_audited)
        return outputs

    service.tick = tick  # type: ignore[method-assign]
    streams = streams_of(events, prices)
    run_audited(service, StreamSource(streams, batch_records=4), sink)
    return sink.docs()


def test_collateral_price_crash_liquidates_in_the_service() -> None:
    # As tests/collateral: 0.2 BTC collateral (haircut 5%), short 10 ETH at 3,000, ETH at
    # 3,500: equity 11,400 - 5,000 = 6,400 at BTC 60,000; BTC at 27,000: 5,130 - 5,000 = 130
    # <= MM 175: the collateral is sold for 5,130 and the account taken over.
    profile = Profile.shipped("multi-assets")
    service = _service(profile)
    events = [
        messages.collateral_doc(1, TS0, 1, "BTC", "0.2"),
        messages.deposit_doc(2, TS0, 2, "100000"),
        messages.fill_doc(3, TS0, "ETHUSDT", "3000", "10", 2, 1),
    ]
    prices = [
        messages.price_doc("BTC", TS0 + 1, 1, mark_price="60000"),
        messages.price_doc("ETHUSDT", TS0 + 1, 1, mark_price="3500"),
        messages.price_doc("BTCUSDT", TS0 + 1, 1, mark_price="60000"),
        messages.price_doc("SOLUSDT", TS0 + 1, 1, mark_price="150"),
        messages.price_doc("DOGEUSDT", TS0 + 1, 1, mark_price="0.15"),
        messages.price_doc("BTC", TS0 + 2, 2, mark_price="27000"),
    ]
    docs = _run(service, events, prices)
    kinds = [(d["kind"], d.get("account")) for d in docs if d["kind"] not in ("fund",)]
    assert ("collateral_sale", 1) in kinds and ("liquidation", 1) in kinds
    sale = next(d for d in docs if d["kind"] == "collateral_sale")
    assert sale["amount_units"] == 5_130 * USDT
    assert service.models.collateral is not None
    assert service.models.collateral.holdings_of(1) == {}
    assert not service.book.positions_of(1)


def test_collateral_records_are_validated() -> None:
    profile = Profile.shipped("multi-assets")
    service = _service(profile)
    events = [
        messages.collateral_doc(1, TS0, 1, "DOGE", "1"),  # unknown_asset
        messages.collateral_doc(2, TS0, 1, "BTC", "0.000000001"),  # off the qty step
        messages.collateral_doc(3, TS0, 1, "BTC", "1"),
        messages.collateral_doc(4, TS0, 1, "BTC", "2", withdraw=True),  # holds 1
        messages.collateral_doc(5, TS0, 1, "BTC", "0.5", withdraw=True),
    ]
    prices = [
        messages.price_doc("BTC", TS0 + 1, 5, mark_price="60000"),
        messages.price_doc("BTC", TS0 + 2, 4, mark_price="61000"),  # stale_sequence
        messages.price_doc("BTC", TS0 + 3, 6, mark_price="60000.001"),  # off_grid
    ]
    docs = _run(service, events, prices)
    reasons = [d["reason"] for d in docs if d["kind"] == "rejected"]
    assert reasons == [
        "unknown_asset",
        "invalid_qty",
        "insufficient_collateral",
        "stale_sequence",
        "off_grid",
    ]
    assert service.models.collateral is not None
    assert service.models.collateral.holdings_of(1) == {"BTC": 50_000_000}
    assert service.book.account_equity(1) == 28_500 * USDT  # 0.5 x 60,000 x 0.95


def test_fx_stop_out_in_the_service() -> None:
    # 0.25 lots EURUSD at 1.20000 with 900 USD (level 300% at 1.2); at 1.16633 the level is
    # 58.25 / 291.59 <= 20%: the position is closed at the mark, the account keeps 58.25.
    profile = Profile.shipped("fx-broker")
    service = _service(profile, "fx/instruments.json")
    events = [
        messages.deposit_doc(1, TS0, 1, "900"),
        messages.deposit_doc(2, TS0, 2, "100000"),
        messages.fill_doc(3, TS0, "EURUSD", "1.2", "0.25", 1, 2),
    ]
    prices = [
        messages.price_doc("EURUSD", TS0 + 1, 1, mark_price="1.2"),
        messages.price_doc("GBPUSD", TS0 + 1, 1, mark_price="1.27"),
        messages.price_doc("XAUUSD", TS0 + 1, 1, mark_price="2300"),
        messages.price_doc("EURUSD", TS0 + 2, 2, mark_price="1.17"),  # level 51%: margin call
        messages.price_doc("EURUSD", TS0 + 3, 3, mark_price="1.16633"),
    ]
    docs = _run(service, events, prices)
    kinds = [(d["kind"], d.get("account")) for d in docs if d["kind"] != "fund"]
    assert ("margin_call", 1) in kinds
    assert [k for k in kinds if k[0] == "liquidation"] == [("liquidation", 1)]
    assert service.book.balance[service.book.row_of(1)] == 5825
    assert audit(service.book, closed=True).ok


def test_isolated_auto_add_in_the_service() -> None:
    # Owner 1 has 5,000 USDT; its isolated BTCUSDT position (sub-account 2^61) holds 10,000
    # USDT and 0.6 BTC long at 50,000 at 3x. At 33,400: equity 40 <= MM 80.16 (tier 0.4%):
    # 5,000 moves in from the owner (margin_top_up) and nothing is liquidated.
    profile = Profile.shipped("isolated-auto-add")
    service = _service(profile)
    registry = service.models.isolated
    assert registry is not None
    sub = registry.open(1, "BTCUSDT")
    service.book.set_leverage(sub, "BTCUSDT", 3)
    events = [
        messages.deposit_doc(1, TS0, 1, "5000"),
        messages.deposit_doc(2, TS0, sub, "10000"),
        messages.deposit_doc(3, TS0, 3, "1000000"),
        messages.fill_doc(4, TS0, "BTCUSDT", "50000", "0.6", sub, 3),
    ]
    prices = [
        messages.price_doc("BTCUSDT", TS0 + 1, 1, mark_price="50000"),
        messages.price_doc("ETHUSDT", TS0 + 1, 1, mark_price="3000"),
        messages.price_doc("SOLUSDT", TS0 + 1, 1, mark_price="150"),
        messages.price_doc("DOGEUSDT", TS0 + 1, 1, mark_price="0.15"),
        messages.price_doc("BTCUSDT", TS0 + 2, 2, mark_price="33400"),
    ]
    docs = _run(service, events, prices)
    top_ups = [(d["account"], d["amount_units"]) for d in docs if d["kind"] == "margin_top_up"]
    assert top_ups == [(sub, 5_000 * USDT)]
    assert not [d for d in docs if d["kind"] == "liquidation"]
    assert isinstance(service.models, Models)
    assert service.book.account_margin(sub)[0] == 5_040 * USDT
    assert TOPICS.liquidations
