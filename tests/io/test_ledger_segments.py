"""The ledger streamed out as Parquet segments (engine.io.ledger_segments): memory keeps only
the postings since the last checkpoint, the checkpointed audit holds every tick, and the
concatenated segments are the whole ledger of an uninterrupted in-memory run -- also after a
crash whose newest snapshot is lost (no posting lost, none repeated)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.io.ledger_segments import COLUMNS, LedgerSegments, read_ledger, segments
from engine.service.driver import run
from engine.service.files_adapter import FileJournal, MemorySink, StreamSource
from engine.service.ports import Record
from engine.service.snapshots import Snapshotter, restore
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.waterfall.conservation import ConservationError, audit
from engine.waterfall.profile import Profile
from tests.service.scenario import memory_service, scenario, streams_of

PROFILE = Profile.shipped()
CONFIG = ServiceConfig(band_rate=0, fill_checks=False)
EVENTS, PRICES = scenario(n_pairs=25, n_prices=30, seed=5)


def _source() -> StreamSource:
    return StreamSource(streams_of(EVENTS, PRICES), batch_records=4)


def _ledger(service: Service) -> dict[str, np.ndarray]:
    return {name: service.book.ledger.column(name).copy() for name in COLUMNS}


def _watch(service: Service, segs: LedgerSegments, lengths: list[int]) -> None:
    """After each tick: the checkpointed audit, and the in-memory ledger's length."""
    original = service.tick

    def tick(records: list[Record]) -> list:
        outputs = original(records)
        assert segs.audit(service.book).ok
        lengths.append(len(service.book.ledger))
        return outputs

    service.tick = tick  # type: ignore[method-assign]


def _reference() -> dict[str, np.ndarray]:
    service = memory_service(PROFILE, CONFIG)
    run(service, _source(), MemorySink())
    assert audit(service.book).ok
    return _ledger(service)


def _equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    for name in COLUMNS:
        assert got[name].tolist() == want[name].tolist(), name


def test_segments_are_the_whole_ledger_and_memory_stays_bounded(tmp_path: Path) -> None:
    want = _reference()
    service = memory_service(PROFILE, CONFIG)
    segs = LedgerSegments(tmp_path / "ledger")
    segs.start(service.book, None)
    lengths: list[int] = []
    _watch(service, segs, lengths)
    snaps = Snapshotter(tmp_path / "snap", every_s=0, every_ticks=3, keep=3, ledger=segs)
    run(service, _source(), MemorySink(), snapshots=snaps)
    assert len(service.book.ledger) == 0  # the final snapshot streamed the rest
    _equal(read_ledger(tmp_path / "ledger"), want)
    names = [path.name for _, _, path in segments(tmp_path / "ledger")]
    assert names[0] == "ledger-000000000001-000000000003.parquet"
    # memory holds at most a checkpoint interval's postings, a fraction of the whole
    assert max(lengths) < len(want["seq"]) / 3
    assert service.book.ledger.base == len(want["seq"])


def test_restart_from_a_snapshot_and_the_segments_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    want = _reference()
    root = tmp_path / "b"

    def pieces(service: Service, mark: dict | None) -> tuple[LedgerSegments, Snapshotter]:
        segs = LedgerSegments(root / "ledger")
        segs.start(service.book, mark)
        _watch(service, segs, [])
        return segs, Snapshotter(root / "snap", every_s=0, every_ticks=3, keep=3, ledger=segs)

    service = memory_service(PROFILE, CONFIG)
    segs, snaps = pieces(service, None)
    journal = FileJournal(root / "journal.jsonl")
    run(
        service,
        _source(),
        MemorySink(),
        journal=journal,
        snapshots=snaps,
        max_ticks=13,
        final_snapshot=False,
    )
    # a crash after the segment of ticks 10-12 but with snapshot 12 lost
    newest = snaps.written[-1]
    assert newest.name == "tick-000000000012.arrow"
    assert (root / "ledger" / "ledger-000000000010-000000000012.parquet").exists()
    newest.unlink()
    journal.close()
    restored, recovery = restore(root / "snap", PROFILE, CONFIG)
    assert restored is not None and recovery.ledger is not None
    assert recovery.ledger["tick"] == 9
    segs, snaps = pieces(restored, recovery.ledger)
    assert not (root / "ledger" / "ledger-000000000010-000000000012.parquet").exists()
    source = _source()
    source.seek(restored.state.offsets)
    journal = FileJournal(root / "journal.jsonl")
    result = run(restored, source, MemorySink(), journal=journal, snapshots=snaps)
    assert result.replayed == 4
    _equal(read_ledger(root / "ledger"), want)


def test_the_checkpointed_audit_catches_a_wrong_balance(tmp_path: Path) -> None:
    service = memory_service(PROFILE, CONFIG)
    segs = LedgerSegments(tmp_path)
    segs.start(service.book, None)
    run(service, _source(), MemorySink(), max_ticks=5)
    segs.flush(service.book, service.state.tick)
    assert segs.audit(service.book).ok
    service.book.balance[0] += 1
    with pytest.raises(ConservationError, match="checkpoint plus the ledger"):
        segs.audit(service.book)


def test_a_snapshot_whose_segments_are_missing_is_refused(tmp_path: Path) -> None:
    service = memory_service(PROFILE, CONFIG)
    segs = LedgerSegments(tmp_path / "ledger")
    segs.start(service.book, None)
    mark = segs.flush(service.book, 1)
    for _, _, path in segments(tmp_path / "ledger"):
        path.unlink()
    with pytest.raises(ValueError, match="hold 0 postings"):
        LedgerSegments(tmp_path / "ledger").start(service.book, mark)
