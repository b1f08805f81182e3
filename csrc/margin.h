/*
 * Margin sweep: the per-tick pass over every account.
 *
 * Inputs
 *   n_accounts, acct_start[n_accounts+1]  CSR offsets into the position columns; sorted,
 *                                         acct_start[0] == 0. A slot with qty == 0 and
 *                                         cost == 0 is an empty slot and contributes nothing.
 *   balance[a]            money raw (wallet balance)
 *   pos_instrument[p]     instrument index
 *   pos_qty[p]            signed lots
 *   pos_cost[p]           money raw, signed like qty: sum of qty * price * tick_value of the
 *                         fills that built the position (entry value)
 *   pos_leverage[p]       chosen leverage (>= 1), capped by the tier's max leverage
 *   mark_lot_value[i]     money raw of one lot at the mark: mark_ticks * tick_value
 *   tier_start[i..i+1]    the instrument's tiers in the flat tier arrays, ascending bounds
 *   tier_max_notional[k]  money raw, inclusive upper bound; INT64_MAX for the last tier
 *   tier_mmr[k]           rate (over RATE_SCALE)
 *   tier_maintenance_amount[k]  money raw `cum`: MM = ceil(N * mmr) - cum is continuous
 *   tier_max_leverage[k]
 *   warning_rate          margin-call level as a rate (0.8 -> 80000000)
 *
 * Per position: N = |qty| * mark_lot_value, U = qty * mark_lot_value - cost,
 *   MM = ceil(N * mmr(tier(N))) - cum(tier(N)), IM = ceil(N / min(leverage, max_leverage)).
 * Per account: E = balance + sum U, MM = sum MM_i, IM = sum IM_i and the status, in order:
 *   BANKRUPT (E < 0), LIQUIDATE (a position and E <= MM), MARGIN_CALL (a position and
 *   MM >= warning * E, exactly: MM * S >= warning_rate * E), else OK.
 *
 * Outputs (int64 money raw / int8 status) for every account; initial_margin may be NULL to
 * skip it (it costs a division per position). Returns -1, or the index of the first
 * account whose position notional or totals do not fit int64 (outputs then incomplete).
 * tier_scratch: 2 * (number of tiers) int64 of working space (per-tier products at the
 * marks, so the hot loop does one division by a constant per position).
 * n_threads > 1 splits the accounts over OpenMP threads when built with OpenMP (each
 * account is written by one thread; results are identical for any thread count).
 */
#ifndef CLEARING_MARGIN_H
#define CLEARING_MARGIN_H

#include <stddef.h>
#include <stdint.h>

enum { STATUS_OK = 0, STATUS_MARGIN_CALL = 1, STATUS_LIQUIDATE = 2, STATUS_BANKRUPT = 3 };

int64_t sweep_accounts(int64_t n_accounts, const int64_t *acct_start, const int64_t *balance,
                       const int32_t *pos_instrument, const int64_t *pos_qty,
                       const int64_t *pos_cost, const int32_t *pos_leverage,
                       int64_t n_instruments, const int64_t *mark_lot_value,
                       const int64_t *tier_start, const int64_t *tier_max_notional,
                       const int64_t *tier_mmr, const int64_t *tier_maintenance_amount,
                       const int64_t *tier_max_leverage, int64_t warning_rate,
                       int64_t *tier_scratch, int64_t *equity, int64_t *maintenance_margin,
                       int64_t *initial_margin, int8_t *status, int n_threads);

/* The same evaluation for the listed account rows only (an incremental tick's candidates):
 * output i belongs to account rows[i]. No initial margin. Returns -1, or the index i of the
 * first listed account that overflows. */
int64_t sweep_account_rows(int64_t n_rows, const int64_t *rows, const int64_t *acct_start,
                           const int64_t *balance, const int32_t *pos_instrument,
                           const int64_t *pos_qty, const int64_t *pos_cost,
                           const int32_t *pos_leverage, const int64_t *mark_lot_value,
                           const int64_t *tier_start, const int64_t *tier_max_notional,
                           const int64_t *tier_mmr, const int64_t *tier_maintenance_amount,
                           const int64_t *tier_max_leverage, int64_t warning_rate,
                           int64_t *equity, int64_t *maintenance_margin, int8_t *status);

/* Screening figures per account (not money): gross notional at the marks as a double
 * (sum of |qty| * mark_lot_value, relative error below 1e-15) and the number of live
 * positions. Used to bound how far a mark move can shift an account's margin. */
void account_exposure(int64_t n_accounts, const int64_t *acct_start,
                      const int32_t *pos_instrument, const int64_t *pos_qty,
                      const int64_t *mark_lot_value, double *gross_notional,
                      double *n_positions);

/* Per-position values at the marks (report path, not the hot loop): notional, unrealized
 * PnL, maintenance and initial margin, all money raw, and the tier index used. Returns -1
 * or the index of the first position whose values do not fit int64. */
int64_t position_margins(int64_t n_positions, const int32_t *pos_instrument,
                         const int64_t *pos_qty, const int64_t *pos_cost,
                         const int32_t *pos_leverage, const int64_t *mark_lot_value,
                         const int64_t *tier_start, const int64_t *tier_max_notional,
                         const int64_t *tier_mmr, const int64_t *tier_maintenance_amount,
                         const int64_t *tier_max_leverage, int64_t *notional,
                         int64_t *unrealized_pnl, int64_t *maintenance_margin,
                         int64_t *initial_margin, int64_t *tier_index);

#endif
