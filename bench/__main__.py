"""Benchmark runner: `python -m bench [--accounts N --positions N --smoke --json FILE]`.

Times the native exact sweep and the numpy baseline of the same computation on the same
synthetic book in this process, and prints medians and the ratio. No thresholds: numbers,
not verdicts (the README's benchmark section has the headline figures).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import asset_liability_bench, extras
from bench._read_baseline import read_sweep_columns
from bench.baselines import numpy_sweep
from engine.book.book import Book
from engine.risk.incremental import IncrementalSweep
from engine.stress.synthetic import synthetic_book

MOVES = (0.0001, 0.001, 0.01, 0.05)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm: page faults, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def incremental_ticks(book: Book, repeats: int) -> dict[float, dict[str, float | bool]]:
    """Per move size (every mark up by `move` from the anchor): the tick's median time in
    steady state (the anchor kept, as between re-anchors in a stream), the accounts it
    checks, and whether it had to re-anchor (then its time includes the full sweep)."""
    anchor_marks = book.mark.copy()
    symbols = list(book.instruments.index)

    def set_marks(factor: float) -> None:
        for i, symbol in enumerate(symbols):
            book.set_mark(symbol, int(anchor_marks[i] * factor))

    inc = IncrementalSweep(book)
    results = {}
    for move in MOVES:
        set_marks(1.0)
        inc.anchor()
        set_marks(1 + move)
        first = inc.tick()
        if first.full_sweep:
            times = []
            for _ in range(max(3, repeats // 3)):
                set_marks(1.0)
                inc.anchor()
                set_marks(1 + move)
                start = time.perf_counter()
                inc.tick()
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
        else:
            seconds = median_seconds(inc.tick, repeats)
        results[move] = {
            "seconds": seconds,
            "checked": len(first.rows),
            "reanchored": first.full_sweep,
        }
    set_marks(1.0)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--positions", type=int, default=3_000_000)
    parser.add_argument("--instruments", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--scaling",
        default="10000,100000,1000000",
        help="comma-separated account counts for the scaling plot ('' to skip; 10M fits)",
    )
    parser.add_argument("--plot", type=Path, default=Path("out/bench/scaling.png"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.accounts, args.positions, args.repeats = 10_000, 30_000, 3
        args.scaling = "1000,10000"

    book = synthetic_book(args.accounts, args.positions, args.instruments)
    n_pos = len(book.pos_qty)
    book.compact()
    read_bytes = (
        book.acct_start.nbytes
        + book.balance.nbytes
        + book.pos_instrument.nbytes
        + book.pos_qty.nbytes
        + book.pos_cost.nbytes
    )
    plain_read = median_seconds(
        lambda: read_sweep_columns(
            book.acct_start, book.balance, book.pos_instrument, book.pos_qty, book.pos_cost
        ),
        args.repeats,
    )
    rows = {
        "native sweep (equity, MM, status)": median_seconds(
            lambda: book.sweep(with_initial_margin=False, reuse_buffers=True), args.repeats
        ),
        "native sweep, fresh output arrays": median_seconds(
            lambda: book.sweep(with_initial_margin=False), args.repeats
        ),
        "native sweep (+ initial margin)": median_seconds(book.sweep, args.repeats),
        "native sweep, 2 threads": median_seconds(
            lambda: book.sweep(with_initial_margin=False, threads=2, reuse_buffers=True),
            args.repeats,
        ),
        "numpy baseline (equity, MM, status)": median_seconds(
            lambda: numpy_sweep(book), max(3, args.repeats // 3)
        ),
        "liquidation prices (all positions)": median_seconds(
            book.liquidation_prices, max(3, args.repeats // 3)
        ),
    }
    incremental = incremental_ticks(book, args.repeats)
    # The asset-liability sweep (margin financing, spot margin) over as many accounts.
    al_columns = asset_liability_bench.synthetic_columns(args.accounts)
    al_out = asset_liability_bench.output_arrays(args.accounts)
    al_rows = {
        "asset-liability sweep (MV, CV, LV, status)": median_seconds(
            lambda: asset_liability_bench.sweep(al_columns, out=al_out), args.repeats
        ),
        "asset-liability sweep, fresh output arrays": median_seconds(
            lambda: asset_liability_bench.sweep(al_columns), args.repeats
        ),
        "asset-liability sweep, 2 threads": median_seconds(
            lambda: asset_liability_bench.sweep(al_columns, threads=2, out=al_out), args.repeats
        ),
    }
    baseline = rows["numpy baseline (equity, MM, status)"]
    full = rows["native sweep (equity, MM, status)"]
    print(
        f"book: {book.n_accounts:,} accounts, {n_pos:,} positions, {args.instruments} instruments"
    )
    print(
        f"plain read of the sweep's {read_bytes / 1e6:.0f} MB: {plain_read * 1e3:.2f} ms"
        f" ({read_bytes / plain_read / 1e9:.1f} GB/s)"
    )
    print(f"{'pass':40} {'median ms':>10} {'M pos/s':>9} {'vs numpy':>9} {'vs read':>8}")
    for name, seconds in rows.items():
        print(
            f"{name:40} {seconds * 1e3:10.2f} {n_pos / seconds / 1e6:9.1f}"
            f" {baseline / seconds:8.1f}x {plain_read / seconds:8.2f}"
        )
    al_status = asset_liability_bench.sweep(al_columns)[3]
    print(
        f"asset-liability book: {args.accounts:,} accounts x {asset_liability_bench.ASSETS}"
        f" assets ({int((al_status != 0).sum()):,} not ok)"
    )
    print(f"{'pass':40} {'median ms':>10} {'M acct/s':>9} {'vs futures':>10}")
    for name, seconds in al_rows.items():
        print(
            f"{name:40} {seconds * 1e3:10.2f} {args.accounts / seconds / 1e6:9.1f}"
            f" {full / seconds:9.2f}x"
        )
    not_ok = int((book.sweep(with_initial_margin=False).status != 0).sum())
    print(f"incremental tick, every mark moves ({not_ok:,} accounts not ok at the anchor)")
    print(f"{'  move':40} {'median ms':>10} {'checked':>9} {'vs full':>9}")
    for move, r in incremental.items():
        note = "  (re-anchors: a full sweep + index)" if r["reanchored"] else ""
        print(
            f"{f'  {move:.2%}':40} {r['seconds'] * 1e3:10.3f} {r['checked']:9,.0f}"
            f" {r['seconds'] / full:8.2%}{note}"
        )
    snapshot = extras.snapshot_speed(book, max(3, args.repeats // 5))
    print(
        f"resident book: {extras.book_bytes(book) / n_pos:.1f} bytes per position"
        f" (columns incl. accounts); process peak RSS {extras.peak_rss_bytes() / 1e9:.2f} GB"
    )
    print(
        f"snapshot {snapshot['bytes'] / 1e6:.0f} MB: write {snapshot['write_seconds'] * 1e3:.0f} ms"
        f" ({snapshot['write_gb_s']:.2f} GB/s incl. fsync), read"
        f" {snapshot['read_seconds'] * 1e3:.0f} ms ({snapshot['read_gb_s']:.2f} GB/s)"
    )
    sizes = [int(x) for x in args.scaling.split(",") if x]
    scale_rows = extras.scaling(sizes, max(3, args.repeats // 3), args.plot) if sizes else []
    if scale_rows:
        print(f"{'accounts':>12} {'positions':>12} {'1 thread ms':>12} {'2 threads ms':>13}")
        for r in scale_rows:
            print(
                f"{r['accounts']:12,.0f} {r['positions']:12,.0f}"
                f" {r['seconds_1_thread'] * 1e3:12.2f} {r['seconds_2_threads'] * 1e3:13.2f}"
            )
        print(f"plot: {args.plot}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "accounts": book.n_accounts,
                    "plain_read_seconds": plain_read,
                    "snapshot": snapshot,
                    "scaling": scale_rows,
                    "plain_read_bytes": read_bytes,
                    "positions": n_pos,
                    "median_seconds": rows,
                    "asset_liability_median_seconds": al_rows,
                    "ratio_vs_numpy": {k: baseline / v for k, v in rows.items()},
                    "incremental": {
                        str(m): {**r, "fraction_of_full": r["seconds"] / full}
                        for m, r in incremental.items()
                    },
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
