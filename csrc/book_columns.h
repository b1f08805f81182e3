/*
 * The columns the margin kernels read, as two structs: the book (accounts, positions,
 * marks) and the tier table (the instruments' tick values and margin tiers). A kernel
 * takes pointers to both, then its own scalars and outputs, in the manner of numpy's
 * distributions (state, count, out); a column list is written here once.
 *
 * book_columns (units in fixed_point.h)
 *   n_accounts >= 0
 *   acct_start[n_accounts + 1]  CSR offsets into the position columns: acct_start[0] == 0,
 *                               non-decreasing, acct_start[n_accounts] <= n_positions.
 *                               Account row a owns slots acct_start[a] .. acct_start[a+1]-1.
 *   balance[n_accounts]         money raw (wallet balance)
 *   n_positions >= 0
 *   pos_instrument[p]           instrument index in [0, n_instruments)
 *   pos_qty[p]                  signed lots; a slot with qty == 0 and cost == 0 is free
 *   pos_cost[p]                 money raw, signed like qty: sum of qty * price * tick_value
 *                               of the fills that built the position (entry value)
 *   pos_leverage[p]             chosen leverage >= 1 (NULL where the kernel does not read it)
 *   n_instruments >= 0
 *   mark_lot_value[i]           money raw of one lot at the mark (mark_ticks * tick_value),
 *                               >= 0
 *
 * tier_table
 *   n_instruments               the book's count
 *   tick_value[i]               money raw of one lot moving one tick, >= 1 (NULL where the
 *                               kernel does not read it)
 *   tier_start[n_instruments + 1]  offsets into the tier columns: tier_start[0] == 0, at
 *                               least one tier per instrument, tier_start[n] == n_tiers
 *   tier_max_notional[k]        money raw, inclusive upper bound, strictly increasing within
 *                               an instrument; INT64_MAX for its last tier
 *   tier_mmr[k]                 rate over RATE_SCALE, 0 <= mmr < RATE_SCALE, non-decreasing
 *   tier_maintenance_amount[k]  money raw `cum` >= 0: MM = ceil(N * mmr) - cum is
 *                               continuous in N across the bounds
 *   tier_max_leverage[k]        >= 1 (NULL where the kernel does not read it)
 *   tier_mm_per_contract[k]     money raw per lot held, >= 0: a fixed maintenance amount per
 *                               contract (the CME convention) added to the rate part, so
 *                               MM = |q| * mm_per_contract + ceil(N * mmr) - cum; 0 for a
 *                               rate-only tier. Constant within an instrument (the loader
 *                               gives a per-contract instrument one tier), so MM stays
 *                               continuous in N.
 *   tier_im_per_contract[k]     money raw per lot held, >= 0: when > 0 a position's initial
 *                               margin is |q| * im_per_contract instead of ceil(N / leverage)
 *                               (NULL where the kernel does not read it)
 *
 * The structs only point at memory the caller owns (the Cython layer, which checks the
 * lengths); kernels never write through them. In the debug build the kernels assert the
 * properties above on entry (assert_book_columns, assert_tier_table); the release build
 * takes them as given.
 */
#ifndef CLEARING_BOOK_COLUMNS_H
#define CLEARING_BOOK_COLUMNS_H

#include <stdint.h>

#include "fixed_point.h"
#include "kernel_assert.h"

typedef struct book_columns {
    int64_t n_accounts;
    const int64_t *acct_start;
    const int64_t *balance;
    int64_t n_positions;
    const int32_t *pos_instrument;
    const int64_t *pos_qty;
    const int64_t *pos_cost;
    const int32_t *pos_leverage;
    int64_t n_instruments;
    const int64_t *mark_lot_value;
} book_columns;

typedef struct tier_table {
    int64_t n_instruments;
    const int64_t *tick_value;
    const int64_t *tier_start;
    int64_t n_tiers;
    const int64_t *tier_max_notional;
    const int64_t *tier_mmr;
    const int64_t *tier_maintenance_amount;
    const int64_t *tier_max_leverage;
    const int64_t *tier_mm_per_contract;
    const int64_t *tier_im_per_contract;
} tier_table;

/* Which columns a kernel reads, for the debug asserts (the rest may be NULL). Every kernel
 * reads pos_instrument, pos_qty and mark_lot_value. */
enum {
    READS_ACCT_START = 1, /* and then the CSR properties are asserted */
    READS_BALANCE = 2,
    READS_COST = 4,
    READS_LEVERAGE = 8,    /* pos_leverage, tier_max_leverage and tier_im_per_contract */
    READS_TICK_VALUE = 16, /* and then |qty| * tick_value <= POSITION_TICK_VALUE_MAX */
};

/* Debug build: the book_columns properties above, for the columns in `reads`. O(n). */
static void assert_book_columns(const book_columns *book, int reads) {
    KERNEL_ASSERT(book != NULL);
    KERNEL_ASSERT(book->n_positions >= 0 && book->n_instruments >= 0);
    KERNEL_ASSERT(book->pos_instrument != NULL && book->pos_qty != NULL);
    KERNEL_ASSERT(book->mark_lot_value != NULL);
    if (reads & READS_ACCT_START) {
        KERNEL_ASSERT(book->n_accounts >= 0 && book->acct_start != NULL);
        KERNEL_ASSERT(book->acct_start[0] == 0);
        for (int64_t a = 0; a < book->n_accounts; a++)
            KERNEL_ASSERT(book->acct_start[a] <= book->acct_start[a + 1]);
        KERNEL_ASSERT(book->acct_start[book->n_accounts] <= book->n_positions);
    }
    if (reads & READS_BALANCE) KERNEL_ASSERT(book->balance != NULL);
    if (reads & READS_COST) KERNEL_ASSERT(book->pos_cost != NULL);
    if (reads & READS_LEVERAGE) KERNEL_ASSERT(book->pos_leverage != NULL);
    for (int64_t i = 0; i < book->n_instruments; i++) KERNEL_ASSERT(book->mark_lot_value[i] >= 0);
    for (int64_t p = 0; p < book->n_positions; p++) {
        KERNEL_ASSERT(0 <= book->pos_instrument[p] && book->pos_instrument[p] < book->n_instruments);
        if (reads & READS_LEVERAGE) KERNEL_ASSERT(book->pos_leverage[p] >= 1);
    }
}

/* Debug build: the tier_table properties above, and that it describes the book's
 * instruments. With READS_TICK_VALUE also the book's |qty| * tick_value bound. O(n). */
static void assert_tier_table(const tier_table *tiers, const book_columns *book, int reads) {
    KERNEL_ASSERT(tiers != NULL);
    KERNEL_ASSERT(tiers->n_instruments == book->n_instruments);
    KERNEL_ASSERT(tiers->tier_start != NULL && tiers->tier_max_notional != NULL);
    KERNEL_ASSERT(tiers->tier_mmr != NULL && tiers->tier_maintenance_amount != NULL);
    KERNEL_ASSERT(tiers->tier_mm_per_contract != NULL);
    KERNEL_ASSERT(tiers->tier_start[0] == 0);
    KERNEL_ASSERT(tiers->tier_start[tiers->n_instruments] == tiers->n_tiers);
    if (reads & READS_LEVERAGE) KERNEL_ASSERT(tiers->tier_max_leverage != NULL);
    if (reads & READS_LEVERAGE) KERNEL_ASSERT(tiers->tier_im_per_contract != NULL);
    if (reads & READS_TICK_VALUE) KERNEL_ASSERT(tiers->tick_value != NULL);
    for (int64_t i = 0; i < tiers->n_instruments; i++) {
        int64_t first = tiers->tier_start[i], last = tiers->tier_start[i + 1];
        KERNEL_ASSERT(first < last); /* at least one tier */
        KERNEL_ASSERT(tiers->tier_max_notional[last - 1] == INT64_MAX);
        if (reads & READS_TICK_VALUE) KERNEL_ASSERT(tiers->tick_value[i] >= 1);
        for (int64_t k = first; k < last; k++) {
            KERNEL_ASSERT(0 <= tiers->tier_mmr[k] && tiers->tier_mmr[k] < RATE_SCALE);
            KERNEL_ASSERT(tiers->tier_maintenance_amount[k] >= 0);
            KERNEL_ASSERT(tiers->tier_mm_per_contract[k] >= 0);
            if (reads & READS_LEVERAGE) KERNEL_ASSERT(tiers->tier_max_leverage[k] >= 1);
            if (reads & READS_LEVERAGE) KERNEL_ASSERT(tiers->tier_im_per_contract[k] >= 0);
            if (k > first) {
                KERNEL_ASSERT(tiers->tier_mm_per_contract[k - 1] ==
                              tiers->tier_mm_per_contract[k]);
                KERNEL_ASSERT(tiers->tier_max_notional[k - 1] < tiers->tier_max_notional[k]);
                KERNEL_ASSERT(tiers->tier_mmr[k - 1] <= tiers->tier_mmr[k]);
            }
        }
    }
    if (reads & READS_TICK_VALUE) {
        for (int64_t p = 0; p < book->n_positions; p++) {
            int64_t q = book->pos_qty[p];
            i128 abs_q = q < 0 ? -(i128)q : (i128)q;
            KERNEL_ASSERT(abs_q * tiers->tick_value[book->pos_instrument[p]] <=
                          POSITION_TICK_VALUE_MAX);
        }
    }
}

#endif
