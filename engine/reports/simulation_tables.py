"""A stress run's Arrow tables (steps, prices, events), from its SimulationResult.

They follow engine.reports.decimals: money decimal128 at the money scale, prices and sizes
decimal128 in their units (raw ticks and lots beside them, named `*_ticks`, `*_lots`),
symbols and kinds as strings, and every row's UTC `time` (the scenario's start plus `t_s`).

    steps.parquet   step, t_s, time, rounds, accounts_liquidated, the step's money
                    (liquidated_long / short, unwind, fees, payouts, ADL, socialized,
                    the fund's flows and equity), adl_count, fund_exhausted
    prices.parquet  step, t_s, time, symbol, exogenous, exogenous_ticks, mark, mark_ticks
    events.parquet  step, t_s, time, round, then engine.reports.event_tables' columns
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.reports.decimals import grid_array, money_array, utc_times
from engine.reports.event_tables import event_arrays
from engine.stress.simulation_result import EVENT_COLUMNS, SimulationResult


def steps_table(result: SimulationResult) -> pa.Table:
    """One row per step: its time, the cascade's counts and money (decimal128)."""
    money = result.money_decimals
    step = np.array([s.step for s in result.steps], dtype=np.int64)
    t_s = np.array([s.t_s for s in result.steps], dtype=np.int64)
    columns: dict[str, pa.Array] = {
        "step": pa.array(step, pa.int64()),
        "t_s": pa.array(t_s, pa.int64()),
        "time": utc_times(result.start, t_s),
    }
    for name in STEP_COLUMNS:
        values = [getattr(s, name) for s in result.steps]
        if name in STEP_COUNTS:
            columns[name] = pa.array(values, pa.int64())
        elif name == "fund_exhausted":
            columns[name] = pa.array(values, pa.bool_())
        else:
            columns[name] = money_array(np.array(values, dtype=np.int64), money)
    return pa.table(columns)


def prices_table(result: SimulationResult) -> pa.Table:
    """One row per (step, market): path price and mark at the fixed point, in price
    units (`exogenous`, `mark`) and in ticks (`exogenous_ticks`, `mark_ticks`)."""
    rows = [
        (s.step, s.t_s, sym, s.exogenous[sym], s.marks[sym])
        for s in result.steps
        for sym in s.marks
    ]
    step, t_s, symbol, exogenous, mark = zip(*rows, strict=True) if rows else ((),) * 5
    index = result.instruments.index
    inst = np.array([index[sym] for sym in symbol], dtype=np.int64)
    exogenous_ticks = np.array(exogenous, dtype=np.int64)
    mark_ticks = np.array(mark, dtype=np.int64)
    t = np.array(t_s, dtype=np.int64)
    return pa.table(
        {
            "step": pa.array(step, pa.int64()),
            "t_s": pa.array(t, pa.int64()),
            "time": utc_times(result.start, t),
            "symbol": pa.array(symbol, pa.string()),
            "exogenous": grid_array(exogenous_ticks, inst, result.instruments, tick=True),
            "exogenous_ticks": pa.array(exogenous_ticks, pa.int64()),
            "mark": grid_array(mark_ticks, inst, result.instruments, tick=True),
            "mark_ticks": pa.array(mark_ticks, pa.int64()),
        }
    )


def events_table(result: SimulationResult) -> pa.Table:
    """Every waterfall event with its step, time and cascade round, decoded as in
    engine.reports.event_tables."""
    log = result.events
    t_s = log.column("t_s")
    columns = {name: log.column(name) for name in EVENT_COLUMNS}
    return pa.table(
        {
            "step": pa.array(log.column("step"), pa.int64()),
            "t_s": pa.array(t_s, pa.int64()),
            "time": utc_times(result.start, t_s),
            "round": pa.array(log.column("round"), pa.int64()),
            **event_arrays(columns, result.instruments),
        }
    )


# StepRecord fields in steps.parquet after step, t_s, time; counts and a flag, else money.
STEP_COLUMNS = (
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
    "deficit_to_cover",
    "fund_drawdown",
    "unallocated_added",
    "fund_equity",
    "fund_equity_low",
    "fund_exhausted",
)
STEP_COUNTS = frozenset({"rounds", "accounts_liquidated", "adl_count"})
