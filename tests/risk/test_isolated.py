"""Isolated liquidation prices against the formula in docs/design.md, computed with Fractions."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book.instruments import InstrumentTable
from engine.risk.isolated import isolated_prices

TABLE = InstrumentTable.from_dict(
    {
        "instruments": [
            {
                "symbol": "BTCUSDT",
                "tick_size": "0.1",
                "lot_size": "0.001",
                "tiers": [
                    {"max_notional": "50000", "mmr": "0.004", "max_leverage": 125},
                    {"max_notional": "250000", "mmr": "0.005", "max_leverage": 100},
                    {"max_notional": "1000000", "mmr": "0.01", "max_leverage": 50},
                    {"max_notional": None, "mmr": "0.5", "max_leverage": 1},
                ],
            }
        ]
    }
)


def formula(margin: int, qty: int, entry: int, with_mm: bool) -> int | None:
    """LP = (WB + cum - s|q|entry) / (|q|mmr - s|q|) in money/tick units, on the right tier."""
    inst = TABLE.instruments[0]
    tv = inst.tick_value
    s = 1 if qty > 0 else -1
    q = abs(qty) * tv  # money units per tick of the whole position
    if s > 0 and margin - q * entry >= 0:
        return None  # covered even at price 0: equity at 0 = WB - |q| entry >= 0 = MM(0)
    for tier in inst.tiers if with_mm else inst.tiers[:1]:
        mmr = Fraction(tier.mmr, 10**8) if with_mm else Fraction(0)
        cum = tier.maintenance_amount if with_mm else 0
        price = (margin + cum - s * q * entry) / (q * mmr - s * q)
        lower = 0 if tier is inst.tiers[0] else inst.tiers[inst.tiers.index(tier) - 1].max_notional
        if not with_mm or lower < q * price <= tier.max_notional:
            if s > 0:
                return None if price <= 0 else math.ceil(price)
            return max(0, math.floor(price))
    raise AssertionError("no tier holds the root")


def test_seed_examples() -> None:
    # 10x long 1 BTC at 100000 with 10000 margin, mmr 0 tier: LP 90000; the short 110000.
    flat = InstrumentTable.from_dict(
        {
            "instruments": [
                {
                    "symbol": "X",
                    "tick_size": "0.01",
                    "lot_size": "0.001",
                    "tiers": [{"max_notional": None, "mmr": "0", "max_leverage": 125}],
                }
            ]
        }
    )
    assert isolated_prices(flat, "X", 10_000 * 10**8, 1000, 100_000_00) == (90_000_00, 90_000_00)
    assert isolated_prices(flat, "X", 10_000 * 10**8, -1000, 100_000_00) == (
        110_000_00,
        110_000_00,
    )


@settings(max_examples=300, deadline=None)
@given(
    margin=st.integers(1, 10**15),
    qty=st.integers(-(10**7), 10**7).filter(bool),
    entry=st.integers(1, 10**7),
)
def test_matches_the_design_formula(margin: int, qty: int, entry: int) -> None:
    liquidation, bankruptcy = isolated_prices(TABLE, "BTCUSDT", margin, qty, entry)
    assert liquidation == formula(margin, qty, entry, True)
    assert bankruptcy == formula(margin, qty, entry, False)


@pytest.mark.parametrize("notional_usdt", [50_000, 250_000, 1_000_000])
def test_roots_exactly_on_tier_bounds(notional_usdt: int) -> None:
    # Choose the margin so that the long's root sits exactly on a tier bound: at price P
    # with notional B = |q| P, equity WB + q (P - entry) equals MM(B) = B mmr - cum.
    qty, tv = 1000, TABLE.instruments[0].tick_value  # 1 BTC; tv = 10_000 units per tick
    price = notional_usdt * 10  # ticks of 0.1 for 1 BTC
    bound = notional_usdt * 10**8
    tier = TABLE.tier_for(0, bound)
    mm = bound * tier.mmr // 10**8 - tier.maintenance_amount
    entry = price + 5_000
    margin = mm - qty * tv * (price - entry)
    assert isolated_prices(TABLE, "BTCUSDT", margin, qty, entry)[0] == price
    assert formula(margin, qty, entry, True) == price
