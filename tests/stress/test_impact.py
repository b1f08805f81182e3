"""Market impact of the fund's unwinds through the simulator: one sale or several cost the
same, no impact leaves the mark on the path, the impact decays with its half-life.

Grid of the worked example (tests.stress.examples): 1 USDT = 10^8 units, prices in ticks
of 0.01.
"""

from __future__ import annotations

from engine.stress.scenario import scenario_from_dict
from engine.stress.simulator import simulate
from tests.stress.examples import USDT, example_book, example_doc


def test_splitting_a_sale_costs_the_same_as_selling_at_once() -> None:
    # alpha = 0.5, k = 0.04, D = 200000 USDT: the mark depends on the volume sold, not on
    # how many rounds sold it, so the cascade's many small rounds do not compound the
    # concave law. Together: A and B both breach at 90400, 2 BTC = 180800 USDT sold in one
    # round: I = 0.04 * sqrt(0.904) = 0.0380316, mark 90400 * 0.9619684 = 86961.95.
    # Apart (B with 2000 more): A's 90400 first, I = 0.04 * sqrt(0.452) = 0.0268924, mark
    # 87968.93, which breaches B; B's lot is worth only 87968.93 there, Q = 178368.93,
    # mark 90400 * (1 - 0.04 * sqrt(0.89184465)) = 86985.14: a little less sold, a little
    # higher mark, and the second round's own impact is not taken from the top again.
    doc = example_doc(impact={"k": "0.04", "alpha": "0.5"})
    doc["markets"][0]["depth"] = "200000"
    scenario = scenario_from_dict(doc, None)
    one = simulate(example_book(scenario, b_usdt=10_000), scenario).steps[0]
    assert one.rounds == 1 and one.accounts_liquidated == 2
    assert one.marks["BTCUSDT"] == 86_961_95
    two = simulate(example_book(scenario), scenario).steps[0]
    assert two.rounds == 2 and two.accounts_liquidated == 2
    assert two.marks["BTCUSDT"] == 86_985_14


def test_without_impact_the_fund_sells_at_the_mark_and_nothing_follows() -> None:
    # k = 0: A is liquidated and unwound at 90400 exactly (realized 0), the mark stays, B
    # stays safe: one round, fund 2000 + 400.
    scenario = scenario_from_dict(example_doc(impact={"k": "0"}), None)
    book = example_book(scenario)
    step = simulate(book, scenario).steps[0]
    assert step.rounds == 1 and step.accounts_liquidated == 1
    assert step.marks == {"BTCUSDT": 90_400_00} and step.unwind_pnl == 0
    assert step.fund_equity == 2_400 * USDT and not step.fund_exhausted


def test_recovery_half_life_brings_the_mark_back_to_the_path() -> None:
    # The worked cascade leaves Q = 178088 USDT sold. The path then holds at 90400 while the
    # depth refills with a half-life of one step: Q -> 89044, I = 0.03 * 89044 / 90400 =
    # 0.02955, mark 90400 * 0.97045 = 87728.68.
    doc = example_doc(duration_s=60, step_s=60)
    doc["impact"] = {"k": "0.03", "alpha": "1", "recovery_half_life_s": 60}
    scenario = scenario_from_dict(doc, None)
    book = example_book(scenario)
    first, second = simulate(book, scenario).steps
    assert first.marks["BTCUSDT"] == 85_057_36
    assert second.rounds == 0 and second.marks["BTCUSDT"] == 87_728_68
