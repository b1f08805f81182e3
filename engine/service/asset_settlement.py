"""The daily settlement of an asset-liability service: interest and the call clock
(engine.margin.settle.settle_day), triggered by a message on the prices topic.

The trigger is explicit: the house sends, on the prices topic (key `settlement`, or none),

    {"v": 1, "type": "settlement", "date": "2026-01-05", "ts": <ms>,
     "rates": {"CNY": "0.000225", ...}}

and the service settles that day where the message stands among the prices of its tick, at
the prices accepted before it: every debt accrues one period's interest at its asset's rate
(a decimal in [0, 1] per period; an asset not named accrues nothing), then the call clock
advances for each account in margin call or worse (and resets for the others). A call that has
stood for more than the profile's `call_deadline_days` settlements is then a forced sale at
the tick's sweep. An explicit message, not the event time crossing a UTC day boundary: the
house decides when its day ends (exchanges close at their own hour, weekends and holidays
settle nothing), and a replay of the stream settles the same days at the same places.

Dates must rise: a date at or before the last settled one is `stale_sequence` (a
redelivered settlement accrues nothing twice); the last date is kept as YYYYMMDD under the
name `@settlement` in the service state's `last_price_seq`, so snapshots carry it. A
settlement before every asset held or owed has a price is `no_mark`; a malformed date
`invalid_date`, a rate outside [0, 1] `invalid_value`, an asset not in the table
`unknown_asset`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE, to_rate
from engine.book.limits import TS_MAX
from engine.book.reasons import RejectReason
from engine.margin.accounts import AssetBook
from engine.margin.assets import AssetTable
from engine.margin.ratio import AssetLiabilityRisk
from engine.margin.settle import settle_day
from engine.service import messages
from engine.service.state import ServiceState
from engine.waterfall.profile import AssetLiabilityRules

SETTLEMENT_TYPE = "settlement"
SETTLEMENT_KEY = "@settlement"  # the last settled date (YYYYMMDD) in last_price_seq


@dataclass(frozen=True)
class Settlement:
    date: int  # YYYYMMDD
    ts: int
    rates: dict[int, int]  # asset index -> rate per period over RATE_SCALE


def is_settlement(value: bytes) -> bool:
    """A prices-topic record that may be a settlement (the parse decides)."""
    return b'"type"' in value and SETTLEMENT_TYPE.encode() in value


def parse_settlement(value: bytes, key: bytes | None, assets: AssetTable) -> Settlement:
    doc = messages._load(value)
    if doc.get("type") != SETTLEMENT_TYPE:
        raise Rejected(
            RejectReason.UNKNOWN_TYPE,
            f"type {str(doc.get('type'))[:32]!r} on the prices topic, expected {SETTLEMENT_TYPE!r}",
        )
    key_text = messages._key_text(key)
    if key_text not in (None, SETTLEMENT_TYPE):
        raise Rejected(RejectReason.KEY_MISMATCH, f"key {str(key_text)[:32]!r} is not 'settlement'")
    ts = messages._int(doc, "ts", RejectReason.INVALID_TIMESTAMP, high=TS_MAX)
    text = messages._field(doc, "date")
    try:
        if not isinstance(text, str) or len(text) != 10:
            raise ValueError(text)
        date = datetime.date.fromisoformat(text)
    except ValueError:
        raise Rejected(
            RejectReason.INVALID_DATE, f"date must be YYYY-MM-DD, got {str(text)[:32]!r}"
        ) from None
    rates: dict[int, int] = {}
    table = doc.get("rates", {})
    if not isinstance(table, dict):
        raise Rejected(RejectReason.INVALID_FIELD, "rates must be an object {asset: rate}")
    for symbol, value_ in sorted(table.items()):
        index = assets.index.get(symbol)
        if index is None:
            raise Rejected(RejectReason.UNKNOWN_ASSET, f"unknown asset {str(symbol)[:64]!r}")
        rate = messages._decimal({"rate": value_}, "rate", RejectReason.INVALID_VALUE)
        if not Decimal(0) <= rate <= Decimal(1):
            raise Rejected(RejectReason.INVALID_VALUE, f"rate of {symbol}: {rate} not in [0, 1]")
        try:
            rates[index] = to_rate(rate, f"rate of {symbol}")
        except ValueError as exc:  # finer than 1 / RATE_SCALE
            raise Rejected(RejectReason.INVALID_VALUE, str(exc)) from None
        assert 0 <= rates[index] <= RATE_SCALE
    return Settlement(date.year * 10_000 + date.month * 100 + date.day, ts, rates)


def settle(
    state: ServiceState, book: AssetBook, rules: AssetLiabilityRules, settlement: Settlement
) -> AssetLiabilityRisk:
    """Settle the day (all checks before the first write); the sweep after it."""
    last = state.last_price_seq.get(SETTLEMENT_KEY, -1)
    if settlement.date <= last:
        raise Rejected(
            RejectReason.STALE_SEQUENCE,
            f"settlement of {settlement.date} is not after the last one, {last}",
        )
    risk = settle_day(book, rules, settlement.rates)
    state.last_price_seq[SETTLEMENT_KEY] = settlement.date
    return risk


def settlement_doc(date: str, ts: int, rates: dict[str, str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"v": messages.SCHEMA_VERSION, "type": SETTLEMENT_TYPE, "date": date}
    doc["ts"] = ts
    if rates:
        doc["rates"] = rates
    return doc
