"""Batch outputs are written whole: `clearing risk` and `liquidate` never leave stale files
beside new ones and never delete a file they did not write; killed runs' `.partial`
directories are cleaned; header-only positions and a zero mark are refused by both."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.reports.liquidation_report import liquidation_tick
from engine.reports.risk_report import write_risk_report
from engine.waterfall.profile import Profile

DATA = Path(__file__).resolve().parents[2] / "engine" / "data"
INSTRUMENTS = DATA / "instruments.json"
RISK_FILES = ["accounts.parquet", "positions.parquet"]
LIQUIDATE_FILES = sorted(["accounts.parquet", "events.parquet", "insurance.parquet",
                          "ledger.parquet", "positions.parquet"])  # fmt: skip


def risk(out: Path, positions: Path = DATA / "sample_positions.csv", marks: Path | None = None):  # type: ignore[no-untyped-def]
    return write_risk_report(
        INSTRUMENTS,
        DATA / "sample_accounts.csv",
        positions,
        marks or DATA / "sample_marks.csv",
        out,
        warning_rate=80_000_000,
    )


def liquidate(
    out: Path, positions: Path = DATA / "sample_positions.csv", marks: Path | None = None
):  # type: ignore[no-untyped-def]
    return liquidation_tick(
        Profile.shipped(),
        InstrumentTable.load(INSTRUMENTS),
        DATA / "sample_accounts.csv",
        positions,
        marks or DATA / "sample_marks.csv",
        out,
        fund_amount=10**12,
        warning_rate=80_000_000,
    )


def names(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir())


def test_outputs_replace_a_previous_run_whole_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "out"
    killed = tmp_path / ".out.k1ll3d.partial"  # what a run killed while writing left
    killed.mkdir()
    (killed / "accounts.parquet").write_bytes(b"half")
    risk(out)
    assert names(out) == RISK_FILES and not killed.exists()
    liquidate(out)  # risk's tables are liquidate's too: replaced, nothing stale
    assert names(out) == LIQUIDATE_FILES
    with pytest.raises(Rejected, match="'events.parquet', which this command does not write"):
        risk(out)  # would leave liquidate's events beside a new risk report
    assert names(out) == LIQUIDATE_FILES
    (out / "notes.txt").write_text("mine")
    with pytest.raises(Rejected) as caught:
        liquidate(out)
    assert caught.value.reason == "invalid_out"
    assert (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("run", [risk, liquidate])
def test_header_only_positions_and_a_zero_mark_are_refused(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    header_only = tmp_path / "positions.csv"
    header_only.write_text("account_id,symbol,qty,entry_price\n")
    with pytest.raises(Rejected, match="no positions") as caught:
        run(tmp_path / "a", positions=header_only)
    assert caught.value.reason == "invalid_input"
    zero = tmp_path / "marks.csv"
    sample = (DATA / "sample_marks.csv").read_text()
    assert sample.startswith("symbol,mark_price\nBTCUSDT,60000.0\n")
    zero.write_text(sample.replace("60000.0", "0", 1))
    with pytest.raises(Rejected, match="row 1, column 'mark_price': mark price must be positive"):
        run(tmp_path / "b", marks=zero)
    wrong_unit = tmp_path / "marks_unit.csv"
    wrong_unit.write_text(sample.replace("60000.0", "0.1", 1))
    with pytest.raises(Rejected) as caught:
        run(tmp_path / "c", marks=wrong_unit)
    assert caught.value.reason == "price_out_of_band"
    assert not any(p.name in "abc" for p in tmp_path.iterdir())
