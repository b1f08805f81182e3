"""Liquidation: breached accounts handed to the insurance fund at their bankruptcy value.

Accounts go in priority order: lowest equity / maintenance margin first (an exact fraction
compare; a bankrupt account without maintenance margin ranks first), ties by account id.
Full takeover: the liquidation fee min(ceil(rate x notional), equity) goes to the fund;
each position moves to the fund as a pair of fills at the mark (so open interest still nets
to zero); then the account's remaining equity R moves to the fund (`takeover`). The fund so
takes the positions at their bankruptcy value: its equity changes by exactly the trader's
equity, and the trader ends at exactly 0. If R < 0 the fund pays -R (`insurance_payout`,
never more) under negative-balance protection; in debt mode the account keeps R as its
(negative) balance. Partial mode takes step_fraction of every position (rounded up to a
lot) at the mark with its fee, re-checks, and repeats while the account stays breached; a
bankrupt account is taken over in full.

Two paths give the same state. `liquidate_account` takes one account over through the
book's public operations (apply_fill, transfer); it is the reference and runs the partial
steps. The batch path (`take_over_batch`) takes a run of consecutive full takeovers over
with numpy: fees, the traders' realized PnL and takeover amounts per account, the fund's
fills replayed in order with plain integers (engine.waterfall.fund.plan_fills), committed
by Book.commit_fills, then one ledger call per reason. Balances, positions, house
accounts, events and the postings themselves are the same as the reference's; only the
ledger's order differs (postings grouped by reason within a batch, with the same event
ids). A batch whose values could leave the range the book checks falls back to the
reference path, which then raises where the book would.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from engine.book.book import Book
from engine.book.fixed import RATE_SCALE
from engine.book.ledger import Reason
from engine.book.limits import FLOAT_SCREEN_MAX
from engine.waterfall.events import KIND_CODE, NO_INSTRUMENT, WaterfallResult
from engine.waterfall.fund import plan_fills
from engine.waterfall.profile import Profile

PARTIAL_STEPS_MAX = 10_000
# Relative gap under which two float margin ratios may be out of their exact order.
RATIO_NEAR = 2.0**-48


def liquidation_order(
    account_ids: Sequence[int] | np.ndarray,
    equity: Sequence[int] | np.ndarray,
    maintenance: Sequence[int] | np.ndarray,
    priority: Sequence[int] | np.ndarray | None = None,
) -> list[int]:
    """Indices in processing order: lowest equity / maintenance first, exactly; ties by id.
    `priority` (optional, lower first) is the first key when given: the forced-close order
    by account class of engine.exchange.account_classes.

    A float sort does the bulk; the float ratios carry a relative error of a few 2^-53, so
    two ratios out of exact order are within RATIO_NEAR of each other and of everything
    between them: each run of near-equal neighbours is re-sorted with exact fractions.
    """
    ids = np.asarray(account_ids, dtype=np.int64)
    e = np.asarray(equity, dtype=np.int64)
    mm = np.asarray(maintenance, dtype=np.int64)
    first = np.zeros(len(ids), np.int64) if priority is None else np.asarray(priority, np.int64)
    has_margin = mm > 0
    rank_class = np.where(has_margin, 1, np.where(e < 0, 0, 2))
    ratio = np.where(has_margin, e.astype(np.float64) / np.where(has_margin, mm, 1), 0.0)
    order = np.lexsort((ids, ratio, rank_class, first))
    r, c, f = ratio[order], rank_class[order], first[order]
    near = (
        (c[1:] == 1)
        & (c[:-1] == 1)
        & (f[1:] == f[:-1])
        & (np.abs(r[1:] - r[:-1]) <= RATIO_NEAR * np.maximum(np.abs(r[1:]), np.abs(r[:-1])))
    )
    result = order.tolist()
    if near.any():
        # Runs [start, end] of positions linked by near-equal neighbours.
        edges = np.diff(np.concatenate([[0], near.astype(np.int8), [0]]))
        for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            run = result[start : end + 1]
            result[start : end + 1] = sorted(
                run, key=lambda i: (Fraction(int(e[i]), int(mm[i])), int(ids[i]))
            )
    return result


def liquidate_in_runs(
    book: Book,
    profile: Profile,
    rows: np.ndarray,
    equity: np.ndarray,
    maintenance: np.ndarray,
    result: WaterfallResult,
) -> None:
    """Accounts in priority order: runs of full takeovers in one batch each, partial steps
    one account at a time in between (they change the fund's position the runs start from)."""
    full = np.ones(len(rows), dtype=bool)
    if profile.partial_liquidation:
        full = equity < 0
    bounds = np.flatnonzero(np.diff(np.concatenate([[-1], full.astype(np.int8), [-1]])))
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if full[start]:
            part = slice(start, end)
            if take_over_batch(book, profile, rows[part], equity[part], result):
                continue
        for i in range(start, end):
            account_id = int(book.account_id[rows[i]])
            liquidate_account(
                book, profile, account_id, int(equity[i]), int(maintenance[i]), result
            )


def _fee(book: Book, profile: Profile, positions: list[tuple[int, int, int]]) -> int:
    notional = sum(abs(q) * int(book.mark_lot_value[inst]) for inst, q, _ in positions)
    return -((-notional * profile.liquidation_fee_rate) // RATE_SCALE)  # ceil: house's favour


def _move_to_fund(
    book: Book, fund: int, account_id: int, inst: int, qty: int, event_id: int
) -> tuple[str, int]:
    """The trader gives `qty` lots (signed as its position) to the fund at the mark."""
    symbol = book.instruments.instruments[inst].symbol
    price = int(book.mark[inst])
    assert price > 0, f"{symbol}: a position is moved at a positive mark"
    book.apply_fill(account_id, symbol, -qty, price, event_id=event_id)
    book.apply_fill(fund, symbol, qty, price, event_id=event_id)
    return symbol, price


def liquidate_account(
    book: Book,
    profile: Profile,
    account_id: int,
    equity: int,
    maintenance: int,
    result: WaterfallResult,
) -> None:
    fund = profile.fund_account_id
    log = result.log
    if profile.partial_liquidation and equity >= 0:
        bankrupt_equity = _partial_steps(book, profile, account_id, equity, maintenance, result)
        if bankrupt_equity is None:
            return
        equity = bankrupt_equity
    event_id = book.new_event_id()
    positions = book.positions_of(account_id)
    fee = min(_fee(book, profile, positions), max(equity, 0))
    fund_equity = book.account_equity(fund)
    if fee > 0:
        book.transfer(account_id, fund, fee, Reason.LIQUIDATION_FEE, event_id)
        result.liquidation_fees += fee
        log.append("liquidation_fee", event_id, account_id, NO_INSTRUMENT, 0, 0, fee)
    for inst, qty, _ in positions:
        _, price = _move_to_fund(book, fund, account_id, inst, qty, event_id)
        log.append("liquidation", event_id, account_id, inst, qty, price, 0)
    remaining = int(book.balance[book.row_of(account_id)])
    # All positions are closed at the mark, so the balance is the equity less the fee.
    assert remaining == equity - fee, f"account {account_id}: takeover moves other than its equity"
    if remaining > 0:
        book.transfer(account_id, fund, remaining, Reason.TAKEOVER, event_id)
        result.takeover_surplus += remaining
        log.append("takeover", event_id, account_id, NO_INSTRUMENT, 0, 0, remaining)
    elif remaining < 0 and profile.negative_balance_protection:
        book.transfer(fund, account_id, -remaining, Reason.INSURANCE_PAYOUT, event_id)
        result.insurance_paid += -remaining
        log.append("insurance_payout", event_id, account_id, NO_INSTRUMENT, 0, 0, -remaining)
    elif remaining < 0:
        result.debt_kept += -remaining
    after = int(book.balance[book.row_of(account_id)])
    protect = profile.negative_balance_protection
    assert after == (0 if protect else min(remaining, 0)) and not book.positions_of(account_id), (
        f"account {account_id}: a taken-over account ends flat at 0 (or its debt)"
    )
    inflow = fee + max(remaining, 0) + (min(remaining, 0) if protect else 0)
    assert book.account_equity(fund) - fund_equity == inflow, (
        f"fund {fund}: took account {account_id} over at other than its bankruptcy value"
    )


def _partial_steps(
    book: Book,
    profile: Profile,
    account_id: int,
    equity: int,
    maintenance: int,
    result: WaterfallResult,
) -> int | None:
    """Step fractions at the mark until safe (None) or bankrupt (its equity, for takeover)."""
    fund = profile.fund_account_id
    for _ in range(PARTIAL_STEPS_MAX):
        positions = book.positions_of(account_id)
        if not positions:
            return None
        if equity < 0:
            return equity
        if equity > maintenance:
            return None
        event_id = book.new_event_id()
        slices = [
            (inst, (1 if q > 0 else -1) * -((-abs(q) * profile.partial_step_rate) // RATE_SCALE))
            for inst, q, _ in positions
        ]
        fee = min(_fee(book, profile, [(i, q, 0) for i, q in slices]), equity)
        if fee > 0:
            book.transfer(account_id, fund, fee, Reason.LIQUIDATION_FEE, event_id)
            result.liquidation_fees += fee
            result.log.append("liquidation_fee", event_id, account_id, NO_INSTRUMENT, 0, 0, fee)
        for inst, q in slices:
            _, price = _move_to_fund(book, fund, account_id, inst, q, event_id)
            result.log.append("liquidation", event_id, account_id, inst, q, price, 0)
        equity, maintenance = book.account_margin(account_id)
    raise AssertionError("partial liquidation did not end within PARTIAL_STEPS_MAX steps")


def take_over_batch(
    book: Book,
    profile: Profile,
    rows: np.ndarray,
    equity: np.ndarray,
    result: WaterfallResult,
) -> bool:
    """Full takeover of the accounts at `rows` (in priority order, equity as swept), with
    the state liquidate_account gives taking them one by one. False, with nothing changed,
    when a running value could leave the range the book checks."""
    n = len(rows)
    if n == 0:
        return True
    fund = profile.fund_account_id
    fund_row = book.row_of(fund)
    book.compact()
    starts, ends = book.acct_start[rows], book.acct_start[rows + 1]
    counts = ends - starts
    member = np.repeat(np.arange(n, dtype=np.int64), counts)  # index into rows, per slot
    slots = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(
        starts - (np.cumsum(counts) - counts), counts
    )
    live = book.pos_qty[slots] != 0
    slots, member = slots[live], member[live]
    # positions_of order: by instrument within an account.
    order = np.lexsort((book.pos_instrument[slots], member))
    slots, member = slots[order], member[order]
    qty = book.pos_qty[slots]
    plan = plan_fills(book, fund_row, slots, rows[member], qty)
    if plan is None:
        return False
    # Fee: ceil(rate x notional) per account, split so no product leaves int64:
    # notional = a * S + b, so ceil(notional * rate / S) = a * rate + ceil(b * rate / S).
    value = np.abs(qty) * book.mark_lot_value[plan.instrument]
    notional_f = np.zeros(n)
    np.add.at(notional_f, member, value.astype(np.float64))
    if (notional_f > FLOAT_SCREEN_MAX).any():
        return False
    notional = np.zeros(n, dtype=np.int64)
    np.add.at(notional, member, value)
    rate = profile.liquidation_fee_rate
    fee = (notional // RATE_SCALE) * rate - ((-(notional % RATE_SCALE) * rate) // RATE_SCALE)
    fee = np.minimum(fee, np.maximum(equity, 0))
    balance = book.balance[rows]
    realized_sum = np.zeros(n, dtype=np.int64)
    np.add.at(realized_sum, member, plan.realized)
    assert (balance + realized_sum == equity).all(), "takeover must move exactly the equity"
    remaining = equity - fee
    protect = profile.negative_balance_protection
    takeover = np.maximum(remaining, 0)
    payout = np.maximum(-remaining, 0) if protect else np.zeros(n, dtype=np.int64)
    # The book checks each running balance against 2^62; prove from magnitudes it cannot trip.
    trader_span = np.abs(balance).astype(np.float64) + fee
    np.add.at(trader_span, member, np.abs(plan.realized).astype(np.float64))
    fund_span = (
        abs(float(book.balance[fund_row]))
        + float(fee.sum())
        + float(np.abs(plan.counterparty_realized).astype(np.float64).sum())
        + float(np.abs(remaining).astype(np.float64).sum())
    )
    if (trader_span > FLOAT_SCREEN_MAX).any() or fund_span > FLOAT_SCREEN_MAX:
        return False

    event_ids = book.new_event_ids(n)
    account_ids = book.account_id[rows]
    # each of these moves money one way only: a sign flip would be a bug, not a refund
    assert (fee >= 0).all() and (takeover >= 0).all() and (payout >= 0).all()
    fund_equity = book.account_equity(fund)
    book.post_many(account_ids, fund, fee, Reason.LIQUIDATION_FEE, event_ids)
    book.commit_fills(plan, fund, event_ids[member])
    book.post_many(account_ids, fund, takeover, Reason.TAKEOVER, event_ids)
    book.post_many(fund, account_ids, payout, Reason.INSURANCE_PAYOUT, event_ids)
    expected = np.zeros(n, dtype=np.int64) if protect else np.minimum(remaining, 0)
    ended = book.balance[rows] == expected
    if not ended.all() or (book.pos_qty[slots] != 0).any():
        bad = account_ids[~ended][:10].tolist()
        raise AssertionError(f"taken-over accounts {bad} do not end flat at 0 (or their debt)")
    inflow = sum(fee.tolist()) + sum(takeover.tolist()) - sum(payout.tolist())
    assert book.account_equity(fund) - fund_equity == inflow, (
        f"fund {fund}: equity moved other than its fees, takeovers and payouts"
    )

    result.liquidation_fees += sum(fee.tolist())
    result.takeover_surplus += sum(takeover.tolist())
    result.insurance_paid += sum(payout.tolist())
    if not protect:
        result.debt_kept += sum(np.maximum(-remaining, 0).tolist())
    # Events in the reference's order: per account its fee, its positions, its takeover.
    k_fee = np.flatnonzero(fee > 0)
    k_take, k_pay = np.flatnonzero(takeover > 0), np.flatnonzero(payout > 0)
    member_of = np.concatenate([k_fee, member, k_take, k_pay])
    stage = np.concatenate(
        [np.zeros(len(k_fee)), np.ones(len(slots)), np.full(len(k_take) + len(k_pay), 2)]
    )
    sequence = np.lexsort((np.arange(len(member_of)), stage, member_of))
    zeros = np.zeros(len(slots), dtype=np.int64)
    columns = {
        "kind": np.concatenate(
            [
                np.full(len(k_fee), KIND_CODE["liquidation_fee"]),
                np.full(len(slots), KIND_CODE["liquidation"]),
                np.full(len(k_take), KIND_CODE["takeover"]),
                np.full(len(k_pay), KIND_CODE["insurance_payout"]),
            ]
        ),
        "event_id": event_ids[member_of],
        "account_id": account_ids[member_of],
        "instrument": np.concatenate(
            [
                np.full(len(k_fee), NO_INSTRUMENT),
                plan.instrument,
                np.full(len(k_take) + len(k_pay), NO_INSTRUMENT),
            ]
        ),
        "qty": np.concatenate(
            [np.zeros(len(k_fee), np.int64), qty, np.zeros(len(k_take) + len(k_pay), np.int64)]
        ),
        "price": np.concatenate(
            [
                np.zeros(len(k_fee), np.int64),
                book.mark[plan.instrument],
                np.zeros(len(k_take) + len(k_pay), np.int64),
            ]
        ),
        "amount": np.concatenate([fee[k_fee], zeros, takeover[k_take], payout[k_pay]]),
    }
    result.log.extend({name: col[sequence] for name, col in columns.items()})
    return True
