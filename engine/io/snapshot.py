"""Snapshots: the whole book state in one Arrow IPC file, written atomically.

One uncompressed record batch (so a reader maps it back into numpy without a copy) whose
rows are sections told apart by the `section` column: `account` rows (account_id, balance),
`position` rows (account_id of the owner, instrument, symbol, qty, cost, leverage) and
`instrument` rows (instrument, symbol, mark, mark_set). Amounts are raw fixed-point
integers; the schema metadata carries the instrument file, the house balances, the book's
settings, the caller's metadata (Kafka offsets, tick sequence) and a SHA-256 checksum of
all of it, so polars or duckdb can open the file and a corrupt one is detected on load.

The ledger is not part of the state: a restored book starts a new ledger whose opening
postings carry every balance over, so conservation holds from the snapshot on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from engine.book.book import Book
from engine.book.instruments import InstrumentTable
from engine.book.ledger import EXTERNAL, Reason

FORMAT_VERSION = 1
SUFFIX = ".arrow"
SECTIONS = ("account", "position", "instrument")
# The batch's schema, exactly (the checksum covers the buffers and metadata, not the types).
SCHEMA = pa.schema(
    [
        ("section", pa.dictionary(pa.int8(), pa.string())),
        ("account_id", pa.int64()),
        ("balance", pa.int64()),
        ("instrument", pa.int32()),
        ("symbol", pa.dictionary(pa.int32(), pa.string())),
        ("qty", pa.int64()),
        ("cost", pa.int64()),
        ("leverage", pa.int32()),
        ("mark", pa.int64()),
        ("mark_set", pa.bool_()),
    ]
)


class SnapshotError(ValueError):
    pass


def batch_checksum(batch: pa.RecordBatch, meta: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in batch.schema.names:
        column = batch.column(name)
        digest.update(name.encode())
        for buffer in column.buffers():
            if buffer is not None:
                digest.update(memoryview(buffer))
        if isinstance(column, pa.DictionaryArray):
            for buffer in column.dictionary.buffers():
                if buffer is not None:
                    digest.update(memoryview(buffer))
    for key in sorted(meta):
        digest.update(key.encode() + b"=" + meta[key].encode())
    return digest.hexdigest()


def book_batch(book: Book) -> pa.RecordBatch:
    # Canonical order (account row, instrument): equal books give equal bytes.
    book.compact(canonical=True)
    n_acc, n_pos, n_inst = book.n_accounts, len(book.pos_qty), len(book.instruments)
    owner = book.account_id[book.position_owner()]
    live = book.pos_qty != 0
    n_pos = int(live.sum())
    symbols = [inst.symbol for inst in book.instruments.instruments]
    section = np.concatenate(
        [np.zeros(n_acc, np.int8), np.ones(n_pos, np.int8), np.full(n_inst, 2, np.int8)]
    )

    def column(parts: list[np.ndarray | None], dtype: Any, lengths: tuple[int, ...]) -> pa.Array:
        values, mask = [], []
        for part, length in zip(parts, lengths, strict=True):
            if part is None:
                values.append(np.zeros(length, dtype=dtype))
                mask.append(np.ones(length, dtype=bool))
            else:
                values.append(np.asarray(part, dtype=dtype))
                mask.append(np.zeros(length, dtype=bool))
        return pa.array(np.concatenate(values), mask=np.concatenate(mask))

    lengths = (n_acc, n_pos, n_inst)
    inst_index = np.arange(n_inst, dtype=np.int32)
    pos_inst = book.pos_instrument[live]
    symbol_codes = np.concatenate([np.zeros(n_acc, np.int32), pos_inst, inst_index])
    symbol_mask = np.concatenate([np.ones(n_acc, bool), np.zeros(n_pos + n_inst, bool)])
    return pa.record_batch(
        {
            "section": pa.DictionaryArray.from_arrays(pa.array(section), pa.array(list(SECTIONS))),
            "account_id": column([book.account_id, owner[live], None], np.int64, lengths),
            "balance": column([book.balance, None, None], np.int64, lengths),
            "instrument": column([None, pos_inst, inst_index], np.int32, lengths),
            "symbol": pa.DictionaryArray.from_arrays(
                pa.array(symbol_codes, mask=symbol_mask), pa.array(symbols)
            ),
            "qty": column([None, book.pos_qty[live], None], np.int64, lengths),
            "cost": column([None, book.pos_cost[live], None], np.int64, lengths),
            "leverage": column([None, book.pos_leverage[live], None], np.int32, lengths),
            "mark": column([None, None, book.mark], np.int64, lengths),
            "mark_set": column([None, None, book.mark_set], np.bool_, lengths),
        }
    )


def book_metadata(book: Book, extra: dict[str, Any]) -> dict[str, str]:
    settings = [
        [int(book.account_id[row]), inst, lev]
        for (row, inst), lev in book._leverage_setting.items()
    ]
    return {
        "format_version": str(FORMAT_VERSION),
        "instruments": json.dumps(book.instruments.to_dict(), sort_keys=True),
        "house_balance": json.dumps({str(k): v for k, v in sorted(book.house_balance.items())}),
        "book": json.dumps(
            {
                "warning_rate": book.warning_rate,
                "default_leverage": book.default_leverage,
                "next_event_id": book._next_event_id,
                "opening_position_cost": book.opening_position_cost,
                "leverage_settings": sorted(settings),
            },
            sort_keys=True,
        ),
        "extra": json.dumps(extra, sort_keys=True),
    }


def write_snapshot(book: Book, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write atomically: a temporary file, fsync, rename, fsync of the directory."""
    return write_checked(book_batch(book), book_metadata(book, extra or {}), path)


def write_checked(batch: pa.RecordBatch, meta: dict[str, str], path: str | Path) -> Path:
    """`batch` with `meta` and their checksum as its schema metadata, written atomically."""
    path = Path(path)
    meta = {**meta, "checksum": batch_checksum(batch, meta)}
    batch = batch.replace_schema_metadata(meta)
    tmp = path.with_name(f".{path.name}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def read_snapshot(path: str | Path) -> tuple[Book, dict[str, Any]]:
    """The book and the caller's metadata; SnapshotError if the file is not a valid snapshot.

    Never raises anything else on bad bytes: a flipped bit or a truncation anywhere (the
    Arrow framing, the schema metadata, a buffer) is a SnapshotError, so a caller can skip
    the file and try an older one. The checksum is verified before any value is used, and
    the batch is validated in full before it is mapped into numpy."""
    path = Path(path)
    try:
        return _read_snapshot(path)
    except SnapshotError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # a corrupt file may fail anywhere in pyarrow, json or the book
        raise SnapshotError(
            f"{path}: unreadable ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def read_checked(
    path: Path, schema: pa.Schema, format_version: str, what: str
) -> tuple[pa.RecordBatch, dict[str, str], dict[str, Any]]:
    """A snapshot file's one record batch, its metadata (checksum removed) and its `extra`,
    after every check a corrupt file can fail: one batch, Arrow's full validation, UTF-8
    metadata, the format version, the exact columns and types (`schema`; the checksum
    does not cover types) and the checksum. Shared by every kind of snapshot (`what` names
    it in the messages); each raises SnapshotError only."""
    try:
        with pa.memory_map(str(path), "r") as source:
            reader = ipc.open_file(source)
            if reader.num_record_batches != 1:
                raise SnapshotError(f"{path}: expected one record batch")
            batch = reader.get_batch(0)
            # The batch must outlive the map only as a copy-free view; validate while mapped.
            batch.validate(full=True)
    except (OSError, pa.ArrowException) as exc:
        raise SnapshotError(f"{path}: not a readable Arrow IPC file: {exc}") from None
    try:
        raw = {k.decode(): v.decode() for k, v in (batch.schema.metadata or {}).items()}
    except UnicodeDecodeError:
        raise SnapshotError(f"{path}: schema metadata is not UTF-8 (corrupt)") from None
    checksum = raw.pop("checksum", None)
    if raw.get("format_version") != format_version:
        raise SnapshotError(
            f"{path}: not {what} (unsupported format version {raw.get('format_version')!r})"
        )
    if not batch.schema.remove_metadata().equals(schema):
        raise SnapshotError(f"{path}: columns or types differ from {what}'s")
    if checksum != batch_checksum(batch.replace_schema_metadata(None), raw):
        raise SnapshotError(f"{path}: checksum mismatch (corrupt or modified)")
    extra = json.loads(raw["extra"])
    if not isinstance(extra, dict):
        raise SnapshotError(f"{path}: metadata `extra` is not an object")
    return batch, raw, extra


def _read_snapshot(path: Path) -> tuple[Book, dict[str, Any]]:
    batch, raw, extra = read_checked(path, SCHEMA, str(FORMAT_VERSION), "a snapshot")
    return _book_from(batch, raw), extra


def _book_from(batch: pa.RecordBatch, raw: dict[str, str]) -> Book:
    instruments = InstrumentTable.from_dict(json.loads(raw["instruments"]))
    settings = json.loads(raw["book"])
    section = batch.column("section").indices.to_numpy()
    bounds = np.searchsorted(section, [0, 1, 2, 3])
    acc, pos, ins = (slice(int(bounds[i]), int(bounds[i + 1])) for i in range(3))

    def values(name: str, part: slice) -> np.ndarray:
        column = batch.column(name).slice(part.start, part.stop - part.start)
        return column.to_numpy(zero_copy_only=column.type != pa.bool_())

    book = Book.from_arrays(
        instruments,
        values("account_id", acc),
        values("balance", acc),
        values("account_id", pos),
        values("instrument", pos),
        values("qty", pos),
        values("cost", pos),
        values("leverage", pos),
        warning_rate=settings["warning_rate"],
        default_leverage=settings["default_leverage"],
    )
    for account, amount in json.loads(raw["house_balance"]).items():
        if int(account) != EXTERNAL:
            book._post(EXTERNAL, int(account), int(amount), Reason.OPENING_BALANCE, 0)
    marks, mark_set = values("mark", ins), values("mark_set", ins)
    for i, inst in enumerate(instruments.instruments):
        if mark_set[i]:
            book.set_mark(inst.symbol, int(marks[i]))
    for account_id, inst, lev in settings["leverage_settings"]:
        book._leverage_setting[(book.row_of(account_id), inst)] = lev
    book._next_event_id = settings["next_event_id"]
    book.opening_position_cost = settings["opening_position_cost"]
    book.changed_rows.clear()
    return book


def latest_valid_snapshot(
    directory: str | Path,
    check: Callable[[Path, Book, dict[str, Any]], None] | None = None,
) -> tuple[tuple[Path, Book, dict[str, Any]] | None, list[str]]:
    """The newest snapshot in `directory` (by name: name them so they sort by time) whose
    checksum verifies and that `check` (raising SnapshotError to refuse one) accepts, and
    the reasons the newer ones were skipped."""
    skipped = []
    for path in sorted(Path(directory).glob(f"*{SUFFIX}"), reverse=True):
        try:
            book, extra = read_snapshot(path)
            if check is not None:
                check(path, book, extra)
        except SnapshotError as exc:
            skipped.append(str(exc))
            continue
        return (path, book, extra), skipped
    return None, skipped


def prune_snapshots(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` snapshots; returns the deleted paths."""
    paths = sorted(Path(directory).glob(f"*{SUFFIX}"), reverse=True)
    for path in paths[keep:]:
        path.unlink()
    return paths[keep:]
