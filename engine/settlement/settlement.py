"""End-of-day settlement: mark to market, funding, fees, then one sweep and waterfall.

The run, in order, every money movement a ledger posting through the book:

1. Validate and plan (nothing changes yet): every instrument with an open position has a
   settlement price; every amount fits int64 with room; every balance stays in range.
2. Settlement prices become the marks.
3. Dated futures: the variation margin `q x price x tick_value - cost` of each position is
   realized (CLEARING pays the holder, reason realized_pnl) and the cost basis is reset to
   `q x price x tick_value`, so the clearing account plus the open cost basis is unchanged.
   Perpetuals keep their cost basis; their unrealized PnL stays unrealized.
4. Funding (perpetuals). Rate r over 10^8 per instrument, per run: given, or computed from
   the premium (see `funding_rate_from_premium`). Longs pay shorts when r > 0, shorts pay
   longs when r < 0. A position's obligation is `N x |r| / 10^8` with N = |q| x price x
   tick_value, the notional at the settlement price. Rounding, stated once here:
   - each payer pays its obligation rounded up (the house's favour);
   - the receivers are owed E = floor(sum of their exact obligations); they receive
     T = min(P, E) of what was paid (P): each its obligation rounded down, and the units
     left (fewer than the receivers) one each to the largest fractional parts, ties to the
     lower account id (largest remainder). If payers paid less than E (open interest does
     not net to zero, so the payers' side is smaller), the P units are split pro rata to
     the rounded-down obligations, again by largest remainder (csrc/allocation.h);
   - everything passes through the FUNDING_POOL house account, which keeps P - T: the
     rounding remainder (fewer units than there are payers, in a book whose open interest
     nets to zero). Funding never creates or destroys money, to the unit.
5. Accrued trading fees (signed: a negative fee is a rebate) move to or from FEES.
6. One risk sweep and the waterfall (engine.waterfall) at the settlement prices. Accounts
   left negative (debt mode, or a fund that could not be made whole) are listed.

Every account's statement satisfies, to the unit:
closing_balance = opening_balance + realized_pnl + funding - fees - liquidation_losses.

Idempotence lives with the caller's metadata: `settled_dates` (ISO dates) travels in the
snapshot's extra metadata; `check_date` refuses a date already settled or before the last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine import _native
from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE
from engine.book.ledger import CLEARING, FEES, FUNDING_POOL, Reason
from engine.book.limits import FLOAT_SCREEN_MAX, INT64_MAX, VALUE_MAX
from engine.book.reasons import RejectReason
from engine.risk.sweep import Risk
from engine.waterfall.conservation import AuditReport, audit
from engine.waterfall.events import WaterfallResult
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile
from engine.waterfall.run import run_waterfall

# Binance-style defaults for a computed funding rate (per funding interval).
INTEREST_RATE_DEFAULT = 10_000  # 0.01% per interval (0.03% a day over three intervals)
PREMIUM_CLAMP = 50_000  # the interest - premium term is clamped to +-0.05%
RATE_CAP_SHARE_OF_MMR = (3, 4)  # default cap: 0.75 x the first tier's maintenance rate

# Sources of a funding rate, for the summary.
RATE_GIVEN, RATE_COMPUTED, RATE_NONE = "given", "computed", "none"
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


@dataclass(frozen=True)
class FundingInput:
    """One instrument's funding for the run: a given rate, or an index price to compute it."""

    instrument: int
    rate: int | None = None  # over RATE_SCALE, per interval
    index_price: int | None = None  # ticks
    interest_rate: int = INTEREST_RATE_DEFAULT  # over RATE_SCALE
    rate_cap: int | None = None  # over RATE_SCALE; None: RATE_CAP_SHARE_OF_MMR of tier 1


@dataclass(frozen=True)
class FeesInput:
    account_id: np.ndarray  # int64, distinct
    amount: np.ndarray  # int64 money units; > 0 charged, < 0 rebated


@dataclass
class InstrumentTotals:
    """Per instrument index (arrays of len(instruments)); money in units, sizes in lots."""

    settlement_price: np.ndarray  # ticks, 0 where none was given
    priced: np.ndarray  # bool
    dated: np.ndarray  # bool
    positions: np.ndarray
    long_lots: np.ndarray
    short_lots: np.ndarray
    variation_margin_gains: np.ndarray  # dated: VM paid to holders
    variation_margin_losses: np.ndarray  # dated: VM paid by holders (<= 0)
    mtm_gains: np.ndarray  # the day's mark-to-market gains of holders (realized or not)
    mtm_losses: np.ndarray  # (<= 0)
    funding_rate: np.ndarray  # over RATE_SCALE
    funding_source: list[str]
    funding_paid: np.ndarray  # P: by the paying side
    funding_received: np.ndarray  # T: by the receiving side
    funding_to_pool: np.ndarray  # P - T


@dataclass
class SettlementResult:
    date: str
    profile: str
    ledger_start: int  # seq of the run's first posting
    event_start: int  # the run's event ids are >= this
    event_instrument: dict[int, int]  # event id -> instrument index (VM and funding events)
    n_accounts_opening: int
    opening_balance: np.ndarray  # per account row (rows opened by the run: 0)
    opening_equity: np.ndarray  # at the previous marks, or at cost where none was set
    realized_pnl: np.ndarray
    funding: np.ndarray  # + received, - paid
    fees: np.ndarray  # + charged, - rebated
    liquidation_losses: np.ndarray  # + lost to the waterfall, - gained (the fund)
    before_waterfall: Risk  # the sweep at settlement prices, before any liquidation
    closing: Risk
    instruments: InstrumentTotals
    waterfall: WaterfallResult
    house_before: dict[int, int]
    house_after: dict[int, int]
    audit_before: AuditReport
    audit_after: AuditReport
    closed_book: bool  # open interest nets to zero in every instrument (before the run)
    negative_rows: np.ndarray  # rows with closing equity < 0, most negative first
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def closing_balance(self) -> np.ndarray:
        return self.opening_balance + (
            self.realized_pnl + self.funding - self.fees - self.liquidation_losses
        )


# ----- idempotence -------------------------------------------------------------------------
def check_date(date: str, settled_dates: Sequence[str], *, force: bool) -> None:
    """Refuse a date already settled, or before the last settled one, unless forced."""
    if force:
        return
    if date in settled_dates:
        raise Rejected(
            RejectReason.ALREADY_SETTLED,
            f"{date} is already settled in this book (use --force to redo it)",
        )
    last = max(settled_dates, default="")
    if date < last:
        raise Rejected(
            RejectReason.DATE_OUT_OF_ORDER,
            f"{date} is before the last settled date {last} (use --force to settle it anyway)",
        )


def with_settled_date(extra: dict[str, object], date: str) -> dict[str, object]:
    """The next snapshot's metadata: the previous one's with `date` added to settled_dates."""
    dates = extra.get("settled_dates", [])
    assert isinstance(dates, list)
    return {**extra, "settled_dates": sorted({*map(str, dates), date}), "settlement_date": date}


# ----- funding rate ------------------------------------------------------------------------
def funding_rate_from_premium(
    price: int, index_price: int, interest_rate: int, rate_cap: int
) -> int:
    """Binance-style rate over RATE_SCALE:

        premium P = (price - index) / index       (price: the settlement mark)
        F = P + clamp(interest - P, -0.05%, +0.05%)
        rate = clamp(F, -cap, +cap)

    P is truncated toward zero to the 10^-8 grid (the rate grid), so a premium never
    rounds into a payment the other way. Binance averages the premium of impact prices over
    the interval; a batch has one settlement price, so that price stands for the mark.
    """
    assert index_price > 0 and price > 0 and rate_cap >= 0
    diff = (price - index_price) * RATE_SCALE
    premium = abs(diff) // index_price * (1 if diff >= 0 else -1)
    rate = premium + min(max(interest_rate - premium, -PREMIUM_CLAMP), PREMIUM_CLAMP)
    return min(max(rate, -rate_cap), rate_cap)


def default_rate_cap(book: Book, instrument: int) -> int:
    first_tier_mmr = book.instruments.instruments[instrument].tiers[0].mmr
    num, den = RATE_CAP_SHARE_OF_MMR
    return first_tier_mmr * num // den


# ----- helpers -----------------------------------------------------------------------------
def _per_account(values: np.ndarray, acct_start: np.ndarray) -> np.ndarray:
    """Sum of a per-slot int64 column over each account's CSR segment, exactly.

    Prefix sums wrap modulo 2**64, and a difference of two wrapped prefix sums is the exact
    segment sum whenever that sum fits int64 (the caller screens that).
    """
    prefix = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(values, out=prefix[1:])
    return prefix[acct_start[1:]] - prefix[acct_start[:-1]]


def _per_account_abs_float(values: np.ndarray, acct_start: np.ndarray) -> np.ndarray:
    prefix = np.zeros(len(values) + 1, dtype=np.float64)
    np.cumsum(np.abs(values.astype(np.float64)), out=prefix[1:])
    return prefix[acct_start[1:]] - prefix[acct_start[:-1]]


def _per_instrument(values: np.ndarray, instrument: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, instrument, values)
    return out


def _total(values: np.ndarray) -> int:
    """Sum as a Python int (exact whatever the length)."""
    if not len(values):
        return 0
    if float(np.abs(values.astype(np.float64)).sum()) < FLOAT_SCREEN_MAX:
        return int(values.sum(dtype=np.int64))
    return sum(values.tolist())


def _post_slots(
    book: Book,
    account_ids: np.ndarray,
    house: int,
    amount: np.ndarray,
    reason: Reason,
    event_ids: np.ndarray,
) -> None:
    """One ledger posting per nonzero amount: > 0 the house pays the account, < 0 the reverse.

    The balances move in `_apply_balances`; this writes the ledger side only, vectorized
    (Book has no bulk posting yet, and one Python call per position would take minutes).
    """
    keep = np.flatnonzero(amount)
    if not len(keep):
        return
    amount_k = amount[keep]
    ids_k = account_ids[keep]
    pays = amount_k > 0
    book.ledger.post_many(
        np.where(pays, house, ids_k),
        np.where(pays, ids_k, house),
        np.abs(amount_k),
        reason,
        event_ids[keep],
    )


def _apply_balances(book: Book, delta: np.ndarray) -> None:
    # The book's balance column is written in place, alongside the postings made above;
    # the audits before and after the run prove the two agree.
    rows = np.flatnonzero(delta)
    book.balance[rows] += delta[rows]
    book.changed_rows.update(rows.tolist())


# ----- the run -----------------------------------------------------------------------------
@dataclass
class _Plan:
    lot_value: np.ndarray  # per instrument, at the settlement prices
    rate: np.ndarray
    rate_source: list[str]
    dated_slot: np.ndarray  # bool per slot
    variation_margin: np.ndarray  # per slot (0 outside dated)
    funding: np.ndarray  # per slot, + received / - paid
    funding_paid: np.ndarray  # per instrument
    funding_received: np.ndarray
    fees: np.ndarray  # per account row
    mtm: np.ndarray  # per slot, the day's mark-to-market of the position
    opening_upnl: np.ndarray  # per slot, at the previous marks (0 where none)


def _reject_slot(
    book: Book, owner: np.ndarray, slot: int, reason: RejectReason, problem: str
) -> Rejected:
    account = int(book.account_id[owner[slot]])
    symbol = book.instruments.instruments[int(book.pos_instrument[slot])].symbol
    return Rejected(reason, f"account {account} {symbol}: {problem}")


def _validate_prices(book: Book, prices: dict[int, int]) -> np.ndarray:
    n_inst = len(book.instruments)
    settlement = np.zeros(n_inst, dtype=np.int64)
    tick_value = book.instruments.tick_value
    for inst, price in prices.items():
        symbol = book.instruments.instruments[inst].symbol
        if not price > 0:
            raise Rejected(
                RejectReason.INVALID_PRICE, f"{symbol}: settlement price must be positive"
            )
        if price > INT64_MAX // int(tick_value[inst]):
            raise Rejected(RejectReason.OVERFLOW, f"{symbol}: settlement price {price} too large")
        settlement[inst] = price
    held = np.zeros(n_inst, dtype=np.int64)
    np.add.at(held, book.pos_instrument, book.pos_qty != 0)
    missing = np.flatnonzero((held > 0) & (settlement == 0))
    if len(missing):
        names = ", ".join(book.instruments.instruments[int(i)].symbol for i in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise Rejected(
            RejectReason.NO_SETTLEMENT_PRICE,
            f"no settlement price for {names}{more}, which has open positions"
            f" ({int(held[missing[0]])} in {book.instruments.instruments[int(missing[0])].symbol})",
        )
    return settlement


def _funding_rates(
    book: Book,
    settlement: np.ndarray,
    dated: np.ndarray,
    held: np.ndarray,
    funding: Sequence[FundingInput] | None,
) -> tuple[np.ndarray, list[str]]:
    n_inst = len(book.instruments)
    rate = np.zeros(n_inst, dtype=np.int64)
    source = [RATE_NONE] * n_inst
    if funding is None:
        return rate, source
    symbols = [inst.symbol for inst in book.instruments.instruments]
    seen: set[int] = set()
    for item in funding:
        inst = item.instrument
        symbol = symbols[inst]
        if inst in seen:
            raise Rejected(RejectReason.DUPLICATE_SYMBOL, f"funding for {symbol} given twice")
        seen.add(inst)
        if dated[inst]:
            raise Rejected(
                RejectReason.NOT_PERPETUAL, f"{symbol} is a dated future: it pays no funding"
            )
        if item.rate is not None:
            value = item.rate
            source[inst] = RATE_GIVEN
        else:
            if item.index_price is None or not item.index_price > 0:
                raise Rejected(
                    RejectReason.INVALID_FUNDING,
                    f"{symbol}: needs a funding rate or a positive index price",
                )
            if not settlement[inst] > 0:
                raise Rejected(RejectReason.NO_SETTLEMENT_PRICE, f"{symbol}: no settlement price")
            cap = item.rate_cap if item.rate_cap is not None else default_rate_cap(book, inst)
            if not 0 <= cap < RATE_SCALE:
                raise Rejected(
                    RejectReason.INVALID_FUNDING, f"{symbol}: rate cap must be in [0, 1)"
                )
            value = funding_rate_from_premium(
                int(settlement[inst]), item.index_price, item.interest_rate, cap
            )
            source[inst] = RATE_COMPUTED
        # |r| < 1 keeps every funding product inside int64 (see _funding_plan).
        if not -RATE_SCALE < value < RATE_SCALE:
            raise Rejected(
                RejectReason.INVALID_FUNDING, f"{symbol}: funding rate must be within (-1, 1)"
            )
        rate[inst] = value
    missing = [i for i in range(n_inst) if held[i] and not dated[i] and i not in seen]
    if missing:
        raise Rejected(
            RejectReason.NO_FUNDING_RATE,
            f"no funding rate or index price for {symbols[missing[0]]}, a perpetual with open"
            f" positions ({len(missing)} such instrument(s) missing from the funding input)",
        )
    return rate, source


def _funding_plan(
    book: Book, owner: np.ndarray, lot_value: np.ndarray, rate: np.ndarray, dated: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slot funding (+ received / - paid), and per instrument paid (P) and received (T)."""
    n_inst = len(book.instruments)
    qty, inst = book.pos_qty, book.pos_instrument
    slot_rate = rate[inst]
    slots = np.flatnonzero((qty != 0) & (slot_rate != 0) & ~dated[inst])
    funding = np.zeros(len(qty), dtype=np.int64)
    paid = np.zeros(n_inst, dtype=np.int64)
    received = np.zeros(n_inst, dtype=np.int64)
    if not len(slots):
        return funding, paid, received
    q, i, r_signed = qty[slots], inst[slots], slot_rate[slots]
    r = np.abs(r_signed)
    notional = np.abs(q) * lot_value[i]  # validated to fit int64
    # N x r / S without a 128-bit product: N = hi x S + lo, so N x r / S = hi x r + lo x r / S;
    # hi x r <= N x r / S fits, and lo x r < S x S = 10**16.
    hi, lo = np.divmod(notional, RATE_SCALE)
    floor_owed = hi * r + (lo * r) // RATE_SCALE
    frac = (lo * r) % RATE_SCALE
    payer = np.sign(q) == np.sign(r_signed)
    pay = floor_owed + (frac > 0)
    paid = _per_instrument(np.where(payer, pay, 0), i, n_inst)
    receiver = np.flatnonzero(~payer)
    owed_floor = _per_instrument(floor_owed[receiver], i[receiver], n_inst)
    owed_frac = _per_instrument(frac[receiver], i[receiver], n_inst)
    part = np.zeros(len(slots), dtype=np.int64)
    order = receiver[np.argsort(i[receiver], kind="stable")]
    bounds = np.searchsorted(i[order], np.arange(n_inst + 1))
    account_ids = book.account_id[owner[slots]]
    for k in np.flatnonzero(np.diff(bounds)).tolist():
        seg = order[bounds[k] : bounds[k + 1]]
        owed = int(owed_floor[k]) + int(owed_frac[k]) // RATE_SCALE  # E: floor of the exact sum
        target = min(int(paid[k]), owed)  # T
        extra = target - int(owed_floor[k])
        share = floor_owed[seg].copy()
        if extra >= 0:
            # Largest remainder: the `extra` largest fractional parts, ties to the lower id.
            top = np.lexsort((account_ids[seg], -frac[seg]))[:extra]
            share[top] += 1
        else:
            share, allocated = _native.allocate_largest_remainder(
                np.ascontiguousarray(floor_owed[seg]),
                np.ascontiguousarray(account_ids[seg]),
                target,
            )
            assert allocated == target
        part[seg] = share
        received[k] = target
    assert (part[receiver] >= 0).all() and (np.where(payer, 0, part) == part).all()
    funding[slots] = np.where(payer, -pay, part)
    return funding, paid, received


def _plan(
    book: Book,
    owner: np.ndarray,
    prices: dict[int, int],
    funding: Sequence[FundingInput] | None,
    fees: FeesInput | None,
) -> tuple[_Plan, np.ndarray]:
    instruments = book.instruments
    n_inst = len(instruments)
    settlement = _validate_prices(book, prices)
    dated = np.array([i.kind == "dated" for i in instruments.instruments], dtype=bool)
    lot_value = settlement * instruments.tick_value
    qty, inst, cost = book.pos_qty, book.pos_instrument, book.pos_cost
    live = qty != 0
    held = np.zeros(n_inst, dtype=bool)
    held[inst[live]] = True
    # Values at the settlement price: a perpetual's notional fits int64; a dated future's
    # new cost basis stays within VALUE_MAX like every cost in the book.
    limit = np.where(dated, VALUE_MAX, INT64_MAX) // np.maximum(lot_value, 1)
    too_big = np.flatnonzero(np.abs(qty) > limit[inst])
    if len(too_big):
        raise _reject_slot(
            book,
            owner,
            int(too_big[0]),
            RejectReason.OVERFLOW,
            "position value at settlement exceeds int64",
        )
    rate, rate_source = _funding_rates(book, settlement, dated, held, funding)

    value = qty * lot_value[inst]
    dated_slot = live & dated[inst]
    variation_margin = np.where(dated_slot, value - cost, 0)
    funding_slot, paid, received = _funding_plan(book, owner, lot_value, rate, dated)

    # Opening marks: the day's mark-to-market of a perpetual is measured from its previous
    # mark, or from its entry where the book had none; a dated future's is its VM.
    marked = book.mark_set[inst] & live
    previous_limit = INT64_MAX // np.maximum(book.mark_lot_value, 1)
    if (marked & (np.abs(qty) > previous_limit[inst])).any():
        slot = int(np.flatnonzero(marked & (np.abs(qty) > previous_limit[inst]))[0])
        raise _reject_slot(book, owner, slot, RejectReason.OVERFLOW, "position value exceeds int64")
    previous_value = np.where(marked, qty * book.mark_lot_value[inst], 0)
    opening_upnl = np.where(marked, previous_value - cost, 0)
    mtm = np.where(
        dated_slot, variation_margin, np.where(marked, value - previous_value, value - cost)
    )
    mtm = np.where(live, mtm, 0)

    account_fees = np.zeros(book.n_accounts, dtype=np.int64)
    if fees is not None:
        rows = book.index.rows(fees.account_id)
        unknown = np.flatnonzero(rows < 0)
        if len(unknown):
            raise Rejected(
                RejectReason.UNKNOWN_ACCOUNT,
                f"fees: account {int(fees.account_id[unknown[0]])} unknown",
            )
        ordered = np.sort(rows)
        if (ordered[1:] == ordered[:-1]).any():
            dup = int(ordered[np.flatnonzero(ordered[1:] == ordered[:-1])[0]])
            raise Rejected(
                RejectReason.DUPLICATE_ACCOUNT, f"fees: account {int(book.account_id[dup])} twice"
            )
        if (np.abs(fees.amount) > VALUE_MAX).any():
            raise Rejected(RejectReason.OVERFLOW, "fees: an amount exceeds 2**62 money units")
        account_fees[rows] = fees.amount

    starts = book.acct_start
    screen = (
        np.abs(book.balance.astype(np.float64))
        + _per_account_abs_float(variation_margin, starts)
        + _per_account_abs_float(funding_slot, starts)
        + np.abs(account_fees.astype(np.float64))
    )
    if (screen >= FLOAT_SCREEN_MAX).any():
        row = int(np.flatnonzero(screen >= FLOAT_SCREEN_MAX)[0])
        raise Rejected(
            RejectReason.OVERFLOW,
            f"account {int(book.account_id[row])}: balance after settlement too large",
        )
    plan = _Plan(
        lot_value=lot_value,
        rate=rate,
        rate_source=rate_source,
        dated_slot=dated_slot,
        variation_margin=variation_margin,
        funding=funding_slot,
        funding_paid=paid,
        funding_received=received,
        fees=account_fees,
        mtm=mtm,
        opening_upnl=opening_upnl,
    )
    return plan, settlement


def _instrument_totals(book: Book, plan: _Plan, settlement: np.ndarray) -> InstrumentTotals:
    n = len(book.instruments)
    qty, inst = book.pos_qty, book.pos_instrument
    vm, mtm = plan.variation_margin, plan.mtm
    return InstrumentTotals(
        settlement_price=settlement,
        priced=settlement > 0,
        dated=np.array([i.kind == "dated" for i in book.instruments.instruments], dtype=bool),
        positions=_per_instrument((qty != 0).astype(np.int64), inst, n),
        long_lots=_per_instrument(np.maximum(qty, 0), inst, n),
        short_lots=_per_instrument(np.minimum(qty, 0), inst, n),
        variation_margin_gains=_per_instrument(np.maximum(vm, 0), inst, n),
        variation_margin_losses=_per_instrument(np.minimum(vm, 0), inst, n),
        mtm_gains=_per_instrument(np.maximum(mtm, 0), inst, n),
        mtm_losses=_per_instrument(np.minimum(mtm, 0), inst, n),
        funding_rate=plan.rate,
        funding_source=plan.rate_source,
        funding_paid=plan.funding_paid,
        funding_received=plan.funding_received,
        funding_to_pool=plan.funding_paid - plan.funding_received,
    )


def _event_ids(book: Book, per_instrument: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """A fresh event id for each instrument where `per_instrument` is set (0 elsewhere)."""
    ids = np.zeros(len(per_instrument), dtype=np.int64)
    for k in np.flatnonzero(per_instrument).tolist():
        ids[k] = book.new_event_id()
    return ids, {int(ids[k]): k for k in np.flatnonzero(per_instrument).tolist()}


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
    """Settle `book` at `prices` (instrument index -> ticks) for `date`; see the module doc.

    Raises Rejected, with the book unchanged, for a missing price, a bad funding input, an
    unknown fee account or a value out of range.
    """

    def step(name: str) -> None:
        if phase is not None:
            phase(name)

    step("validating")
    book.compact()
    owner = book.position_owner()
    plan, settlement = _plan(book, owner, prices, funding, fees)
    audit_before = audit(book)
    n_inst = len(book.instruments)
    oi = _per_instrument(book.pos_qty, book.pos_instrument, n_inst)
    closed_book = not oi.any()
    totals = _instrument_totals(book, plan, settlement)
    n_open = book.n_accounts
    opening_balance = book.balance.copy()
    starts = book.acct_start
    opening_equity = opening_balance + _per_account(plan.opening_upnl, starts)
    house_before = dict(book.house_balance)
    ledger_start = len(book.ledger)
    event_start = book.new_event_id()

    # Nothing above changed the book (compact only re-lays it out); from here it changes.
    step("marking to settlement prices")
    for inst in np.flatnonzero(settlement).tolist():
        book.set_mark(book.instruments.instruments[inst].symbol, int(settlement[inst]))

    step("variation margin")
    account_ids = book.account_id[owner]
    moved = totals.variation_margin_gains - totals.variation_margin_losses
    vm_event, vm_events = _event_ids(book, moved)
    slot_vm = plan.variation_margin
    _post_slots(
        book, account_ids, CLEARING, slot_vm, Reason.VARIATION_MARGIN, vm_event[book.pos_instrument]
    )
    realized = _per_account(slot_vm, starts)
    _apply_balances(book, realized)
    book.house_balance[CLEARING] -= _total(slot_vm)
    dated_slots = np.flatnonzero(plan.dated_slot)
    book.pos_cost[dated_slots] = (
        book.pos_qty[dated_slots] * plan.lot_value[book.pos_instrument[dated_slots]]
    )

    step("funding")
    fund_event, fund_events = _event_ids(book, totals.funding_paid + totals.funding_received)
    _post_slots(
        book,
        account_ids,
        FUNDING_POOL,
        plan.funding,
        Reason.FUNDING,
        fund_event[book.pos_instrument],
    )
    account_funding = _per_account(plan.funding, starts)
    _apply_balances(book, account_funding)
    book.house_balance[FUNDING_POOL] -= _total(plan.funding)

    step("fees")
    fee_event = book.new_event_id()
    _post_slots(
        book,
        book.account_id.copy(),
        FEES,
        -plan.fees,
        Reason.TRADING_FEE,
        np.full(n_open, fee_event, dtype=np.int64),
    )
    _apply_balances(book, -plan.fees)
    book.house_balance[FEES] += _total(plan.fees)

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
    result.checks = _checks(book, result, house_before, _total(result.realized_pnl))
    assert all(result.checks.values()), f"settlement checks failed: {result.checks}"
    return result


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
            _total(result.funding) + pool_change == 0
            and pool_change == _total(t.funding_to_pool)
            and bool((t.funding_to_pool >= 0).all())
        ),
        "variation_margin_nets_to_zero": clearing_change + realized_through_clearing == 0,
        "fees_net_to_zero": book.house_balance[FEES] - house_before[FEES] == _total(result.fees),
        "conservation_before": result.audit_before.ok,
        "conservation_after": result.audit_after.ok,
    }
