"""Isolated positions inside an account, with auto-add margin: the seed's worked example
(10,000 USDT margin, 3x long 0.6 BTC at 50,000, mmr 2%), top-ups as ledger postings,
liquidation only when the free balance is not enough, random books against a reference."""

from __future__ import annotations

import random
from typing import Any

import pytest

from engine.book.book import STATUS_LIQUIDATE, Book
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.book.ledger import Reason
from engine.book.reasons import RejectReason
from engine.waterfall.conservation import audit
from engine.waterfall.models import Models
from engine.waterfall.profile import Profile, ProfileError
from engine.waterfall.run import run_waterfall

USDT = 10**8
BASE = 2**61


def _table() -> InstrumentTable:
    return InstrumentTable.from_dict(
        {
            "instruments": [
                {
                    "symbol": "BTCUSDT",
                    "tick_size": "0.01",
                    "lot_size": "0.001",
                    "tiers": [{"max_notional": None, "mmr": "0.02", "max_leverage": 125}],
                }
            ]
        }
    )


def _profile(**isolated: Any) -> Profile:
    return Profile.from_dict(
        {"liquidation": {"fee_rate": "0"}, "isolated": {"auto_add_margin": True, **isolated}}
    )


def _seed_book(profile: Profile, owner_free: int) -> tuple[Book, Models, int]:
    """Owner 1 with `owner_free` USDT cross balance and an isolated 3x long 0.6 BTC at 50,000
    with 10,000 USDT of its own margin; account 3 holds the short side."""
    book = Book(_table())
    book.open_account(profile.fund_account_id)
    models = Models.for_profile(book, profile)
    assert models.isolated is not None
    book.deposit(1, max(owner_free, 1) * USDT)
    if owner_free == 0:
        book.withdraw(1, USDT)
    sub = models.isolated.open(1, "BTCUSDT")
    book.deposit(sub, 10_000 * USDT)
    book.deposit(3, 10**6 * USDT)
    book.set_leverage(sub, "BTCUSDT", 3)
    book.apply_trade("BTCUSDT", 50_000_00, [(sub, 600, 0), (3, -600, 0)])
    return book, models, sub


def test_seed_example_isolated_position() -> None:
    # 10,000 USDT margin x 3 = 30,000 notional = 0.6 BTC at 50,000; mmr 2%.
    # At 48,000: uPnL = 0.6 x (48,000 - 50,000) = -1,200; equity 8,800 >> MM 0.6 x 48,000 x 2%
    # = 576: safe. (The seed fixes MM at 2% of the entry notional, 600, and solves
    # 10,000 + 0.6 (P - 50,000) = 600 -> P = 34,333.33; with MM on the mark notional, as here,
    # 10,000 + 0.6 (P - 50,000) = 0.012 P -> P = 20,000 / 0.588 = 34,013.61 (rounded up).)
    profile = _profile()
    book, models, sub = _seed_book(profile, owner_free=0)
    book.set_mark("BTCUSDT", 48_000_00)
    assert book.account_margin(sub) == (8_800 * USDT, 576 * USDT)
    liquidation, _ = book.liquidation_prices()
    assert int(liquidation[book.acct_start[book.row_of(sub)]]) == 34_013_61
    # The owner's cross balance is not the position's margin: the sub-account holds it.
    assert book.account_equity(1) == 0


def test_auto_add_tops_up_from_the_free_balance() -> None:
    # At 34,000: equity = 10,000 + 0.6 x (34,000 - 50,000) = 400; MM = 0.6 x 34,000 x 2%
    # = 408: breached. Initial margin at 3x: 20,400 / 3 = 6,800, so the top-up wanted is
    # 6,800 - 400 = 6,400; the owner has 5,000 free: 5,000 moves (one ledger posting) and the
    # position is safe at equity 5,400 > 408. Nothing is liquidated.
    profile = _profile()
    book, models, sub = _seed_book(profile, owner_free=5_000)
    book.set_mark("BTCUSDT", 34_000_00)
    assert book.account_margin(sub) == (400 * USDT, 408 * USDT)
    result = run_waterfall(book, profile, models=models)
    assert [(e.kind, e.account_id, e.amount) for e in result.events] == [
        ("margin_top_up", sub, 5_000 * USDT)
    ]
    assert result.accounts_liquidated == 0
    assert book.account_margin(sub) == (5_400 * USDT, 408 * USDT)
    assert book.balance[book.row_of(1)] == 0
    postings = book.ledger.column("reason") == int(Reason.ISOLATED_MARGIN)
    assert book.ledger.column("amount")[postings].tolist() == [5_000 * USDT]
    assert audit(book, closed=True).ok


def test_maintenance_target_adds_just_enough() -> None:
    # auto_add_target = "maintenance": MM - equity + 1 unit = 8 USDT + 1 unit.
    profile = _profile(auto_add_target="maintenance")
    book, models, sub = _seed_book(profile, owner_free=5_000)
    book.set_mark("BTCUSDT", 34_000_00)
    result = run_waterfall(book, profile, models=models)
    assert [e.amount for e in result.events] == [8 * USDT + 1]
    assert audit(book, closed=True).ok


def test_not_enough_free_balance_liquidates_and_leaves_the_owner_alone() -> None:
    # The owner has 5 USDT free, less than the 8 USDT + 1 unit that would save the position:
    # nothing moves, the isolated position is taken over, the owner keeps its 5 USDT.
    profile = _profile()
    book, models, sub = _seed_book(profile, owner_free=5)
    book.set_mark("BTCUSDT", 34_000_00)
    result = run_waterfall(book, profile, models=models)
    kinds = [e.kind for e in result.events]
    assert "margin_top_up" not in kinds and "liquidation" in kinds
    assert result.accounts_liquidated == 1
    assert book.balance[book.row_of(1)] == 5 * USDT and not book.positions_of(sub)
    assert audit(book, closed=True).ok


def test_auto_add_off_liquidates() -> None:
    profile = _profile(auto_add_margin=False)
    book, models, sub = _seed_book(profile, owner_free=5_000)
    book.set_mark("BTCUSDT", 34_000_00)
    result = run_waterfall(book, profile, models=models)
    assert result.accounts_liquidated == 1
    assert book.balance[book.row_of(1)] == 5_000 * USDT


def test_registry_refusals() -> None:
    profile = _profile()
    book = Book(_table())
    models = Models.for_profile(book, profile)
    registry = models.isolated
    assert registry is not None
    sub = registry.open(1, "BTCUSDT")
    assert sub == BASE and registry.open(1, "BTCUSDT") == sub
    for action, reason in (
        (lambda: registry.open(BASE + 5, "BTCUSDT"), RejectReason.INVALID_ACCOUNT),
        (lambda: registry.open(1, "NOPE"), RejectReason.UNKNOWN_SYMBOL),
    ):
        with pytest.raises(Rejected) as info:
            action()
        assert info.value.reason == reason
    with pytest.raises(ProfileError, match="subaccount_base"):
        Profile.from_dict({"isolated": {"subaccount_base": 2**62}})


@pytest.mark.parametrize("seed", range(5))
def test_random_books_top_up_exactly_and_conserve(seed: int) -> None:
    """Reference: a breached isolated position is saved iff the owner's free balance (cash,
    and equity above initial margin) covers MM - equity + 1; the top-up is then
    min(free, initial margin - equity) (at least the need)."""
    rng = random.Random(seed)
    profile = _profile()
    book = Book(_table())
    book.open_account(profile.fund_account_id)
    models = Models.for_profile(book, profile)
    registry = models.isolated
    assert registry is not None
    book.deposit(999, 10**9 * USDT)
    book.set_mark("BTCUSDT", 50_000_00)
    subs = []
    for owner in range(1, 21):
        book.deposit(owner, rng.randint(1, 3_000) * USDT)
        sub = registry.open(owner, "BTCUSDT")
        book.deposit(sub, rng.randint(500, 5_000) * USDT)
        book.set_leverage(sub, "BTCUSDT", rng.choice([2, 3, 5, 10]))
        qty = rng.choice([-1, 1]) * rng.randint(100, 1_000)
        book.apply_trade("BTCUSDT", 50_000_00, [(sub, qty, 0), (999, -qty, 0)])
        subs.append((owner, sub))
    mark = 50_000_00
    for _ in range(10):
        mark = mark * rng.randint(90, 110) // 100
        book.set_mark("BTCUSDT", mark)
        expected = {}
        risk = book.sweep()
        for owner, sub in subs:
            row = book.row_of(sub)
            if risk.status[row] >= STATUS_LIQUIDATE and book.positions_of(sub):
                equity, mm = book.account_margin(sub)
                _, im = book._account_equity_and_initial_margin(row)
                free = max(
                    0, min(int(book.balance[book.row_of(owner)]), book.account_equity(owner))
                )
                need = mm - equity + 1
                expected[sub] = min(free, max(need, im - equity)) if free >= need else 0
        result = run_waterfall(book, profile, models=models)
        got = {e.account_id: e.amount for e in result.events if e.kind == "margin_top_up"}
        assert got == {s: a for s, a in expected.items() if a}, seed
        assert audit(book, closed=True).ok
