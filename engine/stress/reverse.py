"""Reverse stress test: the smallest move at which the insurance fund is exhausted.

A move m applies the change m * d_i to every market i of the scenario at once (d_i = -1
for all: a uniform fall; or a given direction, e.g. BTC -1, alts -3), and the cascade runs
to its fixed point through the simulator (`Scenario.shocked`, one step). The fund is
exhausted when any waterfall of that step finds its equity below the floor, so ADL starts
(or, with nothing left to deleverage against, socialized loss). Assuming that is monotone
in m, the search brackets it by doubling from `move_first` up to the largest move that
leaves every price positive, then bisects until the bracket is at most `tolerance` wide:
the move returned is exhausted and the move one tolerance below it is not.

Moves are exact fractions, so the search and any direct run at the same move agree.
Each evaluation runs on a fresh book from `book_factory` (the same seed: the same book).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from engine.book.book import Book
from engine.stress.fund_flows import FundFlows
from engine.stress.scenario_model import Scenario, ScenarioError
from engine.stress.simulation_result import SimulationResult
from engine.stress.simulator import simulate

EVALUATIONS_MAX = 200
MOVE_ROOM = Fraction(99, 100)  # the largest fall is 99% of the price on the steepest market
MOVE_UP_MAX = Fraction(10)  # a direction that only rises stops at +1000%


@dataclass(frozen=True)
class StressPoint:
    """One direct run: the move and what the cascade did (money units).

    Stocks, the fund's equity: at the start, its low (before ADL and socialized loss
    restored it) and at the end. Flows, summed over the run (engine.stress.fund_flows):
    deficit_to_cover == fund_drawdown + adl_amount + socialized + unallocated."""

    move: Fraction
    fund_exhausted: bool
    fund_start: int
    fund_low: int
    fund_end: int
    deficit_to_cover: int
    fund_drawdown: int
    adl_amount: int
    socialized: int
    unallocated: int
    accounts_liquidated: int
    liquidated_notional: int
    rounds: int

    @property
    def flows(self) -> FundFlows:
        return FundFlows(
            self.deficit_to_cover,
            self.fund_drawdown,
            self.adl_amount,
            self.socialized,
            self.unallocated,
        )


@dataclass
class ReverseStressResult:
    direction: dict[str, Fraction]
    tolerance: Fraction
    move: Fraction | None  # the smallest exhausting move found; None if none up to move_max
    move_max: Fraction
    points: list[StressPoint] = field(default_factory=list)  # every evaluation, by move

    @property
    def safe_move(self) -> Fraction | None:
        """The largest move evaluated below `move` that left the fund standing."""
        if self.move is None:
            return None
        below = [p.move for p in self.points if p.move < self.move and not p.fund_exhausted]
        return max(below, default=None)


def uniform_direction(scenario: Scenario) -> dict[str, Fraction]:
    return {m.symbol: Fraction(-1) for m in scenario.markets}


def move_limit(direction: dict[str, Fraction]) -> Fraction:
    """The largest m with every price positive: 99% of the way down on the steepest fall."""
    falls = [-d for d in direction.values() if d < 0]
    if not falls:
        return MOVE_UP_MAX
    return MOVE_ROOM / max(falls)


def evaluate(
    book_factory: Callable[[], Book],
    scenario: Scenario,
    direction: dict[str, Fraction],
    move: Fraction,
) -> StressPoint:
    """A direct run: the move applied at once, the cascade to its fixed point."""
    shocked = scenario.shocked({symbol: move * d for symbol, d in direction.items()})
    result = simulate(book_factory(), shocked)
    return point_of(move, result)


def point_of(move: Fraction, result: SimulationResult) -> StressPoint:
    totals = result.totals()
    point = StressPoint(
        move=move,
        fund_exhausted=result.fund_exhausted,
        fund_start=totals["fund_start"],
        fund_low=totals["fund_low"],
        fund_end=totals["fund_end"],
        deficit_to_cover=totals["deficit_to_cover"],
        fund_drawdown=totals["fund_drawdown"],
        adl_amount=totals["adl_amount"],
        socialized=totals["socialized"],
        unallocated=totals["unallocated_added"],
        accounts_liquidated=totals["accounts_liquidated"],
        liquidated_notional=totals["liquidated_long"] + totals["liquidated_short"],
        rounds=totals["rounds_max"],
    )
    assert point.flows.reconciles, f"move {move}: the fund's flows do not reconcile"
    return point


def reverse_stress(
    book_factory: Callable[[], Book],
    scenario: Scenario,
    *,
    direction: dict[str, Fraction] | None = None,
    tolerance: Fraction = Fraction(1, 200),
    move_first: Fraction = Fraction(1, 20),
    on_point: Callable[[StressPoint], None] | None = None,
) -> ReverseStressResult:
    """Bisection for the smallest move that exhausts the fund, the cascade on."""
    direction = uniform_direction(scenario) if direction is None else dict(direction)
    unknown = sorted(set(direction) - {m.symbol for m in scenario.markets})
    if unknown:
        raise ScenarioError(f"direction: {unknown[0]!r} is not a market of the scenario")
    if not any(direction.values()):
        raise ScenarioError("direction: every component is zero")
    if not tolerance > 0:
        raise ScenarioError("tolerance: must be positive")
    move_max = move_limit(direction)
    result = ReverseStressResult(direction, tolerance, None, move_max)

    def run(move: Fraction) -> bool:
        assert len(result.points) < EVALUATIONS_MAX, "reverse stress: too many evaluations"
        found = evaluate(book_factory, scenario, direction, move)
        result.points.append(found)
        result.points.sort(key=lambda p: p.move)
        if on_point is not None:
            on_point(found)
        return found.fund_exhausted

    if run(Fraction(0)):
        result.move = Fraction(0)
        return result
    lo, hi = Fraction(0), min(move_first, move_max)
    while not run(hi):
        if hi == move_max:
            return result  # the fund survives every move in this direction
        lo, hi = hi, min(hi * 2, move_max)
    while hi - lo > tolerance:
        mid = (lo + hi) / 2
        if run(mid):
            hi = mid
        else:
            lo = mid
    result.move = hi
    return result
