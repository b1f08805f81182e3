/*
 * Fixed-point helpers shared by the kernels.
 *
 * Units (the one place they are stated):
 *   money  int64 raw at 10^money_decimals per currency unit (balance, cost, fees, margins)
 *   price  int64 ticks of the instrument's tick size
 *   qty    int64 signed lots of the instrument's lot size (long > 0)
 *   tick_value  int64 money raw of one lot moving one tick (lot * tick * multiplier)
 *   rate   int64 numerator over RATE_SCALE = 10^8 (mmr, warning level); 0 <= mmr < 1
 * Rounding is always in the house's favour: maintenance and initial margin are rounded
 * up to the money unit, realized PnL down.
 * Products are formed in 128 bits; anything that must be stored in int64 is checked.
 */
#ifndef CLEARING_FIXED_POINT_H
#define CLEARING_FIXED_POINT_H

#include <stdint.h>

typedef __int128 i128;
typedef unsigned __int128 u128;

#define RATE_SCALE 100000000LL

/* Bound on |qty| * tick_value (one position's value per tick), kept by the book: every
 * product the kernels form with it (times a price, times RATE_SCALE) then fits 128 bits. */
#define POSITION_TICK_VALUE_MAX (1LL << 62)

static inline i128 floor_div_i128(i128 num, i128 den) {
    /* den > 0 */
    i128 q = num / den;
    if ((num % den) != 0 && num < 0) q -= 1;
    return q;
}

static inline i128 ceil_div_i128(i128 num, i128 den) {
    /* den > 0 */
    i128 q = num / den;
    if ((num % den) != 0 && num > 0) q += 1;
    return q;
}

static inline int fits_i64(i128 v) {
    return v >= (i128)INT64_MIN && v <= (i128)INT64_MAX;
}

/* ceil(notional * rate / RATE_SCALE) for 0 <= notional <= INT64_MAX, 0 <= rate < RATE_SCALE,
 * without a 128-bit division: notional = a*S + b, so the product is a*rate + b*rate/S and
 * both parts fit 64 bits (a*rate < 2^63, b*rate < 10^16). Divisions by the constant S
 * compile to multiply-and-shift. */
static inline int64_t ceil_rate_product(int64_t notional, int64_t rate) {
    uint64_t a = (uint64_t)notional / (uint64_t)RATE_SCALE;
    uint64_t b = (uint64_t)notional % (uint64_t)RATE_SCALE;
    uint64_t br = b * (uint64_t)rate;
    return (int64_t)(a * (uint64_t)rate + (br + (uint64_t)RATE_SCALE - 1) / (uint64_t)RATE_SCALE);
}

/* Index into the flat tier arrays of the tier covering `notional` for an instrument
 * whose tiers are [first, last): the first tier whose max_notional >= notional. The last
 * tier's max_notional is INT64_MAX (unbounded), so the scan always ends inside. */
static inline int64_t tier_of(const int64_t *tier_max_notional, int64_t first, int64_t last,
                              int64_t notional) {
    int64_t k = first;
    while (k < last - 1 && notional > tier_max_notional[k]) k++;
    return k;
}

#endif
