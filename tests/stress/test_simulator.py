"""The cascade simulator: a hand-computed cascade, the equivalence with the plain waterfall
at zero impact, the fixed point and conservation at every step, determinism, scenarios,
and the synthetic crash book.

Grid of the worked example: BTCUSDT, tick 0.01, lot 0.001 BTC, money at 8 decimals, so
one lot moving one tick is 1000 units and 1 USDT = 10^8 units.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.book.book import STATUS_LIQUIDATE, Book
from engine.stress.scenario import Scenario, ScenarioError, load_scenario, scenario_from_dict
from engine.stress.simulator import StepRecord, simulate
from engine.stress.synthetic import CRASH_LEVERAGES, crash_book
from engine.waterfall.conservation import audit
from engine.waterfall.profile import RESERVED_ACCOUNT_BASE
from engine.waterfall.waterfall import open_fund, run_waterfall

USDT = 10**8
BTC = 1000  # lots
FLAT_TIER = [{"max_notional": None, "mmr": "0.005", "max_leverage": 125}]


def _example_doc(**changes: Any) -> dict[str, Any]:
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


def _example_book(scenario: Scenario, b_usdt: int = 12_000) -> Book:
    # A: long 1 BTC at 100000 with 10000 USDT; B: the same with 12000; C: the short side.
    assert scenario.instruments is not None
    book = Book(scenario.instruments)
    for account, usdt in ((1, 10_000), (2, b_usdt), (3, 1_000_000)):
        book.deposit(account, usdt * USDT)
    book.apply_fill(1, "BTCUSDT", BTC, 100_000_00)
    book.apply_fill(2, "BTCUSDT", BTC, 100_000_00)
    book.apply_fill(3, "BTCUSDT", -2 * BTC, 100_000_00)
    return book


def test_worked_cascade_two_rounds_then_socialized() -> None:
    # Impact I(Q) = k Q / D with k = 0.03, D = 90400 USDT, alpha = 1 (linear), so G(Q) =
    # k Q^2 / (2 D) and a sale from Q to Q' fills at the average k (Q + Q') / (2 D).
    # The move -9.6% sets the mark at 90400. A: equity 10000 - 9600 = 400 <= MM 0.005 * 90400
    # = 452, liquidated (fee 0): 400 USDT takeover surplus, fund 2000 -> 2400. B: 2400 > 452.
    # Round 1: the fund sells 1 BTC = 90400 USDT, Q 0 -> 90400: fill at 90400 * (1 - 0.015)
    # = 89044 (realized -1356, fund 1044); the mark is 90400 * (1 - 0.03) = 87688.
    # Round 2: B's equity 12000 - 12312 = -312: the fund pays 312 (fund 732) and sells 87688
    # USDT, Q -> 178088: average 0.03 * (90400 + 178088) / (2 * 90400) = 0.04455, fill
    # 90400 * 0.95545 = 86372.68 (the mark 87688 times 0.95545 / 0.97), realized -1315.32:
    # the fund is at -583.32 with nothing left to deleverage against, so C (the only account
    # in profit) is charged 583.32 (socialized). Mark 90400 * (1 - 0.03 * 1.97) = 85057.36.
    # Round 3: no breach, the fixed point.
    scenario = scenario_from_dict(_example_doc(), None)
    book = _example_book(scenario)
    result = simulate(book, scenario)
    step = result.steps[0]
    assert step.rounds == 2 and step.accounts_liquidated == 2
    assert step.marks == {"BTCUSDT": 85_057_36} and step.exogenous == {"BTCUSDT": 90_400_00}
    assert step.takeover_surplus == 400 * USDT and step.insurance_paid == 312 * USDT
    events = result.events_table().to_pylist()
    assert [(e["kind"], e["round"]) for e in events] == [
        ("liquidation", 1),
        ("takeover", 1),
        ("unwind", 1),
        ("liquidation", 2),
        ("insurance_payout", 2),
        ("unwind", 2),
        ("socialized_loss", 2),
    ]
    assert [e["price"] for e in events if e["kind"] == "unwind"] == [89_044_00, 86_372_68]
    assert step.unwind_pnl == -(1356 * USDT + 1315_32 * 10**6)
    assert step.socialized == 583_32 * 10**6 and events[-1]["account_id"] == 3
    assert step.fund_exhausted and step.fund_equity == 0
    assert step.fund_equity_low == -583_32 * 10**6
    assert step.liquidated_long == (90_400 + 87_688) * USDT and step.liquidated_short == 0
    assert audit(book, closed=True).ok


def test_splitting_a_sale_costs_the_same_as_selling_at_once() -> None:
    # alpha = 0.5, k = 0.04, D = 200000 USDT: the mark depends on the volume sold, not on
    # how many rounds sold it, so the cascade's many small rounds do not compound the
    # concave law. Together: A and B both breach at 90400, 2 BTC = 180800 USDT sold in one
    # round: I = 0.04 * sqrt(0.904) = 0.0380316, mark 90400 * 0.9619684 = 86961.95.
    # Apart (B with 2000 more): A's 90400 first, I = 0.04 * sqrt(0.452) = 0.0268924, mark
    # 87968.93, which breaches B; B's lot is worth only 87968.93 there, Q = 178368.93,
    # mark 90400 * (1 - 0.04 * sqrt(0.89184465)) = 86985.14: a little less sold, a little
    # higher mark, and the second round's own impact is not taken from the top again.
    doc = _example_doc(impact={"k": "0.04", "alpha": "0.5"})
    doc["markets"][0]["depth"] = "200000"
    scenario = scenario_from_dict(doc, None)
    one = simulate(_example_book(scenario, b_usdt=10_000), scenario).steps[0]
    assert one.rounds == 1 and one.accounts_liquidated == 2
    assert one.marks["BTCUSDT"] == 86_961_95
    two = simulate(_example_book(scenario), scenario).steps[0]
    assert two.rounds == 2 and two.accounts_liquidated == 2
    assert two.marks["BTCUSDT"] == 86_985_14


def test_without_impact_the_fund_sells_at_the_mark_and_nothing_follows() -> None:
    # k = 0: A is liquidated and unwound at 90400 exactly (realized 0), the mark stays, B
    # stays safe: one round, fund 2000 + 400.
    scenario = scenario_from_dict(_example_doc(impact={"k": "0"}), None)
    book = _example_book(scenario)
    step = simulate(book, scenario).steps[0]
    assert step.rounds == 1 and step.accounts_liquidated == 1
    assert step.marks == {"BTCUSDT": 90_400_00} and step.unwind_pnl == 0
    assert step.fund_equity == 2_400 * USDT and not step.fund_exhausted


def test_recovery_half_life_brings_the_mark_back_to_the_path() -> None:
    # The worked cascade leaves Q = 178088 USDT sold. The path then holds at 90400 while the
    # depth refills with a half-life of one step: Q -> 89044, I = 0.03 * 89044 / 90400 =
    # 0.02955, mark 90400 * 0.97045 = 87728.68.
    doc = _example_doc(duration_s=60, step_s=60)
    doc["impact"] = {"k": "0.03", "alpha": "1", "recovery_half_life_s": 60}
    scenario = scenario_from_dict(doc, None)
    book = _example_book(scenario)
    first, second = simulate(book, scenario).steps
    assert first.marks["BTCUSDT"] == 85_057_36
    assert second.rounds == 0 and second.marks["BTCUSDT"] == 87_728_68


# ----- against the plain waterfall --------------------------------------------------------
def _crash_scenario(accounts: int, **impact: str) -> Scenario:
    scenario = load_scenario("2025-10-11").scaled(accounts)
    # 20-minute steps keep the test short; the crash still takes several steps.
    scenario = replace(scenario, step_s=1200)
    if impact:
        markets = tuple(
            replace(m, impact=replace(m.impact, k=Decimal(impact["k"]))) for m in scenario.markets
        )
        scenario = replace(scenario, markets=markets)
    return scenario


def _book_for(scenario: Scenario, seed: int = 5) -> Book:
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


def _path_ticks(scenario: Scenario, book: Book, t_s: int) -> dict[str, int]:
    out = {}
    for market in scenario.markets:
        inst = book.instruments.symbol_index(market.symbol)
        tick = Fraction(book.instruments.instruments[inst].tick_size)
        assert market.start is not None
        out[market.symbol] = max(1, round(market.price_at(t_s, Fraction(market.start)) / tick))
    return out


def _trader_state(book: Book) -> tuple[np.ndarray, ...]:
    book.compact()
    owner = book.account_id[book.position_owner()]
    live = (book.pos_qty != 0) & (owner < RESERVED_ACCOUNT_BASE)
    traders = book.account_id < RESERVED_ACCOUNT_BASE
    return (
        book.account_id[traders],
        book.balance[traders],
        owner[live],
        book.pos_instrument[live],
        book.pos_qty[live],
        book.pos_cost[live],
    )


def _event_rows(events: Any) -> list[tuple[Any, ...]]:
    return [
        (e.kind, e.event_id, e.account_id, e.symbol or None, e.qty, e.price, e.amount)
        for e in events
    ]


def test_zero_impact_equals_the_plain_sweep_and_waterfall_step_by_step() -> None:
    # With k = 0 the fund unwinds at the mark and the mark never moves, so each step must be
    # exactly: set the path's marks, run_waterfall, unwind what the fund holds at the mark.
    scenario = _crash_scenario(400, k="0")
    simulated, plain = _book_for(scenario), _book_for(scenario)
    profile = scenario.profile
    fund = profile.fund_account_id
    open_fund(plain, profile, int(scenario.insurance_fund * USDT))
    plain_events: list[tuple[Any, ...]] = []

    def compare(book: Book, record: StepRecord) -> None:
        marks = _path_ticks(scenario, plain, record.t_s)
        for symbol, ticks in marks.items():
            plain.set_mark(symbol, ticks)
        plain_events.extend(_event_rows(run_waterfall(plain, profile).events))
        held = [plain.instruments.instruments[i].symbol for i, _, _ in plain.positions_of(fund)]
        if held:
            at_mark = {s: int(plain.mark[plain.instruments.symbol_index(s)]) for s in held}
            plain_events.extend(
                _event_rows(run_waterfall(plain, profile, unwind_prices=at_mark).events)
            )
        assert record.marks == marks
        for mine, theirs in zip(_trader_state(book), _trader_state(plain), strict=True):
            np.testing.assert_array_equal(mine, theirs)
        assert book.account_margin(fund) == plain.account_margin(fund)

    result = simulate(simulated, scenario, on_step=compare)
    totals = result.totals()
    assert totals["accounts_liquidated"] > 50, "the crash must liquidate for this to mean much"
    assert not result.fund_exhausted and totals["unwind_pnl"] == 0
    table = result.events_table().to_pydict()
    names = ("kind", "event_id", "account_id", "symbol", "qty", "price", "amount")
    mine = list(zip(*(table[n] for n in names), strict=True))
    assert mine == plain_events


def test_zero_impact_shock_with_adl_starts_as_the_plain_waterfall() -> None:
    # A fund of 1 USDT is exhausted at once. The simulator's first waterfall is the plain
    # run_waterfall on the same book (ADL at the mark in the same call, the same event ids);
    # only after it does the step go on: the fund unwinds at the mark (realized 0) and any
    # account that ADL left in breach is liquidated in the same step, to the fixed point.
    base = replace(_crash_scenario(400, k="0"), insurance_fund=Decimal(1))
    scenario = base.shocked({m.symbol: Fraction(-3, 10) for m in base.markets})
    simulated, plain = _book_for(scenario), _book_for(scenario)
    profile = scenario.profile
    open_fund(plain, profile, 1 * USDT)
    for symbol, ticks in _path_ticks(scenario, plain, 0).items():
        plain.set_mark(symbol, ticks)
    expected = _event_rows(run_waterfall(plain, profile).events)
    assert any(row[0] == "adl" for row in expected)
    result = simulate(simulated, scenario)
    table = result.events_table().to_pydict()
    names = ("kind", "event_id", "account_id", "symbol", "qty", "price", "amount")
    rows = list(zip(*(table[n] for n in names), strict=True))
    last_id = max(row[1] for row in expected)
    assert [row for row in rows if row[1] <= last_id] == expected
    step = result.steps[0]
    assert step.fund_exhausted and step.unwind_pnl == 0
    assert simulated.positions_of(profile.fund_account_id) == []
    status = simulated.sweep(with_initial_margin=False).status
    assert not (status[simulated.account_id < RESERVED_ACCOUNT_BASE] >= STATUS_LIQUIDATE).any()
    assert audit(simulated, closed=True).ok


# ----- invariants on the crash ------------------------------------------------------------
def test_fixed_point_and_conservation_at_every_step() -> None:
    scenario = _crash_scenario(500)
    book = _book_for(scenario)
    audited = []

    def check(book: Book, record: StepRecord) -> None:
        status = book.sweep(with_initial_margin=False).status
        traders = book.account_id < RESERVED_ACCOUNT_BASE
        assert not (status[traders] >= STATUS_LIQUIDATE).any(), f"step {record.step}: breach left"
        assert book.positions_of(scenario.profile.fund_account_id) == []
        assert audit(book, closed=True).ok
        audited.append(record.step)

    result = simulate(book, scenario, on_step=check)
    assert audited == list(range(len(scenario.times())))
    totals = result.totals()
    assert totals["rounds_max"] >= 2, "impact must have caused a second round somewhere"
    assert totals["unwind_pnl"] < 0  # selling into the book costs the fund
    # The marks end below the path where the fund sold and the impact has not decayed.
    worst = min(result.steps, key=lambda s: s.marks["BTCUSDT"] - s.exogenous["BTCUSDT"])
    assert worst.marks["BTCUSDT"] < worst.exogenous["BTCUSDT"]


def test_same_seed_same_run_other_seed_other_run() -> None:
    scenario = _crash_scenario(300)
    runs = [simulate(_book_for(scenario, seed), scenario) for seed in (9, 9, 10)]
    first, again, other = (r.events_table() for r in runs)
    assert first.equals(again) and runs[0].steps_table().equals(runs[1].steps_table())
    assert runs[0].prices_table().equals(runs[1].prices_table())
    assert not first.equals(other)


# ----- scenarios --------------------------------------------------------------------------
def test_path_interpolates_exactly_and_adds_the_shock() -> None:
    doc = _example_doc(duration_s=120)
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
    result = simulate(_example_book(scenario), scenario)
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
        scenario_from_dict(_example_doc(**change), None)


def test_scaled_scenario_shrinks_depth_and_fund_in_proportion() -> None:
    full = load_scenario("2025-10-11")
    small = full.scaled(16_000)  # 1% of 1.6 million
    assert small.insurance_fund == full.insurance_fund / 100
    assert [m.depth for m in small.markets] == [m.depth / 100 for m in full.markets]
    btc = full.market("BTCUSDT")
    assert btc.start is not None
    low = btc.price_at(33_600, Fraction(btc.start))
    assert low == Fraction(122_000) * (1 - Fraction("0.164"))  # ~102k at the bottom


# ----- the synthetic crash book -----------------------------------------------------------
def test_crash_book_mix_bias_netting_and_seed() -> None:
    scenario = load_scenario("2025-10-11").scaled(20_000)
    book = _book_for(scenario, seed=3)
    assert audit(book, closed=True).ok  # open interest nets to zero per instrument
    risk = book.sweep(with_initial_margin=False)
    assert (risk.status < STATUS_LIQUIDATE).all(), "nobody starts in breach"
    owner = book.position_owner()
    makers = book.account_id[owner] > 20_000 - 200  # the last 1% of ids are the makers
    traders_qty = book.pos_qty[~makers]
    notional = np.abs(traders_qty) * book.mark_lot_value[book.pos_instrument[~makers]]
    long_share = notional[traders_qty > 0].sum() / notional.sum()
    assert 0.70 < long_share < 0.80  # long_share 0.75 by count, sizes independent of side
    lev = np.zeros(book.n_accounts, dtype=np.int64)
    lev[owner] = book.pos_leverage
    traders = lev[: 20_000 - 200]
    assert set(np.unique(traders)) <= set(CRASH_LEVERAGES.tolist())
    assert 0.55 < (traders >= 5).mean() < 0.65  # 60% at 5x or more (tier caps trim a little)
    assert 0.17 < (traders == 10).mean() < 0.23  # 20% at 10x
    assert traders.max() == 100
    assert (lev[20_000 - 200 :] == 2).all()
    sizes = np.sort(notional)[::-1]
    assert sizes[: len(sizes) // 100].sum() > 0.15 * sizes.sum()  # heavy tail: top 1% >15%
    again = _book_for(scenario, seed=3)
    np.testing.assert_array_equal(again.pos_qty, book.pos_qty)
    np.testing.assert_array_equal(again.balance, book.balance)
    assert not np.array_equal(_book_for(scenario, seed=4).balance, book.balance)
