"""The service loop without a broker: memory and file adapters, the batch waterfall as the
reference, snapshots and journal replay, the band, dedup and dead letters.

Grid (engine/data/instruments.json): BTCUSDT tick 0.1, lot 0.001, money at 8 decimals, so
one lot moving one tick is 0.1 x 0.001 x 10^8 = 10_000 units and 1 USDT = 10^8 units.
"""

from __future__ import annotations

import argparse
import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.cli import inspect as inspect_cli
from engine.cli import serve as serve_cli
from engine.io.snapshot import book_batch, read_snapshot
from engine.risk.incremental import IncrementalSweep
from engine.service import messages
from engine.service.driver import run
from engine.service.files_adapter import (
    FileJournal,
    FileSink,
    ListStream,
    MemorySink,
    StreamSource,
    file_source,
)
from engine.service.ports import Record, Topics
from engine.service.snapshots import Snapshotter, restore
from engine.service.state import ServiceConfig, TickStats
from engine.service.tick import Service
from engine.waterfall.conservation import audit
from engine.waterfall.profile import Profile
from engine.waterfall.waterfall import open_fund, run_waterfall

USDT = 10**8
DATA = Path(__file__).resolve().parents[2] / "engine" / "data"
TS0 = 1_760_140_800_000
EVENT_KINDS = ("liquidation", "liquidation_fee", "takeover", "insurance_payout", "adl")
OUTPUT_KINDS = (*EVENT_KINDS, "socialized_loss", "unallocated_loss")
TOPICS = Topics()


def instruments() -> InstrumentTable:
    return InstrumentTable.load(DATA / "instruments.json")


def fresh_book(profile: Profile, fund_usdt: int = 1_000) -> Book:
    book = Book(instruments(), warning_rate=profile.warning_rate)
    open_fund(book, profile, fund_usdt * USDT)
    return book


# ----- a scenario: account events, then a price path --------------------------------------
def scenario(
    n_pairs: int = 30,
    n_prices: int = 40,
    seed: int = 3,
    drift: float = -0.003,
    volatility: float = 0.004,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Deposits and fills between pairs of accounts on BTCUSDT and ETHUSDT at leverages from
    2x to 50x, a few leverage changes and withdrawals; then index prices (3 sources) that
    drift and fall about 12% so that the high-leverage side is liquidated."""
    rng = np.random.default_rng(seed)
    events: list[dict[str, Any]] = []
    next_id = iter(range(1, 10**9))
    for pair in range(n_pairs):
        long_id, short_id = 1000 + 2 * pair, 1001 + 2 * pair
        symbol, price = ("BTCUSDT", 100_000) if pair % 3 else ("ETHUSDT", 4_000)
        lots = int(rng.integers(100, 2_000))  # 0.1 to 2 BTC (or ETH)
        notional = Decimal(lots) / 1000 * price
        leverage = int(rng.choice([2, 5, 10, 20, 25, 50]))
        margin = (notional / leverage).quantize(Decimal("0.01"))
        events.append(messages.deposit_doc(next(next_id), TS0, long_id, str(margin)))
        events.append(messages.deposit_doc(next(next_id), TS0, short_id, str(notional)))
        if pair % 5 == 0:  # before the fill: lowering leverage on a position needs a mark
            events.append(messages.leverage_doc(next(next_id), TS0, long_id, symbol, 10))
        qty = str(Decimal(lots) / 1000)
        fee = str((notional * Decimal("0.0004")).quantize(Decimal("0.00000001")))
        events.append(
            messages.fill_doc(
                next(next_id), TS0 + 1, symbol, str(price), qty, long_id, short_id, fee, fee
            )
        )
        if pair % 7 == 0:  # a cash-only account (a withdrawal needs no mark then)
            events.append(messages.deposit_doc(next(next_id), TS0 + 3, 5000 + pair, "100"))
            events.append(messages.withdraw_doc(next(next_id), TS0 + 3, 5000 + pair, "1.5"))
    prices: list[dict[str, Any]] = []
    level = {"BTCUSDT": 100_000.0, "ETHUSDT": 4_000.0}
    for k in range(n_prices):
        for symbol, tick in (("BTCUSDT", Decimal("0.1")), ("ETHUSDT", Decimal("0.01"))):
            level[symbol] *= 1 + rng.normal(drift, volatility)
            sources = {
                name: str((Decimal(level[symbol] * (1 + d)) / tick).quantize(Decimal(1)) * tick)
                for name, d in (("a", 0.0), ("b", 0.0004), ("c", -0.0003))
            }
            prices.append(
                messages.price_doc(symbol, TS0 + 1000 * (k + 1), k + 1, index_prices=sources)
            )
    return events, prices


def apply_reference_event(book: Book, doc: dict[str, Any]) -> None:
    """An account event straight through the Book API (independent of the loop)."""
    t = book.instruments
    money = Decimal(1).scaleb(-t.money_decimals)
    if doc["type"] == "deposit":
        book.deposit(doc["account"], int(Decimal(doc["amount"]) / money), doc["event_id"])
    elif doc["type"] == "withdraw":
        book.withdraw(doc["account"], int(Decimal(doc["amount"]) / money), doc["event_id"])
    elif doc["type"] == "leverage":
        book.set_leverage(doc["account"], doc["symbol"], doc["leverage"])
    else:
        inst = t.instruments[t.symbol_index(doc["symbol"])]
        price = int(Decimal(doc["price"]) / inst.tick_size)
        lots = int(Decimal(doc["qty"]) / inst.lot_size)
        for account, qty, fee in (
            (doc["buyer"], lots, doc["buyer_fee"]),
            (doc["seller"], -lots, doc["seller_fee"]),
        ):
            fee_units = int(Decimal(fee) / money)
            book.apply_fill(
                account, doc["symbol"], qty, price, fee=fee_units, event_id=doc["event_id"]
            )


def reference_price(book: Book, doc: dict[str, Any]) -> int:
    inst = book.instruments.instruments[book.instruments.symbol_index(doc["symbol"])]
    if "mark_price" in doc:
        return int(Decimal(doc["mark_price"]) / inst.tick_size)
    ticks = sorted(int(Decimal(p) / inst.tick_size) for p in doc["index_prices"].values())
    return ticks[(len(ticks) - 1) // 2]  # the lower median


def batch_reference(
    profile: Profile, events: list[dict[str, Any]], price_batches: list[list[dict[str, Any]]]
) -> tuple[Book, list[tuple]]:
    """The batch run: every event, then per price batch the last price of each symbol as its
    mark and run_waterfall. Returns the book and the waterfall events as tuples."""
    book = fresh_book(profile)
    for doc in events:
        apply_reference_event(book, doc)
    out: list[tuple] = []
    for batch in price_batches:
        for doc in batch:
            book.set_mark(doc["symbol"], reference_price(book, doc))
        result = run_waterfall(book, profile)
        out.extend(
            (e.kind, e.account_id, e.symbol, e.qty, e.price, e.amount) for e in result.events
        )
        assert audit(book).ok
    return book, out


def published_events(docs: list[dict[str, Any]]) -> list[tuple]:
    return [
        (
            d["kind"],
            d["account"],
            d.get("symbol", ""),
            d.get("qty_lots", 0),
            d.get("price_ticks", 0),
            d["amount_units"],
        )
        for d in docs
        if d["kind"] in OUTPUT_KINDS
    ]


def memory_service(
    profile: Profile, config: ServiceConfig | None = None, **options: Any
) -> Service:
    return Service(fresh_book(profile), profile, config or ServiceConfig(band_rate=0), **options)


def streams_of(
    events: list[dict[str, Any]], prices: list[dict[str, Any]], topics: Topics = TOPICS
) -> dict[tuple[str, int], ListStream]:
    return {
        (topics.account_events, 0): ListStream(
            [
                (messages.account_key(d.get("account", d.get("buyer"))), messages.encode(d))
                for d in events
            ]
        ),
        (topics.prices, 0): ListStream(
            [(d["symbol"].encode(), messages.encode(d)) for d in prices]
        ),
    }


def run_audited(
    service: Service, source: StreamSource, sink: MemorySink, **kw: Any
) -> list[TickStats]:
    """run() with audit(book) after every tick; returns each tick's stats."""
    original = service.tick
    stats = []

    def tick(records: list[Record]) -> list:
        outputs = original(records)
        assert audit(service.book).ok
        stats.append(service.last_stats)
        return outputs

    service.tick = tick  # type: ignore[method-assign]
    try:
        run(service, source, sink, **kw)
    finally:
        service.tick = original  # type: ignore[method-assign]
    return stats


# ----- tests ------------------------------------------------------------------------------
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
        service = memory_service(profile, ServiceConfig(band_rate=0, incremental=incremental))
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
    # Only the offsets and the seen event ids moved (a refused withdrawal's id is spent).
    for name in ("last_price_seq", "mark_seq", "held", "margin_call"):
        assert after[name] == extra_before[name]
    assert after["last_event_id"] == {"account-events:0": 12}
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


def _snapshot_data(path: Path) -> tuple[Any, dict[str, Any]]:
    book, extra = read_snapshot(path)
    return book_batch(book), extra["service"]


def test_crash_and_replay_equal_an_uninterrupted_run(tmp_path: Path) -> None:
    profile = Profile.shipped()
    events, prices = scenario(n_pairs=25, n_prices=30, seed=5)
    config = ServiceConfig(band_rate=0)

    def fresh(root: Path) -> tuple[Service, StreamSource, FileSink, FileJournal, Snapshotter]:
        return (
            memory_service(profile, config),
            StreamSource(streams_of(events, prices), batch_records=4),
            FileSink(root / "out"),
            FileJournal(root / "journal.jsonl"),
            Snapshotter(root / "snap", every_s=0, every_ticks=3, keep=3),
        )

    service, source, sink, journal, snaps = fresh(tmp_path / "a")
    run(service, source, sink, journal=journal, snapshots=snaps)
    final_a = _snapshot_data(snaps.written[-1])
    ticks = service.state.tick

    # Run b: crash after 13 ticks (no final snapshot), the newest snapshot corrupt.
    service, source, sink, journal, snaps = fresh(tmp_path / "b")
    run(service, source, sink, journal=journal, snapshots=snaps, max_ticks=13, final_snapshot=False)
    newest = snaps.written[-1]
    assert newest.name == "tick-000000000012.arrow"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    sink.close()
    journal.close()
    restored, recovery = restore(tmp_path / "b" / "snap", profile, config)
    assert restored is not None and recovery.path is not None
    assert recovery.path.name == "tick-000000000009.arrow"
    assert len(recovery.skipped) == 1 and "tick-000000000012" in recovery.skipped[0]
    source = StreamSource(streams_of(events, prices), batch_records=4)
    source.seek(restored.state.offsets)
    sink = FileSink(tmp_path / "b" / "out")
    journal = FileJournal(tmp_path / "b" / "journal.jsonl")
    snaps = Snapshotter(tmp_path / "b" / "snap", every_s=0, every_ticks=3, keep=3)
    result = run(restored, source, sink, journal=journal, snapshots=snaps)
    assert result.replayed == 4  # ticks 10..13 re-cut from the journal
    assert restored.state.tick == ticks
    final_b = _snapshot_data(snaps.written[-1])
    assert final_a[0].equals(final_b[0])
    assert final_a[1] == final_b[1]
    sink.close()

    # Outputs: the replay repeats ticks 10..13 with the same ids and bytes.
    def outputs(root: Path) -> dict[str, bytes]:
        seen: dict[str, bytes] = {}
        for path in sorted((root / "out").glob("*.jsonl")):
            for line in path.read_bytes().splitlines():
                doc_id = json.loads(line)["id"]
                assert seen.setdefault(doc_id, line) == line, "a repeated id with other content"
        return seen

    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")


def test_clean_stop_and_restart(tmp_path: Path) -> None:
    profile = Profile.shipped()
    events, prices = scenario(n_pairs=10, n_prices=12, seed=8)
    config = ServiceConfig(band_rate=0)
    one = memory_service(profile, config)
    run(one, StreamSource(streams_of(events, prices), batch_records=5), MemorySink())
    two = memory_service(profile, config)
    snaps = Snapshotter(tmp_path, every_s=0)
    run(
        two,
        StreamSource(streams_of(events, prices), batch_records=5),
        MemorySink(),
        snapshots=snaps,
        max_ticks=4,
    )
    again, _ = restore(tmp_path, profile, config)
    assert again is not None and again.state.tick == 4
    source = StreamSource(streams_of(events, prices), batch_records=5)
    source.seek(again.state.offsets)
    run(again, source, MemorySink())
    one.book.compact(canonical=True)
    again.book.compact(canonical=True)
    assert book_batch(one.book).equals(book_batch(again.book))
    assert one.extra() == again.extra()


def test_files_adapter_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events, prices = scenario(n_pairs=8, n_prices=10, seed=2)
    (tmp_path / "events.jsonl").write_bytes(b"".join(messages.encode(d) + b"\n" for d in events))
    (tmp_path / "prices.jsonl").write_bytes(b"".join(messages.encode(d) + b"\n" for d in prices))
    source = file_source(tmp_path / "prices.jsonl", tmp_path / "events.jsonl", batch_records=7)
    first = source.next_batch()
    assert first is not None and len(first) == 14
    source.close()
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "--prices-file",
            str(tmp_path / "prices.jsonl"),
            "--events-file",
            str(tmp_path / "events.jsonl"),
            "--out-dir",
            str(tmp_path / "out"),
            "--snapshot-dir",
            str(tmp_path / "snap"),
            "--band",
            "0",
            "--fund",
            "1000",
            "--metrics-port",
            "0",
        ]
    )
    assert serve_cli.run(args) == 0
    snapshots = sorted((tmp_path / "snap").glob("*.arrow"))
    assert snapshots
    parser = argparse.ArgumentParser()
    inspect_cli.add_arguments(parser)
    capsys.readouterr()
    assert inspect_cli.run(parser.parse_args([str(snapshots[-1])])) == 0
    text = capsys.readouterr().out
    assert "tick" in text and "accounts" in text and "BTCUSDT" in text


def test_synthetic_default_runs(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    args = parser.parse_args(
        ["--synthetic-accounts", "2000", "--synthetic-steps", "30", "--out-dir", str(tmp_path)]
    )
    assert serve_cli.run(args) == 0
    liquidations = (tmp_path / "liquidations.jsonl").read_text().splitlines()
    assert liquidations, "the synthetic path's crash liquidates"


def test_incremental_sweep_used_where_it_helps() -> None:
    # A quiet tick after the anchor re-checks a small part of the book, not all of it.
    profile = Profile.shipped()
    from engine.stress.synthetic import synthetic_book

    book = synthetic_book(5_000, 15_000, 4, seed=1)
    open_fund(book, profile, 0)
    service = Service(book, profile, ServiceConfig(band_rate=0))
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
    assert swept[0] == book.n_accounts  # the anchor
    assert max(swept[2:]) < book.n_accounts // 5
    assert isinstance(service._incremental, IncrementalSweep)
