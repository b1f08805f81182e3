"""The instrument prices' band rule for the prices of other things: the assets of an
asset-liability book (engine.service.asset_liability_tick).

The rule is engine.service.tick.Service's, run here on its own state, not a copy of it: a
price is checked against the asset's price as the tick opened (its first price against the
first one accepted in the tick, held until `band_confirm` prices in a row agree within the
band), `stale_sequence` unless its seq rises, a seq jump held likewise, and a move outside
the band is held until `band_confirm` prices confirm it in as many ticks (see
Service._price_accepted). The held counts live in the ServiceState's `held`, as an
instrument's do, so snapshots and restarts carry them. With `band_rate` 0 a price is taken
as it comes (only its seq is checked).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.service.messages import PriceUpdate
from engine.service.state import ServiceConfig, ServiceState
from engine.service.tick import Service


class PriceScreen:
    """Service's price checks over a state and a config of their own; prices are numbered
    (`index`) as the opening prices given to `open_tick` are."""

    # The rule itself: Service's methods, which read only the attributes set below (the
    # book only for an index of an even count of sources, which these prices never are).
    _price_accepted = Service._price_accepted
    _index_price = Service._index_price
    _within_band = Service._within_band

    def __init__(self, state: ServiceState, config: ServiceConfig) -> None:
        self.state = state
        self.config = config
        self._opening_mark = np.zeros(0, dtype=np.int64)
        self._first_accepted: dict[int, int] = {}

    def open_tick(self, opening: Sequence[int]) -> None:
        """A new tick: each price's value as it opens (0: none yet)."""
        self._opening_mark = np.asarray(opening, dtype=np.int64)
        self._first_accepted = {}

    def accept(self, symbol: str, index: int, ts: int, seq: int, price: int) -> bool:
        """True: the price is taken (its seq recorded); False: held by the band. Raises
        Rejected (`stale_sequence`, or `internal_error` with the state put back)."""
        update = PriceUpdate(symbol, index, ts, seq, price, 0)
        return Service._guarded_price(self, update) is not None  # type: ignore[arg-type]
