"""Margin per contract and a runtime margin change: the CME crude oil example of 2020."""

from __future__ import annotations

import pytest

from engine.book.book import STATUS_LIQUIDATE, STATUS_MARGIN_CALL
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentError, InstrumentTable
from engine.exchange.exchange_tick import exchange_tick
from engine.exchange.margin_change import (
    apply_margin_change,
    parse_margin_change,
    read_margin_changes,
)
from engine.waterfall.conservation import audit
from engine.waterfall.profile import Profile
from tests.exchange.example import DATA, example_book

CENTS = 100  # money_decimals 2
DAY_MS = 86_400_000


def crude_liquidated(tick) -> set[int]:
    events = tick.waterfall.events
    return {e.account_id for e in events if e.kind == "liquidation" and e.symbol == "CLZ0"}


def status_of(book, account_id: int) -> int:
    risk = book.sweep(with_initial_margin=False)
    return int(risk.status[book.row_of(account_id)])


def test_per_contract_margin_before_the_change() -> None:
    # CLZ0: 1,000 barrels a lot; maintenance 9,000 and initial 9,900 a contract.
    book, _ = example_book(Profile.shipped("cme-like"))
    risk = book.sweep()
    row = book.row_of(2001)
    # 2001: long 10 at 40.00, balance 100,000: equity 100,000, MM = 10 x 9,000 = 90,000,
    # IM = 10 x 9,900 = 99,000; 90,000 >= 0.9 x 100,000: a margin call (warning) only.
    assert risk.equity[row] == 100_000 * CENTS
    assert risk.maintenance_margin[row] == 90_000 * CENTS
    assert risk.initial_margin[row] == 99_000 * CENTS
    assert risk.status[row] == STATUS_MARGIN_CALL
    # 2003: long 1, balance 5,000 < 9,000: short already before any change.
    assert risk.status[book.row_of(2003)] == STATUS_LIQUIDATE


def test_crude_margin_raised_to_13000_calls_with_a_deadline_then_liquidates() -> None:
    profile = Profile.shipped("cme-like")
    book, state = example_book(profile)
    ts, (change,) = read_margin_changes(DATA / "margin_change.json", book.instruments)
    calls = apply_margin_change(book, profile, change, ts, state.pending)
    # After: MM = 10 x 13,000 = 130,000 > equity 100,000; IM = 10 x 14,300 = 143,000.
    # Only 2001 is short because of the change (2003 was short before: not called; 2002
    # and 2004 hold 200,000 and 20,000 against 130,000 and 13,000).
    assert [c.account_id for c in calls] == [2001]
    call = calls[0]
    assert call.reason == "margin_change"
    assert (call.equity, call.maintenance_margin, call.initial_margin) == (
        100_000 * CENTS,
        130_000 * CENTS,
        143_000 * CENTS,
    )
    assert call.shortfall == 30_000 * CENTS + 1  # above MM by one cent
    assert call.call_amount == 43_000 * CENTS  # back to the initial margin
    assert call.deadline_ts == ts + DAY_MS
    # The tick at the change: 2001 is held, 2003 (short before) is liquidated.
    tick = exchange_tick(book, profile, state, ts)
    audit(book, closed=True)
    assert tick.settled.held == [2001]
    # (the copper accounts, unclamped at 72,000 here, are the price-limit tests' subject)
    assert crude_liquidated(tick) == {2003}
    assert book.position(2001, "CLZ0")[0] == 10
    # One millisecond before the deadline: still held.
    tick = exchange_tick(book, profile, state, ts + DAY_MS - 1)
    assert tick.settled.held == [2001] and not tick.waterfall.accounts_liquidated
    # At the deadline, still short: the call lapses and the waterfall takes the account.
    tick = exchange_tick(book, profile, state, ts + DAY_MS)
    audit(book, closed=True)
    assert tick.settled.lapsed == [2001]
    assert book.position(2001, "CLZ0")[0] == 0
    assert len(state.pending) == 0


def test_a_met_call_is_closed() -> None:
    profile = Profile.shipped("cme-like")
    book, state = example_book(profile)
    ts, (change,) = read_margin_changes(DATA / "margin_change.json", book.instruments)
    apply_margin_change(book, profile, change, ts, state.pending)
    # Depositing the shortfall, 30,000.01, puts equity one cent above MM: no longer short.
    book.deposit(2001, 30_000 * CENTS + 1)
    assert status_of(book, 2001) == STATUS_MARGIN_CALL
    tick = exchange_tick(book, profile, state, ts + 1)
    audit(book, closed=True)
    assert tick.settled.met == [2001] and book.position(2001, "CLZ0")[0] == 10


def test_without_grace_nobody_is_called() -> None:
    doc = {"exchange": {"margin_call_grace_ms": 0}, "negative_balance": {"protection": False}}
    profile = Profile.from_dict(doc)
    book, state = example_book(profile)
    ts, (change,) = read_margin_changes(DATA / "margin_change.json", book.instruments)
    assert apply_margin_change(book, profile, change, ts, state.pending) == []
    tick = exchange_tick(book, profile, state, ts)
    audit(book, closed=True)
    assert crude_liquidated(tick) == {2001, 2003}


def test_per_contract_tiers_round_trip_through_the_file_form() -> None:
    table = InstrumentTable.load(DATA / "instruments.json")
    again = InstrumentTable.from_dict(table.to_dict())
    assert again.instruments == table.instruments
    assert again.tier_mm_per_contract.tolist() == [900_000, 0]
    assert again.instruments[1].price_limit == 5_000_000  # 5%


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([{"margin_per_contract": {"maintenance": "1", "initial": "2"}, "mmr": "0.1"}], "not both"),
        (
            [
                {"max_notional": "10", "margin_per_contract": {"maintenance": "1", "initial": "1"}},
                {"max_notional": None, "mmr": "0.1", "max_leverage": 1},
            ],
            "one tier",
        ),
        ([{"margin_per_contract": {"maintenance": "2", "initial": "1"}}], "initial"),
        ([{"margin_per_contract": {"maintenance": "0", "initial": "1"}}], "maintenance"),
        ([{"margin_per_contract": {"maintenance": "0.001", "initial": "1"}}], "maintenance"),
        ([{"margin_per_contract": {"maintenance": "1"}}], "margin_per_contract"),
    ],
)
def test_bad_per_contract_tiers_name_the_field(tiers: list, message: str) -> None:
    doc = {
        "money_decimals": 2,
        "instruments": [
            {"symbol": "X", "tick_size": "1", "lot_size": "1", "tiers": tiers},
        ],
    }
    with pytest.raises(InstrumentError, match=message):
        InstrumentTable.from_dict(doc)
    instruments = InstrumentTable.load(DATA / "instruments.json")
    with pytest.raises(Rejected) as err:
        parse_margin_change({"symbol": "CLZ0", "tiers": tiers}, instruments, "change")
    assert err.value.reason == "invalid_margin_change"


def test_margin_change_rejections_are_named(tmp_path) -> None:
    instruments = InstrumentTable.load(DATA / "instruments.json")
    with pytest.raises(Rejected) as err:
        parse_margin_change({"symbol": "NOPE", "tiers": []}, instruments, "c")
    assert err.value.reason == "unknown_symbol"
    with pytest.raises(Rejected) as err:
        parse_margin_change({"symbol": "CLZ0"}, instruments, "c")
    assert err.value.reason == "missing_field"
    bad = tmp_path / "change.json"
    bad.write_text('{"ts": -1, "changes": []}')
    with pytest.raises(Rejected) as err:
        read_margin_changes(bad, instruments)
    assert err.value.reason == "invalid_timestamp"
    bad.write_text('{"ts": 1, "changes": []}')
    with pytest.raises(Rejected) as err:
        read_margin_changes(bad, instruments)
    assert err.value.reason == "invalid_margin_change"
