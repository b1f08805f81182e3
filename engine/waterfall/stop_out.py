"""FX stop-out: margin level = equity / used margin, and the MT4/MT5 close-out order.

Used margin is the account's initial margin at the marks (per position its notional over its
leverage, rounded up: engine.risk.sweep); equity is balance + unrealized PnL as everywhere.
A contract is a lot of base currency: an instrument's `multiplier` is the contract size
(EURUSD: 1 lot = 100,000 EUR, quoted in the money currency USD), so a lot's value at the mark
is price x contract size, and `tick_value` is exact as for any instrument.

Status, exact in integers (levels are rates over RATE_SCALE; S = RATE_SCALE):
    bankrupt      E < 0
    liquidate     used margin > 0 and E x S <= stop_out_level x used margin   (stop-out)
    margin_call   used margin > 0 and E x S <= margin_call_level x used margin
    ok            otherwise
The products are compared in float first; a pair within float error of each other is
compared again in Python integers, so the decision is exact.

Stop-out of one account (the MT4/MT5 convention): close the position with the largest loss
(the lowest unrealized PnL at the mark; ties by instrument index) in full, then re-check the
level; repeat while the level is at or below the stop-out level and positions remain. A
closed position moves to the insurance fund at the mark (the broker takes the other side, as
in a takeover), so the fund's equity does not change and the trader realizes exactly its PnL
at the mark. No liquidation fee is charged. An account left flat with a negative balance is
made whole by the fund under negative-balance protection (`insurance_payout`), or keeps the
debt in debt mode. Accounts go lowest margin level first, ties by account id.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from engine.book.book import (
    STATUS_BANKRUPT,
    STATUS_LIQUIDATE,
    STATUS_MARGIN_CALL,
    STATUS_OK,
    Book,
)
from engine.book.fixed import RATE_SCALE
from engine.book.ledger import Reason
from engine.waterfall.events import NO_INSTRUMENT, WaterfallResult
from engine.waterfall.profile import Profile, StopOutRules

FLOAT_NEAR = 1e-9  # relative gap under which a float compare is redone exactly


def at_or_below(equity: np.ndarray, used_margin: np.ndarray, level: int) -> np.ndarray:
    """Exact `equity x S <= level x used_margin` per element (int64 inputs)."""
    e = np.asarray(equity, dtype=np.int64)
    im = np.asarray(used_margin, dtype=np.int64)
    lhs = e.astype(np.float64) * RATE_SCALE
    rhs = im.astype(np.float64) * level
    result = lhs <= rhs
    near = np.abs(lhs - rhs) <= FLOAT_NEAR * np.maximum(np.abs(lhs), np.abs(rhs)) + 1.0
    for i in np.flatnonzero(near).tolist():
        result[i] = int(e[i]) * RATE_SCALE <= level * int(im[i])
    return result


def margin_level_status(
    equity: np.ndarray, used_margin: np.ndarray, rules: StopOutRules
) -> np.ndarray:
    """The stop-out model's status codes (as STATUS_NAMES) of each account."""
    e = np.asarray(equity, dtype=np.int64)
    im = np.asarray(used_margin, dtype=np.int64)
    has_margin = im > 0
    status = np.full(len(e), STATUS_OK, dtype=np.int8)
    status[has_margin & at_or_below(e, im, rules.margin_call_level)] = STATUS_MARGIN_CALL
    status[has_margin & at_or_below(e, im, rules.stop_out_level)] = STATUS_LIQUIDATE
    status[e < 0] = STATUS_BANKRUPT
    return status


def margin_level(equity: int, used_margin: int) -> Fraction | None:
    """equity / used margin exactly (None without used margin: no level, nothing to stop)."""
    return None if used_margin <= 0 else Fraction(equity, used_margin)


def _stopped(equity: int, used_margin: int, rules: StopOutRules) -> bool:
    return equity < 0 or (
        used_margin > 0 and equity * RATE_SCALE <= rules.stop_out_level * used_margin
    )


def stop_out_accounts(
    book: Book, profile: Profile, rows: np.ndarray, result: WaterfallResult
) -> None:
    """Stop out the accounts at `rows` (breached under the margin-level status)."""
    rules = profile.stop_out
    assert rules is not None, "stop-out needs the profile's [stop_out] rules"
    keyed = []
    for row in np.asarray(rows, dtype=np.int64).tolist():
        equity, used = book._account_equity_and_initial_margin(row)
        level = margin_level(equity, used)
        rank = (0, Fraction(equity), 0) if level is None else (1, level, 0)
        keyed.append((rank, int(book.account_id[row]), row))
    for _, account_id, row in sorted(keyed):
        stop_out_account(book, profile, account_id, row, result)


def stop_out_account(
    book: Book, profile: Profile, account_id: int, row: int, result: WaterfallResult
) -> None:
    rules = profile.stop_out
    assert rules is not None
    fund = profile.fund_account_id
    fund_equity = book.account_equity(fund)
    equity_before = book.account_equity(account_id)
    positions = book.positions_of(account_id)
    for _ in range(len(positions)):
        equity, used = book._account_equity_and_initial_margin(row)
        positions = book.positions_of(account_id)
        if not positions or not _stopped(equity, used, rules):
            break
        pnl = [(q * int(book.mark_lot_value[inst]) - c, inst, q) for inst, q, c in positions]
        _, inst, qty = min(pnl)
        symbol = book.instruments.instruments[inst].symbol
        price = int(book.mark[inst])
        assert price > 0, f"{symbol}: a position is stopped out at a positive mark"
        event_id = book.new_event_id()
        book.apply_fill(account_id, symbol, -qty, price, event_id=event_id)
        book.apply_fill(fund, symbol, qty, price, event_id=event_id)
        result.log.append("liquidation", event_id, account_id, inst, qty, price, 0)
    balance = int(book.balance[row])
    paid = 0
    if not book.positions_of(account_id) and balance < 0:
        if profile.negative_balance_protection:
            paid = -balance
            event_id = book.new_event_id()
            book.transfer(fund, account_id, paid, Reason.INSURANCE_PAYOUT, event_id)
            result.insurance_paid += paid
            result.log.append("insurance_payout", event_id, account_id, NO_INSTRUMENT, 0, 0, paid)
        else:
            result.debt_kept += -balance
    # Closing at the mark moves no equity: the trader keeps its equity (plus any payout), the
    # fund's changes only by the payout.
    assert book.account_equity(account_id) == equity_before + paid, (
        f"account {account_id}: a stop-out moved other than the payout"
    )
    assert book.account_equity(fund) == fund_equity - paid, (
        f"fund {fund}: a stop-out of account {account_id} moved other than the payout"
    )
