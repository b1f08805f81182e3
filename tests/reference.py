"""Plain-Python references for the C kernels: Python ints and Fractions, no numpy, no C.

They follow the definitions stated in the csrc headers directly rather than the kernels'
algebra: liquidation prices are found by bisection on the exact breach margin at integer
ticks, not by solving the linear pieces, so a slip in either shows up as a mismatch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

RATE_SCALE = 10**8
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
NULL_PRICE = -1


@dataclass
class RefTier:
    max_notional: int  # INT64_MAX for the last
    mmr: int
    maintenance_amount: int
    max_leverage: int
    mm_per_contract: int = 0  # money per lot held, added to the rate part of MM
    im_per_contract: int = 0  # money per lot; > 0: IM = |qty| x this instead of N / leverage


@dataclass
class RefPosition:
    instrument: int
    qty: int
    cost: int
    leverage: int


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def tier_of(tiers: list[RefTier], notional: int) -> RefTier:
    for tier in tiers:
        if notional <= tier.max_notional:
            return tier
    return tiers[-1]


class RefOverflow(Exception):
    pass


def sweep(
    balances: list[int],
    positions: list[list[RefPosition]],
    mark_lot_value: list[int],
    tiers: list[list[RefTier]],
    warning_rate: int,
) -> list[tuple[int, int, int, int]]:
    """(equity, maintenance margin, initial margin, status) per account."""
    out = []
    for balance, account in zip(balances, positions, strict=True):
        equity, mm, im, has_position = balance, 0, 0, False
        for pos in account:
            if pos.qty == 0:
                continue
            has_position = True
            notional = abs(pos.qty) * mark_lot_value[pos.instrument]
            if notional > INT64_MAX:
                raise RefOverflow
            equity += pos.qty * mark_lot_value[pos.instrument] - pos.cost
            tier = tier_of(tiers[pos.instrument], notional)
            mm += ceil_div(notional * tier.mmr, RATE_SCALE) - tier.maintenance_amount
            mm += abs(pos.qty) * tier.mm_per_contract
            if tier.im_per_contract > 0:
                im += abs(pos.qty) * tier.im_per_contract
            else:
                im += ceil_div(notional, min(pos.leverage, tier.max_leverage))
        for value in (equity, mm, im):
            if not INT64_MIN <= value <= INT64_MAX:
                raise RefOverflow
        if equity < 0:
            status = 3
        elif has_position and equity <= mm:
            status = 2
        elif has_position and Fraction(mm) >= Fraction(warning_rate, RATE_SCALE) * equity:
            status = 1
        else:
            status = 0
        out.append((equity, mm, im, status))
    return out


def _margin_at_price(
    balance: int,
    account: list[RefPosition],
    j: int,
    mark_lot_value: list[int],
    tick_value: list[int],
    tiers: list[list[RefTier]],
    with_maintenance: bool,
    price: int,
) -> Fraction:
    """Exact equity minus exact (unrounded) maintenance margin, position j at `price` ticks."""
    equity = Fraction(balance)
    maintenance = Fraction(0)
    for i, pos in enumerate(account):
        if pos.qty == 0:
            continue
        lot_value = price * tick_value[pos.instrument] if i == j else mark_lot_value[pos.instrument]
        notional = abs(pos.qty) * lot_value
        equity += pos.qty * lot_value - pos.cost
        tier = tier_of(tiers[pos.instrument], notional)
        maintenance += Fraction(notional * tier.mmr, RATE_SCALE) - tier.maintenance_amount
        maintenance += abs(pos.qty) * tier.mm_per_contract
    return equity - maintenance if with_maintenance else equity


def _search(pred_ge0, increasing: bool) -> int:
    """Long (increasing): smallest m >= 0 with margin(m) >= 0; short: largest such m."""
    lo, hi = 0, INT64_MAX
    if increasing:
        if not pred_ge0(hi):
            return INT64_MAX
        while lo < hi:
            mid = (lo + hi) // 2
            if pred_ge0(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo
    if pred_ge0(hi):
        return INT64_MAX
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if pred_ge0(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def liquidation_prices(
    balances: list[int],
    positions: list[list[RefPosition]],
    mark_lot_value: list[int],
    tick_value: list[int],
    tiers: list[list[RefTier]],
) -> list[list[tuple[int, int]]]:
    """(liquidation price, bankruptcy price) in ticks per slot, NULL_PRICE for none."""
    out = []
    for balance, account in zip(balances, positions, strict=True):
        prices = []
        for j, pos in enumerate(account):
            if pos.qty == 0:
                prices.append((NULL_PRICE, NULL_PRICE))
                continue
            pair = []
            for with_mm in (True, False):
                margin = functools.partial(
                    _margin_at_price,
                    balance,
                    account,
                    j,
                    mark_lot_value,
                    tick_value,
                    tiers,
                    with_mm,
                )
                if pos.qty > 0:
                    price = (
                        NULL_PRICE
                        if margin(0) >= 0
                        else _search(lambda m, f=margin: f(m) >= 0, increasing=True)
                    )
                else:
                    price = (
                        0
                        if margin(0) <= 0
                        else _search(lambda m, f=margin: f(m) >= 0, increasing=False)
                    )
                pair.append(price)
            prices.append((pair[0], pair[1]))
        out.append(prices)
    return out
