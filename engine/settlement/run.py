"""The settlement run: plan, mark, post variation margin, funding and fees, then the waterfall.

See the package docstring for the order and the statement identity. Everything before the
first mark is validation (engine.settlement.plan), so a refused run leaves the book as it
was; after it, the run asserts its invariants (`checks`) and fails loudly if one breaks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine.book.book import Book
from engine.book.ledger import CLEARING, FEES, FUNDING_POOL, Reason
from engine.risk.sweep import Risk
from engine.settlement.fees import FeesInput
from engine.settlement.funding import FundingInput
from engine.settlement.marking import dated_instruments
from engine.settlement.plan import Plan, plan_settlement
from engine.settlement.postings import apply_balances, event_ids, post_slots
from engine.settlement.results import InstrumentTotals, SettlementResult
from engine.settlement.sums import per_account, per_instrument, total
from engine.waterfall.conservation import audit
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile
from engine.waterfall.run import run_waterfall

# Statement parts by ledger reason. Reasons not listed do not occur in a settlement.
PNL_REASONS = (Reason.REALIZED_PNL, Reason.VARIATION_MARGIN)
LIQUIDATION_REASONS = (
    Reason.LIQUIDATION_FEE,
    Reason.TAKEOVER,
    Reason.INSURANCE_PAYOUT,
    Reason.ADL,
    Reason.SOCIALIZED_LOSS,
)

Phase = Callable[[str], None]


def settle(
    book: Book,
    prices: dict[int, int],
    *,
    date: str,
    profile: Profile,
    funding: Sequence[FundingInput] | None = None,
    fees: FeesInput | None = None,
    phase: Phase | None = None,
) -> SettlementResult:
    """Settle `book` at `prices` (instrument index -> ticks) for `date` (engine.settlement).

    Raises Rejected, with the book unchanged, for a missing price, a bad funding input, an
    unknown fee account or a value out of range.
    """

    def step(name: str) -> None:
        if phase is not None:
            phase(name)

    step("validating")
    book.compact()
    owner = book.position_owner()
    plan = plan_settlement(book, owner, prices, funding, fees)
    settlement = plan.settlement_price
    audit_before = audit(book)
    n_inst = len(book.instruments)
    oi = per_instrument(book.pos_qty, book.pos_instrument, n_inst)
    closed_book = not oi.any()
    totals = _instrument_totals(book, plan)
    n_open = book.n_accounts
    opening_balance = book.balance.copy()
    opening_equity = opening_balance + per_account(plan.opening_upnl, book.acct_start)
    house_before = dict(book.house_balance)
    ledger_start = len(book.ledger)
    event_start = book.new_event_id()

    # Nothing above changed the book (compact only re-lays it out); from here it changes.
    step("marking to settlement prices")
    for inst in np.flatnonzero(settlement).tolist():
        book.set_mark(book.instruments.instruments[inst].symbol, int(settlement[inst]))

    step("variation margin")
    account_ids = book.account_id[owner]
    realized, vm_events = _post_variation_margin(book, plan, totals, account_ids)
    step("funding")
    account_funding, fund_events = _post_funding(book, plan, totals, account_ids)
    step("fees")
    _post_fees(book, plan)

    step("sweep and waterfall")
    open_fund(book, profile, 0)
    before_waterfall = book.sweep(with_initial_margin=False)
    waterfall_start = len(book.ledger)
    waterfall = run_waterfall(book, profile)
    closing = book.sweep()
    n = book.n_accounts
    wf_pnl, wf_liquidation, wf_other = _waterfall_parts(book, waterfall_start, n)
    assert not wf_other.any(), "the waterfall moved money for a reason outside the statement"

    step("checking conservation")
    audit_after = audit(book, closed=closed_book)
    opening_balance = _grow(opening_balance, n)
    result = SettlementResult(
        date=date,
        profile=profile.name,
        ledger_start=ledger_start,
        event_start=event_start,
        event_instrument={**vm_events, **fund_events},
        n_accounts_opening=n_open,
        opening_balance=opening_balance,
        opening_equity=_grow(opening_equity, n),
        realized_pnl=_grow(realized, n) + wf_pnl,
        funding=_grow(account_funding, n),
        fees=_grow(plan.fees, n),
        liquidation_losses=-wf_liquidation,
        before_waterfall=before_waterfall,
        closing=closing,
        instruments=totals,
        waterfall=waterfall,
        house_before=house_before,
        house_after=dict(book.house_balance),
        audit_before=audit_before,
        audit_after=audit_after,
        closed_book=closed_book,
        negative_rows=_negative_rows(book, closing),
    )
    # Every realized PnL of the run (VM, and positions closed by the waterfall) is paid by
    # CLEARING, so the statements' realized column and CLEARING's change cancel exactly.
    result.checks = _checks(book, result, house_before, total(result.realized_pnl))
    assert all(result.checks.values()), f"settlement checks failed: {result.checks}"
    return result


def _post_variation_margin(
    book: Book, plan: Plan, totals: InstrumentTotals, account_ids: np.ndarray
) -> tuple[np.ndarray, dict[int, int]]:
    """CLEARING pays each dated position's variation margin; its cost basis is reset to the
    settlement value. Returns the realized PnL per account and the events by instrument."""
    starts = book.acct_start
    moved = totals.variation_margin_gains - totals.variation_margin_losses
    vm_event, vm_events = event_ids(book, moved)
    slot_vm = plan.variation_margin
    post_slots(
        book, account_ids, CLEARING, slot_vm, Reason.VARIATION_MARGIN, vm_event[book.pos_instrument]
    )
    realized = per_account(slot_vm, starts)
    apply_balances(book, realized)
    book.house_balance[CLEARING] -= total(slot_vm)
    dated_slots = np.flatnonzero(plan.dated_slot)
    book.pos_cost[dated_slots] = (
        book.pos_qty[dated_slots] * plan.lot_value[book.pos_instrument[dated_slots]]
    )
    return realized, vm_events


def _post_funding(
    book: Book, plan: Plan, totals: InstrumentTotals, account_ids: np.ndarray
) -> tuple[np.ndarray, dict[int, int]]:
    """Funding through FUNDING_POOL. Returns funding per account (+ received, - paid) and the
    events by instrument."""
    fund_event, fund_events = event_ids(book, totals.funding_paid + totals.funding_received)
    post_slots(
        book,
        account_ids,
        FUNDING_POOL,
        plan.funding,
        Reason.FUNDING,
        fund_event[book.pos_instrument],
    )
    account_funding = per_account(plan.funding, book.acct_start)
    apply_balances(book, account_funding)
    book.house_balance[FUNDING_POOL] -= total(plan.funding)
    return account_funding, fund_events


def _post_fees(book: Book, plan: Plan) -> None:
    """Fees to FEES (rebates from it), one event for all accounts."""
    assert len(plan.fees) == book.n_accounts, "fees are planned for every account row"
    fee_event = book.new_event_id()
    post_slots(
        book,
        book.account_id.copy(),
        FEES,
        -plan.fees,
        Reason.TRADING_FEE,
        np.full(book.n_accounts, fee_event, dtype=np.int64),
    )
    apply_balances(book, -plan.fees)
    book.house_balance[FEES] += total(plan.fees)


def _instrument_totals(book: Book, plan: Plan) -> InstrumentTotals:
    """Per instrument: prices, open interest, variation margin, mark-to-market, funding."""
    n = len(book.instruments)
    settlement = plan.settlement_price
    qty, inst = book.pos_qty, book.pos_instrument
    vm, mtm = plan.variation_margin, plan.mtm
    return InstrumentTotals(
        settlement_price=settlement,
        priced=settlement > 0,
        dated=dated_instruments(book),
        positions=per_instrument((qty != 0).astype(np.int64), inst, n),
        long_lots=per_instrument(np.maximum(qty, 0), inst, n),
        short_lots=per_instrument(np.minimum(qty, 0), inst, n),
        variation_margin_gains=per_instrument(np.maximum(vm, 0), inst, n),
        variation_margin_losses=per_instrument(np.minimum(vm, 0), inst, n),
        mtm_gains=per_instrument(np.maximum(mtm, 0), inst, n),
        mtm_losses=per_instrument(np.minimum(mtm, 0), inst, n),
        funding_rate=plan.rate,
        funding_source=plan.rate_source,
        funding_paid=plan.funding_paid,
        funding_received=plan.funding_received,
        funding_to_pool=plan.funding_paid - plan.funding_received,
    )


def _grow(values: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=values.dtype)
    out[: len(values)] = values
    return out


def _waterfall_parts(
    book: Book, ledger_start: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per account row: realized PnL, liquidation losses, and anything else (must be 0)."""
    ledger = book.ledger
    reason = ledger.column("reason")[ledger_start:]
    parts = []
    for group in (PNL_REASONS, LIQUIDATION_REASONS, None):
        if group is None:
            known = [int(r) for r in (*PNL_REASONS, *LIQUIDATION_REASONS)]
            mask = ~np.isin(reason, known)
        else:
            mask = np.isin(reason, [int(r) for r in group])
        debit = ledger.column("debit")[ledger_start:][mask]
        credit = ledger.column("credit")[ledger_start:][mask]
        amount = ledger.column("amount")[ledger_start:][mask]
        ids = np.concatenate([credit, debit])
        signed = np.concatenate([amount, -amount])
        traders = ids >= 0
        rows = book.index.rows(ids[traders])
        assert (rows >= 0).all(), "a waterfall posting names an unknown account"
        net = np.zeros(n, dtype=np.int64)
        np.add.at(net, rows, signed[traders])
        parts.append(net)
    return parts[0], parts[1], parts[2]


def _negative_rows(book: Book, closing: Risk) -> np.ndarray:
    """Rows whose equity is below zero after the waterfall, most negative first.

    A balance below zero with unrealized gains covering it is not a debt, so equity decides.
    """
    rows = np.flatnonzero(closing.equity < 0)
    return rows[np.lexsort((book.account_id[rows], closing.equity[rows]))]


def _checks(
    book: Book,
    result: SettlementResult,
    house_before: dict[int, int],
    realized_through_clearing: int,
) -> dict[str, bool]:
    """Invariants of the run, each exact; all must hold (the caller asserts them)."""
    t = result.instruments
    pool_change = book.house_balance[FUNDING_POOL] - house_before[FUNDING_POOL]
    clearing_change = book.house_balance[CLEARING] - house_before[CLEARING]
    return {
        "statements_add_up": bool(np.array_equal(result.closing_balance, book.balance)),
        "funding_nets_to_zero": (
            total(result.funding) + pool_change == 0
            and pool_change == total(t.funding_to_pool)
            and bool((t.funding_to_pool >= 0).all())
        ),
        "variation_margin_nets_to_zero": clearing_change + realized_through_clearing == 0,
        "fees_net_to_zero": book.house_balance[FEES] - house_before[FEES] == total(result.fees),
        "conservation_before": result.audit_before.ok,
        "conservation_after": result.audit_after.ok,
    }
