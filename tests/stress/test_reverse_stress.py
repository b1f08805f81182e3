"""Reverse stress: the move found is within one bisection step of where a direct run first
exhausts the fund (ADL, or socialized loss once nothing is left to deleverage against)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from engine.book.book import Book
from engine.reports import stress_tables
from engine.stress.reverse import evaluate, move_limit, reverse_stress, uniform_direction
from engine.stress.scenario import load_scenario
from engine.stress.scenario_model import Scenario, ScenarioError
from engine.stress.synthetic import crash_book

ACCOUNTS = 400


def _setup(fund: str | None = None) -> tuple[Scenario, Callable[[], Book]]:
    scenario = load_scenario("2025-10-11").scaled(ACCOUNTS)
    if fund is not None:
        scenario = replace(scenario, insurance_fund=Decimal(fund))
    table = scenario.instruments
    assert table is not None
    marks, weights = [], []
    for market in scenario.markets:
        tick = Fraction(table.instruments[table.symbol_index(market.symbol)].tick_size)
        assert market.start is not None
        marks.append(round(Fraction(market.start) / tick))
        weights.append(float(market.weight))

    def factory() -> Book:
        return crash_book(table, np.array(marks), ACCOUNTS, seed=21, weights=np.array(weights))

    return scenario, factory


def test_found_move_is_one_bisection_step_from_the_direct_runs() -> None:
    scenario, factory = _setup()
    tolerance = Fraction(1, 100)
    result = reverse_stress(factory, scenario, tolerance=tolerance)
    assert result.move is not None and 0 < result.move < result.move_max
    direction = uniform_direction(scenario)
    at = evaluate(factory, scenario, direction, result.move)
    below = evaluate(factory, scenario, direction, result.move - tolerance)
    assert at.fund_exhausted and at.fund_low < 0
    assert not below.fund_exhausted and below.fund_low >= 0
    safe = result.safe_move
    assert safe is not None and result.move - safe <= tolerance
    # The search's own record of the threshold agrees with the direct run.
    recorded = next(p for p in result.points if p.move == result.move)
    assert recorded == at
    # Bracketing doubled from 5%, then bisected: every evaluated move is in the record.
    moves = [p.move for p in result.points]
    assert moves == sorted(moves) and Fraction(0) in moves and Fraction(1, 20) in moves


def test_a_larger_fund_needs_a_larger_move() -> None:
    scenario, factory = _setup()
    small = reverse_stress(factory, scenario, tolerance=Fraction(1, 50))
    bigger = replace(scenario, insurance_fund=scenario.insurance_fund * 4)
    large = reverse_stress(factory, bigger, tolerance=Fraction(1, 50))
    assert small.move is not None and large.move is not None
    assert large.move > small.move


def test_direction_moves_only_the_named_markets() -> None:
    # Only BTC falls: the steepest fall sets the limit at 99%; BTC alone exhausts the fund
    # later than every market falling together (fewer accounts are hit per unit of move).
    scenario, factory = _setup()
    uniform = reverse_stress(factory, scenario, tolerance=Fraction(1, 50))
    btc = {"BTCUSDT": Fraction(-1)}
    assert move_limit(btc) == Fraction(99, 100)
    assert move_limit({"BTCUSDT": Fraction(-3), "ETHUSDT": Fraction(1)}) == Fraction(33, 100)
    alone = reverse_stress(factory, scenario, direction=btc, tolerance=Fraction(1, 50))
    assert uniform.move is not None
    assert alone.move is None or alone.move > uniform.move
    point = evaluate(factory, scenario, btc, Fraction(1, 10))
    assert point.accounts_liquidated > 0


def test_a_fund_that_survives_every_move() -> None:
    scenario, factory = _setup(fund="1000000000")
    result = reverse_stress(factory, scenario, tolerance=Fraction(1, 20))
    assert result.move is None and result.safe_move is None
    assert result.points[-1].move == result.move_max and not result.points[-1].fund_exhausted


def test_an_empty_fund_is_exhausted_by_the_first_bankruptcy() -> None:
    # Fund 0 and floor 0: with no move nobody breaches, so the threshold is the first move
    # that bankrupts someone (any payout at all takes the fund below its floor).
    scenario, factory = _setup(fund="0")
    result = reverse_stress(factory, scenario, tolerance=Fraction(1, 100))
    assert result.move is not None and result.move <= Fraction(1, 20) + Fraction(1, 100)
    assert not result.points[0].fund_exhausted  # move 0


def test_bad_directions_are_refused() -> None:
    scenario, factory = _setup()
    with pytest.raises(ScenarioError, match="not a market"):
        reverse_stress(factory, scenario, direction={"NOPE": Fraction(-1)})
    with pytest.raises(ScenarioError, match="zero"):
        reverse_stress(factory, scenario, direction={"BTCUSDT": Fraction(0)})


@pytest.mark.parametrize("cover", [True, False], ids=["adl-and-socialized", "none"])
def test_every_row_reconciles_to_the_unit(cover: bool) -> None:
    # Stocks (fund start, low, end) apart from flows over the run; per move, in the search's
    # record, in reverse_stress.parquet and in summary.json:
    # deficit to cover = fund drawdown + ADL + socialized + unallocated, to the unit.
    # With ADL and socialized loss off, the shortfall stays with the fund from waterfall to
    # waterfall: counted once, not once per waterfall it is carried through.
    scenario, factory = _setup(fund="20000")
    profile = replace(scenario.profile, adl_enabled=cover, socialized_loss_enabled=cover)
    scenario = replace(scenario, profile=profile)
    result = reverse_stress(factory, scenario, tolerance=Fraction(1, 50))
    if cover:
        assert any(p.socialized + p.adl_amount > 0 for p in result.points)
    else:
        assert any(p.unallocated > 0 for p in result.points)
        for p in result.points:  # the fund starts above its floor of 0
            assert p.unallocated == max(0, -p.fund_end) and p.fund_drawdown >= 0
    decimals = factory().instruments.money_decimals
    for p in result.points:
        assert p.deficit_to_cover == p.fund_drawdown + p.adl_amount + p.socialized + p.unallocated
        assert p.fund_start == result.points[0].fund_start and p.fund_low <= p.fund_end
    rows = stress_tables.points_table(result, decimals).to_pylist()
    assert len(rows) == len(result.points)
    for row in rows:
        covered = row["fund_drawdown"] + row["adl"] + row["socialized"] + row["unallocated"]
        assert covered == row["deficit_to_cover"], row["move"]
    summary = json.loads(json.dumps(stress_tables.reverse_summary(result, decimals)))
    assert [Decimal(p["move"]) for p in summary["points"]] == [r["move"] for r in rows]
    for point in summary["points"]:
        flow = {k: Decimal(v) for k, v in point["flow"].items()}
        covered = flow["fund_drawdown"] + flow["adl"] + flow["socialized"] + flow["unallocated"]
        assert covered == flow["deficit_to_cover"], point["move"]
        assert set(point["stock"]) == {"fund_start", "fund_low", "fund_end"}
