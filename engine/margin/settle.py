"""The asset-liability book's daily settlement: interest accrues, then the call clock ticks.

`settle_day` adds one period's interest to every debt (engine.margin.operations.
accrue_interest) and re-sweeps; an account in margin call or worse after it has its call
clock (`AssetBook.call_days`) advanced by one, any other account's is reset to zero. A call
that has stood for more than the profile's call_deadline_days settlements is then a forced
sale (engine.margin.ratio).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from engine.margin.accounts import AssetBook
from engine.margin.operations import accrue_interest
from engine.margin.ratio import STATUS_MARGIN_CALL, AssetLiabilityRisk, sweep
from engine.waterfall.profile import AssetLiabilityRules


def settle_day(
    book: AssetBook,
    rules: AssetLiabilityRules,
    rates: Mapping[int, int],
    event_id: int | None = None,
) -> AssetLiabilityRisk:
    """Interest at `rates` (asset index -> rate per period over RATE_SCALE), the call
    clock, and the sweep after both."""
    accrue_interest(book, rates, event_id)
    n = book.n_accounts
    in_call = sweep(book, rules).status >= STATUS_MARGIN_CALL
    book.call_days[:n] = np.where(in_call, book.call_days[:n] + 1, 0)
    return sweep(book, rules)
