"""The ledger streamed out of memory: Parquet segments named by tick range.

A long-running service does not keep every posting: at each snapshot the postings since the
previous one are written as one segment, `ledger-<first tick>-<last tick>.parquet` (12
digits each, so names sort by tick) in the ledger directory, atomically (a temporary file,
fsync, rename), *before* the snapshot that covers them; then they leave memory
(engine.book.ledger.Ledger.take_all) and the snapshot records how far the stream got (the
`mark`: postings streamed, the last segment, its last tick). So the in-memory ledger holds
only the postings since the last checkpoint, and the checkpointed audit
(engine.waterfall.conservation.audit_since) checks them against the balances then.

Recovery (`start` with the restored snapshot's mark) keeps the segments up to the mark and
removes any written after it (a crash between a segment and its snapshot): the journal's
replay of those ticks posts the same postings again and the next checkpoint rewrites them.
The restored ledger continues at the mark's count (its opening postings are not part of
the stream), so the concatenated segments are the uninterrupted run's ledger: no posting
lost, none repeated. Columns: seq (the posting's place in the whole ledger), event_id,
debit, credit, amount, reason; all int64.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.book.book import Book
from engine.book.ledger import Ledger
from engine.waterfall.conservation import AuditReport, Checkpoint, audit, audit_since

COLUMNS = ("seq", "event_id", "debit", "credit", "amount", "reason")
_NAME = re.compile(r"ledger-([0-9]{12})-([0-9]{12})\.parquet\Z")


def segment_name(first_tick: int, last_tick: int) -> str:
    return f"ledger-{first_tick:012d}-{last_tick:012d}.parquet"


def segments(directory: str | Path) -> list[tuple[int, int, Path]]:
    """(first tick, last tick, path) of each segment in the directory, in tick order."""
    found = []
    for path in Path(directory).glob("ledger-*.parquet"):
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), path))
    return sorted(found)


def read_ledger(directory: str | Path) -> dict[str, np.ndarray]:
    """The segments concatenated: the streamed ledger's columns (seq checked contiguous)."""
    parts = [pq.read_table(path) for _, _, path in segments(directory)]
    columns = {
        name: np.concatenate([p.column(name).to_numpy() for p in parts]).astype(np.int64)
        if parts
        else np.zeros(0, dtype=np.int64)
        for name in COLUMNS
    }
    seq = columns["seq"]
    if len(seq) and not (seq == np.arange(int(seq[0]), int(seq[0]) + len(seq))).all():
        raise ValueError(f"{directory}: ledger segments are not contiguous")
    return columns


def whole_ledger(book: Book, directory: str | Path) -> Ledger:
    """The book's whole ledger: the segments, then the postings still held in memory."""
    whole = Ledger()
    held = {name: book.ledger.column(name) for name in COLUMNS}
    for part in (read_ledger(directory), held):
        whole.append(
            part["event_id"], part["debit"], part["credit"], part["amount"], part["reason"]
        )
    assert len(whole) == book.ledger.base + len(book.ledger), (len(whole), book.ledger.base)
    return whole


def audit_whole(book: Book, directory: str | Path) -> AuditReport:
    """The full conservation audit (engine.waterfall.conservation.audit) over the whole
    streamed ledger: for checks after a run, not the hot path (it reads every segment)."""
    held = book.ledger
    book.balances.ledger = whole_ledger(book, directory)
    try:
        return audit(book)
    finally:
        book.balances.ledger = held


class LedgerSegments:
    """Writes a book's postings out at each checkpoint; see the module docstring."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.tick = 0  # the last tick a segment covers
        self.segment = ""
        self.checkpoint: Checkpoint | None = None

    def start(self, book: Book, mark: dict[str, Any] | None) -> None:
        """Continue the stream from a restored snapshot's mark (None: a fresh book, the
        stream starts empty); segments after the mark are removed."""
        tick = int(mark["tick"]) if mark else 0
        postings = int(mark["postings"]) if mark else 0
        kept = 0
        for first, _, path in segments(self.directory):
            if first > tick:
                path.unlink()
            else:
                kept += pq.read_metadata(path).num_rows
        if kept != postings:
            raise ValueError(
                f"{self.directory}: the segments up to tick {tick} hold {kept} postings,"
                f" the snapshot says {postings}"
            )
        if mark:
            book.ledger.restart(postings)
        self.tick = tick
        self.segment = str(mark["segment"]) if mark else ""
        self.checkpoint = Checkpoint.of_book(book) if mark else None

    def flush(self, book: Book, tick: int) -> dict[str, Any]:
        """Write the postings held as the segment of ticks (last checkpoint, tick], move them
        out of memory, checkpoint the balances; returns the snapshot's mark."""
        ledger = book.ledger
        if len(ledger):
            name = segment_name(self.tick + 1, tick)
            taken = {name: ledger.column(name) for name in COLUMNS}
            table = pa.table({c: pa.array(taken[c], pa.int64()) for c in COLUMNS})
            path = self.directory / name
            temporary = path.with_suffix(".tmp")
            pq.write_table(table, temporary)
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, path)
            ledger.take_all()
            self.segment = name
        self.tick = tick
        self.checkpoint = Checkpoint.of_book(book)
        return {"postings": ledger.base, "segment": self.segment, "tick": tick}

    def audit(self, book: Book) -> AuditReport:
        """The checkpointed conservation audit (before the first checkpoint of a fresh
        stream, the ledger is whole and the checkpoint empty)."""
        checkpoint = self.checkpoint or Checkpoint(
            np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), {}
        )
        return audit_since(book, checkpoint)
