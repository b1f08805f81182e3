"""The cascade simulator: a scenario's price paths through the engine's own waterfall.

Each step of the scenario (time t):

1. exogenous move: every market's mark becomes its path price at t, displaced by the
   impact of the fund's unwinds that has not yet decayed (4.);
2. check: if no trader account breaches, the fund holds nothing and is above its floor, the
   step is done;
3. waterfall (`run_waterfall(book, profile)`): liquidation into the fund at the mark, ADL and
   socialized loss when the fund's equity is below its floor;
4. unwind: the fund sells (buys back) what it took over into the market. Each market
   remembers the net volume Q (currency units at the mark) sold into it and not yet
   refilled; the mark sits at path * (1 - I(Q)) with I(Q) = sign(Q) * k * (|Q| / D)^alpha
   (D the depth, I capped at 99%), and Q decays with the market's half-life. Selling v more
   fills at the impact averaged along that curve from Q to Q + v,
   (G(Q + v) - G(Q)) / v with G' = I, so one sale of 2v and two sales of v cost the same
   and the cascade's many small rounds do not compound a concave law. The execution price
   (rounded against the fund: down for a sale, up for a purchase) goes through the same core:
   `run_waterfall(book, profile, unwind_prices=...)`, which also pays any shortfall the
   execution left by ADL (nothing to deleverage against once the fund is flat) and
   socialized loss;
5. the mark moves to path * (1 - I(Q + v)); back to 2. The step ends at its fixed point: a
   check with no new breach (engine.incremental: only the accounts the move could reach
   and those the waterfall changed are re-evaluated; the statuses equal a full sweep's).

Impact arithmetic is Decimal at 34 digits in a local context (software arithmetic, the same
on every machine); money and decisions stay integers in the book. Everything is a function
of the book, the scenario and the seed the book was built from: no clock, no random source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

import numpy as np
import pyarrow as pa

from engine.book.book import STATUS_LIQUIDATE, Book
from engine.risk.incremental import IncrementalSweep
from engine.stress.scenario import MarketPath, Scenario, ScenarioError
from engine.waterfall import waterfall
from engine.waterfall.profile import RESERVED_ACCOUNT_BASE, Profile
from engine.waterfall.waterfall import (
    EVENT_KINDS,
    SweptRows,
    WaterfallResult,
    open_fund,
    run_waterfall,
)

ROUNDS_MAX = 100_000  # cascade rounds in one step; each round liquidates at least one account
IMPACT_MAX = Decimal("0.99")  # one unwind moves a price by at most 99%
DECIMAL = Context(prec=34, rounding=ROUND_HALF_EVEN)
_KIND_CODE = {kind: i for i, kind in enumerate(EVENT_KINDS)}
_COLUMNS = ("kind", "event_id", "account_id", "instrument", "qty", "price", "amount")
_TWO = Decimal(2)
_HALF = Decimal("0.5")
_THREE_HALVES = Decimal("1.5")


@dataclass
class StepRecord:
    """What one step did; money in units at the book's money_decimals, prices in ticks."""

    step: int
    t_s: int
    rounds: int = 0
    accounts_liquidated: int = 0
    liquidated_long: int = 0  # notional at the takeover mark of long positions taken over
    liquidated_short: int = 0
    unwind_notional: int = 0  # at the execution price
    unwind_pnl: int = 0  # the fund's realized PnL on its unwinds (slippage is a loss)
    liquidation_fees: int = 0
    takeover_surplus: int = 0
    insurance_paid: int = 0
    adl_count: int = 0
    adl_amount: int = 0
    socialized: int = 0
    unallocated: int = 0  # shortfall left after the step's last waterfall
    fund_equity: int = 0  # after the step
    fund_equity_low: int = 0  # lowest seen in the step (before ADL / socialization)
    fund_exhausted: bool = False  # the fund fell below its floor: ADL / socialization ran
    exogenous: dict[str, int] = field(default_factory=dict)  # path price, ticks
    marks: dict[str, int] = field(default_factory=dict)  # marks at the fixed point, ticks


def event_columns(result: WaterfallResult, book: Book) -> dict[str, np.ndarray]:
    """A waterfall result's events as int64 columns: kind (code in EVENT_KINDS), event_id,
    account_id, instrument (index, -1 for none), qty, price, amount."""
    log = getattr(result, "log", None)
    if log is not None and hasattr(log, "columns"):
        # The waterfall's columnar log: no Python object per event.
        columns = dict(log.columns())
        theirs = getattr(waterfall, "EVENT_KINDS", EVENT_KINDS)
        remap = np.array([_KIND_CODE[kind] for kind in theirs], dtype=np.int64)
        columns["kind"] = remap[columns["kind"]]
        return columns
    events = result.events
    n = len(events)
    index = book.instruments.index
    return {
        "kind": np.fromiter((_KIND_CODE[e.kind] for e in events), np.int64, n),
        "event_id": np.fromiter((e.event_id for e in events), np.int64, n),
        "account_id": np.fromiter((e.account_id for e in events), np.int64, n),
        "instrument": np.fromiter((index.get(e.symbol, -1) for e in events), np.int64, n),
        "qty": np.fromiter((e.qty for e in events), np.int64, n),
        "price": np.fromiter((e.price for e in events), np.int64, n),
        "amount": np.fromiter((e.amount for e in events), np.int64, n),
    }


class _EventLog:
    """Events as numpy chunks, so millions of them never live as Python objects."""

    def __init__(self) -> None:
        self._chunks: list[dict[str, np.ndarray]] = []

    def add(self, columns: dict[str, np.ndarray], step: int, t_s: int, round_: int) -> None:
        n = len(columns["kind"])
        if n == 0:
            return
        chunk: dict[str, np.ndarray] = {
            "step": np.full(n, step, dtype=np.int32),
            "t_s": np.full(n, t_s, dtype=np.int64),
            "round": np.full(n, round_, dtype=np.int32),
        }
        chunk.update({name: np.asarray(columns[name], np.int64) for name in _COLUMNS})
        chunk["kind"] = chunk["kind"].astype(np.int8)
        chunk["instrument"] = chunk["instrument"].astype(np.int32)
        self._chunks.append(chunk)

    def column(self, name: str) -> np.ndarray:
        if not self._chunks:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([c[name] for c in self._chunks])

    def __len__(self) -> int:
        return sum(len(c["step"]) for c in self._chunks)


@dataclass
class SimulationResult:
    scenario: str
    symbols: tuple[str, ...]  # the book's instruments, by index
    money_decimals: int
    fund_start: int
    floor: int
    steps: list[StepRecord]
    events: _EventLog

    @property
    def fund_exhausted(self) -> bool:
        return any(s.fund_exhausted for s in self.steps)

    def totals(self) -> dict[str, int]:
        """Sums over the run (money units); accounts counted once however often liquidated."""
        kind = self.events.column("kind")
        accounts = self.events.column("account_id")[kind == _KIND_CODE["liquidation"]]
        steps = self.steps
        return {
            "accounts_liquidated": int(len(np.unique(accounts))),
            "liquidations": sum(s.accounts_liquidated for s in steps),
            "liquidated_long": sum(s.liquidated_long for s in steps),
            "liquidated_short": sum(s.liquidated_short for s in steps),
            "unwind_notional": sum(s.unwind_notional for s in steps),
            "unwind_pnl": sum(s.unwind_pnl for s in steps),
            "liquidation_fees": sum(s.liquidation_fees for s in steps),
            "takeover_surplus": sum(s.takeover_surplus for s in steps),
            "insurance_paid": sum(s.insurance_paid for s in steps),
            "adl_count": sum(s.adl_count for s in steps),
            "adl_amount": sum(s.adl_amount for s in steps),
            "socialized": sum(s.socialized for s in steps),
            "unallocated_end": steps[-1].unallocated if steps else 0,
            "fund_start": self.fund_start,
            "fund_end": steps[-1].fund_equity if steps else self.fund_start,
            "fund_low": min((s.fund_equity_low for s in steps), default=self.fund_start),
            "rounds_max": max((s.rounds for s in steps), default=0),
            "steps": len(steps),
        }

    def steps_table(self) -> pa.Table:
        names = [
            "step",
            "t_s",
            "rounds",
            "accounts_liquidated",
            "liquidated_long",
            "liquidated_short",
            "unwind_notional",
            "unwind_pnl",
            "liquidation_fees",
            "takeover_surplus",
            "insurance_paid",
            "adl_count",
            "adl_amount",
            "socialized",
            "unallocated",
            "fund_equity",
            "fund_equity_low",
            "fund_exhausted",
        ]
        columns = {n: pa.array([getattr(s, n) for s in self.steps]) for n in names}
        return pa.table(columns)

    def prices_table(self) -> pa.Table:
        """One row per (step, market): path price and mark at the fixed point, in ticks."""
        rows = [
            (s.step, s.t_s, sym, s.exogenous[sym], s.marks[sym])
            for s in self.steps
            for sym in s.marks
        ]
        step, t_s, symbol, exogenous, mark = zip(*rows, strict=True) if rows else ((),) * 5
        return pa.table(
            {
                "step": pa.array(step, pa.int32()),
                "t_s": pa.array(t_s, pa.int64()),
                "symbol": pa.array(symbol, pa.string()).dictionary_encode(),
                "exogenous": pa.array(exogenous, pa.int64()),
                "mark": pa.array(mark, pa.int64()),
            }
        )

    def events_table(self) -> pa.Table:
        """Every waterfall event with its step, time and cascade round (raw integers)."""
        log = self.events
        kinds = pa.array(list(EVENT_KINDS), pa.string())
        symbols = pa.array(list(self.symbols), pa.string())
        instrument = log.column("instrument")
        return pa.table(
            {
                "step": pa.array(log.column("step"), pa.int32()),
                "t_s": pa.array(log.column("t_s"), pa.int64()),
                "round": pa.array(log.column("round"), pa.int32()),
                "kind": pa.DictionaryArray.from_arrays(
                    pa.array(log.column("kind"), pa.int8()), kinds
                ),
                "event_id": pa.array(log.column("event_id"), pa.int64()),
                "account_id": pa.array(log.column("account_id"), pa.int64()),
                "symbol": pa.DictionaryArray.from_arrays(
                    pa.array(instrument, pa.int32(), mask=instrument < 0), symbols
                ),
                "qty": pa.array(log.column("qty"), pa.int64()),
                "price": pa.array(log.column("price"), pa.int64()),
                "amount": pa.array(log.column("amount"), pa.int64()),
            }
        )


class _Market:
    """A scenario market bound to the book: its instrument, its depth in money units and the
    net volume the fund has sold into it (bought: negative), decaying as depth refills."""

    def __init__(self, book: Book, path: MarketPath) -> None:
        table = book.instruments
        try:
            self.inst = table.symbol_index(path.symbol)
        except KeyError:
            raise ScenarioError(
                f"markets: {path.symbol!r} is not an instrument of the book"
            ) from None
        instrument = table.instruments[self.inst]
        self.path = path
        self.symbol = path.symbol
        self.tick = Fraction(instrument.tick_size)
        if path.start is not None:
            self.start = Fraction(path.start)
        elif book.mark_set[self.inst]:
            self.start = int(book.mark[self.inst]) * self.tick
        else:
            raise ScenarioError(f"markets ({path.symbol}).start: the book has no mark for it")
        depth = Fraction(path.depth) * 10**table.money_decimals
        self.depth = Decimal(max(1, round(depth)))
        self.k, self.alpha = path.impact.k, path.impact.alpha
        self.half_life = path.impact.recovery_half_life_s
        self.volume = Decimal(0)  # Q: money units sold net and not yet refilled
        self._decay: dict[int, Decimal] = {}

    def exogenous_ticks(self, t_s: int) -> Decimal:
        price = self.path.price_at(t_s, self.start) / self.tick
        return DECIMAL.divide(Decimal(price.numerator), Decimal(price.denominator))

    def mark_ticks(self, exogenous: Decimal) -> int:
        value = DECIMAL.multiply(exogenous, 1 - self.level(self.volume))
        return max(1, int(value.to_integral_value(ROUND_HALF_EVEN)))

    def decay(self, dt_s: int) -> None:
        if self.half_life and self.volume and dt_s > 0:
            factor = self._decay.get(dt_s)
            if factor is None:  # steps are evenly spaced: one power per run, not per step
                factor = DECIMAL.power(
                    _TWO, DECIMAL.divide(Decimal(-dt_s), Decimal(self.half_life))
                )
                self._decay[dt_s] = factor
            self.volume = DECIMAL.multiply(self.volume, factor)

    def level(self, volume: Decimal) -> Decimal:
        """I(Q) = sign(Q) k (|Q| / D)^alpha: how far the mark sits below (above) the path."""
        if not self.k or not volume:
            return Decimal(0)
        size = _power(DECIMAL.divide(abs(volume), self.depth), self.alpha)
        level = min(DECIMAL.multiply(self.k, size), IMPACT_MAX)
        return level if volume > 0 else -level

    def _area(self, volume: Decimal) -> Decimal:
        """G(Q) = k D (|Q| / D)^(alpha + 1) / (alpha + 1), so that G' = I."""
        size = _power(DECIMAL.divide(abs(volume), self.depth), self.alpha + 1)
        return DECIMAL.divide(DECIMAL.multiply(self.k * self.depth, size), self.alpha + 1)

    def unwind(self, mark: int, volume: int) -> int:
        """Sell `volume` money units (buy: negative) into the market; the execution price in
        ticks, and the market remembers the volume. The fill averages the impact over the
        curve from Q to Q + volume, relative to the path; the current mark already carries
        I(Q), so the fill is mark * (1 - average) / (1 - I(Q)), rounded against the fund."""
        before, after = self.volume, self.volume + volume
        self.volume = after
        if not self.k:
            return mark
        average = DECIMAL.divide(self._area(after) - self._area(before), Decimal(volume))
        average = max(min(average, IMPACT_MAX), -IMPACT_MAX)
        ratio = DECIMAL.divide(1 - average, 1 - self.level(before))
        price = DECIMAL.multiply(Decimal(mark), ratio)
        price = price.to_integral_value(ROUND_FLOOR if volume > 0 else ROUND_CEILING)
        return max(1, int(price))


def _power(x: Decimal, exponent: Decimal) -> Decimal:
    # The common exponents of the square-root law: sqrt and products are far cheaper than
    # the general power, and exact where the power is.
    if exponent == 1:
        return x
    if exponent == _HALF:
        return DECIMAL.sqrt(x)
    if exponent == _THREE_HALVES:
        return DECIMAL.multiply(x, DECIMAL.sqrt(x))
    if exponent == _TWO:
        return DECIMAL.multiply(x, x)
    return DECIMAL.power(x, exponent)


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
    markets = [_Market(book, path) for path in scenario.markets]
    by_inst = {m.inst: m for m in markets}
    breach = _BreachCheck(book, profile)
    result = SimulationResult(
        scenario=scenario.name,
        symbols=tuple(book.instruments.index),
        money_decimals=money_decimals,
        fund_start=book.account_margin(fund)[0],
        floor=floor,
        steps=[],
        events=_EventLog(),
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
            first = run_waterfall(book, profile, swept=breach.current())
            columns = event_columns(first, book)
            _account(record, first, columns, book, floor)
            result.events.add(columns, step, t_s, record.rounds)
            holdings = book.positions_of(fund)
            if not holdings:
                if first.accounts_liquidated == 0:
                    break  # nothing to unwind and no one liquidated: nothing more will change
                continue
            prices, moved = _unwind_plan(book, holdings, by_inst)
            second = run_waterfall(book, profile, unwind_prices=prices, swept=breach.current())
            columns = event_columns(second, book)
            _account(record, second, columns, book, floor)
            result.events.add(columns, step, t_s, record.rounds)
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


def _needs_waterfall(book: Book, profile: Profile, floor: int, breach: _BreachCheck) -> bool:
    """A trader breaches, or the fund holds positions, or its equity is below the floor."""
    fund = profile.fund_account_id
    if book.positions_of(fund) or book.account_margin(fund)[0] < floor:
        return True
    return breach.any()


def _unwind_plan(
    book: Book, holdings: list[tuple[int, int, int]], by_inst: dict[int, _Market]
) -> tuple[dict[str, int], list[_Market]]:
    """Execution price of each fund position, and the markets whose depth it consumed.

    An instrument outside the scenario has no depth: it unwinds at its mark, no impact.
    """
    prices: dict[str, int] = {}
    moved: list[_Market] = []
    for inst, qty, _ in holdings:
        symbol = book.instruments.instruments[inst].symbol
        mark = int(book.mark[inst])
        market = by_inst.get(inst)
        if market is None:
            prices[symbol] = mark
            continue
        # Closing a long sells (positive volume), closing a short buys.
        volume = qty * int(book.mark_lot_value[inst])
        prices[symbol] = market.unwind(mark, volume)
        moved.append(market)
    return prices, moved


def _account(
    record: StepRecord,
    result: WaterfallResult,
    columns: dict[str, np.ndarray],
    book: Book,
    floor: int,
) -> None:
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
    liquidation = kind == _KIND_CODE["liquidation"]
    record.liquidated_long += sum(notional[liquidation & (qty > 0)].tolist())
    record.liquidated_short += sum(notional[liquidation & (qty < 0)].tolist())
    unwind = kind == _KIND_CODE["unwind"]
    record.unwind_notional += sum(notional[unwind].tolist())
    record.unwind_pnl += sum(columns["amount"][unwind].tolist())
    record.adl_count += int(np.count_nonzero(kind == _KIND_CODE["adl"]))
    # The fund's equity just before ADL / socialization is the floor less what they were
    # asked to cover; after it, what the result says.
    asked = max(result.adl_shortfall, result.socialized_amount + result.unallocated_loss)
    low = min(result.fund_equity_before, result.fund_equity_after)
    if asked > 0:
        record.fund_exhausted = True
        low = min(low, floor - asked)
    record.fund_equity_low = min(record.fund_equity_low, low)
