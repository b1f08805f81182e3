/*
 * Maintenance-ratio sweep over asset-liability accounts (margin financing, spot margin).
 *
 * An account holds a balance of each asset and owes a liability in each asset (borrowed
 * principal plus accrued interest). One asset is the money asset: every value below is in
 * its units (money raw, 10^-money_decimals).
 *
 * Inputs (asset_liability_book):
 *   held, owed   n_assets x stride int64, asset-major: the balance of account a in asset k
 *                is held[k * stride + a] (asset units, 10^-decimals_k of one whole asset);
 *                0 <= held, 0 <= owed; n_accounts <= stride
 *   price        per asset, money raw per whole asset (the money asset: 10^money_decimals),
 *                price >= 0
 *   unit         per asset, 10^decimals_k, 0 <= decimals_k <= 18 (the money asset:
 *                10^money_decimals); n_assets <= ASSET_LIABILITY_ASSETS_MAX
 *   collateral_rate  per asset, over RATE_SCALE, 0 <= rate <= RATE_SCALE
 * Levels (rates over RATE_SCALE): 0 < liquidation_level <= call_level.
 *
 * Per holding, rounded in the house's favour:
 *   market value     MV_k = floor(held_k * price_k / unit_k)
 *   collateral value CV_k = floor(MV_k * rate_k / RATE_SCALE)
 *   liability value  LV_k = ceil(owed_k * price_k / unit_k)
 * Per account: MV = sum MV_k, CV = sum CV_k, LV = sum LV_k, and the status, in order:
 *   OK           LV == 0 (nothing owed: the ratio is unbounded)
 *   BANKRUPT     MV < LV (selling everything cannot repay the debt)
 *   LIQUIDATE    CV * RATE_SCALE < liquidation_level * LV
 *   MARGIN_CALL  CV * RATE_SCALE < call_level * LV
 *   OK           otherwise.
 * The maintenance ratio CV / LV is never formed: each decision is one exact 128-bit
 * comparison.
 *
 * Outputs (asset_liability_out), each n_accounts long: market_value, collateral_value,
 * liability_value (money raw) and status (STATUS_* of margin.h). They must not overlap the
 * inputs.
 * Overflow: products in 128 bits; a per-holding value or an account total that does not
 * fit int64 makes the kernel return that account's index (outputs then incomplete, the
 * lowest such index over the threads). Otherwise -1.
 */
#ifndef CLEARING_ASSET_LIABILITY_H
#define CLEARING_ASSET_LIABILITY_H

#include <stdint.h>

#define ASSET_LIABILITY_ASSETS_MAX 4096

typedef struct asset_liability_book {
    int64_t n_accounts;
    int64_t n_assets;
    int64_t stride; /* distance between one asset's row and the next, >= n_accounts */
    const int64_t *held;
    const int64_t *owed;
    const int64_t *price;
    const int64_t *unit;
    const int64_t *collateral_rate;
} asset_liability_book;

typedef struct asset_liability_out {
    int64_t *market_value;
    int64_t *collateral_value;
    int64_t *liability_value;
    int8_t *status;
} asset_liability_out;

/* Every account; n_threads > 1 splits the accounts over OpenMP threads when built with
 * OpenMP (results are identical for any thread count). */
int64_t sweep_asset_liability(const asset_liability_book *book, int64_t call_level,
                              int64_t liquidation_level, int n_threads,
                              const asset_liability_out *out);

#endif
