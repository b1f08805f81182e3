"""Benchmarks beyond the sweep table: scaling with book size (with a PNG plot), resident
bytes per position, and Arrow snapshot write/read speed. Run through `python -m bench`."""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

from engine.book.book import Book
from engine.io.snapshot import read_snapshot, write_snapshot
from engine.stress.synthetic import synthetic_book


def book_bytes(book: Book) -> int:
    book.compact()
    columns = (
        book.account_id,
        book.balance,
        book.acct_start,
        book.pos_instrument,
        book.pos_qty,
        book.pos_cost,
        book.pos_leverage,
    )
    return sum(c.nbytes for c in columns)


def scaling(sizes: list[int], repeats: int, plot: Path | None) -> list[dict[str, float]]:
    """Full sweep time per tick against the number of accounts (3 positions each)."""
    rows = []
    for n_accounts in sizes:
        book = synthetic_book(n_accounts, 3 * n_accounts, 100)
        times = []
        for threads in (1, 2):
            book.sweep(with_initial_margin=False, threads=threads, reuse_buffers=True)
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                book.sweep(with_initial_margin=False, threads=threads, reuse_buffers=True)
                samples.append(time.perf_counter() - start)
            times.append(statistics.median(samples))
        rows.append(
            {
                "accounts": n_accounts,
                "positions": len(book.pos_qty),
                "seconds_1_thread": times[0],
                "seconds_2_threads": times[1],
                "book_bytes_per_position": book_bytes(book) / max(len(book.pos_qty), 1),
            }
        )
        del book
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [r["accounts"] for r in rows]
        ax.loglog(xs, [r["seconds_1_thread"] * 1e3 for r in rows], "o-", label="1 thread")
        ax.loglog(xs, [r["seconds_2_threads"] * 1e3 for r in rows], "s-", label="2 threads")
        ax.set_xlabel("accounts (3 positions each)")
        ax.set_ylabel("full sweep per tick, ms (median)")
        ax.set_title("Exact tiered margin sweep: time per tick")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(plot, dpi=120)
        plt.close(fig)
    return rows


def snapshot_speed(book: Book, repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.arrow"
        writes, reads = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            write_snapshot(book, path, {"bench": True})
            writes.append(time.perf_counter() - start)
            start = time.perf_counter()
            read_snapshot(path)
            reads.append(time.perf_counter() - start)
        size = path.stat().st_size
    return {
        "bytes": size,
        "write_seconds": statistics.median(writes),
        "read_seconds": statistics.median(reads),
        "write_gb_s": size / statistics.median(writes) / 1e9,
        "read_gb_s": size / statistics.median(reads) / 1e9,
    }


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
