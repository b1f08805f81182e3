"""`clearing stress SCENARIO [--reverse] --out DIR`: a stress scenario through the cascade.

Forward (the default): the scenario's price paths step by step with the cascade on.
`--reverse`: the smallest move (uniform, or along `--direction`) that exhausts the fund.
The run, its book and the files it writes are engine.reports.stress_run's; this module reads the
arguments and turns a malformed scenario, direction or tolerance into a rejection.
"""

from __future__ import annotations

import argparse
import shutil
from fractions import Fraction

from engine.book.errors import Rejected
from engine.book.fixed import FixedPointError, parse_decimal
from engine.book.reasons import RejectReason
from engine.cli.inputs import add_out_argument
from engine.cli.outcome import Outcome
from engine.reports.stress_run import ReverseOptions, execute
from engine.stress.scenario import load_scenario
from engine.stress.scenario_model import Scenario, ScenarioError

TOLERANCE_DEFAULT = "0.005"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="a built-in scenario (2025-10-11) or a .toml / .json file")
    add_out_argument(parser)
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


def run(args: argparse.Namespace) -> Outcome:
    """Everything is checked before the output folder is made; if the run still fails, a
    folder it made is removed again (one that existed is left as it was)."""
    scenario = _load(args.scenario)
    reverse = _reverse_options(args.direction, args.tolerance) if args.reverse else None
    if reverse is not None and reverse.direction is not None:
        markets = [m.symbol for m in scenario.markets]
        unknown = sorted(set(reverse.direction) - set(markets))
        if unknown:
            raise Rejected(
                RejectReason.INVALID_DIRECTION,
                f"--direction: {unknown[0]!r} is not a market of the scenario"
                f" (markets: {', '.join(markets)})",
            )
        if not any(reverse.direction.values()):
            raise Rejected(RejectReason.INVALID_DIRECTION, "--direction: every weight is zero")
    made = not args.out.exists()
    try:
        summary = execute(
            scenario,
            args.out,
            accounts=args.accounts,
            seed=args.seed,
            reverse=reverse,
            forward=reverse is None,
        )
    except BaseException:
        if made and args.out.is_dir():
            shutil.rmtree(args.out)
        raise
    # The --json result is the run's summary.json.
    return Outcome(summary)


def _load(source: str) -> Scenario:
    try:
        return load_scenario(source)
    except ScenarioError as exc:
        raise Rejected(RejectReason.INVALID_SCENARIO, str(exc)) from None


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
