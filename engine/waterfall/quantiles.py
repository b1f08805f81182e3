"""ADL quantile: each position's 1-5 "lights".

adl_quantiles() gives each position its quintile within (instrument, side) among the
positions ADL could take now (in profit, not a house account, and able to pay while staying
safe: an account's only position with equity > 0, or equity > maintenance margin + 1 unit
when it holds others, the waterfall's payer-safety rule), ranked
by the profile's policy (queue score; profit for pro_rata; account leverage for
risk_water_filling), 5 = first in line. 0 = ADL would not take from it.
"""

from __future__ import annotations

import numpy as np

from engine import _native
from engine.book.book import Book
from engine.waterfall.adl_book import POLICY_CODES, AdlBook, account_leverage
from engine.waterfall.profile import Profile

LIGHTS = 5


def adl_quantiles(book: Book, profile: Profile) -> np.ndarray:
    """Lights (1-5, 0 = out of ADL's reach) per position slot of the compacted book."""
    state = AdlBook(book, profile)
    rows = state.owner
    qty = book.pos_qty
    can_pay = np.where(state.open_positions == 1, state.equity > 0, state.safe_caps() > 0)
    eligible = np.flatnonzero((qty != 0) & (state.upnl > 0) & can_pay[rows] & state.trader[rows])
    lights = np.zeros(len(qty), dtype=np.int8)
    if len(eligible) == 0:
        return lights
    e_rows = rows[eligible]
    policy = profile.adl_policy
    if policy in POLICY_CODES:
        score = _native.adl_scores(
            POLICY_CODES[policy],
            state.upnl[eligible],
            np.abs(book.pos_cost[eligible]),
            state.notional[eligible],
            state.equity[e_rows],
        )
    elif policy == "pro_rata":
        score = state.upnl[eligible]
    else:
        score = account_leverage(state.account_notional()[e_rows], state.equity[e_rows])
    group = book.pos_instrument[eligible].astype(np.int64) * 2 + (qty[eligible] > 0)
    order = np.lexsort((book.account_id[e_rows], -score, group))
    g = group[order]
    start = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
    size = np.diff(np.concatenate([start, [len(g)]]))
    rank = np.arange(len(g)) - np.repeat(start, size)
    lights[eligible[order]] = LIGHTS - (LIGHTS * rank) // np.repeat(size, size)
    return lights


def account_adl_quantiles(
    book: Book, profile: Profile, lights: np.ndarray | None = None
) -> np.ndarray:
    """Per account row, the most lights of any of its positions (0 when none)."""
    if lights is None:
        lights = adl_quantiles(book, profile)
    best = np.zeros(book.n_accounts, dtype=np.int8)
    np.maximum.at(best, book.position_owner(), lights)
    return best
