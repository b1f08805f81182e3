"""The rules of multi-asset collateral, as a profile's `[collateral]` section states them
(parsed in engine.waterfall.profile): the assets, each with its grids and haircut, and what a
takeover does with an account's collateral."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

COLLATERAL_SALES = ("haircut_value",)


@dataclass(frozen=True)
class CollateralAssetRule:
    symbol: str
    qty_step: Decimal  # the asset's quantity grid (balances are integer steps)
    price_step: Decimal  # its price grid, in the money currency per whole asset
    haircut: int  # over RATE_SCALE, in [0, 1): the asset counts at price x (1 - haircut)


@dataclass(frozen=True)
class CollateralRules:
    assets: tuple[CollateralAssetRule, ...]
    sale: str  # what a takeover does with the collateral: "haircut_value" (sold at it)
