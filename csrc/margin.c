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
        i128 eq = balance[a];
        i128 mm = 0;
        i128 im = 0;
        int has_position = 0;
        for (int64_t p = acct_start[a]; p < acct_start[a + 1]; p++) {
            int64_t q = pos_qty[p];
            if (q == 0) continue;
            has_position = 1;
            int32_t inst = pos_instrument[p];
            int64_t lot_value = mark_lot_value[inst];
            i128 value = (i128)q * lot_value;
            i128 notional128 = value < 0 ? -value : value;
            if (notional128 > (i128)INT64_MAX) return a;
            int64_t notional = (int64_t)notional128;
            eq += value - pos_cost[p];
            int64_t k = tier_of(tier_max_notional, tier_start[inst], tier_start[inst + 1], notional);
            mm += ceil_rate_product(notional, tier_mmr[k]) - tier_maintenance_amount[k];
            if (initial_margin) {
                int64_t lev = pos_leverage[p];
                if (lev > tier_max_leverage[k]) lev = tier_max_leverage[k];
                im += (notional + lev - 1) / lev;
            }
        }
        if (!fits_i64(eq) || !fits_i64(mm) || !fits_i64(im)) return a;
        equity[a] = (int64_t)eq;
        maintenance_margin[a] = (int64_t)mm;
        if (initial_margin) initial_margin[a] = (int64_t)im;
        int8_t s = STATUS_OK;
        if (eq < 0) {
            s = STATUS_BANKRUPT;
        } else if (has_position) {
            if (eq <= mm) s = STATUS_LIQUIDATE;
            else if (mm * RATE_SCALE >= (i128)warning_rate * eq) s = STATUS_MARGIN_CALL;
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
