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
        ({"insurance_fund": "-1"}, "invalid_amount"),
        ({"insurance_fund": "0.00001"}, "invalid_amount"),  # below the money grid (10^-4)
        ({"insurance_fund": "lots"}, "invalid_amount"),
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


def test_insurance_fund_opens_the_fund_of_a_book_from_files(tmp_path: Path) -> None:
    d = write_example_files(tmp_path / "in")
    outcome = run_settlement_batch(_job(d, tmp_path / "out", insurance_fund="1000.5"))
    waterfall = outcome.result.waterfall
    assert waterfall.fund_equity_before == 10_005_000  # 1000.5 USDT at 10^-4
    assert waterfall.fund_equity_after >= waterfall.fund_equity_before - waterfall.insurance_paid
    assert all(outcome.result.checks.values())
    assert "1,000.50 USDT →" in (tmp_path / "out" / "report.md").read_text()
    # (another parent: the same files and date settle once per parent, .settled-dates.json)
    empty = run_settlement_batch(_job(d, tmp_path / "other" / "empty"))
    assert empty.result.waterfall.fund_equity_before == 0


def test_insurance_fund_is_refused_with_a_snapshot(tmp_path: Path) -> None:
    d = write_example_files(tmp_path / "in")
    first = run_settlement_batch(_job(d, tmp_path / "day1"))
    job = _job(
        d,
        tmp_path / "day2",
        date="2025-10-12",
        snapshot=first.snapshot,
        instruments=None,
        accounts=None,
        positions=None,
        insurance_fund="10",
    )
    with pytest.raises(Rejected) as excinfo:
        run_settlement_batch(job)
    assert excinfo.value.reason == "invalid_arguments" and "snapshot" in str(excinfo.value)


def test_settle_command_takes_insurance_fund(tmp_path: Path) -> None:
    import argparse

    from engine.cli import settle as settle_cli

    d = write_example_files(tmp_path / "in")
    parser = argparse.ArgumentParser()
    settle_cli.add_arguments(parser)
    args = parser.parse_args(
        [
            *("--instruments", str(d / "instruments.json"), "--accounts", str(d / "accounts.csv")),
            *("--positions", str(d / "positions.csv"), "--prices", str(d / "prices.csv")),
            *("--date", "2025-10-11", "--out", str(tmp_path / "out"), "--insurance-fund", "250"),
        ]
    )
    assert settle_cli.run(args).status == 0
    assert "250.00 USDT →" in (tmp_path / "out" / "report.md").read_text()


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


def test_settlement_outputs_carry_the_run_metadata(tmp_path: Path) -> None:
    # Every Parquet file and summary.json say what produced them: engine version, profile,
    # each input file with its sha256 (engine.reports.run_info), as the other commands do.
    import hashlib
    import json

    import pyarrow.parquet as pq

    from engine.reports.run_info import read_run_info

    d = write_example_files(tmp_path / "in")
    run_settlement_batch(_job(d, tmp_path / "out"))
    for name in ("statements.parquet", "ledger.parquet"):
        info = read_run_info(pq.read_schema(tmp_path / "out" / name))
        assert info is not None and info["profile"] == "binance-like"
        prices = info["inputs"]["prices"]
        assert prices["sha256"] == hashlib.sha256((d / "prices.csv").read_bytes()).hexdigest()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["run"]["inputs"].keys() >= {"instruments", "accounts", "positions", "prices"}
