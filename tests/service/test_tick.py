"""One tick of the service (engine.service.tick) over memory streams: the batch waterfall as
the reference, the incremental sweep against the full one, a worked example, the band,
dedup and dead letters, fills split by partition.

Grid (engine/data/instruments.json): BTCUSDT tick 0.1, lot 0.001, money at 8 decimals, so
one lot moving one tick is 0.1 x 0.001 x 10^8 = 10_000 units and 1 USDT = 10^8 units.
"""

from __future__ import annotations

import base64
from decimal import Decimal

from engine.io.snapshot import book_batch
from engine.service import messages
from engine.service.driver import run
from engine.service.files_adapter import ListStream, MemorySink, StreamSource
from engine.service.ports import Record
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.waterfall.conservation import audit
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile
from tests.service.scenario import (
    TS0,
    USDT,
    batch_reference,
    memory_service,
    published_events,
    run_audited,
    scenario,
    streams_of,
)


def test_service_equals_batch_waterfall() -> None:
    profile = Profile.shipped()
    events, prices = scenario()
    k = 3  # price records per tick: conflation keeps the last of each symbol in a batch
    service = memory_service(profile)
    streams = streams_of(events, [])
    source = StreamSource(streams, batch_records=len(events), finite=False)
    sink = MemorySink()
    run_audited(service, source, sink, exit_when_idle=True)
    assert sink.docs("dead-letter") == []
    source.batch_records = k
    for doc in prices:
        streams[("prices", 0)].append(messages.encode(doc), doc["symbol"].encode())
    run_audited(service, source, sink, exit_when_idle=True)
    ref_book, expected = batch_reference(
        profile, events, [prices[i : i + k] for i in range(0, len(prices), k)]
    )
    got = published_events(sink.docs())
    assert len(expected) > 10, "the scenario must liquidate"
    assert {e[0] for e in expected} >= {"liquidation", "liquidation_fee", "adl"}
    assert got == expected
    assert book_batch(service.book).equals(book_batch(ref_book))
    # Output ids: shard-tick-n, unique.
    ids = [d["id"] for d in sink.docs()]
    assert len(set(ids)) == len(ids)


def test_incremental_equals_full_sweep_every_tick() -> None:
    profile = Profile.shipped()
    events, prices = scenario(n_pairs=60, n_prices=150, seed=9, drift=-0.0008, volatility=0.001)
    outputs = []
    books = []
    for incremental in (True, False):
        service = memory_service(
            profile, ServiceConfig(band_rate=0, incremental=incremental, fill_checks=False)
        )
        sink = MemorySink()
        stats = run_audited(
            service, StreamSource(streams_of(events, prices), batch_records=5), sink
        )
        swept = [s.swept_accounts for s in stats[1:] if s.prices]
        if incremental:  # quiet ticks re-check a part of the book, others sweep it all
            assert min(swept) < service.book.n_accounts // 4
            assert max(swept) == service.book.n_accounts
        outputs.append([(t, v) for t, _, v in sink.records])
        service.book.compact(canonical=True)
        books.append(book_batch(service.book))
    assert outputs[0] == outputs[1]
    assert books[0].equals(books[1])
    assert any(b"margin_call" in v for _, v in outputs[0])


def test_worked_example_liquidation() -> None:
    # Account 1: 10_000 USDT, long 1 BTC at 100_000 (10x); account 2 the short with 50_000.
    # At mark 90_200: equity 10_000 - 1 x 9_800 = 200 USDT; maintenance 0.004 x 90_200
    # = 360.8 USDT > 200, so 1 is liquidated. Fee: min(0.005 x 90_200 = 451, 200) = 200 to
    # the fund; the position moves to the fund at 90_200; nothing remains (takeover 0).
    # At 90_500 before it: equity 500, maintenance 362, ratio 0.724 < 0.8: no margin call;
    # at 90_300: equity 300, maintenance 361.2: liquidate (no margin call on the way).
    profile = Profile.shipped()
    service = memory_service(profile)
    events = [
        messages.deposit_doc(1, TS0, 1, "10000"),
        messages.deposit_doc(2, TS0, 2, "50000"),
        messages.fill_doc(3, TS0, "BTCUSDT", "100000", "1", 1, 2),
    ]
    prices = [
        messages.price_doc("BTCUSDT", TS0 + 1, 1, mark_price="100000"),
        messages.price_doc("ETHUSDT", TS0 + 1, 1, mark_price="4000"),
        messages.price_doc("BTCUSDT", TS0 + 2, 2, mark_price="90500"),
        messages.price_doc(
            "BTCUSDT", TS0 + 3, 3, index_prices={"a": "90200", "b": "90300", "c": "90100.5"}
        ),
    ]
    sink = MemorySink()
    run_audited(service, StreamSource(streams_of(events, prices), batch_records=10), sink)
    docs = sink.docs()
    kinds = [(d["kind"], d["account"]) for d in docs if d["kind"] != "fund"]
    assert kinds == [("liquidation_fee", 1), ("liquidation", 1)]
    fee, liquidation = (d for d in docs if d["kind"] != "fund")
    assert fee["amount"] == "200.00000000" and fee["amount_units"] == 200 * USDT
    assert liquidation["price"] == "90200.0" and liquidation["qty"] == "1.000"
    assert liquidation["mark_seq"] == 3  # the index message that set the mark
    assert liquidation["mark_in_tick"] is True
    assert service.book.position(1, "BTCUSDT") == (0, 0)
    assert int(service.book.balance[service.book.row_of(1)]) == 0
    # The ticks: batch_records 10 takes all 3 events and all 4 prices in one tick, so the
    # marks are conflated to the last: 90_200 for BTCUSDT.
    assert {d["tick"] for d in docs} == {1}


def test_band_holds_a_jump_until_confirmed() -> None:
    # Band 10% of the last mark 100_000: 89_000 is 11% away, held; the third price in a row
    # on the same side is accepted. 95_000 (5%) is accepted at once.
    profile = Profile.shipped()
    service = memory_service(profile, ServiceConfig(band_rate=10_000_000, band_confirm=3))
    service.book.set_mark("BTCUSDT", 1_000_000)  # as restored: the first price is banded
    prices = [
        messages.price_doc("BTCUSDT", TS0, 1, mark_price="100000"),
        messages.price_doc("BTCUSDT", TS0 + 1, 2, mark_price="89000"),
        messages.price_doc("BTCUSDT", TS0 + 2, 3, mark_price="89100"),
        messages.price_doc("BTCUSDT", TS0 + 3, 4, mark_price="95000"),
        messages.price_doc("BTCUSDT", TS0 + 4, 5, mark_price="80000"),
        messages.price_doc("BTCUSDT", TS0 + 5, 6, mark_price="80100"),
        messages.price_doc("BTCUSDT", TS0 + 6, 7, mark_price="80200"),
    ]
    source = StreamSource(streams_of([], prices), batch_records=1)
    marks, held = [], []
    sink = MemorySink()
    for _ in prices:
        batch = source.next_batch()
        assert batch is not None
        service.tick(batch)
        marks.append(int(service.book.mark[0]))
        held.append(service.last_stats.prices_held)
    assert marks == [1_000_000, 1_000_000, 1_000_000, 950_000, 950_000, 950_000, 802_000]
    assert held == [0, 1, 1, 0, 1, 1, 0]
    assert sink.records == []


def test_rejections_are_dead_lettered_and_change_nothing() -> None:
    profile = Profile.shipped()
    service = memory_service(profile)
    good = [
        messages.deposit_doc(1, TS0, 1, "10000"),
        messages.deposit_doc(2, TS0, 2, "10000"),
        messages.fill_doc(3, TS0, "BTCUSDT", "100000", "0.01", 1, 2),
    ]
    sink = MemorySink()
    streams = streams_of(good, [messages.price_doc("BTCUSDT", TS0, 1, mark_price="100000")])
    source = StreamSource(streams, batch_records=100, finite=False)
    run(service, source, sink, exit_when_idle=True)
    before = book_batch(service.book)
    extra_before = service.extra()["service"]
    bad_events = [
        b"{not json",
        messages.encode(messages.deposit_doc(3, TS0, 1, "5")),  # duplicate event id
        messages.encode({**messages.deposit_doc(9, TS0, 1, "5"), "amount": "NaN"}),
        messages.encode(messages.fill_doc(10, TS0, "XRPUSDT", "1", "1", 1, 2)),
        messages.encode(messages.withdraw_doc(11, TS0, 1, "1000000")),  # over the margin
        messages.encode(messages.fill_doc(12, TS0, "BTCUSDT", "100000", "0.01", 1, 77)),
    ]
    bad_prices = [
        b'{"v":1,"symbol":"BTCUSDT","ts":1,"seq":2,"mark_price":NaN}',
        messages.encode(messages.price_doc("DOGE2USDT", TS0, 3, mark_price="1")),
        messages.encode(messages.price_doc("BTCUSDT", TS0, 1, mark_price="100001")),  # stale
        messages.encode(messages.price_doc("BTCUSDT", TS0, 4, mark_price="100000.05")),
    ]
    for value in bad_events:
        streams[("account-events", 0)].append(value, b"1")
    for value in bad_prices:
        streams[("prices", 0)].append(value, None)
    sink.records.clear()
    run(service, source, sink, exit_when_idle=True)
    letters = sink.docs("dead-letter")
    assert [d["reason"] for d in letters] == [
        "malformed_json",
        "duplicate_event_id",
        "invalid_amount",
        "unknown_symbol",
        "insufficient_margin",
        "unknown_account",
        "invalid_price",
        "unknown_symbol",
        "stale_sequence",
        "off_grid",
    ]
    originals = bad_events + bad_prices
    assert [base64.b64decode(d["value"]) for d in letters] == originals
    assert all(d["detail"] for d in letters)
    assert book_batch(service.book).equals(before)
    after = service.extra()["service"]
    # Only the offsets moved: a refused event's id is not spent, its time not taken.
    for name in ("last_event_id", "tick_ts", "last_price_seq", "mark_seq", "held", "margin_call"):
        assert after[name] == extra_before[name]
    assert after["last_event_id"] == {"account-events:0": 3}
    assert audit(service.book).ok


def test_fill_sides_by_partition() -> None:
    # Two partitions; accounts 1 -> partition 0 and 2 -> partition 1 under this toy rule.
    # The fill is sent once per partition; each copy applies the side keyed there, so each
    # side is applied exactly once.
    profile = Profile.shipped()
    service = memory_service(profile, partition_of_account=lambda a: a % 2 if a < 10 else 0)
    fill = messages.fill_doc(5, TS0, "BTCUSDT", "100000", "0.5", 1, 2)
    streams = {
        ("account-events", 0): ListStream(
            [
                (b"2", messages.encode(messages.deposit_doc(1, TS0, 2, "10000"))),
                (b"2", messages.encode(fill)),
            ]
        ),
        ("account-events", 1): ListStream(
            [
                (b"1", messages.encode(messages.deposit_doc(2, TS0, 1, "10000"))),
                (b"1", messages.encode(fill)),
            ]
        ),
    }
    sink = MemorySink()
    run(service, StreamSource(streams, batch_records=10), sink)
    assert sink.records == []
    assert service.book.position(1, "BTCUSDT") == (500, 500 * 1_000_000 * 10_000)
    assert service.book.position(2, "BTCUSDT") == (-500, -500 * 1_000_000 * 10_000)
    assert audit(service.book, closed=True).ok


def test_incremental_sweep_used_where_it_helps() -> None:
    # A quiet tick after the anchor re-checks a small part of the book, not all of it.
    profile = Profile.shipped()
    from engine.stress.synthetic import synthetic_book

    book = synthetic_book(5_000, 15_000, 4, seed=1)
    open_fund(book, profile, 0)
    service = Service(book, profile, ServiceConfig(band_rate=0, fill_checks=False))
    symbol = book.instruments.instruments[0].symbol
    mark = int(book.mark[0])
    swept = []
    for seq, move in enumerate((0, 1, -1, 2)):
        doc = messages.price_doc(
            symbol, TS0 + seq, seq + 1, mark_price=str(Decimal(mark + move) / 100)
        )
        service.tick([Record("prices", 0, seq, None, messages.encode(doc))])
        swept.append(service.last_stats.swept_accounts)
        assert audit(service.book).ok
