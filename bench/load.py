"""A sustained burst through the service loop: the lag curve, peak RSS and time to drain.

`python -m bench.load --accounts 50000 --seconds 10`

A book of `--accounts` traders in long/short pairs on BTCUSDT and ETHUSDT is built through
the service (deposits and fills). Then the burst: for `--seconds` of wall time, records
arrive at fixed rates -- every account touched once (a deposit, a fill with its pair, or a
leverage change, spread evenly over the burst) and prices at `--price-multiple` (10) times
the usual rate (`--usual-price-rate`, prices per second per symbol), walking down so that
the highly levered side is liquidated. The loop (Service.tick, the real book) takes every
record that has arrived, up to `--batch-records` per tick, as a consumer would; after the
burst it drains what is left. It prints per second of wall time the records arrived,
applied and waiting (the lag, records and the oldest one's age), then peak RSS, the time to
drain after the burst ended, ticks, and outputs by kind.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.service import messages
from engine.service.ports import Record, Topics
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile

TOPICS = Topics()
DATA = Path(__file__).resolve().parent.parent / "engine" / "data"
TS0 = 1_760_140_800_000
USDT = 10**8
SYMBOLS = {"BTCUSDT": (100_000.0, 1, "0.1"), "ETHUSDT": (4_000.0, 2, "0.01")}


def _price(symbol: str, level: float) -> str:
    step = float(SYMBOLS[symbol][2])
    decimals = SYMBOLS[symbol][1]
    return f"{round(level / step) * step:.{decimals}f}"


class Feed:
    """Records with offsets per partition."""

    def __init__(self) -> None:
        self.offsets: Counter[tuple[str, int]] = Counter()
        self.event_id = 0

    def next_id(self) -> int:
        self.event_id += 1
        return self.event_id

    def event(self, doc: dict[str, Any]) -> Record:
        return self._record(TOPICS.account_events, messages.encode(doc))

    def price(self, doc: dict[str, Any]) -> Record:
        return self._record(TOPICS.prices, messages.encode(doc), doc["symbol"].encode())

    def _record(self, topic: str, value: bytes, key: bytes | None = None) -> Record:
        offset = self.offsets[(topic, 0)]
        self.offsets[(topic, 0)] = offset + 1
        return Record(topic, 0, offset, key, value)


def build(n_accounts: int, feed: Feed) -> Service:
    profile = Profile.shipped()
    book = Book(InstrumentTable.load(DATA / "instruments.json"), warning_rate=profile.warning_rate)
    open_fund(book, profile, 10_000_000 * USDT)
    service = Service(book, profile, ServiceConfig())
    seq = dict.fromkeys(SYMBOLS, 0)
    opening = []
    for symbol, (level, _, _) in SYMBOLS.items():
        for _ in range(3):  # a first price is held until three agree
            seq[symbol] += 1
            opening.append(
                feed.price(
                    messages.price_doc(symbol, TS0, seq[symbol], mark_price=_price(symbol, level))
                )
            )
    service.tick(opening)
    records: list[Record] = []
    for pair in range(n_accounts // 2):
        long_id, short_id = 1000 + 2 * pair, 1001 + 2 * pair
        symbol = "BTCUSDT" if pair % 3 else "ETHUSDT"
        level = SYMBOLS[symbol][0]
        leverage = (2, 5, 10, 20, 25)[pair % 5]
        qty = "0.01" if symbol == "BTCUSDT" else "0.1"
        margin = f"{float(qty) * level / leverage * 1.2:.2f}"
        for account in (long_id, short_id):
            records.append(feed.event(messages.deposit_doc(feed.next_id(), TS0, account, margin)))
        fill = messages.fill_doc(
            feed.next_id(), TS0, symbol, _price(symbol, level), qty, long_id, short_id
        )
        records.append(feed.event(fill))
        if len(records) >= 10_000:
            service.tick(records)
            records = []
    if records:
        service.tick(records)
    return service


def burst(
    service: Service,
    feed: Feed,
    n_accounts: int,
    seconds: float,
    usual_price_rate: float,
    price_multiple: float,
    batch_records: int,
) -> dict[str, Any]:
    """Arrivals at fixed rates for `seconds`, consumed as they come; then the drain."""
    price_rate = usual_price_rate * price_multiple * len(SYMBOLS)
    event_rate = n_accounts / seconds
    level = {s: spec[0] for s, spec in SYMBOLS.items()}
    seq = {s: int(service.state.mark_seq.get(s, 0)) for s in SYMBOLS}
    n_prices = int(price_rate * seconds)
    # (arrival second, record): every account once, prices at the burst rate.
    arrivals: list[tuple[float, int, Record]] = []
    for k in range(n_accounts):
        at = k / event_rate
        account = 1000 + k
        ts = TS0 + 1000 + int(at * 1000)
        kind = k % 3
        if kind == 0:
            record = feed.event(messages.deposit_doc(feed.next_id(), ts, account, "10"))
        elif kind == 1 and account % 2 == 0 and account + 1 < 1000 + n_accounts:
            symbol = "BTCUSDT" if ((account - 1000) // 2) % 3 else "ETHUSDT"
            qty = "0.001" if symbol == "BTCUSDT" else "0.01"
            price = _price(symbol, level[symbol])
            record = feed.event(
                messages.fill_doc(feed.next_id(), ts, symbol, price, qty, account, account + 1)
            )
        else:
            symbol = "BTCUSDT" if ((account - 1000) // 2) % 3 else "ETHUSDT"
            record = feed.event(messages.leverage_doc(feed.next_id(), ts, account, symbol, 10))
        arrivals.append((at, 0, record))
    for k in range(n_prices):
        at = k / price_rate
        symbol = list(SYMBOLS)[k % len(SYMBOLS)]
        level[symbol] *= 1 - 0.25 / (n_prices / len(SYMBOLS))  # -25% over the burst
        seq[symbol] += 1
        doc = messages.price_doc(
            symbol,
            TS0 + 1000 + int(at * 1000),
            seq[symbol],
            mark_price=_price(symbol, level[symbol]),
        )
        arrivals.append((at, 1, feed.price(doc)))
    arrivals.sort(key=lambda a: (a[0], a[1], a[2].offset))
    outputs: Counter[str] = Counter()
    curve: list[tuple[float, int, int, float]] = []  # second, arrived, applied, oldest age
    applied = ticks = 0
    started = time.perf_counter()
    next_sample = 0.0
    drained_at = None
    while applied < len(arrivals):
        now = time.perf_counter() - started
        arrived = _arrived(arrivals, now)
        if arrived == applied:
            time.sleep(0.0005)
            continue
        take = arrivals[applied : min(arrived, applied + batch_records)]
        for o in service.tick([r for _, _, r in take]):
            outputs[json.loads(o.value)["kind"]] += 1
        applied += len(take)
        ticks += 1
        now = time.perf_counter() - started
        if now >= next_sample or applied == len(arrivals):
            arrived = _arrived(arrivals, now)
            oldest = now - arrivals[applied][0] if applied < arrived else 0.0
            curve.append((now, arrived, applied, oldest))
            next_sample += 1.0
    drained_at = time.perf_counter() - started
    return {
        "records": len(arrivals),
        "account_events": n_accounts,
        "prices": n_prices,
        "ticks": ticks,
        "burst_s": seconds,
        "drained_at_s": drained_at,
        "drain_after_burst_s": max(0.0, drained_at - seconds),
        "curve": curve,
        "outputs": dict(sorted(outputs.items())),
    }


def _arrived(arrivals: list[tuple[float, int, Record]], now: float) -> int:
    lo, hi = 0, len(arrivals)
    while lo < hi:
        mid = (lo + hi) // 2
        if arrivals[mid][0] <= now:
            lo = mid + 1
        else:
            hi = mid
    return lo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="the burst's length")
    parser.add_argument("--usual-price-rate", type=float, default=10.0, help="per s per symbol")
    parser.add_argument("--price-multiple", type=float, default=10.0)
    parser.add_argument("--batch-records", type=int, default=1000)
    args = parser.parse_args(argv)
    feed = Feed()
    t0 = time.perf_counter()
    service = build(args.accounts, feed)
    print(f"book: {service.book.n_accounts} accounts built in {time.perf_counter() - t0:.1f} s")
    result = burst(
        service,
        feed,
        args.accounts,
        args.seconds,
        args.usual_price_rate,
        args.price_multiple,
        args.batch_records,
    )
    print("  wall s   arrived   applied   waiting  oldest s")
    for now, arrived, applied, oldest in result["curve"]:
        print(f"{now:8.1f} {arrived:9d} {applied:9d} {arrived - applied:9d} {oldest:9.2f}")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"records {result['records']} ({result['account_events']} account events,"
        f" {result['prices']} prices) in {result['ticks']} ticks"
    )
    print(
        f"burst {result['burst_s']:.1f} s; drained at {result['drained_at_s']:.1f} s"
        f" ({result['drain_after_burst_s']:.1f} s after the burst ended)"
    )
    print(f"peak RSS {peak_kb / 1024:.0f} MiB")
    print("outputs " + ", ".join(f"{k} {v}" for k, v in result["outputs"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
