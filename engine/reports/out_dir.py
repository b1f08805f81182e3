"""The batch runs' output directories: written whole or not at all, never mixed with stale files.

A run writes into a fresh temporary directory beside its output directory
(`.<name>.<random>.partial`) and renames it into place at the end; a directory it replaces
goes whole. A run killed half way leaves only its `.partial` directory, which the next run
into the same output directory removes first (one run per output directory at a time).

`clearing risk` and `clearing liquidate` replace an output directory only when it holds
nothing but files they write themselves (a previous run's tables); any other file there is
refused (`invalid_out`), so neither deletes a file it did not write nor leaves a stale
table beside new ones. `clearing settle` keeps its own rule (engine.reports.settlement_batch).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path

import pyarrow as pa

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.io.tables import write_tables


def partials(out: Path) -> list[Path]:
    """The temporary directories runs into `out` left behind."""
    if not out.parent.is_dir():
        return []
    return sorted(p for p in out.parent.glob(f".{out.name}.*.partial") if p.is_dir())


def clean_partials(out: Path) -> list[Path]:
    """Remove what killed runs into `out` left behind (and a half-done replacement)."""
    stale = partials(out)
    replaced = out.with_name(f".{out.name}.replaced")
    if replaced.is_dir():
        stale.append(replaced)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def fresh_dir(out: Path) -> Path:
    """A new temporary directory beside `out`, to be committed into its place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))


def commit(tmp: Path, out: Path) -> None:
    """Put the finished directory in place; a previous one is replaced whole."""
    if out.exists():
        replaced = out.with_name(f".{out.name}.replaced")
        if replaced.exists():
            shutil.rmtree(replaced)
        os.rename(out, replaced)
        os.rename(tmp, out)
        shutil.rmtree(replaced)
    else:
        os.rename(tmp, out)
    dir_fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def check_replaceable(out: Path, owned: Collection[str]) -> None:
    """`out` is new, empty, or holds only files named in `owned`; else Rejected."""
    if not out.exists():
        return
    if not out.is_dir():
        raise Rejected(RejectReason.INVALID_OUT, f"{out} exists and is not a directory")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in owned or not p.is_file())
    if foreign:
        raise Rejected(
            RejectReason.INVALID_OUT,
            f"{out} holds {foreign[0]!r}, which this command does not write: not replacing"
            " (give a new or empty directory)",
        )


def write_tables_whole(out: Path, tables: Mapping[str, pa.Table]) -> list[Path]:
    """`out/<name>.parquet` for each table, `out` replaced whole (see the module docstring)."""
    out = Path(out)
    check_replaceable(out, {f"{name}.parquet" for name in tables})
    clean_partials(out)
    tmp = fresh_dir(out)
    try:
        paths = write_tables(tmp, tables)
        commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / p.name for p in paths]
