"""`clearing settle`: the end-of-day settlement from files (engine.reports.settlement_batch).

    clearing settle (--snapshot FILE | --instruments F --accounts F --positions F)
                    --prices FILE [--funding FILE] [--fees FILE] --date YYYY-MM-DD
                    --out DIR [--profile FILE|NAME] [--currency USDT] [--force]
                    [--insurance-fund AMOUNT]

Input files (CSV or Parquet; decimals as text, exactly on their grid; see
engine.io.settlement_inputs):
- prices: `symbol, settlement_price` (ticks of the symbol's tick size);
- funding (optional): `symbol` and, per row, `funding_rate` (per interval, e.g. 0.0001), or
  `index_price` to compute it (optional `interest_rate`, `rate_cap`); without this file no
  funding is charged;
- fees (optional): `account_id, fee` accrued trading fees in money (a negative fee is a
  rebate).

--insurance-fund AMOUNT (with the three book files only): the insurance fund opens holding
AMOUNT of the money currency (a deposit), as a snapshot's fund would; without it the fund
opens empty.

Everything is read and checked, and the whole settlement computed, before anything is
written; the outputs go to a temporary directory beside DIR that is renamed into place at
the end, so a refused or failed run leaves DIR as it was. A date already settled (in the
snapshot's `settled_dates`, or DIR already holding a settlement) is refused without --force.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from engine.book.fixed import format_units
from engine.cli.inputs import out_directory, profile_argument
from engine.cli.outcome import Outcome
from engine.reports.settlement_batch import (
    PHASES,
    SNAPSHOT_NAME,
    SettlementJob,
    run_settlement_batch,
)
from engine.reports.settlement_summary import CURRENCY_DEFAULT
from engine.settlement.run import Phase
from engine.waterfall.profile import DEFAULT_PROFILE

# A book this large takes more than a second or so to settle: show a progress bar.
PROGRESS_MIN_POSITIONS = 500_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--snapshot", type=Path, help="Arrow snapshot of the book (or the trio)")
    parser.add_argument("--instruments", type=Path, help="JSON or TOML (with --accounts ...)")
    parser.add_argument("--accounts", type=Path, help="account_id, balance")
    parser.add_argument(
        "--positions", type=Path, help="account_id, symbol, qty, entry_price [, leverage]"
    )
    parser.add_argument("--prices", required=True, type=Path, help="symbol, settlement_price")
    parser.add_argument(
        "--funding",
        type=Path,
        help="symbol, funding_rate | index_price [, interest_rate, rate_cap]",
    )
    parser.add_argument("--fees", type=Path, help="account_id, fee (accrued trading fees)")
    parser.add_argument("--date", required=True, help="settlement date, YYYY-MM-DD")
    parser.add_argument("--out", required=True, type=out_directory, help="output directory")
    parser.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        type=profile_argument,
        help=f"waterfall profile: a TOML file or a shipped name (default {DEFAULT_PROFILE})",
    )
    parser.add_argument("--currency", default=CURRENCY_DEFAULT, help="label for the report")
    parser.add_argument(
        "--force", action="store_true", help="settle a date again / replace DIR's settlement"
    )
    parser.add_argument(
        "--insurance-fund",
        metavar="AMOUNT",
        help="the insurance fund's opening balance, a decimal in the money currency"
        " (a book read from files; default: it opens empty)",
    )


@contextmanager
def progress_bar(enabled: bool, console: Console) -> Iterator[Phase]:
    """A callback advancing one bar through PHASES; does nothing when not enabled."""
    if not enabled:
        yield lambda _name: None
        return
    bar = Progress(
        TextColumn("settle: {task.description:<40}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with bar:
        task = bar.add_task(PHASES[0], total=len(PHASES))
        seen: list[str] = []

        def phase(name: str) -> None:
            if seen:
                bar.advance(task)
            seen.append(name)
            bar.update(task, description=name)

        yield phase
        bar.update(task, completed=len(PHASES))


def run(args: argparse.Namespace) -> Outcome:
    job = SettlementJob(
        date=args.date,
        prices=args.prices,
        out=args.out,
        snapshot=args.snapshot,
        instruments=args.instruments,
        accounts=args.accounts,
        positions=args.positions,
        funding=args.funding,
        fees=args.fees,
        profile=args.profile,
        currency=args.currency,
        force=args.force,
        insurance_fund=args.insurance_fund,
    )
    console = Console(stderr=True)
    tty = sys.stderr.isatty()
    outcome = run_settlement_batch(
        job,
        progress=lambda positions: progress_bar(
            tty and positions >= PROGRESS_MIN_POSITIONS, console
        ),
    )
    book, result = outcome.book, outcome.result
    md = book.instruments.money_decimals
    t = result.instruments
    console.print(
        f"settled {result.date}: {book.n_accounts:,} accounts,"
        f" {result.waterfall.accounts_liquidated:,} liquidated,"
        f" {len(result.negative_rows):,} left negative"
    )
    console.print(
        f"funding paid {format_units(sum(t.funding_paid.tolist()), md)}, to pool"
        f" {format_units(sum(t.funding_to_pool.tolist()), md)}; checks"
        f" {'passed' if all(result.checks.values()) else 'FAILED'}"
    )
    console.print(
        f"load {outcome.load_s:.2f} s, settle {outcome.settle_s:.2f} s,"
        f" write {outcome.write_s:.2f} s"
    )
    names = ", ".join(sorted(p.name for p in outcome.paths))
    console.print(f"wrote {Path(args.out)}/ ({names}, {SNAPSHOT_NAME})")
    return Outcome(
        {
            "date": str(result.date),
            "accounts": book.n_accounts,
            "accounts_liquidated": result.waterfall.accounts_liquidated,
            "accounts_left_negative": len(result.negative_rows),
            "funding_paid": format_units(sum(t.funding_paid.tolist()), md),
            "funding_to_pool": format_units(sum(t.funding_to_pool.tolist()), md),
            "checks": {name: bool(ok) for name, ok in result.checks.items()},
            "seconds": {
                "load": outcome.load_s,
                "settle": outcome.settle_s,
                "write": outcome.write_s,
            },
            "out": str(args.out),
            "files": sorted([*(p.name for p in outcome.paths), SNAPSHOT_NAME]),
        }
    )
