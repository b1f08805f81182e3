#include "allocation.h"
#include "fixed_point.h"
#include "kernel_assert.h"

/* a ranks before b: larger remainder, or equal remainder and lower account id */
static inline int before(const int64_t *rem, const int64_t *id, int64_t a, int64_t b) {
    return rem[a] > rem[b] || (rem[a] == rem[b] && id[a] < id[b]);
}

static void sift_down(int64_t *heap, int64_t size, int64_t i, const int64_t *rem,
                      const int64_t *id) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < size && before(rem, id, heap[l], heap[m])) m = l;
        if (r < size && before(rem, id, heap[r], heap[m])) m = r;
        if (m == i) return;
        int64_t t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
}

int64_t allocate_largest_remainder(int64_t n, const int64_t *weight, const int64_t *account_id,
                                   int64_t total, int64_t *part, int64_t *remainder,
                                   int64_t *scratch) {
    KERNEL_ASSERT(n >= 0);
    KERNEL_ASSERT(weight != NULL && account_id != NULL);
    KERNEL_ASSERT(part != NULL && remainder != NULL && scratch != NULL);
    if (total < 0) return -1 - n;
    int64_t w_sum = 0;
    for (int64_t j = 0; j < n; j++) {
        if (weight[j] < 0 || weight[j] > INT64_MAX - w_sum) return -1 - j;
        w_sum += weight[j];
    }
    if (total >= w_sum) {
        for (int64_t j = 0; j < n; j++) {
            part[j] = weight[j];
            remainder[j] = 0;
        }
        return w_sum;
    }
    /* here W > total >= 0, so W > 0 */
    int64_t given = 0, size = 0;
    for (int64_t j = 0; j < n; j++) {
        i128 product = (i128)total * weight[j];
        part[j] = (int64_t)(product / w_sum);
        remainder[j] = (int64_t)(product % w_sum);
        given += part[j];
        if (weight[j] > 0) scratch[size++] = j;
    }
    int64_t left = total - given; /* < number of positive weights: sum of remainders / W */
    KERNEL_ASSERT(0 <= left && left < size); /* W > 0, so size >= 1 */
    for (int64_t i = size / 2 - 1; i >= 0; i--) sift_down(scratch, size, i, remainder, account_id);
    for (; left > 0; left--) {
        part[scratch[0]] += 1;
        scratch[0] = scratch[--size];
        sift_down(scratch, size, 0, remainder, account_id);
    }
    return total;
}
