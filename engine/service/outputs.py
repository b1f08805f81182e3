"""What the service publishes: the output documents of one tick, numbered and serialized.

Every output is a JSON object headed by {"v", "id", "tick", "ts"}: the schema version, the
id `{shard}-{tick}-{n}` (n counts the tick's outputs in publication order, so a replay of
the same tick gives the same ids), the tick and the tick's event time (the latest input
ts). Money is written twice: a decimal string for reading and raw integer units
(`*_units`, `qty_lots`, `price_ticks`) for exact comparison.

Topics: waterfall events go to `liquidations` (liquidation, fee, takeover), `adl` (ADL and
socialized loss) or `insurance` (payouts, unwinds, unallocated loss, and the fund's summary
of a waterfall); a margin call to `margin-calls`; a rejected record to `dead-letter` with
its reason and original bytes (base64).
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.fixed import format_units
from engine.service import messages
from engine.service.ports import Output, Record, Topics
from engine.waterfall.events import Event, WaterfallResult

# The waterfall's event kinds by output topic.
LIQUIDATION_KINDS = (
    "liquidation",
    "liquidation_fee",
    "takeover",
    "collateral_sale",
    "margin_top_up",
)
ADL_KINDS = ("adl", "socialized_loss")
INSURANCE_KINDS = ("insurance_payout", "unwind", "unallocated_loss")


class TickOutputs:
    """Output records of one tick, numbered in publication order."""

    def __init__(self, shard: str, tick: int) -> None:
        self.shard = shard
        self.tick = tick
        self.docs: list[tuple[str, bytes, dict[str, Any]]] = []
        self.counts: dict[str, int] = {}

    def add(self, topic: str, key: bytes, doc: dict[str, Any]) -> None:
        self.docs.append((topic, key, doc))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def finish(self, ts: int) -> list[Output]:
        """Serialized, each with its id and the tick's event time (the latest input ts)."""
        records = []
        for n, (topic, key, doc) in enumerate(self.docs):
            head = {
                "v": messages.SCHEMA_VERSION,
                "id": f"{self.shard}-{self.tick}-{n}",
                "tick": self.tick,
                "ts": ts,
            }
            value = json.dumps({**head, **doc}, separators=(",", ":")).encode()
            records.append(Output(topic, key, value))
        return records


def topic_of_event(topics: Topics, kind: str) -> str:
    """The output topic of a waterfall event kind."""
    if kind in LIQUIDATION_KINDS:
        return topics.liquidations
    if kind in ADL_KINDS:
        return topics.adl
    assert kind in INSURANCE_KINDS, kind
    return topics.insurance


def rejected_doc(record: Record, exc: Rejected) -> dict[str, Any]:
    """A dead letter: the reason, and where the record was and its bytes (base64); for one
    event of a columnar batch record, also its `row`, and the bytes are that event's."""
    doc = {
        "kind": "rejected",
        "reason": exc.reason,
        "detail": exc.detail,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": None if record.key is None else base64.b64encode(record.key).decode(),
        "value": base64.b64encode(record.value).decode(),
    }
    if record.row >= 0:
        doc["row"] = record.row
    return doc


def margin_call_doc(
    account: int, equity: int, maintenance: int, money_decimals: int
) -> dict[str, Any]:
    """An account entering margin-call status, with its equity and maintenance margin."""
    return {
        "kind": "margin_call",
        "account": account,
        "equity": format_units(equity, money_decimals),
        "maintenance_margin": format_units(maintenance, money_decimals),
        "equity_units": equity,
        "maintenance_margin_units": maintenance,
    }


def event_doc(book: Book, event: Event, mark_seq: int | None = None) -> dict[str, Any]:
    """A waterfall event as published: decimal strings for reading, raw integers for exact
    comparison (qty_lots, price_ticks, amount_units)."""
    doc: dict[str, Any] = {
        "kind": event.kind,
        "account": event.account_id,
        "book_event_id": event.event_id,
        "amount": format_units(event.amount, book.instruments.money_decimals),
        "amount_units": event.amount,
    }
    if event.symbol:
        inst = book.instruments.instruments[book.instruments.symbol_index(event.symbol)]
        doc["symbol"] = event.symbol
        doc["qty"] = str(Decimal(event.qty) * inst.lot_size)
        doc["price"] = str(Decimal(event.price) * inst.tick_size)
        doc["qty_lots"] = event.qty
        doc["price_ticks"] = event.price
        if mark_seq is not None:
            doc["mark_seq"] = mark_seq  # the price message that set the mark used
    return doc


def fund_doc(result: WaterfallResult, fund_account: int, money_decimals: int) -> dict[str, Any]:
    """The insurance fund's summary of one waterfall run."""
    money = money_decimals
    return {
        "kind": "fund",
        "account": fund_account,
        "accounts_liquidated": result.accounts_liquidated,
        "balance_before": format_units(result.fund_balance_before, money),
        "balance_after": format_units(result.fund_balance_after, money),
        "equity_before": format_units(result.fund_equity_before, money),
        "equity_after": format_units(result.fund_equity_after, money),
        "balance_after_units": result.fund_balance_after,
        "equity_after_units": result.fund_equity_after,
        "liquidation_fees_units": result.liquidation_fees,
        "insurance_paid_units": result.insurance_paid,
        "adl_units": result.adl_amount,
        "socialized_units": result.socialized_amount,
        "unallocated_units": result.unallocated_loss,
    }
