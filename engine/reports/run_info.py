"""What produced an output: the run's metadata, written into every Parquet file's schema
(key `clearing.run`, a JSON document) and into summary.json (`run`).

    engine          the distribution name (clearing-engine) and its version
    created_utc     when the run started, ISO 8601 in UTC
    profile         the waterfall rules' name (null where a run has none)
    inputs          per input: its source (a path, a built-in name, "table") and the
                    sha256 of its bytes (a file's; a built-in's canonical JSON; a table's
                    Arrow IPC stream)
    command         the command line (sys.argv), or the API call that ran it

Read it back with `json.loads(pq.read_schema(path).metadata[b"clearing.run"])`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine._version import DISTRIBUTION, __version__

METADATA_KEY = b"clearing.run"


def engine_version() -> str:
    """The engine's version (engine._version: the installed package's metadata)."""
    return __version__


def input_digest(source: str | Path | bytes | pa.Table) -> dict[str, str]:
    """{"source", "sha256"} of a file (by path), raw bytes, or an Arrow table."""
    if isinstance(source, pa.Table):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, source.schema) as writer:
            writer.write_table(source)
        return {"source": "table", "sha256": hashlib.sha256(sink.getvalue()).hexdigest()}
    if isinstance(source, bytes):
        return {"source": "bytes", "sha256": hashlib.sha256(source).hexdigest()}
    path = Path(source)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"source": str(path), "sha256": digest.hexdigest()}


def builtin_digest(name: str, document: Any) -> dict[str, str]:
    """A built-in input (a scenario, a profile) by name: the sha256 of its canonical JSON."""
    text = json.dumps(document, sort_keys=True, default=str).encode()
    return {"source": f"built-in {name}", "sha256": hashlib.sha256(text).hexdigest()}


def run_info(
    *,
    profile: str | None,
    inputs: Mapping[str, dict[str, str]],
    command: Sequence[str] | None = None,
    started: datetime | None = None,
) -> dict[str, Any]:
    """The metadata of a run (module docstring); `inputs` from input_digest/builtin_digest;
    `command` defaults to this process's command line."""
    when = started or datetime.now(UTC)
    return {
        "engine": DISTRIBUTION,
        "engine_version": engine_version(),
        "created_utc": when.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "profile": profile,
        "inputs": dict(inputs),
        "command": list(sys.argv if command is None else command),
    }


def with_run_info(table: pa.Table, info: Mapping[str, Any] | None) -> pa.Table:
    """`table` with `info` in its schema metadata (kept as is when `info` is None)."""
    if info is None:
        return table
    kept = dict(table.schema.metadata or {})
    kept[METADATA_KEY] = json.dumps(info, sort_keys=True).encode()
    return table.replace_schema_metadata(kept)


def read_run_info(schema: pa.Schema) -> dict[str, Any] | None:
    """The run's metadata from a schema written by with_run_info (None if absent)."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return None if raw is None else json.loads(raw)
