"""`clearing risk` and `clearing liquidate` on the shipped asset-liability example books."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.cli.exit_codes import EXIT_INPUT
from engine.cli.main import main
from engine.waterfall.profile import PROFILES_DIR

EXAMPLE = Path(__file__).resolve().parents[2] / "engine" / "data" / "margin_example"


def args(model: str, out: Path, *extra: str) -> list[str]:
    book = EXAMPLE / model
    profile = {"securities": "securities-margin", "crypto": "crypto-spot-margin"}[model]
    return [
        "--profile",
        str(PROFILES_DIR / f"{profile}.toml"),
        "--assets",
        str(book / "assets.toml"),
        "--balances",
        str(book / "balances.csv"),
        "--liabilities",
        str(book / "liabilities.csv"),
        "--prices",
        str(book / "prices.csv"),
        "--out",
        str(out),
        *extra,
    ]


def rows(path: Path, *columns: str) -> list[tuple]:
    """The columns' values, decimals as their exact text (None stays None)."""
    table = pq.read_table(path)
    values = [
        [v if not isinstance(v, Decimal) else str(v) for v in table[c].to_pylist()] for c in columns
    ]
    return list(zip(*values, strict=True))


def test_securities_risk_report(tmp_path: Path) -> None:
    calls = str(EXAMPLE / "securities" / "calls.csv")
    assert main(["risk", *args("securities", tmp_path, "--calls", calls)]) == 0
    got = rows(tmp_path / "accounts.parquet", "account_id", "status", "maintenance_ratio")
    assert got == [
        # 2,000 x 6.49 = 12,980 / 10,000 = 1.298: called, and the call has stood 3 days > 2
        (1, "liquidate", "1.2980"),
        (2, "ok", None),  # owes nothing
        # 3,000 x 6.49 = 19,470 < 20,000 owed: selling everything cannot repay
        (3, "bankrupt", "0.9735"),
        # (20 + 1,000 x 30) / 28,000 = 30,020 / 28,000 = 1.0721 < 1.1
        (4, "liquidate", "1.0721"),
        # 20,000 / (500 shares x 30 = 15,000) = 1.3333: a short sale (融券) well covered
        (5, "ok", "1.3333"),
    ]


def test_securities_liquidation(tmp_path: Path) -> None:
    calls = str(EXAMPLE / "securities" / "calls.csv")
    out = tmp_path / "liq"
    assert (
        main(["liquidate", *args("securities", out, "--calls", calls, "--insurance-fund", "1000")])
        == 0
    )
    events = rows(out / "events.parquet", "kind", "account_id", "asset", "qty", "amount")
    assert events == [
        # owes 10,000: ceil(10,000 / 6.49) = 1,541 shares -> 1,541 x 6.49 = 10,001.09
        ("liquidation", 1, "SH600000", "-1541", "10001.09"),
        # all 3,000 shares -> 19,470; 20,000 - 19,470 = 530 short: the fund pays it
        ("liquidation", 3, "SH600000", "-3000", "19470.00"),
        ("insurance_payout", 3, None, None, "530.00"),
        # needs 28,000 - 20 = 27,980: ceil(27,980 / 30) = 933 shares -> 27,990
        ("liquidation", 4, "SH600036", "-933", "27990.00"),
    ]
    insurance = pq.read_table(out / "insurance.parquet").to_pylist()[0]
    assert insurance["fund_balance_after"] == Decimal("470.00")  # 1,000 - 530
    assert insurance["deficit_to_cover"] == insurance["fund_drawdown"] == Decimal("530.00")
    balances = rows(out / "balances.parquet", "account_id", "asset", "held", "owed")
    assert (1, "CNY", "1.09", "0.00") in balances  # 10,001.09 - 10,000
    assert (4, "SH600036", "67.00", "0.00") in balances  # 1,000 - 933 (at the column's scale)
    assert pq.read_schema(out / "accounts.parquet").metadata[b"clearing.run"]
    ledger = pq.read_table(out / "ledger.parquet")
    assert set(ledger["reason"].to_pylist()) >= {"forced_sale", "repay", "insurance_payout"}


def test_crypto_liquidation_with_interest(tmp_path: Path) -> None:
    interest = str(EXAMPLE / "crypto" / "interest.csv")
    extra = ("--interest", interest, "--insurance-fund", "100000")
    assert main(["liquidate", *args("crypto", tmp_path, *extra)]) == 0
    events = rows(tmp_path / "events.parquet", "kind", "account_id", "amount")
    # Account 3: 1 BTC at 100,000, owes 95,000 + interest ceil(95,000 x 0.00000417)
    # = 0.39615: debt 95,000.39615; fee 2% = 1,900.007923; sells
    # ceil(96,900.404073 / 100,000 BTC) = 0.96900405 BTC for 96,900.405.
    assert events[0] == ("liquidation", 3, "96900.40500000")
    assert events[1] == ("liquidation_fee", 3, "1900.00792300")
    # Account 6: 0.5 BTC = 50,000 against 60,000 + 0.2502 interest: 10,000.2502 short.
    assert ("insurance_payout", 6, "10000.25020000") in events


def test_the_futures_files_stay_required_for_a_futures_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["risk", "--out", str(tmp_path)]) == EXIT_INPUT
    assert "--instruments" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("balances", "account_id,asset,amount\n1,XYZ,1\n", "unknown asset 'XYZ'"),
        ("balances", "account_id,asset,amount\n1,CNY,0.001\n", "not a multiple of the CNY unit"),
        ("balances", "account_id,asset,amount\n1,CNY,-1\n", "amount must be 0 to 2^62"),
        ("balances", "account_id,asset,amount\n1,CNY,1\n1,CNY,2\n", "repeat row 1"),
        ("liabilities", "account_id,asset,amount\n99,CNY,1\n", "account 99 has no row"),
        ("prices", "asset,price\nSH600036,30\n", "no price for SH600000"),
        ("prices", "asset,price\nSH600000,-1\nSH600036,30\n", "price must be 0 to 2^62"),
        ("prices", "asset,price\nCNY,2\n", "the money asset's price is 1"),
    ],
)
def test_bad_input_is_refused_with_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str, text: str, message: str
) -> None:
    bad = tmp_path / f"{file}.csv"
    bad.write_text(text)
    argv = args("securities", tmp_path / "out")
    argv[argv.index(f"--{file}") + 1] = str(bad)
    assert main(["risk", *argv]) == EXIT_INPUT
    assert message in capsys.readouterr().err
