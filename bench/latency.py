"""Price-to-liquidation latency under a flow of fills, and memory over a long run; no Kafka
(the memory adapter, engine.service.files_adapter.StreamSource, in one process).

Latency. A seeded synthetic book (engine.stress.synthetic, 20 instruments) with the
insurance fund; fills between two holders of an instrument at its starting mark (JSON, the
producer form, `--no-fill-checks` rules) arrive at `--rate` per second and mark prices (the
synthetic path with an 8% crash half way: engine.service.files_adapter.synthetic_price_path)
at 100 per second. Arrival is the clock: a record is readable once its scheduled time has
passed (fill i at i / rate s, price j at j / 100 s after the start), so the producer costs
nothing and a backlog is exactly what the service has not yet read. A price's latency is
from its scheduled time to the end of the tick that applied it (sweep, margin calls,
waterfall and the outputs published): p50 / p99 over every price after a 1 s warm-up,
and over the prices whose tick published a liquidation. Run once with only `--batch-records`
bounding a tick (the Kafka default, 5000 per partition) and once with
`--max-events-per-tick`.

Memory. `--rss-events N` (2M) fills on a smaller book as fast as the service drains them,
prices with them, a snapshot every 10 ticks streaming the ledger to Parquet segments
(engine.io.ledger_segments); the resident set size (VmRSS) is sampled every 100k events and
reported after a warm-up of the first 20%: min, max and the spread (max / min - 1). With
`--rss-ledger-in-memory` the ledger stays whole in memory, for comparison.

Run: .venv/bin/python -m bench.latency [--accounts 100000] [--rate 100000] [--seconds 10]
     [--max-events-per-tick 2000] [--rss-events 2000000] [--rss-accounts 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.book.book import Book
from engine.io.ledger_segments import LedgerSegments
from engine.service.driver import run
from engine.service.files_adapter import StreamSource, format_ticks, synthetic_price_path
from engine.service.ports import Record
from engine.service.snapshots import Snapshotter
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.stress.synthetic import synthetic_book
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile

USDT = 10**8
TS0 = 1_760_140_800_000
PRICES_PER_S = 100
INSTRUMENTS = 20
POOL = 50_000  # distinct fills, cycled with fresh event ids


def _service(accounts: int, seed: int) -> Service:
    profile = Profile.shipped()
    book = synthetic_book(accounts, 3 * accounts, INSTRUMENTS, seed=seed)
    open_fund(book, profile, 10**6 * USDT)
    book.compact(canonical=True)
    return Service(book, profile, ServiceConfig(band_rate=0, fill_checks=False))


def _fill_templates(book: Book, seed: int) -> list[bytes]:
    """Fills between two holders of the same instrument at its mark, 1-3 lots; `%d` for the
    event id and the event time."""
    rng = np.random.default_rng(seed)
    owner = book.position_owner()
    live = np.flatnonzero(book.pos_qty != 0)
    a = live[rng.integers(0, len(live), POOL)]
    inst = book.pos_instrument[a]
    by_inst = {int(i): live[book.pos_instrument[live] == i] for i in np.unique(inst)}
    b = np.array([by_inst[int(i)][rng.integers(0, len(by_inst[int(i)]))] for i in inst])
    templates = []
    for x, y, i in zip(a, b, inst, strict=True):
        if owner[x] == owner[y]:
            continue
        spec = book.instruments.instruments[int(i)]
        doc = {
            "v": 1,
            "type": "fill",
            "event_id": 0,
            "ts": 0,
            "symbol": spec.symbol,
            "price": format_ticks(int(book.mark[i]), spec.tick_size),
            "qty": str(spec.lot_size * int(rng.integers(1, 4))),
            "buyer": int(book.account_id[owner[x]]),
            "seller": int(book.account_id[owner[y]]),
            "buyer_fee": "0.01",
            "seller_fee": "0.01",
        }
        text = json.dumps(doc, separators=(",", ":"))
        text = text.replace('"event_id":0,"ts":0', '"event_id":%d,"ts":%d')
        templates.append(text.encode())
    return templates


class ClockStream:
    """A partition whose record k becomes readable at `start + k / rate` (rate None: all at
    once), up to `total`; fills are made from the templates on read."""

    def __init__(
        self,
        make: Callable[[int], bytes],
        rate: float | None,
        total: int,
        clock: Callable[[], float] = time.perf_counter,
        gate: Callable[[], int] | None = None,
    ) -> None:
        self.make, self.rate, self.total, self.clock = make, rate, total, clock
        self.gate = gate  # readable records, when not by the clock
        self.position = 0
        self.start = clock()

    def available(self) -> int:
        if self.gate is not None:
            return min(self.total, self.gate())
        if self.rate is None:
            return self.total
        return min(self.total, int((self.clock() - self.start) * self.rate) + 1)

    def read(self, n: int) -> list[tuple[bytes | None, bytes]]:
        end = min(self.position + n, self.available())
        chunk: list[tuple[bytes | None, bytes]] = [
            (None, self.make(k)) for k in range(self.position, end)
        ]
        self.position = max(self.position, end)
        return chunk

    def seek(self, offset: int) -> None:
        self.position = offset


class CountSink:
    def __init__(self) -> None:
        self.published = 0

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        self.published += 1

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def latency_run(args: argparse.Namespace, cap: int | None) -> dict[str, Any]:
    service = _service(args.accounts, args.seed)
    templates = _fill_templates(service.book, args.seed)
    start_marks = service.book.mark.copy()
    steps = int(args.seconds * PRICES_PER_S / INSTRUMENTS) + 2
    prices = synthetic_price_path(
        service.book.instruments, start_marks, steps, seed=args.seed, crash_step=steps // 2,
        interval_ms=1000 * INSTRUMENTS // PRICES_PER_S,
    )  # fmt: skip
    rate = float(args.rate)
    n_pool = len(templates)

    def fill(k: int) -> bytes:
        return templates[k % n_pool] % (k + 1, TS0 + int(k * 1000 / rate))

    clock = time.perf_counter
    events = ClockStream(fill, rate, 10**12, clock)
    price_stream = ClockStream(lambda k: prices[k], PRICES_PER_S, len(prices), clock)
    price_stream.start = events.start
    source = StreamSource(
        {("account-events", 0): events, ("prices", 0): price_stream},
        batch_records=args.batch_records,
        finite=False,
        max_events=cap,
    )
    lat_all: list[float] = []
    lat_liq: list[float] = []
    tick_events: list[int] = []
    original = service.tick

    def tick(batch: list[Record]) -> list:
        outputs = original(batch)
        now = clock()
        price_offsets = [r.offset for r in batch if r.topic == "prices"]
        tick_events.append(len(batch) - len(price_offsets))
        liquidated = any(b'"kind":"liquidation"' in o.value for o in outputs)
        for k in price_offsets:
            due = events.start + k / PRICES_PER_S
            if due - events.start < 1.0:
                continue
            lat_all.append(now - due)
            if liquidated:
                lat_liq.append(now - due)
        return outputs

    service.tick = tick  # type: ignore[method-assign]
    end = events.start + args.seconds
    run(service, source, CountSink(), stop=lambda: clock() >= end)
    elapsed = clock() - events.start
    applied = events.position
    return {
        "max_events_per_tick": cap,
        "batch_records": args.batch_records,
        "fill_rate_offered_per_s": rate,
        "fills_drained_per_s": round(applied / elapsed),
        "backlog_at_end": events.available() - events.position,
        "ticks": len(tick_events),
        "events_per_tick_median": statistics.median(tick_events) if tick_events else 0,
        "prices_measured": len(lat_all),
        "price_latency_ms_p50": round(_pct(lat_all, 50), 2),
        "price_latency_ms_p99": round(_pct(lat_all, 99), 2),
        "price_to_liquidation_ms_p50": round(_pct(lat_liq, 50), 2),
        "price_to_liquidation_ms_p99": round(_pct(lat_liq, 99), 2),
        "prices_in_liquidating_ticks": len(lat_liq),
    }


def _rss_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_run(args: argparse.Namespace) -> dict[str, Any]:
    service = _service(args.rss_accounts, args.seed)
    templates = _fill_templates(service.book, args.seed)
    n_pool = len(templates)
    total = args.rss_events
    ticks = total // args.batch_records + 2
    steps = ticks // INSTRUMENTS + 2
    prices = synthetic_price_path(
        service.book.instruments, service.book.mark.copy(), steps, seed=args.seed,
        volatility=0.0005, interval_ms=1,
    )  # fmt: skip

    def fill(k: int) -> bytes:
        return templates[k % n_pool] % (k + 1, TS0 + k // 1000)

    events = ClockStream(fill, None, total)
    # a price per batch_records fills: one per tick
    price_stream = ClockStream(
        lambda k: prices[k],
        None,
        len(prices),
        gate=lambda: events.position // args.batch_records + 1,
    )
    source = StreamSource(
        {("account-events", 0): events, ("prices", 0): price_stream},
        batch_records=args.batch_records,
        finite=True,
    )
    samples: list[tuple[int, int, int]] = []  # (events, rss, ledger held)
    next_sample = 0
    original = service.tick

    def tick(batch: list[Record]) -> list:
        nonlocal next_sample
        outputs = original(batch)
        if events.position >= next_sample:
            samples.append((events.position, _rss_bytes(), len(service.book.ledger)))
            next_sample += 100_000
        return outputs

    service.tick = tick  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        ledger = None
        if not args.rss_ledger_in_memory:
            ledger = LedgerSegments(Path(tmp) / "ledger")
            ledger.start(service.book, None)
        snaps = Snapshotter(Path(tmp) / "snap", every_s=0, every_ticks=10, keep=2, ledger=ledger)
        started = time.perf_counter()
        run(service, source, CountSink(), snapshots=snaps)
        seconds = time.perf_counter() - started
    warm = [s for s in samples if s[0] >= total // 5]
    rss = [s[1] for s in warm]
    return {
        "events": events.position,
        "accounts": args.rss_accounts,
        "ledger": "in memory" if args.rss_ledger_in_memory else "streamed to segments",
        "seconds": round(seconds, 1),
        "events_per_s": round(events.position / seconds),
        "rss_mib_after_warmup_min": round(min(rss) / 2**20, 1) if rss else None,
        "rss_mib_after_warmup_max": round(max(rss) / 2**20, 1) if rss else None,
        "rss_spread": round(max(rss) / min(rss) - 1, 4) if rss else None,
        "ledger_postings_held_max": max(s[2] for s in samples) if samples else 0,
        "samples_mib": [round(s[1] / 2**20, 1) for s in samples],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=100_000, help="fills per second offered")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-records", type=int, default=5000)
    parser.add_argument("--max-events-per-tick", type=int, default=2000)
    parser.add_argument("--rss-events", type=int, default=2_000_000, help="0: skip")
    parser.add_argument("--rss-accounts", type=int, default=20_000)
    parser.add_argument("--rss-ledger-in-memory", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    if not args.skip_latency:
        for name, cap in (("uncapped", None), ("capped", args.max_events_per_tick)):
            results[name] = latency_run(args, cap)
            print(name, json.dumps(results[name]), flush=True)
    if args.rss_events:
        results["rss"] = rss_run(args)
        print("rss", json.dumps(results["rss"]), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
