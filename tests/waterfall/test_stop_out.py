"""FX stop-out: margin level = equity / used margin, the broker's levels, the MT4/MT5 order
(largest loss first, one at a time, re-checking), contract sizes in lots of base currency."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.book.book import (
    STATUS_BANKRUPT,
    STATUS_LIQUIDATE,
    STATUS_MARGIN_CALL,
    STATUS_OK,
    Book,
)
from engine.book.instruments import InstrumentTable
from engine.waterfall.conservation import audit
from engine.waterfall.models import model_sweep
from engine.waterfall.profile import Profile, ProfileError, StopOutRules
from engine.waterfall.run import run_waterfall
from engine.waterfall.stop_out import margin_level_status

DATA = Path(__file__).resolve().parents[2] / "engine" / "data" / "fx"
USD = 100  # money_decimals 2: one unit is a cent
PIP5 = 1  # EURUSD tick 0.00001
MICRO = 1  # lot_size 0.01 lots = 1,000 EUR


def _fx_book(profile: Profile) -> Book:
    book = Book(InstrumentTable.load(DATA / "instruments.json"), default_leverage=100)
    book.open_account(profile.fund_account_id)
    book.deposit(9, 10**7 * USD)  # the market's side of every trade
    return book


def test_contract_size_is_lots_of_base_currency() -> None:
    # EURUSD: 1 lot = 100,000 EUR, lot_size 0.01, tick 0.00001 USD: one 0.01-lot moving one
    # tick is 1,000 EUR x 0.00001 = 0.01 USD = 1 money unit.
    table = InstrumentTable.load(DATA / "instruments.json")
    eur = table.symbol_index("EURUSD")
    assert int(table.tick_value[eur]) == 1
    # XAUUSD: 1 lot = 100 oz; 0.01 lot moving 0.01 USD = 1 oz x 0.01 = 1 cent.
    assert int(table.tick_value[table.symbol_index("XAUUSD")]) == 1


def test_seed_margin_level_example() -> None:
    # Equity 900 USD, used margin 300 USD: level = 900 / 300 = 300%.
    # 0.25 lots EURUSD at 1.20000, 100:1: notional 25,000 EUR x 1.2 = 30,000 USD, margin 300.
    profile = Profile.shipped("fx-broker")
    assert profile.stop_out == StopOutRules(90_000_000, 20_000_000)  # 90% call, 20% stop-out
    book = _fx_book(profile)
    book.deposit(1, 900 * USD)
    book.apply_trade("EURUSD", 1_20000, [(1, 25 * MICRO, 0), (9, -25 * MICRO, 0)])
    book.set_mark("EURUSD", 1_20000)
    rows, equity, used, status = model_sweep(book, profile)
    row = book.row_of(1)
    assert (int(equity[row]), int(used[row])) == (900 * USD, 300 * USD)
    assert Fraction(int(equity[row]), int(used[row])) == 3  # 300%
    assert status[row] == STATUS_OK
    # A platform stopping out at 50% would act at equity <= 0.5 x used margin.
    half = StopOutRules(90_000_000, 50_000_000)
    assert margin_level_status(np.array([150 * USD]), np.array([300 * USD]), half)[0] == (
        STATUS_LIQUIDATE
    )


def test_titan_twenty_percent_boundary() -> None:
    # E(p) = 900 + 25,000 (p - 1.2); used margin = ceil(250 p) cents-exact.
    # p = 1.16633: E = 900 - 841.75 = 58.25; used = 291.5825 -> 291.59 (rounded up);
    #   20% of 291.59 = 58.318 >= 58.25: stop-out.
    # p = 1.16634: E = 58.50; used = 291.585 -> 291.59; 58.318 < 58.50: margin call only.
    profile = Profile.shipped("fx-broker")
    book = _fx_book(profile)
    book.deposit(1, 900 * USD)
    book.apply_trade("EURUSD", 1_20000, [(1, 25 * MICRO, 0), (9, -25 * MICRO, 0)])
    row = book.row_of(1)
    book.set_mark("EURUSD", 1_16634)
    _, equity, used, status = model_sweep(book, profile)
    assert (int(equity[row]), int(used[row])) == (5850, 29159)
    assert status[row] == STATUS_MARGIN_CALL
    book.set_mark("EURUSD", 1_16633)
    _, equity, used, status = model_sweep(book, profile)
    assert (int(equity[row]), int(used[row])) == (5825, 29159)
    assert status[row] == STATUS_LIQUIDATE
    result = run_waterfall(book, profile)
    assert [(e.kind, e.account_id, e.symbol, e.qty) for e in result.events] == [
        ("liquidation", 1, "EURUSD", 25)
    ]
    assert book.balance[row] == 5825 and not book.positions_of(1)
    assert audit(book, closed=True).ok


def test_largest_loss_first_one_at_a_time_until_restored() -> None:
    # The example book (engine/data/fx), account 2: balance 4,800 USD,
    #   long 1 lot EURUSD at 1.20000, mark 1.16630: 100,000 x -0.0337 = -3,370
    #   short 0.5 lots GBPUSD at 1.25000, mark 1.27000: 50,000 x -0.02 = -1,000
    #   long 0.1 lots XAUUSD at 2,300, mark 2,290: 10 oz x -10 = -100
    # equity = 4,800 - 4,470 = 330; used margin = 1,166.30 + 635 + 229 = 2,030.30
    # level = 16.3% <= 20%: stop-out. Close EURUSD (the largest loss): equity stays 330 (the
    # loss is realized), used margin 864, level 38.2% > 20%: restored, the rest stays open.
    profile = Profile.shipped("fx-broker")
    book = _example_book(profile)
    row = book.row_of(2)
    _, equity, used, status = model_sweep(book, profile)
    assert (int(equity[row]), int(used[row])) == (330 * USD, 2_030_30)
    assert status[row] == STATUS_LIQUIDATE
    result = run_waterfall(book, profile)
    closed = [(e.account_id, e.symbol) for e in result.events if e.kind == "liquidation"]
    assert (2, "EURUSD") in closed and (2, "GBPUSD") not in closed
    assert {book.instruments.instruments[i].symbol for i, _, _ in book.positions_of(2)} == {
        "GBPUSD",
        "XAUUSD",
    }
    assert book.account_margin(2)[0] == 330 * USD
    # Account 1 (0.25 lots at 1.2, equity 57.50) is stopped out, account 3 (bankrupt: -100)
    # closed and made whole by the broker under negative-balance protection.
    payouts = [(e.account_id, e.amount) for e in result.events if e.kind == "insurance_payout"]
    assert payouts == [(3, 100 * USD)]
    assert book.balance[book.row_of(3)] == 0
    assert audit(book, closed=True).ok
    _, equity, used, status = model_sweep(book, profile)
    assert status[row] in (STATUS_OK, STATUS_MARGIN_CALL)


def _example_book(profile: Profile) -> Book:
    from engine.io.book_inputs import book_from_inputs, read_book_inputs

    table = InstrumentTable.load(DATA / "instruments.json")
    inputs = read_book_inputs(
        table, DATA / "accounts.csv", DATA / "positions.csv", DATA / "marks.csv"
    )
    book = book_from_inputs(
        table, inputs.accounts, inputs.positions, inputs.marks, warning_rate=profile.warning_rate
    )
    book.open_account(profile.fund_account_id)
    return book


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"stop_out_level": "0"}, "stop_out"),
        ({"stop_out_level": "0.5", "margin_call_level": "0.3"}, "stop_out"),
        ({"stop_out_level": "abc"}, "stop_out.stop_out_level"),
    ],
)
def test_bad_stop_out_sections(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        Profile.from_dict({"stop_out": section})


# ----- exact reference on random books ---------------------------------------------------
def _reference_status(equity: int, used: int, rules: StopOutRules) -> int:
    if equity < 0:
        return STATUS_BANKRUPT
    if used > 0 and Fraction(equity, used) <= Fraction(rules.stop_out_level, 10**8):
        return STATUS_LIQUIDATE
    if used > 0 and Fraction(equity, used) <= Fraction(rules.margin_call_level, 10**8):
        return STATUS_MARGIN_CALL
    return STATUS_OK


@pytest.mark.parametrize("seed", range(5))
def test_random_books_match_the_reference_and_conserve(seed: int) -> None:
    rng = random.Random(seed)
    profile = Profile.shipped("fx-broker")
    rules = profile.stop_out
    assert rules is not None
    book = _fx_book(profile)
    marks = {"EURUSD": 1_10000, "GBPUSD": 1_27000, "XAUUSD": 2300_00}
    for symbol, mark in marks.items():
        book.set_mark(symbol, mark)
    for account in (*range(1, 9), *range(10, 31)):
        book.deposit(account, rng.randint(100, 5_000) * USD)
        for symbol, mark in marks.items():
            if rng.random() < 0.6:
                qty = rng.choice([-1, 1]) * rng.randint(1, 200)
                book.apply_trade(symbol, mark, [(account, qty, 0), (9, -qty, 0)])
    for _ in range(10):
        for symbol in marks:
            marks[symbol] = marks[symbol] * rng.randint(985, 1015) // 1000
            book.set_mark(symbol, marks[symbol])
        _, equity, used, status = model_sweep(book, profile)
        for row, account in enumerate(book.account_id.tolist()):
            e = book.account_equity(account)
            im = sum(
                -((-abs(q) * int(book.mark_lot_value[i])) // 100)
                for i, q, _ in book.positions_of(account)
            )
            assert (int(equity[row]), int(used[row])) == (e, im), (seed, account)
            assert status[row] == _reference_status(e, im, rules), (seed, account)
        before = {a: book.positions_of(a) for a in (*range(1, 9), *range(10, 31))}
        result = run_waterfall(book, profile)
        assert audit(book, closed=True).ok
        # Each stopped account lost its largest-loss positions first, and stopped as soon as
        # its level was restored.
        for account in {e.account_id for e in result.events if e.kind == "liquidation"}:
            _, eq, im, st = model_sweep(book, profile)
            row = book.row_of(account)
            assert st[row] < STATUS_LIQUIDATE or not book.positions_of(account)
            assert len(book.positions_of(account)) < len(before[account])
