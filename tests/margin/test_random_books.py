"""Random asset-liability books: operations, interest, crashes and close-outs, with the
audit after every step, and the sweep's statuses against the Fractions reference."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.book.errors import Rejected
from engine.margin.accounts import AssetBook
from engine.margin.assets import AssetTable
from engine.margin.audit import audit
from engine.margin.liquidation import liquidate, open_fund
from engine.margin.operations import borrow, deposit, repay, spot_trade, withdraw
from engine.margin.ratio import STATUS_LIQUIDATE, sweep
from engine.margin.settle import settle_day
from engine.waterfall.profile import Profile
from tests.margin import reference as ref

ASSETS = AssetTable.from_dict(
    {
        "money_decimals": 2,
        "money_asset": "USD",
        "assets": [
            {"symbol": "USD", "decimals": 2},
            {"symbol": "A", "decimals": 0, "collateral_rate": "0.7"},
            {"symbol": "B", "decimals": 3, "collateral_rate": "0.95"},
            {"symbol": "C", "decimals": 8, "collateral_rate": "0"},
        ],
    }
)

operation = st.tuples(
    st.sampled_from(["deposit", "withdraw", "borrow", "repay", "buy", "sell", "price", "settle"]),
    st.integers(0, 4),  # account
    st.integers(0, 3),  # asset
    st.integers(1, 10**7),  # amount / price
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, max_size=40), st.integers(0, 10**6), st.booleans())
def test_every_step_is_conserved_and_close_outs_repay_everything(
    ops: list[tuple[str, int, int, int]], fund: int, crypto: bool
) -> None:
    profile = Profile.shipped("crypto-spot-margin" if crypto else "securities-margin")
    rules = profile.asset_liability
    assert rules is not None
    book = AssetBook(ASSETS)
    for k, price in ((1, 1_000), (2, 50_000), (3, 7)):
        book.set_price(k, price)
    open_fund(book, profile, fund)
    for kind, account, asset, amount in ops:
        try:
            if kind == "deposit":
                deposit(book, account, asset, amount)
            elif kind == "withdraw":
                withdraw(book, rules, account, asset, amount)
            elif kind == "borrow":
                borrow(book, rules, account, asset, amount)
            elif kind == "repay":
                repay(book, account, asset, amount)
            elif kind in ("buy", "sell") and asset:
                spot_trade(book, rules, account, asset, amount if kind == "buy" else -amount)
            elif kind == "price" and asset:
                book.set_price(asset, amount // 3)
            elif kind == "settle":
                settle_day(book, rules, {0: amount % 10**6, asset: amount % 10**5})
        except Rejected:
            pass
        audit(book)
        check_against_reference(book, rules)
    before = sweep(book, rules)
    result = liquidate(book, profile, before)
    audit(book)
    breached = before.status >= STATUS_LIQUIDATE
    breached[book.account_id == profile.fund_account_id] = False
    assert result.accounts_liquidated == int(breached.sum())
    assert not book.owed[:, breached].any()  # every debt of a breached account repaid
    assert result.fund_drawdown + result.unallocated_loss == result.deficit_to_cover
    # The fund paid exactly the deficits: what the breached accounts' assets could not repay.
    assert result.fund_balance_before + result.liquidation_fees - result.insurance_paid == (
        result.fund_balance_after
    )


def check_against_reference(book: AssetBook, rules) -> None:  # noqa: ANN001
    risk = sweep(book, rules)
    for row in range(book.n_accounts):
        got = ref.account(
            book.held[:, row].tolist(),
            book.owed[:, row].tolist(),
            book.price.tolist(),
            book.assets.unit.tolist(),
            book.assets.collateral_rate.tolist(),
            rules.call_level,
            rules.liquidation_level,
        )
        status = got[3]
        if (
            rules.call_deadline_days is not None
            and status == ref.MARGIN_CALL
            and book.call_days[row] > rules.call_deadline_days
        ):
            status = ref.LIQUIDATE
        assert (*got[:3], status) == (
            int(risk.market_value[row]),
            int(risk.collateral_value[row]),
            int(risk.liability_value[row]),
            int(risk.status[row]),
        )


def test_a_rejected_operation_changes_nothing() -> None:
    profile = Profile.shipped("securities-margin")
    rules = profile.asset_liability
    assert rules is not None
    book = AssetBook(ASSETS)
    book.set_price(1, 1_000)
    deposit(book, 1, 0, 10_000)
    borrow(book, rules, 1, 0, 20_000)  # 30,000 / 20,000 = 1.5
    held, owed = book.held.copy(), book.owed.copy()
    with pytest.raises(Rejected, match="insufficient_margin"):
        borrow(book, rules, 1, 0, 20_000)  # 50,000 / 40,000 = 1.25 < 1.3
    with pytest.raises(Rejected, match="insufficient_margin"):
        withdraw(book, rules, 1, 0, 5_000)  # 25,000 / 20,000 = 1.25
    with pytest.raises(Rejected, match="invalid_amount"):
        repay(book, 1, 0, 20_001)
    with pytest.raises(Rejected, match="reserved_account"):
        deposit(book, profile.fund_account_id, 0, 1)
    with pytest.raises(Rejected, match="unknown_account"):
        borrow(book, rules, 2, 0, 1)
    assert (book.held == held).all() and (book.owed == owed).all()
    audit(book)
