"""`clearing risk` and `clearing liquidate` with the futures exchange inputs, on the shipped
example book (engine/data/futures) and profiles."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

from engine.cli.exit_codes import EXIT_INPUT
from engine.cli.main import main
from engine.waterfall.profile import PROFILES_DIR
from tests.exchange.example import DATA

BOOK = [
    "--instruments",
    str(DATA / "instruments.json"),
    "--accounts",
    str(DATA / "accounts.csv"),
    "--positions",
    str(DATA / "positions.csv"),
    "--marks",
    str(DATA / "marks.csv"),
]


def test_liquidate_with_limits_margin_change_and_classes(tmp_path: Path) -> None:
    code = main(
        [
            "liquidate",
            *BOOK,
            "--profile",
            str(PROFILES_DIR / "cffex-like.toml"),
            "--previous-settlement",
            str(DATA / "previous_settlement.csv"),
            "--margin-change",
            str(DATA / "margin_change.json"),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    calls = pq.read_table(tmp_path / "margin_calls.parquet").to_pylist()
    assert [(c["account_id"], c["reason"], c["call_amount"]) for c in calls] == [
        (2001, "margin_change", Decimal("43000.00"))
    ]
    assert calls[0]["deadline_ms"] == 1_586_822_400_000 + 57_600_000  # cffex-like: 16 h
    limits = pq.read_table(tmp_path / "price_limits.parquet").to_pylist()
    assert [(r["symbol"], r["lower_limit"], r["upper_limit"], r["input_mark"]) for r in limits] == [
        ("CU2012", 64_600, 71_400, 72_000)
    ]
    assert limits[0]["mark"] == 71_400 and limits[0]["locked"] == "up"
    reductions = pq.read_table(tmp_path / "forced_reductions.parquet").to_pylist()
    assert {(r["account_id"], r["role"], r["qty"], r["realized"]) for r in reductions} == {
        (3001, "reducer", -2, -34_000),
        (3003, "counterparty", 1, 22_000),
        (3004, "counterparty", 1, 7_000),
    }
    events = pq.read_table(tmp_path / "events.parquet").to_pylist()
    liquidated = {e["account_id"] for e in events if e["kind"] == "liquidation"}
    assert liquidated == {2003, 3002}  # 2001 is held by its call, 3001 was reduced


def test_risk_reports_the_calls_of_a_margin_change(tmp_path: Path) -> None:
    code = main(
        [
            "risk",
            *BOOK,
            "--profile",
            str(PROFILES_DIR / "cme-like.toml"),
            "--margin-change",
            str(DATA / "margin_change.json"),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    calls = pq.read_table(tmp_path / "margin_calls.parquet").to_pylist()
    assert [(c["account_id"], c["maintenance_margin"]) for c in calls] == [(2001, 130_000)]
    accounts = pq.read_table(tmp_path / "accounts.parquet").to_pylist()
    row = next(a for a in accounts if a["account_id"] == 2001)
    assert row["maintenance_margin"] == 130_000


def test_a_bad_margin_change_file_is_one_error_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "change.json"
    bad.write_text('{"ts": 1, "changes": [{"symbol": "CLZ0", "tiers": []}]}')
    code = main(["risk", *BOOK, "--margin-change", str(bad), "--out", str(tmp_path / "o")])
    assert code == EXIT_INPUT
    assert "changes[0].tiers: expected a list" in capsys.readouterr().err
