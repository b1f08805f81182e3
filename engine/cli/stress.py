"""`clearing stress SCENARIO [--reverse] --out DIR`: a stress scenario through the cascade.

Forward (the default): the scenario's price paths step by step with the cascade on; writes
`events.parquet` (every waterfall event), `steps.parquet` (per step: liquidations, fund,
ADL), `prices.parquet` (path and mark per step and market), `summary.json`, the final
book as `snapshot-final.arrow` and the charts (engine.stress_charts).
`--reverse`: the smallest move (uniform, or along `--direction`) that exhausts the fund;
writes `reverse_stress.parquet`, `reverse_stress.png` and `summary.json`.

The book is the scenario's: a synthetic crash book of `book.accounts` accounts (depth and
fund scaled to it; `--accounts` overrides the size) or a snapshot.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.fixed import FixedPointError, format_units, parse_decimal
from engine.book.reasons import RejectReason
from engine.io.snapshot import SnapshotError, read_snapshot, write_snapshot
from engine.reports import stress_charts
from engine.stress.reverse import ReverseStressResult, StressPoint, reverse_stress
from engine.stress.scenario import Scenario, ScenarioError, load_scenario
from engine.stress.simulator import SimulationResult, StepRecord, simulate
from engine.stress.synthetic import crash_book

EXIT_OK = 0
TOLERANCE_DEFAULT = "0.005"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="a built-in scenario (2025-10-11) or a .toml / .json file")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--reverse",
        action="store_true",
        help="find the smallest move that exhausts the insurance fund (bisection, cascade on)",
    )
    parser.add_argument(
        "--accounts", type=int, help="synthetic book size (default: the scenario's)"
    )
    parser.add_argument("--seed", type=int, help="synthetic book seed (default: the scenario's)")
    parser.add_argument(
        "--direction",
        help="--reverse: SYMBOL=WEIGHT,... (e.g. BTCUSDT=-1,ALT1USDT=-3); default every market -1",
    )
    parser.add_argument(
        "--tolerance",
        default=TOLERANCE_DEFAULT,
        help=f"--reverse: the bisection's final bracket, a fraction (default {TOLERANCE_DEFAULT})",
    )


def run(args: argparse.Namespace) -> int:
    scenario = _load(args.scenario)
    reverse = _reverse_options(args.direction, args.tolerance) if args.reverse else None
    execute(
        scenario,
        args.out,
        accounts=args.accounts,
        seed=args.seed,
        reverse=reverse,
        forward=reverse is None,
    )
    return EXIT_OK


def _load(source: str) -> Scenario:
    try:
        return load_scenario(source)
    except ScenarioError as exc:
        raise Rejected(RejectReason.INVALID_SCENARIO, str(exc)) from None


@dataclass(frozen=True)
class ReverseOptions:
    direction: dict[str, Fraction] | None
    tolerance: Fraction


def _reverse_options(direction: str | None, tolerance: str) -> ReverseOptions:
    try:
        tol = Fraction(parse_decimal(tolerance, "--tolerance"))
        parsed = None
        if direction:
            parsed = {}
            for item in direction.split(","):
                symbol, sep, weight = item.partition("=")
                if not sep or not symbol.strip():
                    raise Rejected(
                        RejectReason.INVALID_DIRECTION,
                        f"--direction: expected SYMBOL=WEIGHT, got {item!r}",
                    )
                parsed[symbol.strip()] = Fraction(parse_decimal(weight, f"--direction {symbol}"))
    except FixedPointError as exc:
        raise Rejected(RejectReason.INVALID_DIRECTION, str(exc)) from None
    if not tol > 0:
        raise Rejected(RejectReason.INVALID_TOLERANCE, "--tolerance: must be positive")
    return ReverseOptions(parsed, tol)


# ----- the book --------------------------------------------------------------------------
def prepare(
    scenario: Scenario, accounts: int | None, seed: int | None
) -> tuple[Scenario, Callable[[], Book]]:
    """The scenario sized for its book, and a factory of that book (the same each call)."""
    spec = scenario.book
    if spec.snapshot is not None:
        path = spec.snapshot

        def from_snapshot() -> Book:
            try:
                return read_snapshot(path)[0]
            except SnapshotError as exc:
                raise Rejected(RejectReason.INVALID_SNAPSHOT, str(exc)) from None

        return scenario, from_snapshot
    if accounts is not None and not accounts >= 2:
        raise Rejected(RejectReason.INVALID_ACCOUNTS, "--accounts: at least 2")
    sized = scenario.scaled(accounts if accounts is not None else spec.accounts)
    table = sized.instruments
    assert table is not None, "a synthetic book's scenario has instruments"
    marks = np.zeros(len(table), dtype=np.int64)
    weights = np.zeros(len(table))
    for market in sized.markets:
        inst = table.symbol_index(market.symbol)
        assert market.start is not None
        marks[inst] = max(
            1, round(Fraction(market.start) / Fraction(table.instruments[inst].tick_size))
        )
        weights[inst] = float(market.weight)
    n = sized.book.accounts
    book_seed = spec.seed if seed is None else seed
    long_share = float(spec.long_share)
    if not weights.sum() > 0:
        raise Rejected(RejectReason.INVALID_SCENARIO, "markets: every weight is zero")

    def factory() -> Book:
        return crash_book(table, marks, n, seed=book_seed, weights=weights, long_share=long_share)

    return sized, factory


# ----- running ---------------------------------------------------------------------------
def execute(
    scenario: Scenario,
    out: Path,
    *,
    accounts: int | None = None,
    seed: int | None = None,
    reverse: ReverseOptions | None = None,
    forward: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run forward and / or reverse, write everything under `out`, print the summary.
    Returns the summary (also written as summary.json)."""
    console = console or Console()
    progress_console = Console(stderr=True)
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    sized, factory = prepare(scenario, accounts, seed)
    summary: dict[str, Any] = {"scenario": sized.name, "out": str(out)}
    written: list[Path] = []
    if forward:
        summary["forward"] = _forward(sized, factory, out, written, progress_console, console)
    if reverse is not None:
        summary["reverse"] = _reverse(
            sized, factory, reverse, out, written, progress_console, console
        )
    summary["run_time_s"] = round(time.perf_counter() - started, 2)
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    written.append(path)
    where = out.resolve()
    console.print(f"run time {summary['run_time_s']:.1f} s; wrote {len(written)} files to {where}")
    for item in written:
        console.print(f"  {item.name}")
    return summary


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _forward(
    scenario: Scenario,
    factory: Callable[[], Book],
    out: Path,
    written: list[Path],
    progress_console: Console,
    console: Console,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    book = factory()
    built_s = time.perf_counter() - t0
    n_accounts, n_positions = book.n_accounts, int(np.count_nonzero(book.pos_qty))
    symbols = [m.symbol for m in scenario.markets]
    levels = stress_charts.liquidation_levels(book, symbols, symbols[0])
    decimals = book.instruments.money_decimals
    times = scenario.times()
    liquidated = [0, 0]
    with _progress(progress_console) as progress:
        task = progress.add_task(
            f"{scenario.name} on {n_accounts:,} accounts", total=len(times), status=""
        )

        def on_step(_: Book, record: StepRecord) -> None:
            liquidated[0] += record.accounts_liquidated
            liquidated[1] += record.liquidated_long + record.liquidated_short
            hours, minutes = divmod(record.t_s // 60, 60)
            done = _human(liquidated[1], decimals)
            status = f"t+{hours:02d}:{minutes:02d} liquidated {liquidated[0]:,} ({done})"
            progress.update(task, advance=1, status=status)

        t1 = time.perf_counter()
        result = simulate(book, scenario, on_step=on_step)
        sim_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    for name, table in (
        ("events", result.events_table()),
        ("steps", result.steps_table()),
        ("prices", result.prices_table()),
    ):
        path = out / f"{name}.parquet"
        pq.write_table(table, path)
        written.append(path)
    written.append(
        write_snapshot(
            book,
            out / "snapshot-final.arrow",
            {"scenario": scenario.name, "seed": scenario.book.seed, "t_s": scenario.duration_s},
        )
    )
    main = "BTCUSDT" if "BTCUSDT" in symbols else symbols[0]
    written.append(
        stress_charts.price_liquidations(result, out / "price_liquidations.png", main=main)
    )
    written.append(stress_charts.insurance_fund(result, out / "insurance_fund.png"))
    written.append(stress_charts.liquidation_map(levels, out / "liquidation_map.png"))
    write_s = time.perf_counter() - t2
    summary = _forward_summary(result, n_accounts, n_positions)
    summary["time_s"] = {
        "build": round(built_s, 2),
        "simulate": round(sim_s, 2),
        "write": round(write_s, 2),
    }
    console.print(_forward_table(result, summary))
    return summary


def _forward_summary(result: SimulationResult, n_accounts: int, n_positions: int) -> dict[str, Any]:
    totals = result.totals()
    decimals = result.money_decimals
    per_step = [s.liquidated_long + s.liquidated_short for s in result.steps]
    peak = int(np.argmax(per_step)) if per_step else 0
    money_keys = set(totals) - {
        "accounts_liquidated",
        "liquidations",
        "adl_count",
        "rounds_max",
        "steps",
    }
    summary: dict[str, Any] = {
        "accounts": n_accounts,
        "positions": n_positions,
        "peak_step_t_s": result.steps[peak].t_s if per_step else 0,
        "peak_step_liquidated": format_units(per_step[peak] if per_step else 0, decimals),
        "fund_exhausted": result.fund_exhausted,
    }
    for key, value in totals.items():
        summary[key] = format_units(value, decimals) if key in money_keys else value
    return summary


def _forward_table(result: SimulationResult, summary: dict[str, Any]) -> Table:
    totals = result.totals()
    decimals = result.money_decimals
    liquidated = totals["liquidated_long"] + totals["liquidated_short"]
    long_pct = 100 * totals["liquidated_long"] / liquidated if liquidated else 0.0
    accounts, positions = summary["accounts"], summary["positions"]
    table = Table(title=f"{result.scenario}: {accounts:,} accounts, {positions:,} positions")
    table.add_column("figure")
    table.add_column("value", justify="right")
    share = 100 * totals["accounts_liquidated"] / max(accounts, 1)
    peak_t = summary["peak_step_t_s"]
    peak = int(Decimal(summary["peak_step_liquidated"]).scaleb(decimals))
    rows = [
        ("accounts liquidated", f"{totals['accounts_liquidated']:,} ({share:.1f}%)"),
        ("liquidated notional", _money(liquidated, decimals)),
        ("  long / short", f"{long_pct:.1f}% / {100 - long_pct:.1f}%" if liquidated else "-"),
        ("worst step", f"t+{peak_t // 3600}h{peak_t // 60 % 60:02d}: {_money(peak, decimals)}"),
        ("insurance fund start", _money(totals["fund_start"], decimals)),
        ("insurance fund low", _money(totals["fund_low"], decimals)),
        ("insurance fund end", _money(totals["fund_end"], decimals)),
        ("liquidation fees", _money(totals["liquidation_fees"], decimals)),
        ("takeover surplus", _money(totals["takeover_surplus"], decimals)),
        ("paid for bankrupt accounts", _money(totals["insurance_paid"], decimals)),
        ("unwind slippage (fund PnL)", _money(totals["unwind_pnl"], decimals)),
        ("ADL", f"{totals['adl_count']:,} fills, {_money(totals['adl_amount'], decimals)}"),
        ("socialized loss", _money(totals["socialized"], decimals)),
        ("unallocated at end", _money(totals["unallocated_end"], decimals)),
        ("cascade rounds (max in a step)", f"{totals['rounds_max']}"),
        ("steps", f"{totals['steps']:,}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _reverse(
    scenario: Scenario,
    factory: Callable[[], Book],
    options: ReverseOptions,
    out: Path,
    written: list[Path],
    progress_console: Console,
    console: Console,
) -> dict[str, Any]:
    with _progress(progress_console) as progress:
        task = progress.add_task("reverse stress (bisection)", total=None, status="")

        def on_point(point: StressPoint) -> None:
            state = "exhausted" if point.fund_exhausted else "holds"
            progress.update(
                task, advance=1, status=f"move {100 * float(point.move):.3f}%: fund {state}"
            )

        result = reverse_stress(
            factory,
            scenario,
            direction=options.direction,
            tolerance=options.tolerance,
            on_point=on_point,
        )
    decimals = (scenario.instruments or factory().instruments).money_decimals
    path = out / "reverse_stress.parquet"
    pq.write_table(_points_table(result), path)
    written.append(path)
    written.append(stress_charts.reverse_stress_curve(result, out / "reverse_stress.png", decimals))
    summary = {
        "direction": {s: str(d) for s, d in result.direction.items()},
        "tolerance": str(result.tolerance),
        "move": None if result.move is None else _fraction_text(result.move),
        "safe_move": None if result.safe_move is None else _fraction_text(result.safe_move),
        "move_max": _fraction_text(result.move_max),
        "evaluations": len(result.points),
    }
    console.print(_reverse_table(result, decimals))
    return summary


def _points_table(result: ReverseStressResult) -> pa.Table:
    points = result.points
    return pa.table(
        {
            "move": pa.array([_fraction_text(p.move) for p in points], pa.string()),
            "move_float": pa.array([float(p.move) for p in points], pa.float64()),
            "fund_exhausted": pa.array([p.fund_exhausted for p in points]),
            "fund_low": pa.array([p.fund_low for p in points], pa.int64()),
            "fund_end": pa.array([p.fund_end for p in points], pa.int64()),
            "accounts_liquidated": pa.array([p.accounts_liquidated for p in points], pa.int64()),
            "liquidated_notional": pa.array([p.liquidated_notional for p in points], pa.int64()),
            "adl_amount": pa.array([p.adl_amount for p in points], pa.int64()),
            "socialized": pa.array([p.socialized for p in points], pa.int64()),
            "rounds": pa.array([p.rounds for p in points], pa.int64()),
        }
    )


def _reverse_table(result: ReverseStressResult, decimals: int) -> Table:
    if result.move is None:
        title = f"reverse stress: the fund survives every move up to {_pct(result.move_max)}"
    else:
        title = (
            f"reverse stress: the fund is exhausted from a move of {_pct(result.move)}"
            f" (bracket {_pct(result.tolerance)})"
        )
    table = Table(title=title)
    for name in ("move", "fund low", "liquidated", "notional", "ADL", "socialized"):
        table.add_column(name, justify="right")
    for p in result.points:
        table.add_row(
            _pct(p.move),
            _human(p.fund_low, decimals),
            f"{p.accounts_liquidated:,}",
            _human(p.liquidated_notional, decimals),
            _human(p.adl_amount, decimals),
            _human(p.socialized, decimals),
            style="red" if p.fund_exhausted else None,
        )
    return table


def _pct(value: Fraction) -> str:
    return f"{100 * float(value):.3f}%"


# ----- formatting ------------------------------------------------------------------------
def _money(units: int, decimals: int) -> str:
    """Exact to the cent for display (rounded half-even from the integer, never a float)."""
    return f"{Decimal(units).scaleb(-decimals).quantize(Decimal('0.01')):,}"


def _human(units: int, decimals: int) -> str:
    value = Decimal(units).scaleb(-decimals)
    for suffix, size in (("B", Decimal(10) ** 9), ("M", Decimal(10) ** 6), ("k", Decimal(10) ** 3)):
        if abs(value) >= size:
            return f"{(value / size).quantize(Decimal('0.01'))}{suffix}"
    return f"{value.quantize(Decimal('0.01'))}"


def _fraction_text(value: Fraction) -> str:
    """A move as decimal text (a bisection's moves are dyadic: exact in a few digits)."""
    return format(Decimal(value.numerator) / Decimal(value.denominator), "f")
