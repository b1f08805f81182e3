#include "margin.h"
#include "fixed_point.h"

/* The columns one account's evaluation reads; packed once per call, not per account. */
struct margin_view {
    const int64_t *acct_start, *balance;
    const int32_t *pos_instrument;
    const int64_t *pos_qty, *pos_cost;
    const int32_t *pos_leverage;
    const int64_t *mark_lot_value, *tier_start, *tier_max_notional, *tier_mmr,
        *tier_maintenance_amount, *tier_max_leverage;
    int64_t warning_rate;
};

/* Evaluates account `a` into slot `out` of the outputs; returns 0, or 1 on overflow.
 * Branch-light: a free slot (qty 0, cost 0) adds exactly nothing, and overflow flags are
 * or-ed and tested once. Equity sums in 128 bits so only the total must fit; margins are
 * non-negative, so their partial sums never exceed the total. */
static inline int sweep_one(const struct margin_view *v, int64_t a, int64_t out, int64_t *equity,
                            int64_t *maintenance_margin, int64_t *initial_margin,
                            int8_t *status) {
    i128 eq = v->balance[a];
    int64_t mm = 0, im = 0, any_position = 0;
    int overflow = 0;
    for (int64_t p = v->acct_start[a]; p < v->acct_start[a + 1]; p++) {
        int64_t q = v->pos_qty[p];
        int32_t inst = v->pos_instrument[p];
        int64_t value;
        overflow |= __builtin_mul_overflow(q, v->mark_lot_value[inst], &value);
        int64_t notional = value < 0 ? -value : value;
        overflow |= notional < 0; /* value == INT64_MIN */
        any_position |= q;
        eq += (i128)value - v->pos_cost[p];
        int64_t k = tier_of(v->tier_max_notional, v->tier_start[inst], v->tier_start[inst + 1],
                            notional);
        overflow |= __builtin_add_overflow(
            mm, ceil_rate_product(notional, v->tier_mmr[k]) - v->tier_maintenance_amount[k], &mm);
        if (initial_margin) {
            int64_t lev = v->pos_leverage[p];
            if (lev > v->tier_max_leverage[k]) lev = v->tier_max_leverage[k];
            overflow |= __builtin_add_overflow(im, notional / lev + (notional % lev != 0), &im);
        }
    }
    if (overflow || !fits_i64(eq)) return 1;
    equity[out] = (int64_t)eq;
    maintenance_margin[out] = mm;
    if (initial_margin) initial_margin[out] = im;
    int8_t s = STATUS_OK;
    if (eq < 0) {
        s = STATUS_BANKRUPT;
    } else if (any_position) {
        if (eq <= mm) s = STATUS_LIQUIDATE;
        else if ((i128)mm * RATE_SCALE >= (i128)v->warning_rate * eq) s = STATUS_MARGIN_CALL;
    }
    status[out] = s;
    return 0;
}

#define MARGIN_VIEW                                                                            \
    {acct_start,        balance,       pos_instrument,          pos_qty,          pos_cost,   \
     pos_leverage,      mark_lot_value, tier_start,             tier_max_notional, tier_mmr,  \
     tier_maintenance_amount, tier_max_leverage, warning_rate}

int64_t sweep_accounts(int64_t n_accounts, const int64_t *acct_start, const int64_t *balance,
                       const int32_t *pos_instrument, const int64_t *pos_qty,
                       const int64_t *pos_cost, const int32_t *pos_leverage,
                       const int64_t *mark_lot_value, const int64_t *tier_start,
                       const int64_t *tier_max_notional, const int64_t *tier_mmr,
                       const int64_t *tier_maintenance_amount, const int64_t *tier_max_leverage,
                       int64_t warning_rate, int64_t *equity, int64_t *maintenance_margin,
                       int64_t *initial_margin, int8_t *status, int n_threads) {
    const struct margin_view v = MARGIN_VIEW;
    int64_t first_bad = INT64_MAX;
    (void)n_threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads > 0 ? n_threads : 1) reduction(min : first_bad)
#endif
    {
        /* A private copy: the compiler may then keep the columns in registers, which it
         * cannot do through a pointer to shared state that the outputs might alias. */
        const struct margin_view local = v;
#ifdef _OPENMP
#pragma omp for schedule(static, 8192)
#endif
        for (int64_t a = 0; a < n_accounts; a++) {
            if (sweep_one(&local, a, a, equity, maintenance_margin, initial_margin, status) &&
                a < first_bad)
                first_bad = a;
        }
    }
    return first_bad == INT64_MAX ? -1 : first_bad;
}

int64_t sweep_account_rows(int64_t n_rows, const int64_t *rows, const int64_t *acct_start,
                           const int64_t *balance, const int32_t *pos_instrument,
                           const int64_t *pos_qty, const int64_t *pos_cost,
                           const int32_t *pos_leverage, const int64_t *mark_lot_value,
                           const int64_t *tier_start, const int64_t *tier_max_notional,
                           const int64_t *tier_mmr, const int64_t *tier_maintenance_amount,
                           const int64_t *tier_max_leverage, int64_t warning_rate,
                           int64_t *equity, int64_t *maintenance_margin, int8_t *status) {
    const struct margin_view v = MARGIN_VIEW;
    for (int64_t i = 0; i < n_rows; i++) {
        if (sweep_one(&v, rows[i], i, equity, maintenance_margin, NULL, status)) return i;
    }
    return -1;
}

int64_t position_margins(int64_t n_positions, const int32_t *pos_instrument,
                         const int64_t *pos_qty, const int64_t *pos_cost,
                         const int32_t *pos_leverage, const int64_t *mark_lot_value,
                         const int64_t *tier_start, const int64_t *tier_max_notional,
                         const int64_t *tier_mmr, const int64_t *tier_maintenance_amount,
                         const int64_t *tier_max_leverage, int64_t *notional,
                         int64_t *unrealized_pnl, int64_t *maintenance_margin,
                         int64_t *initial_margin, int64_t *tier_index) {
    for (int64_t p = 0; p < n_positions; p++) {
        int32_t inst = pos_instrument[p];
        i128 value = (i128)pos_qty[p] * mark_lot_value[inst];
        i128 n128 = value < 0 ? -value : value;
        i128 upnl = value - pos_cost[p];
        if (n128 > (i128)INT64_MAX || !fits_i64(upnl)) return p;
        int64_t n = (int64_t)n128;
        int64_t k = tier_of(tier_max_notional, tier_start[inst], tier_start[inst + 1], n);
        int64_t lev = pos_leverage[p];
        if (lev > tier_max_leverage[k]) lev = tier_max_leverage[k];
        notional[p] = n;
        unrealized_pnl[p] = (int64_t)upnl;
        maintenance_margin[p] = pos_qty[p] == 0 ? 0 : ceil_rate_product(n, tier_mmr[k]) - tier_maintenance_amount[k];
        initial_margin[p] = (n + lev - 1) / lev;
        tier_index[p] = k - tier_start[inst];
    }
    return -1;
}
