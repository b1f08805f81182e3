"""Forced liquidation of asset-liability accounts, and the deficit it leaves to the fund.

An account whose sweep status is `liquidate` or `bankrupt` (engine.margin.ratio) is closed
out: every debt is repaid and what is left stays with the account. In order, each step
ledger postings through the AssetBook at the book's prices, under one event id:

1. In kind: a debt in an asset the account holds is repaid from that balance first.
2. The money needed: the money debt plus the cost of buying back every other debt,
   ceil(owed x price / unit) each (together the debt closed out, D), plus the fee,
   ceil(D x the profile's liquidation fee rate / S), less the money the account holds.
3. Forced sale, while money is still needed: collateral is sold to the market (MARKET) in
   a fixed order -- highest collateral rate first (the asset the house itself counts as
   most liquid), then the asset table's order -- each only as much as is needed:
   qty = min(held, ceil(need x unit / price)) for floor(qty x price / unit) money. An
   asset priced at zero cannot be sold.
4. Shortfall: what is still needed for the debts after every sale is the account's deficit
   (the fee is then waived). The
   insurance fund pays it to the account (an `insurance_payout`, the posting the futures
   waterfall uses), so every debt is repaid in full; the lender never loses.
5. Buy-back and repayment: each non-money debt is bought back from the market and repaid in
   kind, then the money debt is repaid.
6. Fee: when nothing was paid out, the fee, capped at the money left, goes to the fund.

Then the waterfall's identity, as for futures (engine.waterfall.run): the deficit to cover
is the tick's payouts plus the fund's deficit below its floor carried in; the fund carries
what its room above the floor and the tick's fees absorb (`fund_drawdown`), and its
shortfall below the floor after the tick is `unallocated_loss`. This model has no
positions, so there is no ADL and no socialized loss (the profiles turn both off):
fund_drawdown + unallocated_loss == deficit_to_cover, asserted to the unit.

Accounts are closed out in account id order; each sale is at the given price and the fund
pays every deficit, so the order changes nothing but the log's order.
"""

from __future__ import annotations

import numpy as np

from engine.book.fixed import RATE_SCALE
from engine.book.ledger import EXTERNAL, Reason
from engine.book.limits import RESERVED_ACCOUNT_BASE
from engine.margin.accounts import HELD, MARKET, AssetBook
from engine.margin.operations import repay_posting
from engine.margin.ratio import STATUS_LIQUIDATE, AssetLiabilityRisk, sweep
from engine.waterfall.events import NO_INSTRUMENT, EventLog, WaterfallResult
from engine.waterfall.profile import Profile


def sale_order(book: AssetBook) -> list[int]:
    """Non-money assets in forced-sale order: collateral rate down, then table order."""
    rate = book.assets.collateral_rate.tolist()
    others = [k for k in range(len(book.assets)) if k != book.assets.money]
    return sorted(others, key=lambda k: (-rate[k], k))


def open_fund(book: AssetBook, profile: Profile, amount: int) -> None:
    """The insurance fund's account, holding `amount` money units deposited from outside
    (EXTERNAL); its money balance may go below zero (its deficit)."""
    fund = profile.fund_account_id
    if book.index.find(fund) is None:
        book.open_account(fund)
    if amount > 0:
        book.post(
            HELD, book.assets.money, EXTERNAL, fund, amount, Reason.DEPOSIT, book.new_event_id()
        )
    book.overdraft_accounts.add(fund)


def liquidate(
    book: AssetBook, profile: Profile, risk: AssetLiabilityRisk | None = None
) -> WaterfallResult:
    """Close out every account at `liquidate` or worse; the fund must be open."""
    rules = profile.asset_liability
    assert rules is not None, f"profile {profile.name} is not an asset-liability model"
    fund = profile.fund_account_id
    money = book.assets.money
    result = WaterfallResult(log=EventLog(book.assets.symbols))
    result.fund_balance_before = result.fund_equity_before = book.of(HELD, money, fund)
    if risk is None:
        risk = sweep(book, rules)
    ids = book.account_id
    breached = (risk.status >= STATUS_LIQUIDATE) & (ids < RESERVED_ACCOUNT_BASE) & (ids != fund)
    breached &= ids != profile.unwind_account_id
    rows = np.flatnonzero(breached)
    rows = rows[np.argsort(ids[rows], kind="stable")]
    for row in rows.tolist():
        close_out(book, profile, row, result)
    result.accounts_liquidated = len(rows)
    floor = profile.fund_floor_units(book.assets.money_decimals)
    after = book.of(HELD, money, fund)
    result.fund_balance_after = result.fund_equity_after = after
    carried_in = max(0, floor - result.fund_balance_before)
    result.deficit_to_cover = result.insurance_paid + carried_in
    result.unallocated_loss = max(0, floor - after)
    result.fund_drawdown = result.deficit_to_cover - result.unallocated_loss
    if result.unallocated_loss:
        result.log.append(
            "unallocated_loss",
            book.new_event_id(),
            fund,
            NO_INSTRUMENT,
            0,
            0,
            result.unallocated_loss,
        )
    assert result.fund_drawdown >= 0 and (
        result.fund_drawdown + result.unallocated_loss == result.deficit_to_cover
    ), f"fund {fund}: drawdown {result.fund_drawdown} + unallocated {result.unallocated_loss}"
    return result


def close_out(book: AssetBook, profile: Profile, row: int, result: WaterfallResult) -> None:
    """Steps 1-6 for the account at `row`."""
    account = int(book.account_id[row])
    assets = book.assets
    money = assets.money
    price, unit = book.price.tolist(), assets.unit.tolist()
    held, owed = book.held_columns, book.owed_columns
    event_id = book.new_event_id()
    log = result.log
    for k in range(len(assets)):  # 1. in kind
        paid = min(int(held[k, row]), int(owed[k, row]))
        if paid:
            repay_posting(book, account, k, paid, event_id)
    buy_back = {
        k: -(-int(owed[k, row]) * price[k] // unit[k])
        for k in range(len(assets))
        if k != money and owed[k, row] > 0
    }
    debt = int(owed[money, row]) + sum(buy_back.values())  # 2.
    fee = -(-debt * profile.liquidation_fee_rate // RATE_SCALE)
    need = debt + fee - int(held[money, row])
    for k in sale_order(book):  # 3. forced sale
        if need <= 0:
            break
        h = int(held[k, row])
        if h == 0 or price[k] == 0:
            continue
        qty = min(h, -(-need * unit[k] // price[k]))
        cash = qty * price[k] // unit[k]
        book.post(HELD, k, account, MARKET, qty, Reason.FORCED_SALE, event_id)
        book.post(HELD, money, MARKET, account, cash, Reason.FORCED_SALE, event_id)
        log.append("liquidation", event_id, account, k, -qty, price[k], cash)
        need -= cash
    paid_out = max(need - fee, 0)
    if paid_out:  # 4. the deficit, paid by the fund
        book.post(
            HELD,
            money,
            profile.fund_account_id,
            account,
            paid_out,
            Reason.INSURANCE_PAYOUT,
            event_id,
        )
        log.append("insurance_payout", event_id, account, NO_INSTRUMENT, 0, 0, paid_out)
        result.insurance_paid += paid_out
    for k, cost in buy_back.items():  # 5. buy back, repay
        qty = int(owed[k, row])
        book.post(HELD, money, account, MARKET, cost, Reason.FORCED_SALE, event_id)
        book.post(HELD, k, MARKET, account, qty, Reason.FORCED_SALE, event_id)
        log.append("liquidation", event_id, account, k, qty, price[k], cost)
        repay_posting(book, account, k, qty, event_id)
    if owed[money, row]:
        repay_posting(book, account, money, int(owed[money, row]), event_id)
    if not paid_out:  # 6. the fee
        fee = min(fee, int(held[money, row]))
        if fee > 0:
            book.post(
                HELD,
                money,
                account,
                profile.fund_account_id,
                fee,
                Reason.LIQUIDATION_FEE,
                event_id,
            )
            log.append("liquidation_fee", event_id, account, NO_INSTRUMENT, 0, 0, fee)
            result.liquidation_fees += fee
    book.call_days[row] = 0
    assert not owed[:, row].any(), f"account {account}: debts left after its close-out"
    assert (held[:, row] >= 0).all(), f"account {account}: a negative balance after close-out"
