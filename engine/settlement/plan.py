"""Validate and plan the run: every amount it will move, computed before anything changes.

Refusals, in this order: a missing or bad settlement price, a position whose value at the
settlement price does not fit, a bad funding input, a position whose value at its previous
mark does not fit, a bad fee input, and a balance that could leave the range after
settlement. A refused run leaves the book as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.limits import FLOAT_SCREEN_MAX
from engine.book.reasons import RejectReason
from engine.settlement.fees import FeesInput, fees_per_account
from engine.settlement.funding import FundingInput, funding_plan, funding_rates
from engine.settlement.marking import (
    check_values_at_settlement,
    dated_instruments,
    mark_to_settlement,
    settlement_prices,
)
from engine.settlement.sums import per_account_abs_float


@dataclass
class Plan:
    settlement_price: np.ndarray  # per instrument, ticks (0 where none was given)
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


def plan_settlement(
    book: Book,
    owner: np.ndarray,
    prices: dict[int, int],
    funding: Sequence[FundingInput] | None,
    fees: FeesInput | None,
) -> Plan:
    """The run's amounts for a compacted book (`owner`: the account row of each slot)."""
    n_inst = len(book.instruments)
    settlement = settlement_prices(book, prices)
    dated = dated_instruments(book)
    lot_value = settlement * book.instruments.tick_value
    live = book.pos_qty != 0
    held = np.zeros(n_inst, dtype=bool)
    held[book.pos_instrument[live]] = True
    check_values_at_settlement(book, owner, lot_value, dated)
    rate, rate_source = funding_rates(book, settlement, dated, held, funding)
    marking = mark_to_settlement(book, owner, lot_value, dated)
    funding_slot, paid, received = funding_plan(book, owner, lot_value, rate, dated)
    account_fees = fees_per_account(book, fees)

    starts = book.acct_start
    screen = (
        np.abs(book.balance.astype(np.float64))
        + per_account_abs_float(marking.variation_margin, starts)
        + per_account_abs_float(funding_slot, starts)
        + np.abs(account_fees.astype(np.float64))
    )
    if (screen >= FLOAT_SCREEN_MAX).any():
        row = int(np.flatnonzero(screen >= FLOAT_SCREEN_MAX)[0])
        raise Rejected(
            RejectReason.OVERFLOW,
            f"account {int(book.account_id[row])}: balance after settlement too large",
        )
    return Plan(
        settlement_price=settlement,
        lot_value=lot_value,
        rate=rate,
        rate_source=rate_source,
        dated_slot=marking.dated_slot,
        variation_margin=marking.variation_margin,
        funding=funding_slot,
        funding_paid=paid,
        funding_received=received,
        fees=account_fees,
        mtm=marking.mtm,
        opening_upnl=marking.opening_upnl,
    )
