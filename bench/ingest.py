"""Account events without Kafka: the batch path (engine.book.batch, one C kernel) against the
per-event path (Service._apply_event, the reference), in one process, on the same book and
the same events; and the decode of JSON records (orjson, msgspec, json) and the whole run
of a tick's account events (decode + apply) both ways.

A seeded synthetic book (engine.stress.synthetic) gets a deposit per account, then fills
between accounts that already hold the instrument (so neither path re-lays the position
columns), at the mark, 1-3 lots, with fees, through the service's checks (mark, band,
initial margin). Both paths start from equal books; after the per-event path's events the
two books are compared, then the batch path runs the rest in chunks.

Run: .venv/bin/python -m bench.ingest [--accounts 200000] [--fills 1000000] [--per-event 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from decimal import Decimal
from typing import Any

import numpy as np

from engine.book.batch import DEPOSIT, FILL, EventColumns, EventRules, apply_account_events
from engine.book.book import Book
from engine.service import messages
from engine.service.event_batch import apply_account_records
from engine.service.order import EventTime
from engine.service.outputs import TickOutputs
from engine.service.ports import Record
from engine.service.state import ServiceConfig, TickStats
from engine.service.tick import Service
from engine.stress.synthetic import synthetic_book
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile

USDT = 10**8


def _book(args: argparse.Namespace) -> Service:
    profile = Profile.shipped()
    book = synthetic_book(args.accounts, 3 * args.accounts, args.instruments, seed=args.seed)
    open_fund(book, profile, 10**6 * USDT)
    book.compact(canonical=True)
    return Service(book, profile, ServiceConfig())


def _fills(book: Book, n: int, seed: int) -> EventColumns:
    """Fills between two holders of the same instrument, at the mark."""
    rng = np.random.default_rng(seed)
    owner = book.position_owner()
    live = np.flatnonzero(book.pos_qty != 0)
    a = live[rng.integers(0, len(live), n)]
    inst = book.pos_instrument[a]
    by_inst = {int(i): live[book.pos_instrument[live] == i] for i in np.unique(inst)}
    b = np.array([by_inst[int(i)][rng.integers(0, len(by_inst[int(i)]))] for i in inst])
    keep = owner[a] != owner[b]
    a, b, inst = a[keep], b[keep], inst[keep]
    m = len(a)
    cols = EventColumns.empty(m)
    cols.kind[:] = FILL
    cols.account[:] = book.account_id[owner[a]]
    cols.counterparty[:] = book.account_id[owner[b]]
    cols.instrument[:] = inst
    cols.price[:] = book.mark[inst]
    cols.qty[:] = rng.integers(1, 4, m)
    cols.fee[:] = rng.integers(0, 1000, m)
    cols.counterparty_fee[:] = rng.integers(0, 1000, m)
    return cols


def _deposits(book: Book) -> EventColumns:
    ids = book.account_id[book.account_id < 2**62]
    cols = EventColumns.empty(len(ids))
    cols.kind[:] = DEPOSIT
    cols.account[:] = ids
    cols.amount[:] = 10**6 * USDT
    return cols


def _event(service: Service, cols: EventColumns, i: int) -> messages.AccountEvent:
    inst = service.book.instruments.instruments[int(cols.instrument[i])]
    if cols.kind[i] == DEPOSIT:
        return messages.Deposit(int(cols.event_id[i]), 0, int(cols.account[i]), int(cols.amount[i]))
    return messages.Fill(
        int(cols.event_id[i]),
        0,
        inst.symbol,
        int(cols.instrument[i]),
        int(cols.price[i]),
        int(cols.qty[i]),
        int(cols.account[i]),
        int(cols.counterparty[i]),
        int(cols.fee[i]),
        int(cols.counterparty_fee[i]),
    )


RECORD = Record("account-events", 0, 0, None, b"")


def _per_event(service: Service, cols: EventColumns) -> float:
    events = [_event(service, cols, i) for i in range(len(cols))]
    started = time.perf_counter()
    for event in events:
        service._apply_event(RECORD, event)
    return time.perf_counter() - started


def _batch(service: Service, cols: EventColumns) -> tuple[float, Any]:
    last = np.array([service.state.last_event_id.get("account-events:0", 0)], dtype=np.int64)

    def one_by_one(i: int) -> None:
        service.state.last_event_id["account-events:0"] = int(last[0])
        service._apply_event(RECORD, _event(service, cols, i))
        last[0] = service.state.last_event_id["account-events:0"]

    rules = EventRules(band_rate=service.config.band_rate)
    started = time.perf_counter()
    outcome = apply_account_events(service.book, cols, rules, last, one_by_one)
    elapsed = time.perf_counter() - started
    service.state.last_event_id["account-events:0"] = int(last[0])
    return elapsed, outcome


def _same(a: Service, b: Service) -> bool:
    x, y = a.book, b.book
    x.compact()
    y.compact()
    return bool(
        np.array_equal(x.balance, y.balance)
        and np.array_equal(x.pos_qty, y.pos_qty)
        and np.array_equal(x.pos_cost, y.pos_cost)
        and len(x.ledger) == len(y.ledger)
        and all(
            np.array_equal(x.ledger.column(c), y.ledger.column(c))
            for c in ("event_id", "debit", "credit", "amount", "reason")
        )
    )


def _decoders(values: list[bytes]) -> dict[str, float]:
    import orjson

    out: dict[str, float] = {}
    loaders: dict[str, Any] = {"orjson": orjson.loads, "json": json.loads}
    try:
        import msgspec

        loaders["msgspec"] = msgspec.json.Decoder().decode
    except ImportError:
        pass
    for name, load in loaders.items():
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            for v in values:
                load(v)
            runs.append(time.perf_counter() - started)
        out[name] = round(len(values) / statistics.median(runs))
    return out


def _records(service: Service, cols: EventColumns, first_id: int) -> list[Record]:
    book = service.book
    records = []
    for i in range(len(cols)):
        inst = book.instruments.instruments[int(cols.instrument[i])]
        price = Decimal(int(cols.price[i])) * inst.tick_size
        qty = Decimal(int(cols.qty[i])) * inst.lot_size
        fees = [str(Decimal(int(f)) / USDT) for f in (cols.fee[i], cols.counterparty_fee[i])]
        doc = messages.fill_doc(
            first_id + i,
            0,
            inst.symbol,
            str(price),
            str(qty),
            int(cols.account[i]),
            int(cols.counterparty[i]),
            *fees,
        )
        records.append(Record("account-events", 0, i, None, messages.encode(doc)))
    return records


def _tick_run(service: Service, records: list[Record], batch: bool) -> float:
    service.batch_account_events = batch
    started = time.perf_counter()
    out = TickOutputs(service.config.shard, 1)
    apply_account_records(service, records, out, TickStats(), EventTime(0))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--instruments", type=int, default=100)
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--per-event", type=int, default=20_000)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"accounts": args.accounts}

    ref, got = _book(args), _book(args)
    deposits = _deposits(ref.book)
    deposits.event_id[:] = np.arange(1, len(deposits) + 1)
    result["deposits_batch_s"] = round(_batch(got, deposits)[0], 3)
    result["deposits_per_event_s"] = round(_per_event(ref, deposits), 3)
    fills = _fills(ref.book, args.fills + args.per_event, args.seed)
    fills.event_id[:] = np.arange(len(deposits) + 1, len(deposits) + 1 + len(fills))
    head = fills.take(np.arange(args.per_event))
    per_event_s = _per_event(ref, head)
    batch_s, outcome = _batch(got, head)
    result["same_book_after_per_event_run"] = _same(ref, got)
    result["per_event_fills_per_s"] = round(args.per_event / per_event_s)
    rates, one_by_one = [], 0
    for lo in range(args.per_event, len(fills), args.chunk):
        chunk = fills.take(np.arange(lo, min(lo + args.chunk, len(fills))))
        elapsed, outcome = _batch(got, chunk)
        rates.append(len(chunk) / elapsed)
        one_by_one += outcome.one_by_one
    result["batch_fills_per_s_median"] = round(statistics.median(rates))
    result["batch_chunks"] = len(rates)
    result["batch_one_by_one"] = one_by_one
    result["batch_over_per_event"] = round(
        result["batch_fills_per_s_median"] / result["per_event_fills_per_s"], 1
    )

    first = int(fills.event_id[-1]) + 1
    sample = _fills(got.book, args.records, args.seed + 1)
    records = _records(got, sample, first)
    result["decode_per_s"] = _decoders([r.value for r in records])
    result["records_batch_per_s"] = round(len(records) / _tick_run(got, records, True))
    again = [
        r._replace(value=r.value.replace(b'"event_id":', b'"event_id":1000000')) for r in records
    ]
    result["records_per_event_per_s"] = round(len(again) / _tick_run(got, again, False))
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
