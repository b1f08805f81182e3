"""`clearing inspect SNAPSHOT`: what a snapshot holds, after checking its checksum.

Prints which command wrote it, then the tick, the offsets consumed per partition, the dedup
state, the insurance fund, the house accounts, the marks and, when every instrument with
positions has a mark, the customers by margin status at those marks
(engine.service.snapshot_summary). A file that fails its checksum is rejected (exit 3).

The writer is told by what the snapshot carries: `clearing serve` stores its service state
(tick, offsets, shard), `clearing settle` the dates it settled, `clearing stress` and
`clearing demo` the scenario; a snapshot that names its writer (`written_by`) says so itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.cli.outcome import Outcome
from engine.service.app import snapshot_extra
from engine.service.snapshot_summary import summarize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "snapshot",
        type=Path,
        help="an Arrow snapshot written by clearing serve, settle, stress or demo",
    )


def read_extra(path: Path) -> dict[str, Any]:
    """The writer's metadata of a snapshot; a file that is not one is rejected."""
    try:
        return snapshot_extra(path)
    except (pa.ArrowInvalid, ValueError) as exc:
        raise Rejected(RejectReason.INVALID_SNAPSHOT, f"{path}: not a snapshot ({exc})") from None


def writer_of(extra: dict[str, Any]) -> str:
    """Which command wrote a snapshot with this metadata, in words."""
    if isinstance(extra.get("written_by"), str):
        return extra["written_by"]
    if isinstance(extra.get("service"), dict):
        return f"clearing serve (shard {extra['service'].get('shard')!r})"
    if "settled_dates" in extra:
        dates = extra["settled_dates"] or []
        return "clearing settle" + (f" (last date {dates[-1]})" if dates else "")
    if "scenario" in extra:
        return f"clearing stress or clearing demo (scenario {extra['scenario']})"
    return "unknown (the snapshot does not say)"


def run(args: argparse.Namespace) -> Outcome:
    extra = read_extra(args.snapshot)
    lines = summarize(args.snapshot)
    writer = writer_of(extra)
    lines.insert(1, f"written by   {writer}")
    for line in lines:
        print(line)
    service = extra.get("service") if isinstance(extra.get("service"), dict) else None
    return Outcome(
        {
            "snapshot": str(args.snapshot),
            "checksum_ok": True,
            "written_by": writer,
            "tick": service.get("tick") if service else None,
            "shard": service.get("shard") if service else None,
            "offsets": service.get("offsets") if service else None,
            "lines": lines,
        }
    )
