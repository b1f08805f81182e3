/*
 * Exact pro-rata allocation with largest-remainder rounding (socialized loss, pro-rata ADL).
 *
 * Inputs: n >= 0 weights (money raw or lots, each >= 0, their sum W <= INT64_MAX), distinct
 * account_id[j] for the tie-break, and total >= 0 to allocate. Every array is n long and
 * none is NULL (asserted in the debug build).
 * Writes part[j]:
 *   total >= W: part[j] = weight[j] (each part is capped by its weight; the caller reports
 *               total - W as unallocated, never invents it);
 *   total <  W: part[j] = floor(total * w_j / W), then the units left over (fewer than the
 *               number of positive weights) go one each to the largest remainders
 *               (total * w_j mod W), ties to the lower account id. The parts sum to total
 *               exactly and part[j] <= weight[j].
 * Products use 128 bits. The top-r remainders are taken from a heap built in `scratch`
 * (n int64 slots supplied by the caller): O(n + r log n), no full sort, no allocation.
 * `remainder` (n int64 slots) receives total * w_j mod W (0 when total >= W).
 * Returns the amount allocated (min(total, W)), or -1 - j for the first invalid weight
 * (negative, or the running sum exceeds int64), or -1 - n when total < 0.
 */
#ifndef CLEARING_ALLOCATION_H
#define CLEARING_ALLOCATION_H

#include <stdint.h>

int64_t allocate_largest_remainder(int64_t n, const int64_t *weight, const int64_t *account_id,
                                   int64_t total, int64_t *part, int64_t *remainder,
                                   int64_t *scratch);

#endif
