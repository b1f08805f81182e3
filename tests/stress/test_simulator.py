"""The cascade simulator: a hand-computed cascade, the equivalence with the plain waterfall
at zero impact, the fixed point and conservation at every step, determinism.

Grid of the worked example (tests.stress.examples): BTCUSDT, tick 0.01, lot 0.001 BTC,
money at 8 decimals, so one lot moving one tick is 1000 units and 1 USDT = 10^8 units.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from engine.book.book import STATUS_LIQUIDATE, Book
from engine.book.limits import RESERVED_ACCOUNT_BASE
from engine.reports import simulation_tables
from engine.stress import simulator
from engine.stress.impact import Market, unwind_plan
from engine.stress.scenario import scenario_from_dict
from engine.stress.scenario_model import Scenario
from engine.stress.simulation_result import StepRecord
from engine.stress.simulator import simulate
from engine.waterfall.conservation import audit
from engine.waterfall.fund import open_fund
from engine.waterfall.run import run_waterfall
from tests.stress.examples import USDT, book_for, crash_scenario, example_book, example_doc


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
    scenario = scenario_from_dict(example_doc(), None)
    book = example_book(scenario)
    result = simulate(book, scenario)
    step = result.steps[0]
    assert step.rounds == 2 and step.accounts_liquidated == 2
    assert step.marks == {"BTCUSDT": 85_057_36} and step.exogenous == {"BTCUSDT": 90_400_00}
    assert step.takeover_surplus == 400 * USDT and step.insurance_paid == 312 * USDT
    events = simulation_tables.events_table(result).to_pylist()
    assert [(e["kind"], e["round"]) for e in events] == [
        ("liquidation", 1),
        ("takeover", 1),
        ("unwind", 1),
        ("liquidation", 2),
        ("insurance_payout", 2),
        ("unwind", 2),
        ("socialized_loss", 2),
    ]
    assert [e["price_ticks"] for e in events if e["kind"] == "unwind"] == [89_044_00, 86_372_68]
    assert [str(e["price"]) for e in events if e["kind"] == "unwind"] == ["89044.00", "86372.68"]
    assert step.unwind_pnl == -(1356 * USDT + 1315_32 * 10**6)
    assert step.socialized == 583_32 * 10**6 and events[-1]["account_id"] == 3
    assert step.fund_exhausted and step.fund_equity == 0
    assert step.fund_equity_low == -583_32 * 10**6
    assert step.liquidated_long == (90_400 + 87_688) * USDT and step.liquidated_short == 0
    assert audit(book, closed=True).ok


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
    scenario = crash_scenario(400, k="0")
    simulated, plain = book_for(scenario), book_for(scenario)
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
    mine = _raw_rows(simulation_tables.events_table(result))
    assert mine == plain_events


def test_zero_impact_shock_with_adl_starts_as_the_plain_waterfall() -> None:
    # A fund of 1 USDT is exhausted at once. The simulator's first waterfall is the plain
    # run_waterfall on the same book (ADL at the mark in the same call, the same event ids);
    # only after it does the step go on: the fund unwinds at the mark (realized 0) and any
    # account that ADL left in breach is liquidated in the same step, to the fixed point.
    base = replace(crash_scenario(400, k="0"), insurance_fund=Decimal(1))
    scenario = base.shocked({m.symbol: Fraction(-3, 10) for m in base.markets})
    simulated, plain = book_for(scenario), book_for(scenario)
    profile = scenario.profile
    open_fund(plain, profile, 1 * USDT)
    for symbol, ticks in _path_ticks(scenario, plain, 0).items():
        plain.set_mark(symbol, ticks)
    expected = _event_rows(run_waterfall(plain, profile).events)
    assert any(row[0] == "adl" for row in expected)
    result = simulate(simulated, scenario)
    rows = _raw_rows(simulation_tables.events_table(result))
    last_id = max(row[1] for row in expected)
    assert [row for row in rows if row[1] <= last_id] == expected
    step = result.steps[0]
    assert step.fund_exhausted and step.unwind_pnl == 0
    assert simulated.positions_of(profile.fund_account_id) == []
    status = simulated.sweep(with_initial_margin=False).status
    assert not (status[simulated.account_id < RESERVED_ACCOUNT_BASE] >= STATUS_LIQUIDATE).any()
    assert audit(simulated, closed=True).ok


def test_fixed_point_and_conservation_at_every_step() -> None:
    scenario = crash_scenario(500)
    book = book_for(scenario)
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
    scenario = crash_scenario(300)
    runs = [simulate(book_for(scenario, seed), scenario) for seed in (9, 9, 10)]
    first, again, other = (simulation_tables.events_table(r) for r in runs)
    assert first.equals(again) and simulation_tables.steps_table(runs[0]).equals(
        simulation_tables.steps_table(runs[1])
    )
    assert simulation_tables.prices_table(runs[0]).equals(simulation_tables.prices_table(runs[1]))
    assert not first.equals(other)


def test_the_unwind_is_priced_on_the_lots_it_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fund of 1 USDT and a 20% fall: ADL runs in the first rounds and the fund keeps the
    # lots it did not need (at 30% ADL at the bankruptcy price takes all of them and nothing
    # is unwound). The unwind must be priced on the fund's holdings after every takeover
    # at those marks: per round and instrument the lots priced equal the lots unwound, and
    # each market's impact memory Q grows by exactly the unwound lots x the lot value at
    # the mark (what the fund sold).
    base = replace(crash_scenario(400), insurance_fund=Decimal(1))
    scenario = base.shocked({m.symbol: Fraction(-2, 10) for m in base.markets})
    book = book_for(scenario)
    plans: list[tuple[dict[int, int], dict[int, int], dict[int, Decimal]]] = []

    def recording_plan(
        book: Book, holdings: list[tuple[int, int, int]], by_inst: dict[int, Market]
    ) -> tuple[dict[str, int], list[Market]]:
        before = {inst: m.volume for inst, m in by_inst.items()}
        prices, moved = unwind_plan(book, holdings, by_inst)
        priced = {inst: qty for inst, qty, _ in holdings}
        lot_value = {inst: int(book.mark_lot_value[inst]) for inst in priced}
        growth = {inst: m.volume - before[inst] for inst, m in by_inst.items()}
        plans.append((priced, lot_value, growth))
        return prices, moved

    monkeypatch.setattr(simulator, "unwind_plan", recording_plan)
    result = simulate(book, scenario)
    assert result.fund_exhausted and result.totals()["adl_count"] > 0
    events = simulation_tables.events_table(result).to_pydict()
    unwound: dict[tuple[int, int], dict[int, int]] = {}
    for kind, step, round_, symbol, qty in zip(
        events["kind"],
        events["step"],
        events["round"],
        events["symbol"],
        events["qty_lots"],
        strict=True,
    ):
        if kind == "unwind":
            inst = book.instruments.symbol_index(symbol)
            lots = unwound.setdefault((step, round_), {})
            lots[inst] = lots.get(inst, 0) + qty
    assert len(plans) == len(unwound) > 0
    for (priced, lot_value, growth), key in zip(plans, sorted(unwound), strict=True):
        assert priced == unwound[key], f"step, round {key}: priced {priced}, unwound {unwound[key]}"
        for inst, volume in growth.items():
            sold = unwound[key].get(inst, 0) * lot_value.get(inst, 0)
            # Q is a 34-digit Decimal: less than a money unit apart is equal (a lot is far more).
            assert abs(volume - sold) < 1, f"step, round {key}, instrument {inst}: Q grew {volume}"


def test_worked_cascade_fund_flows_reconcile() -> None:
    # The worked cascade above, as the fund's flows (floor 0, fund 2000 USDT):
    # round 1: income 400 (A's takeover surplus), unwind loss 90400 - 89044 = 1356 against
    #   the mark: deficit 1356; the fund pays it all: drawdown max(2000, 0) - max(1044, 0)
    #   + 400 = 1356.
    # round 2: payout 312 for B + unwind loss 87688 - 86372.68 = 1315.32: deficit 1627.32;
    #   drawdown max(1044, 0) - max(0, 0) + 0 = 1044, socialized 583.32, unallocated 0:
    #   1044 + 583.32 = 1627.32.
    # Over the step: deficit 2983.32 = drawdown 2400 + socialized 583.32.
    scenario = scenario_from_dict(example_doc(), None)
    result = simulate(example_book(scenario), scenario)
    step = result.steps[0]
    assert step.deficit_to_cover == 2983_32 * 10**6
    assert step.fund_drawdown == 2400 * USDT
    assert step.socialized == 583_32 * 10**6 and step.adl_amount == 0
    assert step.unallocated_added == 0 == step.unallocated


def test_fund_flows_reconcile_with_the_stocks_in_a_crash() -> None:
    # Every step's flows reconcile to the unit; over the run the fund's drawdown is what
    # its equity above the floor lost plus its income (fees, takeover surplus), and the
    # unallocated flows add up to the unallocated loss at the end.
    base = replace(crash_scenario(400), insurance_fund=Decimal(50_000))
    scenario = base.shocked({m.symbol: Fraction(-1, 5) for m in base.markets})
    result = simulate(book_for(scenario), scenario)
    for s in result.steps:
        covered = s.fund_drawdown + s.adl_amount + s.socialized + s.unallocated_added
        assert covered == s.deficit_to_cover, f"step {s.step}"
    totals = result.totals()
    assert result.fund_exhausted and totals["deficit_to_cover"] > totals["fund_drawdown"] > 0
    floor = result.floor
    income = totals["liquidation_fees"] + totals["takeover_surplus"]
    lost = max(totals["fund_start"], floor) - max(totals["fund_end"], floor)
    assert totals["fund_drawdown"] == lost + income
    assert totals["unallocated_added"] == totals["unallocated_end"]


def _raw_rows(table: pa.Table) -> list[tuple[object, ...]]:
    """(kind, event_id, account_id, symbol, lots, ticks, money units) of each event: the raw
    integers beside the decimal columns (0 lots and ticks for money-only actions), the
    amount back in units from its decimal128 at the money scale."""
    t = table.to_pydict()
    scale = table.schema.field("amount").type.scale
    return [
        (kind, event_id, account, symbol, lots or 0, ticks or 0, int(amount.scaleb(scale)))
        for kind, event_id, account, symbol, lots, ticks, amount in zip(
            t["kind"],
            t["event_id"],
            t["account_id"],
            t["symbol"],
            t["qty_lots"],
            t["price_ticks"],
            t["amount"],
            strict=True,
        )
    ]
