"""Plain-Python reference for the asset-liability sweep: Fractions and Python ints, no numpy.

It follows csrc/asset_liability.h's definitions directly -- each value as an exact Fraction
rounded once where the header says, the ratio compared as a Fraction -- rather than the
kernel's integer algebra, so a slip in either shows up as a mismatch.
"""

from __future__ import annotations

import math
from fractions import Fraction

RATE_SCALE = 10**8
INT64_MAX = 2**63 - 1
OK, MARGIN_CALL, LIQUIDATE, BANKRUPT = 0, 1, 2, 3


class RefOverflow(Exception):
    pass


def account(
    held: list[int],
    owed: list[int],
    price: list[int],
    unit: list[int],
    rate: list[int],
    call_level: int,
    liquidation_level: int,
) -> tuple[int, int, int, int]:
    """(market value, collateral value, liability value, status) of one account."""
    market = collateral = liability = 0
    for h, o, p, u, r in zip(held, owed, price, unit, rate, strict=True):
        value = math.floor(Fraction(h * p, u))
        if value > INT64_MAX:
            raise RefOverflow
        market += value
        collateral += math.floor(value * Fraction(r, RATE_SCALE))
        debt = math.ceil(Fraction(o * p, u))
        if debt > INT64_MAX:
            raise RefOverflow
        liability += debt
    if market > INT64_MAX or liability > INT64_MAX:
        raise RefOverflow
    if liability == 0:
        status = OK
    else:
        ratio = Fraction(collateral, liability)
        if market < liability:
            status = BANKRUPT
        elif ratio < Fraction(liquidation_level, RATE_SCALE):
            status = LIQUIDATE
        elif ratio < Fraction(call_level, RATE_SCALE):
            status = MARGIN_CALL
        else:
            status = OK
    return market, collateral, liability, status
