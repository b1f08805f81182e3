"""`clearing settle`: the end-of-day settlement batch (engine.settlement) from files.

    clearing settle (--snapshot FILE | --instruments F --accounts F --positions F)
                    --prices FILE [--funding FILE] [--fees FILE] --date YYYY-MM-DD
                    --out DIR [--profile FILE|NAME] [--currency USDT] [--force]

Input files (CSV or Parquet; decimals as text, exactly on their grid):
- prices: `symbol, settlement_price` (ticks of the symbol's tick size);
- funding (optional): `symbol` and, per row, `funding_rate` (per interval, e.g. 0.0001), or
  `index_price` to compute it (optional `interest_rate`, `rate_cap`); without this file no
  funding is charged;
- fees (optional): `account_id, fee` accrued trading fees in money (a negative fee is a
  rebate).

Everything is read and checked, and the whole settlement computed, before anything is
written; the outputs go to a temporary directory beside DIR that is renamed into place at
the end, so a refused or failed run leaves DIR as it was. A date already settled (in the
snapshot's `settled_dates`, or DIR already holding a settlement) is refused without --force.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.fixed import FixedPointError, format_units, parse_decimal, to_rate, to_units
from engine.book.instruments import InstrumentTable
from engine.book.reasons import RejectReason
from engine.cli.exit_codes import EXIT_OK
from engine.io.book_inputs import book_from_inputs, read_accounts, read_positions
from engine.io.columns import Column, Grid, decimal_column, int_column
from engine.io.snapshot import SnapshotError, read_snapshot, write_snapshot
from engine.io.tables import read_table
from engine.reports.settlement_outputs import SUMMARY, write_outputs
from engine.reports.settlement_summary import CURRENCY_DEFAULT
from engine.settlement.dates import check_date, with_settled_date
from engine.settlement.fees import FeesInput
from engine.settlement.funding import INTEREST_RATE_DEFAULT, FundingInput
from engine.settlement.run import settle
from engine.waterfall.profile import PROFILES_DIR, Profile, ProfileError

SNAPSHOT_NAME = "snapshot.arrow"
# A book this large takes more than a second or so to settle: show a progress bar.
PROGRESS_MIN_POSITIONS = 500_000
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


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
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--profile",
        default="binance-like",
        help="waterfall profile: a TOML file or a shipped name (default binance-like)",
    )
    parser.add_argument("--currency", default=CURRENCY_DEFAULT, help="label for the report")
    parser.add_argument(
        "--force", action="store_true", help="settle a date again / replace DIR's settlement"
    )


# ----- inputs ------------------------------------------------------------------------------
def settlement_date(text: str) -> str:
    if not _DATE.fullmatch(text):
        raise Rejected(RejectReason.INVALID_DATE, f"--date: expected YYYY-MM-DD, got {text!r}")
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        raise Rejected(
            RejectReason.INVALID_DATE, f"--date: {text} is not a calendar date"
        ) from None
    return text


def load_profile(text: str) -> Profile:
    path = Path(text)
    try:
        if path.is_file():
            return Profile.load(path)
        if (PROFILES_DIR / f"{text}.toml").is_file():
            return Profile.shipped(text)
    except ProfileError as exc:
        raise Rejected(RejectReason.INVALID_PROFILE, str(exc)) from None
    raise Rejected(RejectReason.INVALID_PROFILE, f"--profile: no file or shipped profile {text!r}")


def _texts(table: pa.Table, name: str) -> list[str | None]:
    """A small column's values as text (floats at their shortest round-trip form)."""
    column = table.column(name).combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.string())
    return [None if v is None or not v.strip() else v.strip() for v in column.to_pylist()]


def _row_error(path: Path, row: int, column: str, problem: str, reason: RejectReason) -> Rejected:
    return Rejected(reason, f"{path}: row {row + 1}, column {column!r}: {problem}")


def _symbols(path: Path, table: pa.Table, instruments: InstrumentTable) -> list[int]:
    found: dict[int, int] = {}
    out = []
    for row, symbol in enumerate(_texts(table, "symbol")):
        if symbol is None:
            raise _row_error(path, row, "symbol", "missing value", RejectReason.MISSING_VALUE)
        if symbol not in instruments.index:
            raise _row_error(
                path, row, "symbol", f"unknown symbol {symbol!r}", RejectReason.UNKNOWN_SYMBOL
            )
        inst = instruments.index[symbol]
        if inst in found:
            raise _row_error(
                path,
                row,
                "symbol",
                f"{symbol} repeats row {found[inst] + 1}",
                RejectReason.DUPLICATE_SYMBOL,
            )
        found[inst] = row
        out.append(inst)
    return out


def _decimal(
    path: Path, row: int, column: str, text: str | None, step: Any, *, rate: bool = False
) -> int:
    if text is None:
        raise _row_error(path, row, column, "missing value", RejectReason.MISSING_VALUE)
    try:
        value = parse_decimal(text, column)
        return to_rate(value, column) if rate else to_units(value, step, column)
    except FixedPointError as exc:
        raise _row_error(
            path, row, column, str(exc).split(": ", 1)[-1], RejectReason.INVALID_VALUE
        ) from None


def read_prices(path: Path, instruments: InstrumentTable) -> dict[int, int]:
    """Settlement prices in ticks, by instrument index."""
    table = read_table(path, ("symbol", "settlement_price"))
    insts = _symbols(path, table, instruments)
    prices = {}
    for row, (inst, text) in enumerate(zip(insts, _texts(table, "settlement_price"), strict=True)):
        tick = instruments.instruments[inst].tick_size
        price = _decimal(path, row, "settlement_price", text, tick)
        if not price > 0:
            raise _row_error(
                path, row, "settlement_price", "must be positive", RejectReason.INVALID_PRICE
            )
        prices[inst] = price
    return prices


def read_funding(path: Path, instruments: InstrumentTable) -> list[FundingInput]:
    optional = ("funding_rate", "index_price", "interest_rate", "rate_cap")
    table = read_table(path, ("symbol",), optional)
    if "funding_rate" not in table.column_names and "index_price" not in table.column_names:
        raise Rejected(
            RejectReason.MISSING_COLUMN,
            f"{path}: needs a funding_rate or an index_price column (or both)",
        )
    insts = _symbols(path, table, instruments)
    n = table.num_rows
    columns = {
        name: _texts(table, name) if name in table.column_names else [None] * n for name in optional
    }
    out = []
    for row, inst in enumerate(insts):
        tick = instruments.instruments[inst].tick_size
        rate_text, index_text = columns["funding_rate"][row], columns["index_price"][row]
        if rate_text is None and index_text is None:
            raise _row_error(
                path,
                row,
                "funding_rate",
                "needs a funding_rate or an index_price",
                RejectReason.MISSING_VALUE,
            )
        interest_text, cap_text = columns["interest_rate"][row], columns["rate_cap"][row]
        out.append(
            FundingInput(
                inst,
                rate=None
                if rate_text is None
                else _decimal(path, row, "funding_rate", rate_text, None, rate=True),
                index_price=None
                if index_text is None
                else _decimal(path, row, "index_price", index_text, tick),
                interest_rate=INTEREST_RATE_DEFAULT
                if interest_text is None
                else _decimal(path, row, "interest_rate", interest_text, None, rate=True),
                rate_cap=None
                if cap_text is None
                else _decimal(path, row, "rate_cap", cap_text, None, rate=True),
            )
        )
    return out


def read_fees(path: Path, instruments: InstrumentTable) -> FeesInput:
    table = read_table(path, ("account_id", "fee"))
    ids = int_column(table, Column(path, "account_id"))
    money = Grid([instruments.money_step], ["money unit"])
    amount = decimal_column(table, Column(path, "fee"), money)
    return FeesInput(ids, amount)


def load_book(args: argparse.Namespace, profile: Profile) -> tuple[Book, dict[str, Any]]:
    trio = (args.instruments, args.accounts, args.positions)
    if args.snapshot is not None:
        if any(p is not None for p in trio):
            raise Rejected(
                RejectReason.INVALID_ARGUMENTS,
                "give --snapshot or --instruments/--accounts/--positions",
            )
        try:
            return read_snapshot(args.snapshot)
        except SnapshotError as exc:
            raise Rejected(RejectReason.INVALID_SNAPSHOT, str(exc)) from None
    if any(p is None for p in trio):
        raise Rejected(
            RejectReason.INVALID_ARGUMENTS,
            "needs --snapshot FILE, or all of --instruments, --accounts and --positions",
        )
    instruments = InstrumentTable.load(args.instruments)
    accounts = read_accounts(args.accounts, instruments)
    positions = read_positions(args.positions, instruments)
    book = book_from_inputs(
        instruments, accounts, positions, None, warning_rate=profile.warning_rate
    )
    return book, {}


# ----- the output directory ----------------------------------------------------------------
def check_out(out: Path, *, force: bool) -> None:
    """DIR must be new, empty, or (with --force) a previous settlement's outputs."""
    if not out.exists():
        return
    if not out.is_dir():
        raise Rejected(RejectReason.INVALID_OUT, f"{out} exists and is not a directory")
    if not any(out.iterdir()):
        return
    summary = out / SUMMARY
    if not summary.is_file():
        raise Rejected(
            RejectReason.INVALID_OUT, f"{out} is not empty and holds no settlement: not replacing"
        )
    if not force:
        try:
            date = json.loads(summary.read_text()).get("date", "?")
        except (OSError, ValueError):
            date = "?"
        raise Rejected(
            RejectReason.ALREADY_SETTLED,
            f"{out} already holds the settlement of {date} (use --force to replace it)",
        )


def _commit(tmp: Path, out: Path) -> None:
    """Put the finished directory in place; a previous settlement is replaced whole."""
    if out.exists():
        replaced = out.with_name(f".{out.name}.replaced")
        if replaced.exists():
            shutil.rmtree(replaced)
        os.rename(out, replaced)
        os.rename(tmp, out)
        shutil.rmtree(replaced)
    else:
        os.rename(tmp, out)
    dir_fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# ----- progress ----------------------------------------------------------------------------
PHASES = (
    "validating",
    "marking to settlement prices",
    "variation margin",
    "funding",
    "fees",
    "sweep and waterfall",
    "checking conservation",
    "writing statements, ledger and report",
    "writing the snapshot",
)


@contextmanager
def progress_bar(enabled: bool, console: Console) -> Iterator[Callable[[str], None]]:
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


# ----- run ---------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    date = settlement_date(args.date)
    profile = load_profile(args.profile)
    out = Path(args.out)
    check_out(out, force=args.force)
    book, extra = load_book(args, profile)
    settled = extra.get("settled_dates", [])
    if not isinstance(settled, list):
        raise Rejected(
            RejectReason.INVALID_SNAPSHOT, "snapshot metadata: settled_dates is not a list"
        )
    check_date(date, [str(d) for d in settled], force=args.force)
    instruments = book.instruments
    prices = read_prices(args.prices, instruments)
    funding = None if args.funding is None else read_funding(args.funding, instruments)
    fees = None if args.fees is None else read_fees(args.fees, instruments)
    console = Console(stderr=True)
    show = sys.stderr.isatty() and len(book.pos_qty) >= PROGRESS_MIN_POSITIONS
    loaded = time.perf_counter()
    with progress_bar(show, console) as phase:
        result = settle(
            book, prices, date=date, profile=profile, funding=funding, fees=fees, phase=phase
        )
        settled_s = time.perf_counter()
        next_extra = with_settled_date(extra, date)
        source = (
            {"snapshot": str(args.snapshot)}
            if args.snapshot is not None
            else {
                "instruments": str(args.instruments),
                "accounts": str(args.accounts),
                "positions": str(args.positions),
            }
        )
        source["prices"] = str(args.prices)
        if args.funding is not None:
            source["funding"] = str(args.funding)
        if args.fees is not None:
            source["fees"] = str(args.fees)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
        try:
            phase(PHASES[-2])
            paths = write_outputs(
                tmp,
                book,
                result,
                profile,
                source=source,
                settled_dates=next_extra["settled_dates"],  # type: ignore[arg-type]
                currency=args.currency,
            )
            phase(PHASES[-1])
            write_snapshot(book, tmp / SNAPSHOT_NAME, next_extra)
            _commit(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    written = time.perf_counter()
    md = instruments.money_decimals
    t = result.instruments
    console.print(
        f"settled {date}: {book.n_accounts:,} accounts,"
        f" {result.waterfall.accounts_liquidated:,} liquidated,"
        f" {len(result.negative_rows):,} left negative"
    )
    console.print(
        f"funding paid {format_units(sum(t.funding_paid.tolist()), md)}, to pool"
        f" {format_units(sum(t.funding_to_pool.tolist()), md)}; checks"
        f" {'passed' if all(result.checks.values()) else 'FAILED'}"
    )
    console.print(
        f"load {loaded - started:.2f} s, settle {settled_s - loaded:.2f} s,"
        f" write {written - settled_s:.2f} s"
    )
    console.print(f"wrote {out}/ ({', '.join(sorted(p.name for p in paths))}, {SNAPSHOT_NAME})")
    return EXIT_OK
