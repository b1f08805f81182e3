#include "margin.h"
#include "fixed_point.h"
#include "kernel_assert.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* What one account's evaluation reads. Each thread takes a copy by value, so the compiler
 * may keep the column pointers in registers, which it cannot do through a pointer to shared
 * state that the outputs might alias. */
struct margin_view {
    book_columns book;
    tier_table tiers;
    int64_t warning_rate;
    int per_contract; /* any tier with a per-contract amount (else those terms are skipped) */
};

/* Whether any tier states a per-contract amount. The loops below are compiled twice (a
 * constant `per_contract` argument to an always-inline body): a rate-only book runs the
 * code without the per-contract terms, so it pays nothing for them. */
static int any_per_contract(const tier_table *t, int with_initial) {
    for (int64_t k = 0; k < t->n_tiers; k++) {
        if (t->tier_mm_per_contract[k] != 0) return 1;
        if (with_initial && t->tier_im_per_contract[k] != 0) return 1;
    }
    return 0;
}

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Evaluates account `a` into slot `out` of the outputs; returns 0, or 1 on overflow.
 * Branch-light: a free slot (qty 0, cost 0) adds exactly nothing, and overflow flags are
 * or-ed and tested once. Equity sums in 128 bits so only the total must fit; margins are
 * non-negative, so their partial sums never exceed the total. */
static ALWAYS_INLINE int sweep_one_body(const struct margin_view *v, int64_t a, int64_t out,
                                         int64_t *equity, int64_t *maintenance_margin,
                                         int64_t *initial_margin, int8_t *status,
                                         const int per_contract) {
    const book_columns *b = &v->book;
    const tier_table *t = &v->tiers;
    i128 eq = b->balance[a];
    int64_t mm = 0, im = 0, any_position = 0;
    int overflow = 0;
    for (int64_t p = b->acct_start[a]; p < b->acct_start[a + 1]; p++) {
        int64_t q = b->pos_qty[p];
        int32_t inst = b->pos_instrument[p];
        int64_t value;
        overflow |= __builtin_mul_overflow(q, b->mark_lot_value[inst], &value);
        overflow |= value == INT64_MIN; /* |value| would not fit */
        int64_t notional = value < 0 ? (int64_t)(0 - (uint64_t)value) : value;
        any_position |= q;
        eq += (i128)value - b->pos_cost[p];
        int64_t k = tier_of(t->tier_max_notional, t->tier_start[inst], t->tier_start[inst + 1],
                            notional);
        uint64_t abs_q = q < 0 ? 0 - (uint64_t)q : (uint64_t)q;
        overflow |= __builtin_add_overflow(
            mm, ceil_rate_product(notional, t->tier_mmr[k]) - t->tier_maintenance_amount[k], &mm);
        if (per_contract) {
            int64_t per_lot;
            overflow |= __builtin_mul_overflow(abs_q, t->tier_mm_per_contract[k], &per_lot);
            overflow |= __builtin_add_overflow(mm, per_lot, &mm);
        }
        if (initial_margin) {
            int64_t im_per_lot = per_contract ? t->tier_im_per_contract[k] : 0, position_im;
            if (im_per_lot > 0) {
                overflow |= __builtin_mul_overflow(abs_q, im_per_lot, &position_im);
            } else {
                int64_t lev = b->pos_leverage[p];
                if (lev > t->tier_max_leverage[k]) lev = t->tier_max_leverage[k];
                position_im = notional / lev + (notional % lev != 0);
            }
            overflow |= __builtin_add_overflow(im, position_im, &im);
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

static int sweep_one(const struct margin_view *v, int64_t a, int64_t out, int64_t *equity,
                     int64_t *maintenance_margin, int64_t *initial_margin, int8_t *status) {
    return v->per_contract
               ? sweep_one_body(v, a, out, equity, maintenance_margin, initial_margin, status, 1)
               : sweep_one_body(v, a, out, equity, maintenance_margin, initial_margin, status, 0);
}

/* Blocked sweep of accounts [begin, end) without initial margin, the hot path. Positions are
 * walked in blocks of up to SWEEP_BLOCK, writing running sums to small prefix arrays; each
 * account then takes the difference of two prefixes. Neither loop exits on data, so short
 * accounts of varying length cost no branch mispredictions. tier_a/tier_b hold, per tier,
 * mark_lot_value * mmr = a*S + b at this call's marks, with the per-contract amount folded
 * into a: a position's |q| * mm_per_contract + ceil(N * mmr / S) is then
 * |q|*(a + mm_per_contract) + ceil(|q|*b / S) with one 64-bit division by a constant
 * (|q| < 2^36 keeps |q|*b below 2^63; larger positions take the general formula). A
 * product |q|*(a + mm_per_contract) of 2^62 or more (tier_a saturates there) flags the
 * block, whose accounts are then evaluated one by one by sweep_one, exactly. Same numbers
 * as sweep_one. Returns -1 or the first overflowing account. */
#define SWEEP_BLOCK 2048

static ALWAYS_INLINE int64_t sweep_range_blocked_body(const struct margin_view *v,
                                                      const int64_t *tier_a,
                                                      const int64_t *tier_b, int64_t begin,
                                                      int64_t end, int64_t *equity,
                                                      int64_t *maintenance_margin,
                                                      int8_t *status, const int per_contract) {
    const book_columns *bk = &v->book;
    const tier_table *t = &v->tiers;
    i128 eq_prefix[SWEEP_BLOCK + 1];
    int64_t mm_prefix[SWEEP_BLOCK + 1];
    int32_t live_prefix[SWEEP_BLOCK + 1];
    int64_t a = begin;
    while (a < end) {
        int64_t p0 = bk->acct_start[a];
        if (bk->acct_start[a + 1] - p0 > SWEEP_BLOCK) { /* one account larger than a block */
            if (sweep_one(v, a, a, equity, maintenance_margin, NULL, status)) return a;
            a++;
            continue;
        }
        int64_t b = a + 1;
        while (b < end && bk->acct_start[b + 1] - p0 <= SWEEP_BLOCK) b++;
        int64_t p1 = bk->acct_start[b];
        int overflow = 0;
        i128 eq_sum = 0;
        int64_t mm_sum = 0;
        int32_t live = 0;
        eq_prefix[0] = 0;
        mm_prefix[0] = 0;
        live_prefix[0] = 0;
        for (int64_t p = p0; p < p1; p++) {
            int64_t q = bk->pos_qty[p];
            int32_t inst = bk->pos_instrument[p];
            int64_t value;
            overflow |= __builtin_mul_overflow(q, bk->mark_lot_value[inst], &value);
            overflow |= value == INT64_MIN;
            int64_t notional = value < 0 ? (int64_t)(0 - (uint64_t)value) : value;
            eq_sum += (i128)value - bk->pos_cost[p];
            int64_t k = tier_of(t->tier_max_notional, t->tier_start[inst], t->tier_start[inst + 1],
                                notional);
            uint64_t abs_q = q < 0 ? 0 - (uint64_t)q : (uint64_t)q;
            int64_t margin;
            if (!per_contract) {
                margin = abs_q < ((uint64_t)1 << 36)
                             ? (int64_t)abs_q * tier_a[k] +
                                   (int64_t)((abs_q * (uint64_t)tier_b[k] + RATE_SCALE - 1) /
                                             RATE_SCALE)
                             : ceil_rate_product(notional, t->tier_mmr[k]);
            } else if (abs_q < ((uint64_t)1 << 36)) {
                int64_t lots_part;
                overflow |= __builtin_mul_overflow((int64_t)abs_q, tier_a[k], &lots_part);
                overflow |= (lots_part >> 62) != 0; /* room for the remainder term below */
                margin = lots_part +
                         (int64_t)((abs_q * (uint64_t)tier_b[k] + RATE_SCALE - 1) / RATE_SCALE);
            } else {
                int64_t per_lot;
                overflow |= __builtin_mul_overflow(abs_q, t->tier_mm_per_contract[k], &per_lot);
                overflow |= __builtin_add_overflow(ceil_rate_product(notional, t->tier_mmr[k]),
                                                   per_lot, &margin);
            }
            overflow |= __builtin_add_overflow(mm_sum, margin - t->tier_maintenance_amount[k],
                                               &mm_sum);
            live += q != 0;
            int64_t j = p - p0 + 1;
            eq_prefix[j] = eq_sum;
            mm_prefix[j] = mm_sum;
            live_prefix[j] = live;
        }
        if (overflow) {
            /* A position or the block's running margin sum overflowed: evaluate the block's
             * accounts one by one, which names the account or, if none overflows on its
             * own, produces every output. */
            for (int64_t c = a; c < b; c++)
                if (sweep_one(v, c, c, equity, maintenance_margin, NULL, status)) return c;
            a = b;
            continue;
        }
        for (int64_t c = a; c < b; c++) {
            int64_t s0 = bk->acct_start[c] - p0, s1 = bk->acct_start[c + 1] - p0;
            i128 eq = bk->balance[c] + eq_prefix[s1] - eq_prefix[s0];
            int64_t mm = mm_prefix[s1] - mm_prefix[s0];
            if (!fits_i64(eq)) return c;
            equity[c] = (int64_t)eq;
            maintenance_margin[c] = mm;
            int8_t st = STATUS_OK;
            if (eq < 0) {
                st = STATUS_BANKRUPT;
            } else if (live_prefix[s1] != live_prefix[s0]) {
                if (eq <= mm) st = STATUS_LIQUIDATE;
                else if ((i128)mm * RATE_SCALE >= (i128)v->warning_rate * eq)
                    st = STATUS_MARGIN_CALL;
            }
            status[c] = st;
        }
        a = b;
    }
    return -1;
}

static int64_t sweep_range_blocked(const struct margin_view *v, const int64_t *tier_a,
                                   const int64_t *tier_b, int64_t begin, int64_t end,
                                   int64_t *equity, int64_t *maintenance_margin,
                                   int8_t *status) {
    return v->per_contract ? sweep_range_blocked_body(v, tier_a, tier_b, begin, end, equity,
                                                      maintenance_margin, status, 1)
                           : sweep_range_blocked_body(v, tier_a, tier_b, begin, end, equity,
                                                      maintenance_margin, status, 0);
}

/* Debug build: the sweep's preconditions beyond the columns' own. */
static void assert_sweep_args(const book_columns *book, const tier_table *tiers,
                              int64_t warning_rate, const sweep_out *out, int reads) {
    assert_book_columns(book, READS_ACCT_START | READS_BALANCE | READS_COST | reads);
    assert_tier_table(tiers, book, reads);
    KERNEL_ASSERT(0 < warning_rate && warning_rate <= RATE_SCALE);
    KERNEL_ASSERT(out != NULL);
    KERNEL_ASSERT(out->equity != NULL && out->maintenance_margin != NULL);
    KERNEL_ASSERT(out->status != NULL);
}

int64_t sweep_accounts(const book_columns *book, const tier_table *tiers, int64_t warning_rate,
                       int64_t *tier_scratch, int n_threads, const sweep_out *out) {
    if (KERNEL_DEBUG) {
        KERNEL_ASSERT(out != NULL && tier_scratch != NULL);
        assert_sweep_args(book, tiers, warning_rate, out, out->initial_margin ? READS_LEVERAGE : 0);
    }
    int64_t *initial_margin = out->initial_margin;
    const struct margin_view v = {*book, *tiers, warning_rate,
                                  any_per_contract(tiers, initial_margin != NULL)};
    int64_t *equity = out->equity, *maintenance_margin = out->maintenance_margin;
    int8_t *status = out->status;
    int64_t n_accounts = book->n_accounts, n_instruments = tiers->n_instruments;
    const int64_t *tier_start = tiers->tier_start;
    int64_t n_tiers = tier_start[n_instruments];
    int64_t *tier_a = tier_scratch, *tier_b = tier_scratch + n_tiers;
    for (int64_t i = 0; i < n_instruments; i++) {
        for (int64_t k = tier_start[i]; k < tier_start[i + 1]; k++) {
            i128 x = (i128)book->mark_lot_value[i] * tiers->tier_mmr[k];
            i128 a = x / RATE_SCALE + tiers->tier_mm_per_contract[k];
            /* saturated: any position on the tier then flags its block (see above) */
            tier_a[k] = a < ((i128)1 << 62) ? (int64_t)a : ((int64_t)1 << 62);
            tier_b[k] = (int64_t)(x % RATE_SCALE);
        }
    }
    int64_t first_bad = INT64_MAX;
    int threads = n_threads > 0 ? n_threads : 1;
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(min : first_bad)
#endif
    {
        const struct margin_view local = v;
        int64_t begin = 0, end = n_accounts;
#ifdef _OPENMP
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        begin = n_accounts * t / nt;
        end = n_accounts * (t + 1) / nt;
#endif
        if (initial_margin) {
            for (int64_t a = begin; a < end; a++) {
                if (sweep_one(&local, a, a, equity, maintenance_margin, initial_margin, status)) {
                    first_bad = a;
                    break;
                }
            }
        } else {
            int64_t bad = sweep_range_blocked(&local, tier_a, tier_b, begin, end, equity,
                                              maintenance_margin, status);
            if (bad >= 0) first_bad = bad;
        }
    }
    return first_bad == INT64_MAX ? -1 : first_bad;
}

int64_t sweep_account_rows(const book_columns *book, const tier_table *tiers,
                           int64_t warning_rate, int64_t n_rows, const int64_t *rows,
                           const sweep_out *out) {
    if (KERNEL_DEBUG) {
        assert_sweep_args(book, tiers, warning_rate, out, 0);
        KERNEL_ASSERT(n_rows >= 0 && rows != NULL);
        for (int64_t i = 0; i < n_rows; i++)
            KERNEL_ASSERT(0 <= rows[i] && rows[i] < book->n_accounts);
    }
    const struct margin_view v = {*book, *tiers, warning_rate, any_per_contract(tiers, 0)};
    int64_t *equity = out->equity, *maintenance_margin = out->maintenance_margin;
    int8_t *status = out->status;
    for (int64_t i = 0; i < n_rows; i++) {
        if (sweep_one(&v, rows[i], i, equity, maintenance_margin, NULL, status)) return i;
    }
    return -1;
}

void account_exposure(const book_columns *book, double *gross_notional, double *live_positions) {
    if (KERNEL_DEBUG) {
        assert_book_columns(book, READS_ACCT_START);
        KERNEL_ASSERT(gross_notional != NULL && live_positions != NULL);
    }
    const int64_t *acct_start = book->acct_start, *pos_qty = book->pos_qty;
    const int32_t *pos_instrument = book->pos_instrument;
    const int64_t *mark_lot_value = book->mark_lot_value;
    for (int64_t a = 0; a < book->n_accounts; a++) {
        double gross = 0.0, live = 0.0;
        for (int64_t p = acct_start[a]; p < acct_start[a + 1]; p++) {
            double q = (double)pos_qty[p];
            gross += (q < 0 ? -q : q) * (double)mark_lot_value[pos_instrument[p]];
            live += pos_qty[p] != 0;
        }
        gross_notional[a] = gross;
        live_positions[a] = live;
    }
}

int64_t position_margins(const book_columns *book, const tier_table *tiers,
                         const position_margin_out *out) {
    if (KERNEL_DEBUG) {
        assert_book_columns(book, READS_COST | READS_LEVERAGE);
        assert_tier_table(tiers, book, READS_LEVERAGE);
        KERNEL_ASSERT(out != NULL && out->notional != NULL && out->unrealized_pnl != NULL);
        KERNEL_ASSERT(out->maintenance_margin != NULL && out->initial_margin != NULL);
        KERNEL_ASSERT(out->tier_index != NULL);
    }
    const book_columns *b = book;
    const tier_table *t = tiers;
    int64_t *notional = out->notional, *unrealized_pnl = out->unrealized_pnl;
    int64_t *maintenance_margin = out->maintenance_margin, *initial_margin = out->initial_margin;
    int64_t *tier_index = out->tier_index;
    for (int64_t p = 0; p < b->n_positions; p++) {
        int32_t inst = b->pos_instrument[p];
        i128 value = (i128)b->pos_qty[p] * b->mark_lot_value[inst];
        i128 n128 = value < 0 ? -value : value;
        i128 upnl = value - b->pos_cost[p];
        if (n128 > (i128)INT64_MAX || !fits_i64(upnl)) return p;
        int64_t n = (int64_t)n128;
        int64_t k = tier_of(t->tier_max_notional, t->tier_start[inst], t->tier_start[inst + 1], n);
        int64_t lev = b->pos_leverage[p];
        if (lev > t->tier_max_leverage[k]) lev = t->tier_max_leverage[k];
        notional[p] = n;
        unrealized_pnl[p] = (int64_t)upnl;
        i128 abs_q = b->pos_qty[p] < 0 ? -(i128)b->pos_qty[p] : (i128)b->pos_qty[p];
        i128 mm = b->pos_qty[p] == 0 ? 0
                                     : (i128)ceil_rate_product(n, t->tier_mmr[k]) -
                                           t->tier_maintenance_amount[k] +
                                           abs_q * t->tier_mm_per_contract[k];
        i128 im = t->tier_im_per_contract[k] > 0 ? abs_q * t->tier_im_per_contract[k]
                                                 : (i128)((n + lev - 1) / lev);
        if (!fits_i64(mm) || !fits_i64(im)) return p;
        maintenance_margin[p] = (int64_t)mm;
        initial_margin[p] = (int64_t)im;
        tier_index[p] = k - t->tier_start[inst];
    }
    return -1;
}
