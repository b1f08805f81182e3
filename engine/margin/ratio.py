"""The maintenance ratio of asset-liability accounts and the decisions taken on it.

Definitions (money units; csrc/asset_liability.h states them for the native sweep):

    market value      MV = sum over assets of floor(held x price / unit)
    collateral value  CV = sum over assets of floor(floor(held x price / unit) x rate / S)
    liability value   LV = sum over assets of ceil(owed x price / unit)
    maintenance ratio CV / LV

price is money units per whole asset, unit = 10**decimals, rate the asset's collateral
rate over S = RATE_SCALE. Every rounding is in the house's favour: assets down, debts up.
Status, in order: ok when nothing is owed; bankrupt when MV < LV; liquidate when
CV x S < liquidation_level x LV; margin_call when CV x S < call_level x LV; else ok.
A margin call that has stood for more than the profile's call_deadline_days settlement days
(engine.margin.settle counts them) is a forced sale too: its status becomes liquidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine import _native
from engine.book.fixed import RATE_SCALE
from engine.margin.accounts import AssetBook
from engine.waterfall.profile import AssetLiabilityRules

STATUS_OK, STATUS_MARGIN_CALL = _native.STATUS_OK, _native.STATUS_MARGIN_CALL
STATUS_LIQUIDATE, STATUS_BANKRUPT = _native.STATUS_LIQUIDATE, _native.STATUS_BANKRUPT
STATUS_NAMES = _native.STATUS_NAMES
RATIO_PLACES = 4  # the ratio as text in reports: rounded down to 0.0001


@dataclass(frozen=True)
class AssetLiabilityRisk:
    """One sweep's figures, one entry per account row (money units, STATUS_* codes)."""

    market_value: np.ndarray
    collateral_value: np.ndarray
    liability_value: np.ndarray
    status: np.ndarray


def sweep(book: AssetBook, rules: AssetLiabilityRules, *, threads: int = 1) -> AssetLiabilityRisk:
    """Every account at the book's prices, by the native kernel; then the call deadline."""
    used = book.held.any(axis=1) | book.owed.any(axis=1)
    unpriced = np.flatnonzero(used & ~book.price_set)
    assert len(unpriced) == 0, f"assets held or owed without a price: {unpriced.tolist()}"
    held = book.held_columns
    money = book.held_columns[book.assets.money, : book.n_accounts]
    if (money < 0).any():
        # Only an overdraft account (the insurance fund's deficit) goes below zero, and it
        # owes nothing: it is swept at zero cash (status OK), the kernel's inputs are >= 0.
        held = held.copy()
        held[book.assets.money, : book.n_accounts] = np.maximum(money, 0)
    market, collateral, liability, status = _native.sweep_asset_liability(
        held,
        book.owed_columns,
        book.n_accounts,
        book.price,
        book.assets.unit,
        book.assets.collateral_rate,
        rules.call_level,
        rules.liquidation_level,
        threads,
    )
    if rules.call_deadline_days is not None:
        overdue = (status == STATUS_MARGIN_CALL) & (
            book.call_days[: book.n_accounts] > rules.call_deadline_days
        )
        status[overdue] = STATUS_LIQUIDATE
    return AssetLiabilityRisk(market, collateral, liability, status)


def account_values(book: AssetBook, row: int) -> tuple[int, int, int]:
    """(MV, CV, LV) of one account row with Python integers, by the same definitions."""
    unit, rate = book.assets.unit.tolist(), book.assets.collateral_rate.tolist()
    held, owed = book.held_columns[:, row].tolist(), book.owed_columns[:, row].tolist()
    price = book.price.tolist()
    market = collateral = liability = 0
    for k, (h, o) in enumerate(zip(held, owed, strict=True)):
        value = h * price[k] // unit[k]
        market += value
        collateral += value * rate[k] // RATE_SCALE
        liability += -(-o * price[k] // unit[k])
    return market, collateral, liability


def status_of(market: int, collateral: int, liability: int, rules: AssetLiabilityRules) -> int:
    """The status the sweep gives these values (before the call deadline)."""
    if liability == 0:
        return STATUS_OK
    if market < liability:
        return STATUS_BANKRUPT
    if collateral * RATE_SCALE < rules.liquidation_level * liability:
        return STATUS_LIQUIDATE
    if collateral * RATE_SCALE < rules.call_level * liability:
        return STATUS_MARGIN_CALL
    return STATUS_OK


def ratio_text(collateral: int, liability: int, places: int = RATIO_PLACES) -> str:
    """CV / LV as decimal text rounded down to `places` ("" when nothing is owed)."""
    if liability == 0:
        return ""
    scaled = collateral * 10**places // liability
    return f"{scaled // 10**places}.{scaled % 10**places:0{places}d}"
