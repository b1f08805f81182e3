#include "read_bandwidth.h"

uint64_t read_sweep_columns(int64_t n_accounts, const int64_t *acct_start,
                            const int64_t *balance, int64_t n_positions,
                            const int32_t *pos_instrument, const int64_t *pos_qty,
                            const int64_t *pos_cost) {
    uint64_t sum = (uint64_t)acct_start[n_accounts];
    for (int64_t a = 0; a < n_accounts; a++) sum += (uint64_t)acct_start[a] ^ (uint64_t)balance[a];
    for (int64_t p = 0; p < n_positions; p++)
        sum += (uint64_t)pos_instrument[p] ^ (uint64_t)pos_qty[p] ^ (uint64_t)pos_cost[p];
    return sum;
}
