/*
 * Margin sweep: the per-tick pass over every account, and per-position margins.
 *
 * Inputs: the book and its tier table (book_columns.h states their units and
 * preconditions), plus
 *   warning_rate   margin-call level as a rate over RATE_SCALE, 0 < warning_rate <= RATE_SCALE
 *                  (0.8 -> 80000000)
 *
 * Per position: N = |qty| * mark_lot_value, U = qty * mark_lot_value - cost, with k = tier(N)
 * the instrument's first tier whose max_notional >= N,
 *   MM = |qty| * mm_per_contract(k) + ceil(N * mmr(k)) - cum(k),
 *   IM = |qty| * im_per_contract(k) when that is > 0 (a fixed amount per contract),
 *        else ceil(N / min(leverage, max_leverage(k))).
 * Per account: E = balance + sum U, MM = sum MM_i, IM = sum IM_i and the status, in order:
 *   BANKRUPT (E < 0), LIQUIDATE (a position and E <= MM), MARGIN_CALL (a position and
 *   MM >= warning * E, exactly: MM * S >= warning_rate * E), else OK.
 *
 * Outputs (sweep_out): int64 money raw and an int8 status for every account, each array
 * n_accounts long (or n_rows for sweep_account_rows); initial_margin may be NULL to skip
 * it (it costs a division per position). The outputs must not overlap the inputs.
 *
 * Overflow: products are formed in 64 bits with overflow checks or in 128 bits; a position
 * notional, an account's equity or its margin sums that do not fit int64 make the kernel
 * return that account's index (outputs then incomplete). Otherwise they return -1.
 */
#ifndef CLEARING_MARGIN_H
#define CLEARING_MARGIN_H

#include <stddef.h>
#include <stdint.h>

#include "book_columns.h"

/* Account status codes, in order of severity. */
enum {
    STATUS_OK = 0,
    STATUS_MARGIN_CALL = 1,
    STATUS_LIQUIDATE = 2,
    STATUS_BANKRUPT = 3,
    STATUS_COUNT = 4
};

/* The status names, indexed by code (reports and the command line print these). */
static const char *const STATUS_NAMES[STATUS_COUNT] = {"ok", "margin_call", "liquidate",
                                                       "bankrupt"};

typedef struct sweep_out {
    int64_t *equity;             /* money raw */
    int64_t *maintenance_margin; /* money raw */
    int64_t *initial_margin;     /* money raw; NULL: not computed */
    int8_t *status;              /* STATUS_* */
} sweep_out;

/* Every account of the book. tier_scratch: 2 * n_tiers int64 of working space (per-tier
 * products at the marks, so the hot loop does one division by a constant per position).
 * n_threads > 1 splits the accounts over OpenMP threads when built with OpenMP (each
 * account is written by one thread; results are identical for any thread count). Returns
 * -1, or the index of the lowest overflowing account the threads met. */
int64_t sweep_accounts(const book_columns *book, const tier_table *tiers, int64_t warning_rate,
                       int64_t *tier_scratch, int n_threads, const sweep_out *out);

/* The same evaluation for the listed account rows only (an incremental tick's candidates):
 * output i belongs to account rows[i], 0 <= rows[i] < n_accounts. No initial margin
 * (out->initial_margin is not written). Returns -1, or the index i of the first listed
 * account that overflows. */
int64_t sweep_account_rows(const book_columns *book, const tier_table *tiers,
                           int64_t warning_rate, int64_t n_rows, const int64_t *rows,
                           const sweep_out *out);

/* Screening figures per account (not money): gross notional at the marks as a double
 * (sum of |qty| * mark_lot_value, relative error below 1e-15) and the number of live
 * positions, both n_accounts long. Used to bound how far a mark move can shift an
 * account's margin. Reads no tiers; cannot overflow. */
void account_exposure(const book_columns *book, double *gross_notional, double *live_positions);

typedef struct position_margin_out {
    int64_t *notional;           /* money raw, |qty| * mark_lot_value */
    int64_t *unrealized_pnl;     /* money raw */
    int64_t *maintenance_margin; /* money raw; 0 for a free slot */
    int64_t *initial_margin;     /* money raw */
    int64_t *tier_index;         /* the tier used, counted from the instrument's first */
} position_margin_out;

/* Per-position values at the marks (report path, not the hot loop), every slot in
 * [0, n_positions), each output n_positions long; reads no account columns. Returns -1 or
 * the index of the first position whose values do not fit int64. */
int64_t position_margins(const book_columns *book, const tier_table *tiers,
                         const position_margin_out *out);

#endif
