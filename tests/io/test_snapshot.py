"""Snapshots round-trip the book exactly, open in polars and duckdb, and detect corruption."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from engine.book.book import Book
from engine.io.snapshot import (
    SnapshotError,
    book_batch,
    latest_valid_snapshot,
    prune_snapshots,
    read_snapshot,
    write_snapshot,
)
from engine.stress.synthetic import synthetic_book
from engine.waterfall.conservation import audit


def traded_book() -> Book:
    book = synthetic_book(300, 900, 6, seed=4)
    symbol = next(iter(book.instruments.index))
    book.deposit(1, 10**12)
    book.apply_fill(1, symbol, 25, int(book.mark[0]), fee=1234)
    book.deposit(2, 10**12)
    book.apply_fill(2, symbol, -25, int(book.mark[0]))
    book.set_leverage(1, symbol, 7)
    book.apply_fill(1, symbol, -10, int(book.mark[0]) + 3)
    return book


def test_round_trip_is_exact(tmp_path: Path) -> None:
    book = traded_book()
    path = write_snapshot(book, tmp_path / "0001.arrow", {"offsets": {"prices:0": 41}})
    restored, extra = read_snapshot(path)
    assert extra == {"offsets": {"prices:0": 41}}
    assert book_batch(restored).equals(book_batch(book))
    assert restored.house_balance == book.house_balance
    assert restored._next_event_id == book._next_event_id
    a, b = restored.sweep(), book.sweep()
    assert np.array_equal(a.equity, b.equity) and np.array_equal(a.status, b.status)
    assert np.array_equal(a.initial_margin, b.initial_margin)  # leverage settings came back
    assert audit(restored).ok
    # A second write of the restored book is byte-identical in its data.
    write_snapshot(restored, tmp_path / "0002.arrow", {"offsets": {"prices:0": 41}})
    assert read_snapshot(tmp_path / "0002.arrow")[0] is not None
    assert book_batch(read_snapshot(tmp_path / "0002.arrow")[0]).equals(book_batch(book))


def test_polars_and_duckdb_open_it(tmp_path: Path) -> None:
    book = traded_book()
    path = write_snapshot(book, tmp_path / "s.arrow")
    frame = pl.read_ipc(path)
    accounts = frame.filter(pl.col("section") == "account")
    assert accounts.height == book.n_accounts
    assert accounts["balance"].sum() == int(book.balance.sum())
    snapshot = ipc.open_file(pa.memory_map(str(path))).read_all()  # noqa: F841 (duckdb)
    ((count, net_qty),) = duckdb.sql(
        "select count(*), sum(qty) from snapshot where section = 'position'"
    ).fetchall()
    assert count == int((book.pos_qty != 0).sum())
    assert net_qty == int(book.pos_qty.sum())


def test_corruption_is_detected_and_skipped(tmp_path: Path) -> None:
    book = traded_book()
    good = write_snapshot(book, tmp_path / "0001.arrow")
    bad = write_snapshot(book, tmp_path / "0002.arrow")
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(SnapshotError):
        read_snapshot(bad)
    found, skipped = latest_valid_snapshot(tmp_path)
    assert found is not None and found[0] == good
    assert len(skipped) == 1 and "0002" in skipped[0]
    write_snapshot(book, tmp_path / "0003.arrow")
    assert [p.name for p in prune_snapshots(tmp_path, 2)] == ["0001.arrow"]


def test_equal_books_write_equal_data_whatever_their_slot_history() -> None:
    def book_with(history: list[tuple[str, int]]) -> Book:
        book = synthetic_book(3, 6, 6, seed=9)
        book.deposit(77, 10**12)
        for symbol, qty in history:
            book.apply_fill(77, symbol, qty, 100)
            book.compact()  # lay each position into a slot at once, so slots get reused
        return book

    s = list(synthetic_book(3, 6, 6, seed=9).instruments.index)
    # One book held s[0], closed it (a free slot) and opened s[5] into that slot, ahead of
    # s[2]; the other only ever held s[2] and s[5]. Same positions, different slot order.
    one = book_with([(s[0], 5), (s[2], 3), (s[0], -5), (s[5], 4)])
    two = book_with([(s[2], 3), (s[5], 4)])
    row = one.row_of(77)
    lo = int(one.acct_start[row])
    assert one.pos_instrument[lo] == 5  # the reused slot comes first
    assert book_batch(one).equals(book_batch(two))


def _mutations(size: int, n: int, seed: int) -> list[tuple[str, int, int]]:
    """n seeded mutations of a file of `size` bytes: single bit flips anywhere, bit flips in
    the last 4 KiB (the footer and the schema's metadata), and truncations."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = ("flip", "flip_tail", "truncate")[i % 3]
        if kind == "flip":
            out.append(("flip", int(rng.integers(size)), int(rng.integers(8))))
        elif kind == "flip_tail":
            out.append(
                ("flip", size - 1 - int(rng.integers(min(size, 4096))), int(rng.integers(8)))
            )
        else:
            out.append(("truncate", int(rng.integers(size)), 0))
    return out


def test_fuzzed_snapshots_never_raise_anything_but_snapshot_error(tmp_path: Path) -> None:
    # 600 flipped or truncated copies: each reads back as the original book (a flip in
    # padding changes nothing) or raises SnapshotError; nothing else may escape.
    book = traded_book()
    original = write_snapshot(book, tmp_path / "good.arrow", {"tick": 3})
    data = original.read_bytes()
    expected = book_batch(read_snapshot(original)[0])
    target = tmp_path / "bad.arrow"
    refused = 0
    for kind, at, bit in _mutations(len(data), 600, seed=13):
        mutated = bytearray(data)
        if kind == "flip":
            mutated[at] ^= 1 << bit
        else:
            del mutated[at:]
        target.write_bytes(bytes(mutated))
        try:
            restored, extra = read_snapshot(target)
        except SnapshotError:
            refused += 1
            continue
        assert book_batch(restored).equals(expected), (kind, at, bit)
        assert extra == {"tick": 3}
    assert refused >= 500  # nearly every mutation is caught, none raised anything else


def test_a_flipped_metadata_bit_falls_back_to_the_older_snapshot(tmp_path: Path) -> None:
    book = traded_book()
    older = write_snapshot(book, tmp_path / "0001.arrow")
    newest = write_snapshot(book, tmp_path / "0002.arrow")
    data = bytearray(newest.read_bytes())
    at = data.rindex(b"warning_rate")  # the footer schema's metadata: bit 7 -> invalid UTF-8
    data[at] ^= 0x80
    newest.write_bytes(bytes(data))
    with pytest.raises(SnapshotError):
        read_snapshot(newest)
    found, skipped = latest_valid_snapshot(tmp_path)
    assert found is not None and found[0] == older
    assert len(skipped) == 1 and "0002" in skipped[0]
