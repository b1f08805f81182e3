"""`clearing risk` and `clearing liquidate` on the risk models' example books (engine/data:
fx/, collateral/, isolated/), their numbers derived in the comments, and the named refusals
of the new inputs."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.cli.main import main

DATA = Path(__file__).resolve().parents[2] / "engine" / "data"
PROFILES = DATA / "profiles"


def _liquidate(tmp_path: Path, folder: str, profile: str, *extra: str) -> Path:
    book = DATA / folder
    instruments = book / "instruments.json"
    if not instruments.exists():
        instruments = DATA / "instruments.json"
    out = tmp_path / "out"
    code = main(
        [
            "liquidate",
            f"--instruments={instruments}",
            f"--accounts={book / 'accounts.csv'}",
            f"--positions={book / 'positions.csv'}",
            f"--marks={book / 'marks.csv'}",
            f"--profile={PROFILES / profile}",
            f"--out={out}",
            *extra,
        ]
    )
    assert code == 0
    return out


def _events(out: Path) -> list[tuple[str, int, str | None, str]]:
    t = pq.read_table(out / "events.parquet").to_pydict()
    amounts = [str(a) for a in t["amount"]]  # decimal128 at the money scale, as text
    return list(zip(t["kind"], t["account_id"], t["symbol"], amounts, strict=True))


def test_fx_example_book_stops_out(tmp_path: Path) -> None:
    # Account 1: 0.25 lots EURUSD at 1.20000, mark 1.16630, equity 57.50, used margin
    # 291.58 (level 19.7% <= 20%): its only position is closed. Account 2 (level 16.3%, see
    # tests/fx/test_stop_out.py) loses its EURUSD long only. Account 3: -100 USD, bankrupt:
    # closed and made whole from the broker's fund (opened at 1,000).
    out = _liquidate(tmp_path, "fx", "fx-broker.toml", "--insurance-fund=1000")
    events = _events(out)
    stopped = [(a, s) for k, a, s, _ in events if k == "liquidation"]
    assert sorted(stopped) == [(1, "EURUSD"), (2, "EURUSD"), (3, "GBPUSD")]
    assert [(k, a, m) for k, a, _, m in events if k == "insurance_payout"] == [
        ("insurance_payout", 3, "100.00")
    ]
    accounts = pq.read_table(out / "accounts.parquet").to_pydict()
    status = dict(zip(accounts["account_id"], accounts["model_status"], strict=True))
    assert status[2] in ("ok", "margin_call") and "margin_level" in accounts


def test_collateral_example_book(tmp_path: Path) -> None:
    # Account 1: no cash, 0.2 BTC at 27,000 (haircut 5%: 5,130), short 10 ETH at 3,000 marked
    # 3,500 (-5,000): equity 130 <= MM 175: the collateral is sold for 5,130, the position
    # taken over, fee min(175, 130) = 130. Account 2: 1,000 cash + 0.1 BTC (2,565) + 2,000
    # USDC (2,000) - 2,500 = 3,065 > MM 87.5: safe.
    data = DATA / "collateral"
    out = _liquidate(
        tmp_path,
        "collateral",
        "multi-assets.toml",
        f"--collateral={data / 'collateral.csv'}",
        f"--collateral-prices={data / 'collateral_prices.csv'}",
    )
    events = _events(out)
    assert ("collateral_sale", 1, None, "5130.00000000") in events
    assert ("liquidation_fee", 1, None, "130.00000000") in events
    accounts = pq.read_table(out / "accounts.parquet").to_pydict()
    value = dict(zip(accounts["account_id"], accounts["collateral_value"], strict=True))
    assert str(value[1]) == "0E-8" and str(value[2]) == "4565.00000000"


def test_isolated_example_book(tmp_path: Path) -> None:
    # Both owners hold an isolated 3x long 0.6 BTC at 50,000 with 10,000 margin; mark 33,400:
    # equity 10,000 - 0.6 x 16,600 = 40 <= MM 20,040 x 0.4% = 80.16. Owner 1 has 5,000 free:
    # it tops up 5,000 (want: IM 6,680 - 40 = 6,640) and is safe. Owner 2 has 5 free, less
    # than 40.16 + 1 unit: its isolated position is liquidated, its 5 USDT untouched.
    out = _liquidate(tmp_path, "isolated", "isolated-auto-add.toml", "--insurance-fund=1000")
    events = _events(out)
    base = 2**61
    assert [(k, a, m) for k, a, _, m in events if k == "margin_top_up"] == [
        ("margin_top_up", base, "5000.00000000")
    ]
    assert [(a, s) for k, a, s, _ in events if k == "liquidation"] == [(base + 1, "BTCUSDT")]
    accounts = pq.read_table(out / "accounts.parquet").to_pydict()
    owner = dict(zip(accounts["account_id"], accounts["isolated_owner"], strict=True))
    balance = dict(zip(accounts["account_id"], accounts["balance"], strict=True))
    assert owner[base] == 1 and owner[base + 1] == 2 and owner[1] is None
    assert str(balance[2]) == "5.00000000" and balance[1] == 0


def test_fx_risk_report_has_the_margin_level(tmp_path: Path) -> None:
    book = DATA / "fx"
    out = tmp_path / "risk"
    code = main(
        [
            "risk",
            f"--instruments={book / 'instruments.json'}",
            f"--accounts={book / 'accounts.csv'}",
            f"--positions={book / 'positions.csv'}",
            f"--marks={book / 'marks.csv'}",
            f"--profile={PROFILES / 'fx-broker.toml'}",
            f"--out={out}",
        ]
    )
    assert code == 0
    accounts = pq.read_table(out / "accounts.parquet").to_pydict()
    status = dict(zip(accounts["account_id"], accounts["model_status"], strict=True))
    assert status == {1: "liquidate", 2: "liquidate", 3: "bankrupt", 9: "ok"}


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ("account_id,asset,qty\n1,DOGE,1\n", "not a collateral asset"),
        ("account_id,asset,qty\n1,BTC,0\n", "must be positive"),
        ("account_id,asset,qty\n7,BTC,1\n", "not in the accounts file"),
        ("account_id,asset,qty\n1,BTC,0.000000001\n", "qty"),
        ("account_id,asset,qty\n1,BTC,1\n1,BTC,2\n", "repeats row 1"),
    ],
)
def test_bad_collateral_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str, reason: str
) -> None:
    data = DATA / "collateral"
    holdings = tmp_path / "collateral.csv"
    holdings.write_text(rows)
    code = main(
        [
            "liquidate",
            f"--instruments={DATA / 'instruments.json'}",
            f"--accounts={data / 'accounts.csv'}",
            f"--positions={data / 'positions.csv'}",
            f"--marks={data / 'marks.csv'}",
            f"--profile={PROFILES / 'multi-assets.toml'}",
            f"--collateral={holdings}",
            f"--collateral-prices={data / 'collateral_prices.csv'}",
            f"--out={tmp_path / 'out'}",
        ]
    )
    assert code != 0
    assert reason in capsys.readouterr().err


def test_isolated_positions_need_the_profile_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = DATA / "isolated"
    code = main(
        [
            "liquidate",
            f"--instruments={DATA / 'instruments.json'}",
            f"--accounts={data / 'accounts.csv'}",
            f"--positions={data / 'positions.csv'}",
            f"--marks={data / 'marks.csv'}",
            f"--out={tmp_path / 'out'}",
        ]
    )
    assert code != 0
    assert "no [isolated] section" in capsys.readouterr().err
