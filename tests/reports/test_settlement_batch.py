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
        "report.html",
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
