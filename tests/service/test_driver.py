"""The driver (engine.service.driver.run) with the file journal and snapshots: a crash and
its replay equal an uninterrupted run, and a clean stop restarts where it left off.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.io.snapshot import book_batch, read_snapshot
from engine.service.driver import run
from engine.service.files_adapter import FileJournal, FileSink, MemorySink, StreamSource
from engine.service.snapshots import Snapshotter, restore
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.waterfall.profile import Profile
from tests.service.scenario import memory_service, scenario, streams_of


def _snapshot_data(path: Path) -> tuple[Any, dict[str, Any]]:
    book, extra = read_snapshot(path)
    return book_batch(book), extra["service"]


def test_crash_and_replay_equal_an_uninterrupted_run(tmp_path: Path) -> None:
    profile = Profile.shipped()
    events, prices = scenario(n_pairs=25, n_prices=30, seed=5)
    config = ServiceConfig(band_rate=0, fill_checks=False)

    def fresh(root: Path) -> tuple[Service, StreamSource, FileSink, FileJournal, Snapshotter]:
        return (
            memory_service(profile, config),
            StreamSource(streams_of(events, prices), batch_records=4),
            FileSink(root / "out"),
            FileJournal(root / "journal.jsonl"),
            Snapshotter(root / "snap", every_s=0, every_ticks=3, keep=3),
        )

    service, source, sink, journal, snaps = fresh(tmp_path / "a")
    run(service, source, sink, journal=journal, snapshots=snaps)
    final_a = _snapshot_data(snaps.written[-1])
    ticks = service.state.tick

    # Run b: crash after 13 ticks (no final snapshot), the newest snapshot corrupt.
    service, source, sink, journal, snaps = fresh(tmp_path / "b")
    run(service, source, sink, journal=journal, snapshots=snaps, max_ticks=13, final_snapshot=False)
    newest = snaps.written[-1]
    assert newest.name == "tick-000000000012.arrow"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    sink.close()
    journal.close()
    restored, recovery = restore(tmp_path / "b" / "snap", profile, config)
    assert restored is not None and recovery.path is not None
    assert recovery.path.name == "tick-000000000009.arrow"
    assert len(recovery.skipped) == 1 and "tick-000000000012" in recovery.skipped[0]
    source = StreamSource(streams_of(events, prices), batch_records=4)
    source.seek(restored.state.offsets)
    sink = FileSink(tmp_path / "b" / "out")
    journal = FileJournal(tmp_path / "b" / "journal.jsonl")
    snaps = Snapshotter(tmp_path / "b" / "snap", every_s=0, every_ticks=3, keep=3)
    result = run(restored, source, sink, journal=journal, snapshots=snaps)
    assert result.replayed == 4  # ticks 10..13 re-cut from the journal
    assert restored.state.tick == ticks
    final_b = _snapshot_data(snaps.written[-1])
    assert final_a[0].equals(final_b[0])
    assert final_a[1] == final_b[1]
    sink.close()

    # Outputs: the replay repeats ticks 10..13 with the same ids and bytes.
    def outputs(root: Path) -> dict[str, bytes]:
        seen: dict[str, bytes] = {}
        for path in sorted((root / "out").glob("*.jsonl")):
            for line in path.read_bytes().splitlines():
                doc_id = json.loads(line)["id"]
                assert seen.setdefault(doc_id, line) == line, "a repeated id with other content"
        return seen

    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")


def test_clean_stop_and_restart(tmp_path: Path) -> None:
    profile = Profile.shipped()
    events, prices = scenario(n_pairs=10, n_prices=12, seed=8)
    config = ServiceConfig(band_rate=0, fill_checks=False)
    one = memory_service(profile, config)
    run(one, StreamSource(streams_of(events, prices), batch_records=5), MemorySink())
    two = memory_service(profile, config)
    snaps = Snapshotter(tmp_path, every_s=0)
    run(
        two,
        StreamSource(streams_of(events, prices), batch_records=5),
        MemorySink(),
        snapshots=snaps,
        max_ticks=4,
    )
    again, _ = restore(tmp_path, profile, config)
    assert again is not None and again.state.tick == 4
    source = StreamSource(streams_of(events, prices), batch_records=5)
    source.seek(again.state.offsets)
    run(again, source, MemorySink())
    one.book.compact(canonical=True)
    again.book.compact(canonical=True)
    assert book_batch(one.book).equals(book_batch(again.book))
    assert one.extra() == again.extra()


def test_outputs_are_flushed_before_each_snapshot_and_a_failed_flush_writes_none(
    tmp_path: Path,
) -> None:
    profile = Profile.shipped()
    events, prices = scenario(n_pairs=10, n_prices=20, seed=5)
    config = ServiceConfig(band_rate=0, fill_checks=False)
    calls: list[str] = []

    class Sink(MemorySink):
        fail_at: int | None = None

        def publish(self, topic: str, key: bytes, value: bytes) -> None:
            calls.append("publish")
            super().publish(topic, key, value)

        def flush(self) -> None:
            calls.append("flush")
            if self.fail_at is not None and service.state.tick >= self.fail_at:
                raise RuntimeError("1 output records failed: refused")

    class Snaps(Snapshotter):
        def write(self, service: Service, extra: dict[str, Any]) -> Path:
            calls.append("snapshot")
            return super().write(service, extra)

    service = memory_service(profile, config)
    source = StreamSource(streams_of(events, prices), batch_records=4)
    snaps = Snaps(tmp_path / "a", every_s=0, every_ticks=1, keep=100)
    run(service, source, Sink(), snapshots=snaps)
    # Every snapshot right after a flush, and no publish between them.
    assert calls.count("snapshot") == service.state.tick + 1  # each tick and the final one
    for i, call in enumerate(calls):
        if call == "snapshot":
            assert calls[i - 1] == "flush"
    # A flush that fails at tick 6: the driver stops there, the newest snapshot is tick 5's.
    service = memory_service(profile, config)
    source = StreamSource(streams_of(events, prices), batch_records=4)
    snaps = Snaps(tmp_path / "b", every_s=0, every_ticks=1, keep=100)
    sink = Sink()
    sink.fail_at = 6
    with pytest.raises(RuntimeError, match="output records failed"):
        run(service, source, sink, snapshots=snaps)
    assert snaps.written[-1].name == "tick-000000000005.arrow"
