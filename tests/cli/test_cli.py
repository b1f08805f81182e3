"""`clearing risk` end to end on the shipped sample book: files out, readable elsewhere."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

import engine
from engine.cli.exit_codes import EXIT_INPUT
from engine.cli.main import main

DATA = Path(engine.__file__).parent / "data"
MONEY = ["balance", "equity", "maintenance_margin", "initial_margin"]
ACCOUNT_COLUMNS = ["account_id", *MONEY, "margin_ratio", "status"]
POSITION_COLUMNS = [
    "account_id",
    "symbol",
    "qty",
    "qty_lots",
    "entry_price",
    "mark_price",
    "notional",
    "unrealized_pnl",
    "maintenance_margin",
    "initial_margin",
    "liquidation_price",
    "bankruptcy_price",
    "leverage",
]


def risk_args(out: Path, **files: Path) -> list[str]:
    paths = {
        "instruments": DATA / "instruments.json",
        "accounts": DATA / "sample_accounts.csv",
        "positions": DATA / "sample_positions.csv",
        "marks": DATA / "sample_marks.csv",
    } | files
    args = ["risk"]
    for name, path in paths.items():
        args += [f"--{name}", str(path)]
    return [*args, "--out", str(out)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("risk")
    assert main(risk_args(out)) == 0
    return out


def test_writes_both_files_with_the_documented_columns(report: Path) -> None:
    accounts = pl.read_parquet(report / "accounts.parquet")
    positions = pl.read_parquet(report / "positions.parquet")
    assert accounts.columns == ACCOUNT_COLUMNS
    assert positions.columns == POSITION_COLUMNS
    assert accounts.height == 20
    assert positions.height == 23
    assert accounts.schema["equity"] == pl.Decimal(19, 8)
    assert accounts.schema["status"] == pl.String
    assert positions.schema["symbol"] == pl.String
    # Prices at the largest tick scale among the instruments (0.00001), sizes at the lots'.
    assert positions.schema["mark_price"] == pl.Decimal(19, 5)
    assert positions.schema["qty"] == pl.Decimal(19, 3)
    assert positions.schema["qty_lots"] == pl.Int64
    assert positions.schema["leverage"] == pl.Int32


def test_hand_computed_margin_call(report: Path) -> None:
    # Account 1003: balance 1000 USDT, long 1 BTC entered at 60700, mark 60000, leverage 20.
    #   U   = 1 x (60000 - 60700)                       = -700
    #   E   = 1000 - 700                                = 300
    #   N   = 1 x 60000 = 60000: tier 2 (50000 < N <= 250000), mmr 0.5%,
    #         cum = 50000 x (0.005 - 0.004)             = 50
    #   MM  = 60000 x 0.005 - 50                        = 250
    #   IM  = 60000 / 20                                = 3000
    #   MR  = 250 / 300 = 0.8333 >= 0.8 and E > MM      -> margin_call
    #   LP  : 1000 + (m - 60700) = 0.005 m - 50  ->  m = 59650 / 0.995 = 59949.748...,
    #         up to the 0.1 tick (a long's safe side)   = 59949.8
    #   BP  : 1000 + (m - 60700) = 0                    = 59700.0
    accounts = pl.read_parquet(report / "accounts.parquet")
    row = accounts.filter(pl.col("account_id") == 1003).row(0, named=True)
    assert str(row["balance"]) == "1000.00000000"
    assert str(row["equity"]) == "300.00000000"
    assert str(row["maintenance_margin"]) == "250.00000000"
    assert str(row["initial_margin"]) == "3000.00000000"
    assert row["margin_ratio"] == pytest.approx(250 / 300)
    assert row["status"] == "margin_call"
    positions = pl.read_parquet(report / "positions.parquet")
    pos = positions.filter(pl.col("account_id") == 1003).row(0, named=True)
    assert pos["symbol"] == "BTCUSDT"
    assert str(pos["qty"]) == "1.000" and pos["qty_lots"] == 1000
    assert pos["entry_price"] == Decimal("60700.0")
    assert str(pos["mark_price"]) == "60000.00000"
    assert str(pos["notional"]) == "60000.00000000"
    assert str(pos["unrealized_pnl"]) == "-700.00000000"
    assert str(pos["liquidation_price"]) == "59949.80000"
    assert str(pos["bankruptcy_price"]) == "59700.00000"
    assert pos["leverage"] == 20


def test_duckdb_reads_the_report(report: Path) -> None:
    accounts = str(report / "accounts.parquet")
    positions = str(report / "positions.parquet")
    by_status = dict(
        duckdb.sql(f"SELECT status, count(*) FROM '{accounts}' GROUP BY status").fetchall()
    )
    assert by_status == {"ok": 13, "margin_call": 2, "liquidate": 3, "bankrupt": 2}
    # Account 1005: short 2 BTC at 58500, balance 2000, mark 60000:
    #   E = 2000 - 2 x (60000 - 58500) = -1000 -> bankrupt
    assert duckdb.sql(
        f"SELECT equity, status FROM '{accounts}' WHERE account_id = 1005"
    ).fetchall() == [(Decimal("-1000.00000000"), "bankrupt")]
    # Accounts without positions have no rows there; empty ones are still reported.
    assert duckdb.sql(
        f"SELECT count(*) FROM '{positions}' WHERE account_id IN (1006, 1007, 1020)"
    ).fetchall() == [(0,)]
    assert duckdb.sql(
        f"SELECT status FROM '{accounts}' WHERE account_id IN (1006, 1007, 1020) ORDER BY 1"
    ).fetchall() == [("bankrupt",), ("ok",), ("ok",)]


def test_warning_level_moves_a_margin_call_to_ok(tmp_path: Path) -> None:
    # Account 1003's ratio is 0.8333: a margin call at 0.8, fine at 0.9.
    assert main([*risk_args(tmp_path), "--warning-level", "0.9"]) == 0
    accounts = pl.read_parquet(tmp_path / "accounts.parquet")
    assert accounts.filter(pl.col("account_id") == 1003)["status"].to_list() == ["ok"]


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_bad_input_exits_3_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (DATA / "sample_positions.csv").read_text().replace("60700", "60700.05")
    bad = tmp_path / "positions.csv"
    bad.write_text(text)
    assert main(risk_args(tmp_path / "out", positions=bad)) == EXIT_INPUT
    line = _error_line(capsys)
    assert "positions.csv: row 3, column 'entry_price'" in line
    assert "60700.05 is not a multiple of the BTCUSDT tick size 0.1" in line
    assert not (tmp_path / "out").exists()


def test_missing_file_and_bad_instruments_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(risk_args(tmp_path, marks=tmp_path / "none.csv")) == EXIT_INPUT
    assert "none.csv: no such file" in _error_line(capsys)
    instruments = tmp_path / "instruments.json"
    instruments.write_text('{"instruments": [{"symbol": "X"}]}')
    assert main(risk_args(tmp_path, instruments=instruments)) == EXIT_INPUT
    assert "tick_size: missing" in _error_line(capsys)
    assert main([*risk_args(tmp_path), "--warning-level", "1.5"]) == EXIT_INPUT
    assert "--warning-level" in _error_line(capsys)


def test_console_entry_point(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", *risk_args(tmp_path, marks=tmp_path / "x.csv")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == EXIT_INPUT
    assert result.stderr.startswith("error: ") and "x.csv: no such file" in result.stderr
