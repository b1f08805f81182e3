"""The risk models' state in service snapshots (engine.service.model_state): a service
stopped mid-stream and restored from its snapshot ends in the same state, byte for byte, as
one that ran through -- collateral holdings and prices, and the isolated sub-account
registry (without it a restored service would no longer top up an isolated position)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.service import messages
from engine.service.driver import run
from engine.service.files_adapter import MemorySink, StreamSource
from engine.service.snapshots import Snapshotter, restore
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.waterfall.conservation import audit
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile
from tests.service.scenario import streams_of

DATA = Path(__file__).resolve().parents[2] / "engine" / "data"
TS0 = 1_700_000_000_000
USDT = 10**8
CONFIG = ServiceConfig(band_rate=0, fill_checks=False)
OTHER_MARKS = ("ETHUSDT", "3000"), ("SOLUSDT", "150"), ("DOGEUSDT", "0.15")


def _service(profile: Profile) -> Service:
    table = InstrumentTable.load(DATA / "instruments.json")
    book = Book(table, warning_rate=profile.warning_rate, default_leverage=100)
    open_fund(book, profile, 1_000 * 10**table.money_decimals)
    return Service(book, profile, CONFIG)


def _audited(service: Service) -> Service:
    original = service.tick

    def tick(records: list[Any]) -> list[Any]:
        outputs = original(records)
        assert audit(service.book).ok
        service.models.audit()
        return outputs

    service.tick = tick  # type: ignore[method-assign]
    return service


def _source(events: list[dict[str, Any]], prices: list[dict[str, Any]]) -> StreamSource:
    return StreamSource(streams_of(events, prices), batch_records=2)


def _through_and_restarted(
    tmp_path: Path,
    profile: Profile,
    make: Any,
    events: list[dict[str, Any]],
    prices: list[dict[str, Any]],
    stop_after: int,
) -> tuple[bytes, bytes, list[bytes], list[bytes], Service]:
    """(final snapshot straight through, after a restart; outputs of each; restored service)."""
    through_sink, restarted_sink = MemorySink(), MemorySink()
    through = _audited(make())
    run(through, _source(events, prices), through_sink, snapshots=Snapshotter(tmp_path / "a"))
    first = _audited(make())
    snapshots = Snapshotter(tmp_path / "b")
    run(first, _source(events, prices), restarted_sink, snapshots=snapshots, max_ticks=stop_after)
    assert first.state.tick == stop_after
    restored, recovery = restore(tmp_path / "b", profile, CONFIG)
    assert restored is not None and recovery.path == snapshots.written[-1]
    assert restored.state.tick == stop_after
    source = _source(events, prices)
    source.seek(restored.state.offsets)
    snapshots = Snapshotter(tmp_path / "b")
    run(_audited(restored), source, restarted_sink, snapshots=snapshots)
    final = sorted((tmp_path / "a").glob("*.arrow"))[-1]
    assert final.name == snapshots.written[-1].name
    return (
        final.read_bytes(),
        snapshots.written[-1].read_bytes(),
        [o for _, _, o in through_sink.records],
        [o for _, _, o in restarted_sink.records],
        restored,
    )


def test_collateral_survives_a_restart(tmp_path: Path) -> None:
    # 0.2 BTC (haircut 5%) backs a short of 10 ETH; the restart falls between the deposit
    # and the crash, so the restored service must know the holding and BTC's price to sell
    # the collateral for 5,130 and take the account over, as the uninterrupted one does.
    profile = Profile.shipped("multi-assets")
    events = [
        messages.collateral_doc(1, TS0, 1, "BTC", "0.2"),
        messages.deposit_doc(2, TS0, 2, "100000"),
        messages.fill_doc(3, TS0, "ETHUSDT", "3000", "10", 2, 1),
        messages.collateral_doc(4, TS0 + 3, 2, "USDC", "10"),
    ]
    prices = [
        messages.price_doc("BTC", TS0 + 1, 1, mark_price="60000"),
        messages.price_doc("ETHUSDT", TS0 + 1, 1, mark_price="3500"),
        messages.price_doc("BTCUSDT", TS0 + 1, 1, mark_price="60000"),
        *(messages.price_doc(s, TS0 + 1, 1, mark_price=p) for s, p in OTHER_MARKS),
        messages.price_doc("USDC", TS0 + 2, 1, mark_price="1"),
        messages.price_doc("BTC", TS0 + 4, 2, mark_price="27000"),
    ]
    a, b, out_a, out_b, restored = _through_and_restarted(
        tmp_path, profile, lambda: _service(profile), events, prices, stop_after=3
    )
    assert a == b and out_a == out_b
    assert any(b'"collateral_sale"' in o for o in out_b)
    collateral = restored.models.collateral
    assert collateral is not None
    assert collateral.holdings_of(1) == {} and collateral.holdings_of(2) == {"USDC": 10_000_000}


def test_isolated_registry_survives_a_restart(tmp_path: Path) -> None:
    # Owner 1's isolated BTCUSDT position (sub-account 2^61, 10,000 USDT, 0.6 BTC long at
    # 50,000, 3x); the restart comes before the fall to 33,400, where the restored service
    # must still know the sub-account's owner to move 5,000 in instead of liquidating.
    profile = Profile.shipped("isolated-auto-add")
    sub = 2**61

    def make() -> Service:
        service = _service(profile)
        assert service.models.isolated is not None
        assert service.models.isolated.open(1, "BTCUSDT") == sub
        service.book.set_leverage(sub, "BTCUSDT", 3)
        return service

    events = [
        messages.deposit_doc(1, TS0, 1, "5000"),
        messages.deposit_doc(2, TS0, sub, "10000"),
        messages.deposit_doc(3, TS0, 3, "1000000"),
        messages.fill_doc(4, TS0, "BTCUSDT", "50000", "0.6", sub, 3),
    ]
    prices = [
        messages.price_doc("BTCUSDT", TS0 + 1, 1, mark_price="50000"),
        *(messages.price_doc(s, TS0 + 1, 1, mark_price=p) for s, p in OTHER_MARKS),
        messages.price_doc("BTCUSDT", TS0 + 2, 2, mark_price="40000"),
        messages.price_doc("BTCUSDT", TS0 + 3, 3, mark_price="33400"),
    ]
    a, b, out_a, out_b, restored = _through_and_restarted(
        tmp_path, profile, make, events, prices, stop_after=3
    )
    assert a == b and out_a == out_b
    assert any(b'"margin_top_up"' in o for o in out_b)
    assert not any(b'"liquidation"' in o for o in out_b)
    assert restored.models.isolated is not None
    assert restored.models.isolated.by_sub[sub].owner == 1
    assert restored.book.account_margin(sub)[0] == 5_040 * USDT
