"""Instruments and their risk tiers, loaded from JSON or TOML, as flat arrays for the kernels.

Grid: prices are integer ticks, sizes integer lots, money integer units of
10**-money_decimals. `tick_value` (money units for one lot moving one tick) must be an
integer, so position values are exact integer products. Tier k covers notionals above the
previous tier's bound up to and including its own; its maintenance amount `cum_k` is derived
(cum_k = cum_{k-1} + bound_{k-1} * (mmr_k - mmr_{k-1})) so maintenance margin is continuous.

Futures exchanges state margin as a fixed amount per contract instead (CME: so many dollars
per lot): a tier may give `margin_per_contract` {maintenance, initial} instead of `mmr`.
Such an instrument has that one tier; its maintenance margin is |qty| x maintenance and its
initial margin |qty| x initial, whatever the price or the leverage (max_leverage is then
optional and only bounds the leverage setting). An instrument may also state a daily
`price_limit`, a rate of the previous settlement price (engine.exchange.price_limits).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from engine.book.fixed import (
    INT64_MAX,
    RATE_SCALE,
    FixedPointError,
    decimals_of,
    parse_decimal,
    to_rate,
)
from engine.book.limits import LEVERAGE_MAX, VALUE_MAX

MONEY_DECIMALS_DEFAULT = 8
# A perpetual keeps its cost basis and pays funding; a dated future is marked to market at
# each settlement (variation margin realized, cost basis reset to the settlement price).
INSTRUMENT_KINDS = ("perpetual", "dated")
KIND_DEFAULT = "perpetual"
TIERS_MAX = 64
INSTRUMENTS_MAX = 1_000_000


class InstrumentError(ValueError):
    """A malformed instrument file; the message names the offending field."""


PER_CONTRACT_MAX = VALUE_MAX  # money units per lot


@dataclass(frozen=True)
class Tier:
    max_notional: int  # money units, INT64_MAX for the unbounded last tier
    mmr: int  # rate over RATE_SCALE
    max_leverage: int
    maintenance_amount: int  # money units (cum)
    mm_per_contract: int = 0  # money units per lot held (CME-style fixed margin)
    im_per_contract: int = 0  # money units per lot; > 0: replaces notional / leverage


@dataclass(frozen=True)
class Instrument:
    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    multiplier: Decimal
    tick_value: int
    tiers: tuple[Tier, ...]
    kind: str = KIND_DEFAULT  # one of INSTRUMENT_KINDS
    price_limit: int = 0  # daily limit, rate over RATE_SCALE of the previous settlement; 0: none

    @property
    def per_contract(self) -> bool:
        """Margin as a fixed amount per contract (one tier with margin_per_contract)."""
        return self.tiers[0].mm_per_contract > 0

    @property
    def price_decimals(self) -> int:
        return decimals_of(self.tick_size)

    @property
    def qty_decimals(self) -> int:
        return decimals_of(self.lot_size)


class InstrumentTable:
    """All instruments of a venue, with the flat tier arrays the kernels read."""

    def __init__(self, instruments: list[Instrument], money_decimals: int) -> None:
        self.money_decimals = money_decimals
        self.money_step = Decimal(1).scaleb(-money_decimals)
        self.instruments = tuple(instruments)
        self.index = {inst.symbol: i for i, inst in enumerate(instruments)}
        if len(self.index) != len(instruments):
            raise InstrumentError("instruments: duplicate symbol")
        self._build_tier_arrays()
        self.tick_value = np.asarray([inst.tick_value for inst in instruments], dtype=np.int64)

    def _build_tier_arrays(self) -> None:
        starts = [0]
        for inst in self.instruments:
            starts.append(starts[-1] + len(inst.tiers))
        self.tier_start = np.asarray(starts, dtype=np.int64)
        all_tiers = [t for inst in self.instruments for t in inst.tiers]
        self.tier_max_notional = np.asarray([t.max_notional for t in all_tiers], dtype=np.int64)
        self.tier_mmr = np.asarray([t.mmr for t in all_tiers], dtype=np.int64)
        self.tier_maintenance_amount = np.asarray(
            [t.maintenance_amount for t in all_tiers], dtype=np.int64
        )
        self.tier_max_leverage = np.asarray([t.max_leverage for t in all_tiers], dtype=np.int64)
        self.tier_mm_per_contract = np.asarray(
            [t.mm_per_contract for t in all_tiers], dtype=np.int64
        )
        self.tier_im_per_contract = np.asarray(
            [t.im_per_contract for t in all_tiers], dtype=np.int64
        )

    def replace_tiers(self, instrument: int, tiers: tuple[Tier, ...]) -> None:
        """A runtime change of one instrument's margin parameters (engine.exchange): its
        tiers become `tiers` (parsed by parse_tiers) and the flat arrays the kernels read
        are rebuilt. The caller re-sweeps: every margin figure computed before is stale."""
        assert tiers, "an instrument keeps at least one tier"
        assert tiers[-1].max_notional == INT64_MAX, "the last tier is unbounded"
        items = list(self.instruments)
        items[instrument] = replace(items[instrument], tiers=tuple(tiers))
        self.instruments = tuple(items)
        self._build_tier_arrays()

    def __len__(self) -> int:
        return len(self.instruments)

    def symbol_index(self, symbol: str) -> int:
        try:
            return self.index[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}") from None

    def tier_for(self, instrument: int, notional: int) -> Tier:
        for tier in self.instruments[instrument].tiers:
            if notional <= tier.max_notional:
                return tier
        raise AssertionError("the last tier is unbounded")

    def to_dict(self) -> dict[str, Any]:
        """The file form (from_dict(to_dict()) gives an equal table)."""
        scale = Decimal(10) ** self.money_decimals
        rate = Decimal(RATE_SCALE)
        return {
            "money_decimals": self.money_decimals,
            "instruments": [
                {
                    "symbol": inst.symbol,
                    "tick_size": str(inst.tick_size),
                    "lot_size": str(inst.lot_size),
                    "multiplier": str(inst.multiplier),
                    "kind": inst.kind,
                    "tiers": [_tier_dict(t, scale) for t in inst.tiers],
                }
                | (
                    {"price_limit": str(Decimal(inst.price_limit) / rate)}
                    if inst.price_limit
                    else {}
                )
                for inst in self.instruments
            ],
        }

    @classmethod
    def load(cls, path: str | Path) -> InstrumentTable:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise InstrumentError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            doc = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InstrumentError(f"{path}: not valid {path.suffix[1:] or 'json'}: {exc}") from None
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: Any) -> InstrumentTable:
        if not isinstance(doc, dict):
            raise InstrumentError("top level: expected an object")
        money_decimals = doc.get("money_decimals", MONEY_DECIMALS_DEFAULT)
        if isinstance(money_decimals, bool) or not isinstance(money_decimals, int):
            raise InstrumentError("money_decimals: expected an integer")
        if not 0 <= money_decimals <= 12:
            raise InstrumentError("money_decimals: must be between 0 and 12")
        items = doc.get("instruments")
        if not isinstance(items, list) or not items:
            raise InstrumentError("instruments: expected a non-empty list")
        if len(items) > INSTRUMENTS_MAX:
            raise InstrumentError(f"instruments: more than {INSTRUMENTS_MAX}")
        instruments = [
            _parse_instrument(item, f"instruments[{i}]", money_decimals)
            for i, item in enumerate(items)
        ]
        return cls(instruments, money_decimals)


def _tier_dict(tier: Tier, scale: Decimal) -> dict[str, Any]:
    """A tier in the file form; a per-contract tier as margin_per_contract, without mmr."""
    doc: dict[str, Any] = {
        "max_notional": None
        if tier.max_notional == INT64_MAX
        else str(Decimal(tier.max_notional) / scale)
    }
    if tier.mm_per_contract:
        doc["margin_per_contract"] = {
            "maintenance": str(Decimal(tier.mm_per_contract) / scale),
            "initial": str(Decimal(tier.im_per_contract) / scale),
        }
    else:
        doc["mmr"] = str(Decimal(tier.mmr) / Decimal(RATE_SCALE))
    doc["max_leverage"] = tier.max_leverage
    return doc


def _field(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise InstrumentError(f"{where}.{key}: missing")
    return obj[key]


def _positive_decimal(obj: dict[str, Any], key: str, where: str) -> Decimal:
    try:
        value = parse_decimal(_field(obj, key, where), f"{where}.{key}")
    except FixedPointError as exc:
        raise InstrumentError(str(exc)) from None
    if not value > 0:
        raise InstrumentError(f"{where}.{key}: must be positive")
    return value


def _parse_instrument(item: Any, where: str, money_decimals: int) -> Instrument:
    if not isinstance(item, dict):
        raise InstrumentError(f"{where}: expected an object")
    symbol = _field(item, "symbol", where)
    if not isinstance(symbol, str) or not symbol or not symbol.isprintable() or " " in symbol:
        raise InstrumentError(f"{where}.symbol: expected a non-empty symbol without spaces")
    where = f"{where} ({symbol})"
    tick_size = _positive_decimal(item, "tick_size", where)
    lot_size = _positive_decimal(item, "lot_size", where)
    multiplier = (
        _positive_decimal(item, "multiplier", where) if "multiplier" in item else Decimal(1)
    )
    tick_value_exact = (
        Fraction(tick_size) * Fraction(lot_size) * Fraction(multiplier) * 10**money_decimals
    )
    if tick_value_exact.denominator != 1:
        raise InstrumentError(
            f"{where}.tick_size: tick_size x lot_size x multiplier ({tick_value_exact}"
            f" money units) must be a whole number of money units at money_decimals"
            f" {money_decimals}"
        )
    tick_value = tick_value_exact.numerator
    if tick_value > 2**40:
        raise InstrumentError(f"{where}.lot_size: one lot moving one tick is worth too much")
    kind = item.get("kind", KIND_DEFAULT)
    if kind not in INSTRUMENT_KINDS:
        raise InstrumentError(f"{where}.kind: expected one of {INSTRUMENT_KINDS}, got {kind!r}")
    tiers_raw = _field(item, "tiers", where)
    price_limit = 0
    if "price_limit" in item:
        price_limit = _rate_of(item["price_limit"], f"{where}.price_limit")
        if not 0 < price_limit < RATE_SCALE:
            raise InstrumentError(f"{where}.price_limit: must be above 0 and below 1")
    return Instrument(
        symbol,
        tick_size,
        lot_size,
        multiplier,
        tick_value,
        parse_tiers(tiers_raw, f"{where}.tiers", money_decimals),
        kind,
        price_limit,
    )


def _rate_of(raw: Any, where: str) -> int:
    try:
        return to_rate(parse_decimal(raw, where), where)
    except FixedPointError as exc:
        raise InstrumentError(str(exc)) from None


def _money_of(raw: Any, where: str, money_decimals: int) -> int:
    """A positive amount of money as whole money units at money_decimals, exactly."""
    try:
        value = parse_decimal(raw, where)
    except FixedPointError as exc:
        raise InstrumentError(str(exc)) from None
    units = Fraction(value) * 10**money_decimals
    if units.denominator != 1 or not 0 < units <= PER_CONTRACT_MAX:
        raise InstrumentError(
            f"{where}: must be a positive amount at money_decimals {money_decimals}"
            f" (at most {PER_CONTRACT_MAX} money units)"
        )
    return units.numerator


def _per_contract_tier(tier: dict[str, Any], at: str, money_decimals: int) -> Tier:
    """A tier stating margin as a fixed amount per contract (lot), the CME convention."""
    if "mmr" in tier:
        raise InstrumentError(f"{at}: give mmr or margin_per_contract, not both")
    amounts = tier["margin_per_contract"]
    if not isinstance(amounts, dict) or set(amounts) != {"maintenance", "initial"}:
        raise InstrumentError(
            f"{at}.margin_per_contract: expected {{maintenance, initial}} amounts per contract"
        )
    maintenance = _money_of(
        amounts["maintenance"], f"{at}.margin_per_contract.maintenance", money_decimals
    )
    initial = _money_of(amounts["initial"], f"{at}.margin_per_contract.initial", money_decimals)
    if initial < maintenance:
        raise InstrumentError(
            f"{at}.margin_per_contract.initial: must not be below the maintenance amount"
        )
    if tier.get("max_notional") is not None:
        raise InstrumentError(f"{at}.max_notional: a per-contract tier is unbounded (null)")
    lev = tier.get("max_leverage", LEVERAGE_MAX)
    if isinstance(lev, bool) or not isinstance(lev, int) or not 1 <= lev <= LEVERAGE_MAX:
        raise InstrumentError(f"{at}.max_leverage: expected an integer from 1 to {LEVERAGE_MAX}")
    return Tier(INT64_MAX, 0, lev, 0, maintenance, initial)


def parse_tiers(tiers_raw: Any, where: str, money_decimals: int) -> tuple[Tier, ...]:
    """An instrument's tiers from the file form, checked (also a margin change's new tiers)."""
    if not isinstance(tiers_raw, list) or not tiers_raw or len(tiers_raw) > TIERS_MAX:
        raise InstrumentError(f"{where}: expected a list of 1 to {TIERS_MAX} tiers")
    if any(isinstance(t, dict) and "margin_per_contract" in t for t in tiers_raw):
        if len(tiers_raw) != 1:
            raise InstrumentError(
                f"{where}: margin per contract is one tier (the amount does not depend on size)"
            )
        return (_per_contract_tier(tiers_raw[0], f"{where}[0]", money_decimals),)
    money_scale = 10**money_decimals
    tiers: list[Tier] = []
    prev_bound = 0
    prev_mmr = 0
    cum = 0
    for k, tier in enumerate(tiers_raw):
        at = f"{where}[{k}]"
        if not isinstance(tier, dict):
            raise InstrumentError(f"{at}: expected an object")
        last = k == len(tiers_raw) - 1
        # TOML has no null: there the unbounded last tier simply omits max_notional.
        bound_raw = tier.get("max_notional") if last else _field(tier, "max_notional", at)
        if bound_raw is None:
            if not last:
                raise InstrumentError(f"{at}.max_notional: only the last tier may be unbounded")
            bound = INT64_MAX
        else:
            try:
                bound_dec = parse_decimal(bound_raw, f"{at}.max_notional")
            except FixedPointError as exc:
                raise InstrumentError(str(exc)) from None
            bound_units = Fraction(bound_dec) * money_scale
            if bound_units.denominator != 1 or not 0 < bound_units < INT64_MAX:
                raise InstrumentError(
                    f"{at}.max_notional: must be a positive amount at money_decimals"
                    f" {money_decimals}"
                )
            bound = bound_units.numerator
            if last:
                raise InstrumentError(f"{at}.max_notional: the last tier must be null (unbounded)")
        if bound <= prev_bound:
            raise InstrumentError(f"{at}.max_notional: bounds must increase")
        try:
            mmr = to_rate(parse_decimal(_field(tier, "mmr", at), f"{at}.mmr"), f"{at}.mmr")
        except FixedPointError as exc:
            raise InstrumentError(str(exc)) from None
        if not 0 <= mmr < RATE_SCALE:
            raise InstrumentError(f"{at}.mmr: must be at least 0 and below 1")
        if mmr < prev_mmr:
            raise InstrumentError(f"{at}.mmr: must not decrease from one tier to the next")
        lev = _field(tier, "max_leverage", at)
        if isinstance(lev, bool) or not isinstance(lev, int) or not 1 <= lev <= 10_000:
            raise InstrumentError(f"{at}.max_leverage: expected an integer from 1 to 10000")
        if tiers and lev > tiers[-1].max_leverage:
            raise InstrumentError(f"{at}.max_leverage: must not increase from one tier to the next")
        if k > 0:
            step = Fraction(prev_bound * (mmr - prev_mmr), RATE_SCALE)
            if step.denominator != 1:
                raise InstrumentError(
                    f"{at}.mmr: the maintenance amount {where}[{k - 1}].max_notional x"
                    f" (mmr change) is not a whole number of money units"
                )
            cum += step.numerator
        tiers.append(Tier(bound, mmr, lev, cum))
        prev_bound, prev_mmr = bound, mmr
    return tuple(tiers)
