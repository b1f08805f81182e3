"""`clearing demo [--full] [--out DIR]`: the 2025-10-11 liquidation day, no broker, no files.

The built-in scenario on a seeded synthetic crash book of DEMO_ACCOUNTS accounts (about 45 s
on a 2-core machine), or of the full 1.6 million with `--full` (about 3 minutes), then the
reverse stress test on the same book. Progress on stderr, the summary tables on stdout, and the
snapshot, events (Parquet) and charts (PNG) in the output folder named at the end.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

from engine.cli.inputs import out_directory
from engine.cli.outcome import Outcome
from engine.reports.stress_run import ReverseOptions, execute
from engine.stress.scenario import load_scenario

SCENARIO = "2025-10-11"
DEMO_ACCOUNTS = 500_000
OUT_DEFAULT = Path("out") / f"demo-{SCENARIO}"
DEMO_TOLERANCE = Fraction(1, 100)  # 1% of move: a few bisection steps keep the demo short


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--full",
        action="store_true",
        help="the full-size book (1.6 million accounts; minutes, not seconds)",
    )
    parser.add_argument(
        "--out",
        type=out_directory,
        default=OUT_DEFAULT,
        help=f"output directory (default {OUT_DEFAULT})",
    )
    parser.add_argument(
        "--accounts",
        type=int,
        help=f"book size (default {DEMO_ACCOUNTS:,}; --full: the scenario's)",
    )
    parser.add_argument("--no-reverse", action="store_true", help="skip the reverse stress test")


def run(args: argparse.Namespace) -> Outcome:
    scenario = load_scenario(SCENARIO)
    accounts = args.accounts or (scenario.book.accounts if args.full else DEMO_ACCOUNTS)
    reverse = None if args.no_reverse else ReverseOptions(None, DEMO_TOLERANCE)
    # The --json result is the run's summary.json.
    return Outcome(execute(scenario, args.out, accounts=accounts, reverse=reverse))
