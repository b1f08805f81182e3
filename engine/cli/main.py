"""The `clearing` command.

Each subcommand is a `Command`: a name, a function that adds its arguments to its own
subparser, and a function that runs it and returns an Outcome (exit status and the result
of its --json document, engine.cli.outcome). A new subcommand lives in its own module and is
added to COMMANDS; main() owns the shared error handling, so an expected failure is one line
`error: ...` and an exit status of engine.cli.exit_codes (2 usage, 3 rejected input,
1 runtime failure such as an unreachable broker), never a traceback. With --json, the human
output goes to stderr and one JSON document to stdout, failures included.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine._version import __version__
from engine.cli import demo as demo_cli
from engine.cli import inspect as inspect_cli
from engine.cli import liquidate as liquidate_cli
from engine.cli import risk as risk_cli
from engine.cli import serve as serve_cli
from engine.cli import settle as settle_cli
from engine.cli import stress as stress_cli
from engine.cli.exit_codes import EXIT_USAGE
from engine.cli.handling import Parser, UsageError, add_json_argument, execute, fail
from engine.cli.outcome import Outcome


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Outcome]


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
    parser = Parser(prog="clearing", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"clearing {__version__}")
    add_json_argument(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(child)
        add_json_argument(child, argparse.SUPPRESS)  # `clearing --json X` or `clearing X --json`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        name = next((a for a in argv if a in {c.name for c in COMMANDS}), None)
        return fail(name, EXIT_USAGE, "usage", str(exc), "--json" in argv)
    command = next(c for c in COMMANDS if c.name == args.command)
    return execute(command.name, command.run, args)


if __name__ == "__main__":
    sys.exit(main())
