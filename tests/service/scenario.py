"""The service tests' shared scenario: account events and a price path, the batch waterfall
as the reference, and helpers to run a service over memory streams with an audit per tick.

Grid (engine/data/instruments.json): BTCUSDT tick 0.1, lot 0.001, money at 8 decimals, so
one lot moving one tick is 0.1 x 0.001 x 10^8 = 10_000 units and 1 USDT = 10^8 units.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.service import messages
from engine.service.driver import run
from engine.service.files_adapter import ListStream, MemorySink, StreamSource
from engine.service.ports import Record, Topics
from engine.service.state import ServiceConfig, TickStats
from engine.service.tick import Service
from engine.waterfall.conservation import audit
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile
from engine.waterfall.run import run_waterfall

USDT = 10**8
DATA = Path(__file__).resolve().parents[2] / "engine" / "data"
TS0 = 1_760_140_800_000
EVENT_KINDS = ("liquidation", "liquidation_fee", "takeover", "insurance_payout", "adl")
OUTPUT_KINDS = (*EVENT_KINDS, "socialized_loss", "unallocated_loss")
TOPICS = Topics()


def instruments() -> InstrumentTable:
    return InstrumentTable.load(DATA / "instruments.json")


def fresh_book(profile: Profile, fund_usdt: int = 1_000) -> Book:
    book = Book(instruments(), warning_rate=profile.warning_rate)
    open_fund(book, profile, fund_usdt * USDT)
    return book


# ----- a scenario: account events, then a price path --------------------------------------
def scenario(
    n_pairs: int = 30,
    n_prices: int = 40,
    seed: int = 3,
    drift: float = -0.003,
    volatility: float = 0.004,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Deposits and fills between pairs of accounts on BTCUSDT and ETHUSDT at leverages from
    2x to 50x, a few leverage changes and withdrawals; then index prices (3 sources) that
    drift and fall about 12% so that the high-leverage side is liquidated."""
    rng = np.random.default_rng(seed)
    events: list[dict[str, Any]] = []
    next_id = iter(range(1, 10**9))
    for pair in range(n_pairs):
        long_id, short_id = 1000 + 2 * pair, 1001 + 2 * pair
        symbol, price = ("BTCUSDT", 100_000) if pair % 3 else ("ETHUSDT", 4_000)
        lots = int(rng.integers(100, 2_000))  # 0.1 to 2 BTC (or ETH)
        notional = Decimal(lots) / 1000 * price
        leverage = int(rng.choice([2, 5, 10, 20, 25, 50]))
        margin = (notional / leverage).quantize(Decimal("0.01"))
        events.append(messages.deposit_doc(next(next_id), TS0, long_id, str(margin)))
        events.append(messages.deposit_doc(next(next_id), TS0, short_id, str(notional)))
        if pair % 5 == 0:  # before the fill: lowering leverage on a position needs a mark
            events.append(messages.leverage_doc(next(next_id), TS0, long_id, symbol, 10))
        qty = str(Decimal(lots) / 1000)
        fee = str((notional * Decimal("0.0004")).quantize(Decimal("0.00000001")))
        events.append(
            messages.fill_doc(
                next(next_id), TS0 + 1, symbol, str(price), qty, long_id, short_id, fee, fee
            )
        )
        if pair % 7 == 0:  # a cash-only account (a withdrawal needs no mark then)
            events.append(messages.deposit_doc(next(next_id), TS0 + 3, 5000 + pair, "100"))
            events.append(messages.withdraw_doc(next(next_id), TS0 + 3, 5000 + pair, "1.5"))
    prices: list[dict[str, Any]] = []
    level = {"BTCUSDT": 100_000.0, "ETHUSDT": 4_000.0}
    for k in range(n_prices):
        for symbol, tick in (("BTCUSDT", Decimal("0.1")), ("ETHUSDT", Decimal("0.01"))):
            level[symbol] *= 1 + rng.normal(drift, volatility)
            sources = {
                name: str((Decimal(level[symbol] * (1 + d)) / tick).quantize(Decimal(1)) * tick)
                for name, d in (("a", 0.0), ("b", 0.0004), ("c", -0.0003))
            }
            prices.append(
                messages.price_doc(symbol, TS0 + 1000 * (k + 1), k + 1, index_prices=sources)
            )
    return events, prices


def apply_reference_event(book: Book, doc: dict[str, Any]) -> None:
    """An account event straight through the Book API (independent of the loop)."""
    t = book.instruments
    money = Decimal(1).scaleb(-t.money_decimals)
    if doc["type"] == "deposit":
        book.deposit(doc["account"], int(Decimal(doc["amount"]) / money), doc["event_id"])
    elif doc["type"] == "withdraw":
        book.withdraw(doc["account"], int(Decimal(doc["amount"]) / money), doc["event_id"])
    elif doc["type"] == "leverage":
        book.set_leverage(doc["account"], doc["symbol"], doc["leverage"])
    else:
        inst = t.instruments[t.symbol_index(doc["symbol"])]
        price = int(Decimal(doc["price"]) / inst.tick_size)
        lots = int(Decimal(doc["qty"]) / inst.lot_size)
        for account, qty, fee in (
            (doc["buyer"], lots, doc["buyer_fee"]),
            (doc["seller"], -lots, doc["seller_fee"]),
        ):
            fee_units = int(Decimal(fee) / money)
            book.apply_fill(
                account, doc["symbol"], qty, price, fee=fee_units, event_id=doc["event_id"]
            )


def reference_price(book: Book, doc: dict[str, Any]) -> int:
    inst = book.instruments.instruments[book.instruments.symbol_index(doc["symbol"])]
    if "mark_price" in doc:
        return int(Decimal(doc["mark_price"]) / inst.tick_size)
    ticks = sorted(int(Decimal(p) / inst.tick_size) for p in doc["index_prices"].values())
    return ticks[(len(ticks) - 1) // 2]  # the lower median


def batch_reference(
    profile: Profile, events: list[dict[str, Any]], price_batches: list[list[dict[str, Any]]]
) -> tuple[Book, list[tuple]]:
    """The batch run: every event, then per price batch the last price of each symbol as its
    mark and run_waterfall. Returns the book and the waterfall events as tuples."""
    book = fresh_book(profile)
    for doc in events:
        apply_reference_event(book, doc)
    out: list[tuple] = []
    for batch in price_batches:
        for doc in batch:
            book.set_mark(doc["symbol"], reference_price(book, doc))
        result = run_waterfall(book, profile)
        out.extend(
            (e.kind, e.account_id, e.symbol, e.qty, e.price, e.amount) for e in result.events
        )
        assert audit(book).ok
    return book, out


def published_events(docs: list[dict[str, Any]]) -> list[tuple]:
    return [
        (
            d["kind"],
            d["account"],
            d.get("symbol", ""),
            d.get("qty_lots", 0),
            d.get("price_ticks", 0),
            d["amount_units"],
        )
        for d in docs
        if d["kind"] in OUTPUT_KINDS
    ]


def memory_service(
    profile: Profile, config: ServiceConfig | None = None, **options: Any
) -> Service:
    return Service(
        fresh_book(profile),
        profile,
        config or ServiceConfig(band_rate=0, fill_checks=False),
        **options,
    )


def streams_of(
    events: list[dict[str, Any]], prices: list[dict[str, Any]], topics: Topics = TOPICS
) -> dict[tuple[str, int], ListStream]:
    return {
        (topics.account_events, 0): ListStream(
            [
                (messages.account_key(d.get("account", d.get("buyer"))), messages.encode(d))
                for d in events
            ]
        ),
        (topics.prices, 0): ListStream(
            [(d["symbol"].encode(), messages.encode(d)) for d in prices]
        ),
    }


def run_audited(
    service: Service, source: StreamSource, sink: MemorySink, **kw: Any
) -> list[TickStats]:
    """run() with audit(book) after every tick; returns each tick's stats."""
    original = service.tick
    stats = []

    def tick(records: list[Record]) -> list:
        outputs = original(records)
        assert audit(service.book).ok
        stats.append(service.last_stats)
        return outputs

    service.tick = tick  # type: ignore[method-assign]
    try:
        run(service, source, sink, **kw)
    finally:
        service.tick = original  # type: ignore[method-assign]
    return stats
