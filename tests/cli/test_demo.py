"""`clearing demo` and `clearing stress` end to end: no broker, no input files, outputs that
other tools read back (Parquet, the Arrow snapshot, PNG)."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest

from engine.book.errors import Rejected
from engine.cli import demo as demo_cli
from engine.cli import stress as stress_cli
from engine.io.snapshot import read_snapshot
from engine.waterfall.conservation import audit
from engine.waterfall.profile import Profile

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FORWARD_FILES = {
    "events.parquet",
    "steps.parquet",
    "prices.parquet",
    "accounts.parquet",
    "snapshot-final.arrow",
    "price_liquidations.png",
    "insurance_fund.png",
    "liquidation_map.png",
    "summary.json",
    "report.html",
}
REVERSE_FILES = {"reverse_stress.parquet", "reverse_stress.png"}


def _args(module: object, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)  # type: ignore[attr-defined]
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    assert demo_cli.run(_args(demo_cli, ["--accounts", "3000", "--out", str(out)])).status == 0
    return out


@pytest.mark.slow
def test_demo_writes_snapshot_events_and_charts(demo: Path) -> None:
    assert {p.name for p in demo.iterdir()} == FORWARD_FILES | REVERSE_FILES
    for png in demo.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000


@pytest.mark.slow
def test_demo_summary_agrees_with_its_events_and_snapshot(demo: Path) -> None:
    summary = json.loads((demo / "summary.json").read_text())
    forward = summary["forward"]
    assert forward["accounts"] == 3000 and forward["steps"] == 24 * 60 + 1
    events = pl.read_parquet(demo / "events.parquet")
    liquidations = events.filter(pl.col("kind") == "liquidation")
    assert forward["accounts_liquidated"] == liquidations["account_id"].n_unique() > 300
    # The long side dominates the liquidated notional (on 2025-10-11 about 87% was long).
    assert Decimal(forward["liquidated_long"]) > 5 * Decimal(forward["liquidated_short"])
    steps = pl.read_parquet(demo / "steps.parquet")
    assert steps["accounts_liquidated"].sum() == forward["liquidations"]
    fund_end = int(Decimal(forward["fund_end"]).scaleb(8))
    assert steps["fund_equity"][-1] == Decimal(forward["fund_end"])
    book, extra = read_snapshot(demo / "snapshot-final.arrow")
    assert extra["scenario"] == "2025-10-11"
    fund = Profile.shipped().fund_account_id
    assert book.account_margin(fund)[0] == fund_end
    assert book.positions_of(fund) == []
    assert audit(book, closed=True).ok
    prices = pl.read_parquet(demo / "prices.parquet")
    btc = prices.filter(pl.col("symbol") == "BTCUSDT")
    ticks = btc["exogenous_ticks"]
    assert ticks[0] == 1_220_000 and ticks.min() == 1_019_920  # 122000 -> 101992 (-16.4%), 0.1 tick
    assert btc["exogenous"].min() == Decimal("101992")
    reverse = summary["reverse"]
    assert reverse["move"] is not None and Decimal(reverse["move"]) > 0
    assert Decimal(reverse["move"]) - Decimal(reverse["safe_move"]) <= Decimal("0.01")


@pytest.mark.slow
def test_demo_answers_top_losers_in_one_query(demo: Path) -> None:
    import duckdb

    accounts = str(demo / "accounts.parquet")
    top = duckdb.sql(
        f"SELECT account_id, loss, closing_equity FROM '{accounts}' WHERE NOT house"
        " ORDER BY loss DESC, account_id LIMIT 10"
    ).fetchall()
    assert len(top) == 10 and all(loss > 0 for _, loss, _ in top)
    assert [loss for _, loss, _ in top] == sorted((loss for _, loss, _ in top), reverse=True)
    summary = json.loads((demo / "summary.json").read_text())
    assert summary["start_utc"] == "2025-10-10T12:00:00Z"
    assert summary["run"]["inputs"]["scenario"]["source"] == "built-in 2025-10-11"
    customers = duckdb.sql(f"SELECT count(*) FROM '{accounts}' WHERE NOT house").fetchall()
    assert customers == [(summary["forward"]["accounts"],)]


def test_stress_file_scenario_reverse_along_a_direction(tmp_path: Path) -> None:
    scenario = tmp_path / "two.json"
    scenario.write_text(
        json.dumps(
            {
                "name": "two",
                "duration_s": 600,
                "step_s": 300,
                "insurance_fund": "500",
                "impact": {"k": "0.01", "alpha": "0.5", "recovery_half_life_s": 300},
                "book": {"accounts": 300, "seed": 4},
                "instruments": {
                    "instruments": [
                        {
                            "symbol": s,
                            "tick_size": "0.01",
                            "lot_size": "0.001",
                            "tiers": [{"max_notional": None, "mmr": "0.005", "max_leverage": 100}],
                        }
                        for s in ("AAAUSDT", "BBBUSDT")
                    ]
                },
                "markets": [
                    {
                        "symbol": "AAAUSDT",
                        "start": "100",
                        "depth": "200000",
                        "moves": [[600, "-0.1"]],
                    },
                    {
                        "symbol": "BBBUSDT",
                        "start": "20",
                        "depth": "100000",
                        "moves": [[600, "-0.2"]],
                    },
                ],
            }
        )
    )
    out = tmp_path / "out"
    argv = [str(scenario), "--out", str(out), "--reverse", "--direction", "AAAUSDT=-1,BBBUSDT=-2"]
    argv += ["--tolerance", "0.02"]
    assert stress_cli.run(_args(stress_cli, argv)).status == 0
    assert {p.name for p in out.iterdir()} == REVERSE_FILES | {"summary.json", "report.html"}
    summary = json.loads((out / "summary.json").read_text())["reverse"]
    assert summary["direction"] == {"AAAUSDT": "-1", "BBBUSDT": "-2"}
    assert summary["move_max"] == "0.495"  # 99% of the way down on the market falling twice as fast
    points = pl.read_parquet(out / "reverse_stress.parquet")
    assert points["move"].is_sorted()
    assert summary["move"] is not None
    exhausted = points.filter(pl.col("fund_exhausted"))["move"].min()
    assert Decimal(summary["move"]) == exhausted
    forward = tmp_path / "forward"
    assert stress_cli.run(_args(stress_cli, [str(scenario), "--out", str(forward)])).status == 0
    assert {p.name for p in forward.iterdir()} >= FORWARD_FILES


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["no-such-scenario", "--out", "x"], "invalid_scenario"),
        (["2025-10-11", "--out", "x", "--reverse", "--direction", "BTCUSDT"], "invalid_direction"),
        (["2025-10-11", "--out", "x", "--reverse", "--tolerance", "0"], "invalid_tolerance"),
        (["2025-10-11", "--out", "x", "--accounts", "1"], "invalid_accounts"),
    ],
)
def test_bad_input_is_rejected_before_any_work(
    argv: list[str], reason: str, tmp_path: Path
) -> None:
    argv = [a if a != "x" else str(tmp_path / "x") for a in argv]
    with pytest.raises(Rejected) as raised:
        stress_cli.run(_args(stress_cli, argv))
    assert raised.value.reason == reason
    assert not (tmp_path / "x" / "summary.json").exists()


def test_stress_on_a_snapshot_book_starts_from_its_marks(tmp_path: Path) -> None:
    # The book comes from a snapshot (as the service writes them); markets without `start`
    # begin at the snapshot's marks. BTC falls 20% in two 5-minute steps.
    from engine.io.snapshot import write_snapshot
    from engine.stress.synthetic import synthetic_book

    book = synthetic_book(500, 1_000, n_instruments=3, seed=2)
    write_snapshot(book, tmp_path / "book.arrow", {})
    symbols = list(book.instruments.index)
    (tmp_path / "s.toml").write_text(
        f"""
duration_s = 600
step_s = 300
insurance_fund = "100000"
[impact]
k = "0.01"
[book]
snapshot = "book.arrow"
[[markets]]
symbol = "{symbols[0]}"
depth = "1000000"
moves = [[0, "0"], [600, "-0.2"]]
"""
    )
    out = tmp_path / "out"
    assert (
        stress_cli.run(_args(stress_cli, [str(tmp_path / "s.toml"), "--out", str(out)])).status == 0
    )
    prices = pl.read_parquet(out / "prices.parquet")
    assert prices["exogenous_ticks"].to_list() == [
        int(book.mark[0]),
        round(int(book.mark[0]) * Fraction(9, 10)),
        round(int(book.mark[0]) * Fraction(8, 10)),
    ]
    summary = json.loads((out / "summary.json").read_text())["forward"]
    assert summary["accounts"] == 500 and summary["accounts_liquidated"] > 0
    after, _ = read_snapshot(out / "snapshot-final.arrow")
    assert after.n_accounts == 502  # the fund and the unwind counterparty were added
    assert audit(after).ok


def test_stress_summary_counts_customers_and_reports_the_fund_apart(tmp_path: Path) -> None:
    # A snapshot that already holds the house accounts (the fund, the unwind counterparty,
    # as a stress run's final snapshot does): they are not counted as customers, and the
    # fund's own state at the end is a section of its own.
    from engine.io.snapshot import write_snapshot
    from engine.stress.synthetic import synthetic_book
    from engine.waterfall.fund import open_fund
    from engine.waterfall.profile import Profile

    profile = Profile.shipped()
    book = synthetic_book(500, 1_000, n_instruments=3, seed=2)
    open_fund(book, profile, 10**8)
    book.open_account(profile.unwind_account_id)
    write_snapshot(book, tmp_path / "book.arrow", {})
    symbol = list(book.instruments.index)[0]
    (tmp_path / "s.toml").write_text(
        f"""
duration_s = 600
step_s = 300
insurance_fund = "100000"
[book]
snapshot = "book.arrow"
[[markets]]
symbol = "{symbol}"
depth = "1000000"
moves = [[0, "0"], [600, "-0.2"]]
"""
    )
    out = tmp_path / "out"
    assert (
        stress_cli.run(_args(stress_cli, [str(tmp_path / "s.toml"), "--out", str(out)])).status == 0
    )
    summary = json.loads((out / "summary.json").read_text())["forward"]
    assert summary["accounts"] == 500 and summary["customers_end"]["customers"] == 500
    statuses = ("ok", "margin_call", "liquidate", "bankrupt")
    assert sum(summary["customers_end"][s] for s in statuses) == 500
    fund = summary["fund"]
    assert fund["account_id"] == profile.fund_account_id and fund["status"] in statuses
    assert fund["positions"] == 0 and fund["equity"] == summary["fund_end"]
