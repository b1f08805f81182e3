/*
 * Auto-deleveraging (ADL) queue: scores of the candidate positions and the top-k per
 * (instrument, side) group, without sorting the whole candidate set.
 *
 * adl_scores: per candidate position, from money raw values (see fixed_point.h)
 *   unrealized_pnl[j]   U at the mark
 *   cost_abs[j]         |entry value| (> 0 for a position opened at a positive price)
 *   notional[j]         |qty| * mark_lot_value
 *   account_equity[j]   equity of the position's account (cross margin)
 * writes score[j], an int64 at ADL_SCORE_SCALE (1.0 == 10^8), computed with 128-bit
 * intermediates, each step floored and clamped to the int64 range:
 *   pnl_rate = U * S / cost_abs                 (profit fraction; +-INT64_MAX when cost is 0)
 *   lev_rate = notional * S / equity            (effective leverage; INT64_MAX when equity <= 0)
 *   ADL_POLICY_PNL_LEVERAGE (Binance / BitMEX queue):
 *       U >= 0: pnl_rate * lev_rate / S;  U < 0: pnl_rate * S / lev_rate
 *   ADL_POLICY_HYPERLIQUID: (notional * S / cost_abs) * lev_rate / S  (mark/entry x leverage)
 * The score is a ranking key, not money: flooring makes it deterministic, and equal scores
 * are ordered by account id. Returns -1; n for an unknown policy; or the index of the first
 * candidate with a negative cost_abs or notional.
 * Preconditions: n >= 0, every column n long, no NULL pointer (asserted in the debug build).
 *
 * adl_top_k: candidates j in [0, n) belong to group[j] in [0, n_groups). For each group it
 * writes the best min(k, size) candidates, best first, into top_index[g*k .. g*k + count)
 * and the count into top_count[g]. Better = higher score, then lower account id (ids are
 * distinct within a group). One pass with a k-slot min-heap per group (root = the worst kept
 * candidate), O(n log k) and no allocation: top_index is the heap storage. Returns -1, or
 * the index of the first candidate whose group is out of range (outputs then incomplete).
 * Preconditions: n >= 0, n_groups >= 0, top_index n_groups * k long, top_count n_groups.
 * Scores are compared, never combined: nothing can overflow.
 */
#ifndef CLEARING_ADL_H
#define CLEARING_ADL_H

#include <stdint.h>

enum { ADL_POLICY_PNL_LEVERAGE = 0, ADL_POLICY_HYPERLIQUID = 1 };
#define ADL_SCORE_SCALE 100000000LL

int64_t adl_scores(int64_t n, int32_t policy, const int64_t *unrealized_pnl,
                   const int64_t *cost_abs, const int64_t *notional,
                   const int64_t *account_equity, int64_t *score);

int64_t adl_top_k(int64_t n, const int64_t *group, const int64_t *score,
                  const int64_t *account_id, int64_t n_groups, int64_t k, int64_t *top_index,
                  int64_t *top_count);

#endif
