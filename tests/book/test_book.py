"""The book: fills, deposits, withdrawals, leverage, rejections, conservation."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.book.ledger import CLEARING, FEES
from engine.waterfall.conservation import ConservationError, audit

USDT = 10**8


def table() -> InstrumentTable:
    return InstrumentTable.from_dict(
        {
            "instruments": [
                {
                    "symbol": "BTCUSDT",
                    "tick_size": "0.1",
                    "lot_size": "0.001",
                    "tiers": [
                        {"max_notional": "50000", "mmr": "0.004", "max_leverage": 125},
                        {"max_notional": "250000", "mmr": "0.005", "max_leverage": 100},
                        {"max_notional": None, "mmr": "0.5", "max_leverage": 1},
                    ],
                },
                {
                    "symbol": "ETHUSDT",
                    "tick_size": "0.01",
                    "lot_size": "0.01",
                    "tiers": [{"max_notional": None, "mmr": "0.01", "max_leverage": 50}],
                },
            ]
        }
    )


def state(book: Book) -> tuple:
    book.compact()  # a layout change only: compare what the book holds, not where
    book_arrays = (
        book.balance.copy(),
        book.acct_start.copy(),
        book.pos_qty.copy(),
        book.pos_cost.copy(),
        book.pos_leverage.copy(),
        book.mark.copy(),
    )
    return (
        book_arrays,
        dict(book._pending),
        dict(book.house_balance),
        len(book.ledger),
        book.n_accounts,
    )


def same_state(a: tuple, b: tuple) -> bool:
    arrays_a, *rest_a = a
    arrays_b, *rest_b = b
    return all(np.array_equal(x, y) for x, y in zip(arrays_a, arrays_b, strict=True)) and (
        rest_a == rest_b
    )


def test_open_increase_reduce_close_flip_worked_example() -> None:
    # BTCUSDT: tick 0.1, lot 0.001 -> tick_value = 0.1 * 0.001 * 1e8 = 10_000 units.
    book = Book(table())
    book.deposit(7, 1_000 * USDT)
    # Buy 0.002 BTC at 100000.0 (1_000_000 ticks): cost = 2 * 1_000_000 * 10_000 = 2e10 (200 USDT)
    assert book.apply_fill(7, "BTCUSDT", 2, 1_000_000) == 0
    # Buy 0.001 more at 100300.0: cost += 1 * 1_003_000 * 10_000 -> 30_030_000_000 (300.30 USDT)
    assert book.apply_fill(7, "BTCUSDT", 1, 1_003_000) == 0
    assert book.position(7, "BTCUSDT") == (3, 30_030_000_000)
    # Sell 0.001 at 100500.0: closed cost = ceil(30_030_000_000 / 3) = 10_010_000_000,
    # proceeds 10_050_000_000, realized = 40_000_000 (0.40 USDT).
    assert book.apply_fill(7, "BTCUSDT", -1, 1_005_000) == 40_000_000
    assert book.position(7, "BTCUSDT") == (2, 20_020_000_000)
    # Sell 0.003 at 99000.0: closes 2 lots (realized 2*9_900_000_000 - 20_020_000_000
    # = -220_000_000) and opens a 1-lot short at 99000.0 (cost -9_900_000_000).
    assert book.apply_fill(7, "BTCUSDT", -3, 990_000) == -220_000_000
    assert book.position(7, "BTCUSDT") == (-1, -9_900_000_000)
    # Buy back 0.001 at 98000.0: realized = -9_800_000_000 + 9_900_000_000 = 100_000_000.
    assert book.apply_fill(7, "BTCUSDT", 1, 980_000) == 100_000_000
    assert book.position(7, "BTCUSDT") == (0, 0)
    # 1000 + 0.40 - 2.20 + 1.00 = 999.20 USDT
    assert book.balance[book.row_of(7)] == 999_20_000_000
    assert book.house_balance[CLEARING] == -(40_000_000 - 220_000_000 + 100_000_000)
    assert audit(book).ok


def test_partial_close_rounds_in_the_house_favour() -> None:
    # 3 lots at costs 1 + 1 + 2 ticks (tick_value 10_000 at ETH: 0.01 * 0.01 * 1e8 = 10_000)
    book = Book(table())
    book.deposit(1, USDT)
    book.apply_fill(1, "ETHUSDT", 1, 1)
    book.apply_fill(1, "ETHUSDT", 1, 1)
    book.apply_fill(1, "ETHUSDT", 1, 2)  # cost 40_000 over 3 lots: 13_333.33 per lot
    realized = book.apply_fill(1, "ETHUSDT", -1, 1)  # exact: 10_000 - 13_333.33 = -3_333.33
    assert realized == -3_334  # rounded down
    realized += book.apply_fill(1, "ETHUSDT", -2, 1)  # closes the rest: 20_000 - 26_666
    assert realized == 30_000 - 40_000  # the whole life is exact


@st.composite
def fill_sequences(draw: st.DrawFn) -> list[tuple[int, int, int, int]]:
    n = draw(st.integers(1, 30))
    return [
        (
            draw(st.integers(1, 3)),  # buyer account
            draw(st.integers(0, 1)),  # instrument
            draw(st.integers(1, 50)),  # lots
            draw(st.integers(1, 2_000_000)),  # price ticks
        )
        for _ in range(n)
    ]


@settings(max_examples=100, deadline=None)
@given(fill_sequences(), st.data())
def test_random_trading_conserves_money_and_realizes_exactly(
    fills: list[tuple[int, int, int, int]], data: st.DataObject
) -> None:
    book = Book(table())
    symbols = ("BTCUSDT", "ETHUSDT")
    for account in (1, 2, 3, 4):
        book.deposit(account, 10**6 * USDT)
    cash = dict.fromkeys((1, 2, 3, 4), 0)
    for buyer, inst, lots, price in fills:
        seller = data.draw(st.sampled_from([a for a in (1, 2, 3, 4) if a != buyer]))
        tv = int(book.instruments.tick_value[inst])
        for account, qty in ((buyer, lots), (seller, -lots)):
            old_qty, old_cost = book.position(account, symbols[inst])
            realized = book.apply_fill(account, symbols[inst], qty, price)
            cash[account] -= qty * price * tv
            if old_qty and (old_qty > 0) != (qty > 0):
                # The closed part's exact share of the cost basis, rounded against the trader.
                closed = -qty if abs(qty) <= abs(old_qty) else old_qty
                exact = closed * price * tv - Fraction(old_cost * closed, old_qty)
                assert exact - 1 < realized <= exact
            else:
                assert realized == 0
        assert audit(book, closed=True).ok
    # Flatten everyone against account 4 at one price: total realized == total cash flow.
    for inst, symbol in enumerate(symbols):
        for account in (1, 2, 3):
            qty, _ = book.position(account, symbol)
            if qty:
                tv = int(book.instruments.tick_value[inst])
                book.apply_fill(account, symbol, -qty, 1000)
                book.apply_fill(4, symbol, qty, 1000)
                cash[account] += qty * 1000 * tv
                cash[4] -= qty * 1000 * tv
    for account in (1, 2, 3):
        pnl = int(book.balance[book.row_of(account)]) - 10**6 * USDT
        assert pnl == cash[account]
    assert audit(book, closed=True).ok


def test_fees_go_to_the_fee_account() -> None:
    book = Book(table())
    book.deposit(1, 100 * USDT)
    book.apply_fill(1, "BTCUSDT", 1, 1_000_000, fee=4_000_000)
    assert book.house_balance[FEES] == 4_000_000
    assert book.balance[0] == 100 * USDT - 4_000_000
    assert audit(book).ok


@pytest.mark.parametrize(
    ("operation", "reason"),
    [
        (lambda b: b.apply_fill(99, "BTCUSDT", 1, 10), "unknown_account"),
        (lambda b: b.apply_fill(1, "DOGEUSDT", 1, 10), "unknown_symbol"),
        (lambda b: b.apply_fill(1, "BTCUSDT", 0, 10), "invalid_qty"),
        (lambda b: b.apply_fill(1, "BTCUSDT", 1, 0), "invalid_price"),
        (lambda b: b.apply_fill(1, "BTCUSDT", 1.5, 10), "invalid_value"),
        (lambda b: b.apply_fill(1, "BTCUSDT", 1, 10, fee=-1), "invalid_amount"),
        (lambda b: b.apply_fill(1, "BTCUSDT", 2**60, 10), "overflow"),
        (lambda b: b.deposit(1, 0), "invalid_amount"),
        (lambda b: b.deposit(1, 2**63 - 1), "overflow"),
        (lambda b: b.deposit(-5, 10), "invalid_account"),
        (lambda b: b.withdraw(1, 10**9 * USDT), "insufficient_margin"),
        (lambda b: b.withdraw(2, 1), "unknown_account"),
        (lambda b: b.set_leverage(1, "BTCUSDT", 126), "leverage_above_max"),
        (lambda b: b.set_leverage(1, "BTCUSDT", 0), "invalid_leverage"),
        (lambda b: b.set_mark("BTCUSDT", -1), "invalid_price"),
        (lambda b: b.set_mark("BTCUSDT", 2**62), "overflow"),
        (lambda b: b.open_account(1), "duplicate_account"),
    ],
)
def test_rejections_leave_the_book_unchanged(operation, reason: str) -> None:
    book = Book(table())
    book.deposit(1, 1_000 * USDT)
    book.apply_fill(1, "BTCUSDT", 5, 1_000_000)
    book.set_mark("BTCUSDT", 1_000_000)
    before = state(book)
    with pytest.raises(Rejected) as err:
        operation(book)
    assert err.value.reason == reason
    assert same_state(before, state(book))
    assert audit(book).ok


def test_withdraw_keeps_initial_margin() -> None:
    # 0.01 BTC at 100000 = 1000 USDT notional at 20x default leverage: IM = 50 USDT.
    book = Book(table())
    book.deposit(1, 100 * USDT)
    book.apply_fill(1, "BTCUSDT", 10, 1_000_000)
    book.set_mark("BTCUSDT", 1_000_000)
    with pytest.raises(Rejected, match="insufficient_margin"):
        book.withdraw(1, 50 * USDT + 1)
    book.withdraw(1, 50 * USDT)
    assert book.balance[0] == 50 * USDT
    # Mark 100010.0: +0.01 BTC * 10 = 0.1 USDT of profit; equity 50.1, IM 1000.1 / 20 = 50.005.
    book.set_mark("BTCUSDT", 1_000_100)
    with pytest.raises(Rejected):
        book.withdraw(1, 9_500_001)
    book.withdraw(1, 9_500_000)  # exactly equity - IM = 0.095 USDT
    assert book.sweep().equity[0] == book.sweep().initial_margin[0]  # type: ignore[index]


def test_withdraw_without_a_mark_is_refused() -> None:
    book = Book(table())
    book.deposit(1, 100 * USDT)
    book.apply_fill(1, "BTCUSDT", 1, 1_000_000)
    with pytest.raises(Rejected, match="no_mark"):
        book.withdraw(1, 1)


def test_leverage_cap_follows_the_tier_of_the_position() -> None:
    # 1 BTC at 100000 = 100000 USDT notional: tier 2 (<= 250000), max leverage 100.
    book = Book(table())
    book.deposit(1, 100_000 * USDT)
    book.apply_fill(1, "BTCUSDT", 1000, 1_000_000)
    book.set_mark("BTCUSDT", 1_000_000)
    with pytest.raises(Rejected, match="leverage_above_max"):
        book.set_leverage(1, "BTCUSDT", 101)
    book.set_leverage(1, "BTCUSDT", 100)
    risk = book.sweep()
    assert risk.initial_margin is not None
    assert risk.initial_margin[0] == 1_000 * USDT  # 100000 / 100


def test_lowering_leverage_needs_margin() -> None:
    book = Book(table())
    book.deposit(1, 60 * USDT)
    book.apply_fill(1, "BTCUSDT", 10, 1_000_000)  # 1000 USDT notional, IM 50 at 20x
    book.set_mark("BTCUSDT", 1_000_000)
    with pytest.raises(Rejected, match="insufficient_margin"):
        book.set_leverage(1, "BTCUSDT", 10)  # IM 100 > equity 60
    assert book.sweep().initial_margin[0] == 50 * USDT  # type: ignore[index]


def test_refused_leverage_change_keeps_the_old_leverage() -> None:
    # Refused for no mark, then for margin: each time the 20x default stays, so a withdrawal
    # within the 20x initial margin still goes through.
    book = Book(table())
    book.deposit(2, 10 * USDT)
    book.deposit(1, 60 * USDT)
    book.apply_fill(1, "BTCUSDT", 10, 1_000_000)  # 1000 USDT notional, IM 50 at 20x
    with pytest.raises(Rejected, match="no_mark"):
        book.set_leverage(1, "BTCUSDT", 10)
    book.set_mark("BTCUSDT", 1_000_000)
    assert book.sweep().initial_margin[0] == 0  # type: ignore[index]
    assert book.sweep().initial_margin[1] == 50 * USDT  # type: ignore[index]
    with pytest.raises(Rejected, match="insufficient_margin"):
        book.set_leverage(1, "BTCUSDT", 10)
    assert book.sweep().initial_margin[1] == 50 * USDT  # type: ignore[index]
    book.withdraw(1, 10 * USDT)  # equity 50 = IM at 20x
    book.set_leverage(1, "BTCUSDT", 25)
    with pytest.raises(Rejected, match="insufficient_margin"):
        book.set_leverage(1, "BTCUSDT", 19)
    assert book.sweep().initial_margin[1] == 40 * USDT  # type: ignore[index]


def test_many_accounts_grow_and_compact() -> None:
    book = Book(table())
    for account in range(500):
        book.deposit(account, 1_000 * USDT)
    for account in range(0, 500, 2):
        book.apply_fill(account, "BTCUSDT", 1, 1_000_000)
        book.apply_fill(account + 1, "BTCUSDT", -1, 1_000_000)
        book.apply_fill(account, "ETHUSDT", -3, 300_000)
        book.apply_fill(account + 1, "ETHUSDT", 3, 300_000)
    book.set_mark("BTCUSDT", 1_000_000)
    book.set_mark("ETHUSDT", 300_000)
    risk = book.sweep()
    assert (np.diff(book.acct_start) == 2).all()
    assert (risk.equity == 1_000 * USDT).all()
    assert audit(book, closed=True).ok


def test_audit_catches_a_balance_changed_outside_the_ledger() -> None:
    book = Book(table())
    book.deposit(1, 100)
    book.deposit(2, 100)
    book._balance[1] += 1
    with pytest.raises(ConservationError, match=r"\[2\]"):
        audit(book)


def test_from_arrays_rejects_bad_rows() -> None:
    t = table()
    ok = {
        "account_ids": np.array([1, 2]),
        "balances": np.array([10, 20]),
        "pos_account_ids": np.array([1, 2]),
        "pos_instrument": np.array([0, 1]),
        "pos_qty": np.array([1, -1]),
        "pos_cost": np.array([100, -100]),
    }
    book = Book.from_arrays(t, **ok)
    assert audit(book).ok
    cases = [
        ({"account_ids": np.array([1, 1])}, "accounts row 1"),
        ({"pos_account_ids": np.array([1, 3])}, "positions row 1"),
        ({"pos_instrument": np.array([0, 5])}, "positions row 1"),
        ({"pos_qty": np.array([0, -1])}, "positions row 0"),
        ({"pos_cost": np.array([100, 100])}, "positions row 1"),
        ({"pos_account_ids": np.array([1, 1]), "pos_instrument": np.array([0, 0])}, "row 1"),
    ]
    for change, where in cases:
        with pytest.raises(Rejected, match=where):
            Book.from_arrays(t, **{**ok, **change})


def test_sweep_into_reused_buffers_equals_a_fresh_sweep() -> None:
    book = Book(table())
    for account in range(5):
        book.deposit(account, (account + 1) * 10 * USDT)
        book.apply_fill(account, "BTCUSDT", 10 * (account + 1), 1_000_000)
    book.set_mark("BTCUSDT", 960_000)
    first = book.sweep(with_initial_margin=False, reuse_buffers=True)
    fresh = book.sweep(with_initial_margin=False)
    assert np.array_equal(first.equity, fresh.equity)
    assert np.array_equal(first.status, fresh.status)
    book.set_mark("BTCUSDT", 1_010_000)
    second = book.sweep(with_initial_margin=False, reuse_buffers=True)
    assert second.equity is first.equity  # the same buffer, overwritten
    assert np.array_equal(second.equity, book.sweep().equity)


def test_a_trade_is_applied_whole_or_not_at_all() -> None:
    book = Book(table())
    book.deposit(1, 1_000 * USDT)
    book.deposit(2, 1_000 * USDT)
    assert book.apply_trade("BTCUSDT", 1_000_000, [(1, 5, 100), (2, -5, 100)]) == [0, 0]
    assert book.position(1, "BTCUSDT")[0] == 5 and book.position(2, "BTCUSDT")[0] == -5
    before = state(book)
    # The seller's side would overflow its position: neither side may be applied.
    with pytest.raises(Rejected, match="overflow"):
        book.apply_trade("BTCUSDT", 1_000_000, [(1, 1, 0), (2, -(2**59), 0)])
    with pytest.raises(Rejected, match="unknown_account"):
        book.apply_trade("BTCUSDT", 1_000_000, [(1, 1, 0), (3, -1, 0)])
    with pytest.raises(Rejected, match="invalid_trade"):
        book.apply_trade("BTCUSDT", 1_000_000, [(1, 1, 0), (1, -1, 0)])
    assert same_state(before, state(book))
    assert audit(book, closed=True).ok


def test_audit_sums_do_not_wrap_at_int64() -> None:
    # Three balances just under 2^62 each: their total (and the external account's minus
    # it) is beyond int64; the audit still balances to the unit.
    book = Book(table())
    for account in (1, 2, 3):
        book.deposit(account, 2**62 - 1)
    report = audit(book)
    assert report.ok and report.net_external == 3 * (2**62 - 1)
    book.deposit(4, 2**63 - 1)  # the book alone allows a full int64 balance
    assert audit(book).total_held == 3 * (2**62 - 1) + 2**63 - 1
