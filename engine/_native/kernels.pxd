# The native surface: the C kernels of csrc/, declared once. Contracts are in the headers.
from libc.stdint cimport int8_t, int32_t, int64_t

cdef extern from "margin.h" nogil:
    int STATUS_OK, STATUS_MARGIN_CALL, STATUS_LIQUIDATE, STATUS_BANKRUPT
    int64_t sweep_accounts(int64_t n_accounts, const int64_t *acct_start, const int64_t *balance,
                           const int32_t *pos_instrument, const int64_t *pos_qty,
                           const int64_t *pos_cost, const int32_t *pos_leverage,
                           const int64_t *mark_lot_value, const int64_t *tier_start,
                           const int64_t *tier_max_notional, const int64_t *tier_mmr,
                           const int64_t *tier_maintenance_amount, const int64_t *tier_max_leverage,
                           int64_t warning_rate, int64_t *equity, int64_t *maintenance_margin,
                           int64_t *initial_margin, int8_t *status)
    int64_t position_margins(int64_t n_positions, const int32_t *pos_instrument,
                             const int64_t *pos_qty, const int64_t *pos_cost,
                             const int32_t *pos_leverage, const int64_t *mark_lot_value,
                             const int64_t *tier_start, const int64_t *tier_max_notional,
                             const int64_t *tier_mmr, const int64_t *tier_maintenance_amount,
                             const int64_t *tier_max_leverage, int64_t *notional,
                             int64_t *unrealized_pnl, int64_t *maintenance_margin,
                             int64_t *initial_margin, int64_t *tier_index)

cdef extern from "liquidation_price.h" nogil:
    int64_t NULL_PRICE
    int64_t liquidation_prices(int64_t n_accounts, const int64_t *acct_start,
                               const int64_t *balance, const int32_t *pos_instrument,
                               const int64_t *pos_qty, const int64_t *pos_cost,
                               const int64_t *tick_value, const int64_t *mark_lot_value,
                               const int64_t *tier_start, const int64_t *tier_max_notional,
                               const int64_t *tier_mmr, const int64_t *tier_maintenance_amount,
                               int64_t *liquidation_price, int64_t *bankruptcy_price)
