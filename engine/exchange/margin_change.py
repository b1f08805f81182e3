"""A runtime change of an instrument's margin parameters, and the margin calls it makes.

Exchanges change margins while positions are open: CME raised crude oil's maintenance margin
from 9,000 to 13,000 per contract in 2020. A change names an instrument and its new tiers in
the instrument file's form (engine.book.instruments.parse_tiers: rate tiers, or one
`margin_per_contract` tier), e.g.

    {"symbol": "CLZ0", "tiers": [{"margin_per_contract":
        {"maintenance": "13000", "initial": "14300"}}]}

`apply_margin_change` sweeps the book before and after the change (at the same marks) and
calls every trader account the change alone took to `liquidate` with equity >= 0: a
MarginCall due the profile's `exchange.margin_call_grace_ms` after the change's event time,
entered in the PendingCalls book (engine.exchange.margin_calls), which holds it from the
waterfall until then. With no grace (0) nothing is called: the next waterfall takes those
accounts, as it takes every breached account. Batch: `--margin-change FILE` (a JSON or TOML
file {"ts": epoch ms, "changes": [change, ...]}); service: a `margin_change` message on the
prices topic (engine.service.messages).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.book.book import STATUS_LIQUIDATE, Book
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentError, InstrumentTable, Tier, parse_tiers
from engine.book.limits import TS_MAX
from engine.book.reasons import RejectReason
from engine.exchange.margin_calls import MarginCall, PendingCalls
from engine.waterfall.profile import Profile, reserved_mask

CHANGES_MAX = 10_000


@dataclass(frozen=True)
class MarginChange:
    symbol: str
    instrument: int
    tiers: tuple[Tier, ...]


def parse_margin_change(doc: Any, instruments: InstrumentTable, where: str) -> MarginChange:
    """One change {symbol, tiers}; `invalid_margin_change` (or `unknown_symbol`) naming
    `where` and the field."""
    if not isinstance(doc, dict):
        raise Rejected(RejectReason.INVALID_MARGIN_CHANGE, f"{where}: expected an object")
    symbol = doc.get("symbol")
    if not isinstance(symbol, str):
        raise Rejected(RejectReason.INVALID_MARGIN_CHANGE, f"{where}.symbol: expected a symbol")
    instrument = instruments.index.get(symbol)
    if instrument is None:
        raise Rejected(RejectReason.UNKNOWN_SYMBOL, f"{where}.symbol: unknown {symbol[:64]!r}")
    if "tiers" not in doc:
        raise Rejected(RejectReason.MISSING_FIELD, f"{where}.tiers: missing")
    try:
        tiers = parse_tiers(doc["tiers"], f"{where}.tiers", instruments.money_decimals)
    except InstrumentError as exc:
        raise Rejected(RejectReason.INVALID_MARGIN_CHANGE, str(exc)) from None
    return MarginChange(symbol, instrument, tiers)


def read_margin_changes(
    path: str | Path, instruments: InstrumentTable
) -> tuple[int, list[MarginChange]]:
    """A margin-change file: {"ts": epoch ms, "changes": [{symbol, tiers}, ...]}."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise Rejected(RejectReason.MISSING_FILE, f"{path}: cannot read: {exc.strerror}") from None
    try:
        doc = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise Rejected(RejectReason.INVALID_FILE, f"{path}: not valid: {exc}") from None
    if not isinstance(doc, dict):
        raise Rejected(RejectReason.INVALID_MARGIN_CHANGE, f"{path}: expected an object")
    ts = doc.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= TS_MAX:
        raise Rejected(
            RejectReason.INVALID_TIMESTAMP, f"{path}: ts: expected epoch ms from 0 to {TS_MAX}"
        )
    items = doc.get("changes")
    if not isinstance(items, list) or not 1 <= len(items) <= CHANGES_MAX:
        raise Rejected(
            RejectReason.INVALID_MARGIN_CHANGE,
            f"{path}: changes: expected a list of 1 to {CHANGES_MAX} changes",
        )
    changes = [
        parse_margin_change(item, instruments, f"{path}: changes[{i}]")
        for i, item in enumerate(items)
    ]
    return ts, changes


def apply_margin_change(
    book: Book,
    profile: Profile,
    change: MarginChange,
    ts: int,
    pending: PendingCalls,
    *,
    marks_ready: bool = True,
) -> list[MarginCall]:
    """Install the change's tiers and call the accounts it alone leaves short (module
    docstring). Without marks for every open position (`marks_ready` False) nothing can be
    swept: the change is installed and nobody is called."""
    grace = profile.exchange.margin_call_grace_ms
    before = book.sweep(with_initial_margin=False) if marks_ready and grace else None
    before_status = None if before is None else before.status.copy()
    book.instruments.replace_tiers(change.instrument, change.tiers)
    if before_status is None:
        return []
    after = book.sweep(with_initial_margin=True)
    assert after.initial_margin is not None
    newly_short = (
        (after.status >= STATUS_LIQUIDATE)
        & (before_status < STATUS_LIQUIDATE)
        & (after.equity >= 0)
        & ~reserved_mask(book.account_id, profile)
    )
    calls = []
    deadline = ts + grace
    for row in np.flatnonzero(newly_short).tolist():
        call = MarginCall(
            int(book.account_id[row]),
            "margin_change",
            int(after.equity[row]),
            int(after.maintenance_margin[row]),
            int(after.initial_margin[row]),
            deadline,
        )
        pending.open(call.account_id, deadline)
        calls.append(call)
    return calls
