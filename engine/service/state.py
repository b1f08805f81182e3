"""The service's settings, the state a snapshot carries besides the book, and what one tick
did (for metrics).

`ServiceState` is all a restart needs besides the book to resume bit-identically: the tick
number and event time, the offsets consumed per partition, the dedup state (last event id
per account-events partition, last price seq per symbol), the seq behind each mark, the
prices held by the band and the accounts in margin call. It round-trips through a
snapshot's `extra` (engine.service.snapshots) in a sorted, versioned form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.book.fixed import RATE_SCALE
from engine.service.ports import Topics

STATE_FORMAT = 1
BAND_RATE_DEFAULT = 10_000_000  # 10% of the last mark
BAND_CONFIRM_DEFAULT = 3
INCREMENTAL_MOVE_MAX_DEFAULT = 0.003


@dataclass(frozen=True)
class ServiceConfig:
    topics: Topics = Topics()
    shard: str = "0"
    band_rate: int = BAND_RATE_DEFAULT  # over RATE_SCALE; 0 turns the band off
    band_confirm: int = BAND_CONFIRM_DEFAULT
    incremental: bool = True
    incremental_move_max: float = INCREMENTAL_MOVE_MAX_DEFAULT  # see Service._choose_incremental
    # Fills need a mark, lie within band_rate of it (when the band is on) and leave every
    # side that adds exposure at or above its initial margin (engine.service.tick).
    fill_checks: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.band_rate <= 100 * RATE_SCALE:
            raise ValueError("band_rate must be in [0, 100] x RATE_SCALE")
        if not 1 <= self.band_confirm <= 1_000_000:
            raise ValueError("band_confirm must be at least 1")


@dataclass
class TickStats:
    """What one tick did, for metrics (not part of the state)."""

    records: int = 0
    account_events: int = 0
    prices: int = 0
    prices_held: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)
    swept_accounts: int = 0
    full_sweep: bool = False
    waterfall: bool = False
    accounts_liquidated: int = 0
    sweep_s: float = 0.0
    waterfall_s: float = 0.0


@dataclass
class ServiceState:
    """Everything besides the book that a snapshot must carry to resume bit-identically."""

    tick: int = 0
    tick_ts: int = 0
    offsets: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> next offset
    last_event_id: dict[str, int] = field(default_factory=dict)  # per events partition
    last_price_seq: dict[str, int] = field(default_factory=dict)  # per symbol
    mark_seq: dict[str, int] = field(default_factory=dict)  # seq of the price behind a mark
    # symbol -> [kind (engine.service.tick HELD_*), count, seq and price of the last price
    # held, tick the count last rose in]
    held: dict[str, list[int]] = field(default_factory=dict)
    margin_call: list[int] = field(default_factory=list)  # account ids in margin call
    # Futures exchange conventions (engine.exchange.exchange_tick.ExchangeState.to_dict):
    # proprietary accounts, open margin calls with deadlines, previous settlement prices.
    exchange: dict[str, Any] = field(default_factory=dict)

    def to_extra(self, shard: str) -> dict[str, Any]:
        # The exchange part only when there is one, so other snapshots stay as they were.
        extra = {"exchange": self.exchange} if self.exchange else {}
        return extra | {
            "format": STATE_FORMAT,
            "shard": shard,
            "tick": self.tick,
            "tick_ts": self.tick_ts,
            "offsets": dict(sorted(self.offsets.items())),
            "last_event_id": dict(sorted(self.last_event_id.items())),
            "last_price_seq": dict(sorted(self.last_price_seq.items())),
            "mark_seq": dict(sorted(self.mark_seq.items())),
            "held": dict(sorted(self.held.items())),
            "margin_call": sorted(self.margin_call),
        }

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> ServiceState:
        if extra.get("format") != STATE_FORMAT:
            raise ValueError(f"service state format {extra.get('format')!r}, expected 1")
        return cls(
            tick=int(extra["tick"]),
            tick_ts=int(extra["tick_ts"]),
            offsets={k: int(v) for k, v in extra["offsets"].items()},
            last_event_id={k: int(v) for k, v in extra["last_event_id"].items()},
            last_price_seq={k: int(v) for k, v in extra["last_price_seq"].items()},
            mark_seq={k: int(v) for k, v in extra["mark_seq"].items()},
            held={k: [int(x) for x in v] for k, v in extra["held"].items()},
            margin_call=[int(a) for a in extra["margin_call"]],
            exchange=dict(extra.get("exchange", {})),
        )
