"""`clearing serve` streams its ledger (engine.service.app with engine.io.ledger_segments): by
default into the snapshot directory's `ledger/`, at every snapshot, so memory keeps only the
postings since the last one; a restart (here over a lost newest snapshot, as after a crash
between a segment and its snapshot) resumes from the mark, and the concatenated segments equal
the ledger of a run kept whole in memory and never stopped."""

from __future__ import annotations

from pathlib import Path

from engine.io.ledger_segments import COLUMNS, audit_whole, read_ledger, segments
from engine.service import messages
from engine.service.app import ServeConfig, serve
from tests.service.scenario import scenario


def _files(root: Path) -> tuple[Path, Path]:
    events, prices = scenario(n_pairs=25, n_prices=30, seed=5)
    root.mkdir(parents=True, exist_ok=True)
    (root / "events.jsonl").write_bytes(b"".join(messages.encode(d) + b"\n" for d in events))
    (root / "prices.jsonl").write_bytes(b"".join(messages.encode(d) + b"\n" for d in prices))
    return root / "prices.jsonl", root / "events.jsonl"


def _config(prices: Path, events: Path, **kw: object) -> ServeConfig:
    from engine.service.state import ServiceConfig

    return ServeConfig(
        service=ServiceConfig(band_rate=0, fill_checks=False),
        prices_file=prices,
        events_file=events,
        fund="1000",
        batch_records=4,
        snapshot_every_ticks=3,
        snapshot_interval_s=0,
        snapshots_keep=10,
        **kw,  # type: ignore[arg-type]
    )


def test_serve_streams_the_ledger_and_a_restart_loses_and_repeats_nothing(tmp_path: Path) -> None:
    prices, events = _files(tmp_path / "in")
    whole, _, _ = serve(_config(prices, events, ledger_in_memory=True), log=lambda line: None)
    want = {name: whole.book.ledger.column(name).tolist() for name in COLUMNS}
    assert whole.book.ledger.base == 0 and len(want["seq"]) > 50

    snap = tmp_path / "snap"
    first, result, _ = serve(
        _config(prices, events, snapshot_dir=snap, max_ticks=8), log=lambda line: None
    )
    assert result.stopped_by == "max_ticks"
    assert len(first.book.ledger) == 0  # the final snapshot streamed the rest
    newest = sorted(snap.glob("*.arrow"))[-1]
    assert newest.name == "tick-000000000008.arrow"
    newest.unlink()  # lost: its segment (ticks 7-8) is past the mark of tick 6's snapshot
    assert segments(snap / "ledger")[-1][:2] == (7, 8)
    lines: list[str] = []
    resumed, result, _ = serve(_config(prices, events, snapshot_dir=snap), log=lines.append)
    assert result.replayed == 2  # ticks 7 and 8, from the journal
    assert any("ledger segments in" in line for line in lines)
    assert resumed.state.tick == whole.state.tick
    assert len(resumed.book.ledger) == 0
    got = read_ledger(snap / "ledger")
    for name in COLUMNS:
        assert got[name].tolist() == want[name], name
    assert audit_whole(resumed.book, snap / "ledger").ok  # the full audit over the segments


def test_a_ledger_dir_of_its_own(tmp_path: Path) -> None:
    prices, events = _files(tmp_path / "in")
    config = _config(prices, events, snapshot_dir=tmp_path / "snap", ledger_dir=tmp_path / "led")
    service, _, _ = serve(config, log=lambda line: None)
    assert segments(tmp_path / "led") and not (tmp_path / "snap" / "ledger").exists()
    assert len(read_ledger(tmp_path / "led")["seq"]) == service.book.ledger.base
