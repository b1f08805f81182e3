"""`clearing settle` end to end on the worked example of tests/settlement/example.py: the
outputs open in polars and duckdb, the charts are real PNGs, a refused run writes nothing,
and a date is settled once unless forced."""

from __future__ import annotations

import argparse
import io
import json
import struct
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from engine.book.errors import Rejected
from engine.cli.settle import add_arguments, progress_bar, run
from engine.io.snapshot import read_snapshot
from engine.reports.settlement_batch import PHASES
from tests.settlement.example import PRICES, write_example_files

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _inputs(tmp_path: Path, prices: str = PRICES) -> Path:
    return write_example_files(tmp_path / "in", prices)


def _settle(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args([str(a) for a in argv])).status


def _from_files(d: Path, out: Path, date: str = "2025-10-11", *extra: str) -> int:
    return _settle(
        "--instruments", d / "instruments.json",
        "--accounts", d / "accounts.csv",
        "--positions", d / "positions.csv",
        "--prices", d / "prices.csv",
        "--funding", d / "funding.csv",
        "--fees", d / "fees.csv",
        "--date", date,
        "--out", out,
        *extra,
    )  # fmt: skip


def _from_snapshot(snapshot: Path, d: Path, out: Path, date: str, *extra: str) -> int:
    return _settle(
        "--snapshot", snapshot, "--prices", d / "prices.csv", "--date", date, "--out", out, *extra
    )


def test_outputs_open_in_polars_and_duckdb(tmp_path: Path) -> None:
    d = _inputs(tmp_path)
    out = tmp_path / "out"
    assert _from_files(d, out) == 0
    statements = pl.read_parquet(out / "statements.parquet")
    assert statements.height == 4  # three traders and the insurance fund
    assert statements.schema["closing_balance"] == pl.Decimal(19, 4)
    # The worked example's closing balances (tests/settlement/test_run.py), in USDT.
    closing = dict(zip(statements["account_id"], statements["closing_balance"], strict=True))
    assert closing[1] == Decimal("9475.1859") and closing[2] == Decimal("5337.9810")
    assert closing[3] == Decimal("0")
    identity = statements.select(
        (
            pl.col("opening_balance")
            + pl.col("realized_pnl")
            + pl.col("funding")
            - pl.col("fees")
            - pl.col("liquidation_losses")
            - pl.col("closing_balance")
        )
        .abs()
        .max()
    ).item()
    assert identity == 0

    con = duckdb.connect()
    ledger = str(out / "ledger.parquet")
    # Funding passes through the pool (-4): what it received less what it paid is 0.0001.
    pool = con.execute(
        f"select sum(case when credit = -4 then amount else -amount end) from '{ledger}'"
        " where reason = 'funding'"
    ).fetchone()
    assert pool is not None and pool[0] == Decimal("0.0001")
    by_symbol = dict(
        con.execute(
            f"select symbol, count(*) from '{ledger}' where symbol is not null group by symbol"
        ).fetchall()
    )
    assert by_symbol == {"BTC-PERP": 3, "ETH-0926": 3}  # one posting per position
    total = con.execute(
        f"select sum(closing_balance) from '{out / 'statements.parquet'}'"
    ).fetchone()
    # 15250 USDT deposited; 11.8456 went to fees, 0.0001 to the pool and 400 to CLEARING
    # (account 3's realized BTC loss, which stands against the open cost basis).
    assert total is not None and total[0] == Decimal("15250") - Decimal("11.8457") - 400

    summary = json.loads((out / "summary.json").read_text())
    assert summary["date"] == "2025-10-11" and summary["settled_dates"] == ["2025-10-11"]
    assert summary["conservation"]["after"]["ok"] and summary["conservation"]["statements_add_up"]
    btc = next(i for i in summary["instruments"] if i["symbol"] == "BTC-PERP")
    assert btc["funding_paid"] == "12.4685" and btc["funding_to_pool"] == "0.0001"
    assert btc["settlement_price"] == "101000.0"
    book, extra = read_snapshot(out / "snapshot.arrow")
    assert extra["settled_dates"] == ["2025-10-11"]
    assert book.position(1, "ETH-0926") == (-500, -500 * 310_000)
    assert not list(tmp_path.glob(".out.*"))  # no temporary directory left behind


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data[-8:-4] == b"IEND"
    return width, height


def test_report_and_charts_render(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _from_files(_inputs(tmp_path), out) == 0
    report = (out / "report.md").read_text()
    for chart in ("margin_ratio.png", "pnl_funding_by_instrument.png", "largest_losers.png"):
        width, height = _png_size(out / chart)
        assert width >= 600 and height >= 300
        assert (out / chart).stat().st_size > 5_000
        assert f"]({chart})" in report
    assert "USDT" in report and "| account 2 |" in report
    assert "Conservation and netting checks | all passed" in report


def test_missing_price_writes_nothing(tmp_path: Path) -> None:
    d = _inputs(tmp_path, prices="symbol,settlement_price\nBTC-PERP,101000\n")
    out = tmp_path / "out"
    with pytest.raises(Rejected, match="no settlement price for ETH-0926"):
        _from_files(d, out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_date_is_settled_once_unless_forced(tmp_path: Path) -> None:
    d = _inputs(tmp_path)
    first = tmp_path / "day1"
    assert _from_files(d, first) == 0
    snapshot = first / "snapshot.arrow"
    again = tmp_path / "again"
    with pytest.raises(Rejected, match="2025-10-11 is already settled"):
        _from_snapshot(snapshot, d, again, "2025-10-11")
    assert not again.exists()
    with pytest.raises(Rejected, match="before the last settled date"):
        _from_snapshot(snapshot, d, again, "2025-10-10")
    # The same output directory twice: refused, and left as it was.
    before = (first / "summary.json").read_text()
    with pytest.raises(Rejected, match="already holds the settlement of 2025-10-11"):
        _from_files(d, first)
    assert (first / "summary.json").read_text() == before
    assert _from_files(d, first, "2025-10-11", "--force") == 0
    assert _from_snapshot(snapshot, d, again, "2025-10-11", "--force") == 0
    assert json.loads((again / "summary.json").read_text())["settled_dates"] == ["2025-10-11"]
    day2 = tmp_path / "day2"
    assert _from_snapshot(first / "snapshot.arrow", d, day2, "2025-10-12") == 0
    summary = json.loads((day2 / "summary.json").read_text())
    assert summary["settled_dates"] == ["2025-10-11", "2025-10-12"]
    # No funding file on day 2, and the dated future was reset to 3100.00 on day 1.
    assert summary["totals"]["funding_paid"] == "0.0000"
    assert summary["totals"]["variation_margin_gains"] == "0.0000"


def test_corrupt_snapshot_refused(tmp_path: Path) -> None:
    d = _inputs(tmp_path)
    assert _from_files(d, tmp_path / "day1") == 0
    snapshot = tmp_path / "day1" / "snapshot.arrow"
    snapshot.write_bytes(snapshot.read_bytes()[:-100])  # a torn write
    with pytest.raises(Rejected, match="not a readable Arrow IPC file"):
        _from_snapshot(snapshot, d, tmp_path / "day2", "2025-10-12")
    assert not (tmp_path / "day2").exists()


def test_output_directory_with_other_files_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(Rejected, match="holds no settlement"):
        _from_files(_inputs(tmp_path), out, "2025-10-11", "--force")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_parquet_prices_and_a_computed_funding_rate(tmp_path: Path) -> None:
    d = _inputs(tmp_path)
    pq.write_table(
        pa.table({"symbol": ["BTC-PERP", "ETH-0926"], "settlement_price": [101000.0, 3100.0]}),
        d / "prices.parquet",
    )
    (d / "funding.csv").write_text("symbol,index_price\nBTC-PERP,100900\n")
    out = tmp_path / "out"
    assert (
        _settle(
            "--instruments",
            d / "instruments.json",
            "--accounts",
            d / "accounts.csv",
            "--positions",
            d / "positions.csv",
            "--prices",
            d / "prices.parquet",
            "--funding",
            d / "funding.csv",
            "--date",
            "2025-10-11",
            "--out",
            out,
        )  # fmt: skip
        == 0
    )
    btc = json.loads((out / "summary.json").read_text())["instruments"][0]
    # premium (101000.0 - 100900.0) / 100900.0 -> 0.00099108; + clamp(-0.00089108, +-0.0005)
    assert btc["funding_rate"] == "0.00049108" and btc["funding_rate_source"] == "computed"


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("fees.csv", "account_id,fee\n1,abc\n", "row 1, column 'fee'"),
        ("fees.csv", "account_id,fee\n1,0.00001\n", "row 1, column 'fee'"),
        ("prices.csv", "symbol,settlement_price\nBTC-PERP,101000.05\n", "row 1"),
        ("prices.csv", "symbol,settlement_price\nDOGE,1\n", "unknown symbol 'DOGE'"),
        ("funding.csv", "symbol,funding_rate\nBTC-PERP,\n", "needs a funding_rate or an index"),
    ],
)
def test_bad_input_rows_are_named(tmp_path: Path, name: str, text: str, match: str) -> None:
    d = _inputs(tmp_path)
    (d / name).write_text(text)
    with pytest.raises(Rejected, match=match):
        _from_files(d, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_progress_bar_walks_the_phases() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100)
    with progress_bar(True, console) as phase:
        for name in PHASES:
            phase(name)
    with progress_bar(False, console) as phase:
        phase("validating")  # disabled: does nothing
    assert "settle:" in stream.getvalue()
