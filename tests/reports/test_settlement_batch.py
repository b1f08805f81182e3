"""engine.reports.settlement_batch: the phases it reports, its outputs, and a refusal that writes
nothing (the worked example of tests/settlement/example.py as files)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.book.errors import Rejected
from engine.reports.settlement_batch import PHASES, SettlementJob, run_settlement_batch
from tests.settlement.example import write_example_files


def _job(d: Path, out: Path, **changes: object) -> SettlementJob:
    fields: dict[str, object] = {
        "date": "2025-10-11",
        "prices": d / "prices.csv",
        "out": out,
        "instruments": d / "instruments.json",
        "accounts": d / "accounts.csv",
        "positions": d / "positions.csv",
        "funding": d / "funding.csv",
        "fees": d / "fees.csv",
    }
    return SettlementJob(**{**fields, **changes})  # type: ignore[arg-type]


def test_phases_in_order_and_the_outputs(tmp_path: Path) -> None:
    d = write_example_files(tmp_path / "in")
    seen: list[str] = []
    sizes: list[int] = []

    @contextmanager
    def progress(positions: int) -> Iterator[Callable[[str], None]]:
        sizes.append(positions)
        yield seen.append

    outcome = run_settlement_batch(_job(d, tmp_path / "out"), progress)
    assert tuple(seen) == PHASES and sizes == [6]
    assert sorted(p.name for p in outcome.paths) == [
        "largest_losers.png",
        "ledger.parquet",
        "margin_ratio.png",
        "pnl_funding_by_instrument.png",
        "report.md",
        "statements.parquet",
        "summary.json",
    ]
    assert all(p.is_file() for p in outcome.paths) and outcome.snapshot.is_file()
    assert outcome.result.date == "2025-10-11" and all(outcome.result.checks.values())


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"date": "2025-02-30"}, "invalid_date"),
        ({"profile": "no-such-profile"}, "invalid_profile"),
        ({"accounts": None}, "invalid_arguments"),
        ({"snapshot": Path("book.arrow")}, "invalid_arguments"),
    ],
)
def test_refused_before_anything_is_written(
    tmp_path: Path, changes: dict[str, object], reason: str
) -> None:
    d = write_example_files(tmp_path / "in")
    with pytest.raises(Rejected) as excinfo:
        run_settlement_batch(_job(d, tmp_path / "out", **changes))
    assert excinfo.value.reason == reason
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_book_from_files_is_settled_once_per_date(tmp_path: Path) -> None:
    d = write_example_files(tmp_path / "in")
    runs = tmp_path / "runs"
    run_settlement_batch(_job(d, runs / "day1"))
    # The same files, the same date, another output directory: refused, nothing written.
    with pytest.raises(Rejected) as caught:
        run_settlement_batch(_job(d, runs / "day1-again"))
    assert caught.value.reason == "already_settled"
    assert sorted(p.name for p in runs.iterdir()) == [".settled-dates.json", "day1"]
    # An earlier date is out of order; forced, both go through.
    with pytest.raises(Rejected) as caught:
        run_settlement_batch(_job(d, runs / "day0", date="2025-10-10"))
    assert caught.value.reason == "date_out_of_order"
    run_settlement_batch(_job(d, runs / "day1-again", force=True))
    run_settlement_batch(_job(d, runs / "day2", date="2025-10-12"))


def test_killed_runs_are_cleaned_and_fee_rows_are_named(tmp_path: Path) -> None:
    d = write_example_files(tmp_path / "in")
    killed = tmp_path / ".out.abc123.partial"
    killed.mkdir()
    (killed / "ledger.parquet").write_bytes(b"half written")
    fees = d / "fees.csv"
    fees.write_text("account_id,fee\n1,1\n99,2\n")
    with pytest.raises(Rejected, match=r"fees.csv: row 2, column 'account_id': account 99"):
        run_settlement_batch(_job(d, tmp_path / "out"))
    fees.write_text("account_id,fee\n1,1\n2,2\n1,3\n")
    with pytest.raises(Rejected, match=r"fees.csv: row 3, column 'account_id'.*repeats row 1"):
        run_settlement_batch(_job(d, tmp_path / "out"))
    fees.write_text("account_id,fee\n1,1\n")
    run_settlement_batch(_job(d, tmp_path / "out"))
    assert not killed.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
