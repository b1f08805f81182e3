"""The liquidation waterfall on hand-computed books, and its invariants on random books.

Grid of the examples: BTCUSDT, tick 0.01, lot 0.001 BTC, money at 8 decimals, so one lot
moving one tick is 0.01 * 0.001 * 10^8 = 1000 units and 1 USDT = 10^8 units.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import Book
from engine.conservation import audit
from engine.instruments import InstrumentTable
from engine.profile import Profile
from engine.waterfall import liquidation_order, open_fund, run_waterfall

USDT = 10**8
BTC = 1000  # lots
FUND = Profile.shipped().fund_account_id


def _table(mmr: str = "0.005") -> InstrumentTable:
    return InstrumentTable.from_dict(
        {
            "instruments": [
                {
                    "symbol": sym,
                    "tick_size": "0.01",
                    "lot_size": "0.001",
                    "tiers": [{"max_notional": None, "mmr": mmr, "max_leverage": 125}],
                }
                for sym in ("BTCUSDT", "ETHUSDT")
            ]
        }
    )


def _profile(**sections: dict[str, Any]) -> Profile:
    doc: dict[str, Any] = {"liquidation": {"fee_rate": "0.005"}}
    doc.update(sections)
    return Profile.from_dict(doc)


def _two_sided_book(profile: Profile) -> Book:
    # 1: long 1 BTC at 100000 with 10000 USDT; 2: the short side with 50000 USDT.
    book = Book(_table())
    book.deposit(1, 10_000 * USDT)
    book.deposit(2, 50_000 * USDT)
    book.apply_fill(1, "BTCUSDT", BTC, 100_000_00)
    book.apply_fill(2, "BTCUSDT", -BTC, 100_000_00)
    open_fund(book, profile, 1_000 * USDT)
    return book


def test_profiles_ship_and_parse() -> None:
    default = Profile.shipped()
    assert default.name == "binance-like"
    assert default.liquidation_fee_rate == 500_000  # 0.005 over 10^8
    assert default.negative_balance_protection and default.adl_policy == "pnl_leverage"
    assert Profile.shipped("hyperliquid-like").partial_liquidation
    ccp = Profile.shipped("ccp")
    assert not ccp.negative_balance_protection and not ccp.adl_enabled
    assert ccp.default_fund_layers[0] == "defaulter_margin"
    assert default.fund_floor_units(8) == 0


def test_no_breach_no_action() -> None:
    # at 91000 the long has 10000 - 9000 = 1000 USDT equity over 0.005 * 91000 = 455 margin
    profile = _profile()
    book = _two_sided_book(profile)
    book.set_mark("BTCUSDT", 91_000_00)
    result = run_waterfall(book, profile)
    assert result.events == [] and result.accounts_liquidated == 0
    assert audit(book, closed=True).ok


def test_liquidation_fee_capped_by_equity() -> None:
    # at 90400: equity 10000 - 9600 = 400 USDT <= maintenance 0.005 * 90400 = 452 -> liquidate.
    # fee = min(0.005 * 90400 = 452, 400) = 400: all the equity, nothing left to take over.
    profile = _profile()
    book = _two_sided_book(profile)
    book.set_mark("BTCUSDT", 90_400_00)
    result = run_waterfall(book, profile)
    assert result.accounts_liquidated == 1
    assert result.liquidation_fees == 400 * USDT and result.takeover_surplus == 0
    assert book.balance[book.row_of(1)] == 0 and book.positions_of(1) == []
    assert book.position(FUND, "BTCUSDT") == (BTC, BTC * 90_400_00 * 1000)
    assert result.fund_balance_after == 1_400 * USDT == result.fund_equity_after
    assert audit(book, closed=True).ok


def test_takeover_moves_the_remaining_equity() -> None:
    # mmr 0.005 but fee 0.001: at 90450 equity 450 <= 452.25 maintenance; fee
    # ceil(0.001 * 90450) = 90.45 USDT; takeover 450 - 90.45 = 359.55 USDT to the fund.
    profile = _profile(liquidation={"fee_rate": "0.001"})
    book = _two_sided_book(profile)
    book.set_mark("BTCUSDT", 90_450_00)
    result = run_waterfall(book, profile)
    assert result.liquidation_fees == 90_45_000_000
    assert result.takeover_surplus == 359_55_000_000
    assert book.account_margin(1) == (0, 0)
    assert result.fund_equity_after - result.fund_equity_before == 450 * USDT
    assert audit(book, closed=True).ok


def test_bankrupt_paid_by_fund_then_adl_covers_exactly() -> None:
    # at 88000 the long is at 10000 - 12000 = -2000 USDT: no fee (nothing left), the fund pays
    # the 2000 deficit and falls to 1000 - 2000 = -1000 USDT, below its floor 0.
    # ADL: the short has 12000 USDT profit on 1000 lots, 12 USDT a lot; ceil(1000 / 12) = 84
    # lots (83 * 12 = 996 < 1000 <= 1008) are closed against the fund, and exactly 1000 USDT
    # of their 1008 USDT profit is paid over: overshoot 0.
    profile = _profile()
    book = _two_sided_book(profile)
    book.set_mark("BTCUSDT", 88_000_00)
    result = run_waterfall(book, profile)
    assert result.insurance_paid == 2_000 * USDT and result.liquidation_fees == 0
    assert result.adl_shortfall == 1_000 * USDT == result.adl_amount
    assert result.adl_overshoot == 0 and result.socialized_amount == 0
    adl = [e for e in result.events if e.kind == "adl"]
    assert [(e.account_id, e.qty, e.amount) for e in adl] == [(2, -84, 1_000 * USDT)]
    assert book.position(2, "BTCUSDT")[0] == -916
    assert book.position(FUND, "BTCUSDT")[0] == 916
    assert result.fund_equity_after == 0
    assert book.balance[book.row_of(2)] == (50_000 + 1_008 - 1_000) * USDT
    assert audit(book, closed=True).ok


def _three_profit_book(profile: Profile) -> Book:
    book = _two_sided_book(profile)
    # 3: short 0.5 BTC at 100000 (the profit side), 4: long 0.5 BTC (a healthy loser)
    book.deposit(3, 50_000 * USDT)
    book.deposit(4, 100_000 * USDT)
    book.apply_fill(3, "BTCUSDT", -BTC // 2, 100_000_00)
    book.apply_fill(4, "BTCUSDT", BTC // 2, 100_000_00)
    return book


def test_socialized_loss_largest_remainder() -> None:
    # ADL off. At 88000 the fund is short 1000 USDT (as above). Profits: account 2 12000,
    # account 3 6000 USDT. 10^11 units * 2/3 = 66666666666.67 and * 1/3 = 33333333333.33;
    # the one unit left goes to the larger remainder (account 2).
    profile = _profile(adl={"enabled": False})
    book = _three_profit_book(profile)
    book.set_mark("BTCUSDT", 88_000_00)
    result = run_waterfall(book, profile)
    parts = {e.account_id: e.amount for e in result.events if e.kind == "socialized_loss"}
    assert parts == {2: 66_666_666_667, 3: 33_333_333_333}
    assert result.socialized_amount == 1_000 * USDT and result.unallocated_loss == 0
    assert result.fund_equity_after == 0
    assert audit(book, closed=True).ok


def test_loss_beyond_all_profit_is_reported_not_invented() -> None:
    # 1 buys 1 BTC from 5 at 100000; 5 buys 0.9 BTC back from 6 at 40000 (5 realizes its
    # profit on those), so 5 is short 0.1 BTC at 100000 and 6 short 0.9 BTC at 40000.
    # At 50000: 1 is at 10000 - 50000 = -40000 USDT; the fund (1000) pays it all and is short
    # 39000. The only profit left on the short side is 5's: 100 lots * 50 USDT = 5000 USDT,
    # which ADL takes whole; 6 is losing; so 39000 - 5000 = 34000 USDT stays unallocated.
    profile = _profile(liquidation={"fee_rate": "0"})
    book = Book(_table())
    book.deposit(1, 10_000 * USDT)
    book.deposit(5, 10_000 * USDT)
    book.deposit(6, 1_000_000 * USDT)
    book.apply_fill(1, "BTCUSDT", BTC, 100_000_00)
    book.apply_fill(5, "BTCUSDT", -BTC, 100_000_00)
    book.apply_fill(5, "BTCUSDT", 900, 40_000_00)
    book.apply_fill(6, "BTCUSDT", -900, 40_000_00)
    open_fund(book, profile, 1_000 * USDT)
    book.set_mark("BTCUSDT", 50_000_00)
    assert book.account_margin(1)[0] == -40_000 * USDT
    result = run_waterfall(book, profile)
    assert result.insurance_paid == 40_000 * USDT  # the deficit, not one unit more
    assert result.adl_shortfall == 39_000 * USDT
    assert result.adl_amount == 5_000 * USDT and result.adl_overshoot == 0
    assert result.socialized_amount == 0
    assert result.unallocated_loss == 34_000 * USDT
    assert result.fund_equity_after == -34_000 * USDT
    assert audit(book, closed=True).ok


def test_debt_mode_keeps_the_deficit() -> None:
    # ccp profile: at 88000 the long's -2000 USDT stays on its account; the fund pays nothing
    profile = Profile.shipped("ccp")
    book = _two_sided_book(profile)
    book.set_mark("BTCUSDT", 88_000_00)
    result = run_waterfall(book, profile)
    assert result.insurance_paid == 0 and result.debt_kept == 2_000 * USDT
    assert book.balance[book.row_of(1)] == -2_000 * USDT
    assert result.fund_equity_after == 1_000 * USDT
    assert audit(book, closed=True).ok


def test_partial_liquidation_stops_when_safe() -> None:
    # step 0.2, no fee: at 90400 equity 400 <= 452; ceil(1000 * 0.2) = 200 lots go to the fund
    # at the mark; 800 lots need 0.005 * 800 * 90.4 = 361.6 < 400: safe, the account keeps them.
    profile = _profile(liquidation={"fee_rate": "0", "partial": True, "step_fraction": "0.2"})
    book = _two_sided_book(profile)
    book.set_mark("BTCUSDT", 90_400_00)
    result = run_waterfall(book, profile)
    assert book.position(1, "BTCUSDT")[0] == 800
    assert book.position(FUND, "BTCUSDT")[0] == 200
    assert book.account_margin(1) == (400 * USDT, 361_6 * USDT // 10)
    assert audit(book, closed=True).ok
    assert result.fund_equity_after == result.fund_equity_before


def test_unwind_at_execution_price() -> None:
    # the fund took 1 BTC over at 90400 and sells it at 90000 into the market: -400 USDT
    profile = _profile()
    book = _two_sided_book(profile)
    book.set_mark("BTCUSDT", 90_400_00)
    result = run_waterfall(book, profile, unwind_prices={"BTCUSDT": 90_000_00})
    unwind = [e for e in result.events if e.kind == "unwind"]
    assert [(e.qty, e.price, e.amount) for e in unwind] == [(BTC, 90_000_00, -400 * USDT)]
    assert book.positions_of(FUND) == []
    assert result.fund_equity_after == (1_000 + 400 - 400) * USDT
    assert audit(book, closed=True).ok


def test_liquidation_order_is_exact_and_ties_by_id() -> None:
    # ratios 1/3 (id 7), 1/3 (id 2: 2/6), -inf (no margin, bankrupt, id 9), 0.5 (id 1)
    order = liquidation_order([7, 2, 9, 1], [1, 2, -5, 1], [3, 6, 0, 2])
    assert order == [2, 1, 0, 3]


# ----- properties ----------------------------------------------------------------------
trades = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(1, 3_000), st.integers(0, 1)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(
    deposits=st.lists(st.integers(1, 20_000), min_size=6, max_size=6),
    trades=trades,
    moves=st.lists(st.integers(-30, 30), min_size=1, max_size=5),
    fund_usdt=st.integers(0, 5_000),
    profile_name=st.sampled_from(["binance-like", "hyperliquid-like", "ccp"]),
    unwind=st.booleans(),
)
def test_waterfall_invariants_on_random_books(
    deposits: list[int],
    trades: list[tuple[int, int, int, int]],
    moves: list[int],
    fund_usdt: int,
    profile_name: str,
    unwind: bool,
) -> None:
    profile = Profile.shipped(profile_name)
    book = Book(_table())
    for account, usdt in enumerate(deposits):
        book.deposit(account, usdt * USDT)
    symbols = ("BTCUSDT", "ETHUSDT")
    for buyer, seller, lots, inst in trades:
        if buyer != seller:
            book.apply_fill(buyer, symbols[inst], lots, 100_000_00)
            book.apply_fill(seller, symbols[inst], -lots, 100_000_00)
    open_fund(book, profile, fund_usdt * USDT)
    price = 100_000_00
    for move in moves:
        price = max(price + price * move // 100, 1)
        for symbol in symbols:
            book.set_mark(symbol, price)
        risk = book.sweep(with_initial_margin=False)
        deficit = {
            int(a): -int(e)
            for a, e in zip(book.account_id, risk.equity, strict=True)
            if e < 0 and a < FUND
        }
        prices = {symbols[0]: price - price // 50} if unwind else None
        result = run_waterfall(book, profile, unwind_prices=prices)
        assert audit(book, closed=True).ok  # conservation and open interest, fund included
        assert result.adl_overshoot == 0
        for event in result.events:
            if event.kind == "insurance_payout":  # never more than the deficit
                assert event.amount <= deficit[event.account_id]
        equity = book.sweep(with_initial_margin=False).equity
        for account, e in zip(book.account_id.tolist(), equity.tolist(), strict=True):
            if account < FUND and profile.negative_balance_protection:
                assert e >= 0, f"account {account} below zero under protection"
