/*
 * Liquidation and bankruptcy prices of every position, cross margin: the mark of that
 * position's instrument at which its whole account breaches, every other mark held.
 *
 * Inputs: the book and its tier table as for the sweep (book_columns.h, margin.h); reads
 * tick_value, not leverage. Preconditions: |qty| * tick_value <= POSITION_TICK_VALUE_MAX
 * (2^62) for every position (the book enforces it), 0 <= mmr < RATE_SCALE, tiers
 * continuous (cum derived).
 *
 * For position j of account a, with A = |q_j| * tick_value, s = sign(q_j),
 *   X = E_a - U_j - cost_j      (the account's equity with position j valued at price 0)
 *   M = sum over i != j of (N_i * mmr_i * S - cum_i * S) + sum over all i of
 *       |q_i| * mm_per_contract_i * S    (scaled by S = RATE_SCALE; the per-contract part
 *       does not move with the price, and is constant within an instrument)
 * the account's equity at price m (ticks) is X + s*A*m and its exact (unrounded) scaled
 * maintenance margin M + A*m*mmr_k - cum_k*S in tier k. The liquidation price solves
 * equity == maintenance margin on the tier where the root lies; the bankruptcy price solves
 * equity == 0. Both are rounded to the tick on the safe side: up for a long, down for a
 * short, so the account is breached at or before the reported price.
 *
 * Outputs (ticks), both n_positions long: liquidation_price[p], bankruptcy_price[p];
 * NULL_PRICE (-1) where no positive price breaches (a long covered even at price 0) or the
 * slot is empty; 0 for a short breached at every price; INT64_MAX where the root exceeds
 * int64. Slots outside every account's range are not written.
 * Overflow: sums and products in 128 bits; returns -1, or the index of the first account
 * with a position notional or per-contract margin beyond int64 (outputs then incomplete).
 */
#ifndef CLEARING_LIQUIDATION_PRICE_H
#define CLEARING_LIQUIDATION_PRICE_H

#include <stdint.h>

#include "book_columns.h"

#define NULL_PRICE (-1LL)

int64_t liquidation_prices(const book_columns *book, const tier_table *tiers,
                           int64_t *liquidation_price, int64_t *bankruptcy_price);

#endif
