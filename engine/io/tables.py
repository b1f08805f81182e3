"""Tables as files: read a CSV or Parquet file's columns, write Parquet atomically.

A file is read by its suffix (.csv, .parquet or .pq). CSV columns are read as text so a
decimal stays exactly what was written (engine.io.columns turns them into integers).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_table(path: str | Path, required: Sequence[str], optional: Sequence[str] = ()) -> pa.Table:
    """The required and present optional columns of a CSV or Parquet file.

    CSV columns are strings (an empty field is null), so no value passes through a float.
    """
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise Rejected(
            RejectReason.INVALID_FILE,
            f"{path}: unknown file type (expected {', '.join(sorted(SUFFIXES))})",
        )
    if not path.is_file():
        raise Rejected(RejectReason.MISSING_FILE, f"{path}: no such file")
    wanted = [*required, *optional]
    try:
        if kind == "csv":
            options = pcsv.ConvertOptions(
                column_types=dict.fromkeys(wanted, pa.string()),
                strings_can_be_null=True,
                null_values=[""],
            )
            table = pcsv.read_csv(path, convert_options=options)
        else:
            names = pq.read_schema(path).names
            table = pq.read_table(path, columns=[n for n in wanted if n in names])
    except (pa.ArrowInvalid, OSError) as exc:
        raise Rejected(RejectReason.INVALID_FILE, f"{path}: cannot read as {kind}: {exc}") from None
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise Rejected(
            RejectReason.MISSING_COLUMN,
            f"{path}: missing column {missing[0]!r} (needs {', '.join(required)})",
        )
    return table.select([n for n in wanted if n in table.column_names])


def write_parquet(table: pa.Table, path: str | Path) -> Path:
    """Write through a temporary file and a rename, so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def write_tables(out_dir: str | Path, tables: Mapping[str, pa.Table]) -> list[Path]:
    """`out_dir/<name>.parquet` for each table (the directory is created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # One file per thread: the Parquet writer is single-threaded and releases the GIL.
    with ThreadPoolExecutor(max_workers=max(1, len(tables))) as pool:
        return list(
            pool.map(
                lambda item: write_parquet(item[1], out / f"{item[0]}.parquet"), tables.items()
            )
        )
