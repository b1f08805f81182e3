/*
 * Liquidation and bankruptcy prices of every position, cross margin: the mark of that
 * position's instrument at which its whole account breaches, every other mark held.
 *
 * Inputs are the sweep's (see margin.h) plus tick_value[i] (money raw of one lot moving one
 * tick) and mark_lot_value[i]. Preconditions: |qty| * tick_value <= 2^62 for every position
 * (the book enforces it), 0 <= mmr < RATE_SCALE, tiers continuous (cum derived).
 *
 * For position j of account a, with A = |q_j| * tick_value, s = sign(q_j),
 *   X = E_a - U_j - cost_j      (the account's equity with position j valued at price 0)
 *   M = sum over i != j of (N_i * mmr_i * S - cum_i * S)    (scaled by S = RATE_SCALE)
 * the account's equity at price m (ticks) is X + s*A*m and its exact (unrounded) scaled
 * maintenance margin M + A*m*mmr_k - cum_k*S in tier k. The liquidation price solves
 * equity == maintenance margin on the tier where the root lies; the bankruptcy price solves
 * equity == 0. Both are rounded to the tick on the safe side: up for a long, down for a
 * short, so the account is breached at or before the reported price.
 *
 * Outputs (ticks): liquidation_price[p], bankruptcy_price[p]; NULL_PRICE (-1) where no
 * positive price breaches (a long covered even at price 0) or the slot is empty; 0 for a
 * short breached at every price; INT64_MAX where the root exceeds int64. Returns -1, or
 * the index of the first account whose values do not fit (outputs then incomplete).
 */
#ifndef CLEARING_LIQUIDATION_PRICE_H
#define CLEARING_LIQUIDATION_PRICE_H

#include <stdint.h>

#define NULL_PRICE (-1LL)

int64_t liquidation_prices(int64_t n_accounts, const int64_t *acct_start, const int64_t *balance,
                           const int32_t *pos_instrument, const int64_t *pos_qty,
                           const int64_t *pos_cost, const int64_t *tick_value,
                           const int64_t *mark_lot_value, const int64_t *tier_start,
                           const int64_t *tier_max_notional, const int64_t *tier_mmr,
                           const int64_t *tier_maintenance_amount, int64_t *liquidation_price,
                           int64_t *bankruptcy_price);

#endif
