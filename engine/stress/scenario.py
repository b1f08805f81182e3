"""Reading a stress scenario: a TOML or JSON document, or a built-in name, into a Scenario
(engine.stress.scenario_model). The one built-in, `2025-10-11`, is at the end of this file,
written as a document in the same format; with it the module runs past 400 lines.

A scenario document:

    name = "my-crash"
    start = 2025-10-10T12:00:00Z  # t = 0 in UTC (a TOML datetime or an ISO 8601 string with
                                # its offset); default 1970-01-01T00:00:00Z, the Unix epoch
    duration_s = 86400          # the path runs from t = 0 to duration_s
    step_s = 60                 # one cascade step per step_s (the charts' "per minute")
    profile = "binance-like"    # a shipped profile name, a profile file, or an inline table
    insurance_fund = "5000000"  # currency units deposited into the fund at t = 0
    instruments = "inst.json"   # an instrument file, or an inline table (engine.book.instruments)

    [impact]                    # defaults for every market; a market may override each key
    k = "0.02"                  # impact = k * (volume / depth) ^ alpha, as a fraction of price
    alpha = "0.5"
    recovery_half_life_s = 600  # the impact decays back to the path; 0: it never does

    [book]                      # the book the scenario runs on
    accounts = 100000           # a synthetic crash book (engine.stress.synthetic.crash_book) ...
    seed = 11
    long_share = "0.75"
    reference_accounts = 1600000  # depth and fund are sized for this many accounts
    # snapshot = "book.arrow"   # ... or a snapshot (engine.io.snapshot)

    [[markets]]
    symbol = "BTCUSDT"
    start = "122000"            # price at t = 0 (default: the book's mark)
    depth = "2000000000"        # currency units of volume that move the price by k
    weight = "0.3"              # share of the synthetic book's positions
    moves = [[0, "0"], [3600, "-0.05"]]   # [t_s, change from start], linear in between
    shock = {at_s = 1800, move = "-0.1"}  # an extra instant move from at_s on
    # replay = "btc.csv"        # instead of moves: columns t_s, price (last tick at or before t)

Every number is a decimal string or an integer (TOML floats are refused: they are not exact).
Paths are exact fractions; the simulator rounds them to ticks. When the book has fewer
accounts than `reference_accounts`, `scaled()` shrinks depth and fund in proportion so a
small book sees the same cascade as the full one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tomllib
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from engine.book.fixed import FixedPointError, parse_decimal, parse_fraction
from engine.book.instruments import InstrumentError, InstrumentTable
from engine.book.limits import INT64_MAX
from engine.stress.scenario_model import (
    DEFAULT_START,
    BookSpec,
    ImpactModel,
    MarketPath,
    Scenario,
    ScenarioError,
)
from engine.waterfall.profile import DEFAULT_PROFILE, Profile, ProfileError

STEPS_MAX = 1_000_000
DURATION_MAX_S = 366 * 86_400


# ----- loading ---------------------------------------------------------------------------
def load_scenario(source: str | Path) -> Scenario:
    """A built-in scenario by name, or a .toml / .json file."""
    if isinstance(source, str) and source in BUILTIN:
        canonical = json.dumps(BUILTIN[source], sort_keys=True).encode()
        return replace(
            scenario_from_dict(BUILTIN[source], None),
            source=f"built-in {source}",
            sha256=hashlib.sha256(canonical).hexdigest(),
        )
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as exc:
        known = ", ".join(sorted(BUILTIN))
        raise ScenarioError(
            f"{path}: cannot read ({exc.strerror}); built-in scenarios: {known}"
        ) from None
    try:
        doc = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{path}: not valid {path.suffix[1:] or 'json'}: {exc}") from None
    scenario = scenario_from_dict(doc, path.parent, default_name=path.stem)
    return replace(scenario, source=str(path), sha256=hashlib.sha256(text.encode()).hexdigest())


def scenario_from_dict(doc: Any, base: Path | None, default_name: str = "custom") -> Scenario:
    """`base` resolves relative file names (None: files are refused, as for built-ins)."""
    if not isinstance(doc, dict):
        raise ScenarioError("top level: expected a table")
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ScenarioError("name: expected a non-empty string")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise ScenarioError("description: expected a string")
    duration = _int(doc, "duration_s", "", 0, DURATION_MAX_S, 0)
    step = _int(doc, "step_s", "", 1, DURATION_MAX_S, 60)
    if duration // step + 1 > STEPS_MAX:
        raise ScenarioError(f"duration_s / step_s: more than {STEPS_MAX} steps")
    impact_doc = _table(doc, "impact")
    impact = _impact(impact_doc, "impact", ImpactModel(Decimal("0"), Decimal("0.5"), 0))
    book_doc = _table(doc, "book")
    book = _book(book_doc, base)
    markets_doc = doc.get("markets")
    if not isinstance(markets_doc, list) or not markets_doc:
        raise ScenarioError("markets: expected a non-empty list of tables")
    markets = tuple(_market(m, f"markets[{i}]", impact, base) for i, m in enumerate(markets_doc))
    symbols = [m.symbol for m in markets]
    if len(set(symbols)) != len(symbols):
        raise ScenarioError("markets: a symbol appears twice")
    instruments = _instruments(doc.get("instruments"), base)
    if instruments is None and book.snapshot is None:
        raise ScenarioError("instruments: required unless the book is a snapshot")
    if instruments is not None:
        for symbol in symbols:
            if symbol not in instruments.index:
                raise ScenarioError(f"markets: {symbol!r} is not in the instruments")
        if book.snapshot is None:
            missing = [m.symbol for m in markets if m.start is None]
            if missing:
                raise ScenarioError(f"markets ({missing[0]}).start: required for a synthetic book")
            unpriced = [s for s in instruments.index if s not in symbols]
            if unpriced:
                raise ScenarioError(
                    f"markets: {unpriced[0]!r} has no market (a synthetic book needs every"
                    " instrument's start price)"
                )
    return Scenario(
        name=name,
        start=_start(doc.get("start")),
        description=description,
        duration_s=duration,
        step_s=step,
        profile=_profile(doc.get("profile", DEFAULT_PROFILE), base),
        insurance_fund=_decimal(doc, "insurance_fund", "", "0", minimum=Decimal(0)),
        instruments=instruments,
        markets=markets,
        book=book,
    )


def _start(value: Any) -> datetime:
    """The scenario's t = 0 as a UTC instant; an instant without an offset is refused."""
    if value is None:
        return DEFAULT_START
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ScenarioError(
                f"start: expected an ISO 8601 time such as 2025-10-10T12:00:00Z, got {value!r}"
            ) from None
    if not isinstance(value, datetime):
        raise ScenarioError("start: expected a date-time with its UTC offset")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScenarioError(f"start: {value.isoformat()} has no UTC offset (add Z or +00:00)")
    return value.astimezone(UTC)


def _table(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ScenarioError(f"{key}: expected a table")
    return value


def _where(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _decimal(
    doc: dict[str, Any],
    key: str,
    where: str,
    default: str | None,
    *,
    minimum: Decimal | None = None,
    above: Decimal | None = None,
) -> Decimal:
    at = _where(where, key)
    if key not in doc and default is None:
        raise ScenarioError(f"{at}: missing")
    try:
        value = parse_decimal(doc.get(key, default), at)
    except FixedPointError as exc:
        raise ScenarioError(str(exc)) from None
    if minimum is not None and not value >= minimum:
        raise ScenarioError(f"{at}: must be at least {minimum}")
    if above is not None and not value > above:
        raise ScenarioError(f"{at}: must be above {above}")
    return value


def _int(doc: dict[str, Any], key: str, where: str, lo: int, hi: int, default: int | None) -> int:
    at = _where(where, key)
    value = doc.get(key, default)
    if value is None:
        raise ScenarioError(f"{at}: missing")
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ScenarioError(f"{at}: expected an integer from {lo} to {hi}")
    return value


def _change(value: Any, at: str) -> Fraction:
    try:
        change = parse_fraction(value, at)
    except FixedPointError as exc:
        raise ScenarioError(str(exc)) from None
    if not change > -1:
        raise ScenarioError(f"{at}: a change must be above -1 (the price stays positive)")
    return change


def _impact(doc: dict[str, Any], where: str, default: ImpactModel) -> ImpactModel:
    return ImpactModel(
        k=_decimal(doc, "k", where, str(default.k), minimum=Decimal(0)),
        alpha=_decimal(doc, "alpha", where, str(default.alpha), above=Decimal(0)),
        recovery_half_life_s=_int(
            doc, "recovery_half_life_s", where, 0, DURATION_MAX_S, default.recovery_half_life_s
        ),
    )


def _book(doc: dict[str, Any], base: Path | None) -> BookSpec:
    snapshot = doc.get("snapshot")
    if snapshot is not None:
        if not isinstance(snapshot, str):
            raise ScenarioError("book.snapshot: expected a file name")
        snapshot_path: Path | None = _file(snapshot, base, "book.snapshot")
    else:
        snapshot_path = None
    accounts = _int(doc, "accounts", "book", 2, 100_000_000, 10_000)
    long_share = _decimal(doc, "long_share", "book", "0.75", minimum=Decimal(0))
    if not long_share <= 1:
        raise ScenarioError("book.long_share: must be at most 1")
    return BookSpec(
        accounts=accounts,
        seed=_int(doc, "seed", "book", 0, INT64_MAX, 11),
        long_share=long_share,
        reference_accounts=_int(doc, "reference_accounts", "book", 1, 100_000_000, accounts),
        snapshot=snapshot_path,
    )


def _file(name: str, base: Path | None, at: str) -> Path:
    if base is None:
        raise ScenarioError(f"{at}: a built-in scenario names no files")
    return base / name


def _market(doc: Any, where: str, impact: ImpactModel, base: Path | None) -> MarketPath:
    if not isinstance(doc, dict):
        raise ScenarioError(f"{where}: expected a table")
    symbol = doc.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise ScenarioError(f"{where}.symbol: expected a symbol")
    where = f"{where} ({symbol})"
    start = _decimal(doc, "start", where, None, above=Decimal(0)) if "start" in doc else None
    moves = _moves(doc.get("moves", []), f"{where}.moves")
    shock = None
    if "shock" in doc:
        shock_doc = doc["shock"]
        if not isinstance(shock_doc, dict):
            raise ScenarioError(f"{where}.shock: expected a table {{at_s, move}}")
        at = _int(shock_doc, "at_s", f"{where}.shock", 0, DURATION_MAX_S, None)
        shock = (at, _change(shock_doc.get("move"), f"{where}.shock.move"))
    replay: tuple[tuple[int, Fraction], ...] = ()
    if "replay" in doc:
        if moves:
            raise ScenarioError(f"{where}: give either moves or replay, not both")
        if not isinstance(doc["replay"], str):
            raise ScenarioError(f"{where}.replay: expected a file name")
        replay = _replay(_file(doc["replay"], base, f"{where}.replay"), f"{where}.replay")
        if start is None:
            start = Decimal(replay[0][1].numerator) / Decimal(replay[0][1].denominator)
    return MarketPath(
        symbol=symbol,
        start=start,
        depth=_decimal(doc, "depth", where, "1000000000000", above=Decimal(0)),
        impact=_impact(doc, where, impact),
        weight=_decimal(doc, "weight", where, "1", minimum=Decimal(0)),
        moves=moves,
        shock=shock,
        replay=replay,
    )


def _moves(value: Any, where: str) -> tuple[tuple[int, Fraction], ...]:
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: expected a list of [t_s, change]")
    points: list[tuple[int, Fraction]] = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, list) or len(item) != 2:
            raise ScenarioError(f"{at}: expected [t_s, change]")
        t = item[0]
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= DURATION_MAX_S:
            raise ScenarioError(f"{at}: t_s must be an integer from 0 to {DURATION_MAX_S}")
        if points and not t > points[-1][0]:
            raise ScenarioError(f"{at}: times must increase")
        points.append((t, _change(item[1], at)))
    return tuple(points)


def _replay(path: Path, where: str) -> tuple[tuple[int, Fraction], ...]:
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise ScenarioError(f"{where}: {path}: cannot read ({exc.strerror})") from None
    ticks: list[tuple[int, Fraction]] = []
    for i, row in enumerate(rows):
        at = f"{path} row {i + 1}"
        try:
            t = int(row.get("t_s") or "")
            price = parse_fraction(row.get("price"), f"{at} price")
        except ValueError as exc:
            raise ScenarioError(f"{at}: expected columns t_s (integer) and price ({exc})") from None
        if ticks and not t > ticks[-1][0]:
            raise ScenarioError(f"{at}: t_s must increase")
        if not price > 0:
            raise ScenarioError(f"{at}: price must be positive")
        ticks.append((t, price))
    if not ticks:
        raise ScenarioError(f"{where}: {path} has no ticks")
    return tuple(ticks)


def _profile(value: Any, base: Path | None) -> Profile:
    try:
        if isinstance(value, dict):
            return Profile.from_dict(value)
        if not isinstance(value, str):
            raise ScenarioError("profile: expected a shipped name, a file name or a table")
        if value.endswith(".toml"):
            return Profile.load(_file(value, base, "profile"))
        return Profile.shipped(value)
    except ProfileError as exc:
        raise ScenarioError(f"profile: {exc}") from None


def _instruments(value: Any, base: Path | None) -> InstrumentTable | None:
    if value is None:
        return None
    try:
        if isinstance(value, dict):
            return InstrumentTable.from_dict(value)
        if isinstance(value, str):
            return InstrumentTable.load(_file(value, base, "instruments"))
    except InstrumentError as exc:
        raise ScenarioError(f"instruments: {exc}") from None
    raise ScenarioError("instruments: expected a file name or a table")


# ----- the built-in 2025-10-11 scenario ---------------------------------------------------
# About 24 hours from 2025-10-10 12:00 UTC. The crash came in the evening (UTC): a slide
# from about 20:00, the fall between 21:00 and 21:20, then a partial recovery. Levels as
# reported for the day (BTC ~122k -> ~102k, ETH -22%, alts -60% to -99% at their lows); the alts are
# synthetic names, not claims about any real coin. Depth and fund are sized for 1.6 million
# accounts (the reported count of liquidated traders) and scale down with the book.
_CRASH_T = (0, 28_800, 32_400, 33_600, 34_800, 43_200, 86_400)  # 12:00, 20:00, 21:00 UTC, ...

_BTC_TIERS = [
    {"max_notional": "50000", "mmr": "0.004", "max_leverage": 125},
    {"max_notional": "600000", "mmr": "0.005", "max_leverage": 100},
    {"max_notional": "3000000", "mmr": "0.0065", "max_leverage": 75},
    {"max_notional": "12000000", "mmr": "0.01", "max_leverage": 50},
    {"max_notional": "70000000", "mmr": "0.02", "max_leverage": 25},
    {"max_notional": None, "mmr": "0.05", "max_leverage": 10},
]
_ALT_TIERS = [
    {"max_notional": "5000", "mmr": "0.01", "max_leverage": 50},
    {"max_notional": "50000", "mmr": "0.015", "max_leverage": 25},
    {"max_notional": "200000", "mmr": "0.025", "max_leverage": 20},
    {"max_notional": "1000000", "mmr": "0.05", "max_leverage": 10},
    {"max_notional": None, "mmr": "0.1", "max_leverage": 5},
]


def _crash_market(
    symbol: str, start: str, low: str, depth: str, weight: str, recover: str
) -> dict[str, Any]:
    # low: the change at the bottom; recover: the share of the fall still lost at the end.
    low_f = Fraction(low)
    slide = max(low_f / 8, Fraction(-3, 100))
    changes = [Fraction(0), slide, low_f / 2, low_f, low_f * Fraction(recover) * Fraction(5, 4)]
    changes += [low_f * Fraction(recover) * Fraction(11, 10), low_f * Fraction(recover)]
    return {
        "symbol": symbol,
        "start": start,
        "depth": depth,
        "weight": weight,
        "moves": [[t, _decimal_text(c)] for t, c in zip(_CRASH_T, changes, strict=True)],
    }


def _decimal_text(value: Fraction) -> str:
    return str((Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("1e-6")))


_ALTS = (
    ("ALT1USDT", "25.00000", "-0.60", "400000000", "0.05"),
    ("ALT2USDT", "8.00000", "-0.65", "300000000", "0.04"),
    ("ALT3USDT", "3.50000", "-0.70", "250000000", "0.04"),
    ("ALT4USDT", "1.20000", "-0.75", "200000000", "0.03"),
    ("ALT5USDT", "0.80000", "-0.80", "150000000", "0.03"),
    ("ALT6USDT", "0.45000", "-0.88", "100000000", "0.02"),
    ("ALT7USDT", "0.20000", "-0.95", "80000000", "0.02"),
    ("ALT8USDT", "0.05000", "-0.99", "60000000", "0.02"),
)

BUILTIN: dict[str, dict[str, Any]] = {
    "2025-10-11": {
        "name": "2025-10-11",
        "start": "2025-10-10T12:00:00Z",
        "description": (
            "The 2025-10-10/11 liquidation day: BTC ~122k -> ~102k, ETH -22%, alts -60% to"
            " -99% at their lows, over about 24 hours, with a partial recovery"
        ),
        "duration_s": 86_400,
        "step_s": 60,
        "profile": "binance-like",
        "insurance_fund": "1000000000",
        "impact": {"k": "0.03", "alpha": "0.5", "recovery_half_life_s": 600},
        "book": {
            "accounts": 1_600_000,
            "reference_accounts": 1_600_000,
            "seed": 1011,
            "long_share": "0.75",
        },
        "instruments": {
            "money_decimals": 8,
            "instruments": [
                {"symbol": "BTCUSDT", "tick_size": "0.1", "lot_size": "0.001", "tiers": _BTC_TIERS},
                {
                    "symbol": "ETHUSDT",
                    "tick_size": "0.01",
                    "lot_size": "0.001",
                    "tiers": _BTC_TIERS,
                },
            ]
            + [
                {"symbol": alt[0], "tick_size": "0.00001", "lot_size": "1", "tiers": _ALT_TIERS}
                for alt in _ALTS
            ],
        },
        "markets": [
            _crash_market("BTCUSDT", "122000", "-0.164", "8000000000", "0.35", "0.55"),
            _crash_market("ETHUSDT", "4380", "-0.22", "5000000000", "0.25", "0.55"),
        ]
        + [_crash_market(sym, start, low, depth, w, "0.35") for sym, start, low, depth, w in _ALTS],
    }
}
