"""Native kernels (csrc/) behind thin Cython bindings."""

from engine._native._kernels import (
    NULL_PRICE,
    NativeOverflowError,
    liquidation_prices,
    position_margins,
    sweep_accounts,
)

__all__ = [
    "NULL_PRICE",
    "NativeOverflowError",
    "liquidation_prices",
    "position_margins",
    "sweep_accounts",
]
