"""The asset table of an asset-liability book: which assets an account may hold or owe,
their grids and their collateral rates, loaded from TOML or JSON.

One asset is the money asset (cash: CNY for a securities book, USDT for a crypto one): every
value, liability and deficit is in its units, 10**-money_decimals, and its price is fixed at
one. Any other asset is held in units of 10**-decimals of one whole asset (a share: decimals
0; a coin: 8) and priced in money units per whole asset, so the market value of `q` units at
price `p` is q x p / 10**decimals money units. The collateral rate (the haircut's
complement, the 折算率 of a securities house) is a rate over RATE_SCALE in [0, 1].

    money_decimals = 2
    money_asset = "CNY"
    [[assets]]
    symbol = "CNY"
    decimals = 2
    [[assets]]
    symbol = "600000"
    decimals = 0
    collateral_rate = "1"
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.book.fixed import RATE_SCALE, FixedPointError, parse_decimal, to_rate
from engine.book.instruments import InstrumentError

ASSETS_MAX = 4096
DECIMALS_MAX = 18  # 10**18 fits int64


class AssetError(InstrumentError):
    """A malformed asset table; the message names the offending field."""


@dataclass(frozen=True)
class Asset:
    symbol: str
    decimals: int  # units of 10**-decimals of one whole asset
    collateral_rate: int  # over RATE_SCALE, in [0, RATE_SCALE]


class AssetTable:
    """The assets in file order; index 0.. as the columns of the book use them."""

    def __init__(self, assets: list[Asset], money_asset: str, money_decimals: int) -> None:
        self.assets = assets
        self.index = {a.symbol: i for i, a in enumerate(assets)}
        if len(self.index) != len(assets):
            raise AssetError("assets: duplicate symbol")
        if money_asset not in self.index:
            raise AssetError(f"money_asset: {money_asset!r} is not in the assets")
        self.money = self.index[money_asset]
        self.money_decimals = money_decimals
        if assets[self.money].decimals != money_decimals:
            raise AssetError("money_asset: its decimals must equal money_decimals")
        if assets[self.money].collateral_rate != RATE_SCALE:
            raise AssetError("money_asset: its collateral rate must be 1")
        # 10**decimals per asset: the divisor of a value (price is per whole asset).
        self.unit = np.asarray([10**a.decimals for a in assets], dtype=np.int64)
        self.collateral_rate = np.asarray([a.collateral_rate for a in assets], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.assets)

    @property
    def symbols(self) -> list[str]:
        return [a.symbol for a in self.assets]

    def asset_index(self, symbol: str) -> int | None:
        return self.index.get(symbol)

    @classmethod
    def load(cls, path: str | Path) -> AssetTable:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise AssetError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            doc = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise AssetError(f"{path}: not valid {path.suffix[1:] or 'toml'}: {exc}") from None
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: Any) -> AssetTable:
        if not isinstance(doc, dict):
            raise AssetError("top level: expected a table")
        money_decimals = doc.get("money_decimals")
        if not isinstance(money_decimals, int) or not _small_int(money_decimals, 12):
            raise AssetError("money_decimals: expected an integer from 0 to 12")
        money_asset = doc.get("money_asset")
        if not isinstance(money_asset, str):
            raise AssetError("money_asset: expected the symbol of the cash asset")
        raw = doc.get("assets")
        if not isinstance(raw, list) or not 1 <= len(raw) <= ASSETS_MAX:
            raise AssetError(f"assets: expected a list of 1 to {ASSETS_MAX} assets")
        return cls(
            [_asset(item, f"assets[{i}]") for i, item in enumerate(raw)],
            money_asset,
            money_decimals,
        )


def _small_int(value: object, high: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and 0 <= value <= high


def _asset(item: Any, where: str) -> Asset:
    if not isinstance(item, dict):
        raise AssetError(f"{where}: expected a table")
    symbol = item.get("symbol")
    if not isinstance(symbol, str) or not symbol or not symbol.isprintable() or " " in symbol:
        raise AssetError(f"{where}.symbol: expected a non-empty symbol without spaces")
    decimals = item.get("decimals")
    if not isinstance(decimals, int) or not _small_int(decimals, DECIMALS_MAX):
        raise AssetError(f"{where}.decimals: expected an integer from 0 to {DECIMALS_MAX}")
    try:
        rate = to_rate(
            parse_decimal(item.get("collateral_rate", "1"), f"{where}.collateral_rate"),
            f"{where}.collateral_rate",
        )
    except FixedPointError as exc:
        raise AssetError(str(exc)) from None
    if not 0 <= rate <= RATE_SCALE:
        raise AssetError(f"{where}.collateral_rate: must be from 0 to 1")
    return Asset(symbol, decimals, rate)
