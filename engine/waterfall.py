"""The liquidation waterfall: who pays when an account's equity no longer covers its margin.

Order within one tick (DESIGN.md "The default waterfall"), every money movement a ledger
posting through the book:

1. Liquidation, accounts in priority order: lowest equity / maintenance margin first (an
   exact fraction compare; a bankrupt account without maintenance margin ranks first), ties
   by account id. Full takeover: the liquidation fee min(ceil(rate x notional), equity) goes
   to the fund; each position moves to the fund as a pair of fills at the mark (so open
   interest still nets to zero); then the account's remaining equity R moves to the fund
   (`takeover`). The fund so takes the positions at their bankruptcy value: its equity
   changes by exactly the trader's equity, and the trader ends at exactly 0. If R < 0 the
   fund pays -R (`insurance_payout`, never more) under negative-balance protection; in debt
   mode the account keeps R as its (negative) balance. Partial mode takes step_fraction of
   every position (rounded up to a lot) at the mark with its fee, re-checks, and repeats
   while the account stays breached; a bankrupt account is taken over in full.
2. Unwind (optional input): the fund closes its positions at given execution prices against
   the unwind account, which stands for the market outside the book.
3. ADL when the fund's equity < floor (engine.adl), then 4. socialized loss of what is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from engine.book import STATUS_LIQUIDATE, Book
from engine.fixed import RATE_SCALE
from engine.ledger import Reason
from engine.profile import RESERVED_ACCOUNT_BASE, Profile

PARTIAL_STEPS_MAX = 10_000


@dataclass(frozen=True)
class Event:
    """One action of the waterfall. qty lots (signed as the trader's position before),
    price ticks (the execution mark), amount money units moved by the action."""

    kind: str  # liquidation | liquidation_fee | takeover | insurance_payout | unwind | adl |
    #            socialized_loss | unallocated_loss
    event_id: int
    account_id: int
    symbol: str
    qty: int
    price: int
    amount: int


@dataclass
class WaterfallResult:
    events: list[Event] = field(default_factory=list)
    accounts_liquidated: int = 0
    fund_balance_before: int = 0
    fund_equity_before: int = 0
    fund_balance_after: int = 0
    fund_equity_after: int = 0
    liquidation_fees: int = 0
    takeover_surplus: int = 0
    insurance_paid: int = 0
    debt_kept: int = 0
    adl_amount: int = 0
    adl_shortfall: int = 0  # what ADL was asked to cover
    adl_overshoot: int = 0  # profit taken beyond the shortfall: 0 by construction
    socialized_amount: int = 0
    unallocated_loss: int = 0  # shortfall left after socialization (no profit to take)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event.kind] = counts.get(event.kind, 0) + 1
        return counts


def is_reserved(account_id: int, profile: Profile) -> bool:
    """House book accounts (funds, unwind counterparty) are never liquidated or deleveraged."""
    return account_id >= RESERVED_ACCOUNT_BASE or account_id in (
        profile.fund_account_id,
        profile.unwind_account_id,
    )


def open_fund(book: Book, profile: Profile, amount: int) -> None:
    """The insurance fund's account, funded from EXTERNAL (a deposit) when amount > 0."""
    if book.index.find(profile.fund_account_id) is None:
        book.open_account(profile.fund_account_id)
    if amount > 0:
        book.deposit(profile.fund_account_id, amount)


def liquidation_order(
    account_ids: list[int], equity: list[int], maintenance: list[int]
) -> list[int]:
    """Indices in processing order: lowest equity / maintenance first, exactly; ties by id."""

    def key(i: int) -> tuple[int, Fraction, int]:
        e, mm = equity[i], maintenance[i]
        if mm > 0:
            return (1, Fraction(e, mm), account_ids[i])
        return (0 if e < 0 else 2, Fraction(0), account_ids[i])

    return sorted(range(len(account_ids)), key=key)


def run_waterfall(
    book: Book,
    profile: Profile,
    *,
    unwind_prices: dict[str, int] | None = None,
) -> WaterfallResult:
    """One tick's waterfall at the book's current marks. The fund must be open."""
    # engine.adl builds on this module's Event and WaterfallResult, hence the late import.
    from engine.adl import fund_shortfall, run_adl, socialize_loss

    fund = profile.fund_account_id
    result = WaterfallResult()
    result.fund_balance_before = int(book.balance[book.row_of(fund)])
    result.fund_equity_before = book.account_margin(fund)[0]
    risk = book.sweep(with_initial_margin=False)
    rows = [
        int(r)
        for r in (risk.status >= STATUS_LIQUIDATE).nonzero()[0]
        if not is_reserved(int(book.account_id[r]), profile)
    ]
    ids = [int(book.account_id[r]) for r in rows]
    equity = [int(risk.equity[r]) for r in rows]
    maintenance = [int(risk.maintenance_margin[r]) for r in rows]
    for i in liquidation_order(ids, equity, maintenance):
        liquidate_account(book, profile, ids[i], equity[i], maintenance[i], result)
        result.accounts_liquidated += 1
    if unwind_prices:
        unwind_fund(book, profile, unwind_prices, result)
    floor = profile.fund_floor_units(book.instruments.money_decimals)
    if profile.adl_enabled:
        run_adl(book, profile, floor, result)
    if profile.socialized_loss_enabled:
        socialize_loss(book, profile, floor, result)
    else:
        result.unallocated_loss = fund_shortfall(book, profile, floor)
    result.fund_balance_after = int(book.balance[book.row_of(fund)])
    result.fund_equity_after = book.account_margin(fund)[0]
    return result


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
    if profile.partial_liquidation and equity >= 0:
        bankrupt_equity = _partial_steps(book, profile, account_id, equity, maintenance, result)
        if bankrupt_equity is None:
            return
        equity = bankrupt_equity
    event_id = book.new_event_id()
    positions = book.positions_of(account_id)
    fee = min(_fee(book, profile, positions), max(equity, 0))
    if fee > 0:
        book.transfer(account_id, fund, fee, Reason.LIQUIDATION_FEE, event_id)
        result.liquidation_fees += fee
        result.events.append(Event("liquidation_fee", event_id, account_id, "", 0, 0, fee))
    for inst, qty, _ in positions:
        symbol, price = _move_to_fund(book, fund, account_id, inst, qty, event_id)
        result.events.append(Event("liquidation", event_id, account_id, symbol, qty, price, 0))
    remaining = int(book.balance[book.row_of(account_id)])
    # All positions are closed at the mark, so the balance is the equity less the fee.
    assert remaining == equity - fee, "takeover must move exactly the account's equity"
    if remaining > 0:
        book.transfer(account_id, fund, remaining, Reason.TAKEOVER, event_id)
        result.takeover_surplus += remaining
        result.events.append(Event("takeover", event_id, account_id, "", 0, 0, remaining))
    elif remaining < 0 and profile.negative_balance_protection:
        book.transfer(fund, account_id, -remaining, Reason.INSURANCE_PAYOUT, event_id)
        result.insurance_paid += -remaining
        result.events.append(Event("insurance_payout", event_id, account_id, "", 0, 0, -remaining))
    elif remaining < 0:
        result.debt_kept += -remaining
    after = int(book.balance[book.row_of(account_id)])
    assert after == (min(remaining, 0) if not profile.negative_balance_protection else 0)


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
            result.events.append(Event("liquidation_fee", event_id, account_id, "", 0, 0, fee))
        for inst, q in slices:
            symbol, price = _move_to_fund(book, fund, account_id, inst, q, event_id)
            result.events.append(Event("liquidation", event_id, account_id, symbol, q, price, 0))
        equity, maintenance = book.account_margin(account_id)
    raise AssertionError("partial liquidation did not end within PARTIAL_STEPS_MAX steps")


def unwind_fund(
    book: Book, profile: Profile, prices: dict[str, int], result: WaterfallResult
) -> None:
    """The fund closes its position in each priced symbol at that execution price (ticks)."""
    fund, market = profile.fund_account_id, profile.unwind_account_id
    if book.index.find(market) is None:
        book.open_account(market)
    for inst, qty, _ in book.positions_of(fund):
        symbol = book.instruments.instruments[inst].symbol
        if symbol not in prices:
            continue
        price = prices[symbol]
        event_id = book.new_event_id()
        realized = book.apply_fill(fund, symbol, -qty, price, event_id=event_id)
        book.apply_fill(market, symbol, qty, price, event_id=event_id)
        result.events.append(Event("unwind", event_id, fund, symbol, qty, price, realized))
