"""The synthetic crash book: the leverage mix, the long bias, open interest netting to zero,
heavy-tailed sizes and the seed."""

from __future__ import annotations

import numpy as np

from engine.book.book import STATUS_LIQUIDATE
from engine.stress.scenario import load_scenario
from engine.stress.synthetic import CRASH_LEVERAGES
from engine.waterfall.conservation import audit
from tests.stress.examples import book_for


def test_crash_book_mix_bias_netting_and_seed() -> None:
    scenario = load_scenario("2025-10-11").scaled(20_000)
    book = book_for(scenario, seed=3)
    assert audit(book, closed=True).ok  # open interest nets to zero per instrument
    risk = book.sweep(with_initial_margin=False)
    assert (risk.status < STATUS_LIQUIDATE).all(), "nobody starts in breach"
    owner = book.position_owner()
    makers = book.account_id[owner] > 20_000 - 200  # the last 1% of ids are the makers
    traders_qty = book.pos_qty[~makers]
    notional = np.abs(traders_qty) * book.mark_lot_value[book.pos_instrument[~makers]]
    long_share = notional[traders_qty > 0].sum() / notional.sum()
    assert 0.70 < long_share < 0.80  # long_share 0.75 by count, sizes independent of side
    lev = np.zeros(book.n_accounts, dtype=np.int64)
    lev[owner] = book.pos_leverage
    traders = lev[: 20_000 - 200]
    assert set(np.unique(traders)) <= set(CRASH_LEVERAGES.tolist())
    assert 0.55 < (traders >= 5).mean() < 0.65  # 60% at 5x or more (tier caps trim a little)
    assert 0.17 < (traders == 10).mean() < 0.23  # 20% at 10x
    assert traders.max() == 100
    assert (lev[20_000 - 200 :] == 2).all()
    sizes = np.sort(notional)[::-1]
    assert sizes[: len(sizes) // 100].sum() > 0.15 * sizes.sum()  # heavy tail: top 1% >15%
    again = book_for(scenario, seed=3)
    np.testing.assert_array_equal(again.pos_qty, book.pos_qty)
    np.testing.assert_array_equal(again.balance, book.balance)
    assert not np.array_equal(book_for(scenario, seed=4).balance, book.balance)
