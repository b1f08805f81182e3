#include "adl.h"
#include "fixed_point.h"
#include "kernel_assert.h"

static int64_t clamp_score(i128 v) {
    if (v > (i128)INT64_MAX) return INT64_MAX;
    if (v < -(i128)INT64_MAX) return -INT64_MAX;
    return (int64_t)v;
}

int64_t adl_scores(int64_t n, int32_t policy, const int64_t *unrealized_pnl,
                   const int64_t *cost_abs, const int64_t *notional,
                   const int64_t *account_equity, int64_t *score) {
    KERNEL_ASSERT(n >= 0);
    KERNEL_ASSERT(unrealized_pnl != NULL && cost_abs != NULL && notional != NULL);
    KERNEL_ASSERT(account_equity != NULL && score != NULL);
    const i128 S = ADL_SCORE_SCALE;
    if (policy != ADL_POLICY_PNL_LEVERAGE && policy != ADL_POLICY_HYPERLIQUID) return n;
    for (int64_t j = 0; j < n; j++) {
        if (cost_abs[j] < 0 || notional[j] < 0) return j;
        int64_t u = unrealized_pnl[j];
        int64_t lev_rate = account_equity[j] > 0
                               ? clamp_score(floor_div_i128((i128)notional[j] * S, account_equity[j]))
                               : INT64_MAX;
        if (lev_rate < 1) lev_rate = 1; /* a zero notional still ranks by its pnl alone */
        if (policy == ADL_POLICY_PNL_LEVERAGE) {
            int64_t pnl_rate;
            if (cost_abs[j] > 0) {
                pnl_rate = clamp_score(floor_div_i128((i128)u * S, cost_abs[j]));
            } else {
                pnl_rate = u > 0 ? INT64_MAX : (u < 0 ? -INT64_MAX : 0);
            }
            if (u >= 0) {
                score[j] = clamp_score(floor_div_i128((i128)pnl_rate * lev_rate, S));
            } else {
                score[j] = clamp_score(floor_div_i128((i128)pnl_rate * S, lev_rate));
            }
        } else {
            int64_t price_ratio = cost_abs[j] > 0
                                      ? clamp_score(floor_div_i128((i128)notional[j] * S, cost_abs[j]))
                                      : INT64_MAX;
            score[j] = clamp_score(floor_div_i128((i128)price_ratio * lev_rate, S));
        }
    }
    return -1;
}

/* a ranks after b: lower score, or equal score and higher account id */
static inline int worse(const int64_t *score, const int64_t *id, int64_t a, int64_t b) {
    return score[a] < score[b] || (score[a] == score[b] && id[a] > id[b]);
}

/* min-heap by rank: the root is the worst candidate kept */
static void sift_down(int64_t *heap, int64_t size, int64_t i, const int64_t *score,
                      const int64_t *id) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < size && worse(score, id, heap[l], heap[m])) m = l;
        if (r < size && worse(score, id, heap[r], heap[m])) m = r;
        if (m == i) return;
        int64_t t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
}

static void sift_up(int64_t *heap, int64_t i, const int64_t *score, const int64_t *id) {
    while (i > 0) {
        int64_t parent = (i - 1) / 2;
        if (!worse(score, id, heap[i], heap[parent])) return;
        int64_t t = heap[i];
        heap[i] = heap[parent];
        heap[parent] = t;
        i = parent;
    }
}

int64_t adl_top_k(int64_t n, const int64_t *group, const int64_t *score,
                  const int64_t *account_id, int64_t n_groups, int64_t k, int64_t *top_index,
                  int64_t *top_count) {
    KERNEL_ASSERT(n >= 0 && n_groups >= 0);
    KERNEL_ASSERT(group != NULL && score != NULL && account_id != NULL);
    KERNEL_ASSERT(top_index != NULL && top_count != NULL);
    for (int64_t g = 0; g < n_groups; g++) top_count[g] = 0;
    if (k <= 0) return -1;
    for (int64_t j = 0; j < n; j++) {
        int64_t g = group[j];
        if (g < 0 || g >= n_groups) return j;
        int64_t *heap = top_index + g * k;
        int64_t size = top_count[g];
        if (size < k) {
            heap[size] = j;
            top_count[g] = size + 1;
            sift_up(heap, size, score, account_id);
        } else if (worse(score, account_id, heap[0], j)) {
            heap[0] = j;
            sift_down(heap, size, 0, score, account_id);
        }
    }
    /* heap sort in place: popping the worst to the back leaves the best first */
    for (int64_t g = 0; g < n_groups; g++) {
        int64_t *heap = top_index + g * k;
        for (int64_t size = top_count[g]; size > 1; size--) {
            int64_t t = heap[0];
            heap[0] = heap[size - 1];
            heap[size - 1] = t;
            sift_down(heap, size - 1, 0, score, account_id);
        }
    }
    return -1;
}
