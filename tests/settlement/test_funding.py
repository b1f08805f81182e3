"""engine.settlement.funding: the computed rate, and who receives what when the paying side
is smaller (the example: tests/settlement/example.py)."""

from __future__ import annotations

import numpy as np

from engine.book.book import Book
from engine.book.ledger import FUNDING_POOL
from engine.settlement.funding import FundingInput, funding_rate_from_premium
from engine.settlement.run import settle
from engine.waterfall.profile import Profile
from tests.settlement.example import EXAMPLE_PRICES, example_book, example_instruments


def test_funding_rate_from_premium() -> None:
    cap = 375_000  # 0.75 x 0.005
    # premium (101000.0 - 100000.0) / 100000.0 = 1% = 1_000_000; interest 0.01% = 10_000;
    # 1_000_000 + clamp(10_000 - 1_000_000, +-50_000) = 950_000, capped at 375_000.
    assert funding_rate_from_premium(1_010_000, 1_000_000, 10_000, cap) == 375_000
    # premium 0.01%: interest - premium = 0, the rate is the premium 10_000.
    assert funding_rate_from_premium(1_000_100, 1_000_000, 10_000, cap) == 10_000
    # premium -0.01%: -10_000 + clamp(20_000, +-50_000) = 10_000 (the interest rate).
    assert funding_rate_from_premium(999_900, 1_000_000, 10_000, cap) == 10_000
    # premium -0.2%: -200_000 + clamp(210_000 -> 50_000) = -150_000; shorts pay.
    assert funding_rate_from_premium(998_000, 1_000_000, 10_000, cap) == -150_000
    # premium 1/3 and -1/3 truncate toward zero: +-33_333_333, then capped at +-0.3.
    assert funding_rate_from_premium(4, 3, 0, 30_000_000) == 30_000_000
    assert funding_rate_from_premium(2, 3, 0, 90_000_000) == -33_333_333 + 50_000


def test_computed_funding_rate_charged() -> None:
    book = example_book()
    # index 100900.0: premium (1_010_000 - 1_009_000) x 10^8 / 1_009_000 = 99_108.02.. ->
    # 99_108; 99_108 + clamp(10_000 - 99_108 -> -50_000) = 49_108; cap 0.75 x 0.005 = 375_000.
    result = settle(
        book,
        EXAMPLE_PRICES,
        date="d",
        profile=Profile.shipped(),
        funding=[FundingInput(0, index_price=1_009_000)],
    )
    assert result.instruments.funding_rate[0] == 49_108
    assert result.instruments.funding_source[0] == "computed"
    # 1 pays ceil(1_010_000_000 x 49_108 / 10^8) = ceil(495_990.8) = 495_991
    assert result.funding[0] == -495_991


def _unbalanced_book(long_lots: int, short_lots: list[int]) -> Book:
    table = example_instruments()
    ids = np.arange(1, len(short_lots) + 2)
    qty = np.array([long_lots, *[-s for s in short_lots]])
    return Book.from_arrays(
        table,
        ids,
        np.full(len(ids), 10**12),
        ids,
        np.zeros(len(ids), dtype=np.int32),
        qty,
        qty * 1_000_000,
    )


def test_receivers_share_what_was_paid_when_open_interest_does_not_net() -> None:
    # Long 1 lot pays ceil(1_010_000 x 0.01) = 10_100 (rate 10^6 = 1%); the shorts hold
    # 3 x 1 lot and are owed 3 x 10_100 = 30_300 > 10_100: they share the 10_100 pro rata
    # to their (equal) owed amounts: 3_367, 3_367, 3_366 - the extra unit to lower ids.
    book = _unbalanced_book(1, [1, 1, 1])
    result = settle(
        book, {0: 1_010_000}, date="d", profile=Profile.shipped(), funding=[FundingInput(0, 10**6)]
    )
    assert result.funding[:4].tolist() == [-10_100, 3_367, 3_367, 3_366]
    assert book.house_balance[FUNDING_POOL] == 0
    # The other way: 3 lots long pay 30_300, the one short is owed 10_100; the pool keeps
    # the 20_200 that no short position stands against.
    book = _unbalanced_book(3, [1])
    result = settle(
        book, {0: 1_010_000}, date="d", profile=Profile.shipped(), funding=[FundingInput(0, 10**6)]
    )
    assert result.funding[:2].tolist() == [-30_300, 10_100]
    assert book.house_balance[FUNDING_POOL] == 20_200
    assert not result.closed_book and all(result.checks.values())
