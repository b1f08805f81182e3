"""pytest-benchmark suite: `pytest bench/ --benchmark-enable` (1M accounts, 3M positions).

The numpy baseline of the same exact computation runs in the same session, so the
comparison table pytest-benchmark prints gives the ratio. No timing asserts.
"""

from __future__ import annotations

import pytest

from bench.baselines import numpy_sweep
from engine.book.book import Book
from engine.stress.synthetic import synthetic_book


@pytest.fixture(scope="module")
def book() -> Book:
    return synthetic_book(1_000_000, 3_000_000, 100)


@pytest.mark.benchmark(group="sweep-1M-accounts-3M-positions")
def test_native_sweep(benchmark, book: Book) -> None:
    benchmark(book.sweep, with_initial_margin=False)


@pytest.mark.benchmark(group="sweep-1M-accounts-3M-positions")
def test_numpy_baseline(benchmark, book: Book) -> None:
    benchmark.pedantic(numpy_sweep, args=(book,), rounds=5, iterations=1)
