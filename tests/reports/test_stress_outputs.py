"""A stress run's files answer the first questions without the source: per account opening
and closing equity and loss (the top losers in one duckdb query), UTC times on every row,
and the run's metadata in every Parquet schema and in summary.json."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from engine.reports.run_info import engine_version, read_run_info
from engine.reports.stress_run import execute
from tests.stress.examples import crash_scenario

TABLES = ("events", "steps", "prices", "accounts")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("stress") / "out"
    scenario = crash_scenario(400)
    summary = execute(
        scenario,
        out,
        console=Console(file=io.StringIO()),
        command=["clearing", "stress", "test"],
    )
    return out, summary


def test_top_losers_are_one_query(run: tuple[Path, dict]) -> None:
    out, summary = run
    accounts = str(out / "accounts.parquet")
    top = duckdb.sql(
        f"SELECT account_id, loss FROM '{accounts}' WHERE NOT house ORDER BY loss DESC LIMIT 10"
    ).fetchall()
    frame = pl.read_parquet(accounts)
    customers = frame.filter(~pl.col("house"))
    assert customers.height == summary["forward"]["accounts"] == 400
    expected = customers.sort(["loss", "account_id"], descending=[True, False]).head(10)
    assert [loss for _, loss in top] == expected["loss"].to_list()
    assert top[0][1] > 0 and isinstance(top[0][1], Decimal)
    # loss and equity change are the two equities' difference, exactly
    assert (frame["opening_equity"] - frame["closing_equity"] == frame["loss"]).all()
    assert (frame["equity_change"] == -frame["loss"]).all()
    # the house: the fund (opening at its deposit) and the unwind account
    house = frame.filter(pl.col("house"))
    assert house.height == 2
    fund = house.sort("opening_equity").row(-1, named=True)
    assert fund["opening_equity"] == Decimal(summary["forward"]["fund_start"])
    assert fund["closing_equity"] == Decimal(summary["forward"]["fund_end"])


def test_liquidations_per_account_agree_with_the_events(run: tuple[Path, dict]) -> None:
    out, summary = run
    events, accounts = str(out / "events.parquet"), str(out / "accounts.parquet")
    mismatched = duckdb.sql(
        f"""
        SELECT a.account_id FROM '{accounts}' a
        LEFT JOIN (
            SELECT account_id, count(*) AS n, min(time) AS first FROM '{events}'
            WHERE kind = 'liquidation' GROUP BY account_id
        ) e USING (account_id)
        WHERE a.liquidations != coalesce(e.n, 0)
           OR a.first_liquidation_time IS DISTINCT FROM e.first
        """
    ).fetchall()
    assert mismatched == []
    liquidated = duckdb.sql(f"SELECT count(*) FROM '{accounts}' WHERE liquidations > 0").fetchall()
    assert liquidated == [(summary["forward"]["accounts_liquidated"],)] != [(0,)]


def test_every_row_has_its_utc_time(run: tuple[Path, dict]) -> None:
    out, summary = run
    start = datetime(2025, 10, 10, 12, tzinfo=UTC)
    assert summary["start_utc"] == "2025-10-10T12:00:00Z"
    assert summary["end_utc"] == "2025-10-11T12:00:00Z"
    for name in ("events", "steps", "prices"):
        table = pq.read_table(out / f"{name}.parquet")
        assert str(table.schema.field("time").type) == "timestamp[us, tz=UTC]", name
        times = table["time"].to_pylist()
        assert times == [start + timedelta(seconds=t) for t in table["t_s"].to_pylist()], name


def test_run_metadata_in_every_schema_and_the_summary(run: tuple[Path, dict]) -> None:
    out, summary = run
    on_disk = json.loads((out / "summary.json").read_text())
    info = on_disk["run"]
    assert info == summary["run"]
    assert info["engine"] == "clearing-engine" and info["engine_version"] == engine_version()
    assert info["profile"] == "binance-like"
    assert info["command"] == ["clearing", "stress", "test"]
    scenario = info["inputs"]["scenario"]
    assert scenario["source"] == "built-in 2025-10-11" and len(scenario["sha256"]) == 64
    assert datetime.fromisoformat(info["created_utc"]).tzinfo is not None
    for name in (*TABLES, "reverse_stress"):
        path = out / f"{name}.parquet"
        if path.exists():
            assert read_run_info(pq.read_schema(path)) == info, name
