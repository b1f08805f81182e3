"""Hostile input through one service tick: house accounts, fill checks, sentinel values,
poison pills rolled back, limits. Each test is a reproducer of a defect a hostile-input
campaign found; each record must be dead-lettered with a reason and change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from engine.book.book import Book
from engine.book.limits import EVENT_ID_GAP_MAX, TS_MAX, TS_SKEW_MAX
from engine.io.snapshot import book_batch
from engine.service import messages, tick
from engine.service.ports import Record
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.waterfall.conservation import audit
from engine.waterfall.profile import Profile
from tests.service.scenario import TS0, memory_service

FUND = Profile.shipped().fund_account_id
_offsets: dict[tuple[str, int], int] = {}


def record(
    doc: dict[str, Any] | bytes, topic: str = "account-events", partition: int = 0
) -> Record:
    value = doc if isinstance(doc, bytes) else messages.encode(doc)
    offset = _offsets.get((topic, partition), 0)
    _offsets[(topic, partition)] = offset + 1
    return Record(topic, partition, offset, None, value)


def price(symbol: str, seq: int, mark: str, ts: int = TS0) -> Record:
    return record(messages.price_doc(symbol, ts, seq, mark_price=mark), "prices")


def reasons(service: Service, records: list[Record]) -> list[str]:
    import json

    out = service.tick(records)
    return [json.loads(o.value)["reason"] for o in out if o.topic == "dead-letter"]


def fresh(config: ServiceConfig | None = None) -> Service:
    _offsets.clear()
    service = memory_service(Profile.shipped(), config or ServiceConfig())
    assert (
        reasons(
            service,
            [
                # A symbol's first price is held until band_confirm (3) prices confirm it.
                *(price("BTCUSDT", seq, "100000") for seq in (1, 2, 3)),
                *(price("ETHUSDT", seq, "4000") for seq in (1, 2, 3)),
                record(messages.deposit_doc(1, TS0, 1, "10000")),
                record(messages.deposit_doc(2, TS0, 2, "10000")),
            ],
        )
        == []
    )
    return service


def frozen(service: Service) -> tuple[Any, dict[str, Any], int]:
    return book_batch(service.book), service.extra()["service"], len(service.book.ledger)


def unchanged(service: Service, before: tuple[Any, dict[str, Any], int]) -> bool:
    batch, extra, ledger = frozen(service)
    extra = {k: v for k, v in extra.items() if k not in ("offsets", "tick")}
    want = {k: v for k, v in before[1].items() if k not in ("offsets", "tick")}
    return batch.equals(before[0]) and extra == want and ledger == before[2]


def test_the_stream_cannot_move_house_money() -> None:
    service = fresh()
    fund_before = service.book.account_equity(FUND)
    before = frozen(service)
    bad = [
        record(messages.withdraw_doc(10, TS0, FUND, "999.99")),
        record(messages.deposit_doc(11, TS0, FUND, "1")),
        record(messages.fill_doc(12, TS0, "BTCUSDT", "200000", "0.05", FUND, 1)),
        record(messages.fill_doc(13, TS0, "BTCUSDT", "100000", "0.05", 1, FUND)),
        record(messages.deposit_doc(14, TS0, 2**62 + 5, "1")),
        record(messages.leverage_doc(15, TS0, FUND, "BTCUSDT", 1)),
    ]
    assert reasons(service, bad) == ["reserved_account"] * 6
    assert service.book.account_equity(FUND) == fund_before
    assert unchanged(service, before)


def test_fills_need_a_mark_the_band_and_initial_margin() -> None:
    service = fresh()
    before = frozen(service)
    fills = [
        record(messages.fill_doc(10, TS0, "BTCUSDT", "200000", "0.05", 1, 2)),  # 100% off
        record(messages.fill_doc(11, TS0, "BTCUSDT", "0.1", "1000000", 1, 2)),  # the crash
        # 10 BTC = 1M notional: IM at 20x is 50_000 > equity 10_000
        record(messages.fill_doc(12, TS0, "BTCUSDT", "100000", "10", 1, 2)),
    ]
    assert reasons(service, fills) == [
        "price_out_of_band",
        "price_out_of_band",
        "insufficient_margin",
    ]
    assert unchanged(service, before)
    # Within the band and the margin: accepted; reducing is always let through.
    ok = [
        record(messages.fill_doc(13, TS0, "BTCUSDT", "101000", "1", 1, 2)),
        record(messages.fill_doc(14, TS0, "BTCUSDT", "100000", "0.5", 2, 1)),
    ]
    assert reasons(service, ok) == []
    assert service.book.position(1, "BTCUSDT")[0] == 500
    # No mark for the symbol yet: refused.
    _offsets.clear()
    bare = memory_service(Profile.shipped(), ServiceConfig())
    events = [
        record(messages.deposit_doc(1, TS0, 1, "10000")),
        record(messages.deposit_doc(2, TS0, 2, "10000")),
        record(messages.fill_doc(3, TS0, "BTCUSDT", "100000", "0.01", 1, 2)),
    ]
    assert reasons(bare, events) == ["no_mark"]


def test_a_fill_too_large_at_the_mark_is_an_overflow_not_a_crash() -> None:
    service = fresh(ServiceConfig(band_rate=0, fill_checks=False))
    before = frozen(service)
    fill = record(messages.fill_doc(10, TS0, "BTCUSDT", "0.1", "1000000", 1, 2))
    assert reasons(service, [fill]) == ["overflow"]
    assert unchanged(service, before)
    assert reasons(service, [price("BTCUSDT", 4, "100001")]) == []  # the sweep runs


def test_sentinel_values_poison_nothing() -> None:
    service = fresh()
    big = 2**63 - 1
    before = frozen(service)
    bad = [
        record(messages.deposit_doc(big, TS0, 1, "1")),
        record(messages.deposit_doc(10, big, 1, "1")),
        # Well-formed but refused by the book: its id (the largest the gap above the last
        # applied id, 2, allows) is not spent.
        record(messages.withdraw_doc(2 + EVENT_ID_GAP_MAX, TS0 + 5, 999, "1")),
        record(messages.price_doc("BTCUSDT", TS0, big, mark_price="100000"), "prices"),
        record(messages.price_doc("BTCUSDT", big, 2, mark_price="100000"), "prices"),
    ]
    # In event-time order: the records that do not parse take the time of the one before
    # them in their partition (those before the first that parses, that one's: the refused
    # withdrawal's TS0 + 5; the tick's opening time, TS0, where none parses), so the two
    # prices come first.
    assert reasons(service, bad) == [
        "invalid_sequence",
        "invalid_timestamp",
        "invalid_event_id",
        "invalid_timestamp",
        "unknown_account",
    ]
    assert unchanged(service, before)
    # The partition and the market still move.
    assert reasons(service, [record(messages.deposit_doc(10, TS0 + 9, 1, "1"))]) == []
    assert service.state.last_event_id == {"account-events:0": 10}
    assert service.state.tick_ts == TS0 + 9


def test_a_held_price_with_a_huge_seq_does_not_freeze_the_market() -> None:
    service = fresh()
    held = price("BTCUSDT", 2**62 - 1, "50000")  # out of the band: held, not accepted
    assert reasons(service, [held]) == []
    assert service.last_stats.prices_held == 1
    assert service.state.last_price_seq["BTCUSDT"] == 3
    # The real move (-40%): three prices in a row outside the band are accepted.
    moves = [price("BTCUSDT", seq, "60000", TS0 + seq) for seq in (4, 5, 6)]
    for r in moves:
        assert reasons(service, [r]) == []
    assert int(service.book.mark[0]) == 600_000
    assert service.state.last_price_seq["BTCUSDT"] == 6
    # A redelivered held price never counts twice.
    service2 = fresh()
    again = [price("BTCUSDT", 5, "60000"), price("BTCUSDT", 5, "60000")]
    assert reasons(service2, again[:1]) == []
    assert reasons(service2, again[1:]) == []
    assert service2.state.held["BTCUSDT"][1] == 1


def test_poison_pills_leave_the_state_exactly_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    service = fresh()
    # The pills are injected into Book's per-event operations: run the per-event path.
    service.batch_account_events = False
    assert (
        reasons(service, [record(messages.fill_doc(9, TS0, "BTCUSDT", "100000", "0.1", 1, 2))])
        == []
    )
    before = frozen(service)
    original_commit, original_deposit = Book._commit_fill, Book.deposit

    def commit_then_fail(self: Book, fill: Any, event: int) -> None:
        original_commit(self, fill, event)
        raise RuntimeError("injected after a write")

    def open_then_fail(self: Book, account_id: int, amount: int, event_id: Any = None) -> None:
        original_deposit(self, account_id, amount, event_id)
        raise ValueError("injected after opening an account")

    monkeypatch.setattr(Book, "_commit_fill", commit_then_fail)
    monkeypatch.setattr(Book, "deposit", open_then_fail)
    monkeypatch.setattr(tick.Service, "_price_accepted", lambda *a: 1 / 0)
    pills = [
        record(messages.fill_doc(10, TS0 + 1, "BTCUSDT", "100500", "0.3", 1, 2, "1", "2")),
        record(messages.fill_doc(11, TS0 + 1, "ETHUSDT", "4000", "1", 2, 1)),
        record(messages.deposit_doc(12, TS0 + 1, 77, "5")),  # opens account 77
        record(messages.deposit_doc(13, TS0 + 1, 1, "5")),
        price("BTCUSDT", 4, "100100", TS0 + 1),
    ]
    assert reasons(service, pills) == ["internal_error"] * 5
    assert unchanged(service, before)
    assert service.book.index.find(77) is None
    monkeypatch.undo()
    assert audit(service.book).ok
    # The service goes on: the same records, unpoisoned, now apply.
    good = [
        record(messages.deposit_doc(12, TS0 + 2, 77, "5")),
        record(messages.fill_doc(13, TS0 + 2, "BTCUSDT", "100500", "0.3", 1, 2, "1", "2")),
    ]
    assert reasons(service, good) == []
    assert service.book.position(1, "BTCUSDT")[0] == 400
    assert audit(service.book).ok


def test_limits_on_balances_and_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    service = fresh()
    before = frozen(service)
    huge = [
        record(messages.deposit_doc(10, TS0, 5, "92233720368.54775807")),
        record(messages.deposit_doc(11, TS0, 1, "46116860184.27387904")),
    ]
    assert reasons(service, huge) == ["overflow", "overflow"]
    assert unchanged(service, before)
    monkeypatch.setattr(tick, "ACCOUNTS_MAX", service.book.n_accounts)
    assert reasons(service, [record(messages.deposit_doc(12, TS0, 6, "1"))]) == ["limit_exceeded"]
    assert reasons(service, [record(messages.deposit_doc(13, TS0, 1, "1"))]) == []
    monkeypatch.setattr(tick, "POSITION_SLOTS_MAX", 0)
    fill = record(messages.fill_doc(14, TS0, "BTCUSDT", "100000", "0.01", 1, 2))
    assert reasons(service, [fill]) == ["limit_exceeded"]
    assert audit(service.book).ok


@pytest.mark.parametrize("batch", [True, False])
def test_an_applied_event_id_near_the_limit_cannot_block_its_partition(batch: bool) -> None:
    # Rule: an event id more than EVENT_ID_GAP_MAX above its partition's last applied id (0
    # for a partition with none) is refused (`invalid_event_id`) and spends nothing.
    service = fresh()
    service.batch_account_events = batch
    before = frozen(service)
    huge = [
        record(messages.deposit_doc(2**62 - 1, TS0, 1, "1")),  # valid, well-formed, applicable
        record(messages.deposit_doc(2 + EVENT_ID_GAP_MAX + 1, TS0, 1, "1")),
        record(messages.deposit_doc(EVENT_ID_GAP_MAX + 1, TS0, 1, "1"), partition=1),
    ]
    assert reasons(service, huge) == ["invalid_event_id"] * 3
    assert unchanged(service, before)
    # The partition goes on; a jump within the gap is applied (and a fresh partition's
    # first id may be up to the gap).
    ok = [
        record(messages.deposit_doc(3, TS0, 1, "1")),
        record(messages.deposit_doc(3 + EVENT_ID_GAP_MAX, TS0, 1, "1")),
        record(messages.deposit_doc(EVENT_ID_GAP_MAX, TS0, 1, "1"), partition=1),
    ]
    assert reasons(service, ok) == []
    assert service.state.last_event_id == {
        "account-events:0": 3 + EVENT_ID_GAP_MAX,
        "account-events:1": EVENT_ID_GAP_MAX,
    }


def test_an_accepted_ts_near_the_limit_cannot_set_the_event_time_for_good() -> None:
    # Rule: the event time a tick closes with is its largest accepted ts, but at most
    # TS_SKEW_MAX past the event time it opened with; the message itself is applied.
    service = fresh()
    assert service.state.tick_ts == TS0
    far = TS_MAX - 1
    assert reasons(service, [record(messages.deposit_doc(3, far, 1, "1"))]) == []
    assert reasons(service, [price("BTCUSDT", 4, "100000", far)]) == []
    assert service.state.last_event_id == {"account-events:0": 3}
    assert service.state.tick_ts == TS0 + 2 * TS_SKEW_MAX  # a week per tick, not 2100
    # Real time catches up and the event time follows it again.
    real = TS0 + 3 * TS_SKEW_MAX
    assert reasons(service, [record(messages.deposit_doc(4, real, 1, "1"))]) == []
    assert service.state.tick_ts == real
    assert reasons(service, [record(messages.deposit_doc(5, real - 10, 1, "1"))]) == []
    assert service.state.tick_ts == real  # it only rises
    # A fresh service's first tick: bounded past its earliest accepted ts.
    _offsets.clear()
    first = memory_service(Profile.shipped(), ServiceConfig())
    docs = [messages.deposit_doc(1, TS0, 1, "5"), messages.deposit_doc(2, far, 1, "5")]
    assert reasons(first, [record(doc) for doc in docs]) == []
    assert first.state.tick_ts == TS0 + TS_SKEW_MAX


def _twins(records: list[Record], kept: list[Record]) -> tuple[Service, Service]:
    """A fresh service ticked with `records` and one ticked with `kept` only."""
    services = []
    for batch in (records, kept):
        service = fresh()
        service.tick(
            [
                Record(r.topic, r.partition, r.offset + 100, r.key, r.value)  # after fresh()'s
                for r in batch
            ]
        )
        services.append(service)
    return services[0], services[1]


def _same_state(a: Service, b: Service) -> bool:
    extra_a, extra_b = a.extra()["service"], b.extra()["service"]
    extra_a.pop("offsets"), extra_b.pop("offsets")
    return book_batch(a.book).equals(book_batch(b.book)) and extra_a == extra_b


def test_a_rejected_record_moves_no_other_record_in_the_tick_order() -> None:
    # Partition 1 opens with a record that does not parse: it must not hold back the deposit
    # behind it (TS0 - 5) until the tick's opening event time (TS0).
    bad = Record("account-events", 1, 0, None, b"{not json")
    first = Record("account-events", 1, 1, None, messages.encode(deposit(3, TS0 - 5, 31)))
    second = Record("account-events", 0, 0, None, messages.encode(deposit(3, TS0 - 1, 32)))
    a, b = _twins([bad, first, second], [first, second])
    assert a.book.account_id[-2:].tolist() == [31, 32]
    assert _same_state(a, b)


def test_an_event_refused_whatever_the_marks_does_not_split_a_price_step() -> None:
    # A long of 1.5 BTC on 10,000; a -9% print then a full recovery in one tick: one step,
    # at the last mark, liquidates no one. A redelivered (duplicate) event between the two
    # prices must not make the -9% print a step of its own.
    def tick_records(with_duplicate: bool) -> list[Record]:
        rows = [
            (
                "account-events",
                messages.fill_doc(3, TS0, "BTCUSDT", "100000", "1.5", 1, 2),
            ),
            ("prices", messages.price_doc("BTCUSDT", TS0 + 1, 4, mark_price="91000")),
            *(
                [("account-events", deposit(1, TS0 + 2, 1))]  # id 1 again: a duplicate
                if with_duplicate
                else []
            ),
            ("prices", messages.price_doc("BTCUSDT", TS0 + 3, 5, mark_price="100000")),
        ]
        offsets = {"account-events": 0, "prices": 0}
        out = []
        for topic, doc in rows:
            out.append(Record(topic, 0, offsets[topic], None, messages.encode(doc)))
            offsets[topic] += 1
        return out

    a, b = _twins(tick_records(True), tick_records(False))
    assert a.book.position(1, "BTCUSDT")[0] == b.book.position(1, "BTCUSDT")[0] != 0
    assert _same_state(a, b)


def deposit(event_id: int, ts: int, account: int) -> dict[str, Any]:
    return messages.deposit_doc(event_id, ts, account, "10000")
