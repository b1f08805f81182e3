"""The service as `clearing serve` runs it without a broker (engine.service.app, through the
CLI): from JSON-lines files with snapshots and `clearing inspect`, the synthetic default, the
CLI's defaults against the service's, and a corrupt snapshot refused by the summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.cli import inspect as inspect_cli
from engine.cli import serve as serve_cli
from engine.io.snapshot import book_batch
from engine.service import messages
from engine.service.app import ServeConfig, serve
from engine.service.files_adapter import file_source
from engine.service.snapshot_summary import summarize
from tests.service.scenario import scenario


def test_files_adapter_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events, prices = scenario(n_pairs=8, n_prices=10, seed=2)
    (tmp_path / "events.jsonl").write_bytes(b"".join(messages.encode(d) + b"\n" for d in events))
    (tmp_path / "prices.jsonl").write_bytes(b"".join(messages.encode(d) + b"\n" for d in prices))
    source = file_source(tmp_path / "prices.jsonl", tmp_path / "events.jsonl", batch_records=7)
    first = source.next_batch()
    assert first is not None and len(first) == 14
    source.close()
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "--prices-file",
            str(tmp_path / "prices.jsonl"),
            "--events-file",
            str(tmp_path / "events.jsonl"),
            "--out-dir",
            str(tmp_path / "out"),
            "--snapshot-dir",
            str(tmp_path / "snap"),
            "--band",
            "0",
            "--no-fill-checks",
            "--fund",
            "1000",
            "--metrics-port",
            "0",
        ]
    )
    assert serve_cli.run(args).status == 0
    snapshots = sorted((tmp_path / "snap").glob("*.arrow"))
    assert snapshots
    parser = argparse.ArgumentParser()
    inspect_cli.add_arguments(parser)
    capsys.readouterr()
    assert inspect_cli.run(parser.parse_args([str(snapshots[-1])])).status == 0
    text = capsys.readouterr().out
    assert "tick" in text and "accounts" in text and "BTCUSDT" in text


def test_synthetic_default_runs(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    args = parser.parse_args(
        ["--synthetic-accounts", "2000", "--synthetic-steps", "30", "--out-dir", str(tmp_path)]
    )
    assert serve_cli.run(args).status == 0
    liquidations = (tmp_path / "liquidations.jsonl").read_text().splitlines()
    assert liquidations, "the synthetic path's crash liquidates"


def test_cli_defaults_are_the_service_defaults() -> None:
    # `clearing serve` with no options is ServeConfig(): --band 0.1 is BAND_RATE_DEFAULT
    # (0.1 x 10^8 = 10_000_000), and every other default is the same in both places.
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    assert serve_cli.config_of(parser.parse_args([])) == ServeConfig()
    assert ServeConfig().synthetic
    assert not ServeConfig(prices_file=Path("prices.jsonl")).synthetic


def test_inspect_rejects_a_corrupt_snapshot(tmp_path: Path) -> None:
    out = tmp_path / "out"
    snap = tmp_path / "snap"
    config = ServeConfig(synthetic_accounts=200, synthetic_steps=4, out_dir=out, snapshot_dir=snap)
    serve(config, log=lambda line: None)
    path = sorted(snap.glob("*.arrow"))[-1]
    assert summarize(path)[0] == f"snapshot     {path} (checksum ok)"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(Rejected) as caught:
        summarize(path)
    assert caught.value.reason == RejectReason.INVALID_SNAPSHOT


def test_serve_skips_a_flipped_or_truncated_newest_snapshot(tmp_path: Path) -> None:
    # A run stopped after 5 of 8 ticks with a snapshot per tick; its newest snapshot gets
    # bit 7 of a metadata byte flipped, the one before is truncated: the restart logs both
    # as skipped, restores tick 3's, replays the journal and ends where a run never
    # stopped ends.
    def config(root: Path, **kw: object) -> ServeConfig:
        return ServeConfig(
            synthetic_accounts=200,
            synthetic_steps=8,
            out_dir=root / "out",
            snapshot_dir=root / "snap",
            snapshot_every_ticks=1,
            snapshots_keep=10,
            **kw,  # type: ignore[arg-type]
        )

    whole, _, _ = serve(config(tmp_path / "whole"), log=lambda line: None)
    run = tmp_path / "run"
    serve(config(run, max_ticks=5), log=lambda line: None)
    snaps = sorted((run / "snap").glob("*.arrow"))
    newest, before = snaps[-1], snaps[-2]
    assert (newest.name, before.name) == ("tick-000000000005.arrow", "tick-000000000004.arrow")
    data = bytearray(newest.read_bytes())
    data[data.rindex(b"warning_rate")] ^= 0x80
    newest.write_bytes(bytes(data))
    before.write_bytes(before.read_bytes()[: before.stat().st_size // 2])
    lines: list[str] = []
    resumed, result, status = serve(config(run), log=lines.append)
    assert status == 0
    assert sum(line.startswith("snapshot skipped") for line in lines) == 2
    assert any("restored" in line and "tick-000000000003" in line for line in lines)
    assert result.replayed == 2  # ticks 4 and 5, from the journal
    assert resumed.state.tick == whole.state.tick
    assert book_batch(resumed.book).equals(book_batch(whole.book))
