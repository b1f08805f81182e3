"""Daily price limits, the forced position reduction of a locked market, and the CFFEX
forced-close order (proprietary accounts first)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.exchange.account_classes import AccountClasses, read_account_classes
from engine.exchange.exchange_tick import ExchangeState, exchange_tick
from engine.exchange.forced_reduction import forced_reduction
from engine.exchange.price_limits import (
    LIMIT_DOWN,
    LIMIT_UP,
    clamp_marks,
    read_previous_settlement,
)
from engine.waterfall.conservation import audit
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile
from engine.waterfall.takeover import liquidation_order
from tests.exchange.example import DATA, example_book

CENTS = 100
CU = 1  # the copper instrument's index


def limited_book(profile: Profile) -> tuple[Book, ExchangeState]:
    book, state = example_book(profile)
    read_previous_settlement(DATA / "previous_settlement.csv", state.limits)
    return book, state


def test_limits_are_the_previous_settlement_plus_minus_the_rate_and_clamp_the_mark() -> None:
    book, state = limited_book(Profile.shipped("cffex-like"))
    # CU2012: previous settlement 68,000, limit 5%: upper 68,000 x 1.05 = 71,400, lower
    # 68,000 x 0.95 = 64,600 (both on the 10-yuan tick already).
    assert state.limits.band(CU) == (6_460, 7_140)  # ticks of 10
    assert clamp_marks(book, state.limits) == [(CU, 7_200, 7_140)]  # 72,000 -> 71,400
    assert state.limits.locked(book).tolist() == [0, LIMIT_UP]
    book.set_mark("CU2012", 6_460)
    assert state.limits.locked(book).tolist() == [0, LIMIT_DOWN]
    book.set_mark("CU2012", 6_461)
    assert state.limits.locked(book).tolist() == [0, 0]


def test_limits_round_inward_to_the_tick() -> None:
    book, state = example_book(Profile.shipped("cffex-like"))
    state.limits.set_reference(CU, 6_803)  # 68,030: 1.05 x = 71,431.5 -> 71,430 (7,143)
    assert state.limits.band(CU) == (6_463, 7_143)  # 0.95 x 68,030 = 64,628.5 -> 64,630


def test_forced_reduction_at_limit_up_against_profitable_longs_pro_rata() -> None:
    profile = Profile.shipped("cffex-like")
    book, state = limited_book(profile)
    clamp_marks(book, state.limits)  # CU at 71,400, limit up: the shorts are stuck
    tick = exchange_tick(book, profile, state, 0)
    audit(book, closed=True)
    # 3001 (proprietary): short 2 at 68,000, balance 40,000: equity 40,000 - 2 x 5 x 3,400
    # = 6,000 >= 0, MM = 0.08 x 2 x 5 x 71,400 = 57,120: breached, and stuck at the limit.
    # The profitable longs: 3003 (2 at 67,000) and 3004 (2 at 70,000): R = min(2, 4) = 2
    # lots, pro rata 2 x 2/4 = 1 each, all at 71,400.
    sides = {(r.account_id, r.qty, r.price, r.realized, r.reducer) for r in tick.reductions}
    assert sides == {
        (3001, -2, 7_140, -2 * 5 * 3_400 * CENTS, True),  # realizes -34,000
        (3003, 1, 7_140, 1 * 5 * 4_400 * CENTS, False),  # realizes 22,000
        (3004, 1, 7_140, 1 * 5 * 1_400 * CENTS, False),  # realizes 7,000
    }
    # 3001 is flat now, with its 6,000: nothing to hold or liquidate.
    assert book.position(3001, "CU2012") == (0, 0)
    assert int(book.balance[book.row_of(3001)]) == 6_000 * CENTS
    assert tick.calls == [] and tick.settled.held == []
    # 3002: short 2, balance 30,000: equity -4,000 < 0, bankrupt: not held, the fund takes
    # it over at the limit price and (debt mode) the account keeps its -4,000.
    # (2003, short of crude margin from the start, is the margin-change tests' subject)
    events = tick.waterfall.events
    taken = {e.account_id for e in events if e.kind == "liquidation" and e.symbol == "CU2012"}
    assert taken == {3002}
    assert int(book.balance[book.row_of(3002)]) == -4_000 * CENTS


def test_hold_keeps_a_stuck_account_with_a_margin_call() -> None:
    doc = {
        "exchange": {"margin_call_grace_ms": 1000, "price_limit_locked": "hold"},
        "negative_balance": {"protection": False},
    }
    profile = Profile.from_dict(doc)
    book, state = limited_book(profile)
    clamp_marks(book, state.limits)
    tick = exchange_tick(book, profile, state, 5)
    audit(book, closed=True)
    assert [(c.account_id, c.reason, c.deadline_ts) for c in tick.calls] == [
        (3001, "price_limit", 1005)
    ]
    assert tick.calls[0].equity == 6_000 * CENTS
    assert tick.calls[0].maintenance_margin == 57_120 * CENTS
    assert tick.settled.held == [3001] and tick.reductions == []
    # Past the deadline but still locked: held (the market cannot take the position).
    tick = exchange_tick(book, profile, state, 2_000)
    assert tick.settled.held == [3001] and book.position(3001, "CU2012")[0] == -2
    # The lock lifts (71,390), the deadline passed, still short: liquidated.
    book.set_mark("CU2012", 7_139)
    tick = exchange_tick(book, profile, state, 2_001)
    audit(book, closed=True)
    assert tick.settled.lapsed == [3001] and book.position(3001, "CU2012")[0] == 0


def test_proprietary_accounts_go_first_when_the_profile_says_so() -> None:
    ids, equity, mm = [1, 2, 3], [10, 50, 90], [100, 100, 100]
    assert liquidation_order(ids, equity, mm) == [0, 1, 2]
    classes = AccountClasses([3])  # 3 is proprietary: first despite the best ratio
    assert liquidation_order(ids, equity, mm, classes.priority(np.array(ids))) == [2, 0, 1]
    assert read_account_classes(DATA / "accounts.csv").to_list() == [3001]


def test_a_bad_account_class_and_a_limit_without_a_rate_are_named(tmp_path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("account_id,balance,account_class\n1,0,member\n")
    with pytest.raises(Rejected) as err:
        read_account_classes(path)
    assert err.value.reason == "invalid_account_class" and "row 1" in err.value.detail
    _, state = example_book(Profile.shipped("cffex-like"))
    with pytest.raises(Rejected) as err:
        state.limits.set_reference(0, 4_000)  # CLZ0 states no price_limit
    assert err.value.reason == "no_price_limit"


# ----- the pro-rata rule against an exact reference -------------------------------------
def reference_parts(weights: list[int], ids: list[int], total: int) -> list[int]:
    """Largest remainder with Fractions: floor of each exact share, then one unit each to
    the largest remainders, ties to the lower id."""
    whole = sum(weights)
    shares = [Fraction(total * w, whole) for w in weights]
    parts = [int(s) for s in shares]
    left = total - sum(parts)
    ranked = sorted(range(len(weights)), key=lambda j: (-(shares[j] - parts[j]), ids[j]))
    for j in ranked[:left]:
        parts[j] += 1
    return parts


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 50), min_size=1, max_size=8),
    st.lists(st.integers(1, 30), min_size=1, max_size=4),
    st.sampled_from([LIMIT_UP, LIMIT_DOWN]),
)
def test_forced_reduction_matches_the_exact_pro_rata_reference(
    counter_lots: list[int], stuck_lots: list[int], side: int
) -> None:
    # Stuck accounts hold the losing side entered at 70,000 (cost 7,000 ticks x 5,000 a
    # tick); the counterparties the other side at 70,000, in profit at the limit; one more
    # account balances open interest, entered at the limit price itself (no profit: it is
    # not a counterparty whichever side it is on).
    profile = Profile.shipped("cffex-like")
    table = InstrumentTable.load(DATA / "instruments.json")
    losing = -1 if side == LIMIT_UP else 1
    limit = 7_140 if side == LIMIT_UP else 6_460
    tick_value = int(table.tick_value[CU])
    stuck_ids = [100 + i for i in range(len(stuck_lots))]
    counter_ids = [200 + j for j in range(len(counter_lots))]
    qty = [losing * n for n in stuck_lots] + [-losing * n for n in counter_lots]
    cost = [q * 7_000 * tick_value for q in qty]
    residual = -sum(qty)
    ids = stuck_ids + counter_ids + ([999] if residual else [])
    if residual:
        qty.append(residual)
        cost.append(residual * limit * tick_value)
    book = Book.from_arrays(
        table,
        np.array(sorted(set(ids)), dtype=np.int64),
        np.full(len(set(ids)), 10**9, dtype=np.int64),
        np.array(ids, dtype=np.int64),
        np.full(len(ids), CU, dtype=np.int32),
        np.array(qty, dtype=np.int64),
        np.array(cost, dtype=np.int64),
        warning_rate=profile.warning_rate,
    )
    open_fund(book, profile, 0)
    book.set_mark("CLZ0", 4_000)
    book.set_mark("CU2012", limit)
    reductions = forced_reduction(book, profile, CU, side, stuck_ids)
    total = min(sum(stuck_lots), sum(counter_lots))
    expected = reference_parts(counter_lots, counter_ids, total)
    got = {r.account_id: r.qty for r in reductions if not r.reducer}
    assert 999 not in got
    for account_id, part in zip(counter_ids, expected, strict=True):
        assert got.get(account_id, 0) == -losing * part  # signed as the position closed
    # The stuck accounts are served in the order given until the lots run out.
    left = total
    for account_id, lots in zip(stuck_ids, stuck_lots, strict=True):
        take = min(lots, left)
        left -= take
        assert book.position(account_id, "CU2012")[0] == losing * (lots - take)
    audit(book, closed=True)
