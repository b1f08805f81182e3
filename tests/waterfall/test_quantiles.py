"""engine.waterfall.quantiles: ADL lights show only positions ADL could take from safely."""

from __future__ import annotations

from engine.waterfall.fund import open_fund
from engine.waterfall.quantiles import adl_quantiles
from tests.waterfall import safety_checks as check
from tests.waterfall.test_safety_examples import BTC, ETH, USDT, _book, _marks


def test_lights_follow_the_payer_safety_rule() -> None:
    # Grid: tick 0.01, lot 0.001, mmr 0.005 flat. Marks BTC 90000, ETH 3000.
    # 2: short 1 BTC at 100000 (+10000) and long 10 ETH at 4000 (-10000) with 600:
    #    equity 600, maintenance 0.005 x (90000 + 30000) = 600: safe capacity
    #    600 - 600 - 0.00000001 < 0, so ADL may not take its BTC profit: 0 lights.
    # 3: short 1 BTC at 100000 alone with 1000: equity 11000 > 0 and it ends flat when ADL
    #    takes the whole position: it can pay: 5 lights (the only BTC short it can).
    # 4: long 1 BTC at 100000 with 20000: a loss, never in ADL's line: 0 lights.
    p = check.profile()
    book = _book(
        [(2, 600 * USDT), (3, 1_000 * USDT), (4, 20_000 * USDT)],
        [
            (2, BTC, -1_000, 100_000),
            (3, BTC, -1_000, 100_000),
            (4, BTC, 2_000, 100_000),
            (2, ETH, 10_000, 4_000),
            (4, ETH, -10_000, 4_000),
        ],
    )
    open_fund(book, p, 0)
    _marks(book, 90_000, 3_000)
    book.compact()
    lights = adl_quantiles(book, p)
    owner = book.position_owner()
    by_position = {
        (int(book.account_id[owner[s]]), int(book.pos_instrument[s])): int(lights[s])
        for s in range(len(lights))
        if book.pos_qty[s] != 0
    }
    assert by_position[(2, 0)] == 0, "a hedged account at its maintenance margin cannot pay"
    assert by_position[(3, 0)] == 5
    assert by_position[(4, 0)] == 0
