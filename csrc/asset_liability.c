#include "asset_liability.h"
#include "fixed_point.h"
#include "kernel_assert.h"
#include "margin.h"

/* floor(q * p / u) for q, p >= 0, u > 0: one 64-bit division when the product fits. */
static inline i128 value_down(int64_t q, int64_t p, int64_t u) {
    u128 prod = (u128)(uint64_t)q * (uint64_t)p;
    if (prod <= (u128)UINT64_MAX) return (i128)((uint64_t)prod / (uint64_t)u);
    return (i128)(prod / (u128)(uint64_t)u);
}

static inline i128 value_up(int64_t q, int64_t p, int64_t u) {
    u128 prod = (u128)(uint64_t)q * (uint64_t)p;
    if (prod <= (u128)UINT64_MAX) {
        uint64_t x = (uint64_t)prod;
        return (i128)(x / (uint64_t)u + (x % (uint64_t)u != 0));
    }
    return (i128)(prod / (u128)(uint64_t)u + (prod % (u128)(uint64_t)u != 0));
}

/* One account; returns 0, or 1 when a value does not fit int64. */
static inline int sweep_one(const asset_liability_book *book, int64_t a, int64_t call_level,
                            int64_t liquidation_level, const asset_liability_out *out) {
    i128 mv = 0, cv = 0, lv = 0;
    const int64_t *held = book->held, *owed = book->owed;
    for (int64_t k = 0; k < book->n_assets; k++) {
        int64_t h = held[k * book->stride + a];
        int64_t o = owed[k * book->stride + a];
        int64_t p = book->price[k], u = book->unit[k];
        if (h != 0) {
            i128 m = value_down(h, p, u);
            if (m > (i128)INT64_MAX) return 1;
            mv += m;
            /* m < 2^63 and rate <= 2^27: the product fits 128 bits */
            cv += m * book->collateral_rate[k] / RATE_SCALE;
        }
        if (o != 0) {
            i128 l = value_up(o, p, u);
            if (l > (i128)INT64_MAX) return 1;
            lv += l;
        }
    }
    if (mv > (i128)INT64_MAX || lv > (i128)INT64_MAX) return 1;
    int8_t status = STATUS_OK;
    if (lv > 0) {
        if (mv < lv) status = STATUS_BANKRUPT;
        else if (cv * RATE_SCALE < lv * liquidation_level) status = STATUS_LIQUIDATE;
        else if (cv * RATE_SCALE < lv * call_level) status = STATUS_MARGIN_CALL;
    }
    out->market_value[a] = (int64_t)mv;
    out->collateral_value[a] = (int64_t)cv;
    out->liability_value[a] = (int64_t)lv;
    out->status[a] = status;
    return 0;
}

int64_t sweep_asset_liability(const asset_liability_book *book, int64_t call_level,
                              int64_t liquidation_level, int n_threads,
                              const asset_liability_out *out) {
    KERNEL_ASSERT(book != NULL && out != NULL);
    KERNEL_ASSERT(book->n_accounts >= 0 && book->n_assets >= 0);
    KERNEL_ASSERT(book->stride >= book->n_accounts);
    KERNEL_ASSERT(0 < liquidation_level && liquidation_level <= call_level);
    if (KERNEL_DEBUG) {
        for (int64_t k = 0; k < book->n_assets; k++) {
            KERNEL_ASSERT(book->price[k] >= 0 && book->unit[k] > 0);
            KERNEL_ASSERT(0 <= book->collateral_rate[k] &&
                          book->collateral_rate[k] <= RATE_SCALE);
            for (int64_t a = 0; a < book->n_accounts; a++) {
                KERNEL_ASSERT(book->held[k * book->stride + a] >= 0);
                KERNEL_ASSERT(book->owed[k * book->stride + a] >= 0);
            }
        }
    }
    int64_t n = book->n_accounts;
#ifdef _OPENMP
    if (n_threads > 1) {
        int64_t first = INT64_MAX;
#pragma omp parallel for num_threads(n_threads) schedule(static) reduction(min : first)
        for (int64_t a = 0; a < n; a++) {
            if (sweep_one(book, a, call_level, liquidation_level, out) && a < first) first = a;
        }
        return first == INT64_MAX ? -1 : first;
    }
#else
    (void)n_threads;
#endif
    for (int64_t a = 0; a < n; a++) {
        if (sweep_one(book, a, call_level, liquidation_level, out)) return a;
    }
    return -1;
}
