"""The exchange conventions in the batch commands (`clearing risk`, `clearing liquidate`).

Options (both commands):
- `--previous-settlement FILE` (CSV/Parquet: symbol, settlement_price): the day's price
  limits; marks beyond a limit are clamped to it before anything is swept;
- `--margin-change FILE` (JSON/TOML: {"ts": epoch ms, "changes": [{symbol, tiers}]}): new
  margin parameters installed at the marks, calling the accounts they alone leave short
  (engine.exchange.margin_change);
- `--now MS`: the tick's event time (epoch ms) for deadlines; default the margin change's
  ts, else 0.
The accounts file's optional `account_class` column (proprietary / brokerage) gives the
forced-close order of engine.exchange.account_classes.

Tables written beside the command's own: margin_calls (the calls opened, with deadline),
price_limits (per limited instrument: reference, limits, the input mark and the mark used,
locked up / down) and, for `liquidate`, forced_reductions (every side of each forced
position reduction).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.fixed import format_units
from engine.book.instruments import InstrumentTable
from engine.book.limits import TS_MAX
from engine.book.reasons import RejectReason
from engine.exchange.account_classes import read_account_classes
from engine.exchange.exchange_tick import ExchangeState
from engine.exchange.forced_reduction import Reduction
from engine.exchange.margin_calls import MarginCall
from engine.exchange.margin_change import MarginChange, apply_margin_change, read_margin_changes
from engine.exchange.price_limits import clamp_marks, read_previous_settlement
from engine.reports.decimals import grid_array, money_array
from engine.reports.run_info import input_digest
from engine.waterfall.profile import Profile


def add_exchange_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--previous-settlement",
        type=Path,
        help="symbol, settlement_price: daily price limits around these (instruments'"
        " price_limit); marks are clamped to them",
    )
    parser.add_argument(
        "--margin-change",
        type=Path,
        help='JSON or TOML {"ts": ms, "changes": [{"symbol", "tiers"}]}: new margin'
        " parameters; accounts they leave short get a margin call with a deadline",
    )
    parser.add_argument(
        "--now", type=int, help="event time in epoch ms for deadlines (default: the change's ts)"
    )


@dataclass(frozen=True)
class ExchangeInputs:
    previous_settlement: Path | None = None
    margin_change: Path | None = None
    now_ts: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ExchangeInputs:
        return cls(args.previous_settlement, args.margin_change, args.now)


@dataclass
class ExchangeRun:
    """What the batch applied before the tick, and the state the tick continues from."""

    state: ExchangeState
    now_ts: int
    changes: list[MarginChange] = field(default_factory=list)
    calls: list[MarginCall] = field(default_factory=list)
    clamped: dict[int, int] = field(default_factory=dict)  # instrument -> input mark


def input_digests(inputs: ExchangeInputs | None) -> dict[str, Any]:
    """The run metadata's digests of the exchange input files given."""
    if inputs is None:
        return {}
    files = {
        "previous_settlement": inputs.previous_settlement,
        "margin_change": inputs.margin_change,
    }
    return {name: input_digest(path) for name, path in files.items() if path is not None}


def read_changes(
    inputs: ExchangeInputs, instruments: InstrumentTable
) -> tuple[int, list[MarginChange]]:
    """The margin-change file (read before the book, so a bad file changes nothing)."""
    if inputs.margin_change is None:
        return 0, []
    return read_margin_changes(inputs.margin_change, instruments)


def prepare(
    book: Book, profile: Profile, accounts_path: Path, inputs: ExchangeInputs
) -> ExchangeRun:
    """Account classes, limits (marks clamped) and margin changes (calls opened), in that
    order, on a book at its input marks."""
    ts, changes = read_changes(inputs, book.instruments)
    now = inputs.now_ts if inputs.now_ts is not None else ts
    if not 0 <= now <= TS_MAX:
        raise Rejected(RejectReason.INVALID_TIMESTAMP, f"--now: expected 0 to {TS_MAX}, got {now}")
    state = ExchangeState(book.instruments)
    state.classes = read_account_classes(accounts_path)
    run = ExchangeRun(state, now, changes)
    if inputs.previous_settlement is not None:
        read_previous_settlement(inputs.previous_settlement, state.limits)
        run.clamped = {i: before for i, before, _ in clamp_marks(book, state.limits)}
    for change in changes:
        run.calls += apply_margin_change(book, profile, change, ts, state.pending)
    return run


def margin_calls_table(calls: list[MarginCall], money: int) -> pa.Table:
    """One row per call: money as decimal128 at the money scale, the deadline as a UTC
    timestamp and as epoch ms (the output convention of engine.reports.decimals)."""
    columns: dict[str, pa.Array] = {
        "account_id": pa.array([c.account_id for c in calls], type=pa.int64()),
        "reason": pa.array([c.reason for c in calls], type=pa.string()),
    }
    for name in ("equity", "maintenance_margin", "initial_margin", "shortfall", "call_amount"):
        columns[name] = money_array(np.array([getattr(c, name) for c in calls], np.int64), money)
    deadline_ms = np.array([c.deadline_ts for c in calls], dtype=np.int64)
    columns["deadline"] = pa.array(deadline_ms * 1000, type=pa.timestamp("us", tz="UTC"))
    columns["deadline_ms"] = pa.array(deadline_ms, type=pa.int64())
    return pa.table(columns)


def price_limits_table(book: Book, run: ExchangeRun) -> pa.Table:
    """One row per instrument with limits; prices decimal128 in their units."""
    limits = run.state.limits
    instruments = book.instruments
    locked = limits.locked(book)
    rows = np.flatnonzero(limits.reference > 0)
    bands = [limits.band(int(i)) or (0, 0) for i in rows]

    def prices(ticks: list[int]) -> pa.Array:
        return grid_array(np.array(ticks, dtype=np.int64), rows, instruments, tick=True)

    return pa.table(
        {
            "symbol": pa.array([instruments.instruments[i].symbol for i in rows], pa.string()),
            "previous_settlement": prices([int(limits.reference[i]) for i in rows]),
            "lower_limit": prices([b[0] for b in bands]),
            "upper_limit": prices([b[1] for b in bands]),
            "input_mark": prices([run.clamped.get(int(i), int(book.mark[i])) for i in rows]),
            "mark": prices([int(book.mark[i]) for i in rows]),
            "locked": pa.array(
                [{1: "up", -1: "down"}.get(int(locked[i]), "") for i in rows], pa.string()
            ),
        }
    )


def forced_reductions_table(book: Book, reductions: list[Reduction]) -> pa.Table:
    """One row per side of each forced reduction: qty (signed as the position closed) and
    price decimal128 in their units, realized PnL decimal128 money."""
    instruments = book.instruments
    inst = np.array([r.instrument for r in reductions], dtype=np.int64)
    return pa.table(
        {
            "event_id": pa.array([r.event_id for r in reductions], type=pa.int64()),
            "account_id": pa.array([r.account_id for r in reductions], type=pa.int64()),
            "symbol": pa.array(
                [instruments.instruments[r.instrument].symbol for r in reductions], pa.string()
            ),
            "role": pa.array(
                ["reducer" if r.reducer else "counterparty" for r in reductions], pa.string()
            ),
            "qty": grid_array(
                np.array([r.qty for r in reductions], np.int64), inst, instruments, tick=False
            ),
            "price": grid_array(
                np.array([r.price for r in reductions], np.int64), inst, instruments, tick=True
            ),
            "realized": money_array(
                np.array([r.realized for r in reductions], np.int64), instruments.money_decimals
            ),
        }
    )


def print_exchange_summary(
    book: Book, run: ExchangeRun, calls: list[MarginCall], reductions: list[Reduction]
) -> None:
    """Lines on stderr: limits applied, margin changes, calls opened, forced reductions."""
    insts = book.instruments.instruments
    money = book.instruments.money_decimals
    lines = []
    locked = run.state.limits.locked(book)
    for i in np.flatnonzero(run.state.limits.reference > 0).tolist():
        band = run.state.limits.band(i)
        assert band is not None
        state = {1: ", locked limit up", -1: ", locked limit down"}.get(int(locked[i]), "")
        moved = f", mark clamped from {run.clamped[i]} ticks" if i in run.clamped else ""
        lines.append(
            f"price limits        {insts[i].symbol}: {band[0]} .. {band[1]} ticks{moved}{state}"
        )
    for change in run.changes:
        lines.append(f"margin change       {change.symbol}: new tiers installed")
    for call in run.calls + calls:
        lines.append(
            f"margin call         account {call.account_id} ({call.reason}): short"
            f" {format_units(call.shortfall, money)}, call {format_units(call.call_amount, money)}"
            f", due {call.deadline_ts}"
        )
    if reductions:
        lines.append(f"forced reduction    {len(reductions)} sides at the limit price")
    print("\n".join(lines), file=sys.stderr)
