"""Waterfall profiles: the venue's liquidation rules, read from a TOML file.

A profile selects who pays, in which order and at what rates (the order is
engine.waterfall.run's). Rates are exact decimals turned into numerators over RATE_SCALE by
engine.book.fixed; money amounts (the fund floor) stay Decimal until the instrument table
fixes the money scale. Shipped profiles live in engine/data/profiles/; `binance-like` is
the default. The house's own accounts (funds, the unwind counterparty) are never
liquidated or deleveraged: `is_reserved` / `reserved_mask` tell them apart.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from engine.book.fixed import RATE_SCALE, FixedPointError, parse_decimal, to_rate
from engine.book.limits import INT64_MAX, RESERVED_ACCOUNT_BASE, RESERVED_ACCOUNT_SPAN
from engine.collateral.rules import COLLATERAL_SALES, CollateralAssetRule, CollateralRules
from engine.waterfall.exchange_rules import ExchangeRules, ExchangeRulesError, parse_exchange_rules

PROFILES_DIR = Path(__file__).resolve().parent.parent / "data" / "profiles"
DEFAULT_PROFILE = "binance-like"
ADL_POLICIES = ("pnl_leverage", "hyperliquid", "pro_rata", "risk_water_filling")
ADL_POLICIES_IMPLEMENTED = ADL_POLICIES
ADL_PRICES = ("bankruptcy",)
ADL_QUANTITIES = ("fewest", "whole")
SOCIALIZED_BASES = ("profit", "open_interest")
SOCIALIZED_BASES_IMPLEMENTED = ("profit",)
FUND_MODES = ("shared", "per_instrument")
FUND_ACCOUNT_ID_DEFAULT = RESERVED_ACCOUNT_BASE
UNWIND_ACCOUNT_ID_DEFAULT = RESERVED_ACCOUNT_BASE + RESERVED_ACCOUNT_SPAN


class ProfileError(ValueError):
    """A malformed profile; the message names the offending key."""


@dataclass(frozen=True)
class Profile:
    name: str
    warning_rate: int  # margin-call level over RATE_SCALE
    liquidation_fee_rate: int  # over RATE_SCALE, of the notional at the mark
    partial_liquidation: bool
    partial_step_rate: int  # fraction of each position taken over per step, over RATE_SCALE
    fund_account_id: int
    unwind_account_id: int
    fund_mode: str
    fund_floor: Decimal  # currency units; ADL / socialized loss start below it
    adl_enabled: bool
    adl_policy: str
    adl_price: str  # the queue closes lots at the defaulter's bankruptcy price
    adl_quantity: str  # "fewest" lots that cover the shortfall, or "whole" positions
    socialized_loss_enabled: bool
    socialized_loss_basis: str
    negative_balance_protection: bool  # False: debt mode, the deficit stays on the account
    default_fund_layers: tuple[str, ...]  # documented CCP layers (see ccp.toml)
    # Risk models beyond USDT-margined cross accounts (None: not used); see the block below.
    collateral: CollateralRules | None = None
    stop_out: StopOutRules | None = None
    isolated: IsolatedRules | None = None
    # The account model the profile selects ([model] kind); asset-liability rules when
    # that model is "asset_liability" (engine.margin), else None.
    model: str = "futures"
    asset_liability: AssetLiabilityRules | None = None
    # Futures exchange conventions, the `[exchange]` section (engine.waterfall.exchange_rules).
    exchange: ExchangeRules = ExchangeRules()

    def fund_floor_units(self, money_decimals: int) -> int:
        units = Fraction(self.fund_floor) * 10**money_decimals
        if units.denominator != 1 or not 0 <= units <= INT64_MAX:
            raise ProfileError(
                f"insurance_fund.floor: {self.fund_floor} is not a whole number of money units"
                f" at money_decimals {money_decimals}"
            )
        return units.numerator

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_dict(doc, default_name=path.stem)

    @classmethod
    def shipped(cls, name: str = DEFAULT_PROFILE) -> Profile:
        path = PROFILES_DIR / f"{name}.toml"
        if not path.is_file():
            known = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
            raise ProfileError(f"no shipped profile {name!r}; shipped: {known}")
        return cls.load(path)

    @classmethod
    def from_dict(cls, doc: Any, default_name: str = "custom") -> Profile:
        if not isinstance(doc, dict):
            raise ProfileError("top level: expected a table")
        margin = _table(doc, "margin")
        liq = _table(doc, "liquidation")
        fund = _table(doc, "insurance_fund")
        adl = _table(doc, "adl")
        social = _table(doc, "socialized_loss")
        negative = _table(doc, "negative_balance")
        ccp = _table(doc, "ccp")
        name = doc.get("name", default_name)
        if not isinstance(name, str) or not name:
            raise ProfileError("name: expected a non-empty string")
        warning_rate = _rate(margin, "warning_level", "margin", "0.8")
        if not 0 < warning_rate <= RATE_SCALE:
            raise ProfileError("margin.warning_level: must be above 0 and at most 1")
        fee_rate = _rate(liq, "fee_rate", "liquidation", "0")
        if not 0 <= fee_rate < RATE_SCALE:
            raise ProfileError("liquidation.fee_rate: must be at least 0 and below 1")
        step = _rate(liq, "step_fraction", "liquidation", "1")
        if not 0 < step <= RATE_SCALE:
            raise ProfileError("liquidation.step_fraction: must be above 0 and at most 1")
        fund_mode = _choice(fund, "mode", "insurance_fund", FUND_MODES, "shared")
        if fund_mode != "shared":
            raise ProfileError("insurance_fund.mode: only 'shared' is implemented so far")
        fund_id = _account_id(fund, "account_id", FUND_ACCOUNT_ID_DEFAULT)
        unwind_id = _account_id(fund, "unwind_account_id", UNWIND_ACCOUNT_ID_DEFAULT)
        if fund_id == unwind_id:
            raise ProfileError("insurance_fund.unwind_account_id: must differ from account_id")
        try:
            floor = parse_decimal(fund.get("floor", "0"), "insurance_fund.floor")
        except FixedPointError as exc:
            raise ProfileError(str(exc)) from None
        if not floor >= 0:
            raise ProfileError("insurance_fund.floor: must not be negative")
        policy = _choice(adl, "policy", "adl", ADL_POLICIES, "pnl_leverage")
        adl_enabled = _bool(adl, "enabled", "adl", True)
        adl_price = _choice(adl, "price", "adl", ADL_PRICES, "bankruptcy")
        adl_quantity = _choice(adl, "quantity", "adl", ADL_QUANTITIES, "fewest")
        if adl_enabled and policy not in ADL_POLICIES_IMPLEMENTED:
            raise ProfileError(
                f"adl.policy: {policy!r} is not implemented yet (have {ADL_POLICIES_IMPLEMENTED})"
            )
        basis = _choice(social, "basis", "socialized_loss", SOCIALIZED_BASES, "profit")
        social_enabled = _bool(social, "enabled", "socialized_loss", True)
        if social_enabled and basis not in SOCIALIZED_BASES_IMPLEMENTED:
            raise ProfileError(f"socialized_loss.basis: {basis!r} is not implemented yet")
        model, asset_liability = _model(doc)
        layers = ccp.get("layers", [])
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise ProfileError("ccp.layers: expected a list of strings")
        # ----- futures exchange conventions (engine.exchange)
        try:
            exchange = parse_exchange_rules(doc.get("exchange", {}))
        except ExchangeRulesError as exc:
            raise ProfileError(str(exc)) from None
        return cls(
            exchange=exchange,
            name=name,
            warning_rate=warning_rate,
            liquidation_fee_rate=fee_rate,
            partial_liquidation=_bool(liq, "partial", "liquidation", False),
            partial_step_rate=step,
            fund_account_id=fund_id,
            unwind_account_id=unwind_id,
            fund_mode=fund_mode,
            fund_floor=floor,
            adl_enabled=adl_enabled,
            adl_policy=policy,
            adl_price=adl_price,
            adl_quantity=adl_quantity,
            socialized_loss_enabled=social_enabled,
            socialized_loss_basis=basis,
            negative_balance_protection=_bool(negative, "protection", "negative_balance", True),
            default_fund_layers=tuple(layers),
            collateral=_collateral_rules(doc),
            stop_out=_stop_out_rules(doc),
            isolated=_isolated_rules(doc),
            model=model,
            asset_liability=asset_liability,
        )


# ----- risk models the profile selects: [collateral], [stop_out], [isolated] -------------
# Multi-asset collateral (engine.collateral), FX stop-out (engine.waterfall.stop_out) and isolated
# positions with auto-add margin (engine.risk.isolated_margin). Each section is optional; a
# section present with `enabled = false` is the same as none.
ISOLATED_SUBACCOUNT_BASE_DEFAULT = 2**61
AUTO_ADD_TARGETS = ("initial", "maintenance")


@dataclass(frozen=True)
class StopOutRules:
    margin_call_level: int  # equity / used margin, over RATE_SCALE
    stop_out_level: int  # at or below it the largest loss is closed, one position at a time


@dataclass(frozen=True)
class IsolatedRules:
    auto_add_margin: bool  # top up a breached isolated position from the owner's free balance
    auto_add_target: str  # "initial": up to its initial margin; "maintenance": just safe
    subaccount_base: int  # isolated positions live in sub-accounts from this id up


def _section(doc: dict[str, Any], key: str) -> dict[str, Any] | None:
    table = _table(doc, key)
    if not table or not _bool(table, "enabled", key, True):
        return None
    return table


def _collateral_rules(doc: dict[str, Any]) -> CollateralRules | None:
    table = _section(doc, "collateral")
    if table is None:
        return None
    rows = table.get("assets", [])
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ProfileError("collateral.assets: expected a non-empty list of tables")
    assets = []
    for i, row in enumerate(rows):
        where = f"collateral.assets[{i}]"
        symbol = row.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise ProfileError(f"{where}.symbol: expected a non-empty string")
        steps = []
        for key in ("qty_step", "price_step"):
            try:
                step = parse_decimal(row.get(key, ""), f"{where}.{key}")
            except FixedPointError as exc:
                raise ProfileError(str(exc)) from None
            if not step > 0:
                raise ProfileError(f"{where}.{key}: must be positive")
            steps.append(step)
        haircut = _rate(row, "haircut", where, "0")
        if not 0 <= haircut < RATE_SCALE:
            raise ProfileError(f"{where}.haircut: must be at least 0 and below 1")
        assets.append(CollateralAssetRule(symbol, steps[0], steps[1], haircut))
    if len({a.symbol for a in assets}) != len(assets):
        raise ProfileError("collateral.assets: a symbol is listed twice")
    sale = _choice(table, "sale", "collateral", COLLATERAL_SALES, "haircut_value")
    return CollateralRules(tuple(assets), sale)


def _stop_out_rules(doc: dict[str, Any]) -> StopOutRules | None:
    table = _section(doc, "stop_out")
    if table is None:
        return None
    call = _rate(table, "margin_call_level", "stop_out", "1")
    stop = _rate(table, "stop_out_level", "stop_out", "0.2")
    if not 0 < stop <= call <= 100 * RATE_SCALE:
        raise ProfileError(
            "stop_out: need 0 < stop_out_level <= margin_call_level <= 100 (10,000%)"
        )
    return StopOutRules(call, stop)


def _isolated_rules(doc: dict[str, Any]) -> IsolatedRules | None:
    table = _section(doc, "isolated")
    if table is None:
        return None
    base = table.get("subaccount_base", ISOLATED_SUBACCOUNT_BASE_DEFAULT)
    if isinstance(base, bool) or not isinstance(base, int) or not 0 < base < RESERVED_ACCOUNT_BASE:
        raise ProfileError(
            f"isolated.subaccount_base: expected an id from 1 below 2^62, got {base!r}"
        )
    return IsolatedRules(
        auto_add_margin=_bool(table, "auto_add_margin", "isolated", True),
        auto_add_target=_choice(table, "auto_add_target", "isolated", AUTO_ADD_TARGETS, "initial"),
        subaccount_base=base,
    )


# ----- the account model: futures positions, or asset-liability accounts -------------------
# [model] kind = "futures" (the default: positions against one money balance) or
# "asset_liability" (margin financing and spot margin: balances in several assets and
# borrowed assets owed, engine.margin), whose levels live in [asset_liability].
MODEL_KINDS = ("futures", "asset_liability")
LEVEL_MAX = 100 * RATE_SCALE  # a maintenance-ratio level of at most 100 (10,000%)
CALL_DEADLINE_DAYS_MAX = 365


@dataclass(frozen=True)
class AssetLiabilityRules:
    """Levels of the maintenance ratio (collateral value / liability value, both money
    units; engine.margin.ratio), each over RATE_SCALE: a margin call below `call_level`,
    forced liquidation below `liquidation_level`, and also when a call has stood for more
    than `call_deadline_days` settlement days without being restored."""

    call_level: int
    liquidation_level: int
    call_deadline_days: int | None  # None: a call alone never leads to a forced sale


def _model(doc: dict[str, Any]) -> tuple[str, AssetLiabilityRules | None]:
    kind = _choice(_table(doc, "model"), "kind", "model", MODEL_KINDS, "futures")
    table = _table(doc, "asset_liability")
    if kind != "asset_liability":
        if table:
            raise ProfileError("asset_liability: only with [model] kind = 'asset_liability'")
        return kind, None
    call = _rate(table, "call_level", "asset_liability", "1.3")
    liquidation = _rate(table, "liquidation_level", "asset_liability", "1.1")
    if not 0 < liquidation <= call <= LEVEL_MAX:
        raise ProfileError("asset_liability: need 0 < liquidation_level <= call_level <= 100")
    deadline = table.get("call_deadline_days")
    if deadline is not None and (
        isinstance(deadline, bool)
        or not isinstance(deadline, int)
        or not 0 <= deadline <= CALL_DEADLINE_DAYS_MAX
    ):
        raise ProfileError(
            f"asset_liability.call_deadline_days: expected 0 to {CALL_DEADLINE_DAYS_MAX} days"
        )
    return kind, AssetLiabilityRules(call, liquidation, deadline)


def _table(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ProfileError(f"{key}: expected a table")
    return value


def _rate(table: dict[str, Any], key: str, where: str, default: str) -> int:
    try:
        return to_rate(parse_decimal(table.get(key, default), f"{where}.{key}"), f"{where}.{key}")
    except FixedPointError as exc:
        raise ProfileError(str(exc)) from None


def _bool(table: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ProfileError(f"{where}.{key}: expected true or false")
    return value


def _choice(
    table: dict[str, Any], key: str, where: str, allowed: tuple[str, ...], default: str
) -> str:
    value = table.get(key, default)
    if value not in allowed:
        raise ProfileError(f"{where}.{key}: expected one of {allowed}, got {value!r}")
    return str(value)


def _account_id(table: dict[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
        raise ProfileError(f"insurance_fund.{key}: expected an account id (0 to 2^63-1)")
    return value


def is_reserved(account_id: int, profile: Profile) -> bool:
    """House book accounts (funds, unwind counterparty) are never liquidated or deleveraged."""
    return account_id >= RESERVED_ACCOUNT_BASE or account_id in (
        profile.fund_account_id,
        profile.unwind_account_id,
    )


def reserved_mask(account_ids: np.ndarray, profile: Profile) -> np.ndarray:
    """is_reserved over an array of account ids."""
    ids = np.asarray(account_ids, dtype=np.int64)
    return (
        (ids >= RESERVED_ACCOUNT_BASE)
        | (ids == profile.fund_account_id)
        | (ids == profile.unwind_account_id)
    )
