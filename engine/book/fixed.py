"""Fixed-point conversion: decimal text to raw integers and back, exactly.

Every amount in the engine is an int64 raw value at a fixed scale (see csrc/fixed_point.h
for the units). This module is the one place where text becomes such an integer: files,
service messages, profiles, scenarios and the command line all go through `parse_decimal`
and `to_units`. A value that is not on the grid (OffGridError), not finite or out of range
(OutOfRangeError) is rejected, never rounded; both are FixedPointError.
"""

from __future__ import annotations

from decimal import Context, Decimal, InvalidOperation
from fractions import Fraction

from engine.book.limits import INT64_MAX, INT64_MIN, WARNING_RATE_DEFAULT

RATE_DECIMALS = 8
RATE_SCALE = 10**RATE_DECIMALS
assert WARNING_RATE_DEFAULT <= RATE_SCALE, "the default warning level is a rate in (0, 1]"


# Decimal exponents beyond this are out of range or off every grid; the bound keeps text
# such as "1e999999999" from building a huge integer.
DIGITS_MAX = 40
# Enough digits to shift any value within DIGITS_MAX exactly (digits on both sides of the
# point, plus the shift).
_EXACT = Context(prec=4 * DIGITS_MAX)


class FixedPointError(ValueError):
    """A decimal value that cannot be represented exactly on its grid."""


class OffGridError(FixedPointError):
    """A value that is not a whole multiple of its grid step."""


class OutOfRangeError(FixedPointError):
    """A value whose units do not fit int64."""


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


def parse_fraction(text: object, what: str) -> Fraction:
    """parse_decimal as an exact Fraction (for arithmetic on prices and changes)."""
    return Fraction(parse_decimal(text, what))


def to_units(value: Decimal, step: Decimal, what: str) -> int:
    """value / step as an exact int64: OffGridError or OutOfRangeError naming `what`."""
    if value.adjusted() > DIGITS_MAX:
        raise OutOfRangeError(f"{what}: {value} is out of range")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DIGITS_MAX and value != 0:
        raise OffGridError(f"{what}: {value} is not a multiple of {step}")
    places = _POWER_OF_TEN_PLACES[step]
    if places is not None:
        # A step of 10^-d (nearly every grid): shift the decimal point, no fractions.
        shifted = value.scaleb(places, context=_EXACT)
        if shifted != shifted.to_integral_value():
            raise OffGridError(f"{what}: {value} is not a multiple of {step}")
        number = int(shifted)
    else:
        units = Fraction(value) / Fraction(step)
        if units.denominator != 1:
            raise OffGridError(f"{what}: {value} is not a multiple of {step}")
        number = units.numerator
    if not INT64_MIN <= number <= INT64_MAX:
        raise OutOfRangeError(f"{what}: {value} is out of range")
    return number


def _power_of_ten_places(step: Decimal) -> int | None:
    """d when step == 10^-d exactly, else None."""
    sign, digits, exponent = step.normalize().as_tuple()
    if sign == 0 and digits == (1,) and isinstance(exponent, int):
        return -exponent
    return None


class _StepPlaces(dict[Decimal, int | None]):
    def __missing__(self, step: Decimal) -> int | None:
        self[step] = _power_of_ten_places(step)
        return self[step]


_POWER_OF_TEN_PLACES = _StepPlaces()


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
