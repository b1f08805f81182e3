"""`clearing liquidate` on a hand-computed book: files out, numbers derived in the comments.

The book (BTCUSDT, tick 0.01, lot 0.001 BTC, one tier at mmr 0.005, money at 8 decimals):
  1: 10000 USDT, long 2.5 BTC at 100000;  11, 12, 13: 20000, 5000, 2000 USDT, short 1, 1
  and 0.5 BTC at 100000; mark 90000; insurance fund 8750 USDT; open interest nets to zero.
At 90000 a lot (0.001 BTC) is worth 90 USDT and each short earns 10 USDT a lot:
  1 is at 10000 - 2500 * 10 = -15000 USDT: bankrupt, no fee (nothing left), the fund takes
  its 2.5 BTC at the mark and pays the 15000 deficit: 8750 - 15000 = -6250 USDT.
  ADL (binance-like: pnl_leverage) for 6250 USDT: every short is at +10%; leverage 13:
  45000 / 7000 = 6.43, 12: 90000 / 15000 = 6, 11: 90000 / 30000 = 3. 13 gives its whole
  profit, 5000 USDT on 500 lots; 12 the 1250 left, on ceil(1250 / 10) = 125 lots.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.book.book import STATUS_NAMES
from engine.book.errors import Rejected
from engine.book.fixed import FixedPointError
from engine.cli.liquidate import add_arguments, run

INSTRUMENTS = {
    "money_decimals": 8,
    "instruments": [
        {
            "symbol": "BTCUSDT",
            "tick_size": "0.01",
            "lot_size": "0.001",
            "tiers": [{"max_notional": None, "mmr": "0.005", "max_leverage": 125}],
        }
    ],
}
ACCOUNTS = "account_id,balance\n1,10000\n11,20000\n12,5000\n13,2000\n"
POSITIONS = (
    "account_id,symbol,qty,entry_price\n"
    "1,BTCUSDT,2.5,100000\n11,BTCUSDT,-1,100000\n12,BTCUSDT,-1,100000\n13,BTCUSDT,-0.5,100000\n"
)
MARKS = "symbol,mark_price\nBTCUSDT,90000\n"
FUND = 2**62
USDT = 10**8


def _text(value: Decimal | None) -> str | None:
    """A decimal column's value as its exact text at the column's scale."""
    return None if value is None else format(value, "f")


def _inputs(tmp_path: Path, accounts: str = ACCOUNTS) -> dict[str, Path]:
    files = {
        "instruments": ("instruments.json", json.dumps(INSTRUMENTS)),
        "accounts": ("accounts.csv", accounts),
        "positions": ("positions.csv", POSITIONS),
        "marks": ("marks.csv", MARKS),
    }
    paths = {}
    for name, (file, text) in files.items():
        paths[name] = tmp_path / file
        paths[name].write_text(text)
    return paths


def _args(tmp_path: Path, *extra: str, accounts: str = ACCOUNTS) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = [f"--{name}={path}" for name, path in _inputs(tmp_path, accounts).items()]
    return parser.parse_args([*argv, f"--out={tmp_path / 'out'}", *extra])


@pytest.fixture(scope="module")
def liquidated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("liquidate")
    capture = tmp / "stderr.txt"
    with capture.open("w") as err, contextlib.redirect_stderr(err):
        assert run(_args(tmp, "--insurance-fund=8750")).status == 0
    return tmp / "out", capture.read_text()


def test_events_one_row_per_action(liquidated: tuple[Path, str]) -> None:
    out, _ = liquidated
    events = pq.read_table(out / "events.parquet").to_pylist()
    rows = [
        (
            e["kind"],
            e["account_id"],
            e["symbol"],
            _text(e["qty"]),
            _text(e["price"]),
            _text(e["amount"]),
        )
        for e in events
    ]
    assert rows == [
        ("liquidation", 1, "BTCUSDT", "2.500", "90000.00", "0.00000000"),
        ("insurance_payout", 1, None, None, None, "15000.00000000"),
        ("adl", 13, "BTCUSDT", "-0.500", "96000.00", "3000.00000000"),
        ("adl", 12, "BTCUSDT", "-0.542", "95996.30", "3250.00000000"),
    ]
    # ADL at the bankruptcy price: 1's 2500 lots carry its 15000 USDT deficit, 6 USDT a
    # lot (0.001 BTC), i.e. 96000. 13's 500 lots pay 3000; 12 covers the 3250 left with
    # ceil(3250 / 6) = 542 lots; the event price is the effective one, toward the mark:
    # 90000 + floor(3250 / 0.542 / 0.01) ticks = 90000 + 5996.30.
    # notional = |qty| x price: 2.5 x 90000 = 225000, 0.5 x 96000 = 48000,
    # 0.542 x 95996.30 = 52029.9946
    assert [_text(e["notional"]) for e in events] == [
        "225000.00000000",
        None,
        "48000.00000000",
        "52029.99460000",
    ]
    assert [e["amount"] for e in events][1] == Decimal(15000)
    # the raw grid units stay beside them: 2.5 BTC is 2500 lots of 0.001, 90000 is 9000000
    # ticks of 0.01; money-only actions have none
    assert [e["qty_lots"] for e in events] == [2500, None, -500, -542]
    assert [e["price_ticks"] for e in events][:2] == [9_000_000, None]
    assert [e["seq"] for e in events] == [0, 1, 2, 3]
    # the liquidation and its payout share an event id; each ADL action has its own
    ids = [e["event_id"] for e in events]
    assert ids[0] == ids[1] and len(set(ids)) == 3


def test_insurance_before_and_after(liquidated: tuple[Path, str]) -> None:
    out, _ = liquidated
    (row,) = pq.read_table(out / "insurance.parquet").to_pylist()
    assert row["fund_account_id"] == FUND and row["accounts_liquidated"] == 1
    assert _text(row["fund_balance_before"]) == _text(row["fund_equity_before"]) == "8750.00000000"
    # 8750 - 15000 + 3000 + 3250 = 0; the fund's 1458 lots are at the mark: equity 0 too
    assert _text(row["fund_balance_after"]) == _text(row["fund_equity_after"]) == "0.00000000"
    assert _text(row["insurance_paid"]) == "15000.00000000"
    assert _text(row["adl_shortfall"]) == _text(row["adl_amount"]) == "6250.00000000"
    assert _text(row["adl_overshoot"]) == _text(row["socialized_amount"]) == "0.00000000"
    # deficit to cover 15000 (the payout) = fund drawdown 8750 + ADL 6250 + 0 + unallocated 0
    assert _text(row["deficit_to_cover"]) == "15000.00000000"
    assert _text(row["fund_drawdown"]) == "8750.00000000"
    assert _text(row["unallocated_loss"]) == _text(row["unwind_loss"]) == "0.00000000"


def test_book_after_the_waterfall(liquidated: tuple[Path, str]) -> None:
    out, _ = liquidated
    positions = {
        (p["account_id"], _text(p["qty"])): p["adl_quantile"]
        for p in pq.read_table(out / "positions.parquet").to_pylist()
    }
    # 12 now: short 0.458 with 5000 + 5420 realized - 3250 + 4580 = 11750 equity on 41220
    # notional (3.5x), 11: 3x -> 12 first in line: 5 lights; 11 rank 1 of 2: 5 - 5 // 2 = 3.
    assert positions == {(11, "-1.000"): 3, (12, "-0.458"): 5, (FUND, "1.458"): 0}
    accounts = {a["account_id"]: a for a in pq.read_table(out / "accounts.parquet").to_pylist()}
    assert _text(accounts[1]["balance"]) == "0.00000000" and accounts[1]["adl_quantile"] == 0
    assert _text(accounts[13]["balance"]) == "4000.00000000"  # 2000 + 5000 realized - 3000
    assert accounts[12]["adl_quantile"] == 5
    ledger = pq.read_table(out / "ledger.parquet")
    amounts = dict(zip(ledger["reason"].to_pylist(), ledger["amount"].to_pylist(), strict=True))
    assert amounts["insurance_payout"] == 15_000 * USDT
    # postings sum to zero per account over the whole ledger: rebuild 13's balance
    debit = np.asarray(ledger["debit"]) == 13
    credit = np.asarray(ledger["credit"]) == 13
    amount = np.asarray(ledger["amount"])
    assert int(amount[credit].sum() - amount[debit].sum()) == 4_000 * USDT


def test_summary_on_stderr(liquidated: tuple[Path, str]) -> None:
    _, stderr = liquidated
    lines = stderr.splitlines()
    assert any(line.startswith("liquidation ") and " 1 actions" in line for line in lines)
    assert any(
        line.startswith("adl ") and "2 actions, amount 6250.00000000" in line for line in lines
    )
    assert any(line.startswith("insurance_payout") for line in lines)
    assert "conservation        ok, open interest nets to zero" in lines


def test_other_profile_file(tmp_path: Path) -> None:
    # pro_rata: 6250 over profits 10000, 10000, 5000: 2500, 2500, 1250 USDT
    profile = tmp_path / "pro-rata.toml"
    profile.write_text('[liquidation]\nfee_rate = "0.005"\n[adl]\npolicy = "pro_rata"\n')
    assert run(_args(tmp_path, "--insurance-fund=8750", f"--profile={profile}")).status == 0
    events = pq.read_table(tmp_path / "out" / "events.parquet").to_pylist()
    adl = [(e["account_id"], _text(e["amount"])) for e in events if e["kind"] == "adl"]
    assert adl == [(11, "2500.00000000"), (12, "2500.00000000"), (13, "1250.00000000")]


def test_no_fund_means_socialized_loss(tmp_path: Path) -> None:
    # without a fund the shortfall is 15000; ADL covers it at the bankruptcy price: all
    # 2500 lots at 6 USDT (13 500 lots, 12 and 11 1000 each), every short closed whole
    assert run(_args(tmp_path)).status == 0
    (row,) = pq.read_table(tmp_path / "out" / "insurance.parquet").to_pylist()
    assert _text(row["adl_shortfall"]) == _text(row["adl_amount"]) == "15000.00000000"


@pytest.mark.parametrize(
    ("extra", "error", "match"),
    [
        (["--insurance-fund=abc"], FixedPointError, "not a decimal"),
        (["--insurance-fund=-1"], FixedPointError, "must not be negative"),
        (["--insurance-fund=0.000000001"], FixedPointError, "not a multiple"),
        (["--warning-level=1.5"], FixedPointError, "at most 1"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, extra: list[str], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        run(_args(tmp_path, *extra))


def test_bad_profile_and_reserved_accounts(tmp_path: Path) -> None:
    profile = tmp_path / "bad.toml"
    profile.write_text('[adl]\npolicy = "lottery"\n')
    with pytest.raises(Rejected, match="adl.policy") as caught:
        run(_args(tmp_path, f"--profile={profile}"))
    assert caught.value.reason == "invalid_profile"
    # the reader refuses ids from 2^62 up; a profile may name a fund id below that, and an
    # input account with that id is refused too
    with pytest.raises(Rejected, match="reserved") as caught:
        run(_args(tmp_path, accounts=ACCOUNTS + f"{2**62 + 5},1\n"))
    profile.write_text("[insurance_fund]\naccount_id = 12\n")
    with pytest.raises(Rejected, match="row 3: account id 12 is the house's") as caught:
        run(_args(tmp_path, f"--profile={profile}"))
    assert caught.value.reason == "reserved_account"


def test_the_fund_is_not_a_customer(liquidated: tuple[Path, str]) -> None:
    # After the tick the fund holds 1.458 BTC at equity 0 <= its maintenance margin
    # (1458 lots x 90 USDT x 0.005 = 656.10 USDT): it is itself at `liquidate`. It is
    # reported apart; the customers are the 4 input accounts, none left in breach.
    out, stderr = liquidated
    (row,) = pq.read_table(out / "insurance.parquet").to_pylist()
    assert row["fund_status"] == "liquidate" and row["fund_positions"] == 1
    assert _text(row["fund_maintenance_margin"]) == "656.10000000"
    assert row["customers"] == 4 and row["customers_liquidate"] == row["customers_bankrupt"] == 0
    assert sum(row[f"customers_{name}"] for name in STATUS_NAMES) == 4
    for table in ("accounts", "positions"):
        rows = pq.read_table(out / f"{table}.parquet").to_pylist()
        assert {r["account_id"] for r in rows if r["house"]} == {FUND}, table
    assert "customers           4: ok 4, margin_call 0, liquidate 0, bankrupt 0" in stderr
    assert f"fund account        {FUND}: liquidate," in stderr
