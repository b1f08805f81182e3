"""The background articles' worked examples for asset-liability accounts, with their
arithmetic written out (money in yuan / USDT; the books hold units of 0.01 / 10^-8)."""

from __future__ import annotations

from engine.book.fixed import RATE_SCALE
from engine.margin.accounts import AssetBook
from engine.margin.assets import AssetTable
from engine.margin.audit import audit
from engine.margin.liquidation import liquidate, open_fund
from engine.margin.operations import borrow, deposit, spot_trade
from engine.margin.ratio import (
    STATUS_LIQUIDATE,
    STATUS_MARGIN_CALL,
    STATUS_OK,
    account_values,
    ratio_text,
    status_of,
    sweep,
)
from engine.margin.settle import settle_day
from engine.waterfall.profile import Profile

SECURITIES = AssetTable.from_dict(
    {
        "money_decimals": 2,
        "money_asset": "CNY",
        "assets": [
            {"symbol": "CNY", "decimals": 2},
            {"symbol": "SH600000", "decimals": 0, "collateral_rate": "1"},
        ],
    }
)
CNY, STOCK = 0, 1
YUAN = 100  # money units per yuan


def financed_buyer() -> tuple[AssetBook, Profile]:
    """10,000 own funds + 10,000 borrowed buy 20,000 of stock: 2,000 shares at 10.00."""
    profile = Profile.shipped("securities-margin")
    rules = profile.asset_liability
    assert rules is not None
    book = AssetBook(SECURITIES)
    book.set_price(STOCK, 10 * YUAN)
    deposit(book, 1, CNY, 10_000 * YUAN)
    borrow(book, rules, 1, CNY, 10_000 * YUAN)
    spot_trade(book, rules, 1, STOCK, 2_000)
    return book, profile


def test_the_securities_profile_calls_below_130_percent() -> None:
    rules = Profile.shipped("securities-margin").asset_liability
    assert rules is not None
    assert rules.call_level == 130 * RATE_SCALE // 100
    assert rules.call_deadline_days == 2


def test_margin_financing_call_comes_when_the_stock_is_worth_13000() -> None:
    book, profile = financed_buyer()
    rules = profile.asset_liability
    assert rules is not None
    # Bought: 2,000 shares x 10.00 = 20,000; cash 10,000 + 10,000 - 20,000 = 0; owes 10,000.
    assert book.held[:, 0].tolist() == [0, 2_000]
    assert book.owed[:, 0].tolist() == [10_000 * YUAN, 0]
    # Maintenance ratio = 20,000 / 10,000 = 200%.
    assert ratio_text(*account_values(book, 0)[1:]) == "2.0000"
    # At 6.50 the stock is worth 2,000 x 6.50 = 13,000: 13,000 / 10,000 = 130%, not below.
    book.set_price(STOCK, 650)
    market, collateral, liability = account_values(book, 0)
    assert (market, collateral, liability) == (13_000 * YUAN, 13_000 * YUAN, 10_000 * YUAN)
    assert sweep(book, rules).status.tolist() == [STATUS_OK]
    # One tick lower, 6.49: 2,000 x 6.49 = 12,980; 12,980 / 10,000 = 129.8% < 130%: the call.
    book.set_price(STOCK, 649)
    assert ratio_text(*account_values(book, 0)[1:]) == "1.2980"
    assert sweep(book, rules).status.tolist() == [STATUS_MARGIN_CALL]
    # The immediate forced-sale line is 110%: 2,000 x 5.49 = 10,980 -> 109.8%.
    book.set_price(STOCK, 549)
    assert sweep(book, rules).status.tolist() == [STATUS_LIQUIDATE]


def test_a_call_not_restored_within_two_settlements_is_a_forced_sale() -> None:
    book, profile = financed_buyer()
    rules = profile.asset_liability
    assert rules is not None
    open_fund(book, profile, 0)
    book.set_price(STOCK, 649)  # 129.8%: called
    for day in (1, 2):
        risk = settle_day(book, rules, {})
        assert int(book.call_days[0]) == day
        assert int(risk.status[0]) == STATUS_MARGIN_CALL
    risk = settle_day(book, rules, {})  # the third settlement: the deadline has passed
    assert int(risk.status[0]) == STATUS_LIQUIDATE
    result = liquidate(book, profile, risk)
    # Owes 10,000: sells ceil(10,000 / 6.49) = ceil(1,540.8) = 1,541 shares for
    # 1,541 x 6.49 = 10,001.09; repays 10,000; keeps 2,000 - 1,541 = 459 shares and 1.09.
    assert result.accounts_liquidated == 1
    assert book.held[:, 0].tolist() == [109, 459]
    assert book.owed[:, 0].tolist() == [0, 0]
    assert result.insurance_paid == 0
    audit(book)


def test_interest_brings_the_call_forward() -> None:
    book, profile = financed_buyer()
    rules = profile.asset_liability
    assert rules is not None
    book.set_price(STOCK, 650)  # exactly 130% before interest
    # A day's interest at 0.0225% (8.2% a year / 365, rounded): ceil(10,000 x 0.000225)
    # = 2.25 yuan: owes 10,002.25; 13,000 / 10,002.25 = 129.97% < 130%: called.
    settle_day(book, rules, {CNY: 22_500})
    assert book.owed[:, 0].tolist() == [1_000_225, 0]
    assert sweep(book, rules).status.tolist() == [STATUS_MARGIN_CALL]
    assert book.interest_accrued[CNY] == 225
    audit(book)


CRYPTO = AssetTable.from_dict(
    {
        "money_decimals": 8,
        "money_asset": "USDT",
        "assets": [
            {"symbol": "USDT", "decimals": 8},
            {"symbol": "BTC", "decimals": 8},
        ],
    }
)
USDT = 10**8


def crypto_borrower() -> tuple[AssetBook, Profile]:
    """10,000 USDT own + 20,000 USDT borrowed buy 0.3 BTC at 100,000 (3x)."""
    profile = Profile.shipped("crypto-spot-margin")
    rules = profile.asset_liability
    assert rules is not None
    book = AssetBook(CRYPTO)
    book.set_price(1, 100_000 * USDT)
    deposit(book, 7, 0, 10_000 * USDT)
    borrow(book, rules, 7, 0, 20_000 * USDT)
    spot_trade(book, rules, 7, 1, 3 * 10**7)
    return book, profile


def test_crypto_margin_level_and_the_articles_risk_rate() -> None:
    book, profile = crypto_borrower()
    rules = profile.asset_liability
    assert rules is not None
    # Margin level = total assets / (debt + interest) = 30,000 / 20,000 = 1.5.
    assert ratio_text(*account_values(book, 0)[1:]) == "1.5000"
    # The article's risk rate = (total assets - borrowed) / borrowed
    # = (30,000 - 20,000) / 20,000 = 50% = margin level - 1.
    market, _, liability = account_values(book, 0)
    assert ratio_text(market - liability, liability) == "0.5000"
    # BTC at 80,000: 0.3 x 80,000 = 24,000; 24,000 / 20,000 = 1.2 < 1.3: a margin call.
    book.set_price(1, 80_000 * USDT)
    assert sweep(book, rules).status.tolist() == [STATUS_MARGIN_CALL]
    # Liquidation price: 1.1 x 20,000 / 0.3 = 73,333.33...: at 73,333.34 the assets are
    # 22,000.002 (level 1.1000001, called), at 73,333.33 they are 21,999.999 (1.09999995).
    book.set_price(1, 73_333_34 * USDT // 100)
    assert status_of(*account_values(book, 0), rules) == STATUS_MARGIN_CALL
    book.set_price(1, 73_333_33 * USDT // 100)
    assert account_values(book, 0)[0] == 21_999_999 * USDT // 1000
    assert status_of(*account_values(book, 0), rules) == STATUS_LIQUIDATE
    # The article's own line, a risk rate below 100%, is a margin level below 2: this
    # account (risk rate 50% when it opened) would have been liquidated at once.
    assert ratio_text(30_000, 20_000) < "2"


def test_a_bankrupt_account_is_a_deficit_the_fund_pays() -> None:
    book, profile = crypto_borrower()
    open_fund(book, profile, 50_000 * USDT)
    # A 40% crash: 0.3 BTC x 60,000 = 18,000 < 20,000 owed: sells all of it, 2,000 short.
    book.set_price(1, 60_000 * USDT)
    result = liquidate(book, profile)
    assert result.insurance_paid == 2_000 * USDT
    assert result.fund_balance_after == 48_000 * USDT
    assert result.deficit_to_cover == result.fund_drawdown == 2_000 * USDT
    assert result.unallocated_loss == 0
    assert book.held[:, 0].tolist() == [0, 0] and book.owed[:, 0].tolist() == [0, 0]
    assert result.summary() == {"liquidation": 1, "insurance_payout": 1}
    audit(book)
