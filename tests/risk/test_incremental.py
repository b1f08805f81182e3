"""The incremental sweep gives the full sweep's statuses at every tick."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book.book import STATUS_OK
from engine.book.errors import Rejected
from engine.risk.incremental import IncrementalSweep
from engine.stress.synthetic import synthetic_book


def check(inc: IncrementalSweep) -> int:
    result = inc.tick()
    full = inc.book.sweep(with_initial_margin=False)
    assert np.array_equal(result.status_of_all(inc.book.n_accounts), full.status)
    assert np.array_equal(result.equity, full.equity[result.rows])
    assert np.array_equal(result.maintenance_margin, full.maintenance_margin[result.rows])
    return len(result.rows)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    moves=st.lists(
        st.tuples(
            st.integers(0, 7),  # instrument
            st.sampled_from([1e-4, 1e-3, 1e-2, 5e-2, 0.2, -1e-4, -1e-3, -1e-2, -5e-2, -0.3]),
            st.booleans(),  # an account event before the tick
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_random_paths_match_full_sweeps(seed: int, moves: list) -> None:
    book = synthetic_book(400, 1_200, 8, seed=seed)
    inc = IncrementalSweep(book, reanchor_fraction=0.5)
    rng = np.random.default_rng(seed)
    symbols = list(book.instruments.index)
    for inst, move, event in moves:
        symbol = symbols[inst]
        book.set_mark(symbol, max(0, int(book.mark[inst] * (1 + move))))
        if event:
            account = int(book.account_id[rng.integers(book.n_accounts)])
            kind = rng.integers(4)
            try:
                if kind == 0:
                    book.apply_fill(
                        account, symbol, int(rng.integers(-500, 500)) or 1, 1 + int(book.mark[inst])
                    )
                elif kind == 1:
                    book.deposit(account, int(rng.integers(1, 10**10)))
                elif kind == 2:
                    book.withdraw(account, int(rng.integers(1, 10**10)))
                else:
                    book.deposit(10**9 + int(rng.integers(10**6)), 10**9)  # a new account
            except Rejected:
                pass
        check(inc)


def test_small_moves_touch_few_accounts() -> None:
    book = synthetic_book(20_000, 60_000, 20, seed=1)
    inc = IncrementalSweep(book)
    not_ok = int((book.sweep().status != STATUS_OK).sum())
    symbol = next(iter(book.instruments.index))
    book.set_mark(symbol, int(book.mark[0] * 1.001))
    evaluated = check(inc)
    # The 0.1% move evaluates the accounts already in warning plus a thin band.
    assert evaluated < not_ok + 0.02 * book.n_accounts


def test_moving_off_a_zero_mark_reanchors() -> None:
    book = synthetic_book(200, 600, 4, seed=2)
    symbol = next(iter(book.instruments.index))
    book.set_mark(symbol, 0)
    inc = IncrementalSweep(book)
    book.set_mark(symbol, 5)
    assert inc.tick().full_sweep
    check(inc)


@given(st.floats(min_value=0.0, max_value=1e3, allow_nan=False))
def test_scalar_bucket_equals_the_vector_one(move: float) -> None:
    from engine.risk.incremental import bucket_index, bucket_of

    assert bucket_index(move) == int(bucket_of(move))
