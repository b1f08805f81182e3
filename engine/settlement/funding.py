"""Funding of perpetuals: the rate per instrument, and who pays whom, to the unit.

Rate r over 10^8 (RATE_SCALE) per instrument, per run: given, or computed from the premium
(see `funding_rate_from_premium`). Longs pay shorts when r > 0, shorts pay longs when r < 0.
A position's obligation is `N x |r| / 10^8` with N = |q| x price x tick_value, the notional
at the settlement price. Rounding, stated once here:
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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine import _native
from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE
from engine.book.reasons import RejectReason
from engine.settlement.sums import per_instrument

# Binance-style defaults for a computed funding rate (per funding interval).
INTEREST_RATE_DEFAULT = 10_000  # 0.01% per interval (0.03% a day over three intervals)
PREMIUM_CLAMP = 50_000  # the interest - premium term is clamped to +-0.05%
RATE_CAP_SHARE_OF_MMR = (3, 4)  # default cap: 0.75 x the first tier's maintenance rate

# Sources of a funding rate, for the summary.
RATE_GIVEN, RATE_COMPUTED, RATE_NONE = "given", "computed", "none"


@dataclass(frozen=True)
class FundingInput:
    """One instrument's funding for the run: a given rate, or an index price to compute it."""

    instrument: int
    rate: int | None = None  # over RATE_SCALE, per interval
    index_price: int | None = None  # ticks
    interest_rate: int = INTEREST_RATE_DEFAULT  # over RATE_SCALE
    rate_cap: int | None = None  # over RATE_SCALE; None: RATE_CAP_SHARE_OF_MMR of tier 1


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
    """RATE_CAP_SHARE_OF_MMR of the instrument's first-tier maintenance rate."""
    first_tier_mmr = book.instruments.instruments[instrument].tiers[0].mmr
    num, den = RATE_CAP_SHARE_OF_MMR
    return first_tier_mmr * num // den


def funding_rates(
    book: Book,
    settlement: np.ndarray,
    dated: np.ndarray,
    held: np.ndarray,
    funding: Sequence[FundingInput] | None,
) -> tuple[np.ndarray, list[str]]:
    """Per instrument: the rate over RATE_SCALE (0 where none) and where it came from.

    Refuses a symbol given twice, a dated future, a rate outside (-1, 1), a computed rate
    without a positive index price, and a perpetual with open positions left out (when a
    funding input is given at all: without one, no funding is charged).
    """
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
        # |r| < 1 keeps every funding product inside int64 (see funding_plan).
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


def funding_plan(
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
    paid = per_instrument(np.where(payer, pay, 0), i, n_inst)
    receiver = np.flatnonzero(~payer)
    owed_floor = per_instrument(floor_owed[receiver], i[receiver], n_inst)
    owed_frac = per_instrument(frac[receiver], i[receiver], n_inst)
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
