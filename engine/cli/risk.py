"""`clearing risk`: the margin report of a book at given marks (Parquet out).

The run is engine.reports.risk_report's; this module reads the arguments and prints the
summary on stderr: accounts per status, total equity and maintenance margin, the time of
each stage and the files written.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from engine.book.book import Book
from engine.book.fixed import format_units
from engine.cli import asset_liability
from engine.cli.inputs import (
    add_book_arguments,
    add_marks_and_out_arguments,
    add_model_arguments,
    add_warning_level_argument,
    load_profile,
    profile_path,
    warning_rate,
)
from engine.cli.outcome import Outcome
from engine.reports.customers import StatusTally
from engine.reports.exchange_batch import (
    ExchangeInputs,
    add_exchange_arguments,
    print_exchange_summary,
)
from engine.reports.risk_report import write_risk_report

WARNING_LEVEL_DEFAULT = "0.8"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Required unless the profile is an asset-liability model (checked in run).
    add_book_arguments(parser, required=False)
    add_marks_and_out_arguments(parser, marks_required=False)
    add_warning_level_argument(parser, WARNING_LEVEL_DEFAULT)
    parser.add_argument(
        "--profile",
        type=profile_path,
        default=None,
        help="rules: a TOML file or a shipped name; its account model ([model]), risk models"
        " ([collateral], [stop_out], [isolated]) and margin-call grace ([exchange]) apply"
        " (default: futures, none)",
    )
    add_model_arguments(parser)
    asset_liability.add_arguments(parser)
    add_exchange_arguments(parser)


def run(args: argparse.Namespace) -> Outcome:
    profile = None if args.profile is None else load_profile(args.profile)
    if profile is not None and profile.model == "asset_liability":
        return asset_liability.run_risk(args, profile)
    asset_liability.require_futures_files(args)
    report = write_risk_report(
        args.instruments,
        args.accounts,
        args.positions,
        args.marks,
        args.out,
        warning_rate=warning_rate(args.warning_level),
        profile=profile,
        collateral=args.collateral,
        collateral_prices=args.collateral_prices,
        exchange=ExchangeInputs.from_args(args),
    )
    result = _print_summary(
        report.book, report.n_positions, report.paths, report.seconds, report.customers
    )
    if report.exchange is not None:
        print_exchange_summary(report.book, report.exchange, [], [])
        result["margin_calls"] = len(report.exchange.calls)
    return Outcome(result)


def _print_summary(
    book: Book,
    n_positions: int,
    paths: Sequence[Path],
    seconds: tuple[float, float, float],
    customers: StatusTally,
) -> dict[str, Any]:
    """Prints the summary on stderr; returns it as the --json result (docs/cli.md)."""
    # A second sweep costs milliseconds and keeps risk_tables' signature plain.
    risk = book.sweep(with_initial_margin=False)
    money = book.instruments.money_decimals
    table = Table(title=f"{customers.customers:,} customers, {n_positions:,} positions")
    table.add_column("status")
    table.add_column("customers", justify="right")
    for name, count in customers.by_status.items():
        table.add_row(name, f"{count:,}")
    console = Console(stderr=True)
    console.print(table)
    # Python ints: a total over millions of accounts may not fit int64.
    equity = sum(risk.equity.tolist())
    maintenance = sum(risk.maintenance_margin.tolist())
    console.print(f"total equity             {format_units(equity, money)}")
    console.print(f"total maintenance margin {format_units(maintenance, money)}")
    load_s, compute_s, write_s = seconds
    console.print(f"load {load_s:.2f} s, risk {compute_s:.2f} s, write {write_s:.2f} s")
    for path in paths:
        console.print(f"wrote {path}")
    return {
        "customers": customers.customers,
        "positions": n_positions,
        "by_status": dict(customers.by_status),
        "total_equity": format_units(equity, money),
        "total_maintenance_margin": format_units(maintenance, money),
        "seconds": {"load": load_s, "risk": compute_s, "write": write_s},
        "files": [str(path) for path in paths],
    }
