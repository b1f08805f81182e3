"""Price sanity and tick order: a symbol's first price is confirmed before it marks, moves
within one tick are banded against the tick's opening mark, a two-source index takes the
mean of its middle sources (or is refused when they disagree), a seq jump cannot freeze a
symbol, and a tick applies its records in event-time order, so a crash in three steps with
fills between them gives three marks, not one."""

from __future__ import annotations

import json
import random
from typing import Any

from engine.book.limits import SEQ_GAP_MAX, SEQ_MAX
from engine.service import messages
from engine.service.order import tick_order
from engine.service.ports import Record, Topics
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.waterfall.conservation import audit
from engine.waterfall.profile import Profile
from tests.service.scenario import TS0, instruments, memory_service

BAND = ServiceConfig()  # band 10%, confirm 3, fill checks on


class Feed:
    """Records with increasing offsets per (topic, partition)."""

    def __init__(self) -> None:
        self.offsets: dict[tuple[str, int], int] = {}

    def record(self, doc: dict[str, Any] | bytes, topic: str, partition: int = 0) -> Record:
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        value = doc if isinstance(doc, bytes) else messages.encode(doc)
        return Record(topic, partition, offset, None, value)

    def price(self, seq: int, mark: str, ts: int = TS0, symbol: str = "BTCUSDT") -> Record:
        return self.record(messages.price_doc(symbol, ts, seq, mark_price=mark), "prices")

    def index(self, seq: int, sources: dict[str, str], ts: int = TS0) -> Record:
        doc = messages.price_doc("BTCUSDT", ts, seq, index_prices=sources)
        return self.record(doc, "prices")

    def event(self, doc: dict[str, Any], partition: int = 0) -> Record:
        return self.record(doc, "account-events", partition)


def outputs(service: Service, records: list[Record]) -> list[dict[str, Any]]:
    return [json.loads(o.value) for o in service.tick(records)]


def dead(docs: list[dict[str, Any]]) -> list[str]:
    return [d["reason"] for d in docs if d["kind"] == "rejected"]


def mark(service: Service) -> int:
    return int(service.book.mark[0]) if service.book.mark_set[0] else 0


def test_a_first_price_marks_only_once_confirmed() -> None:
    # One print on a fresh book used to set the mark (and liquidate against it). Now it is
    # held until three prints in a row, each within the band of the one before, agree.
    feed, service = Feed(), memory_service(Profile.shipped(), BAND)
    assert dead(outputs(service, [feed.price(1, "50000")])) == []
    assert mark(service) == 0 and service.last_stats.prices_held == 1
    # 100000 is 100% from 50000: the count starts again; two more agreeing prints confirm.
    outputs(service, [feed.price(2, "100000"), feed.price(3, "100100")])
    assert mark(service) == 0
    outputs(service, [feed.price(4, "99900")])
    assert mark(service) == 999_000 and service.state.last_price_seq["BTCUSDT"] == 4
    # From then on the band applies: 50000 is held again.
    outputs(service, [feed.price(5, "50000", TS0 + 1)])
    assert mark(service) == 999_000 and service.last_stats.prices_held == 1


def confirmed(config: ServiceConfig = BAND) -> tuple[Feed, Service]:
    feed, service = Feed(), memory_service(Profile.shipped(), config)
    outputs(service, [feed.price(seq, "100000") for seq in (1, 2, 3)])
    assert mark(service) == 1_000_000
    return feed, service


def test_moves_within_a_tick_are_banded_against_its_opening_mark() -> None:
    # Ten prints of -9.5% each (every one within 10% of the one before) in one tick used to
    # walk the mark to 100000 x 0.905^10 = 36_900 (-63%). Against the opening mark only the
    # first is within the band; the rest are held, and count once for the tick.
    feed, service = confirmed()
    level, walk = 100_000.0, []
    for seq in range(4, 14):
        level *= 0.905
        walk.append(feed.price(seq, f"{level:.1f}", TS0 + seq))
    assert dead(outputs(service, walk)) == []
    assert mark(service) == 905_000  # -9.5%, the first print
    assert service.last_stats.prices_held == 9
    assert service.state.held["BTCUSDT"][1] == 1
    # A real move keeps printing in the next ticks: the third tick in a row confirms it.
    outputs(service, [feed.price(14, "37000", TS0 + 14)])
    assert mark(service) == 905_000 and service.state.held["BTCUSDT"][1] == 2
    outputs(service, [feed.price(15, "37000", TS0 + 15)])
    assert mark(service) == 370_000


def test_an_index_of_two_sources_takes_their_mean_or_is_refused() -> None:
    feed, service = confirmed()
    # A bad source at half the price: the sources disagree by more than the band.
    bad = feed.index(4, {"good": "100000", "bad": "50000"})
    assert dead(outputs(service, [bad])) == ["price_out_of_band"]
    assert mark(service) == 1_000_000 and service.state.last_price_seq["BTCUSDT"] == 3
    # 100000.0 and 100000.3: the mean 100000.15 is rounded to the tick toward the previous
    # mark (100000.0): 100000.1. With the mark above it (100000.5): 100000.2.
    outputs(service, [feed.index(5, {"a": "100000.0", "b": "100000.3"})])
    assert mark(service) == 1_000_001
    outputs(service, [feed.price(6, "100000.5")])
    outputs(service, [feed.index(7, {"a": "100000.0", "b": "100000.3"})])
    assert mark(service) == 1_000_002
    # Four sources: the middle two (99990, 100010) -> 100000.0; the outliers do not count.
    four = {"a": "1", "b": "99990", "c": "100010", "d": "900000"}
    outputs(service, [feed.index(8, four)])
    assert mark(service) == 1_000_000


def test_a_seq_near_the_bound_does_not_freeze_the_symbol() -> None:
    feed, service = confirmed()
    # In the band, seq SEQ_MAX - 1: once accepted every later price was stale for good.
    assert dead(outputs(service, [feed.price(SEQ_MAX - 1, "100100")])) == []
    assert service.last_stats.prices_held == 1
    assert service.state.last_price_seq["BTCUSDT"] == 3
    assert dead(outputs(service, [feed.price(4, "100200")])) == []
    assert mark(service) == 1_002_000
    # A producer that really jumps its seq (a restart onto ms timestamps) gets through after
    # three prints in three ticks; then the gap is measured from there.
    jump = 4 + SEQ_GAP_MAX + 1
    for k in range(3):
        outputs(service, [feed.price(jump + k, "100300")])
    assert service.state.last_price_seq["BTCUSDT"] == jump + 2 and mark(service) == 1_003_000
    outputs(service, [feed.price(jump + 3, "100400")])
    assert mark(service) == 1_004_000


def test_a_crash_in_three_steps_with_fills_between_gives_three_marks() -> None:
    # Longs of 1 BTC at 100000 holding 2500, 5500 and 8500 USDT. At -3% (97000) the first
    # has equity 2500 - 3000 < 0, the others 2500 and 5500, above their maintenance margin
    # (0.5% of ~97000 = ~485): only the first is liquidated; at -6% the second
    # (5500 - 6000 < 0); at -9% the third (8500 - 9000 < 0).
    config = ServiceConfig(fill_checks=False)
    feed, service = confirmed(config)
    setup = [feed.event(messages.deposit_doc(1, TS0, 99, "10000000"))]
    for k, margin in enumerate(("2500", "5500", "8500")):
        setup.append(feed.event(messages.deposit_doc(10 + 2 * k, TS0, 1 + k, margin)))
        fill = messages.fill_doc(11 + 2 * k, TS0, "BTCUSDT", "100000", "1", 1 + k, 99)
        setup.append(feed.event(fill))
    setup += [feed.event(messages.deposit_doc(30, TS0, 50, "100000"))]
    setup += [feed.event(messages.deposit_doc(31, TS0, 51, "100000"))]
    assert dead(outputs(service, setup)) == []
    # One tick, delivered as a backlog: all prices after all events in the batch, but by
    # event time a fill between traders 50 and 51 follows each step of the crash.
    t = TS0 + 1000
    prices = [feed.price(4, "97000", t + 1), feed.price(5, "94000", t + 3)]
    prices.append(feed.price(6, "91000", t + 5))
    fills = [
        feed.event(messages.fill_doc(40, t + 2, "BTCUSDT", "97000", "0.1", 50, 51)),
        feed.event(messages.fill_doc(41, t + 4, "BTCUSDT", "94000", "0.1", 51, 50)),
        feed.event(messages.fill_doc(42, t + 6, "BTCUSDT", "91000", "0.1", 50, 51)),
    ]
    docs = outputs(service, fills + prices)
    assert dead(docs) == []
    liquidated = {
        d["account"]: (d["mark_seq"], d["price_ticks"]) for d in docs if d["kind"] == "liquidation"
    }
    assert liquidated == {1: (4, 970_000), 2: (5, 940_000), 3: (6, 910_000)}
    assert sum(d["kind"] == "fund" for d in docs) == 3  # one waterfall per step
    assert audit(service.book).ok


def test_the_tick_order_depends_on_the_records_not_on_how_the_batch_lists_them() -> None:
    # Event time across topics, ties by topic (events first), partition, offset; each
    # partition in offset order, whatever the ts of its records.
    feed, topics, table = Feed(), Topics(), instruments()
    records = [
        feed.event(messages.deposit_doc(1, TS0 + 5, 1, "1"), partition=0),
        feed.event(messages.deposit_doc(2, TS0 + 1, 1, "1"), partition=0),  # after id 1
        feed.event(messages.deposit_doc(3, TS0 + 3, 2, "1"), partition=1),
        feed.event(messages.deposit_doc(4, TS0 + 5, 2, "1"), partition=1),
        feed.price(1, "100000", TS0 + 3),
        feed.price(2, "100000", TS0 + 5),
        feed.record(b"not json", "prices"),  # takes the time of the price before it
    ]
    want = [("account-events", 1, 0), ("prices", 0, 0), ("account-events", 0, 0),
            ("account-events", 0, 1), ("account-events", 1, 1), ("prices", 0, 1),
            ("prices", 0, 2)]  # fmt: skip
    for seed in range(5):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        by_partition = sorted(shuffled, key=lambda r: (r.topic, r.partition, r.offset))
        got = [
            (r.topic, r.partition, r.offset)
            for r, _ in tick_order(by_partition, topics, TS0, table)
        ]
        assert got == want
