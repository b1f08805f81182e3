"""Daily price limits (涨跌停板): marks clamped to the previous settlement price +- a rate.

Chinese commodity futures move at most 4-8% a day (by product) from the previous trading
day's settlement price. An instrument states its rate as `price_limit` in the instrument
file; the reference, the previous settlement price, comes per trading day (batch:
`--previous-settlement FILE`, columns symbol, settlement_price; service: a
`settlement_price` message on the prices topic). With rate r and reference P (ticks):

    upper = floor(P x (1 + r)),  lower = ceil(P x (1 - r))   (ticks; inward, so a limit
                                                              price never exceeds the rate)

A mark beyond a limit is clamped to it (the exchange trades no further), and a mark at a
limit locks the market: at the upper limit (limit up) buyers find no sellers, so a short
cannot be bought back; at the lower limit (limit down) a long cannot be sold. What then
happens to breached accounts is engine.exchange.tick's: held with a margin call, after the
forced position reduction (engine.exchange.forced_reduction) where the profile says so.
An instrument without a reference (or without a rate) has no limits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE
from engine.book.instruments import InstrumentTable
from engine.book.limits import INT64_MAX
from engine.book.reasons import RejectReason
from engine.io.columns import Column, Grid, decimal_column, first_repeat, first_row, symbol_column
from engine.io.tables import read_table

LIMIT_UP, LIMIT_DOWN, UNLOCKED = 1, -1, 0


class DailyLimits:
    """Per instrument: the reference price (ticks; 0: none) and the limits it gives."""

    def __init__(self, instruments: InstrumentTable) -> None:
        self.instruments = instruments
        self.reference = np.zeros(len(instruments), dtype=np.int64)

    def set_reference(self, instrument: int, price: int) -> None:
        """The previous settlement price of `instrument`, in ticks (> 0)."""
        inst = self.instruments.instruments[instrument]
        if not inst.price_limit:
            raise Rejected(
                RejectReason.NO_PRICE_LIMIT,
                f"{inst.symbol}: the instrument states no price_limit",
            )
        if not 0 < price <= INT64_MAX // int(self.instruments.tick_value[instrument]):
            raise Rejected(RejectReason.INVALID_PRICE, f"{inst.symbol}: reference price {price}")
        self.reference[instrument] = price

    def band(self, instrument: int) -> tuple[int, int] | None:
        """(lower, upper) limit prices in ticks, or None without limits."""
        reference = int(self.reference[instrument])
        rate = self.instruments.instruments[instrument].price_limit
        if not reference or not rate:
            return None
        upper = reference * (RATE_SCALE + rate) // RATE_SCALE
        lower = -(-reference * (RATE_SCALE - rate) // RATE_SCALE)
        assert 0 <= lower <= reference <= upper, f"instrument {instrument}: limits out of order"
        return lower, upper

    def clamp(self, instrument: int, price: int) -> int:
        """The mark a price gives: the price, held within the day's limits."""
        band = self.band(instrument)
        if band is None:
            return price
        return min(max(price, band[0]), band[1])

    def locked(self, book: Book) -> np.ndarray:
        """Per instrument: LIMIT_UP / LIMIT_DOWN when its mark sits at that limit, else 0."""
        side = np.zeros(len(self.instruments), dtype=np.int8)
        for i in np.flatnonzero(self.reference).tolist():
            band = self.band(i)
            if band is None or not book.mark_set[i]:
                continue
            mark = int(book.mark[i])
            side[i] = LIMIT_UP if mark >= band[1] else LIMIT_DOWN if mark <= band[0] else 0
        return side

    def to_dict(self) -> dict[str, int]:
        symbols = [inst.symbol for inst in self.instruments.instruments]
        return {symbols[i]: int(self.reference[i]) for i in np.flatnonzero(self.reference)}

    def load_dict(self, doc: dict[str, int]) -> None:
        for symbol, price in doc.items():
            self.set_reference(self.instruments.symbol_index(symbol), int(price))


def read_previous_settlement(path: str | Path, limits: DailyLimits) -> None:
    """The reference prices of a file (columns symbol, settlement_price) into `limits`."""
    path = Path(path)
    instruments = limits.instruments
    table = read_table(path, ("symbol", "settlement_price"))
    symbol_col = Column(path, "symbol")
    inst = symbol_column(table, symbol_col, instruments)
    repeat = first_repeat(inst)
    if repeat is not None:
        raise symbol_col.reject(
            RejectReason.DUPLICATE_SYMBOL, repeat[1], f"repeats row {repeat[0] + 1}"
        )
    insts = instruments.instruments
    grid = Grid([i.tick_size for i in insts], [f"{i.symbol} tick size" for i in insts], inst)
    price_col = Column(path, "settlement_price")
    price = decimal_column(table, price_col, grid)
    row = first_row(~(price > 0))
    if row is not None:
        raise price_col.reject(RejectReason.INVALID_PRICE, row, "must be positive")
    for row, (i, p) in enumerate(zip(inst.tolist(), price.tolist(), strict=True)):
        try:
            limits.set_reference(i, p)
        except Rejected as exc:
            raise symbol_col.reject(exc.reason, row, exc.detail) from None


def clamp_marks(book: Book, limits: DailyLimits) -> list[tuple[int, int, int]]:
    """Clamp the book's marks to the day's limits; (instrument, input mark, mark) of each
    mark that moved."""
    moved = []
    for i in np.flatnonzero((limits.reference > 0) & book.mark_set).tolist():
        price = int(book.mark[i])
        clamped = limits.clamp(i, price)
        if clamped != price:
            book.set_mark(limits.instruments.instruments[i].symbol, clamped)
            moved.append((i, price, clamped))
    return moved
