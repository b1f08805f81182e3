"""What a simulation run did: a record per step, every waterfall event, the totals.

Money is in units at the book's money_decimals, prices in ticks, all raw integers; events
are kept as numpy chunks (EventLog) so millions of them never live as Python objects. The
Arrow tables a stress run writes from them are engine.reports.simulation_tables'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.waterfall import events as waterfall
from engine.waterfall.events import EVENT_KINDS, WaterfallResult

KIND_CODE = {kind: i for i, kind in enumerate(EVENT_KINDS)}
EVENT_COLUMNS = ("kind", "event_id", "account_id", "instrument", "qty", "price", "amount")


@dataclass
class StepRecord:
    """What one step did; money in units at the book's money_decimals, prices in ticks."""

    step: int
    t_s: int
    rounds: int = 0
    accounts_liquidated: int = 0
    liquidated_long: int = 0  # notional at the takeover mark of long positions taken over
    liquidated_short: int = 0
    unwind_notional: int = 0  # at the execution price
    unwind_pnl: int = 0  # the fund's realized PnL on its unwinds (slippage is a loss)
    liquidation_fees: int = 0
    takeover_surplus: int = 0
    insurance_paid: int = 0
    adl_count: int = 0
    adl_amount: int = 0
    socialized: int = 0
    unallocated: int = 0  # shortfall left after the step's last waterfall (a stock)
    # The fund's flows (engine.stress.fund_flows), summed over the step's waterfalls:
    # deficit_to_cover == fund_drawdown + adl_amount + socialized + unallocated_added.
    deficit_to_cover: int = 0
    fund_drawdown: int = 0
    unallocated_added: int = 0  # negative where an earlier unallocated loss was covered
    fund_equity: int = 0  # after the step
    fund_equity_low: int = 0  # lowest seen in the step (before ADL / socialization)
    fund_exhausted: bool = False  # the fund fell below its floor: ADL / socialization ran
    exogenous: dict[str, int] = field(default_factory=dict)  # path price, ticks
    marks: dict[str, int] = field(default_factory=dict)  # marks at the fixed point, ticks


def event_columns(result: WaterfallResult, book: Book) -> dict[str, np.ndarray]:
    """A waterfall result's events as int64 columns: kind (code in EVENT_KINDS), event_id,
    account_id, instrument (index, -1 for none), qty, price, amount."""
    log = getattr(result, "log", None)
    if log is not None and hasattr(log, "columns"):
        # The waterfall's columnar log: no Python object per event.
        columns = dict(log.columns())
        theirs = getattr(waterfall, "EVENT_KINDS", EVENT_KINDS)
        remap = np.array([KIND_CODE[kind] for kind in theirs], dtype=np.int64)
        columns["kind"] = remap[columns["kind"]]
        return columns
    events = result.events
    n = len(events)
    index = book.instruments.index
    return {
        "kind": np.fromiter((KIND_CODE[e.kind] for e in events), np.int64, n),
        "event_id": np.fromiter((e.event_id for e in events), np.int64, n),
        "account_id": np.fromiter((e.account_id for e in events), np.int64, n),
        "instrument": np.fromiter((index.get(e.symbol, -1) for e in events), np.int64, n),
        "qty": np.fromiter((e.qty for e in events), np.int64, n),
        "price": np.fromiter((e.price for e in events), np.int64, n),
        "amount": np.fromiter((e.amount for e in events), np.int64, n),
    }


class EventLog:
    """Events as numpy chunks, so millions of them never live as Python objects."""

    def __init__(self) -> None:
        self._chunks: list[dict[str, np.ndarray]] = []

    def add(self, columns: dict[str, np.ndarray], step: int, t_s: int, round_: int) -> None:
        n = len(columns["kind"])
        if n == 0:
            return
        chunk: dict[str, np.ndarray] = {
            "step": np.full(n, step, dtype=np.int32),
            "t_s": np.full(n, t_s, dtype=np.int64),
            "round": np.full(n, round_, dtype=np.int32),
        }
        chunk.update({name: np.asarray(columns[name], np.int64) for name in EVENT_COLUMNS})
        chunk["kind"] = chunk["kind"].astype(np.int8)
        chunk["instrument"] = chunk["instrument"].astype(np.int32)
        self._chunks.append(chunk)

    def column(self, name: str) -> np.ndarray:
        if not self._chunks:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([c[name] for c in self._chunks])

    def __len__(self) -> int:
        return sum(len(c["step"]) for c in self._chunks)


@dataclass
class SimulationResult:
    scenario: str
    symbols: tuple[str, ...]  # the book's instruments, by index
    money_decimals: int
    fund_start: int
    floor: int
    steps: list[StepRecord]
    events: EventLog
    instruments: InstrumentTable
    start: datetime  # t = 0, UTC

    @property
    def fund_exhausted(self) -> bool:
        return any(s.fund_exhausted for s in self.steps)

    def totals(self) -> dict[str, int]:
        """Sums over the run (money units); accounts counted once however often liquidated."""
        kind = self.events.column("kind")
        accounts = self.events.column("account_id")[kind == KIND_CODE["liquidation"]]
        steps = self.steps
        return {
            "accounts_liquidated": int(len(np.unique(accounts))),
            "liquidations": sum(s.accounts_liquidated for s in steps),
            "liquidated_long": sum(s.liquidated_long for s in steps),
            "liquidated_short": sum(s.liquidated_short for s in steps),
            "unwind_notional": sum(s.unwind_notional for s in steps),
            "unwind_pnl": sum(s.unwind_pnl for s in steps),
            "liquidation_fees": sum(s.liquidation_fees for s in steps),
            "takeover_surplus": sum(s.takeover_surplus for s in steps),
            "insurance_paid": sum(s.insurance_paid for s in steps),
            "adl_count": sum(s.adl_count for s in steps),
            "adl_amount": sum(s.adl_amount for s in steps),
            "socialized": sum(s.socialized for s in steps),
            "unallocated_end": steps[-1].unallocated if steps else 0,
            "deficit_to_cover": sum(s.deficit_to_cover for s in steps),
            "fund_drawdown": sum(s.fund_drawdown for s in steps),
            "unallocated_added": sum(s.unallocated_added for s in steps),
            "fund_start": self.fund_start,
            "fund_end": steps[-1].fund_equity if steps else self.fund_start,
            "fund_low": min((s.fund_equity_low for s in steps), default=self.fund_start),
            "rounds_max": max((s.rounds for s in steps), default=0),
            "steps": len(steps),
        }
