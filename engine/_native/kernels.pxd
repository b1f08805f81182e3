# The native surface: the C kernels of csrc/ and their shared constants, declared once.
# Contracts (inputs, units, preconditions, outputs, overflow) are in the headers.
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t

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

cdef extern from "asset_liability.h" nogil:
    int64_t ASSET_LIABILITY_ASSETS_MAX
    ctypedef struct asset_liability_book:
        int64_t n_accounts
        int64_t n_assets
        int64_t stride
        const int64_t *held
        const int64_t *owed
        const int64_t *price
        const int64_t *unit
        const int64_t *collateral_rate

    ctypedef struct asset_liability_out:
        int64_t *market_value
        int64_t *collateral_value
        int64_t *liability_value
        int8_t *status

    int64_t sweep_asset_liability(const asset_liability_book *book, int64_t call_level,
                                  int64_t liquidation_level, int n_threads,
                                  const asset_liability_out *out)

cdef extern from "account_events.h" nogil:
    int EVENT_DEPOSIT, EVENT_WITHDRAW, EVENT_FILL, EVENT_LEVERAGE
    int EVENT_APPLIED, EVENT_ONE_BY_ONE, EVENT_OUTCOME_COUNT
    int HOUSE_COUNT, POSTINGS_PER_EVENT_MAX

    ctypedef struct event_columns:
        int64_t n
        const int8_t *kind
        const int64_t *event_id
        const int32_t *partition
        const int8_t *pre_outcome
        const int64_t *account
        const int64_t *counterparty
        const int32_t *instrument
        const int64_t *price
        const int64_t *qty
        const int64_t *amount
        const int64_t *fee
        const int64_t *counterparty_fee
        const int64_t *leverage
        const int8_t *sides

    ctypedef struct account_table:
        int64_t n
        const int64_t *account_id
        int64_t *row

    ctypedef struct pair_table:
        int64_t capacity
        int64_t n_keys
        int64_t *key
        int8_t *pending
        int64_t *qty
        int64_t *cost
        int64_t *leverage
        int64_t *setting
        int8_t *setting_changed
        int64_t n_pending

    ctypedef struct book_state:
        int64_t n_accounts
        int64_t n_open
        const int64_t *acct_start
        int64_t *balance
        int64_t n_positions
        int32_t *pos_instrument
        int64_t *pos_qty
        int64_t *pos_cost
        int32_t *pos_leverage
        int64_t n_instruments
        const int64_t *mark
        const int64_t *mark_lot_value
        const uint8_t *mark_set

    ctypedef struct event_rules:
        int64_t default_leverage
        int64_t leverage_max
        int64_t accounts_max
        int64_t balance_max
        int64_t fill_balance_max
        int64_t position_value_max
        int64_t position_slots_max
        int64_t band_rate
        int32_t fill_checks
        int32_t stop_on_reject

    ctypedef struct event_out:
        int8_t *outcome
        int64_t posting_capacity
        int64_t n_postings
        int64_t *posting_event_id
        int64_t *posting_debit
        int64_t *posting_credit
        int64_t *posting_amount
        int8_t *posting_reason
        int64_t changed_capacity
        int64_t n_changed
        int64_t *changed_row
        int64_t house_delta[4]
        int64_t max_event_id
        int32_t replay

    int64_t apply_account_events(const event_columns *events, account_table *accounts,
                                 pair_table *pairs, book_state *book, const tier_table *tiers,
                                 int64_t *last_event_id, int64_t n_partitions,
                                 const event_rules *rules, int64_t start, event_out *out)
