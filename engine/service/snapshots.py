"""Service snapshots: the book plus the service state, every N seconds or N ticks and on a
clean shutdown, through engine.io.snapshot (Arrow IPC, checksum, atomic write); the last K
are kept.

The schema metadata's `extra` holds {"service": ServiceState (offsets consumed per
partition, tick sequence, dedup state, held prices, margin calls), "journal_position"}, and
with a profile's risk models "models": their state (engine.service.model_state).
Files are named by tick (`tick-000000000042.arrow`) so the newest sorts last. Recovery
loads the newest one whose checksum verifies, reports the ones it skipped, and the caller
seeks its source to the saved offsets and replays the journal (engine.service.driver.run).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.io.ledger_segments import LedgerSegments
from engine.io.snapshot import (
    SUFFIX,
    SnapshotError,
    latest_valid_snapshot,
    prune_snapshots,
    write_snapshot,
)
from engine.service.model_state import models_from_extra, models_to_extra
from engine.service.state import ServiceConfig, ServiceState
from engine.service.tick import Service
from engine.waterfall.models import Models
from engine.waterfall.profile import Profile

KEEP_DEFAULT = 5


def snapshot_name(tick: int) -> str:
    return f"tick-{tick:012d}{SUFFIX}"


class Snapshotter:
    """Writes a snapshot when `every_ticks` ticks or `every_s` seconds passed since the last
    one (0 turns that trigger off), and prunes to the newest `keep`."""

    def __init__(
        self,
        directory: str | Path,
        *,
        every_s: float = 30.0,
        every_ticks: int = 0,
        keep: int = KEEP_DEFAULT,
        clock: Callable[[], float] = time.monotonic,
        ledger: LedgerSegments | None = None,
    ) -> None:
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.every_s = every_s
        self.every_ticks = every_ticks
        self.keep = keep
        self.clock = clock
        self.last_time = clock()
        self.last_tick: int | None = None
        self.written: list[Path] = []
        self.last_write_s = 0.0
        # The ledger streamed out (engine.io.ledger_segments): its segment is written before
        # the snapshot that covers it, and the snapshot records the stream's mark.
        self.ledger = ledger

    def due(self, service: Service, now: float) -> bool:
        """Whether a snapshot is due at the service's tick (the caller flushes its outputs
        first, engine.service.driver.run, then calls write)."""
        since = service.state.tick - (self.last_tick or 0)
        return bool(
            (self.every_ticks and since >= self.every_ticks)
            or (self.every_s and now - self.last_time >= self.every_s)
        )

    def maybe_write(self, service: Service, now: float, extra: dict[str, Any]) -> None:
        """write when due; only for callers with no outputs in flight."""
        if self.due(service, now):
            self.write(service, extra)

    def write(self, service: Service, extra: dict[str, Any]) -> Path:
        started = self.clock()
        service.book.compact(canonical=True)
        tick = service.state.tick
        if self.ledger is not None:
            extra = {**extra, "ledger": self.ledger.flush(service.book, tick)}
        saved = service.extra()
        models = models_to_extra(service.models)
        if models is not None:
            saved["models"] = models
        path = write_snapshot(service.book, self.directory / snapshot_name(tick), saved | extra)
        prune_snapshots(self.directory, self.keep)
        self.last_tick = tick
        self.last_time = self.clock()
        self.last_write_s = self.last_time - started
        self.written.append(path)
        return path


@dataclass
class Recovery:
    path: Path | None = None
    skipped: list[str] = field(default_factory=list)  # why newer snapshots were not used
    ledger: dict[str, Any] | None = None  # the ledger stream's mark (LedgerSegments.start)


def restore(
    directory: str | Path,
    profile: Profile,
    config: ServiceConfig,
    **service_options: Any,
) -> tuple[Service | None, Recovery]:
    """The service as of the newest valid snapshot in `directory` (None if there is none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None, Recovery()
    states: dict[Path, ServiceState] = {}
    models: dict[Path, Models] = {}

    def check(path: Path, book: Book, extra: dict[str, Any]) -> None:
        saved = extra.get("service")
        if not isinstance(saved, dict):
            raise Rejected(
                RejectReason.INVALID_SNAPSHOT, f"{path}: not a service snapshot (no service state)"
            )
        if saved.get("shard") != config.shard:
            raise Rejected(
                RejectReason.INVALID_SNAPSHOT,
                f"{path}: snapshot of shard {saved.get('shard')!r}, not {config.shard!r}",
            )
        try:
            states[path] = ServiceState.from_extra(saved)
            int(extra.get("journal_position", 0))
            models[path] = models_from_extra(book, profile, extra.get("models"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"{path}: service state unreadable: {exc!r}"[:300]) from None

    found, skipped = latest_valid_snapshot(directory, check)
    if found is None:
        return None, Recovery(None, skipped)
    path, book, extra = found
    service = Service(book, profile, config, states[path], models=models[path], **service_options)
    service.journal_position = int(extra.get("journal_position", 0))
    mark = extra.get("ledger")
    return service, Recovery(path, skipped, mark if isinstance(mark, dict) else None)
