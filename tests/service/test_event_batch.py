"""The batch path for account events (engine.book.batch, the C kernel) against the per-event
path (Service.batch_account_events off, the reference): random streams, with every refusal
reason, many events on the same accounts, several partitions, sharding, tight limits, give
the same book (its columns as laid out, pending positions, leverage settings), ledger,
service state, dead letters and snapshot bytes."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.book.limits import RESERVED_ACCOUNT_BASE
from engine.io.snapshot import book_batch
from engine.service import event_batch, messages, tick
from engine.service.order import EventTime, tick_order
from engine.service.outputs import TickOutputs
from engine.service.ports import Output, Record
from engine.service.state import ServiceConfig, TickStats
from engine.service.tick import Service
from engine.waterfall.profile import Profile
from tests.service.scenario import TS0, memory_service

pytestmark = pytest.mark.kernel

FUND = Profile.shipped().fund_account_id
ACCOUNTS = [1, 2, 3, 4, 5, 77, 78, FUND, RESERVED_ACCOUNT_BASE + 5]
AMOUNTS = ["0.5", "10", "1000", "25000", "46116860184.27387904", "0.000000001", "-3"]
PRICES = {"BTCUSDT": ["100000", "100500", "99000", "140000", "100000.05"], "ETHUSDT": ["4000"]}
QTYS = ["0.001", "0.05", "0.3", "2", "40", "0"]

account = st.sampled_from(ACCOUNTS)
deposit = st.builds(
    lambda a, m: ("deposit", a, m), account, st.sampled_from(AMOUNTS[:5] + AMOUNTS[5:])
)
withdraw = st.builds(lambda a, m: ("withdraw", a, m), account, st.sampled_from(AMOUNTS))
leverage = st.builds(
    lambda a, s, lev: ("leverage", a, s, lev),
    account,
    st.sampled_from(["BTCUSDT", "ETHUSDT"]),
    st.sampled_from([1, 2, 5, 10, 20, 50, 100, 125, 5000, 0]),
)
fill = st.builds(
    lambda s, p, q, b, sl, f: ("fill", s, p, q, b, sl, f),
    st.sampled_from(["BTCUSDT", "BTCUSDT", "ETHUSDT"]),
    st.integers(0, 4),
    st.sampled_from(QTYS),
    account,
    account,
    st.sampled_from(["0", "1", "0.00000001"]),
)
step = st.tuples(
    st.one_of(deposit, deposit, withdraw, fill, fill, fill, fill, leverage),
    st.integers(0, 1),  # partition
    st.integers(0, 9),  # 0: reuse an old event id (a duplicate)
)


def _doc(event: tuple[Any, ...], event_id: int) -> dict[str, Any]:
    kind = event[0]
    if kind == "deposit":
        return messages.deposit_doc(event_id, TS0, event[1], event[2])
    if kind == "withdraw":
        return messages.withdraw_doc(event_id, TS0, event[1], event[2])
    if kind == "leverage":
        return messages.leverage_doc(event_id, TS0, event[1], event[2], event[3])
    _, symbol, p, qty, buyer, seller, fee = event
    prices = PRICES[symbol]
    return messages.fill_doc(
        event_id, TS0 + 1, symbol, prices[p % len(prices)], qty, buyer, seller, fee, fee
    )


def _records(steps: list[tuple[Any, int, int]]) -> list[Record]:
    records, offsets, next_id = [], [100, 100], [100, 100]
    for event, partition, dup in steps:
        event_id = next_id[partition] - 3 if dup == 0 else next_id[partition]
        next_id[partition] += 1
        offset = offsets[partition]
        offsets[partition] += 1
        value = messages.encode(_doc(event, event_id))
        records.append(Record("account-events", partition, offset, None, value))
    return records


def _service(config: ServiceConfig, sharded: bool, batch: bool) -> Service:
    service = memory_service(Profile.shipped(), config)
    if sharded:
        service.partition_of_account = lambda a: a % 2
    service.batch_account_events = batch
    # A symbol's first price is held until 3 prices agree (engine.service.tick): three.
    warm = [
        *[
            Record(
                "prices",
                0,
                seq - 1,
                None,
                messages.encode(messages.price_doc("BTCUSDT", TS0, seq, mark_price="100000")),
            )
            for seq in (1, 2, 3)
        ],
        *[
            Record(
                "account-events",
                a % 2,
                k,
                None,
                messages.encode(messages.deposit_doc(10 + k, TS0, a, "30000")),
            )
            for k, a in enumerate([1, 2, 3, 4])
        ],
    ]
    service.tick(warm)
    return service


def _state(service: Service) -> dict[str, Any]:
    book = service.book
    p = book.positions
    ledger = {
        name: book.ledger.column(name).tolist()
        for name in ("event_id", "debit", "credit", "amount", "reason")
    }
    return {
        "ids": book.account_id.tolist(),
        "balance": book.balance.tolist(),
        "acct_start": p.acct_start.tolist(),
        "slots": [p.instrument.tolist(), p.qty.tolist(), p.cost.tolist(), p.leverage.tolist()],
        "pending": dict(p.pending),
        "settings": dict(book._leverage_setting),
        "house": dict(book.house_balance),
        "next_event_id": book._next_event_id,
        "changed": sorted(book.changed_rows),
        "ledger": ledger,
        "extra": service.extra(),
    }


def _dead(outputs: list[Output]) -> list[tuple[str, str]]:
    docs = [json.loads(o.value) for o in outputs if o.topic == "dead-letter"]
    return [(d["reason"], d["detail"]) for d in docs]


configs = st.sampled_from(
    [
        ServiceConfig(),
        ServiceConfig(fill_checks=False),
        ServiceConfig(band_rate=0),
    ]
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(step, min_size=1, max_size=60),
    config=configs,
    sharded=st.booleans(),
    limits=st.sampled_from([None, "accounts", "slots"]),
)
def test_batch_path_equals_per_event_path(
    steps: list[tuple[Any, int, int]], config: ServiceConfig, sharded: bool, limits: str | None
) -> None:
    records = _records(steps)
    runs = []
    with pytest.MonkeyPatch.context() as mp:
        for batch in (False, True):
            service = _service(config, sharded, batch)
            if limits == "accounts":
                mp.setattr(tick, "ACCOUNTS_MAX", service.book.n_accounts + 1)
            elif limits == "slots":
                mp.setattr(tick, "POSITION_SLOTS_MAX", len(service.book.pos_qty) + 3)
            half = len(records) // 2
            outputs = service.tick(records[:half]) + service.tick(records[half:])
            runs.append((service, outputs))
    (ref, ref_out), (got, got_out) = runs
    assert _dead(got_out) == _dead(ref_out)
    assert got_out == ref_out
    assert _state(got) == _state(ref)
    assert book_batch(got.book).equals(book_batch(ref.book))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=60), config=configs)
def test_kernel_refusal_codes_equal_the_per_event_reasons(
    steps: list[tuple[Any, int, int]], config: ServiceConfig
) -> None:
    """The kernel's own refusal codes (not stopping at refusals) are the per-event path's
    reasons, event by event, and the state after is the same. Both apply the run alone, in
    the order a tick applies it (engine.service.order), without the tick's risk step."""
    records = _records(steps)

    def apply(batch: bool) -> tuple[Service, list[Output]]:
        service = _service(config, False, batch)
        service.state.tick += 1
        out = TickOutputs(service.config.shard, service.state.tick)
        for r in records:
            service.state.offsets[f"{r.topic}:{r.partition}"] = r.offset + 1
        instruments = service.book.instruments
        ordered = [
            r for r, _ in tick_order(records, config.topics, service.state.tick_ts, instruments)
        ]
        event_batch.apply_account_records(
            service, ordered, out, TickStats(), EventTime(0), stop_on_reject=False
        )
        return service, out.finish(0)

    ref, ref_out = apply(False)
    got, got_out = apply(True)
    got_reasons = [json.loads(o.value)["reason"] for o in got_out if o.topic == "dead-letter"]
    assert got_reasons == [r for r, _ in _dead(ref_out)]
    got.book.compact()  # as the tick's sweep does after its account events
    ref.book.compact()
    want, have = _state(ref), _state(got)
    for key in (
        "ids",
        "balance",
        "slots",
        "pending",
        "settings",
        "house",
        "ledger",
        "next_event_id",
    ):
        assert have[key] == want[key], key


def test_every_kernel_reason_is_reachable() -> None:
    """One stream that refuses with each reason the kernel codes, through both paths."""
    docs = [
        messages.deposit_doc(100, TS0, 1, "10"),
        messages.deposit_doc(100, TS0, 1, "10"),  # duplicate_event_id
        messages.deposit_doc(101, TS0, FUND, "10"),  # reserved_account
        messages.withdraw_doc(102, TS0, 99, "1"),  # unknown_account
        messages.deposit_doc(103, TS0, 1, "46116860184.27387904"),  # overflow
        messages.fill_doc(104, TS0, "BTCUSDT", "100000", "40", 1, 2),  # insufficient_margin
        messages.fill_doc(105, TS0, "ETHUSDT", "4000", "1", 1, 2),  # no_mark
        messages.fill_doc(106, TS0, "BTCUSDT", "140000", "0.01", 1, 2),  # price_out_of_band
        messages.leverage_doc(107, TS0, 1, "BTCUSDT", 5000),  # leverage_above_max
        messages.withdraw_doc(108, TS0, 3, "999999"),  # insufficient_margin
        messages.fill_doc(109, TS0, "BTCUSDT", "100000", "0.01", 1, 2),
        messages.fill_doc(110, TS0, "BTCUSDT", "100000", "0.01", 1, 2),
        messages.leverage_doc(111, TS0, 1, "BTCUSDT", 1),  # insufficient_margin (lowered)
    ]
    records = [
        Record("account-events", 0, 100 + k, None, messages.encode(d)) for k, d in enumerate(docs)
    ]
    results = []
    for batch in (False, True):
        service = _service(ServiceConfig(), False, batch)
        results.append((_dead(service.tick(records)), _state(service)))
    assert results[0] == results[1]
    reasons = {r for r, _ in results[0][0]}
    assert {
        "duplicate_event_id",
        "reserved_account",
        "unknown_account",
        "overflow",
        "insufficient_margin",
        "no_mark",
        "price_out_of_band",
        "leverage_above_max",
    } <= reasons


def test_many_events_on_one_account_in_one_batch() -> None:
    docs = [messages.deposit_doc(100, TS0, 1, "100000")]
    for k in range(200):
        side = "0.01" if k % 3 else "0.02"
        buyer, seller = (1, 2) if k % 2 else (2, 1)
        docs.append(
            messages.fill_doc(101 + k, TS0, "BTCUSDT", "100000", side, buyer, seller, "0.5", "0.25")
        )
    records = [
        Record("account-events", 0, 100 + k, None, messages.encode(d)) for k, d in enumerate(docs)
    ]
    states = []
    for batch in (False, True):
        service = _service(ServiceConfig(), False, batch)
        service.tick(records)
        states.append(_state(service))
    assert states[0] == states[1]
    assert np.sign(len(states[0]["ledger"]["amount"])) == 1
