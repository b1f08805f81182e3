"""The end-of-day settlement batch, files to files: what `clearing settle` runs.

The book comes from a snapshot, or from the instruments, accounts and positions files (with
the insurance fund opened holding `insurance_fund`, a deposit; a snapshot holds its own
fund); the prices, funding and fees from engine.io.settlement_inputs. Everything is read
and checked,
and the whole settlement computed (engine.settlement), before anything is written; the
outputs (engine.reports.settlement_outputs, and the next day's snapshot) go to a temporary
directory beside the output directory that is renamed into place at the end, so a refused
or failed run leaves it as it was; what killed runs left (`.<out>.*.partial`) is removed
at the start of the next run into the same directory (engine.reports.out_dir). A date
already settled is refused unless forced: a snapshot's book carries its `settled_dates`; a
book from the CSV (or Parquet) files carries none, so the settled dates of a book from
files are recorded beside the output directory, in `<parent>/.settled-dates.json`, keyed by
the SHA-256 of its instruments, accounts and positions files (settling the same files for
the same date into another directory of that parent is refused too); and an output
directory already holding a settlement is not replaced unless forced. Every refusal of a
row of an input file names the file and its 1-based data row. Like the other batch runs
(risk_report, liquidation_report) it sits on top of engine.io and the core, which do not
import it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.fixed import FixedPointError, parse_decimal, to_units
from engine.book.instruments import InstrumentTable
from engine.book.reasons import RejectReason
from engine.io.book_inputs import book_from_inputs, read_accounts, read_positions
from engine.io.columns import first_repeat
from engine.io.settlement_inputs import FeesInput, read_fees, read_funding, read_prices
from engine.io.snapshot import SnapshotError, read_snapshot, write_snapshot
from engine.reports.out_dir import clean_partials, commit, fresh_dir
from engine.reports.settlement_outputs import SUMMARY, write_outputs
from engine.reports.settlement_summary import CURRENCY_DEFAULT
from engine.settlement.dates import check_date, settlement_date, with_settled_date
from engine.settlement.results import SettlementResult
from engine.settlement.run import Phase, settle
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import DEFAULT_PROFILE, PROFILES_DIR, Profile, ProfileError

SNAPSHOT_NAME = "snapshot.arrow"
SETTLED_RECORD = ".settled-dates.json"  # beside the output directory: books from files
# The phases reported to `progress`: the settlement run's, then writing the outputs.
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
# Given the number of position slots of the loaded book, a context that yields the callback
# told each phase's name as it starts (a progress bar, or nothing).
Progress = Callable[[int], AbstractContextManager[Phase]]


@dataclass(frozen=True)
class SettlementJob:
    """One batch: the book (`snapshot`, or `instruments` + `accounts` + `positions`), the
    input files, the date (YYYY-MM-DD), the waterfall profile (a file or a shipped name)."""

    date: str
    prices: Path
    out: Path
    snapshot: Path | None = None
    instruments: Path | None = None
    accounts: Path | None = None
    positions: Path | None = None
    funding: Path | None = None
    fees: Path | None = None
    profile: str = DEFAULT_PROFILE
    currency: str = CURRENCY_DEFAULT
    force: bool = False  # settle a date again / replace the output directory's settlement
    # The insurance fund's opening balance (a decimal in the money currency) for a book read
    # from the three files; None: the fund opens empty.
    insurance_fund: str | None = None


@dataclass(frozen=True)
class BatchOutcome:
    book: Book  # after the settlement
    result: SettlementResult
    paths: list[Path]  # the outputs but the snapshot, in `out`
    snapshot: Path
    load_s: float  # reading and checking every input
    settle_s: float
    write_s: float


def run_settlement_batch(job: SettlementJob, progress: Progress | None = None) -> BatchOutcome:
    """Settle the job's book and write its outputs; Rejected (nothing written) on bad input."""
    started = time.perf_counter()
    date = settlement_date(job.date)
    profile = load_profile(job.profile)
    out = Path(job.out)
    check_out(out, force=job.force)
    clean_partials(out)
    book, extra = load_book(job, profile)
    settled = extra.get("settled_dates", [])
    if not isinstance(settled, list):
        raise Rejected(
            RejectReason.INVALID_SNAPSHOT, "snapshot metadata: settled_dates is not a list"
        )
    book_key = None if job.snapshot is not None else files_key(job)
    if book_key is not None:
        settled = [*settled, *read_settled_record(out).get(book_key, [])]
    check_date(date, [str(d) for d in settled], force=job.force)
    instruments = book.instruments
    prices = read_prices(job.prices, instruments)
    funding = None if job.funding is None else read_funding(job.funding, instruments)
    fees = None if job.fees is None else read_fees(job.fees, instruments)
    if fees is not None and job.fees is not None:
        check_fee_accounts(book, fees, job.fees)
    loaded = time.perf_counter()
    context = nullcontext(_no_phase) if progress is None else progress(len(book.pos_qty))
    with context as phase:
        result = settle(
            book, prices, date=date, profile=profile, funding=funding, fees=fees, phase=phase
        )
        settled_s = time.perf_counter()
        next_extra = with_settled_date(extra, date)
        tmp = fresh_dir(out)
        try:
            phase(PHASES[-2])
            paths = write_outputs(
                tmp,
                book,
                result,
                profile,
                source=_sources(job),
                settled_dates=next_extra["settled_dates"],  # type: ignore[arg-type]
                currency=job.currency,
            )
            phase(PHASES[-1])
            write_snapshot(book, tmp / SNAPSHOT_NAME, next_extra)
            commit(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if book_key is not None:
            record_settled(out, book_key, date)
    written = time.perf_counter()
    return BatchOutcome(
        book=book,
        result=result,
        paths=[out / p.name for p in paths],
        snapshot=out / SNAPSHOT_NAME,
        load_s=loaded - started,
        settle_s=settled_s - loaded,
        write_s=written - settled_s,
    )


def _no_phase(_name: str) -> None:
    return None


# ----- inputs ------------------------------------------------------------------------------
def load_profile(text: str) -> Profile:
    """A profile TOML file, or the name of a shipped profile."""
    path = Path(text)
    try:
        if path.is_file():
            return Profile.load(path)
        if (PROFILES_DIR / f"{text}.toml").is_file():
            return Profile.shipped(text)
    except ProfileError as exc:
        raise Rejected(RejectReason.INVALID_PROFILE, str(exc)) from None
    raise Rejected(RejectReason.INVALID_PROFILE, f"--profile: no file or shipped profile {text!r}")


def load_book(job: SettlementJob, profile: Profile) -> tuple[Book, dict[str, Any]]:
    """The book and the snapshot's metadata (empty for a book read from the three files)."""
    trio = (job.instruments, job.accounts, job.positions)
    if job.snapshot is not None:
        if any(p is not None for p in trio):
            raise Rejected(
                RejectReason.INVALID_ARGUMENTS,
                "give --snapshot or --instruments/--accounts/--positions",
            )
        if job.insurance_fund is not None:
            raise Rejected(
                RejectReason.INVALID_ARGUMENTS,
                "--insurance-fund opens the fund of a book read from files; a snapshot holds"
                " its fund already",
            )
        try:
            return read_snapshot(job.snapshot)
        except SnapshotError as exc:
            raise Rejected(RejectReason.INVALID_SNAPSHOT, str(exc)) from None
    if job.instruments is None or job.accounts is None or job.positions is None:
        raise Rejected(
            RejectReason.INVALID_ARGUMENTS,
            "needs --snapshot FILE, or all of --instruments, --accounts and --positions",
        )
    instruments = InstrumentTable.load(job.instruments)
    accounts = read_accounts(job.accounts, instruments)
    positions = read_positions(job.positions, instruments)
    book = book_from_inputs(
        instruments, accounts, positions, None, warning_rate=profile.warning_rate
    )
    if job.insurance_fund is not None:
        open_fund(book, profile, fund_units(job.insurance_fund, instruments.money_decimals))
    return book, {}


def fund_units(text: str, money_decimals: int) -> int:
    """--insurance-fund as money units: a decimal on the money grid, not negative."""
    what = "--insurance-fund"
    try:
        units = to_units(parse_decimal(text, what), Decimal(1).scaleb(-money_decimals), what)
    except FixedPointError as exc:
        raise Rejected(RejectReason.INVALID_AMOUNT, str(exc)) from None
    if units < 0:
        raise Rejected(RejectReason.INVALID_AMOUNT, f"{what}: must not be negative, got {text}")
    return units


def _sources(job: SettlementJob) -> dict[str, str]:
    """The input files, for the summary and the report."""
    source = (
        {"snapshot": str(job.snapshot)}
        if job.snapshot is not None
        else {
            "instruments": str(job.instruments),
            "accounts": str(job.accounts),
            "positions": str(job.positions),
        }
    )
    source["prices"] = str(job.prices)
    if job.funding is not None:
        source["funding"] = str(job.funding)
    if job.fees is not None:
        source["fees"] = str(job.fees)
    return source


# ----- the output directory ----------------------------------------------------------------
def check_out(out: Path, *, force: bool) -> None:
    """`out` must be new, empty, or (forced) a previous settlement's outputs."""
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


# ----- settled dates of a book from files ---------------------------------------------------
def files_key(job: SettlementJob) -> str:
    """SHA-256 of the instruments, accounts and positions files: which book from files."""
    digest = hashlib.sha256()
    for path in (job.instruments, job.accounts, job.positions):
        assert path is not None
        digest.update(Path(path).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def read_settled_record(out: Path) -> dict[str, list[str]]:
    """The record beside `out`: book key -> dates settled; Rejected if it is not one."""
    path = out.parent / SETTLED_RECORD
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Rejected(RejectReason.INVALID_FILE, f"{path}: not readable JSON: {exc}") from None
    if not isinstance(doc, dict) or not all(
        isinstance(v, list) and all(isinstance(d, str) for d in v) for v in doc.values()
    ):
        raise Rejected(RejectReason.INVALID_FILE, f"{path}: expected {{book: [dates]}}")
    return doc


def record_settled(out: Path, book_key: str, date: str) -> None:
    """Add `date` to the book's settled dates beside `out` (temporary file, then rename)."""
    record = read_settled_record(out)
    record[book_key] = sorted({*record.get(book_key, []), date})
    path = out.parent / SETTLED_RECORD
    tmp = path.with_name(f"{SETTLED_RECORD}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def check_fee_accounts(book: Book, fees: FeesInput, path: Path) -> None:
    """Every fee row names an account of the book, once; refusals name the file and row."""
    rows = book.index.rows(fees.account_id)
    unknown = np.flatnonzero(rows < 0)
    if len(unknown):
        i = int(unknown[0])
        raise Rejected(
            RejectReason.UNKNOWN_ACCOUNT,
            f"{path}: row {i + 1}, column 'account_id': account {int(fees.account_id[i])}"
            " is not in the book",
        )
    repeat = first_repeat(fees.account_id)
    if repeat is not None:
        earlier, later = repeat
        raise Rejected(
            RejectReason.DUPLICATE_ACCOUNT,
            f"{path}: row {later + 1}, column 'account_id': account"
            f" {int(fees.account_id[later])} repeats row {earlier + 1}",
        )
