"""`clearing liquidate`: one tick of the liquidation waterfall on a book read from files.

Inputs are those of `clearing risk` (instruments, accounts, positions, marks) plus the rules,
`--profile FILE` (default: the shipped binance-like profile), and the insurance fund's
opening balance, `--insurance-fund AMOUNT` (a decimal in the money currency, deposited into
the fund's account before the tick). The tick and the files it writes (events, ledger,
accounts, positions, insurance) are engine.reports.liquidation_report's.

On stderr: one line per action type (count and money moved), the fund before and after,
the conservation check (open interest too when the input book nets to zero per instrument)
and the time of each stage (the waterfall's alone). Exit status 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.book.errors import Rejected
from engine.book.fixed import FixedPointError, format_units, parse_decimal, to_units
from engine.book.instruments import InstrumentTable
from engine.book.reasons import RejectReason
from engine.cli import asset_liability
from engine.cli.inputs import (
    add_book_arguments,
    add_marks_and_out_arguments,
    add_model_arguments,
    add_warning_level_argument,
    profile_path,
    warning_rate,
)
from engine.cli.outcome import Outcome
from engine.reports.exchange_batch import (
    ExchangeInputs,
    add_exchange_arguments,
    print_exchange_summary,
)
from engine.reports.liquidation_report import liquidation_tick
from engine.waterfall.events import EVENT_KINDS, WaterfallResult
from engine.waterfall.profile import DEFAULT_PROFILE, PROFILES_DIR, Profile, ProfileError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Required unless the profile is an asset-liability model (checked in run).
    add_book_arguments(parser, required=False)
    add_marks_and_out_arguments(parser, marks_required=False)
    parser.add_argument(
        "--profile",
        type=profile_path,
        default=PROFILES_DIR / f"{DEFAULT_PROFILE}.toml",
        help=f"waterfall rules: a TOML file or a shipped name (default {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--insurance-fund",
        default="0",
        help="the insurance fund's opening balance, a decimal in the money currency",
    )
    add_warning_level_argument(parser, None)
    add_model_arguments(parser)
    asset_liability.add_arguments(parser)
    add_exchange_arguments(parser)


def run(args: argparse.Namespace) -> Outcome:
    started = time.perf_counter()
    try:
        profile = Profile.load(args.profile)
    except ProfileError as exc:
        raise Rejected(RejectReason.INVALID_PROFILE, str(exc)) from None
    if profile.model == "asset_liability":
        return asset_liability.run_liquidate(args, profile)
    asset_liability.require_futures_files(args)
    rate = profile.warning_rate
    if args.warning_level is not None:
        rate = warning_rate(args.warning_level)
    instruments = InstrumentTable.load(args.instruments)
    money = instruments.money_decimals
    fund_amount = to_units(
        parse_decimal(args.insurance_fund, "--insurance-fund"),
        Decimal(1).scaleb(-money),
        "--insurance-fund",
    )
    if not fund_amount >= 0:
        raise FixedPointError(f"--insurance-fund: must not be negative, got {args.insurance_fund}")
    arguments_s = time.perf_counter() - started
    tick = liquidation_tick(
        profile,
        instruments,
        args.accounts,
        args.positions,
        args.marks,
        args.out,
        fund_amount=fund_amount,
        warning_rate=rate,
        collateral=args.collateral,
        collateral_prices=args.collateral_prices,
        exchange=ExchangeInputs.from_args(args),
    )
    # The load stage counts from the start: the profile and instruments were read here.
    load_s, waterfall_s, report_s, write_s = tick.seconds
    seconds = (arguments_s + load_s, waterfall_s, report_s, write_s)
    result = _print_summary(
        tick.book.instruments.money_decimals, tick.result, tick.closed, seconds, tick.paths
    )
    money = tick.book.instruments.money_decimals
    print(
        f"customers           {tick.customers.customers:,}: {tick.customers.text()}",
        file=sys.stderr,
    )
    print(f"fund account        {tick.fund.text(money)}", file=sys.stderr)
    if tick.exchange is not None and tick.exchange_tick is not None:
        done = tick.exchange_tick
        print_exchange_summary(tick.book, tick.exchange, done.calls, done.reductions)
        result["margin_calls"] = len(tick.exchange.calls) + len(done.calls)
        result["forced_reductions"] = len(done.reductions)
    result["customers"] = tick.customers.customers
    return Outcome(result)


def _print_summary(
    money: int,
    result: WaterfallResult,
    closed: bool,
    seconds: tuple[float, float, float, float],
    paths: list[Path],
) -> dict[str, Any]:
    """Prints the summary on stderr; returns it as the --json result (docs/cli.md)."""
    cols = result.log.columns()

    def units(value: int) -> str:
        return format_units(value, money)

    lines = []
    actions: dict[str, dict[str, Any]] = {}
    for code, kind in enumerate(EVENT_KINDS):
        mine = cols["kind"] == code
        count = int(mine.sum())
        if count:
            moved = sum(cols["amount"][mine].tolist())
            actions[kind] = {"count": count, "amount": units(moved)}
            lines.append(f"{kind:<17} {count:>10,} actions, amount {units(moved)}")
    if not lines:
        lines.append("no account breached: nothing to do")
    lines += [
        f"accounts liquidated {result.accounts_liquidated:,}",
        f"insurance fund      balance {units(result.fund_balance_before)} ->"
        f" {units(result.fund_balance_after)}, equity {units(result.fund_equity_before)} ->"
        f" {units(result.fund_equity_after)}",
        f"ADL                 shortfall {units(result.adl_shortfall)}, taken"
        f" {units(result.adl_amount)}, overshoot {units(result.adl_overshoot)}",
        f"socialized loss     {units(result.socialized_amount)}, unallocated"
        f" {units(result.unallocated_loss)}",
        "conservation        ok"
        + (", open interest nets to zero" if closed else " (input book not closed: no OI check)"),
        "time                load {:.2f} s, waterfall {:.3f} s, audit and report {:.2f} s,"
        " write {:.2f} s".format(*seconds),
    ]
    lines += [f"wrote {path}" for path in paths]
    print("\n".join(lines), file=sys.stderr)
    load_s, waterfall_s, report_s, write_s = seconds
    return {
        "actions": actions,
        "accounts_liquidated": result.accounts_liquidated,
        "fund": {
            "balance_before": units(result.fund_balance_before),
            "balance_after": units(result.fund_balance_after),
            "equity_before": units(result.fund_equity_before),
            "equity_after": units(result.fund_equity_after),
        },
        "adl": {
            "shortfall": units(result.adl_shortfall),
            "taken": units(result.adl_amount),
            "overshoot": units(result.adl_overshoot),
        },
        "socialized_loss": units(result.socialized_amount),
        "unallocated_loss": units(result.unallocated_loss),
        "open_interest_checked": closed,
        "seconds": {"load": load_s, "waterfall": waterfall_s, "report": report_s, "write": write_s},
        "files": [str(path) for path in paths],
    }
