"""A stress run with its outputs: the scenario's book, the cascade and / or the reverse stress
test, every file under one folder, the summary on screen. `clearing stress` and
`clearing demo` are this run with different arguments; the replay benchmark uses `prepare`.

The book is the scenario's: a synthetic crash book of `book.accounts` accounts (depth and
fund scaled to it; `accounts` overrides the size) or a snapshot (`prepare`).

Forward (the cascade over the scenario's price paths, step by step; `run_forward`, also the
Python API's) writes `events.parquet` (every waterfall event), `steps.parquet` (per step:
liquidations, fund, ADL), `prices.parquet` (path and mark per step and market),
`accounts.parquet` (per account: opening and closing equity, loss;
engine.reports.stress_accounts), the final book as `snapshot-final.arrow` and the charts
(engine.reports.stress_charts, stress_map_charts). Reverse (the smallest move, uniform or
along a direction, that exhausts the fund) writes `reverse_stress.parquet` and
`reverse_stress.png` (engine.reports.stress_reverse_charts). Both write `summary.json`
(engine.reports.stress_tables) with the run's metadata under `run` and its UTC start and
end, and `report.html` (engine.reports.stress_report: the tables and charts in one page with
the run's time, engine version, profile and inputs); every Parquet file carries the same
metadata in its schema (engine.reports.run_info).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.io.snapshot import SnapshotError, read_snapshot, write_snapshot
from engine.reports import (
    simulation_tables,
    stress_accounts,
    stress_charts,
    stress_map_charts,
    stress_report,
    stress_reverse_charts,
    stress_tables,
)
from engine.reports.customers import customer_mask, fund_state, status_tally
from engine.reports.html_report import RunInfo
from engine.reports.run_info import input_digest, run_info, with_run_info
from engine.reports.stress_accounts import Opening
from engine.stress.reverse import StressPoint, reverse_stress
from engine.stress.scenario_model import Scenario
from engine.stress.simulation_result import SimulationResult, StepRecord
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


# ----- the forward run, in memory ----------------------------------------------------------
@dataclass(frozen=True)
class ForwardRun:
    """A forward run's book (after it), what happened, and the customers before it."""

    scenario: Scenario
    book: Book
    result: SimulationResult
    opening: Opening
    n_accounts: int  # customers before the run
    n_positions: int

    def accounts_table(self) -> pa.Table:
        return stress_accounts.accounts_table(
            self.opening, self.book, self.result, self.scenario.profile
        )

    def tables(self) -> dict[str, pa.Table]:
        """The forward run's Parquet tables by file stem."""
        return {
            "events": simulation_tables.events_table(self.result),
            "steps": simulation_tables.steps_table(self.result),
            "prices": simulation_tables.prices_table(self.result),
            "accounts": self.accounts_table(),
        }


def run_forward(
    scenario: Scenario, book: Book, on_step: Callable[[Book, StepRecord], None] | None = None
) -> ForwardRun:
    """The scenario's cascade on `book` (mutated in place), step by step."""
    # Customers only: house accounts (the fund, the unwind account) are counted apart.
    customers = customer_mask(book, scenario.profile)
    n_accounts = int(customers.sum())
    n_positions = int(np.count_nonzero(book.pos_qty[customers[book.position_owner()]]))
    opening = Opening.of(book)
    result = simulate(book, scenario, on_step=on_step)
    return ForwardRun(scenario, book, result, opening, n_accounts, n_positions)


def stress_run_info(
    scenario: Scenario,
    command: Sequence[str] | None,
    started: datetime | None = None,
    *,
    accounts: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The run's metadata (engine.reports.run_info): the scenario document's hash, and the
    snapshot's when the book is one, else the synthetic book's recipe (and its hash)."""
    inputs = {"scenario": {"source": scenario.source, "sha256": scenario.sha256}}
    spec = scenario.book
    if spec.snapshot is not None:
        inputs["snapshot"] = input_digest(spec.snapshot)
    else:
        recipe = (
            f"synthetic crash book: {accounts if accounts is not None else spec.accounts}"
            f" accounts, seed {seed if seed is not None else spec.seed},"
            f" long share {spec.long_share}"
        )
        inputs["book"] = {"source": recipe, "sha256": hashlib.sha256(recipe.encode()).hexdigest()}
    return run_info(profile=scenario.profile.name, inputs=inputs, command=command, started=started)


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
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run forward and / or reverse, write everything under `out`, print the summary.
    Returns the summary (also written as summary.json). `command`: what ran it, for the
    metadata (default: this process's command line)."""
    console = console or Console()
    progress_console = Console(stderr=True)
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    sized, factory = prepare(scenario, accounts, seed)
    info = stress_run_info(sized, command, accounts=accounts, seed=seed)
    summary: dict[str, Any] = {
        "scenario": sized.name,
        "out": str(out),
        "run": info,
        "start_utc": _utc_text(sized.at(0)),
        "end_utc": _utc_text(sized.at(sized.duration_s if forward else 0)),
    }
    written: list[Path] = []
    shown: list[Any] = []  # what went to the screen, for report.html
    if forward:
        summary["forward"] = _forward(
            sized, factory, out, written, progress_console, console, info, shown
        )
    if reverse is not None:
        summary["reverse"] = _reverse(
            sized, factory, reverse, out, written, progress_console, console, info, shown
        )
    summary["run_time_s"] = round(time.perf_counter() - started, 2)
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    written.append(path)
    written.append(
        stress_report.write(
            out / stress_report.REPORT_HTML, sized, RunInfo.from_metadata(info), shown
        )
    )
    where = out.resolve()
    console.print(f"run time {summary['run_time_s']:.1f} s; wrote {len(written)} files to {where}")
    for item in written:
        console.print(f"  {item.name}")
    return summary


def _utc_text(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


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
    info: dict[str, Any],
    shown: list[Any],
) -> dict[str, Any]:
    t0 = time.perf_counter()
    book = factory()
    built_s = time.perf_counter() - t0
    symbols = [m.symbol for m in scenario.markets]
    levels = stress_map_charts.liquidation_levels(book, symbols, symbols[0])
    decimals = book.instruments.money_decimals
    times = scenario.times()
    liquidated = [0, 0]
    with _progress(progress_console) as progress:
        customers = int(customer_mask(book, scenario.profile).sum())
        task = progress.add_task(
            f"{scenario.name} on {customers:,} accounts", total=len(times), status=""
        )

        def on_step(_: Book, record: StepRecord) -> None:
            liquidated[0] += record.accounts_liquidated
            liquidated[1] += record.liquidated_long + record.liquidated_short
            hours, minutes = divmod(record.t_s // 60, 60)
            done = stress_tables.human(liquidated[1], decimals)
            status = f"t+{hours:02d}:{minutes:02d} liquidated {liquidated[0]:,} ({done})"
            progress.update(task, advance=1, status=status)

        t1 = time.perf_counter()
        run = run_forward(scenario, book, on_step=on_step)
        sim_s = time.perf_counter() - t1
    result, n_accounts, n_positions = run.result, run.n_accounts, run.n_positions
    t2 = time.perf_counter()
    for name, table in run.tables().items():
        path = out / f"{name}.parquet"
        pq.write_table(with_run_info(table, info), path)
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
    info: dict[str, Any],
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
    pq.write_table(with_run_info(stress_tables.points_table(result, decimals), info), path)
    written.append(path)
    written.append(
        stress_reverse_charts.reverse_stress_curve(result, out / "reverse_stress.png", decimals)
    )
    summary = stress_tables.reverse_summary(result, decimals)
    tables = stress_tables.reverse_table(result, decimals)
    console.print(tables)
    shown += [tables, written[-1]]
    return summary
