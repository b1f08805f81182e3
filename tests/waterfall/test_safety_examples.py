"""Waterfall safety on hand-computed books: who pays, how much, at what price.

Over 400 lines because every example writes its arithmetic out in comments, and the
identity table at the end reuses the books built above.

Grid (BTCUSDT, ETHUSDT): tick 0.01, lot 0.001, maintenance rate 0.005, money at 8 decimals,
so one lot moving one tick is 0.01 x 0.001 x 10^8 = 1000 units and 1 USDT = 10^8 units; a
BTC lot at 90000 is worth 90 USDT, an ETH lot at 3000 3 USDT. Fund floor 0 unless stated.

The rules (docs/design.md, "Waterfall safety"):
- a defaulter's deficit D (its negative equity; a bankrupt account pays no fee) is paid by
  the fund; what the fund cannot pay above its floor, S, is covered by ADL, then socialized
  loss, the rest is unallocated_loss; fund_drawdown + adl_amount + socialized_amount +
  unallocated_loss == deficit_to_cover;
- ADL closes the payer's lots against the fund at the defaulter's bankruptcy price: the
  fund's lots from a bankrupt account form a tranche of L lots carrying A = D, and lots
  [a, b) of it are worth floor(A b / L) - floor(A a / L). Payers in queue order take tranche
  lots in order; each pays min(tranche value of its lots, their profit at the mark, its
  safe capacity). Fewest lots (default): the lots that cover S and no more, only the last
  lot's price trimmed. Whole (`[adl] quantity = "whole"`): each payer position closed whole
  up to the tranche lots left, the excess over S reported as adl_overshoot;
- safe capacity: equity - maintenance after - 1 unit while positions remain, equity when
  the account ends flat; socialized-loss weights are min(unrealized profit, capacity).
"""

from __future__ import annotations

import pytest

from engine.book.book import STATUS_LIQUIDATE, Book
from engine.book.instruments import InstrumentTable
from engine.waterfall.conservation import audit
from engine.waterfall.events import WaterfallResult
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile, ProfileError
from engine.waterfall.run import run_waterfall
from tests.waterfall import safety_checks as check
from tests.waterfall.safety_checks import USDT

BTC = "BTCUSDT"
ETH = "ETHUSDT"
FUND = Profile.shipped().fund_account_id


def _table() -> InstrumentTable:
    return InstrumentTable.from_dict(
        {
            "instruments": [
                {
                    "symbol": symbol,
                    "tick_size": "0.01",
                    "lot_size": "0.001",
                    "tiers": [{"max_notional": None, "mmr": "0.005", "max_leverage": 125}],
                }
                for symbol in (BTC, ETH)
            ]
        }
    )


def _book(deposits: list[tuple[int, int]], fills: list[tuple[int, str, int, int]]) -> Book:
    """deposits (account, units) in that order; fills (account, symbol, lots, price in USDT)."""
    book = Book(_table())
    for account, units in deposits:
        book.deposit(account, units)
    for account, symbol, lots, usdt in fills:
        book.apply_fill(account, symbol, lots, usdt * 100)
    return book


def _marks(book: Book, btc_usdt: int, eth_usdt: int | None = None) -> None:
    book.set_mark(BTC, btc_usdt * 100)
    if eth_usdt is not None:
        book.set_mark(ETH, eth_usdt * 100)


def _events(result: WaterfallResult, kind: str) -> list[tuple[int, int, int]]:
    return [(e.account_id, e.qty, e.amount) for e in result.events if e.kind == kind]


def _status(book: Book, account: int) -> int:
    row = book.row_of(account)
    return int(book.sweep(with_initial_margin=False).status[row])


# ----- (a) the 3-account book ------------------------------------------------------------
def spec_book() -> tuple[Book, Profile]:
    # 1: long 2 BTC at 100000 with 10000 USDT.
    # 2: short 1 BTC at 100000 + long 10 ETH at 4000 with 7000 USDT.
    # 3: short 1 BTC at 100000 + short 10 ETH at 4000 with 7000 USDT.
    # Marks BTC 90000, ETH 3000; fund 0; the default profile.
    p = check.profile()
    book = _book(
        [(1, 10_000 * USDT), (2, 7_000 * USDT), (3, 7_000 * USDT)],
        [
            (1, BTC, 2_000, 100_000),
            (2, BTC, -1_000, 100_000),
            (3, BTC, -1_000, 100_000),
            (2, ETH, 10_000, 4_000),
            (3, ETH, -10_000, 4_000),
        ],
    )
    open_fund(book, p, 0)
    _marks(book, 90_000, 3_000)
    return book, p


def test_spec_book_hedged_payer_is_not_pushed_into_liquidation() -> None:
    # 1: equity 10000 - 2 x 10000 = -10000: bankrupt, fee 0, D = 10000. The fund (0) pays
    #    it: S = 10000. Bankruptcy price of 1's long: 100000 - 10000 / 2 = 95000, so its
    #    tranche is L = 2000 lots carrying A = 10000 USDT, 5 USDT a lot (= 95000 - 90000 on
    #    0.001 BTC).
    # 2: BTC +10000, ETH 10 x (3000 - 4000) = -10000: equity 7000, maintenance
    #    0.005 x (90000 + 30000) = 600; 150 once its BTC is closed (0.005 x 30000).
    # 3: BTC +10000, ETH +10000: equity 27000.
    # S = 10000 = the whole tranche: all 2000 lots are needed, 1000 from 2 and 1000 from 3.
    # 2 may pay at most min(tranche value 1000 x 5 = 5000, closed profit 1000 x 10 = 10000,
    #    safe capacity 7000 - 150 - 0.00000001 = 6849.99999999) = 5000; 3 pays 5000 too.
    # 2 after: equity 7000 - 5000 = 2000 > maintenance 150 (status ok), long 10 ETH.
    # Today: 2 pays min(profit 10000, equity 7000) = 7000 and is left at equity 0 with its
    # 10 ETH open: liquidate.
    book, p = spec_book()
    result = run_waterfall(book, p)
    assert _status(book, 2) < STATUS_LIQUIDATE, "ADL pushed account 2 into liquidation"
    assert book.account_margin(2) == (2_000 * USDT, 150 * USDT)
    assert book.positions_of(2) == [(1, 10_000, 10_000 * 4_000 * 100 * 1000)]
    assert sorted(_events(result, "adl")) == [(2, -1_000, 5_000 * USDT), (3, -1_000, 5_000 * USDT)]
    assert book.account_margin(3)[0] == 22_000 * USDT
    assert result.adl_amount == 10_000 * USDT and result.socialized_amount == 0
    assert book.positions_of(FUND) == [] and result.fund_equity_after == 0
    assert audit(book, closed=True).ok


# ----- (b), (c) a BitMEX-style queue at the bankruptcy price ----------------------------
def queue_book(fund_units: int) -> tuple[Book, Profile]:
    # 1: long 3 BTC at 100000 with 20000 USDT; 4: long 1.5 BTC with 100000 (healthy).
    # Shorts at 100000: 13: 2 BTC with 10000, 11: 1.5 BTC with 10000, 12: 1 BTC with 30000.
    # At 90000 every short is +10% (10 USDT a lot):
    #   13: profit 20000, equity 30000, notional 180000: leverage 6
    #   11: profit 15000, equity 25000, notional 135000: leverage 5.4
    #   12: profit 10000, equity 40000, notional  90000: leverage 2.25
    # pnl_leverage ranks profit % x leverage: 13, 11, 12 (not the id order).
    p = check.profile()
    book = _book(
        [(1, 20_000 * USDT), (4, 100_000 * USDT), (12, 30_000 * USDT)]
        + [(11, 10_000 * USDT), (13, 10_000 * USDT)],
        [
            (1, BTC, 3_000, 100_000),
            (4, BTC, 1_500, 100_000),
            (13, BTC, -2_000, 100_000),
            (11, BTC, -1_500, 100_000),
            (12, BTC, -1_000, 100_000),
        ],
    )
    open_fund(book, p, fund_units)
    _marks(book, 90_000)
    return book, p


def test_queue_top_two_cover_the_shortfall_at_the_bankruptcy_price() -> None:
    # 1: equity 20000 - 30000 = -10000, D = 10^12 units; bankruptcy price
    #    100000 - 20000 / 3 = 93333.33...; tranche L = 3000 lots, A = 10^12.
    # Fund 0: S = 10^12.
    # 13 (first) takes lots [0, 2000): floor(10^12 x 2000 / 3000) = 666666666666 units; its
    #    profit 2000 x 10 USDT = 20000 and capacity (flat after) 30000 are larger: it pays
    #    666666666666 and closes its whole position. Still short: 333333333334.
    # 11 takes lots [2000, 3000): 10^12 - 666666666666 = 333333333334 = what is short (999
    #    lots would give floor(10^12 x 2999 / 3000) - 666666666666 = 333000000000, too
    #    little): it closes 1000 of its 1500 lots and pays 333333333334.
    # 12 is not touched. The fund's 3000 lots are all gone; its equity is back at 0.
    # Today: 13 pays 10000 USDT from 1000 lots at the mark (10 USDT a lot), 11 nothing.
    book, p = queue_book(0)
    result = run_waterfall(book, p)
    assert _events(result, "adl") == [(13, -2_000, 666_666_666_666), (11, -1_000, 333_333_333_334)]
    assert book.positions_of(13) == [] and book.position(11, BTC)[0] == -500
    assert book.position(12, BTC)[0] == -1_000 and book.position(4, BTC)[0] == 1_500
    # 13 ends flat with 10000 + 20000 - 6666.66666666 = 23333.33333334 USDT: as if it had
    # bought its 2 BTC back at 93333.33333333.
    assert book.account_margin(13)[0] == 2_333_333_333_334
    assert book.account_margin(11)[0] == 25_000 * USDT - 333_333_333_334
    assert book.positions_of(FUND) == [] and result.fund_equity_after == 0
    assert result.adl_amount == 10**12 and result.adl_overshoot == 0
    assert audit(book, closed=True).ok


def test_queue_with_a_fund_that_covers_part() -> None:
    # As above with the fund at 2345.67 USDT = 234567000000 units: it pays the 10^12
    # deficit, draws down all it had, and is S = 10^12 - 234567000000 = 765433000000 short.
    # 13 takes lots [0, 2000) for 666666666666; still short 98766333334.
    # 11: least k with floor(10^12 x (2000 + k) / 3000) >= 765433000000, i.e.
    #    2000 + k >= 765433000000 x 3000 / 10^12 = 2296.299: k = 297 (lots [2000, 2297) are
    #    worth floor(765666666666.67) - 666666666666 = 99000000000; 296 lots would give
    #    765333333333 - 666666666666 = 98666666667, too little). The last lot's price is
    #    trimmed: 11 pays exactly 98766333334 for 297 lots (their profit is 2970 USDT).
    # The fund keeps 3000 - 2297 = 703 lots; its equity is back at 0 (the lots at the mark).
    # Today: 13 pays 765433000000 from ceil(7654.33 / 10) = 766 lots at the mark.
    book, p = queue_book(234_567_000_000)
    result = run_waterfall(book, p)
    assert _events(result, "adl") == [(13, -2_000, 666_666_666_666), (11, -297, 98_766_333_334)]
    assert book.position(11, BTC)[0] == -1_203 and book.position(12, BTC)[0] == -1_000
    assert book.position(FUND, BTC)[0] == 703
    assert result.fund_equity_after == 0 and result.fund_balance_after == 0
    assert result.adl_amount == 765_433_000_000 and result.adl_overshoot == 0
    assert audit(book, closed=True).ok


@pytest.mark.parametrize(
    ("case", "prices"),
    [
        # (a) 5000 USDT over 1000 lots of 0.001 BTC: 5 USDT a lot = 5000 USDT a BTC above
        #     the mark, 90000 + 5000 = 95000.00 = 9500000 ticks, for both payers.
        ("spec", {2: 9_500_000, 3: 9_500_000}),
        # (b) 666666666666 units / (2000 lots x 1000 units a tick) = 333333.33 ticks and
        #     333333333334 / (1000 x 1000) = 333333.33 ticks above 9000000: 9333333 (toward
        #     the mark) for both.
        ("queue", {13: 9_333_333, 11: 9_333_333}),
        # (c) 13 as in (b); 11: 98766333334 / (297 x 1000) = 332546.58 ticks (297000 x
        #     332546 = 98766162000, remainder 171334): 9000000 + 332546 = 9332546.
        ("queue-fund", {13: 9_333_333, 11: 9_332_546}),
    ],
)
def test_adl_event_price_is_the_effective_price(case: str, prices: dict[int, int]) -> None:
    # The event's price is the effective ADL price in ticks, rounded toward the mark (the
    # exact money is the amount).
    book, p = {
        "spec": spec_book,
        "queue": lambda: queue_book(0),
        "queue-fund": lambda: queue_book(234_567_000_000),
    }[case]()
    result = run_waterfall(book, p)
    assert {e.account_id: e.price for e in result.events if e.kind == "adl"} == prices


# ----- (d) a hedged payer a naive min(profit, equity) cap would breach -------------------
def hedged_adl_book() -> tuple[Book, Profile]:
    # 1: long 1 BTC at 100000 with 5000 USDT.
    # 2: short 1 BTC at 100000 + long 10 ETH at 4000 with 2000 USDT (the only BTC short).
    # 3: short 10 ETH at 4000 with 50000 USDT.
    p = check.profile()
    book = _book(
        [(1, 5_000 * USDT), (2, 2_000 * USDT), (3, 50_000 * USDT)],
        [
            (1, BTC, 1_000, 100_000),
            (2, BTC, -1_000, 100_000),
            (2, ETH, 10_000, 4_000),
            (3, ETH, -10_000, 4_000),
        ],
    )
    open_fund(book, p, 0)
    _marks(book, 90_000, 3_000)
    return book, p


def test_hedged_adl_payer_pays_at_most_its_safe_capacity() -> None:
    # 1: equity 5000 - 10000 = -5000: D = S = 5000 USDT; tranche 1000 lots at 5 USDT a lot
    #    (bankruptcy price 95000).
    # 2: BTC +10000, ETH -10000: equity 2000; maintenance 0.005 x (90000 + 30000) = 600,
    #    150 with its BTC closed. Its 1000 lots are worth 5000 at the bankruptcy price and
    #    10000 at the mark.
    # Naive cap min(5000, 10000, equity 2000) = 2000 would leave 2 at equity 0 with 10 ETH
    # open (maintenance 150): liquidate. Its safe capacity is at most
    # 2000 - 150 - 0.00000001 = 1849.99999999 USDT (closing fewer lots only leaves more
    # maintenance; the conservative bound with the maintenance before, 1399.99999999, is
    # allowed too), so ADL takes 0 < x <= 184999999999 units from it.
    # 2 is the only BTC short: the rest, 5000 - x, is socialized. 3 has +10000 on its ETH
    # and equity 60000; 2's unrealized PnL after ADL is -10000 plus what is left of its BTC
    # profit, negative: 3 pays all of 5000 - x. Nothing is unallocated.
    # Today: 2 pays 2000 and is left liquidate.
    book, p = hedged_adl_book()
    result = run_waterfall(book, p)
    equity, maintenance = book.account_margin(2)
    assert equity > maintenance and _status(book, 2) < STATUS_LIQUIDATE
    adl = check.paid(result, "adl")
    assert set(adl) == {2} and 0 < adl[2] <= 184_999_999_999
    assert check.paid(result, "socialized_loss") == {3: 5_000 * USDT - adl[2]}
    assert result.adl_amount + result.socialized_amount == 5_000 * USDT
    assert result.unallocated_loss == 0 and result.fund_equity_after == 0
    assert audit(book, closed=True).ok


def hedged_social_book() -> tuple[Book, Profile]:
    # ADL off. 1: long 1 BTC at 100000 with 1 USDT.
    # 2: short 1 BTC at 100000 + long 5 ETH at 4000 with 500 USDT.
    # 3: short 5 ETH at 4000 with 50000 USDT.
    p = check.profile(adl=False)
    book = _book(
        [(1, 1 * USDT), (2, 500 * USDT), (3, 50_000 * USDT)],
        [
            (1, BTC, 1_000, 100_000),
            (2, BTC, -1_000, 100_000),
            (2, ETH, 5_000, 4_000),
            (3, ETH, -5_000, 4_000),
        ],
    )
    open_fund(book, p, 0)
    _marks(book, 90_000, 3_000)
    return book, p


def test_hedged_socialized_payer_pays_at_most_its_safe_capacity() -> None:
    # 1: equity 1 - 10000 = -9999: S = 9999 USDT = 999900000000 units.
    # 2: unrealized +10000 - 5000 = 5000, equity 5500, maintenance
    #    0.005 x (90000 + 15000) = 525 (status ok: 525 < 0.8 x 5500).
    #    weight = min(500000000000, 550000000000 - 52500000000 - 1 = 497499999999)
    #           = 497499999999.
    # 3: unrealized +5000, equity 55000, maintenance 75: weight 500000000000.
    # The weights sum to 997499999999 <= S: each pays its weight, and
    # 999900000000 - 997499999999 = 2400000001 is unallocated, the fund's deficit.
    # 2 after: 550000000000 - 497499999999 = 52500000001 > maintenance 52500000000.
    # Today: weights min(5000, 5500) = 5000 and 5000 sum to 10000 > 9999, so each pays
    # 4999.5 and 2 is left at 500.5 < 525: liquidate.
    book, p = hedged_social_book()
    result = run_waterfall(book, p)
    assert check.paid(result, "socialized_loss") == {2: 497_499_999_999, 3: 500 * 10**9}
    assert book.account_margin(2) == (52_500_000_001, 52_500_000_000)
    assert _status(book, 2) < STATUS_LIQUIDATE
    assert result.socialized_amount == 997_499_999_999
    assert result.unallocated_loss == 2_400_000_001
    assert result.fund_equity_after == -2_400_000_001
    assert audit(book, closed=True).ok


# ----- (e) largest-remainder ties in socialized loss -------------------------------------
def tie_book() -> tuple[Book, Profile]:
    # ADL off. 1: long 3 BTC at 100000 with 30000 USDT - 100000000001 units; 13, 12, 11
    # (opened in that order, so row order is not id order): short 1 BTC at 100000 with
    # 50000 USDT each.
    p = check.profile(adl=False)
    book = _book(
        [(13, 50_000 * USDT), (12, 50_000 * USDT), (11, 50_000 * USDT)]
        + [(1, 30_000 * USDT - 100_000_000_001)],
        [(1, BTC, 3_000, 100_000)] + [(a, BTC, -1_000, 100_000) for a in (13, 12, 11)],
    )
    open_fund(book, p, 0)
    _marks(book, 90_000)
    return book, p


def test_socialized_ties_go_to_the_lower_ids() -> None:
    # 1: equity 2899999999999 - 3 x 10^12 = -100000000001: S = 100000000001 units.
    # 11, 12, 13: unrealized 10^12 each, capacity 6 x 10^12 - 45000000000 - 1: weights 10^12.
    # S / 3 = 33333333333.67: 33333333333 each, remainders all equal
    # (S x 10^12 mod 3 x 10^12 = 2 x 10^12, S mod 3 = 2), and the 2 units left go to the
    # lower ids: 11 and 12.
    book, p = tie_book()
    result = run_waterfall(book, p)
    assert check.paid(result, "socialized_loss") == {
        11: 33_333_333_334,
        12: 33_333_333_334,
        13: 33_333_333_333,
    }
    assert result.socialized_amount == 100_000_000_001 and result.unallocated_loss == 0
    assert audit(book, closed=True).ok


def capped_tie_book() -> tuple[Book, Profile]:
    # ADL off. 1: long 4 BTC at 100000 with 40000 USDT - 100000000003 units.
    # 13, 12, 11: short 1 BTC at 100000 with 50000 USDT each.
    # 10: short 1 BTC at 100000 + short 0.3 ETH at 4000 with 15450000001 units; 5 is the
    # ETH long (0.3 ETH at 4000 with 10000 USDT).
    p = check.profile(adl=False)
    book = _book(
        [(13, 50_000 * USDT), (12, 50_000 * USDT), (11, 50_000 * USDT), (10, 15_450_000_001)]
        + [(5, 10_000 * USDT), (1, 40_000 * USDT - 100_000_000_003)],
        [(1, BTC, 4_000, 100_000)]
        + [(a, BTC, -1_000, 100_000) for a in (13, 12, 11, 10)]
        + [(10, ETH, -300, 4_000), (5, ETH, 300, 4_000)],
    )
    open_fund(book, p, 0)
    _marks(book, 90_000, 3_000)
    return book, p


def test_socialized_tie_with_a_weight_cut_to_the_safe_capacity() -> None:
    # 1: equity 3899999999997 - 4 x 10^12 = -100000000003: S = 100000000003 units.
    # 11, 12, 13: weights 10^12 as above.
    # 10: unrealized 10^12 (BTC) + 300 x (4000 - 3000) x 0.001 USDT = 300 USDT = 3 x 10^10:
    #     1030000000000; equity 15450000001 + 1030000000000 = 1045450000001; maintenance
    #     0.005 x 90000 + 0.005 x 900 = 454.5 USDT = 45450000000; capacity
    #     1045450000001 - 45450000000 - 1 = 10^12 < its profit: weight 10^12, a four-way tie.
    # 5: unrealized -300: no weight.
    # S / 4 = 25000000000.75: 25000000000 each, equal remainders, 3 units left: 10, 11, 12.
    # Today 10's weight is min(1030000000000, equity) = 1030000000000: no tie.
    book, p = capped_tie_book()
    result = run_waterfall(book, p)
    assert check.paid(result, "socialized_loss") == {
        10: 25_000_000_001,
        11: 25_000_000_001,
        12: 25_000_000_001,
        13: 25_000_000_000,
    }
    assert result.socialized_amount == 100_000_000_003 and result.unallocated_loss == 0
    assert audit(book, closed=True).ok


# ----- (f) whole positions: BitMEX's published ADL example ---------------------------------
# BitMEX's "Auto-Deleveraging Examples" page (bitmex.com/app/autoDeleveragingExamples): six
# longs ranked by PnL ranking (account: quantity, ranking) 1: 10, 3; 2: 10, 6; 3: 20, 1;
# 4: 30, 4; 5: 20, 5; 6: 10, 2. A short of size 20 is liquidated with bankruptcy price 650:
# accounts 2 and 5 are deleveraged at 650; 2's whole 10 contracts are closed, the remaining
# 10 are assigned to 5, which keeps 10 of its 20.
# Here, linear contracts: XBTUSD, tick 0.01, lot 1 contract of 1 unit, so a lot moving a
# tick is 0.01 x 10^8 = 10^6 units and a lot at 700 is worth 700 USD = 7 x 10^10 units.
# Everyone entered at 600; the mark is 700 (each long +100 a contract, PnL 1/6 of entry).
# Deposits make pnl_leverage (PnL % x notional / equity) rank them as BitMEX does:
#   2: 10 lots, 200 USD  -> equity 1200,  leverage 7000 / 1200  = 5.83  (ranking 6)
#   5: 20 lots, 800      -> equity 2800,  leverage 14000 / 2800 = 5.0   (5)
#   4: 30 lots, 2250     -> equity 5250,  leverage 21000 / 5250 = 4.0   (4)
#   1: 10 lots, 1500     -> equity 2500,  leverage 2.8                  (3)
#   6: 10 lots, 2500     -> equity 3500,  leverage 2.0                  (2)
#   3: 20 lots, 8000     -> equity 10000, leverage 1.4                  (1)
# The liquidated short: 7, 20 lots at 600 with 1000 USD, bankruptcy price
# 600 + 1000 / 20 = 650; at 700 its equity is 1000 - 20 x 100 = -1000 = D (no fee),
# 20 x (700 - 650). The other shorts: 8, 80 lots with 100000 USD.
# Tranche: L = 20 lots carrying A = 1000 USD = 10^11 units, 50 USD (5 x 10^9) a lot.
LONGS = {1: (10, 1_500), 2: (10, 200), 3: (20, 8_000), 4: (30, 2_250), 5: (20, 800), 6: (10, 2_500)}


def bitmex_book(quantity: str, fund_usd: int) -> tuple[Book, Profile]:
    p = check.profile(quantity=quantity)
    table = InstrumentTable.from_dict(
        {
            "instruments": [
                {
                    "symbol": "XBTUSD",
                    "tick_size": "0.01",
                    "lot_size": "1",
                    "tiers": [{"max_notional": None, "mmr": "0.005", "max_leverage": 100}],
                }
            ]
        }
    )
    book = Book(table)
    for account, (lots, usd) in LONGS.items():
        book.deposit(account, usd * USDT)
        book.apply_fill(account, "XBTUSD", lots, 600_00)
    book.deposit(7, 1_000 * USDT)
    book.apply_fill(7, "XBTUSD", -20, 600_00)
    book.deposit(8, 100_000 * USDT)
    book.apply_fill(8, "XBTUSD", -80, 600_00)
    open_fund(book, p, fund_usd * USDT)
    book.set_mark("XBTUSD", 700_00)
    return book, p


@pytest.mark.parametrize("quantity", ["whole", "fewest"])
def test_bitmex_published_example(quantity: str) -> None:
    # Fund 0: S = D = 1000 USD, the whole tranche.
    # 2 closes its whole 10 lots, tranche lots [0, 10): floor(10^11 x 10 / 20) = 5 x 10^10
    # (500 USD; its profit 1000, capacity flat 1200). 5 closes the 10 tranche lots left,
    # [10, 20): 5 x 10^10, and keeps 10 of its 20 lots. Both at 650: 500 USD / 10 lots
    # = 50 USD = 5000 ticks below the mark 70000, 65000. Total 1000 = S: overshoot 0.
    # With the fund at 0 the tranche is all of S, so the fewest-lots mode does the same.
    # 2 ends flat at 1200 - 500 = 700 USD (= 200 + 10 x (650 - 600)); 5 at 2800 - 500.
    book, p = bitmex_book(quantity, 0)
    result = run_waterfall(book, p)
    adl = [(e.account_id, e.qty, e.price, e.amount) for e in result.events if e.kind == "adl"]
    assert adl == [(2, 10, 65_000, 5 * 10**10), (5, 10, 65_000, 5 * 10**10)]
    assert book.positions_of(2) == [] and book.account_margin(2)[0] == 700 * USDT
    assert book.position(5, "XBTUSD")[0] == 10 and book.account_margin(5)[0] == 2_300 * USDT
    for account in (1, 3, 4, 6):
        assert book.position(account, "XBTUSD")[0] == LONGS[account][0]
    assert result.adl_amount == 10**11 and result.adl_overshoot == 0
    assert book.positions_of(FUND) == [] and result.fund_equity_after == 0
    assert audit(book, closed=True).ok


def test_bitmex_example_whole_positions_overshoot() -> None:
    # The fund holds 700 USD: it pays the 1000 deficit, drawing down its 700: S = 300 USD.
    # Whole: 2's whole 10 lots go at 650 and it pays their tranche value 500 USD; that is
    # 200 USD beyond S, the overshoot, which stays with the fund: fund equity
    # 700 - 1000 + 500 = 200 USD, its short now 20 - 10 = 10 lots. 5 is not touched.
    # adl_amount counts what covered S (300; the identity fund_drawdown 700 + 300 = 1000),
    # the events carry the 500 paid, adl_overshoot the 200.
    book, p = bitmex_book("whole", 700)
    result = run_waterfall(book, p)
    adl = [(e.account_id, e.qty, e.price, e.amount) for e in result.events if e.kind == "adl"]
    assert adl == [(2, 10, 65_000, 5 * 10**10)]
    assert result.adl_overshoot == 2 * 10**10
    assert result.adl_amount == 3 * 10**10
    assert result.fund_equity_after == 2 * 10**10
    assert book.position(FUND, "XBTUSD")[0] == -10 and book.position(5, "XBTUSD")[0] == 20
    assert audit(book, closed=True).ok


def test_bitmex_example_fewest_lots_no_overshoot() -> None:
    # Same, default quantity: the fewest lots that cover S = 300 USD = 3 x 10^10: least k
    # with floor(10^11 x k / 20) = 5 x 10^9 k >= 3 x 10^10: k = 6. 2 closes 6 of its 10 lots
    # at 650 and pays 300 USD; overshoot 0; the fund keeps a 14-lot short at equity 0.
    book, p = bitmex_book("fewest", 700)
    result = run_waterfall(book, p)
    adl = [(e.account_id, e.qty, e.price, e.amount) for e in result.events if e.kind == "adl"]
    assert adl == [(2, 6, 65_000, 3 * 10**10)]
    assert result.adl_overshoot == 0 and result.adl_amount == 3 * 10**10
    assert result.fund_equity_after == 0
    assert book.position(FUND, "XBTUSD")[0] == -14 and book.position(2, "XBTUSD")[0] == 4
    assert audit(book, closed=True).ok


# ----- the deficit identity on every example ---------------------------------------------
# (deficit_to_cover, fund_drawdown, adl_amount, socialized_amount, unallocated_loss); None
# where the split is not fixed by the rules (only the sum is).
IDENTITY_CASES = {
    "spec": (spec_book, (10**12, 0, 10**12, 0, 0)),
    "queue": (lambda: queue_book(0), (10**12, 0, 10**12, 0, 0)),
    "queue-fund": (
        lambda: queue_book(234_567_000_000),
        (10**12, 234_567_000_000, 765_433_000_000, 0, 0),
    ),
    "hedged-adl": (hedged_adl_book, (5_000 * USDT, 0, None, None, 0)),
    "hedged-social": (
        hedged_social_book,
        (999_900_000_000, 0, 0, 997_499_999_999, 2_400_000_001),
    ),
    "ties": (tie_book, (100_000_000_001, 0, 0, 100_000_000_001, 0)),
    "capped-ties": (capped_tie_book, (100_000_000_003, 0, 0, 100_000_000_003, 0)),
    "bitmex-whole": (lambda: bitmex_book("whole", 0), (10**11, 0, 10**11, 0, 0)),
    "bitmex-whole-fund": (
        lambda: bitmex_book("whole", 700),
        (10**11, 7 * 10**10, 3 * 10**10, 0, 0),
    ),
    "bitmex-fewest-fund": (
        lambda: bitmex_book("fewest", 700),
        (10**11, 7 * 10**10, 3 * 10**10, 0, 0),
    ),
}


@pytest.mark.parametrize("case", list(IDENTITY_CASES))
def test_deficit_identity_on_the_worked_examples(case: str) -> None:
    # deficit_to_cover is the insurance the fund paid this tick (every defaulter here is
    # bankrupt: no fee, no takeover surplus); the fund draws down what it held above its
    # floor; ADL, socialized loss and the unallocated rest cover the remainder.
    build, expected = IDENTITY_CASES[case]
    book, p = build()
    result = run_waterfall(book, p)
    got = (
        result.deficit_to_cover,
        result.fund_drawdown,
        result.adl_amount,
        result.socialized_amount,
        result.unallocated_loss,
    )
    assert got == tuple(g if e is None else e for g, e in zip(got, expected, strict=True))
    assert sum(got[1:]) == got[0]


# ----- the profile options -----------------------------------------------------------------
def test_profile_adl_price_and_quantity_options() -> None:
    # `[adl] price = "bankruptcy"` and `quantity = "fewest" | "whole"` load; other values
    # are refused, naming the key, like every profile option.
    for quantity in ("fewest", "whole"):
        check.profile(quantity=quantity)
    with pytest.raises(ProfileError, match="adl.quantity"):
        check.profile(quantity="some")
    doc = {"adl": {"price": "cheapest"}}
    with pytest.raises(ProfileError, match="adl.price"):
        Profile.from_dict(doc)
