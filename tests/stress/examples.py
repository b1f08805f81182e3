"""Shared examples of the stress tests: the worked one-instrument book and scenario, and
the built-in crash scenario on a small synthetic book.

Grid of the worked example: BTCUSDT, tick 0.01, lot 0.001 BTC, money at 8 decimals, so
one lot moving one tick is 1000 units and 1 USDT = 10^8 units.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from engine.book.book import Book
from engine.stress.scenario import load_scenario
from engine.stress.scenario_model import Scenario
from engine.stress.synthetic import crash_book

USDT = 10**8
BTC = 1000  # lots
FLAT_TIER = [{"max_notional": None, "mmr": "0.005", "max_leverage": 125}]


def example_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "duration_s": 0,
        "insurance_fund": "2000",
        "profile": {"liquidation": {"fee_rate": "0"}},
        "instruments": {
            "instruments": [
                {"symbol": "BTCUSDT", "tick_size": "0.01", "lot_size": "0.001", "tiers": FLAT_TIER}
            ]
        },
        "impact": {"k": "0.03", "alpha": "1"},
        "markets": [
            {"symbol": "BTCUSDT", "start": "100000", "depth": "90400", "moves": [[0, "-0.096"]]}
        ],
    }
    doc.update(changes)
    return doc


def example_book(scenario: Scenario, b_usdt: int = 12_000) -> Book:
    # A: long 1 BTC at 100000 with 10000 USDT; B: the same with 12000; C: the short side.
    assert scenario.instruments is not None
    book = Book(scenario.instruments)
    for account, usdt in ((1, 10_000), (2, b_usdt), (3, 1_000_000)):
        book.deposit(account, usdt * USDT)
    book.apply_fill(1, "BTCUSDT", BTC, 100_000_00)
    book.apply_fill(2, "BTCUSDT", BTC, 100_000_00)
    book.apply_fill(3, "BTCUSDT", -2 * BTC, 100_000_00)
    return book


def crash_scenario(accounts: int, **impact: str) -> Scenario:
    scenario = load_scenario("2025-10-11").scaled(accounts)
    # 20-minute steps keep the test short; the crash still takes several steps.
    scenario = replace(scenario, step_s=1200)
    if impact:
        markets = tuple(
            replace(m, impact=replace(m.impact, k=Decimal(impact["k"]))) for m in scenario.markets
        )
        scenario = replace(scenario, markets=markets)
    return scenario


def book_for(scenario: Scenario, seed: int = 5) -> Book:
    table = scenario.instruments
    assert table is not None
    marks, weights = [], []
    for market in scenario.markets:
        tick = Fraction(table.instruments[table.symbol_index(market.symbol)].tick_size)
        assert market.start is not None
        marks.append(round(Fraction(market.start) / tick))
        weights.append(float(market.weight))
    return crash_book(
        table, np.array(marks), scenario.book.accounts, seed=seed, weights=np.array(weights)
    )
