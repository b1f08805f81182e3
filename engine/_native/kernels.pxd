# The native surface: the C kernels of csrc/ and their shared constants, declared once.
# Contracts (inputs, units, preconditions, outputs, overflow) are in the headers.
from libc.stdint cimport int8_t, int32_t, int64_t

cdef extern from "kernel_assert.h" nogil:
    int KERNEL_DEBUG  # 1 when the precondition asserts are compiled in (CLEARING_DEBUG=1)

cdef extern from "fixed_point.h" nogil:
    int64_t RATE_SCALE
    int64_t POSITION_TICK_VALUE_MAX

cdef extern from "book_columns.h" nogil:
    ctypedef struct book_columns:
        int64_t n_accounts
        const int64_t *acct_start
        const int64_t *balance
        int64_t n_positions
        const int32_t *pos_instrument
        const int64_t *pos_qty
        const int64_t *pos_cost
        const int32_t *pos_leverage
        int64_t n_instruments
        const int64_t *mark_lot_value

    ctypedef struct tier_table:
        int64_t n_instruments
        const int64_t *tick_value
        const int64_t *tier_start
        int64_t n_tiers
        const int64_t *tier_max_notional
        const int64_t *tier_mmr
        const int64_t *tier_maintenance_amount
        const int64_t *tier_max_leverage
        const int64_t *tier_mm_per_contract
        const int64_t *tier_im_per_contract

cdef extern from "margin.h" nogil:
    int STATUS_OK, STATUS_MARGIN_CALL, STATUS_LIQUIDATE, STATUS_BANKRUPT, STATUS_COUNT
    const char *STATUS_NAMES[]

    ctypedef struct sweep_out:
        int64_t *equity
        int64_t *maintenance_margin
        int64_t *initial_margin
        int8_t *status

    ctypedef struct position_margin_out:
        int64_t *notional
        int64_t *unrealized_pnl
        int64_t *maintenance_margin
        int64_t *initial_margin
        int64_t *tier_index

    int64_t sweep_accounts(const book_columns *book, const tier_table *tiers,
                           int64_t warning_rate, int64_t *tier_scratch, int n_threads,
                           const sweep_out *out)
    int64_t sweep_account_rows(const book_columns *book, const tier_table *tiers,
                               int64_t warning_rate, int64_t n_rows, const int64_t *rows,
                               const sweep_out *out)
    void account_exposure(const book_columns *book, double *gross_notional,
                          double *live_positions)
    int64_t position_margins(const book_columns *book, const tier_table *tiers,
                             const position_margin_out *out)

cdef extern from "liquidation_price.h" nogil:
    int64_t NULL_PRICE
    int64_t liquidation_prices(const book_columns *book, const tier_table *tiers,
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
