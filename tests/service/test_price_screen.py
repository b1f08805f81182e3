"""The instrument prices' band rule on the other prices a service reads
(engine.service.price_screen and Service._collateral_price): collateral assets' prices in a
multi-asset futures profile and the assets' prices of an asset-liability book. A first price
is held until `band_confirm` (3) prices agree; a move beyond `band_rate` (10%) of the tick's
opening price is held until 3 prices confirm it in as many ticks."""

from __future__ import annotations

from pathlib import Path

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.service import messages
from engine.service.ports import Record
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile
from tests.margin.test_service import Stream

DATA = Path(__file__).resolve().parents[2] / "engine" / "data"
TS0 = 1_700_000_000_000


def test_asset_prices_are_banded_like_instrument_prices() -> None:
    s = Stream(ServiceConfig())  # the default band: 10%, 3 confirmations
    stock = s.service.book.assets.index["SH600000"]
    # A first price is held until three agree (within one tick is enough).
    assert s.tick(s.price("SH600000", 1, "10.00")) == []
    assert not s.service.book.price_set[stock] and s.service.last_stats.prices_held == 1
    s.tick(s.price("SH600000", 2, "10.00"), s.price("SH600000", 3, "10.01"))
    assert s.service.book.price[stock] == 1001
    s.tick(
        s.event("asset_deposit", 1, "SH600000", "2000"),
        s.event("borrow", 1, "CNY", "10000"),
        s.event("asset_withdraw", 1, "CNY", "10000"),
    )
    # 6.49 (-35%): held; a second in the same tick counts once; called only on the third
    # tick that confirms it.
    assert s.tick(s.price("SH600000", 4, "6.49"), s.price("SH600000", 5, "6.49")) == []
    assert s.service.book.price[stock] == 1001
    assert s.tick(s.price("SH600000", 6, "6.49")) == []
    out = s.tick(s.price("SH600000", 7, "6.49"))
    assert [d["kind"] for _, d in out] == ["margin_call"]
    assert s.service.book.price[stock] == 649
    # Within the band: taken at once; a stale seq is refused.
    s.tick(s.price("SH600000", 8, "6.00"))
    assert s.service.book.price[stock] == 600
    out = s.tick(s.price("SH600000", 8, "6.01"))
    assert [d["reason"] for _, d in out] == ["stale_sequence"]


def _record(offset: int, doc: dict) -> Record:
    return Record("prices", 0, offset, doc["symbol"].encode(), messages.encode(doc))


def test_collateral_prices_are_banded_like_instrument_prices() -> None:
    profile = Profile.shipped("multi-assets")
    table = InstrumentTable.load(DATA / "instruments.json")
    book = Book(table, warning_rate=profile.warning_rate, default_leverage=100)
    open_fund(book, profile, 1_000 * 10**table.money_decimals)
    service = Service(book, profile, ServiceConfig(fill_checks=False))
    collateral = service.models.collateral
    assert collateral is not None
    btc = collateral.asset("BTC")
    offset = 0

    def tick(*prices: tuple[int, str]) -> None:
        nonlocal offset
        records = []
        for seq, price in prices:
            offset += 1
            doc = messages.price_doc("BTC", TS0 + offset, seq, mark_price=price)
            records.append(_record(offset, doc))
        service.tick(records)

    tick((1, "60000"), (2, "60000"))
    assert collateral.price[btc] is None  # two first prices: not yet
    tick((3, "60100"))
    assert collateral.price[btc] == 6_010_000
    tick((4, "27000"), (5, "27000"))  # -55%: held, counted once in this tick
    tick((6, "27000"))
    assert collateral.price[btc] == 6_010_000
    tick((7, "27000"))
    assert collateral.price[btc] == 2_700_000
    tick((8, "28000"))  # within 10% of 27,000
    assert collateral.price[btc] == 2_800_000
    assert service.state.held == {}
