# The native surface: the C kernels of csrc/, declared once. Contracts are in the headers.
from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t

cdef extern from "margin.h" nogil:
    int STATUS_OK, STATUS_MARGIN_CALL, STATUS_LIQUIDATE, STATUS_BANKRUPT
    int64_t sweep_accounts(int64_t n_accounts, const int64_t *acct_start, const int64_t *balance,
                           const int32_t *pos_instrument, const int64_t *pos_qty,
                           const int64_t *pos_cost, const int32_t *pos_leverage,
                           int64_t n_instruments, const int64_t *mark_lot_value,
                           const int64_t *tier_start, const int64_t *tier_max_notional,
                           const int64_t *tier_mmr, const int64_t *tier_maintenance_amount,
                           const int64_t *tier_max_leverage, int64_t warning_rate,
                           int64_t *tier_scratch, int64_t *equity, int64_t *maintenance_margin,
                           int64_t *initial_margin, int8_t *status, int n_threads)
    int64_t sweep_account_rows(int64_t n_rows, const int64_t *rows, const int64_t *acct_start,
                               const int64_t *balance, const int32_t *pos_instrument,
                               const int64_t *pos_qty, const int64_t *pos_cost,
                               const int32_t *pos_leverage, const int64_t *mark_lot_value,
                               const int64_t *tier_start, const int64_t *tier_max_notional,
                               const int64_t *tier_mmr, const int64_t *tier_maintenance_amount,
                               const int64_t *tier_max_leverage, int64_t warning_rate,
                               int64_t *equity, int64_t *maintenance_margin, int8_t *status)
    void account_exposure(int64_t n_accounts, const int64_t *acct_start,
                          const int32_t *pos_instrument, const int64_t *pos_qty,
                          const int64_t *mark_lot_value, double *gross_notional,
                          double *n_positions)
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

cdef extern from "adl.h" nogil:
    int ADL_POLICY_PNL_LEVERAGE, ADL_POLICY_HYPERLIQUID
    int64_t ADL_SCORE_SCALE
    int64_t adl_scores(int64_t n, int32_t policy, const int64_t *unrealized_pnl,
                       const int64_t *cost_abs, const int64_t *notional,
                       const int64_t *account_equity, int64_t *score)
    int64_t adl_top_k(int64_t n, const int64_t *group, const int64_t *score,
                      const int64_t *account_id, int64_t n_groups, int64_t k,
                      int64_t *top_index, int64_t *top_count)

cdef extern from "allocation.h" nogil:
    int64_t allocate_largest_remainder(int64_t n, const int64_t *weight,
                                       const int64_t *account_id, int64_t total,
                                       int64_t *part, int64_t *remainder, int64_t *scratch)

cdef extern from "read_bandwidth.h" nogil:
    uint64_t read_sweep_columns(int64_t n_accounts, const int64_t *acct_start,
                                const int64_t *balance, int64_t n_positions,
                                const int32_t *pos_instrument, const int64_t *pos_qty,
                                const int64_t *pos_cost)
