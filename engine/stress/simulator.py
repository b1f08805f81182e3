"""The cascade simulator: a scenario's price paths through the engine's own waterfall.

Each step of the scenario (time t):

1. exogenous move: every market's mark becomes its path price at t, displaced by the
   impact of the fund's unwinds that has not yet decayed (4.);
2. check: if no trader account breaches, the fund holds nothing and is above its floor, the
   step is done;
3. waterfall (`run_waterfall(book, profile)`): liquidation into the fund at the mark, ADL and
   socialized loss when the fund's equity is below its floor; run again at the same marks
   while it took someone over and a trader is still in breach (a payer of ADL or socialized
   loss can be), so every takeover at these marks is in before the unwind is priced;
4. unwind: the fund sells (buys back) what it holds into the market, at a price moved
   by its own volume (engine.stress.impact: the impact I(Q) of the net volume Q sold and
   not yet refilled, averaged along the curve for the fill, rounded against the fund). The
   execution price goes through the same core: `run_waterfall(book, profile,
   unwind_prices=...)`, which also pays any shortfall the execution left by ADL (nothing to
   deleverage against once the fund is flat) and socialized loss. The lots priced are the
   lots unwound (asserted), so the impact memory holds exactly the volume sold;
5. the mark moves to path * (1 - I(Q + v)); back to 2. The step ends at its fixed point: a
   check with no new breach (engine.risk.incremental: only the accounts the move could
   reach and those the waterfall changed are re-evaluated; the statuses equal a full
   sweep's).

Money and decisions stay integers in the book; what happened is a SimulationResult
(engine.stress.simulation_result). Everything is a function of the book, the scenario and
the seed the book was built from: no clock, no random source.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_EVEN
from fractions import Fraction

import numpy as np

from engine.book.book import STATUS_LIQUIDATE, Book
from engine.book.limits import RESERVED_ACCOUNT_BASE
from engine.risk.incremental import IncrementalSweep
from engine.stress.fund_flows import fund_flows
from engine.stress.impact import Market, unwind_plan
from engine.stress.scenario_model import Scenario, ScenarioError
from engine.stress.simulation_result import (
    KIND_CODE,
    EventLog,
    SimulationResult,
    StepRecord,
    event_columns,
)
from engine.waterfall.events import WaterfallResult
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile
from engine.waterfall.run import SweptRows, run_waterfall

ROUNDS_MAX = 100_000  # cascade rounds in one step; each round liquidates at least one account


def simulate(
    book: Book,
    scenario: Scenario,
    *,
    on_step: Callable[[Book, StepRecord], None] | None = None,
) -> SimulationResult:
    """Run `scenario` on `book` (mutated in place); the insurance fund is opened and funded
    with the scenario's amount. `on_step` sees the book at each step's fixed point."""
    profile = scenario.profile
    money_decimals = book.instruments.money_decimals
    fund = profile.fund_account_id
    fund_amount = Fraction(scenario.insurance_fund) * 10**money_decimals
    if fund_amount.denominator != 1:
        raise ScenarioError(f"insurance_fund: not a whole number of money units ({fund_amount})")
    open_fund(book, profile, fund_amount.numerator)
    floor = profile.fund_floor_units(money_decimals)
    markets = [Market(book, path) for path in scenario.markets]
    by_inst = {m.inst: m for m in markets}
    breach = _BreachCheck(book, profile)
    result = SimulationResult(
        scenario=scenario.name,
        symbols=tuple(book.instruments.index),
        money_decimals=money_decimals,
        fund_start=book.account_margin(fund)[0],
        floor=floor,
        steps=[],
        events=EventLog(),
        instruments=book.instruments,
        start=scenario.start,
    )
    previous_t = 0
    for step, t_s in enumerate(scenario.times()):
        for market in markets:
            market.decay(t_s - previous_t)
        previous_t = t_s
        record = StepRecord(step, t_s)
        exogenous = {m.symbol: m.exogenous_ticks(t_s) for m in markets}
        for market in markets:
            record.exogenous[market.symbol] = max(
                1, int(exogenous[market.symbol].to_integral_value(ROUND_HALF_EVEN))
            )
            book.set_mark(market.symbol, market.mark_ticks(exogenous[market.symbol]))
        record.fund_equity_low = book.account_margin(fund)[0]
        while _needs_waterfall(book, profile, floor, breach):
            record.rounds += 1
            assert record.rounds <= ROUNDS_MAX, "the cascade did not reach a fixed point"
            first = _waterfall(book, profile, breach, record, result, floor)
            # Takeovers at these marks to their fixed point (ADL or socialized loss can
            # leave a payer in breach), so the unwind is priced on the lots it will close.
            while first.accounts_liquidated and breach.any():
                first = _waterfall(book, profile, breach, record, result, floor)
            holdings = book.positions_of(fund)
            if not holdings:
                if first.accounts_liquidated == 0:
                    break  # nothing to unwind and no one liquidated: nothing more will change
                continue
            prices, moved = unwind_plan(book, holdings, by_inst)
            second = _waterfall(book, profile, breach, record, result, floor, prices)
            _check_unwound(second, holdings, book)
            for market in moved:
                book.set_mark(market.symbol, market.mark_ticks(exogenous[market.symbol]))
        record.fund_equity = book.account_margin(fund)[0]
        record.fund_equity_low = min(record.fund_equity_low, record.fund_equity)
        record.marks = {m.symbol: int(book.mark[m.inst]) for m in markets}
        result.steps.append(record)
        if on_step is not None:
            on_step(book, record)
    return result


class _BreachCheck:
    """Is any trader in breach? Through the incremental sweep: between cascade rounds and
    quiet steps the marks move little, so only the accounts the move could reach (and those
    the waterfall changed) are re-checked; statuses equal a full sweep's."""

    def __init__(self, book: Book, profile: Profile) -> None:
        self.book = book
        self.house = (profile.fund_account_id, profile.unwind_account_id)
        self.sweep = IncrementalSweep(book)

    def current(self) -> SweptRows:
        """A sweep at the current marks over rows that include every breached account."""
        tick = self.sweep.tick()
        return SweptRows(tick.rows, tick.equity, tick.maintenance_margin, tick.status)

    def any(self) -> bool:
        swept = self.current()
        ids = self.book.account_id[swept.rows[swept.status >= STATUS_LIQUIDATE]]
        traders = (ids < RESERVED_ACCOUNT_BASE) & (ids != self.house[0]) & (ids != self.house[1])
        return bool(traders.any())


def _waterfall(
    book: Book,
    profile: Profile,
    breach: _BreachCheck,
    record: StepRecord,
    result: SimulationResult,
    floor: int,
    prices: dict[str, int] | None = None,
) -> WaterfallResult:
    """One waterfall at the current marks (with the unwind at `prices` when given), its
    figures added to the step's record and its events to the run's log."""
    lot_value = book.mark_lot_value.copy()  # the marks the unwind is measured against
    done = run_waterfall(book, profile, unwind_prices=prices, swept=breach.current())
    columns = event_columns(done, book)
    _account(record, done, columns, book, floor, lot_value)
    result.events.add(columns, record.step, record.t_s, record.rounds)
    return done


def _check_unwound(
    result: WaterfallResult, holdings: list[tuple[int, int, int]], book: Book
) -> None:
    """The unwind closed exactly the lots it was priced on: no takeover came in between."""
    columns = event_columns(result, book)
    unwind = columns["kind"] == KIND_CODE["unwind"]
    closed = dict(
        zip(columns["instrument"][unwind].tolist(), columns["qty"][unwind].tolist(), strict=True)
    )
    priced = {inst: qty for inst, qty, _ in holdings}
    assert result.accounts_liquidated == 0 and closed == priced, (
        f"unwind priced {priced} but closed {closed} (lots by instrument)"
    )


def _needs_waterfall(book: Book, profile: Profile, floor: int, breach: _BreachCheck) -> bool:
    """A trader breaches, or the fund holds positions, or its equity is below the floor."""
    fund = profile.fund_account_id
    if book.positions_of(fund) or book.account_margin(fund)[0] < floor:
        return True
    return breach.any()


def _account(
    record: StepRecord,
    result: WaterfallResult,
    columns: dict[str, np.ndarray],
    book: Book,
    floor: int,
    lot_value: np.ndarray,
) -> None:
    flows = fund_flows(result, floor)
    record.deficit_to_cover += flows.deficit_to_cover
    record.fund_drawdown += flows.fund_drawdown
    record.unallocated_added += flows.unallocated
    record.accounts_liquidated += result.accounts_liquidated
    record.liquidation_fees += result.liquidation_fees
    record.takeover_surplus += result.takeover_surplus
    record.insurance_paid += result.insurance_paid
    record.adl_amount += result.adl_amount
    record.socialized += result.socialized_amount
    record.unallocated = result.unallocated_loss
    kind, qty = columns["kind"], columns["qty"]
    tick_value = book.instruments.tick_value[np.maximum(columns["instrument"], 0)]
    # One event's notional fits int64 (the book bounds |qty| * tick_value by 2^62 / price);
    # their sum need not, so it is taken in Python integers.
    notional = np.abs(qty) * columns["price"] * tick_value
    liquidation = kind == KIND_CODE["liquidation"]
    record.liquidated_long += sum(notional[liquidation & (qty > 0)].tolist())
    record.liquidated_short += sum(notional[liquidation & (qty < 0)].tolist())
    unwind = kind == KIND_CODE["unwind"]
    record.unwind_notional += sum(notional[unwind].tolist())
    record.unwind_pnl += sum(columns["amount"][unwind].tolist())
    # The deficit the fund's equity says it took on is its payouts plus the unwind's loss
    # against the mark (a fill at the price instead of the mark moves qty x the difference).
    inst = columns["instrument"][unwind]
    fill_value = columns["price"][unwind] * book.instruments.tick_value[inst]
    slippage = sum((qty[unwind] * (lot_value[inst] - fill_value)).tolist())
    assert flows.deficit_to_cover == result.insurance_paid + slippage, (
        f"fund deficit {flows.deficit_to_cover} != payouts {result.insurance_paid}"
        f" + unwind loss {slippage}"
    )
    record.adl_count += int(np.count_nonzero(kind == KIND_CODE["adl"]))
    # The fund's equity just before ADL / socialization is the floor less what they were
    # asked to cover; after it, what the result says.
    asked = max(result.adl_shortfall, result.socialized_amount + result.unallocated_loss)
    low = min(result.fund_equity_before, result.fund_equity_after)
    if asked > 0:
        record.fund_exhausted = True
        low = min(low, floor - asked)
    record.fund_equity_low = min(record.fund_equity_low, low)
