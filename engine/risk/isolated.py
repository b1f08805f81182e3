"""Isolated-margin positions: one position with its own margin is a sub-account of one.

The liquidation price of such a position is the isolated-margin formula of docs/design.md
`LP = (WB + cum - s*|q|*entry) / (|q|*mmr - s*|q|)` on the tier that applies at that price,
and the bankruptcy price the same with mmr = cum = 0. The cross kernel computes exactly
that for a one-position account (the other positions' terms vanish), so this module feeds
it one and does not solve the formula a second time.
"""

from __future__ import annotations

import numpy as np

from engine import _native
from engine.book.instruments import InstrumentTable


def isolated_prices(
    instruments: InstrumentTable, symbol: str, margin: int, qty: int, entry_price: int
) -> tuple[int | None, int | None]:
    """(liquidation, bankruptcy) price in ticks of `qty` lots entered at `entry_price` ticks
    with `margin` money units of its own; None where no positive price breaches."""
    inst = instruments.symbol_index(symbol)
    tick_value = int(instruments.tick_value[inst])
    # The position's own price terms cancel: equity at price m is margin + q*tv*(m - entry).
    liquidation, bankruptcy = _native.liquidation_prices(
        np.array([0, 1], dtype=np.int64),
        np.array([margin], dtype=np.int64),
        np.array([inst], dtype=np.int32),
        np.array([qty], dtype=np.int64),
        np.array([qty * entry_price * tick_value], dtype=np.int64),
        instruments.tick_value,
        instruments.tick_value * entry_price,
        instruments.tier_start,
        instruments.tier_max_notional,
        instruments.tier_mmr,
        instruments.tier_maintenance_amount,
        tier_mm_per_contract=instruments.tier_mm_per_contract,
    )

    def price(value: int) -> int | None:
        return None if value == _native.NULL_PRICE else value

    return price(int(liquidation[0])), price(int(bankruptcy[0]))
