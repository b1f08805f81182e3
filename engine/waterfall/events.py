"""What the waterfall reports: its event kinds, the columnar event log and the result.

An event is one action (a position taken over, a fee, a takeover amount, an insurance
payout, an unwind fill, an ADL close, a socialized-loss charge, the loss left unallocated);
`WaterfallResult` holds the log and the money totals of one run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

EVENT_KINDS = (
    "liquidation",
    "liquidation_fee",
    "takeover",
    "insurance_payout",
    "unwind",
    "adl",
    "socialized_loss",
    "unallocated_loss",
    "collateral_sale",  # collateral sold at its haircut value before a takeover
    "margin_top_up",  # free balance moved into a breached isolated position
)
KIND_CODE = {kind: code for code, kind in enumerate(EVENT_KINDS)}
NO_INSTRUMENT = -1
EVENT_FIELDS = ("kind", "event_id", "account_id", "instrument", "qty", "price", "amount")


@dataclass(frozen=True)
class Event:
    """One action of the waterfall. qty lots (signed as the trader's position before),
    price ticks (the execution mark; for ADL the effective price, rounded toward the mark),
    amount money units moved by the action."""

    kind: str  # one of EVENT_KINDS
    event_id: int
    account_id: int
    symbol: str
    qty: int
    price: int
    amount: int


class EventLog:
    """The waterfall's events as int64 columns (kind code, instrument index or -1), so a
    tick with a million actions holds no Python object per action. Iterating gives Events."""

    def __init__(self, symbols: Sequence[str] = ()) -> None:
        self.symbols = tuple(symbols)
        self._rows: list[tuple[int, int, int, int, int, int, int]] = []
        self._chunks: list[dict[str, np.ndarray]] = []
        self._events: list[Event] | None = None

    def append(
        self,
        kind: str,
        event_id: int,
        account_id: int,
        instrument: int,
        qty: int,
        price: int,
        amount: int,
    ) -> None:
        self._rows.append((KIND_CODE[kind], event_id, account_id, instrument, qty, price, amount))
        self._events = None

    def extend(self, columns: dict[str, np.ndarray]) -> None:
        """Append columns named as EVENT_FIELDS, all of one length."""
        self._flush()
        n = len(columns["kind"])
        assert all(len(columns[name]) == n for name in EVENT_FIELDS)
        if n:
            self._chunks.append(
                {name: np.asarray(columns[name], np.int64) for name in EVENT_FIELDS}
            )
            self._events = None

    def _flush(self) -> None:
        if self._rows:
            table = np.array(self._rows, dtype=np.int64).reshape(-1, len(EVENT_FIELDS))
            self._chunks.append({name: table[:, i].copy() for i, name in enumerate(EVENT_FIELDS)})
            self._rows = []

    def columns(self) -> dict[str, np.ndarray]:
        self._flush()
        if not self._chunks:
            return {name: np.zeros(0, dtype=np.int64) for name in EVENT_FIELDS}
        if len(self._chunks) > 1:
            self._chunks = [
                {name: np.concatenate([c[name] for c in self._chunks]) for name in EVENT_FIELDS}
            ]
        return self._chunks[0]

    def __len__(self) -> int:
        return len(self._rows) + sum(len(c["kind"]) for c in self._chunks)

    def events(self) -> list[Event]:
        if self._events is None:
            cols = self.columns()
            symbols = (*self.symbols, "")  # index -1 (no instrument) is the empty symbol
            self._events = [
                Event(EVENT_KINDS[k], e, a, symbols[i], q, p, m)
                for k, e, a, i, q, p, m in zip(
                    *(cols[name].tolist() for name in EVENT_FIELDS), strict=True
                )
            ]
        return self._events

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events())

    def counts(self) -> dict[str, int]:
        kinds = np.bincount(self.columns()["kind"], minlength=len(EVENT_KINDS))
        return {EVENT_KINDS[k]: int(n) for k, n in enumerate(kinds.tolist()) if n}


@dataclass
class WaterfallResult:
    log: EventLog = field(default_factory=EventLog)
    accounts_liquidated: int = 0
    fund_balance_before: int = 0
    fund_equity_before: int = 0
    fund_balance_after: int = 0
    fund_equity_after: int = 0
    liquidation_fees: int = 0
    takeover_surplus: int = 0
    insurance_paid: int = 0
    debt_kept: int = 0
    unwind_loss: int = 0  # what the fund's unwind lost against the mark
    # The tick's deficit and who covered it, to the unit (asserted by run_waterfall):
    # fund_drawdown + adl_amount + socialized_amount + unallocated_loss == deficit_to_cover.
    deficit_to_cover: int = 0  # insurance paid + unwind loss + the deficit carried in
    fund_drawdown: int = 0  # the part the fund carried: its room above the floor and
    # the tick's fees, takeover surplus and unwind gains
    adl_amount: int = 0  # ADL money that covered the shortfall
    adl_shortfall: int = 0  # what ADL was asked to cover
    adl_overshoot: int = 0  # ADL money beyond the shortfall (whole positions only), kept
    # by the fund; the adl events carry adl_amount + adl_overshoot
    socialized_amount: int = 0
    unallocated_loss: int = 0  # what nobody could be charged: the fund's deficit below floor

    @property
    def events(self) -> list[Event]:
        return self.log.events()

    def summary(self) -> dict[str, int]:
        return self.log.counts()
