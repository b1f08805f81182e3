"""What a settlement run returns: per-account statements and per-instrument totals.

Every account's statement satisfies, to the unit:
closing_balance = opening_balance + realized_pnl + funding - fees - liquidation_losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.risk.sweep import Risk
from engine.waterfall.conservation import AuditReport
from engine.waterfall.events import WaterfallResult


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
