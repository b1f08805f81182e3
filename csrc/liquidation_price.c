#include "liquidation_price.h"
#include "fixed_point.h"
#include "kernel_assert.h"

static int64_t clamp_price(i128 m) {
    if (m > (i128)INT64_MAX) return INT64_MAX;
    return (int64_t)m;
}

/* Scaled slack (equity - maintenance margin) * S at notional B on tier k: positive is safe. */
static inline i128 slack_at(i128 x_scaled, i128 m_other, int s, i128 b, int64_t mmr, int64_t cum) {
    return x_scaled + (i128)s * b * RATE_SCALE - (m_other + b * mmr - (i128)cum * RATE_SCALE);
}

static int64_t solve_liquidation(i128 x, i128 m_other, int s, int64_t a_value, int64_t first,
                                 int64_t last, const int64_t *tier_max_notional,
                                 const int64_t *tier_mmr, const int64_t *tier_maintenance_amount) {
    i128 xs = x * RATE_SCALE;
    i128 slack0 = slack_at(xs, m_other, s, 0, tier_mmr[first], tier_maintenance_amount[first]);
    if (s > 0 && slack0 >= 0) return NULL_PRICE;
    if (s < 0 && slack0 <= 0) return 0;
    int64_t k = first;
    for (; k < last - 1; k++) {
        i128 sl = slack_at(xs, m_other, s, tier_max_notional[k], tier_mmr[k], tier_maintenance_amount[k]);
        if (s > 0 ? sl >= 0 : sl <= 0) break;
    }
    /* m * A * (s*S - mmr_k) = M - cum_k*S - X*S */
    i128 r = m_other - (i128)tier_maintenance_amount[k] * RATE_SCALE - xs;
    i128 den = (i128)a_value * ((i128)s * RATE_SCALE - tier_mmr[k]);
    if (den < 0) { den = -den; r = -r; }
    return clamp_price(s > 0 ? ceil_div_i128(r, den) : floor_div_i128(r, den));
}

static int64_t solve_bankruptcy(i128 x, int s, int64_t a_value) {
    /* X + s*A*m == 0 */
    if (s > 0) {
        if (x >= 0) return NULL_PRICE;
        return clamp_price(ceil_div_i128(-x, a_value));
    }
    if (x <= 0) return 0;
    return clamp_price(floor_div_i128(x, a_value));
}

/* The kernel's body, compiled twice (a constant `per_contract`): a book without any
 * per-contract amount runs the loop without that pass. */
static inline __attribute__((always_inline)) int64_t
liquidation_prices_body(const book_columns *book, const tier_table *tiers,
                        int64_t *liquidation_price, int64_t *bankruptcy_price,
                        const int per_contract) {
    const int64_t *acct_start = book->acct_start, *balance = book->balance;
    const int32_t *pos_instrument = book->pos_instrument;
    const int64_t *pos_qty = book->pos_qty, *pos_cost = book->pos_cost;
    const int64_t *mark_lot_value = book->mark_lot_value, *tick_value = tiers->tick_value;
    const int64_t *tier_start = tiers->tier_start, *tier_max_notional = tiers->tier_max_notional;
    const int64_t *tier_mmr = tiers->tier_mmr;
    const int64_t *tier_maintenance_amount = tiers->tier_maintenance_amount;
    const int64_t *tier_mm_per_contract = tiers->tier_mm_per_contract;
    int64_t n_accounts = book->n_accounts;
    for (int64_t a = 0; a < n_accounts; a++) {
        i128 equity = balance[a];
        i128 mm_scaled = 0;
        for (int64_t p = acct_start[a]; p < acct_start[a + 1]; p++) {
            int64_t q = pos_qty[p];
            if (q == 0) continue;
            int32_t inst = pos_instrument[p];
            i128 value = (i128)q * mark_lot_value[inst];
            i128 n = value < 0 ? -value : value;
            if (n > (i128)INT64_MAX) return a;
            equity += value - pos_cost[p];
            int64_t k = tier_of(tier_max_notional, tier_start[inst], tier_start[inst + 1], (int64_t)n);
            mm_scaled += n * tier_mmr[k] - (i128)tier_maintenance_amount[k] * RATE_SCALE;
        }
        /* The per-contract part of the margins (its own pass: rate-only books skip it). Its
         * tier is the instrument's first: the amount is constant within an instrument. */
        for (int64_t p = acct_start[a]; per_contract && p < acct_start[a + 1]; p++) {
            int64_t q = pos_qty[p];
            i128 per_lot = (q < 0 ? -(i128)q : (i128)q) *
                           tier_mm_per_contract[tier_start[pos_instrument[p]]];
            if (per_lot > (i128)INT64_MAX) return a;
            mm_scaled += per_lot * RATE_SCALE;
        }
        for (int64_t p = acct_start[a]; p < acct_start[a + 1]; p++) {
            int64_t q = pos_qty[p];
            if (q == 0) {
                liquidation_price[p] = NULL_PRICE;
                bankruptcy_price[p] = NULL_PRICE;
                continue;
            }
            int32_t inst = pos_instrument[p];
            int s = q > 0 ? 1 : -1;
            i128 value = (i128)q * mark_lot_value[inst];
            i128 n = value < 0 ? -value : value;
            int64_t first = tier_start[inst], last = tier_start[inst + 1];
            int64_t k = tier_of(tier_max_notional, first, last, (int64_t)n);
            /* the per-contract part of this position's margin does not move with its price:
             * it stays in m_other (the per-contract amount is constant within an instrument) */
            i128 m_other = mm_scaled - (n * tier_mmr[k] - (i128)tier_maintenance_amount[k] * RATE_SCALE);
            /* equity with this position valued at price 0: its value term removed, cost kept */
            i128 x = equity - value;
            int64_t a_value = (int64_t)((q < 0 ? -(i128)q : (i128)q) * tick_value[inst]);
            liquidation_price[p] = solve_liquidation(x, m_other, s, a_value, first, last,
                                                     tier_max_notional, tier_mmr,
                                                     tier_maintenance_amount);
            bankruptcy_price[p] = solve_bankruptcy(x, s, a_value);
        }
    }
    return -1;
}

int64_t liquidation_prices(const book_columns *book, const tier_table *tiers,
                           int64_t *liquidation_price, int64_t *bankruptcy_price) {
    if (KERNEL_DEBUG) {
        assert_book_columns(book, READS_ACCT_START | READS_BALANCE | READS_COST);
        assert_tier_table(tiers, book, READS_TICK_VALUE);
        KERNEL_ASSERT(liquidation_price != NULL && bankruptcy_price != NULL);
    }
    int per_contract = 0; /* any per-contract amount: else its pass is skipped unread */
    for (int64_t k = 0; k < tiers->n_tiers; k++) per_contract |= tiers->tier_mm_per_contract[k] != 0;
    return per_contract
               ? liquidation_prices_body(book, tiers, liquidation_price, bankruptcy_price, 1)
               : liquidation_prices_body(book, tiers, liquidation_price, bankruptcy_price, 0);
}
