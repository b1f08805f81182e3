"""The figures of a stress run: the summary (summary.json) and the tables printed on screen.

- `forward_summary` / `forward_table`: the cascade over the scenario's path: accounts
  liquidated, notional long and short, the worst step, the insurance fund's start, low and
  end, fees, ADL, socialized loss;
- `reverse_summary` / `reverse_table` / `points_table`: the reverse stress test's move, its
  bracket and every evaluation (`points_table` is reverse_stress.parquet: the move as an
  exact decimal128, money decimal128 at the money scale).
  Each evaluation shows the fund's stocks (equity at the start, its low, at the end) apart
  from its flows over the run, which reconcile to the unit (engine.stress.fund_flows):
  deficit to cover = fund drawdown + ADL + socialized + unallocated.

Money in summary.json is exact decimal text (format_units); on screen it is rounded to the
cent (`money`) or shortened to k / M / B (`human`), from the integer, never through a float.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa
from rich.console import Group
from rich.table import Table

from engine.book.fixed import format_units
from engine.reports.customers import FundState, StatusTally
from engine.reports.decimals import money_array
from engine.stress.reverse import ReverseStressResult, StressPoint
from engine.stress.simulation_result import SimulationResult

# Totals of SimulationResult.totals() that are counts, not money.
COUNT_TOTALS = frozenset(
    {"accounts_liquidated", "liquidations", "adl_count", "rounds_max", "steps"}
)


def forward_summary(
    result: SimulationResult,
    n_accounts: int,
    n_positions: int,
    *,
    customers: StatusTally | None = None,
    fund: FundState | None = None,
) -> dict[str, Any]:
    """The forward run's figures for summary.json (money as exact decimal text).
    `n_accounts`, `n_positions`: the customers' before the run; `customers`: by status at
    the end; `fund`: the insurance fund's account at the end, reported apart."""
    totals = result.totals()
    decimals = result.money_decimals
    per_step = [s.liquidated_long + s.liquidated_short for s in result.steps]
    peak = int(np.argmax(per_step)) if per_step else 0
    money_keys = set(totals) - COUNT_TOTALS
    summary: dict[str, Any] = {
        "accounts": n_accounts,
        "positions": n_positions,
        "peak_step_t_s": result.steps[peak].t_s if per_step else 0,
        "peak_step_liquidated": format_units(per_step[peak] if per_step else 0, decimals),
        "fund_exhausted": result.fund_exhausted,
    }
    for key, value in totals.items():
        summary[key] = format_units(value, decimals) if key in money_keys else value
    if customers is not None:
        summary["customers_end"] = {"customers": customers.customers, **customers.by_status}
    if fund is not None:
        summary["fund"] = fund.as_json(decimals)
    return summary


def forward_table(result: SimulationResult, summary: dict[str, Any]) -> Table:
    """The forward run on screen, from its result and its `forward_summary`."""
    totals = result.totals()
    decimals = result.money_decimals
    liquidated = totals["liquidated_long"] + totals["liquidated_short"]
    long_pct = 100 * totals["liquidated_long"] / liquidated if liquidated else 0.0
    accounts, positions = summary["accounts"], summary["positions"]
    table = Table(title=f"{result.scenario}: {accounts:,} customers, {positions:,} positions")
    table.add_column("figure")
    table.add_column("value", justify="right")
    share = 100 * totals["accounts_liquidated"] / max(accounts, 1)
    peak_t = summary["peak_step_t_s"]
    peak = int(Decimal(summary["peak_step_liquidated"]).scaleb(decimals))
    rows = [
        ("accounts liquidated", f"{totals['accounts_liquidated']:,} ({share:.1f}%)"),
        ("liquidated notional", money(liquidated, decimals)),
        ("  long / short", f"{long_pct:.1f}% / {100 - long_pct:.1f}%" if liquidated else "-"),
        ("worst step", f"t+{peak_t // 3600}h{peak_t // 60 % 60:02d}: {money(peak, decimals)}"),
        ("insurance fund start", money(totals["fund_start"], decimals)),
        ("insurance fund low", money(totals["fund_low"], decimals)),
        ("insurance fund end", money(totals["fund_end"], decimals)),
        ("liquidation fees", money(totals["liquidation_fees"], decimals)),
        ("takeover surplus", money(totals["takeover_surplus"], decimals)),
        ("paid for bankrupt accounts", money(totals["insurance_paid"], decimals)),
        ("unwind slippage (fund PnL)", money(totals["unwind_pnl"], decimals)),
        ("deficit to cover", money(totals["deficit_to_cover"], decimals)),
        ("  paid by the fund", money(totals["fund_drawdown"], decimals)),
        (
            "  ADL",
            f"{totals['adl_count']:,} fills, {money(totals['adl_amount'], decimals)}",
        ),
        ("  socialized loss", money(totals["socialized"], decimals)),
        ("  unallocated", money(totals["unallocated_added"], decimals)),
        ("unallocated at end", money(totals["unallocated_end"], decimals)),
        ("cascade rounds (max in a step)", f"{totals['rounds_max']}"),
        ("steps", f"{totals['steps']:,}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def reverse_summary(result: ReverseStressResult, decimals: int) -> dict[str, Any]:
    """The reverse stress test's figures for summary.json (moves and money as exact decimal
    text), with every evaluation's stocks and flows (`points`)."""
    return {
        "direction": {s: str(d) for s, d in result.direction.items()},
        "tolerance": str(result.tolerance),
        "move": None if result.move is None else fraction_text(result.move),
        "safe_move": None if result.safe_move is None else fraction_text(result.safe_move),
        "move_max": fraction_text(result.move_max),
        "evaluations": len(result.points),
        "points": [_point_summary(p, decimals) for p in result.points],
    }


# (summary key, table heading, StressPoint field) of the fund's stocks and its flows.
STOCKS = (
    ("fund_start", "fund start", "fund_start"),
    ("fund_low", "fund low", "fund_low"),
    ("fund_end", "fund end", "fund_end"),
)
FLOWS = (
    ("deficit_to_cover", "deficit to cover", "deficit_to_cover"),
    ("fund_drawdown", "fund drawdown", "fund_drawdown"),
    ("adl", "ADL", "adl_amount"),
    ("socialized", "socialized", "socialized"),
    ("unallocated", "unallocated", "unallocated"),
)


def _point_summary(point: StressPoint, decimals: int) -> dict[str, Any]:
    return {
        "move": fraction_text(point.move),
        "fund_exhausted": point.fund_exhausted,
        "stock": {key: format_units(getattr(point, f), decimals) for key, _, f in STOCKS},
        "flow": {key: format_units(getattr(point, f), decimals) for key, _, f in FLOWS},
        "accounts_liquidated": point.accounts_liquidated,
        "liquidated_notional": format_units(point.liquidated_notional, decimals),
    }


def points_table(result: ReverseStressResult, decimals: int) -> pa.Table:
    """Every evaluation of the reverse stress test, by move (money as decimal128)."""
    points = result.points
    moves = [Decimal(fraction_text(p.move)) for p in points]
    # A bisection's moves are dyadic: exact at the largest number of places among them.
    places = max((max(0, -int(m.as_tuple().exponent)) for m in moves), default=0)
    move_type = pa.decimal128(38, min(places, 30))
    return pa.table(
        {
            "move": pa.array(moves, move_type),
            "fund_exhausted": pa.array([p.fund_exhausted for p in points], pa.bool_()),
            **{
                key: money_array(np.array([getattr(p, f) for p in points], np.int64), decimals)
                for key, _, f in STOCKS + FLOWS
            },
            "accounts_liquidated": pa.array([p.accounts_liquidated for p in points], pa.int64()),
            "liquidated_notional": money_array(
                np.array([p.liquidated_notional for p in points], np.int64), decimals
            ),
            "rounds": pa.array([p.rounds for p in points], pa.int64()),
        }
    )


def reverse_table(result: ReverseStressResult, decimals: int) -> Group:
    """The reverse stress test on screen, one row per evaluation (exhausted ones in red), in
    two tables that each fit 80 columns: the fund's stocks with what was liquidated, and
    the flows over the run, which reconcile."""
    if result.move is None:
        title = f"reverse stress: the fund survives every move up to {pct(result.move_max)}"
    else:
        title = (
            f"reverse stress: the fund is exhausted from a move of {pct(result.move)}"
            f" (bracket {pct(result.tolerance)})"
        )
    stocks = Table(title=f"{title}\nthe fund's equity (stocks) and what was liquidated")
    flows = Table(
        title="over the run (flows): deficit to cover = fund drawdown + ADL + socialized"
        " + unallocated"
    )
    for name in ("move", *(h for _, h, _ in STOCKS), "liquidated", "notional"):
        stocks.add_column(name, justify="right")
    for name in ("move", *(h for _, h, _ in FLOWS)):
        flows.add_column(name, justify="right")
    for p in result.points:
        style = "red" if p.fund_exhausted else None
        stocks.add_row(
            pct(p.move),
            *(human(getattr(p, f), decimals) for _, _, f in STOCKS),
            f"{p.accounts_liquidated:,}",
            human(p.liquidated_notional, decimals),
            style=style,
        )
        flows.add_row(
            pct(p.move), *(human(getattr(p, f), decimals) for _, _, f in FLOWS), style=style
        )
    return Group(stocks, flows)


# ----- formatting ------------------------------------------------------------------------
def pct(value: Fraction) -> str:
    return f"{100 * float(value):.3f}%"


def money(units: int, decimals: int) -> str:
    """Exact to the cent for display (rounded half-even from the integer, never a float)."""
    return f"{Decimal(units).scaleb(-decimals).quantize(Decimal('0.01')):,}"


def human(units: int, decimals: int) -> str:
    """Money shortened for a progress line or a narrow column: 1.23B, 4.56M, 7.89k."""
    value = Decimal(units).scaleb(-decimals)
    for suffix, size in (("B", Decimal(10) ** 9), ("M", Decimal(10) ** 6), ("k", Decimal(10) ** 3)):
        if abs(value) >= size:
            return f"{(value / size).quantize(Decimal('0.01'))}{suffix}"
    return f"{value.quantize(Decimal('0.01'))}"


def fraction_text(value: Fraction) -> str:
    """A move as decimal text (a bisection's moves are dyadic: exact in a few digits)."""
    return format(Decimal(value.numerator) / Decimal(value.denominator), "f")
