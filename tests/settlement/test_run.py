"""engine.settlement.run: a hand-worked book, exact netting of funding and variation margin,
conservation, refusals that leave the book unchanged (the example: tests/settlement/example.py).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentError, InstrumentTable
from engine.book.ledger import CLEARING, FEES, FUNDING_POOL
from engine.settlement.fees import FeesInput
from engine.settlement.funding import FundingInput
from engine.settlement.run import settle
from engine.waterfall.conservation import audit
from engine.waterfall.profile import Profile
from tests.settlement.example import (
    EXAMPLE_FEES,
    EXAMPLE_FUNDING,
    EXAMPLE_PRICES,
    FUND,
    example_book,
    example_instruments,
)


def test_hand_worked_example() -> None:
    book = example_book()
    result = settle(
        book,
        EXAMPLE_PRICES,
        date="2025-10-11",
        profile=Profile.shipped(),
        funding=EXAMPLE_FUNDING,
        fees=EXAMPLE_FEES,
    )
    # Variation margin on ETH-0926 at 3100.00 = q x 310_000 - cost:
    #   1: -500 x 310_000 + 150_000_000 = -5_000_000   (-500 USDT)
    #   2:  300 x 310_000 -  89_700_000 =  3_300_000   (+330 USDT)
    #   3:  200 x 310_000 -  60_300_000 =  1_700_000   (+170 USDT)   sum 0
    # Funding on BTC-PERP, notional at 101000.0 = lots x 1_010_000, rate 12_345 / 10^8 > 0:
    #   1 pays ceil(1_010_000_000 x 12_345 / 10^8) = ceil(124_684.5) = 124_685
    #   2 is owed 606_000_000 x 12_345 / 10^8 = 74_810.7, 3 is owed 49_873.8
    #   receivers' total floor(124_684.5) = 124_684; floors 74_810 + 49_873 = 124_683;
    #   the 1 unit left goes to the larger fraction, 3 (.8 > .7): 2 gets 74_810, 3 gets 49_874;
    #   the pool keeps 124_685 - 124_684 = 1 unit.
    # Fees: 1 pays 123_456, 2 is rebated 5_000.
    # Before the waterfall, 3 has 2_500_000 + 1_700_000 + 49_874 = 4_249_874 and BTC
    # unrealized -400 x 1_010_000 + 400_000_000 = -4_000_000: equity 249_874 below its
    # maintenance margin 0.005 x (404_000_000 + 62_000_000) = 2_330_000, so it is taken
    # over: the fee ceil(0.005 x 466_000_000) = 2_330_000 is capped at the equity 249_874,
    # the BTC short closes at 101000.0 realizing -4_000_000, the ETH long realizes 0 (its
    # cost was just reset to 200 x 310_000), and 3 ends at exactly 0.
    assert result.realized_pnl.tolist() == [-5_000_000, 3_300_000, 1_700_000 - 4_000_000, 0]
    assert result.funding.tolist() == [-124_685, 74_810, 49_874, 0]
    assert result.fees.tolist() == [123_456, -5_000, 0, 0]
    assert result.liquidation_losses.tolist() == [0, 0, 249_874, -249_874]
    # closing = opening + realized + funding - fees - liquidation losses
    #   1: 100_000_000 - 5_000_000 - 124_685 - 123_456 = 94_751_859
    #   2:  50_000_000 + 3_300_000 +  74_810 +   5_000 = 53_379_810
    #   3:   2_500_000 - 2_300_000 +  49_874 - 249_874 = 0; the fund (opened at 0) 249_874
    assert book.balance.tolist() == [94_751_859, 53_379_810, 0, 249_874]
    assert result.closing_balance.tolist() == book.balance.tolist()
    # Equity: 1 adds BTC +1000 x 1_010_000 - 10^9 = +10_000_000; 2 adds -6_000_000.
    assert result.closing.equity[:3].tolist() == [104_751_859, 47_379_810, 0]
    assert book.house_balance[FUNDING_POOL] == 1
    assert book.house_balance[FEES] == 123_456 - 5_000
    # CLEARING paid the net VM (0) and received 3's realized BTC loss (4_000_000).
    assert book.house_balance[CLEARING] == 4_000_000
    t = result.instruments
    assert t.funding_paid.tolist() == [124_685, 0]
    assert t.funding_received.tolist() == [124_684, 0]
    assert t.funding_to_pool.tolist() == [1, 0]
    assert t.variation_margin_gains.tolist() == [0, 5_000_000]
    assert t.variation_margin_losses.tolist() == [0, -5_000_000]
    # The dated cost basis is the settlement value now; the perpetual's is untouched.
    assert book.position(1, "ETH-0926") == (-500, -500 * 310_000)
    assert book.position(1, "BTC-PERP") == (1000, 1_000_000_000)
    assert book.position(FUND, "BTC-PERP") == (-400, -400 * 1_010_000)
    assert result.waterfall.accounts_liquidated == 1
    assert result.closed_book and all(result.checks.values())
    assert audit(book, closed=True).ok
    assert len(result.negative_rows) == 0


def test_settling_again_at_the_same_prices_moves_no_variation_margin() -> None:
    book = example_book()
    profile = Profile.shipped()
    settle(book, EXAMPLE_PRICES, date="2025-10-11", profile=profile)
    postings = len(book.ledger)
    balances = book.balance.copy()
    result = settle(book, EXAMPLE_PRICES, date="2025-10-12", profile=profile)
    # The dated cost basis was reset to 3100.00, so its VM is 0; no funding was given.
    assert result.realized_pnl.tolist() == [0] * book.n_accounts
    assert len(book.ledger) == postings and np.array_equal(book.balance, balances)


def test_missing_price_refused_and_the_book_unchanged() -> None:
    book = example_book()
    before = (book.balance.copy(), book.pos_cost.copy(), len(book.ledger), book.mark.copy())
    with pytest.raises(Rejected, match="ETH-0926") as excinfo:
        settle(book, {0: 1_010_000}, date="2025-10-11", profile=Profile.shipped())
    assert excinfo.value.reason == "no_settlement_price"
    assert np.array_equal(book.balance, before[0]) and np.array_equal(book.pos_cost, before[1])
    assert len(book.ledger) == before[2] and np.array_equal(book.mark, before[3])
    assert not book.mark_set.any() and book.n_accounts == 3


@pytest.mark.parametrize(
    ("funding", "fees", "reason"),
    [
        ([FundingInput(1, rate=100)], None, "not_perpetual"),
        ([FundingInput(0, rate=10**8)], None, "invalid_funding"),
        ([FundingInput(0)], None, "invalid_funding"),
        ([], None, "no_funding_rate"),
        (None, FeesInput(np.array([9]), np.array([1])), "unknown_account"),
        (None, FeesInput(np.array([1, 1]), np.array([1, 2])), "duplicate_account"),
    ],
)
def test_bad_funding_or_fees_refused_before_any_change(
    funding: list[FundingInput] | None, fees: FeesInput | None, reason: str
) -> None:
    book = example_book()
    with pytest.raises(Rejected) as excinfo:
        settle(
            book, EXAMPLE_PRICES, date="d", profile=Profile.shipped(), funding=funding, fees=fees
        )
    assert excinfo.value.reason == reason
    assert len(book.ledger) == 3 and not book.mark_set.any()


def test_debt_mode_account_listed_negative() -> None:
    # ccp profile: no negative-balance protection. At BTC 92000.0 account 3 (short 0.4)
    # gains, account 1 (long 1 BTC, 10000 USDT) loses 8000 on BTC and 500 VM on ETH at
    # 3100; put ETH at 5000.00 instead: VM -500 x (500_000 - 300_000) = -100_000_000
    # (-10000 USDT), so 1's equity is 10000 - 10000 - 8000 = -8000 USDT: bankrupt, and the
    # deficit stays on the account.
    book = example_book()
    profile = Profile.shipped("ccp")
    result = settle(book, {0: 920_000, 1: 500_000}, date="d", profile=profile)
    row = book.row_of(1)
    assert book.balance[row] < 0
    assert int(book.account_id[result.negative_rows[0]]) == 1
    assert result.waterfall.debt_kept == -int(book.balance[row])
    assert all(result.checks.values())


# ----- invariants on random closed books ---------------------------------------------------
@st.composite
def traded_books(draw: st.DrawFn) -> tuple[Book, dict[int, int], list[FundingInput]]:
    """Accounts trading with each other (so open interest nets), at assorted prices."""
    book = Book(example_instruments())
    n_accounts = draw(st.integers(2, 6))
    for account in range(1, n_accounts + 1):
        book.deposit(account, draw(st.integers(1, 10**9)))
    for _ in range(draw(st.integers(1, 12))):
        buyer, seller = draw(
            st.lists(st.integers(1, n_accounts), min_size=2, max_size=2, unique=True)
        )
        symbol = draw(st.sampled_from(["BTC-PERP", "ETH-0926"]))
        lots = draw(st.integers(1, 5_000))
        price = draw(st.integers(1, 2_000_000))
        book.apply_fill(buyer, symbol, lots, price)
        book.apply_fill(seller, symbol, -lots, price)
    prices = {0: draw(st.integers(1, 2_000_000)), 1: draw(st.integers(1, 2_000_000))}
    rate = draw(st.integers(-(10**8) + 1, 10**8 - 1))
    return book, prices, [FundingInput(0, rate=rate)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traded_books())
def test_funding_and_variation_margin_net_to_zero(
    case: tuple[Book, dict[int, int], list[FundingInput]],
) -> None:
    book, prices, funding = case
    rate = funding[0].rate
    assert rate is not None
    book.compact()
    owner = book.position_owner()
    qty, inst, cost = book.pos_qty.copy(), book.pos_instrument.copy(), book.pos_cost.copy()
    ids = book.account_id[owner]
    clearing_before = book.house_balance[CLEARING]
    assert audit(book, closed=True).ok
    profile = Profile.from_dict({"adl": {"enabled": False}, "socialized_loss": {"enabled": False}})
    result = settle(book, prices, date="d", profile=profile, funding=funding)
    assert result.closed_book and all(result.checks.values())
    assert audit(book, closed=True).ok

    # Funding: every payer paid its exact obligation rounded up; every receiver got its
    # exact obligation rounded down or up; the pool keeps less than one unit per payer.
    live = (qty != 0) & (inst == 0)
    owed = {
        int(a): Fraction(abs(int(q)) * prices[0] * abs(rate), 10**8)
        for a, q in zip(ids[live], qty[live], strict=True)
    }
    payer = {int(a) for a, q in zip(ids[live], qty[live], strict=True) if (q > 0) == (rate > 0)}
    funding_by_id = dict(zip(book.account_id.tolist(), result.funding.tolist(), strict=True))
    for account, exact in owed.items():
        got = funding_by_id[account]
        if rate == 0:
            assert got == 0
        elif account in payer:
            assert -got == -((-exact.numerator) // exact.denominator)  # ceil
        else:
            assert exact - 1 < got <= exact + 1 and got >= 0
    pool = book.house_balance[FUNDING_POOL]
    assert sum(result.funding.tolist()) + pool == 0
    assert 0 <= pool <= max(len(payer), 0)

    # Variation margin: the dated positions' VM sums to minus their open cost basis, and
    # CLEARING pays it (and whatever the waterfall realized), to the unit.
    dated = (qty != 0) & (inst == 1)
    vm = qty[dated] * prices[1] - cost[dated]
    assert sum(vm.tolist()) == -sum(cost[dated].tolist())
    assert sum(result.instruments.variation_margin_gains.tolist()) + sum(
        result.instruments.variation_margin_losses.tolist()
    ) == sum(vm.tolist())
    assert book.house_balance[CLEARING] - clearing_before == -sum(result.realized_pnl.tolist())
    assert np.array_equal(result.closing_balance, book.balance)


def test_instrument_kind_defaults_to_perpetual_and_round_trips() -> None:
    table = example_instruments()
    assert [i.kind for i in table.instruments] == ["perpetual", "dated"]
    again = InstrumentTable.from_dict(table.to_dict())
    assert [i.kind for i in again.instruments] == ["perpetual", "dated"]
    doc = table.to_dict()
    doc["instruments"][0]["kind"] = "quarterly"
    with pytest.raises(InstrumentError, match=r"instruments\[0\] \(BTC-PERP\)\.kind"):
        InstrumentTable.from_dict(doc)
