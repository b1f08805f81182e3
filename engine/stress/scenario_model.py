"""A stress scenario as the simulator runs it: per-market price paths, the impact model,
the rules, the insurance fund and the book it runs on.

Paths are exact fractions (the simulator rounds them to ticks); time is seconds from the
scenario's `start`, a UTC instant (DEFAULT_START, the Unix epoch, when a scenario gives
none), so every output row can carry its wall-clock time. `Scenario.scaled` resizes a
scenario for a smaller book (depth and fund in proportion, so a small book sees the same
cascade as the full one); `Scenario.shocked` is the reverse stress test's single step.
Scenarios are read from TOML, JSON or a built-in name by engine.stress.scenario.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from engine.book.instruments import InstrumentTable
from engine.waterfall.profile import Profile

# t = 0 of a scenario that names no start: a fixed, stated instant, so outputs stay
# reproducible (set `start` in the scenario to place the run in time).
DEFAULT_START = datetime(1970, 1, 1, tzinfo=UTC)


class ScenarioError(ValueError):
    """A malformed scenario; the message names the offending key."""


@dataclass(frozen=True)
class ImpactModel:
    """impact = k * (volume / depth) ^ alpha (a fraction of the price), decaying over time."""

    k: Decimal
    alpha: Decimal
    recovery_half_life_s: int  # 0: the impact is permanent


@dataclass(frozen=True)
class MarketPath:
    symbol: str
    start: Decimal | None  # price at t = 0; None: the book's mark when the run starts
    depth: Decimal  # currency units
    impact: ImpactModel
    weight: Decimal
    moves: tuple[tuple[int, Fraction], ...]  # (t_s, change from start), t increasing
    shock: tuple[int, Fraction] | None  # (at_s, change)
    replay: tuple[tuple[int, Fraction], ...]  # (t_s, price), t increasing

    def price_at(self, t_s: int, start: Fraction) -> Fraction:
        """The exogenous price (currency units, exact) at t_s, before any impact."""
        if self.replay:
            price = start
            for tick_t, tick_price in self.replay:
                if tick_t > t_s:
                    break
                price = tick_price
        else:
            price = start * (1 + _interpolate(self.moves, t_s))
        if self.shock is not None and t_s >= self.shock[0]:
            price *= 1 + self.shock[1]
        return price


def _interpolate(points: tuple[tuple[int, Fraction], ...], t_s: int) -> Fraction:
    if not points:
        return Fraction(0)
    if t_s <= points[0][0]:
        return points[0][1]
    for (t0, c0), (t1, c1) in zip(points, points[1:], strict=False):
        if t_s <= t1:
            return c0 + (c1 - c0) * Fraction(t_s - t0, t1 - t0)
    return points[-1][1]


@dataclass(frozen=True)
class BookSpec:
    accounts: int
    seed: int
    long_share: Decimal
    reference_accounts: int
    snapshot: Path | None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration_s: int
    step_s: int
    profile: Profile
    insurance_fund: Decimal  # currency units
    instruments: InstrumentTable | None  # None: the snapshot's
    markets: tuple[MarketPath, ...]
    book: BookSpec
    start: datetime = DEFAULT_START  # t = 0, timezone-aware UTC
    source: str = ""  # what it was read from: a path, or "built-in NAME"
    sha256: str = ""  # of the document read (a built-in's canonical JSON)

    def times(self) -> list[int]:
        return list(range(0, self.duration_s + 1, self.step_s))

    def at(self, t_s: int) -> datetime:
        """The UTC instant of `t_s` seconds into the scenario."""
        return self.start + timedelta(seconds=t_s)

    def market(self, symbol: str) -> MarketPath:
        for market in self.markets:
            if market.symbol == symbol:
                return market
        raise ScenarioError(f"markets: no market {symbol!r}")

    def scaled(self, accounts: int) -> Scenario:
        """The scenario on a book of `accounts` accounts: depth and fund in proportion."""
        if not accounts > 0:
            raise ScenarioError("book.accounts: must be positive")
        ratio = Decimal(accounts) / Decimal(self.book.reference_accounts)
        return replace(
            self,
            insurance_fund=_money(self.insurance_fund * ratio),
            markets=tuple(replace(m, depth=_money(m.depth * ratio)) for m in self.markets),
            book=replace(self.book, accounts=accounts, reference_accounts=accounts),
        )

    def shocked(self, change: dict[str, Fraction]) -> Scenario:
        """One step at t = 0: each market jumps by `change[symbol]` from its start and the
        cascade runs to its fixed point (the reverse stress test's single evaluation)."""
        markets = []
        for market in self.markets:
            move = change.get(market.symbol, Fraction(0))
            if not move > -1:
                raise ScenarioError(f"{market.symbol}: a move of {move} leaves no price")
            markets.append(replace(market, moves=((0, move),), shock=None, replay=()))
        return replace(self, duration_s=0, step_s=1, markets=tuple(markets))


def _money(value: Decimal) -> Decimal:
    # Cents are far below any depth or fund that matters, and keep the value on any money grid.
    return value.quantize(Decimal("0.01"))
