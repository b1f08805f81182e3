"""Fixed-point conversion: decimal text to raw integers and back, exactly.

Every amount in the engine is an int64 raw value at a fixed scale (see csrc/fixed_point.h
for the units). This module is the one place where text becomes such an integer; a value
that is not on the grid, not finite or out of range is rejected, never rounded.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

RATE_DECIMALS = 8
RATE_SCALE = 10**RATE_DECIMALS
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


class FixedPointError(ValueError):
    """A decimal value that cannot be represented exactly on its grid."""


def parse_decimal(text: object, what: str) -> Decimal:
    """A finite Decimal from a string (or an int); floats are refused, they are not exact."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise FixedPointError(f"{what}: expected a decimal string, got {text!r}")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise FixedPointError(f"{what}: {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise FixedPointError(f"{what}: {text!r} is not finite")
    return value


def decimals_of(step: Decimal) -> int:
    """Number of decimal places of a grid step such as 0.001 (3) or 5 (0)."""
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def to_units(value: Decimal, step: Decimal, what: str) -> int:
    """value / step as an exact integer, or FixedPointError naming `what`."""
    units = Fraction(value) / Fraction(step)
    if units.denominator != 1:
        raise FixedPointError(f"{what}: {value} is not a multiple of {step}")
    if not INT64_MIN <= units.numerator <= INT64_MAX:
        raise FixedPointError(f"{what}: {value} is out of range")
    return units.numerator


def to_rate(value: Decimal, what: str) -> int:
    """A rate (mmr, warning level, fee rate) as a numerator over RATE_SCALE."""
    return to_units(value, Decimal(1) / RATE_SCALE, what)


def format_units(units: int, step_decimals: int) -> str:
    """An exact decimal string for `units` at `step_decimals` places (10**-d per unit)."""
    if step_decimals == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    digits = str(abs(units)).rjust(step_decimals + 1, "0")
    return f"{sign}{digits[:-step_decimals]}.{digits[-step_decimals:]}"
