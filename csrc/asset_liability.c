#include "asset_liability.h"
#include "fixed_point.h"
#include "kernel_assert.h"
#include "margin.h"

/* x / 10^d for 0 <= d <= 18: a division by a constant in each case, which compiles to a
 * multiply and a shift (a division by a variable costs some 30-90 cycles). */
static inline uint64_t div_pow10(uint64_t x, int d) {
    switch (d) {
    case 0: return x;
    case 1: return x / 10ULL;
    case 2: return x / 100ULL;
    case 3: return x / 1000ULL;
    case 4: return x / 10000ULL;
    case 5: return x / 100000ULL;
    case 6: return x / 1000000ULL;
    case 7: return x / 10000000ULL;
    case 8: return x / 100000000ULL;
    case 9: return x / 1000000000ULL;
    case 10: return x / 10000000000ULL;
    case 11: return x / 100000000000ULL;
    case 12: return x / 1000000000000ULL;
    case 13: return x / 10000000000000ULL;
    case 14: return x / 100000000000000ULL;
    case 15: return x / 1000000000000000ULL;
    case 16: return x / 10000000000000000ULL;
    case 17: return x / 100000000000000000ULL;
    default: return x / 1000000000000000000ULL;
    }
}

/* floor (up = 0) or ceil (up = 1) of q * p / u for q, p >= 0, u = 10^d > 0. */
static inline i128 value_of(int64_t q, int64_t p, int64_t u, int d, int up) {
    u128 prod = (u128)(uint64_t)q * (uint64_t)p;
    if (prod <= (u128)UINT64_MAX) {
        uint64_t x = (uint64_t)prod;
        uint64_t v = div_pow10(x, d);
        return (i128)(v + (uint64_t)(up && v * (uint64_t)u != x));
    }
    u128 v = prod / (u128)(uint64_t)u;
    return (i128)(v + (u128)(up && v * (u128)(uint64_t)u != prod));
}

/* floor(m * rate / RATE_SCALE) for 0 <= m <= INT64_MAX, 0 <= rate <= RATE_SCALE in 64 bits:
 * m = a*S + b, so the result is a*rate + floor(b*rate / S) (a*rate <= m, b*rate < 10^16),
 * with divisions by the constant S only. */
static inline int64_t floor_rate_product(int64_t m, int64_t rate) {
    uint64_t a = (uint64_t)m / (uint64_t)RATE_SCALE;
    uint64_t b = (uint64_t)m % (uint64_t)RATE_SCALE;
    return (int64_t)(a * (uint64_t)rate + b * (uint64_t)rate / (uint64_t)RATE_SCALE);
}

/* One account; returns 0, or 1 when a value does not fit int64. */
static inline int sweep_one(const asset_liability_book *book, const int *decimals, int64_t a,
                            int64_t call_level, int64_t liquidation_level,
                            const asset_liability_out *out) {
    i128 mv = 0, cv = 0, lv = 0;
    const int64_t *held = book->held, *owed = book->owed;
    /* Branch-free per asset (a zero balance values to zero): on a real book whether an
     * account holds or owes a given asset is close to random, and a mispredicted branch
     * costs more than the arithmetic it would skip. */
    for (int64_t k = 0; k < book->n_assets; k++) {
        int64_t h = held[k * book->stride + a];
        int64_t o = owed[k * book->stride + a];
        int64_t p = book->price[k], u = book->unit[k];
        i128 m = value_of(h, p, u, decimals[k], 0);
        i128 l = value_of(o, p, u, decimals[k], 1);
        if (m > (i128)INT64_MAX || l > (i128)INT64_MAX) return 1;
        mv += m;
        cv += floor_rate_product((int64_t)m, book->collateral_rate[k]);
        lv += l;
    }
    if (mv > (i128)INT64_MAX || lv > (i128)INT64_MAX) return 1;
    int owes = lv > 0, bankrupt = mv < lv;
    int liquidate = cv * RATE_SCALE < lv * liquidation_level;
    int call = cv * RATE_SCALE < lv * call_level;
    /* OK unless something is owed; then the most severe of the three that holds. */
    int8_t status = (int8_t)(owes * (bankrupt ? STATUS_BANKRUPT
                                              : liquidate ? STATUS_LIQUIDATE
                                              : call ? STATUS_MARGIN_CALL : STATUS_OK));
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
    KERNEL_ASSERT(book->n_assets <= ASSET_LIABILITY_ASSETS_MAX);
    int decimals[ASSET_LIABILITY_ASSETS_MAX];
    for (int64_t k = 0; k < book->n_assets; k++) {
        int d = 0;
        for (int64_t u = book->unit[k]; u > 1; u /= 10) d++;
        decimals[k] = d;
    }
    if (KERNEL_DEBUG) {
        for (int64_t k = 0; k < book->n_assets; k++) {
            KERNEL_ASSERT(book->price[k] >= 0 && book->unit[k] > 0);
            int64_t pow10 = 1;
            for (int d = 0; d < decimals[k]; d++) pow10 *= 10;
            KERNEL_ASSERT(pow10 == book->unit[k]); /* a power of ten */
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
            if (sweep_one(book, decimals, a, call_level, liquidation_level, out) && a < first) first = a;
        }
        return first == INT64_MAX ? -1 : first;
    }
#else
    (void)n_threads;
#endif
    for (int64_t a = 0; a < n; a++) {
        if (sweep_one(book, decimals, a, call_level, liquidation_level, out)) return a;
    }
    return -1;
}
