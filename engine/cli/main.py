"""The `clearing` command.

Each subcommand is a `Command`: a name, a function that adds its arguments to its own
subparser, and a function that runs it and returns the exit status. A new subcommand lives
in its own module and is added to COMMANDS; main() owns the shared error handling, so an
expected failure (bad input, missing file) is one line `error: ...` and exit status 2
(engine.cli.exit_codes), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.book.errors import Rejected
from engine.book.fixed import FixedPointError
from engine.book.instruments import InstrumentError
from engine.cli import demo as demo_cli
from engine.cli import inspect as inspect_cli
from engine.cli import liquidate as liquidate_cli
from engine.cli import risk as risk_cli
from engine.cli import serve as serve_cli
from engine.cli import settle as settle_cli
from engine.cli import stress as stress_cli
from engine.cli.exit_codes import EXIT_INPUT


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: tuple[Command, ...] = (
    Command(
        "risk",
        "margin report of a book at given marks (Parquet out)",
        risk_cli.add_arguments,
        risk_cli.run,
    ),
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
