#include "margin.h"
#include "fixed_point.h"

int64_t sweep_accounts(int64_t n_accounts, const int64_t *acct_start, const int64_t *balance,
                       const int32_t *pos_instrument, const int64_t *pos_qty,
                       const int64_t *pos_cost, const int32_t *pos_leverage,
                       const int64_t *mark_lot_value, const int64_t *tier_start,
                       const int64_t *tier_max_notional, const int64_t *tier_mmr,
                       const int64_t *tier_maintenance_amount, const int64_t *tier_max_leverage,
                       int64_t warning_rate, int64_t *equity, int64_t *maintenance_margin,
                       int64_t *initial_margin, int8_t *status) {
    for (int64_t a = 0; a < n_accounts; a++) {
        /* Branch-light inner loop: a free slot (qty 0, cost 0) adds exactly nothing, and
         * overflow flags are or-ed and tested once per account. Equity sums in 128 bits so
         * only the final total must fit; margins are non-negative so their partial sums
         * never exceed the total. */
        i128 eq = balance[a];
        int64_t mm = 0, im = 0, any_position = 0;
        int overflow = 0;
        for (int64_t p = acct_start[a]; p < acct_start[a + 1]; p++) {
            int64_t q = pos_qty[p];
            int32_t inst = pos_instrument[p];
            int64_t value;
            overflow |= __builtin_mul_overflow(q, mark_lot_value[inst], &value);
            int64_t notional = value < 0 ? -value : value;
            overflow |= notional < 0; /* value == INT64_MIN */
            any_position |= q;
            eq += (i128)value - pos_cost[p];
            int64_t k = tier_of(tier_max_notional, tier_start[inst], tier_start[inst + 1], notional);
            overflow |= __builtin_add_overflow(
                mm, ceil_rate_product(notional, tier_mmr[k]) - tier_maintenance_amount[k], &mm);
            if (initial_margin) {
                int64_t lev = pos_leverage[p];
                if (lev > tier_max_leverage[k]) lev = tier_max_leverage[k];
                overflow |= __builtin_add_overflow(im, notional / lev + (notional % lev != 0), &im);
            }
        }
        if (overflow || !fits_i64(eq)) return a;
        equity[a] = (int64_t)eq;
        maintenance_margin[a] = mm;
        if (initial_margin) initial_margin[a] = im;
        int8_t s = STATUS_OK;
        if (eq < 0) {
            s = STATUS_BANKRUPT;
        } else if (any_position) {
            if (eq <= mm) s = STATUS_LIQUIDATE;
            else if ((i128)mm * RATE_SCALE >= (i128)warning_rate * eq) s = STATUS_MARGIN_CALL;
        }
        status[a] = s;
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
