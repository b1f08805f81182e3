"""Scenarios: exact paths with a shock, a replay file in a TOML scenario, malformed
documents named by their key, and the built-in scenario scaled to a smaller book."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from engine.stress.scenario import load_scenario, scenario_from_dict
from engine.stress.scenario_model import ScenarioError
from engine.stress.simulator import simulate
from tests.stress.examples import example_book, example_doc


def test_path_interpolates_exactly_and_adds_the_shock() -> None:
    doc = example_doc(duration_s=120)
    doc["markets"][0]["moves"] = [[0, "0"], [100, "-0.1"]]
    doc["markets"][0]["shock"] = {"at_s": 60, "move": "-0.5"}
    market = scenario_from_dict(doc, None).markets[0]
    start = Fraction(100_000)
    assert market.price_at(30, start) == 100_000 * (1 - Fraction(3, 100))  # 97000
    # at 60: the move is -6% and the shock halves it: 94000 / 2 = 47000
    assert market.price_at(60, start) == 47_000
    assert market.price_at(120, start) == 90_000 / 2  # held after the last point


def test_replay_file_and_toml_scenario(tmp_path: Path) -> None:
    (tmp_path / "btc.csv").write_text("t_s,price\n0,100000\n90,95000.5\n")
    (tmp_path / "s.toml").write_text(
        """
name = "replay"
duration_s = 180
step_s = 60
insurance_fund = "2000"
[profile.liquidation]
fee_rate = "0"
[impact]
k = "0"
[[instruments.instruments]]
symbol = "BTCUSDT"
tick_size = "0.01"
lot_size = "0.001"
tiers = [{mmr = "0.005", max_leverage = 125}]
[[markets]]
symbol = "BTCUSDT"
replay = "btc.csv"
"""
    )
    scenario = load_scenario(tmp_path / "s.toml")
    market = scenario.markets[0]
    assert market.start == Decimal("100000")
    assert [market.price_at(t, Fraction(100_000)) for t in (0, 60, 90, 180)] == [
        100_000,
        100_000,
        Fraction("95000.5"),
        Fraction("95000.5"),
    ]
    result = simulate(example_book(scenario), scenario)
    assert [s.marks["BTCUSDT"] for s in result.steps] == [
        10_000_000,
        10_000_000,
        9_500_050,
        9_500_050,
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"insurance_fund": 1.5}, "insurance_fund"),
        ({"markets": [{"symbol": "ETHUSDT", "start": "1"}]}, "not in the instruments"),
        ({"markets": [{"symbol": "BTCUSDT"}]}, "start: required"),
        ({"markets": [{"symbol": "BTCUSDT", "start": "1", "moves": [[0, "-1"]]}]}, "above -1"),
        (
            {"markets": [{"symbol": "BTCUSDT", "start": "1", "moves": [[5, "0"], [5, "0"]]}]},
            "times must increase",
        ),
        ({"impact": {"alpha": "0"}}, "impact.alpha"),
        ({"profile": "no-such"}, "no shipped profile"),
    ],
)
def test_malformed_scenarios_name_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_from_dict(example_doc(**change), None)


def test_scaled_scenario_shrinks_depth_and_fund_in_proportion() -> None:
    full = load_scenario("2025-10-11")
    small = full.scaled(16_000)  # 1% of 1.6 million
    assert small.insurance_fund == full.insurance_fund / 100
    assert [m.depth for m in small.markets] == [m.depth / 100 for m in full.markets]
    btc = full.market("BTCUSDT")
    assert btc.start is not None
    low = btc.price_at(33_600, Fraction(btc.start))
    assert low == Fraction(122_000) * (1 - Fraction("0.164"))  # ~102k at the bottom


def test_start_is_a_utc_instant_with_a_stated_default(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from engine.stress.scenario_model import DEFAULT_START

    assert scenario_from_dict(example_doc(), None).start == DEFAULT_START
    assert datetime(1970, 1, 1, tzinfo=UTC) == DEFAULT_START
    given = scenario_from_dict(example_doc(start="2025-10-10T14:00:00+02:00"), None)
    assert given.start == datetime(2025, 10, 10, 12, tzinfo=UTC)
    assert given.at(90) == datetime(2025, 10, 10, 12, 1, 30, tzinfo=UTC)
    assert load_scenario("2025-10-11").start == datetime(2025, 10, 10, 12, tzinfo=UTC)
    # A TOML date-time is taken as it is; one without an offset is refused.
    (tmp_path / "s.toml").write_text(
        'start = 2025-01-02T03:04:05Z\ninstruments = "i.json"\n'
        '[[markets]]\nsymbol = "BTCUSDT"\nstart = "100"\ndepth = "1"\n'
    )
    (tmp_path / "i.json").write_text(
        '{"instruments": [{"symbol": "BTCUSDT", "tick_size": "0.1", "lot_size": "0.001",'
        ' "tiers": [{"max_notional": null, "mmr": "0.01", "max_leverage": 10}]}]}'
    )
    loaded = load_scenario(tmp_path / "s.toml")
    assert loaded.start == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert loaded.source == str(tmp_path / "s.toml") and len(loaded.sha256) == 64
    for bad, match in (
        ("2025-10-10T12:00:00", "no UTC offset"),
        ("yesterday", "ISO 8601"),
        (12, "date-time"),
    ):
        with pytest.raises(ScenarioError, match=match):
            scenario_from_dict(example_doc(start=bad), None)
