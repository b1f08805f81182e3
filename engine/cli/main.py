"""The `clearing` command.

Each subcommand is a `Command`: a name, a function that adds its arguments to its own
subparser, and a function that runs it and returns the exit status. A new subcommand lives
in its own module and is added to COMMANDS; main() owns the shared error handling, so an
expected failure (bad input, missing file) is one line `error: ...` and exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from engine.book.book import STATUS_NAMES, Book
from engine.book.errors import Rejected
from engine.book.fixed import FixedPointError, format_units
from engine.book.instruments import InstrumentError, InstrumentTable
from engine.cli import demo as demo_cli
from engine.cli import inspect as inspect_cli
from engine.cli import liquidate as liquidate_cli
from engine.cli import serve as serve_cli
from engine.cli import settle as settle_cli
from engine.cli import stress as stress_cli
from engine.cli.inputs import (
    add_book_arguments,
    add_marks_and_out_arguments,
    book_from_inputs,
    warning_rate,
)
from engine.io.tables import read_book_inputs, write_tables
from engine.reports.risk_tables import risk_tables

EXIT_OK = 0
EXIT_INPUT = 2  # argparse uses 2 for bad usage too


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# ----- risk ------------------------------------------------------------------------------
def add_risk_arguments(parser: argparse.ArgumentParser) -> None:
    add_book_arguments(parser)
    add_marks_and_out_arguments(parser)
    parser.add_argument(
        "--warning-level",
        default="0.8",
        help="margin call when maintenance margin >= this x equity (default 0.8)",
    )


def run_risk(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    rate = warning_rate(args.warning_level)
    instruments = InstrumentTable.load(args.instruments)
    inputs = read_book_inputs(instruments, args.accounts, args.positions, args.marks)
    book = book_from_inputs(
        instruments, inputs.accounts, inputs.positions, inputs.marks, warning_rate=rate
    )
    loaded = time.perf_counter()
    account_table, position_table = risk_tables(book)
    computed = time.perf_counter()
    paths = write_tables(args.out, {"accounts": account_table, "positions": position_table})
    written = time.perf_counter()
    _print_summary(
        book,
        position_table.num_rows,
        paths,
        (loaded - started, computed - loaded, written - computed),
    )
    return EXIT_OK


def _print_summary(
    book: Book, n_positions: int, paths: Sequence[Path], seconds: tuple[float, float, float]
) -> None:
    # A second sweep costs milliseconds and keeps risk_tables' signature plain.
    risk = book.sweep(with_initial_margin=False)
    money = book.instruments.money_decimals
    counts = np.bincount(risk.status, minlength=len(STATUS_NAMES))
    table = Table(title=f"{book.n_accounts:,} accounts, {n_positions:,} positions")
    table.add_column("status")
    table.add_column("accounts", justify="right")
    for name, count in zip(STATUS_NAMES, counts.tolist(), strict=True):
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


RISK = Command(
    "risk", "margin report of a book at given marks (Parquet out)", add_risk_arguments, run_risk
)

# More subcommands (liquidate, settle, demo, serve) are added here from their own modules.
COMMANDS: tuple[Command, ...] = (
    RISK,
    Command(
        "liquidate",
        "one tick of the liquidation waterfall: liquidation, insurance fund, ADL, socialized loss",
        liquidate_cli.add_arguments,
        liquidate_cli.run,
    ),
    Command(
        "demo",
        "the embedded default: the 2025-10-11 crash on a synthetic book, no broker or files",
        demo_cli.add_arguments,
        demo_cli.run,
    ),
    Command(
        "stress",
        "cascade simulation of a scenario, or the reverse stress test (--reverse)",
        stress_cli.add_arguments,
        stress_cli.run,
    ),
    Command(
        "serve",
        "the streaming service: Kafka (or files, or a synthetic path) in, events out",
        serve_cli.add_arguments,
        serve_cli.run,
    ),
    Command(
        "inspect",
        "summarize a snapshot file",
        inspect_cli.add_arguments,
        inspect_cli.run,
    ),
    Command(
        "settle",
        "end-of-day settlement: mark to market, funding, fees, waterfall, report",
        settle_cli.add_arguments,
        settle_cli.run,
    ),
)


# ----- entry point -----------------------------------------------------------------------
def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clearing", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        command.add_arguments(sub.add_parser(command.name, help=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = next(c for c in COMMANDS if c.name == args.command)
    try:
        return command.run(args)
    except Rejected as exc:
        return _fail(exc.detail)
    except (InstrumentError, FixedPointError, OverflowError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
