"""A stress run with its outputs: the scenario's book, the cascade and / or the reverse stress
test, every file under one folder, the summary on screen. `clearing stress` and
`clearing demo` are this run with different arguments; the replay benchmark uses `prepare`.

The book is the scenario's: a synthetic crash book of `book.accounts` accounts (depth and
fund scaled to it; `accounts` overrides the size) or a snapshot (`prepare`).

Forward (the cascade over the scenario's price paths, step by step) writes `events.parquet`
(every waterfall event), `steps.parquet` (per step: liquidations, fund, ADL),
`prices.parquet` (path and mark per step and market), the final book as
`snapshot-final.arrow` and the charts (engine.reports.stress_charts, stress_map_charts).
Reverse (the smallest move, uniform or along a direction, that exhausts the fund) writes
`reverse_stress.parquet` and `reverse_stress.png` (engine.reports.stress_reverse_charts).
Both write `summary.json` (engine.reports.stress_tables) and
`report.html` (engine.reports.stress_report: the tables and charts in one page with the
run's time, engine version, profile and inputs).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.io.snapshot import SnapshotError, read_snapshot, write_snapshot
from engine.reports import (
    stress_charts,
    stress_map_charts,
    stress_report,
    stress_reverse_charts,
    stress_tables,
)
from engine.reports.customers import customer_mask, fund_state, status_tally
from engine.stress.reverse import StressPoint, reverse_stress
from engine.stress.scenario_model import Scenario
from engine.stress.simulation_result import StepRecord
from engine.stress.simulator import simulate
from engine.stress.synthetic import crash_book


@dataclass(frozen=True)
class ReverseOptions:
    """The reverse stress test's search: its direction (None: every market -1) and the
    width of its final bracket, a fraction of the move."""

    direction: dict[str, Fraction] | None
    tolerance: Fraction


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
    info = stress_report.stress_run_info(scenario, accounts, seed)
    out.mkdir(parents=True, exist_ok=True)
    sized, factory = prepare(scenario, accounts, seed)
    summary: dict[str, Any] = {"scenario": sized.name, "out": str(out)}
    written: list[Path] = []
    shown: list[Any] = []  # what went to the screen, for report.html
    if forward:
        summary["forward"] = _forward(
            sized, factory, out, written, progress_console, console, shown
        )
    if reverse is not None:
        summary["reverse"] = _reverse(
            sized, factory, reverse, out, written, progress_console, console, shown
        )
    summary["run_time_s"] = round(time.perf_counter() - started, 2)
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    written.append(path)
    written.append(stress_report.write(out / stress_report.REPORT_HTML, sized, info, shown))
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
    shown: list[Any],
) -> dict[str, Any]:
    t0 = time.perf_counter()
    book = factory()
    built_s = time.perf_counter() - t0
    # Customers only: house accounts (the fund, the unwind account) are counted apart.
    customers = customer_mask(book, scenario.profile)
    n_accounts = int(customers.sum())
    n_positions = int(np.count_nonzero(book.pos_qty[customers[book.position_owner()]]))
    symbols = [m.symbol for m in scenario.markets]
    levels = stress_map_charts.liquidation_levels(book, symbols, symbols[0])
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
            done = stress_tables.human(liquidated[1], decimals)
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
    start = stress_report.scenario_start(scenario)
    written.append(
        stress_charts.price_liquidations(
            result, out / "price_liquidations.png", main=main, start=start
        )
    )
    written.append(stress_charts.insurance_fund(result, out / "insurance_fund.png", start=start))
    written.append(
        stress_map_charts.liquidation_map(levels, out / "liquidation_map.png", start=start)
    )
    write_s = time.perf_counter() - t2
    status = book.sweep(with_initial_margin=False).status
    summary = stress_tables.forward_summary(
        result,
        n_accounts,
        n_positions,
        customers=status_tally(book, status, scenario.profile),
        fund=fund_state(book, status, scenario.profile),
    )
    summary["time_s"] = {
        "build": round(built_s, 2),
        "simulate": round(sim_s, 2),
        "write": round(write_s, 2),
    }
    table = stress_tables.forward_table(result, summary)
    console.print(table)
    shown += [table, *written[-3:]]
    return summary


def _reverse(
    scenario: Scenario,
    factory: Callable[[], Book],
    options: ReverseOptions,
    out: Path,
    written: list[Path],
    progress_console: Console,
    console: Console,
    shown: list[Any],
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
    pq.write_table(stress_tables.points_table(result), path)
    written.append(path)
    written.append(
        stress_reverse_charts.reverse_stress_curve(result, out / "reverse_stress.png", decimals)
    )
    summary = stress_tables.reverse_summary(result, decimals)
    tables = stress_tables.reverse_table(result, decimals)
    console.print(tables)
    shown += [tables, written[-1]]
    return summary
