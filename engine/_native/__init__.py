"""Native kernels (csrc/) behind thin Cython bindings."""

from engine._native._kernels import (
    ADL_POLICY_HYPERLIQUID,
    ADL_POLICY_PNL_LEVERAGE,
    ADL_SCORE_SCALE,
    NULL_PRICE,
    NativeOverflowError,
    account_exposure,
    adl_scores,
    adl_top_k,
    allocate_largest_remainder,
    liquidation_prices,
    position_margins,
    read_sweep_columns,
    sweep_account_rows,
    sweep_accounts,
)

__all__ = [
    "ADL_POLICY_HYPERLIQUID",
    "ADL_POLICY_PNL_LEVERAGE",
    "ADL_SCORE_SCALE",
    "NULL_PRICE",
    "NativeOverflowError",
    "account_exposure",
    "adl_scores",
    "adl_top_k",
    "allocate_largest_remainder",
    "liquidation_prices",
    "position_margins",
    "read_sweep_columns",
    "sweep_account_rows",
    "sweep_accounts",
]
