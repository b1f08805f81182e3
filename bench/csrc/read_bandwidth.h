/*
 * Plain read of the columns a sweep reads, for the benchmark's bandwidth baseline: the
 * bytes of acct_start (n_accounts + 1), balance (n_accounts), pos_instrument, pos_qty and
 * pos_cost (n_positions each), each read once, in order, folded into a checksum so the
 * compiler cannot skip the loads. No outputs but the checksum; not used by the engine.
 * Preconditions: n_accounts, n_positions >= 0, each column as long as stated (the binding
 * checks); the checksum wraps modulo 2^64 by design.
 */
#ifndef BENCH_READ_BANDWIDTH_H
#define BENCH_READ_BANDWIDTH_H

#include <stdint.h>

uint64_t read_sweep_columns(int64_t n_accounts, const int64_t *acct_start,
                            const int64_t *balance, int64_t n_positions,
                            const int32_t *pos_instrument, const int64_t *pos_qty,
                            const int64_t *pos_cost);

#endif
