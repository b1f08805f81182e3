"""`clearing serve` with an asset-liability profile (engine.service.asset_service): the
securities worked example through the files adapter, stopped in the middle and restarted
from its snapshot (and the journal), ends where an uninterrupted run does, byte for byte;
asset-book snapshots round-trip exactly (engine.io.asset_snapshot)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from engine.book.errors import Rejected
from engine.cli import serve as serve_cli
from engine.cli.main import main
from engine.io.asset_liability_inputs import book_from_files
from engine.io.asset_snapshot import read_asset_snapshot, write_asset_snapshot
from engine.io.snapshot import SnapshotError
from engine.margin.accounts import HELD
from engine.margin.assets import AssetTable
from engine.margin.audit import audit
from engine.margin.liquidation import liquidate, open_fund
from engine.margin.ratio import STATUS_OK, sweep
from engine.service import messages
from engine.service.app import ServeConfig, serve
from engine.service.snapshot_summary import summarize
from engine.service.state import ServiceConfig
from engine.waterfall.profile import Profile

EXAMPLE = Path(__file__).resolve().parents[2] / "engine" / "data" / "margin_example"
ASSETS = EXAMPLE / "securities" / "assets.toml"
FUND = 4611686018427387904


def _files(tmp_path: Path) -> tuple[Path, Path]:
    # The financed buyer (seed 002): 2,000 shares at 10.00 deposited, 10,000 yuan borrowed
    # against them and withdrawn (20,000 of stock, 10,000 owed: 200%). One record per
    # partition per tick: the events come with the first three prices (10.00: events apply
    # before a tick's prices), then 6.50 (13,000 / 10,000 = 130%: nothing), 6.49 (129.8%:
    # the margin call), 6.40 (still called: no second call), 5.49 (109.8% < 110%: a forced
    # sale of ceil(10,000 / 5.49) = 1,822 shares for 10,002.78, the debt repaid).
    events = [
        messages.asset_event_doc("asset_deposit", 1, 1000, 1, "SH600000", "2000"),
        messages.asset_event_doc("borrow", 2, 1000, 1, "CNY", "10000"),
        messages.asset_event_doc("asset_withdraw", 3, 1000, 1, "CNY", "10000"),
    ]
    path = ["10.00", "10.00", "10.00", "6.50", "6.49", "6.40", "5.49"]
    prices = [messages.asset_price_doc("SH600000", 1000 + i, i + 1, p) for i, p in enumerate(path)]
    events_file, prices_file = tmp_path / "events.jsonl", tmp_path / "prices.jsonl"
    events_file.write_bytes(b"".join(messages.encode(d) + b"\n" for d in events))
    prices_file.write_bytes(b"".join(messages.encode(d) + b"\n" for d in prices))
    return events_file, prices_file


def _config(tmp_path: Path, name: str, **kw: Any) -> ServeConfig:
    events, prices = _files(tmp_path)
    return ServeConfig(
        service=ServiceConfig(band_rate=0),  # the example's moves are beyond the band
        profile="securities-margin",
        assets=ASSETS,
        fund="1000",
        events_file=events,
        prices_file=prices,
        batch_records=1,
        out_dir=tmp_path / name / "out",
        snapshot_dir=tmp_path / name / "snap",
        snapshot_every_ticks=2,
        **kw,
    )


def _outputs(directory: Path) -> dict[str, list[bytes]]:
    """Each topic's lines, a replayed one (the same id, published again) once."""
    return {p.name: list(dict.fromkeys(p.read_bytes().splitlines())) for p in directory.glob("*")}


def test_the_worked_example_through_serve_with_a_restart(tmp_path: Path) -> None:
    through, result, status = serve(_config(tmp_path, "through"), log=lambda _: None)
    assert status == 0 and result.stopped_by == "end_of_input" and through.state.tick == 7
    docs = [json.loads(line) for line in (tmp_path / "through/out/margin-calls.jsonl").open()]
    assert [(d["account"], d["maintenance_ratio"]) for d in docs] == [(1, "1.2980")]
    sales = [json.loads(line) for line in (tmp_path / "through/out/liquidations.jsonl").open()]
    assert [(d["qty"], d["amount"]) for d in sales] == [("-1822", "10002.78")]
    book = through.book
    assert book.owed[:, book.index.row(1)].tolist() == [0, 0, 0]
    assert book.held[:, book.index.row(1)].tolist() == [278, 178, 0]
    audit(book)

    # Stopped after the margin call (tick 5: snapshots at 2, 4 and 5); the newest snapshot
    # is lost, so the restart restores tick 4 and replays tick 5 from the journal.
    _, first, _ = serve(_config(tmp_path, "restarted", max_ticks=5), log=lambda _: None)
    assert first.stopped_by == "max_ticks"
    (tmp_path / "restarted/snap/tick-000000000005.arrow").unlink()
    logs: list[str] = []
    restarted, second, _ = serve(_config(tmp_path, "restarted"), log=logs.append)
    assert any("tick-000000000004" in line for line in logs) and second.replayed == 1
    assert restarted.state.tick == 7
    audit(restarted.book)
    final = "tick-000000000007.arrow"
    assert (tmp_path / "through/snap" / final).read_bytes() == (
        tmp_path / "restarted/snap" / final
    ).read_bytes()
    # The journal's replay publishes tick 5's margin call again, with the same id.
    assert _outputs(tmp_path / "through/out") == _outputs(tmp_path / "restarted/out")


def test_the_cli_takes_the_asset_options(tmp_path: Path) -> None:
    events, prices = _files(tmp_path)
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    args = parser.parse_args(
        ["--profile", "securities-margin", "--assets", str(ASSETS), "--fund", "1000"]
        + ["--events-file", str(events), "--prices-file", str(prices)]
        + ["--out-dir", str(tmp_path / "out"), "--snapshot-dir", str(tmp_path / "snap")]
        + ["--balances", str(EXAMPLE / "securities" / "balances.csv")]
        + ["--liabilities", str(EXAMPLE / "securities" / "liabilities.csv")]
        + ["--asset-prices", str(EXAMPLE / "securities" / "prices.csv")]
    )
    assert serve_cli.run(args).status == 0
    book, extra = read_asset_snapshot(sorted((tmp_path / "snap").glob("*.arrow"))[-1])
    assert extra["service"]["tick"] > 0 and book.index.find(5) is not None


def test_an_asset_profile_needs_its_asset_table(tmp_path: Path) -> None:
    events, prices = _files(tmp_path)
    config = ServeConfig(profile="securities-margin", events_file=events, prices_file=prices)
    with pytest.raises(Rejected, match="--assets"):
        serve(config, log=lambda _: None)
    with pytest.raises(Rejected, match="all three or none"):
        serve(
            ServeConfig(
                profile="securities-margin",
                assets=ASSETS,
                balances=EXAMPLE / "securities" / "balances.csv",
                events_file=events,
            ),
            log=lambda _: None,
        )


def test_asset_snapshots_round_trip_with_a_deficit(tmp_path: Path) -> None:
    # The example book with the second share at 20.00: account 4 (20 yuan + 1,000 shares
    # owing 28,000) is sold out for 20,020 and the fund takes the 7,980 shortfall, going
    # below zero; the restored book writes the same bytes and passes the audit.
    profile = Profile.shipped("securities-margin")
    table = AssetTable.load(ASSETS)
    base = EXAMPLE / "securities"
    book = book_from_files(
        table, base / "balances.csv", base / "liabilities.csv", base / "prices.csv"
    )
    open_fund(book, profile, 0)
    book.set_price(table.index["SH600036"], 2_000)
    liquidate(book, profile)
    assert book.of(HELD, table.money, FUND) < 0
    first = write_asset_snapshot(book, tmp_path / "a.arrow", {"x": 1})
    restored, extra = read_asset_snapshot(first)
    assert extra == {"x": 1}
    audit(restored)
    # A book with the fund below zero sweeps (the fund at zero cash, owing nothing: OK).
    assert profile.asset_liability is not None
    risk = sweep(restored, profile.asset_liability)
    assert risk.status[restored.index.row(FUND)] == STATUS_OK
    second = write_asset_snapshot(restored, tmp_path / "b.arrow", {"x": 1})
    assert first.read_bytes() == second.read_bytes()
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0x10
    (tmp_path / "c.arrow").write_bytes(bytes(data))
    with pytest.raises(SnapshotError):
        read_asset_snapshot(tmp_path / "c.arrow")


def test_inspect_reads_an_asset_liability_snapshot(tmp_path: Path) -> None:
    # Stopped after the margin call (tick 5): price 6.49, account 1 called at 129.8%.
    serve(_config(tmp_path, "inspect", max_ticks=5), log=lambda _: None)
    path = tmp_path / "inspect/snap/tick-000000000005.arrow"
    lines = summarize(path, Profile.shipped("securities-margin"))
    text = "\n".join(lines)
    assert lines[1] == "model        asset-liability"
    assert "tick         5 (event time 1004 ms)" in lines
    assert "  SH600000   6.49 (seq 5); held 2000, owed 0, interest 0" in lines
    assert "  CNY        1.00; held 1000.00, owed 10000.00, interest 0.00"  # the fund's in lines
    assert f"fund         {FUND}: 1000.00" in lines
    assert "margin calls 1 accounts" in lines
    assert "lowest ratio 1.2980 (1 customers owe)" in lines
    assert "status       ok 0, margin_call 1, liquidate 0, bankrupt 0" in text
    # Through the command, with the default profile: no status tally, the rest the same.
    code = main(["inspect", str(path)])
    assert code == 0
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    (tmp_path / "bad.arrow").write_bytes(bytes(data))
    with pytest.raises(Rejected) as refused:
        summarize(tmp_path / "bad.arrow")
    assert refused.value.reason == "invalid_snapshot"
