"""The liquidation waterfall on hand-computed books, and its invariants on random books.

Grid of the examples: BTCUSDT, tick 0.01, lot 0.001 BTC, money at 8 decimals, so one lot
moving one tick is 0.01 * 0.001 * 10^8 = 1000 units and 1 USDT = 10^8 units.
"""

from __future__ import annotations

import tomllib
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import event as record_event
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.stress.synthetic import synthetic_book
from engine.waterfall import water_filling
from engine.waterfall.adl import run_adl
from engine.waterfall.adl_book import lots_to_cover
from engine.waterfall.conservation import audit
from engine.waterfall.events import WaterfallResult
from engine.waterfall.fund import fund_fills, open_fund
from engine.waterfall.profile import PROFILES_DIR, Profile
from engine.waterfall.quantiles import account_adl_quantiles, adl_quantiles
from engine.waterfall.run import run_waterfall
from engine.waterfall.takeover import liquidation_order
from tests.waterfall import waterfall_reference as ref

USDT = 10**8
BTC = 1000  # lots
FUND = Profile.shipped().fund_account_id


def _table(mmr: str = "0.005", eth_mmr: str | None = None) -> InstrumentTable:
    return InstrumentTable.from_dict(
        {
            "instruments": [
                {
                    "symbol": sym,
                    "tick_size": "0.01",
                    "lot_size": "0.001",
                    "tiers": [{"max_notional": None, "mmr": rate, "max_leverage": 125}],
                }
                for sym, rate in (("BTCUSDT", mmr), ("ETHUSDT", eth_mmr or mmr))
            ]
        }
    )


def _shipped_with(
    name: str,
    policy: str | None = None,
    fee_rate: str | None = None,
    quantity: str | None = None,
) -> Profile:
    """A shipped profile, with its ADL policy (liquidation fee rate, ADL quantity) replaced."""
    doc = tomllib.loads((PROFILES_DIR / f"{name}.toml").read_text())
    if policy is not None:
        doc["adl"] = {"enabled": True, "policy": policy}
    if quantity is not None:
        doc["adl"]["quantity"] = quantity
    if fee_rate is not None:
        doc["liquidation"]["fee_rate"] = fee_rate
    return Profile.from_dict(doc)


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
    # ADL at the bankruptcy price: the long's tranche is its 1000 lots carrying 2000 USDT,
    # 2 USDT a lot (bankruptcy price 88000 + 2000 = 90000). The short closes the fewest lots
    # worth 1000 USDT: 1000 / 2 = 500 lots (their profit 500 x 12 = 6000 USDT is more), and
    # pays exactly 1000 USDT: overshoot 0. (At the mark it was ceil(1000 / 12) = 84 lots.)
    profile = _profile()
    book = _two_sided_book(profile)
    book.set_mark("BTCUSDT", 88_000_00)
    result = run_waterfall(book, profile)
    assert result.insurance_paid == 2_000 * USDT and result.liquidation_fees == 0
    assert result.adl_shortfall == 1_000 * USDT == result.adl_amount
    assert result.adl_overshoot == 0 and result.socialized_amount == 0
    adl = [e for e in result.events if e.kind == "adl"]
    assert [(e.account_id, e.qty, e.amount) for e in adl] == [(2, -500, 1_000 * USDT)]
    assert book.position(2, "BTCUSDT")[0] == -500
    assert book.position(FUND, "BTCUSDT")[0] == 500
    assert result.fund_equity_after == 0
    # 2 realizes 500 x 12 = 6000 USDT on the lots it closes and pays 1000 of it.
    assert book.balance[book.row_of(2)] == (50_000 + 6_000 - 1_000) * USDT
    # deficit 2000 = the fund's 1000 above its floor + ADL 1000.
    assert (result.deficit_to_cover, result.fund_drawdown) == (2_000 * USDT, 1_000 * USDT)
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
    # 39000. The only profit left on the short side is 5's: 100 lots * 50 USDT = 5000 USDT.
    # ADL at the bankruptcy price: 1's tranche is 1000 lots carrying 40000 USDT, 40 a lot
    # (bankruptcy price 60000); 5's 100 lots are worth 100 x 40 = 4000 < their profit 5000,
    # and it ends flat (cap: its equity): it pays 4000. 6 is losing; 5 is flat after, with
    # no profit left to socialize: 39000 - 4000 = 35000 USDT stays unallocated.
    # (At the mark ADL took 5's whole 5000 profit and left 34000.)
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
    assert result.adl_amount == 4_000 * USDT and result.adl_overshoot == 0
    assert result.socialized_amount == 0
    assert result.unallocated_loss == 35_000 * USDT
    assert result.fund_equity_after == -35_000 * USDT
    unallocated = [e for e in result.events if e.kind == "unallocated_loss"]
    assert [(e.account_id, e.amount) for e in unallocated] == [(FUND, 35_000 * USDT)]
    # deficit 40000 = the fund's 1000 + ADL 4000 + unallocated 35000
    assert (result.deficit_to_cover, result.fund_drawdown) == (40_000 * USDT, 1_000 * USDT)
    assert audit(book, closed=True).ok
    # The next tick, nothing new: the deficit carried in is still the fund's, unallocated.
    again = run_waterfall(book, profile)
    assert again.deficit_to_cover == again.unallocated_loss == 35_000 * USDT
    assert again.fund_drawdown == again.adl_amount == again.socialized_amount == 0


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


def test_debt_is_kept_once() -> None:
    # ccp: the long's -2000 USDT stays as debt; the next tick the flat account is still
    # "bankrupt" in the sweep but there is nothing to take over and its debt is not counted
    # again.
    profile = Profile.shipped("ccp")
    book = _two_sided_book(profile)
    book.set_mark("BTCUSDT", 88_000_00)
    assert run_waterfall(book, profile).debt_kept == 2_000 * USDT
    again = run_waterfall(book, profile)
    assert again.accounts_liquidated == 0 and again.debt_kept == 0 and again.events == []
    assert book.balance[book.row_of(1)] == -2_000 * USDT
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


def _adl_policy_book(profile: Profile) -> Book:
    # 1: long 2.5 BTC at 100000 with 10000 USDT; 11, 12, 13 short 1, 1 and 0.5 BTC at
    # 100000 with 20000, 5000 and 2000 USDT; the fund holds 8750 USDT. At 90000 a lot (0.001
    # BTC) is worth 90 USDT and every short earns 10 USDT a lot:
    #   1: 10000 - 2500 * 10 = -15000 USDT: the fund pays 15000 and is 6250 short of 0.
    #   11: profit 10000, equity 30000, notional 90000: leverage 3
    #   12: profit 10000, equity 15000, notional 90000: leverage 6
    #   13: profit  5000, equity  7000, notional 45000: leverage 6.43
    book = Book(_table())
    for account, usdt in ((1, 10_000), (11, 20_000), (12, 5_000), (13, 2_000)):
        book.deposit(account, usdt * USDT)
    book.apply_fill(1, "BTCUSDT", 5 * BTC // 2, 100_000_00)
    for account, lots in ((11, BTC), (12, BTC), (13, BTC // 2)):
        book.apply_fill(account, "BTCUSDT", -lots, 100_000_00)
    open_fund(book, profile, 8_750 * USDT)
    book.set_mark("BTCUSDT", 90_000_00)
    return book


def _adl_actions(book: Book, profile: Profile) -> list[tuple[int, int, int]]:
    result = run_waterfall(book, profile)
    assert result.adl_shortfall == 6_250 * USDT == result.adl_amount
    assert result.adl_overshoot == 0 and result.fund_equity_after == 0
    assert audit(book, closed=True).ok
    return [(e.account_id, e.qty, e.amount // USDT) for e in result.events if e.kind == "adl"]


def test_adl_policies_worked_example() -> None:
    # pnl_leverage, at the bankruptcy price: 1's tranche is its 2500 lots carrying its 15000
    # USDT deficit, 6 USDT a lot (bankruptcy price 96000). Every short is at +10%, so the
    # most levered goes first: 13's 500 lots are worth 500 x 6 = 3000 (< their profit 5000,
    # < its equity 7000: it ends flat) and it pays 3000; 12 covers the 3250 still short with
    # ceil(3250 / 6) = 542 lots (541 x 6 = 3246 < 3250; their profit 5420), paying 3250.
    # (At the mark: 13 paid 5000 for 500 lots, then 12 1250 for 125.)
    assert _adl_actions(_adl_policy_book(p := _profile()), p) == [
        (13, -500, 3_000),
        (12, -542, 3_250),
    ]
    # pro_rata: 6250 over profits 10000, 10000, 5000 (of 25000): 2500, 2500, 1250 USDT,
    # paid by 250, 250 and 125 lots at 10 USDT a lot.
    p = _profile(adl={"policy": "pro_rata"})
    assert _adl_actions(_adl_policy_book(p), p) == [
        (11, -250, 2_500),
        (12, -250, 2_500),
        (13, -125, 1_250),
    ]
    # risk_water_filling: 13 (6.43) and 12 (6) come down to a common leverage, 11 (3) is
    # untouched. At level 5, x lots out of 13: (45000 - 90x) / (7000 - 10x) = 5 -> x = 250;
    # out of 12: (90000 - 90x) / (15000 - 10x) = 5 -> x = 375; 10 USDT a lot: 2500 + 3750 =
    # 6250, the shortfall exactly. (249 and 374 lots leave 5.009 and 5.004: too little.)
    p = _profile(adl={"policy": "risk_water_filling"})
    book = _adl_policy_book(p)
    assert _adl_actions(book, p) == [(13, -250, 2_500), (12, -375, 3_750)]
    for account, (equity, notional) in {13: (4_500, 22_500), 12: (11_250, 56_250)}.items():
        assert book.account_margin(account)[0] == equity * USDT  # leverage 5 for both
        assert -book.position(account, "BTCUSDT")[0] * 90 == notional


@pytest.mark.parametrize("float_says", [True, False])
def test_water_level_is_exact_when_the_float_bracket_misleads(
    monkeypatch: pytest.MonkeyPatch, float_says: bool
) -> None:
    # The float bisection only narrows the search; with it always wrong the exact search
    # widens to the whole range and finds the same level, cuts and payments.
    monkeypatch.setattr(water_filling._WaterLevel, "enough_float", lambda *_: float_says)
    p = _profile(adl={"policy": "risk_water_filling"})
    assert _adl_actions(_adl_policy_book(p), p) == [(13, -250, 2_500), (12, -375, 3_750)]


@settings(max_examples=300, deadline=None)
@given(
    qty=st.integers(-3_000, 3_000).filter(bool),
    entry=st.integers(50_000, 150_000),
    gain_permille=st.integers(1, 300),
    other_usdt=st.integers(0, 50_000),
    balance_usdt=st.integers(1, 50_000),
    level_permille=st.integers(0, 1_100) | st.integers(950, 1_001),
    guess=st.integers(-10, 4_000),
)
def test_least_at_level_equals_a_scan(
    qty: int,
    entry: int,
    gain_permille: int,
    other_usdt: int,
    balance_usdt: int,
    level_permille: int,
    guess: int,
) -> None:
    # A position in profit (the mark gain_permille past the entry, on the position's side)
    # in an account with `other` notional elsewhere, and a level up to 1.1x its leverage:
    # whatever the guess, the cut is the least x meeting the level (|qty| when none does).
    side = 1 if qty > 0 else -1
    mark = entry + side * max(1, entry * gain_permille // 1000)
    lot_value = mark * 1000  # ticks of 0.01 USDT, lots of 0.001: 1000 units a tick
    cost = qty * entry * 1000
    profit = ref.closed_profit(qty, cost, abs(qty), lot_value)
    notional = abs(qty) * lot_value + other_usdt * USDT
    equity = balance_usdt * USDT + profit
    level = notional * 10**8 * level_permille // (equity * 1000)
    got = water_filling._least_at_level(qty, cost, lot_value, notional, equity, level, guess)
    scan = [
        x
        for x in range(abs(qty) + 1)
        if (notional - x * lot_value) * 10**8
        <= level * (equity - ref.closed_profit(qty, cost, x, lot_value))
    ]
    step = lot_value - abs(cost) // abs(qty) if qty > 0 else -(-abs(cost) // abs(qty)) - lot_value
    levelable = notional * step <= lot_value * equity  # the condition is monotone in x
    record_event(
        f"levelable={levelable} cut={'none' if got == 0 else 'all' if got == abs(qty) else 'part'}"
    )
    if levelable:
        assert got == (scan[0] if scan else abs(qty))


def test_pro_rata_shares_the_funds_lots_when_they_run_short() -> None:
    # 1 buys 100 lots from 21 at 100000 with 100 USDT; 22 sells 1000 lots to 23 at 92000.
    # At 90000: 1 is at 100 - 100 * 10 = -900 USDT, so the fund (0) is 900 short and holds
    # only 100 lots. Profits: 21 100 * 10 = 1000, 22 1000 * 2 = 2000 USDT -> shares 300 and
    # 600 USDT, which need 300 / 10 = 30 and 600 / 2 = 300 lots: 330 > 100. The 100 lots go
    # 100 * 30 / 330 = 9.09 -> 9 and 100 * 300 / 330 = 90.9 -> 90, the unit left to the
    # larger remainder (22): 9 and 91 lots. Each pays at most the profit of the lots it
    # closes: 21 min(300, 9 x 10) = 90 USDT, 22 min(600, 91 x 2) = 182 USDT (before, the
    # shares were paid in full, more than those lots' profit).
    # The 900 - 272 = 628 USDT left is socialized over the profit left: 21 91 x 10 = 910,
    # 22 909 x 2 = 1818 USDT (23 is losing): 628 x 10^8 x 910 / 2728 = 20948680351.91 and
    # x 1818 / 2728 = 41851319648.09 units; the unit left goes to 21 (larger remainder).
    profile = _profile(liquidation={"fee_rate": "0"}, adl={"policy": "pro_rata"})
    book = Book(_table())
    for account, usdt in ((1, 100), (21, 10_000), (22, 10_000), (23, 100_000)):
        book.deposit(account, usdt * USDT)
    book.apply_fill(1, "BTCUSDT", 100, 100_000_00)
    book.apply_fill(21, "BTCUSDT", -100, 100_000_00)
    book.apply_fill(22, "BTCUSDT", -BTC, 92_000_00)
    book.apply_fill(23, "BTCUSDT", BTC, 92_000_00)
    open_fund(book, profile, 0)
    book.set_mark("BTCUSDT", 90_000_00)
    result = run_waterfall(book, profile)
    adl = [(e.account_id, e.qty, e.amount) for e in result.events if e.kind == "adl"]
    assert adl == [(21, -9, 90 * USDT), (22, -91, 182 * USDT)]
    social = {e.account_id: e.amount for e in result.events if e.kind == "socialized_loss"}
    assert social == {21: 20_948_680_352, 22: 41_851_319_648}
    assert book.positions_of(FUND) == [] and result.fund_equity_after == 0
    # 21 realized 9 * 10 = 90 USDT on its 9 lots and paid 90, then its socialized part.
    assert book.balance[book.row_of(21)] == 10_000 * USDT - 20_948_680_352
    assert book.account_margin(21)[0] == 11_000 * USDT - 90 * USDT - 20_948_680_352
    assert audit(book, closed=True).ok


def test_adl_quantile_lights() -> None:
    # pnl_leverage ranks the shorts 13 (6.43x), 12 (6x), 11 (3x): ranks 0, 1, 2 of 3 give
    # 5 - 5 * 0 // 3 = 5, 5 - 5 // 3 = 4 and 5 - 10 // 3 = 2 lights; the long is losing: 0.
    profile = _profile()
    book = _adl_policy_book(profile)
    lights = adl_quantiles(book, profile)
    per_account = account_adl_quantiles(book, profile, lights)
    by_id = dict(zip(book.account_id.tolist(), per_account.tolist(), strict=True))
    assert (by_id[13], by_id[12], by_id[11], by_id[1], by_id[FUND]) == (5, 4, 2, 0, 0)
    # pro_rata ranks by profit: 11 and 12 (10000, ties by id) before 13 (5000).
    p = _profile(adl={"policy": "pro_rata"})
    per_account = account_adl_quantiles(book, p)
    by_id = dict(zip(book.account_id.tolist(), per_account.tolist(), strict=True))
    assert (by_id[11], by_id[12], by_id[13]) == (5, 4, 2)
    assert set(lights.tolist()) <= {0, 1, 2, 3, 4, 5}


# ----- properties ----------------------------------------------------------------------
# Every shipped profile, and the shipped ones with each ADL policy swapped in.
PROFILE_VARIANTS = [
    ("binance-like", None),
    ("hyperliquid-like", None),
    ("ccp", None),
    ("binance-like", "hyperliquid"),
    ("binance-like", "pro_rata"),
    ("binance-like", "risk_water_filling"),
    ("hyperliquid-like", "pro_rata"),
    ("hyperliquid-like", "risk_water_filling"),
]
SYMBOLS = ("BTCUSDT", "ETHUSDT")
# (buyer, seller, lots, instrument, entry price offset in permille of 100000)
trades = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.integers(0, 5),
        st.integers(1, 3_000),
        st.integers(0, 1),
        st.integers(-50, 50),
    ),
    min_size=1,
    max_size=8,
)
# per tick, a move in percent of each instrument's mark: jumps, and steps that stop between
# maintenance and bankruptcy
pct = st.integers(-30, 30) | st.integers(-8, 8)
moves = st.lists(st.tuples(pct, pct), min_size=1, max_size=5)
deposits = st.lists(st.integers(1, 20_000) | st.integers(20_000, 200_000), min_size=6, max_size=6)


def _random_book(
    deposits: list[int], trades: list[tuple[int, int, int, int, int]], fund: int, p: Profile
) -> Book:
    # ETH's maintenance rate above the fee rate leaves a takeover surplus to move.
    book = Book(_table(eth_mmr="0.02"))
    for account, usdt in enumerate(deposits):
        book.deposit(account, usdt * USDT)
    for buyer, seller, lots, inst, offset in trades:
        if buyer != seller:
            price = 100_000_00 + 100_000_00 * offset // 1000
            book.apply_fill(buyer, SYMBOLS[inst], lots, price)
            book.apply_fill(seller, SYMBOLS[inst], -lots, price)
    open_fund(book, p, fund * USDT)
    return book


def _move(book: Book, prices: list[int], move: tuple[int, int]) -> None:
    for i, pct in enumerate(move):
        prices[i] = max(prices[i] + prices[i] * pct // 100, 1)
        book.set_mark(SYMBOLS[i], prices[i])


@settings(max_examples=80, deadline=None)
@given(
    deposits=deposits,
    trades=trades,
    moves=moves,
    fund_usdt=st.integers(0, 5_000),
    variant=st.sampled_from(PROFILE_VARIANTS),
    unwind=st.booleans(),
    batch=st.booleans(),
)
def test_waterfall_invariants_on_random_books(
    deposits: list[int],
    trades: list[tuple[int, int, int, int, int]],
    moves: list[tuple[int, int]],
    fund_usdt: int,
    variant: tuple[str, str | None],
    unwind: bool,
    batch: bool,
) -> None:
    profile = _shipped_with(*variant)
    book = _random_book(deposits, trades, fund_usdt, profile)
    prices = [100_000_00, 100_000_00]
    for move in moves:
        _move(book, prices, move)
        risk = book.sweep(with_initial_margin=False)
        deficit = {
            int(a): -int(e)
            for a, e in zip(book.account_id, risk.equity, strict=True)
            if e < 0 and a < FUND
        }
        unwind_prices = {SYMBOLS[0]: prices[0] - prices[0] // 50} if unwind else None
        result = run_waterfall(book, profile, unwind_prices=unwind_prices, batch=batch)
        assert audit(book, closed=True).ok  # conservation and open interest, fund included
        assert result.adl_overshoot == 0
        adl = [e for e in result.events if e.kind == "adl"]
        assert sum(e.amount for e in adl) == result.adl_amount <= result.adl_shortfall
        for event in result.events:
            if event.kind == "insurance_payout":  # never more than the deficit
                assert event.amount <= deficit[event.account_id]
        equity = book.sweep(with_initial_margin=False).equity
        for account, e in zip(book.account_id.tolist(), equity.tolist(), strict=True):
            if account < FUND and profile.negative_balance_protection:
                assert e >= 0, f"account {account} below zero under protection"
        lights = adl_quantiles(book, profile)
        assert set(lights.tolist()) <= set(range(6))


def _state(book: Book) -> tuple[Any, ...]:
    """Everything the two paths must agree on; ledger postings as a multiset."""
    balances = dict(zip(book.account_id.tolist(), book.balance.tolist(), strict=True))
    positions = {a: book.positions_of(a) for a in balances}
    names = ("event_id", "debit", "credit", "amount", "reason")
    postings = sorted(zip(*(book.ledger.column(n).tolist() for n in names), strict=True))
    return balances, positions, dict(book.house_balance), postings


RESULT_FIELDS = (
    "accounts_liquidated",
    "fund_balance_after",
    "fund_equity_after",
    "liquidation_fees",
    "takeover_surplus",
    "insurance_paid",
    "debt_kept",
    "adl_amount",
    "adl_shortfall",
    "socialized_amount",
    "unallocated_loss",
)


@settings(max_examples=150, deadline=None)
@given(
    deposits=deposits,
    trades=trades,
    moves=moves,
    fund_usdt=st.integers(0, 5_000),
    variant=st.sampled_from(PROFILE_VARIANTS),
    unwind=st.booleans(),
)
def test_batch_path_equals_one_account_at_a_time(
    deposits: list[int],
    trades: list[tuple[int, int, int, int, int]],
    moves: list[tuple[int, int]],
    fund_usdt: int,
    variant: tuple[str, str | None],
    unwind: bool,
) -> None:
    # Over several ticks the fund keeps positions taken at earlier marks, so later takeovers
    # reduce or flip them and each of its fills rounds: the batch replays them in order.
    profile = _shipped_with(*variant)
    batch = _random_book(deposits, trades, fund_usdt, profile)
    each = _random_book(deposits, trades, fund_usdt, profile)
    prices_batch, prices_each = [100_000_00, 100_000_00], [100_000_00, 100_000_00]
    for move in moves:
        _move(batch, prices_batch, move)
        _move(each, prices_each, move)
        unwind_prices = {SYMBOLS[1]: prices_batch[1] + 7} if unwind else None
        got = run_waterfall(batch, profile, unwind_prices=unwind_prices, batch=True)
        want = run_waterfall(each, profile, unwind_prices=unwind_prices, batch=False)
        assert got.events == want.events
        assert [getattr(got, f) for f in RESULT_FIELDS] == [getattr(want, f) for f in RESULT_FIELDS]
        assert _state(batch) == _state(each)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(
    "variant",
    [*PROFILE_VARIANTS, ("binance-like", None, "0.001"), ("binance-like", None, None, "whole")],
)
def test_batch_path_equals_one_account_at_a_time_on_synthetic_books(
    seed: int, variant: tuple[str, str | None]
) -> None:
    # Tiered books with leverage to 100x: small steps breach accounts short of bankruptcy
    # (fees; takeover surplus where the fee rate is below the tier's maintenance rate), -15%
    # breaches a fifth of them, +30% then liquidates shorts into the fund's longs (its
    # fills reduce and flip).
    profile = _shipped_with(*variant)
    books = [synthetic_book(600, 1_800, 8, seed=seed) for _ in range(2)]
    for book in books:
        open_fund(book, profile, int(book.balance.sum()) // 100)
    for pct in (-2, -3, -15, 30):
        results = []
        for book, batch in zip(books, (True, False), strict=True):
            for i, inst in enumerate(book.instruments.instruments):
                mark = int(book.mark[i])
                book.set_mark(inst.symbol, max(1, mark + mark * pct // 100))
            results.append(run_waterfall(book, profile, batch=batch))
            assert audit(book).ok
        got, want = results
        assert got.events == want.events
        assert [getattr(got, f) for f in RESULT_FIELDS] == [getattr(want, f) for f in RESULT_FIELDS]
        assert _state(books[0]) == _state(books[1])


@settings(max_examples=60, deadline=None)
@given(
    deposits=deposits,
    trades=trades,
    move=st.tuples(st.integers(-30, 30), st.integers(-30, 30)),
    fund_usdt=st.integers(0, 5_000),
    policy=st.sampled_from(["pnl_leverage", "hyperliquid"]),
)
def test_queue_equals_the_sequential_reference(
    deposits: list[int],
    trades: list[tuple[int, int, int, int, int]],
    move: tuple[int, int],
    fund_usdt: int,
    policy: str,
) -> None:
    # The queue reads equity and positions once per ADL run and keeps them current; the
    # reference re-reads them from the book before every candidate, builds the tranches
    # from the takeover events in plain Python and finds each payer's lots by a scan.
    profile = _profile(adl={"policy": policy}, socialized_loss={"enabled": False})
    without_adl = _profile(adl={"enabled": False}, socialized_loss={"enabled": False})
    engine_book = _random_book(deposits, trades, fund_usdt, profile)
    reference_book = _random_book(deposits, trades, fund_usdt, profile)
    _move(engine_book, [100_000_00, 100_000_00], move)
    _move(reference_book, [100_000_00, 100_000_00], move)
    result = run_waterfall(engine_book, profile)
    prior = run_waterfall(reference_book, without_adl)
    expected = ref.adl_queue_sequential(reference_book, profile, 0, prior)
    got = [
        (e.account_id, e.symbol, e.qty, e.price, e.amount) for e in result.events if e.kind == "adl"
    ]
    record_event(f"adl actions: {min(len(expected), 3)}")
    assert got == expected
    assert _state(engine_book)[:3] == _state(reference_book)[:3]


def _btc_candidate(book: Book, account_id: int, fund_qty: int) -> tuple[bool, bool]:
    """(ADL may take from it, a cut lowers its leverage) for a BTC-only account."""
    qty, cost = book.position(account_id, "BTCUSDT")
    equity = book.account_margin(account_id)[0]
    lot_value = int(book.mark_lot_value[0])
    if qty * fund_qty >= 0 or equity <= 0 or ref.closed_profit(qty, cost, abs(qty), lot_value) <= 0:
        return False, False
    # The most one lot's profit can add: v - floor(entry) long, ceil(entry) - v short.
    step = lot_value - abs(cost) // abs(qty) if qty > 0 else -(-abs(cost) // abs(qty)) - lot_value
    return True, abs(qty) * lot_value * step <= lot_value * equity


def _leverage(book: Book, account_id: int) -> Fraction:
    qty, _ = book.position(account_id, "BTCUSDT")
    return Fraction(abs(qty) * int(book.mark_lot_value[0]), book.account_margin(account_id)[0])


@settings(max_examples=60, deadline=None)
@given(
    deposits=st.lists(st.integers(1, 20_000), min_size=6, max_size=6),
    trades=st.lists(
        st.tuples(
            st.integers(0, 5),
            st.integers(0, 5),
            st.integers(1, 3_000),
            st.just(0),
            st.integers(-50, 50),
        ),
        min_size=1,
        max_size=8,
    ),
    pct=st.integers(-30, 30),
    fund_usdt=st.integers(0, 2_000),
)
def test_water_filling_cuts_the_most_levered_first(
    deposits: list[int],
    trades: list[tuple[int, int, int, int, int]],
    pct: int,
    fund_usdt: int,
) -> None:
    # BTC only: every account cut was more levered, before ADL, than every candidate left
    # alone that a cut would have helped, and no cut raised an account's leverage.
    profile = _profile(adl={"policy": "risk_water_filling"})
    without_adl = _profile(adl={"enabled": False}, socialized_loss={"enabled": False})
    book = _random_book(deposits, trades, fund_usdt, profile)
    _move(book, [100_000_00, 100_000_00], (pct, 0))
    run_waterfall(book, without_adl)
    fund_qty = book.position(FUND, "BTCUSDT")[0]
    status = {a: _btc_candidate(book, a, fund_qty) for a in range(6)}
    before = {a: _leverage(book, a) for a, (candidate, _) in status.items() if candidate}
    result = WaterfallResult()
    run_adl(book, profile, 0, result)
    assert result.adl_overshoot == 0 and audit(book, closed=True).ok
    cut = {e.account_id for e in result.events}
    assert all(status[a] == (True, True) for a in cut)
    for a in cut:
        if book.account_margin(a)[0] > 0:
            assert _leverage(book, a) <= before[a]
        for b in before.keys() - cut:
            assert before[a] > before[b] or not status[b][1]


@settings(max_examples=200, deadline=None)
@given(
    fills=st.lists(st.integers(-5_000, 5_000).filter(bool), min_size=1, max_size=12),
    start=st.lists(
        st.tuples(st.integers(-3_000, 3_000).filter(bool), st.integers(90_000_00, 110_000_00)),
        max_size=3,
    ),
    price=st.integers(1, 200_000_00),
)
def test_fund_fill_replay_equals_apply_fill(
    fills: list[int], start: list[tuple[int, int]], price: int
) -> None:
    # A position built at other prices (so its cost has remainders), then fills at one price
    book = Book(_table())
    book.deposit(1, 10**6 * USDT)
    for qty, p in start:
        book.apply_fill(1, "BTCUSDT", qty, p)
    qty0, cost0 = book.position(1, "BTCUSDT")
    realized = [book.apply_fill(1, "BTCUSDT", q, price) for q in fills]
    replay = fund_fills(qty0, cost0, fills, price * 1000, 1000)
    assert replay == (realized, *book.position(1, "BTCUSDT"))


@settings(max_examples=300, deadline=None)
@given(
    qty=st.integers(-(10**6), 10**6).filter(bool),
    entry=st.integers(1, 10**9),
    mark=st.integers(1, 10**9),
    data=st.data(),
)
def test_lots_to_cover_equals_bisection(
    qty: int, entry: int, mark: int, data: st.DataObject
) -> None:
    cost = qty * entry + data.draw(st.integers(0, abs(qty) - 1)) * (1 if qty > 0 else -1)
    profit = ref.closed_profit(qty, cost, abs(qty), mark)
    if profit <= 0:
        return
    cap = data.draw(st.integers(1, abs(qty)))
    need = data.draw(st.integers(1, profit))
    assert lots_to_cover(qty, cost, cap, mark, need) == ref.lots_to_cover(
        qty, cost, cap, mark, need
    )
