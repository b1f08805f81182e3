"""Native kernels (csrc/) behind thin Cython bindings, and the constants they share.

RATE_SCALE, POSITION_TICK_VALUE_MAX, the STATUS_* codes with STATUS_NAMES, NULL_PRICE and
the ADL constants are defined once, in the C headers; Python reads them from here.
KERNEL_DEBUG says whether this build asserts the kernels' preconditions (CLEARING_DEBUG=1).
"""

from engine._native._kernels import (
    ADL_POLICY_HYPERLIQUID,
    ADL_POLICY_PNL_LEVERAGE,
    ADL_SCORE_SCALE,
    KERNEL_DEBUG,
    NULL_PRICE,
    POSITION_TICK_VALUE_MAX,
    RATE_SCALE,
    STATUS_BANKRUPT,
    STATUS_LIQUIDATE,
    STATUS_MARGIN_CALL,
    STATUS_NAMES,
    STATUS_OK,
    NativeOverflowError,
    account_exposure,
    adl_scores,
    adl_top_k,
    allocate_largest_remainder,
    liquidation_prices,
    position_margins,
    sweep_account_rows,
    sweep_accounts,
    sweep_asset_liability,
)

__all__ = [
    "ADL_POLICY_HYPERLIQUID",
    "ADL_POLICY_PNL_LEVERAGE",
    "ADL_SCORE_SCALE",
    "KERNEL_DEBUG",
    "NULL_PRICE",
    "POSITION_TICK_VALUE_MAX",
    "RATE_SCALE",
    "STATUS_BANKRUPT",
    "STATUS_LIQUIDATE",
    "STATUS_MARGIN_CALL",
    "STATUS_NAMES",
    "STATUS_OK",
    "NativeOverflowError",
    "account_exposure",
    "adl_scores",
    "adl_top_k",
    "allocate_largest_remainder",
    "liquidation_prices",
    "position_margins",
    "sweep_account_rows",
    "sweep_accounts",
    "sweep_asset_liability",
]
