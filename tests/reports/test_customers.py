"""House accounts are never customers: counts and status tallies leave them out, and the
fund is reported apart. The book of tests.stress.examples (1: long 1 BTC at 100000 with
10000 USDT, 2: the same with 12000, 3: short 2 BTC with 1000000) marked at 90400: 1 has
equity 400 <= its maintenance margin 0.005 x 90400 = 452 (liquidate), 2 has 2400 (ok)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from engine.book.book import Book
from engine.book.limits import RESERVED_ACCOUNT_BASE
from engine.io.snapshot import write_snapshot
from engine.reports.customers import fund_state, status_tally
from engine.reports.risk_report import write_risk_report
from engine.service.snapshot_summary import summarize
from engine.stress.scenario import scenario_from_dict
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile
from tests.stress.examples import BTC, USDT, example_book, example_doc

DATA = Path(__file__).parents[2] / "engine" / "data"


def _book(profile: Profile) -> Book:
    # The fund takes account 1's long at 90400 with 0 in it: equity 0 <= MM 452, so the
    # fund itself is at `liquidate`; a house account from 2^62 up holds 5 USDT.
    book = example_book(scenario_from_dict(example_doc(), None))
    book.set_mark("BTCUSDT", 90_400_00)
    open_fund(book, profile, 0)
    book.apply_fill(profile.fund_account_id, "BTCUSDT", BTC, 90_400_00)
    book.apply_fill(3, "BTCUSDT", -BTC, 90_400_00)
    book.deposit(RESERVED_ACCOUNT_BASE + 7, 5 * USDT)
    return book


def test_tally_leaves_the_house_out_and_reports_the_fund_apart() -> None:
    # A fund below 2^62 (a profile may name one) is house all the same.
    profile = replace(Profile.shipped(), fund_account_id=9)
    book = _book(profile)
    status = book.sweep(with_initial_margin=False).status
    tally = status_tally(book, status, profile)
    assert tally.customers == 3 and tally.house == 2
    assert tally.by_status == {"ok": 2, "margin_call": 0, "liquidate": 1, "bankrupt": 0}
    fund = fund_state(book, status, profile)
    assert fund is not None and fund.account_id == 9 and fund.status == "liquidate"
    assert fund.equity == 0 and fund.maintenance_margin == 452 * USDT and fund.positions == 1


def test_inspect_counts_customers_and_shows_the_fund(tmp_path: Path) -> None:
    profile = Profile.shipped()
    book = _book(profile)
    lines = summarize(write_snapshot(book, tmp_path / "book.arrow"), profile)
    assert any(line.startswith("accounts     5 (3 customers)") for line in lines)
    assert "status       ok 2, margin_call 0, liquidate 1, bankrupt 0 (customers)" in lines
    fund = [line for line in lines if line.startswith("fund         ")]
    assert fund == [
        f"fund         {RESERVED_ACCOUNT_BASE}: liquidate, balance 0.00000000, equity"
        " 0.00000000, maintenance margin 452.00000000, positions 1"
    ]


def test_risk_report_counts_customers(tmp_path: Path) -> None:
    report = write_risk_report(
        DATA / "instruments.json",
        DATA / "sample_accounts.csv",
        DATA / "sample_positions.csv",
        DATA / "sample_marks.csv",
        tmp_path,
        warning_rate=Profile.shipped().warning_rate,
    )
    assert report.customers.customers == report.book.n_accounts > 0
    assert sum(report.customers.by_status.values()) == report.customers.customers
    assert report.customers.house == 0
