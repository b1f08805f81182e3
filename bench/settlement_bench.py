"""End-of-day settlement at scale: `python -m bench.settlement_bench [--accounts N ...]`.

Two child processes, so each peak memory is its own:
1. generate: a seeded closed book (engine.stress.synthetic's traders plus one market maker per
   instrument taking the traders' net open interest, so open interest nets to zero, and an
   insurance fund of FUND_USDT), every 4th instrument dated, marks at the book's synthetic
   marks; written as the input snapshot,
   with settlement prices (marks moved by a seeded +-0.5% normal), a funding file (half the
   perpetuals a given rate, half an index price to compute it from) and a fees file (one
   row per account, 0.02% of its gross notional).
2. settle: `clearing settle --snapshot ... --out DIR` through engine.cli.settle.run, timed
   from the command's start to its outputs renamed into place (snapshot read, settlement,
   statements, ledger, summary, charts, report and next-day snapshot all included).

Prints the wall time and the peak RSS of each child (getrusage ru_maxrss), and the output
sizes. Numbers, not verdicts.

Measured on the 2-core, 24 GiB development box (defaults: 3,001,001 accounts, 10,000,487
positions, 1,000 instruments, 30,561 accounts liquidated; two runs, the second with other
work on the box): the settle command took 23.8 s and 27.5 s wall (snapshot read 2.5-3.1 s,
settlement 16.0-19.1 s of which the two conservation audits are about 8.5 s, outputs
5.3 s), peak RSS 4.4 GiB; outputs: snapshot 669 MiB, statements 225 MiB, ledger 206 MiB
(12.7M postings). The generator took 11-13 s and 2.0 GiB. At 1M positions over 300k
accounts: 2.6 s, 0.65 GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATE = "2025-10-11"
DATED_EVERY = 4
SETTLE_MOVE_SIGMA = 0.005
FEE_RATE = 0.0002
INDEX_OFFSET_SIGMA = 0.001
FUND_USDT = 50_000_000  # a normal day: the fund covers the bankrupt accounts, no ADL


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def generate(work: Path, n_accounts: int, n_positions: int, n_instruments: int, seed: int) -> dict:
    from engine.book.book import Book
    from engine.book.instruments import InstrumentTable
    from engine.io.snapshot import write_snapshot
    from engine.reports.risk_tables import exact_strings
    from engine.stress.synthetic import synthetic_book
    from engine.waterfall.profile import Profile

    started = time.perf_counter()
    base = synthetic_book(n_accounts, n_positions, n_instruments, seed=seed)
    doc = base.instruments.to_dict()
    for k, item in enumerate(doc["instruments"]):
        item["kind"] = "dated" if k % DATED_EVERY == DATED_EVERY - 1 else "perpetual"
    instruments = InstrumentTable.from_dict(doc)
    owner = base.position_owner()
    qty, inst, cost = base.pos_qty, base.pos_instrument, base.pos_cost
    marks = base.mark.copy()
    # One maker per instrument takes the traders' net open interest at the mark.
    net = np.zeros(n_instruments, dtype=np.int64)
    np.add.at(net, inst, qty)
    makers = np.flatnonzero(net)
    maker_ids = base.account_id.max() + 10 + np.arange(len(makers), dtype=np.int64)
    maker_qty = -net[makers]
    maker_cost = maker_qty * marks[makers] * instruments.tick_value[makers]
    maker_balance = np.abs(maker_cost) // 2  # 2x
    fund_id = np.array([Profile.shipped().fund_account_id], dtype=np.int64)
    fund_balance = np.array([FUND_USDT * 10**instruments.money_decimals], dtype=np.int64)
    book = Book.from_arrays(
        instruments,
        np.concatenate([base.account_id, maker_ids, fund_id]),
        np.concatenate([base.balance, maker_balance, fund_balance]),
        np.concatenate([base.account_id[owner], maker_ids]),
        np.concatenate([inst, makers.astype(np.int32)]),
        np.concatenate([qty, maker_qty]),
        np.concatenate([cost, maker_cost]),
        np.concatenate([base.pos_leverage, np.full(len(makers), 2, dtype=np.int32)]),
    )
    del base
    for k, item in enumerate(instruments.instruments):
        book.set_mark(item.symbol, int(marks[k]))
    snapshot = work / "book.arrow"
    write_snapshot(book, snapshot, {"settled_dates": ["2025-10-10"]})

    rng = np.random.default_rng([seed, 5])
    settle = np.maximum(1, np.round(marks * np.exp(rng.normal(0, SETTLE_MOVE_SIGMA, len(marks)))))
    symbols = [i.symbol for i in instruments.instruments]
    ticks = [i.tick_size for i in instruments.instruments]
    price_text = [str(int(p) * t) for p, t in zip(settle.astype(np.int64), ticks, strict=True)]
    prices = pa.table({"symbol": symbols, "settlement_price": price_text})
    pq.write_table(prices, work / "prices.parquet")
    perps = [k for k, i in enumerate(instruments.instruments) if i.kind == "perpetual"]
    offset = np.exp(rng.normal(0, INDEX_OFFSET_SIGMA, len(settle)))
    index = np.round(settle * offset).astype(np.int64)
    rates = rng.normal(0.0001, 0.0002, len(settle))
    rows: dict[str, list[str | None]] = {"symbol": [], "funding_rate": [], "index_price": []}
    for k in perps:
        rows["symbol"].append(symbols[k])
        if k % 2:
            rows["funding_rate"].append(f"{rates[k]:.8f}")
            rows["index_price"].append(None)
        else:
            rows["funding_rate"].append(None)
            rows["index_price"].append(str(int(max(index[k], 1)) * ticks[k]))
    schema = pa.schema([(name, pa.string()) for name in rows])
    pq.write_table(pa.table(rows, schema=schema), work / "funding.parquet")
    book.compact()
    gross = np.zeros(book.n_accounts, dtype=np.float64)
    np.add.at(gross, book.position_owner(), np.abs(book.pos_cost).astype(np.float64))
    md = instruments.money_decimals
    fee_units = np.round(gross * FEE_RATE).astype(np.int64)
    fees = pa.table({"account_id": book.account_id, "fee": exact_strings(fee_units, md)})
    pq.write_table(fees, work / "fees.parquet")
    return {
        "accounts": int(book.n_accounts),
        "positions": int((book.pos_qty != 0).sum()),
        "instruments": n_instruments,
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": _peak_rss_mib(),
    }


def settle_child(work: Path, out: Path) -> dict:
    from engine.cli.settle import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--snapshot", str(work / "book.arrow"),
            "--prices", str(work / "prices.parquet"),
            "--funding", str(work / "funding.parquet"),
            "--fees", str(work / "fees.parquet"),
            "--date", DATE,
            "--out", str(out),
        ]
    )  # fmt: skip
    started = time.perf_counter()
    status = run(args)
    seconds = time.perf_counter() - started
    summary = json.loads((out / "summary.json").read_text())
    return {
        "status": status,
        "seconds": seconds,
        "peak_rss_mib": _peak_rss_mib(),
        "accounts_liquidated": summary["counts"]["accounts_liquidated"],
        "checks": {k: v for k, v in summary["conservation"].items() if isinstance(v, bool)},
        "outputs_mib": {p.name: round(p.stat().st_size / 2**20, 1) for p in sorted(out.iterdir())},
    }


def _child(*argv: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.settlement_bench", *argv],
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=3_000_000)
    parser.add_argument("--positions", type=int, default=10_000_000)
    parser.add_argument("--instruments", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, help="directory for inputs and outputs (kept)")
    parser.add_argument("--json", type=Path, help="write the numbers here too")
    parser.add_argument("--child", choices=("generate", "settle"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work
    if args.child == "generate":
        result = generate(work, args.accounts, args.positions, args.instruments, args.seed)
        print(json.dumps(result))
        return 0
    if args.child == "settle":
        print(json.dumps(settle_child(work, work / "out")))
        return 0

    temporary = work is None
    work = Path(tempfile.mkdtemp(prefix="settlement-bench-")) if temporary else work
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "out", ignore_errors=True)
    try:
        common = ["--work", str(work), "--accounts", str(args.accounts)]
        common += ["--positions", str(args.positions), "--instruments", str(args.instruments)]
        common += ["--seed", str(args.seed)]
        generated = _child("--child", "generate", *common)
        print(
            f"book: {generated['accounts']:,} accounts, {generated['positions']:,} positions,"
            f" {generated['instruments']:,} instruments (generated and written in"
            f" {generated['seconds']:.1f} s, peak RSS {generated['peak_rss_mib']:,.0f} MiB)"
        )
        settled = _child("--child", "settle", *common)
        print(
            f"settle: {settled['seconds']:.1f} s wall, peak RSS {settled['peak_rss_mib']:,.0f} MiB,"
            f" {settled['accounts_liquidated']:,} accounts liquidated,"
            f" checks {'passed' if all(settled['checks'].values()) else 'FAILED'}"
        )
        print("outputs (MiB): " + ", ".join(f"{k} {v}" for k, v in settled["outputs_mib"].items()))
        if args.json:
            args.json.write_text(json.dumps({"book": generated, "settle": settled}, indent=2))
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
