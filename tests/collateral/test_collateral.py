"""Multi-asset collateral: haircut values, a collateral crash that liquidates, the sale at
takeover, exact references on random books, and the named refusals."""

from __future__ import annotations

import contextlib
import random
from fractions import Fraction
from typing import Any

import pytest

from engine.book.book import STATUS_LIQUIDATE, STATUS_OK, Book
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.book.ledger import Reason
from engine.book.reasons import RejectReason
from engine.waterfall.conservation import audit
from engine.waterfall.models import Models
from engine.waterfall.profile import Profile, ProfileError
from engine.waterfall.run import run_waterfall

USDT = 10**8  # money_decimals 8
SATOSHI = 1  # BTC qty_step 0.00000001
BTC = 10**8 * SATOSHI
CENT = 1  # price_step 0.01


def _table() -> InstrumentTable:
    return InstrumentTable.from_dict(
        {
            "instruments": [
                {
                    "symbol": sym,
                    "tick_size": "0.01",
                    "lot_size": "0.001",
                    "tiers": [{"max_notional": None, "mmr": "0.005", "max_leverage": 100}],
                }
                for sym in ("BTCUSDT", "ETHUSDT")
            ]
        }
    )


def _profile(**extra: Any) -> Profile:
    doc: dict[str, Any] = {
        "liquidation": {"fee_rate": "0.005"},
        "collateral": {
            "assets": [
                {
                    "symbol": "BTC",
                    "qty_step": "0.00000001",
                    "price_step": "0.01",
                    "haircut": "0.05",
                },
                {"symbol": "ETH", "qty_step": "0.00000001", "price_step": "0.01", "haircut": "0.1"},
                {"symbol": "USDC", "qty_step": "0.000001", "price_step": "0.0001", "haircut": "0"},
            ]
        },
    }
    doc.update(extra)
    return Profile.from_dict(doc)


def _book(profile: Profile) -> tuple[Book, Models]:
    book = Book(_table())
    book.open_account(profile.fund_account_id)
    return book, Models.for_profile(book, profile)


def _audit(book: Book, models: Models) -> None:
    assert audit(book).ok
    models.audit()


def test_shipped_multi_assets_profile() -> None:
    profile = Profile.shipped("multi-assets")
    assert profile.collateral is not None
    assert {a.symbol for a in profile.collateral.assets} >= {"BTC", "ETH", "USDC"}
    assert profile.stop_out is None and profile.isolated is None


def test_haircut_value_rounds_down() -> None:
    # 3 satoshi at 33,333.33: 0.00000003 x 33333.33 x 0.95 = 0.000949999905 USDT
    # = 94,999.9905 money units (1e-8) -> 94,999, the house's favour.
    book, models = _book(_profile())
    assert models.collateral is not None
    models.collateral.deposit(1, "BTC", 3 * SATOSHI, event_id=1)
    models.collateral.set_price("BTC", 33_333_33 * CENT)
    assert models.collateral.row_value(book.row_of(1)) == 94_999
    assert book.account_equity(1) == 94_999
    _audit(book, models)


def test_collateral_crash_liquidates_and_is_sold_at_its_haircut_value() -> None:
    # Account 1: no cash, 0.2 BTC collateral (haircut 5%), short 10 ETH at 3,000.
    # ETH at 3,500: uPnL = -10 x 500 = -5,000; BTC at 60,000: 0.2 x 60,000 x 0.95 = 11,400.
    # equity = 11,400 - 5,000 = 6,400 > MM = 35,000 x 0.5% = 175: ok.
    # BTC crashes to 27,000: 0.2 x 27,000 x 0.95 = 5,130; equity = 130 <= 175: liquidate.
    # Takeover: the collateral is sold for 5,130 (EXTERNAL -> account), the short moves to
    # the fund at 3,500 (realized -5,000), fee = min(0.5% x 35,000 = 175, 130) = 130.
    profile = _profile()
    book, models = _book(profile)
    collateral = models.collateral
    assert collateral is not None
    book.deposit(2, 100_000 * USDT)
    collateral.deposit(1, "BTC", BTC // 5, event_id=100)
    collateral.set_price("BTC", 60_000_00)
    book.apply_trade("ETHUSDT", 3_000_00, [(1, -10_000, 0), (2, 10_000, 0)])
    book.set_mark("BTCUSDT", 60_000_00)
    book.set_mark("ETHUSDT", 3_500_00)
    assert book.account_margin(1) == (6_400 * USDT, 175 * USDT)
    risk = book.sweep()
    assert risk.status[book.row_of(1)] == STATUS_OK
    collateral.set_price("BTC", 27_000_00)
    assert book.account_margin(1) == (130 * USDT, 175 * USDT)
    assert book.sweep().status[book.row_of(1)] == STATUS_LIQUIDATE
    _audit(book, models)

    result = run_waterfall(book, profile, models=models)
    assert result.accounts_liquidated == 1
    kinds = [(e.kind, e.account_id, e.amount) for e in result.events]
    assert ("collateral_sale", 1, 5_130 * USDT) in kinds
    assert ("liquidation_fee", 1, 130 * USDT) in kinds
    assert book.balance[book.row_of(1)] == 0 and not book.positions_of(1)
    assert collateral.holdings_of(1) == {}
    sale = [m for m in collateral.moves if m.kind == "sale"]
    assert [(m.account_id, m.qty, m.value) for m in sale] == [(1, BTC // 5, 5_130 * USDT)]
    ledger = book.ledger
    sold = ledger.column("reason") == int(Reason.COLLATERAL_SALE)
    assert ledger.column("amount")[sold].tolist() == [5_130 * USDT]
    _audit(book, models)


def test_rejections_are_named() -> None:
    book, models = _book(_profile())
    collateral = models.collateral
    assert collateral is not None
    cases = [
        (lambda: collateral.deposit(1, "DOGE", 1, 1), RejectReason.UNKNOWN_ASSET),
        (lambda: collateral.deposit(1, "BTC", 0, 1), RejectReason.INVALID_QTY),
        (lambda: collateral.set_price("BTC", -1), RejectReason.INVALID_PRICE),
        (lambda: collateral.set_price("BTC", 2**62), RejectReason.OVERFLOW),
    ]
    collateral.deposit(1, "BTC", BTC, 1)
    cases.append(
        (lambda: collateral.withdraw(1, "BTC", 2 * BTC, 2), RejectReason.INSUFFICIENT_COLLATERAL)
    )
    for action, reason in cases:
        with pytest.raises(Rejected) as info:
            action()
        assert info.value.reason == reason
    # A withdrawal that would leave equity below initial margin.
    collateral.set_price("BTC", 10_000_00)  # 1 BTC x 10,000 x 0.95 = 9,500
    book.deposit(2, 10**6 * USDT)
    book.set_leverage(1, "BTCUSDT", 1)
    book.apply_trade("BTCUSDT", 9_000_00, [(1, 1000, 0), (2, -1000, 0)])  # IM 9,000 at 1x
    book.set_mark("BTCUSDT", 9_000_00)
    with pytest.raises(Rejected) as info:
        collateral.withdraw(1, "BTC", BTC // 10, 3)  # leaves 8,550 < 9,000
    assert info.value.reason == RejectReason.INSUFFICIENT_MARGIN
    assert collateral.holdings_of(1) == {"BTC": BTC}
    _audit(book, models)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"assets": []}, "collateral.assets"),
        ({"assets": [{"symbol": "BTC", "qty_step": "0", "price_step": "1"}]}, "qty_step"),
        (
            {"assets": [{"symbol": "BTC", "qty_step": "1", "price_step": "1", "haircut": "1"}]},
            "haircut",
        ),
        (
            {"assets": [{"symbol": "A", "qty_step": "1", "price_step": "1"}] * 2},
            "listed twice",
        ),
    ],
)
def test_bad_collateral_sections(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        Profile.from_dict({"collateral": section})


# ----- exact reference on random books ---------------------------------------------------
def _reference(book: Book, profile: Profile, models: Models) -> dict[int, tuple[int, int, int]]:
    """(equity, maintenance margin, status) per trader account with Fractions, from the
    definitions: value = floor(q x qty_step x p x price_step / money_step x (1 - h))."""
    assert profile.collateral is not None and models.collateral is not None
    money_step = Fraction(book.instruments.money_step)
    out = {}
    for row, account in enumerate(book.account_id.tolist()):
        equity = int(book.balance[row])
        for a, rule in enumerate(profile.collateral.assets):
            q = models.collateral.qty[a].get(row, 0)
            p = models.collateral.price[a]
            if q and p is not None:
                value = Fraction(q) * Fraction(rule.qty_step) * p * Fraction(rule.price_step)
                value = value / money_step * (1 - Fraction(rule.haircut, 10**8))
                equity += value.numerator // value.denominator
        mm, has = 0, False
        for inst, q, c in book.positions_of(account):
            lot_value = int(book.mark_lot_value[inst])
            equity += q * lot_value - c
            notional = abs(q) * lot_value
            mm += -((-notional * 500_000) // 10**8)  # 0.5%, rounded up
            has = True
        if equity < 0:
            status = 3
        elif has and equity <= mm:
            status = 2
        elif has and mm * 10**8 >= book.warning_rate * equity:
            status = 1
        else:
            status = 0
        out[account] = (equity, mm, status)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_books_match_the_reference_and_conserve(seed: int) -> None:
    rng = random.Random(seed)
    profile = _profile()
    book, models = _book(profile)
    collateral = models.collateral
    assert collateral is not None
    prices = {"BTC": 60_000_00, "ETH": 3_000_00, "USDC": 1_0000}
    for symbol, price in prices.items():
        collateral.set_price(symbol, price)
    book.set_mark("BTCUSDT", 60_000_00)
    book.set_mark("ETHUSDT", 3_000_00)
    book.deposit(999, 10**9 * USDT)  # the other side of every trade
    event = 1000
    for account in range(1, 41):
        if rng.random() < 0.7:
            book.deposit(account, rng.randint(1, 5_000) * USDT)
        for symbol in ("BTC", "ETH", "USDC"):
            if rng.random() < 0.5:
                event += 1
                qty = rng.randint(1, 10**8 if symbol != "USDC" else 10**10)
                collateral.deposit(account, symbol, qty, event)
        if account not in book.account_id.tolist():
            continue
        for symbol, mark in (("BTCUSDT", 60_000_00), ("ETHUSDT", 3_000_00)):
            if rng.random() < 0.6:
                qty = rng.choice([-1, 1]) * rng.randint(1, 300)
                with contextlib.suppress(Rejected):
                    book.apply_trade(symbol, mark, [(account, qty, 0), (999, -qty, 0)])
    for _ in range(8):
        for symbol in prices:
            if symbol != "USDC":
                prices[symbol] = max(1, prices[symbol] * rng.randint(60, 130) // 100)
            collateral.set_price(symbol, prices[symbol])
        for symbol in ("BTCUSDT", "ETHUSDT"):
            mark = int(book.mark[book.instruments.symbol_index(symbol)])
            book.set_mark(symbol, max(1, mark * rng.randint(85, 115) // 100))
        ref = _reference(book, profile, models)
        risk = book.sweep()
        for row, account in enumerate(book.account_id.tolist()):
            got = (int(risk.equity[row]), int(risk.maintenance_margin[row]), int(risk.status[row]))
            assert got == ref[account], (seed, account)
        run_waterfall(book, profile, models=models)
        _audit(book, models)
        # Every breached trader was handled: none is left at liquidate or worse.
        after = book.sweep()
        traders = book.account_id < profile.fund_account_id
        open_rows = {
            book.row_of(a) for a in book.account_id[traders].tolist() if book.positions_of(a)
        }
        assert all(int(after.status[r]) < STATUS_LIQUIDATE for r in open_rows), seed
