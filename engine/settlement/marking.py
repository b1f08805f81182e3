"""Mark to settlement: settlement prices, positions valued at them, variation margin.

Dated futures: the variation margin `q x price x tick_value - cost` of each position is
realized (CLEARING pays the holder, reason variation_margin) and the cost basis is reset to
`q x price x tick_value`, so the clearing account plus the open cost basis is unchanged.
Perpetuals keep their cost basis; their unrealized PnL stays unrealized.

The day's mark-to-market of a position (for the report) is measured from its previous mark,
or from its entry where the book had none; a dated future's is its variation margin.
Everything here only reads the book.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.limits import INT64_MAX, VALUE_MAX
from engine.book.reasons import RejectReason


@dataclass(frozen=True)
class Marking:
    """Per position slot, at the settlement prices (money units)."""

    dated_slot: np.ndarray  # bool: an open position in a dated future
    variation_margin: np.ndarray  # 0 outside dated
    mtm: np.ndarray  # the day's mark-to-market of the position
    opening_upnl: np.ndarray  # at the previous marks (0 where none)


def reject_slot(
    book: Book, owner: np.ndarray, slot: int, reason: RejectReason, problem: str
) -> Rejected:
    """A refusal naming the account and symbol of position slot `slot`."""
    account = int(book.account_id[owner[slot]])
    symbol = book.instruments.instruments[int(book.pos_instrument[slot])].symbol
    return Rejected(reason, f"account {account} {symbol}: {problem}")


def dated_instruments(book: Book) -> np.ndarray:
    """Per instrument: True for a dated future, False for a perpetual."""
    return np.array([i.kind == "dated" for i in book.instruments.instruments], dtype=bool)


def settlement_prices(book: Book, prices: dict[int, int]) -> np.ndarray:
    """Per instrument, the settlement price in ticks (0 where none was given).

    Refuses a price that is not positive or too large for the instrument, and an instrument
    with open positions but no price.
    """
    n_inst = len(book.instruments)
    settlement = np.zeros(n_inst, dtype=np.int64)
    tick_value = book.instruments.tick_value
    for inst, price in prices.items():
        symbol = book.instruments.instruments[inst].symbol
        if not price > 0:
            raise Rejected(
                RejectReason.INVALID_PRICE, f"{symbol}: settlement price must be positive"
            )
        if price > INT64_MAX // int(tick_value[inst]):
            raise Rejected(RejectReason.OVERFLOW, f"{symbol}: settlement price {price} too large")
        settlement[inst] = price
    held = np.zeros(n_inst, dtype=np.int64)
    np.add.at(held, book.pos_instrument, book.pos_qty != 0)
    missing = np.flatnonzero((held > 0) & (settlement == 0))
    if len(missing):
        names = ", ".join(book.instruments.instruments[int(i)].symbol for i in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise Rejected(
            RejectReason.NO_SETTLEMENT_PRICE,
            f"no settlement price for {names}{more}, which has open positions"
            f" ({int(held[missing[0]])} in {book.instruments.instruments[int(missing[0])].symbol})",
        )
    return settlement


def check_values_at_settlement(
    book: Book, owner: np.ndarray, lot_value: np.ndarray, dated: np.ndarray
) -> None:
    """Values at the settlement price: a perpetual's notional fits int64; a dated future's
    new cost basis stays within VALUE_MAX like every cost in the book."""
    qty, inst = book.pos_qty, book.pos_instrument
    limit = np.where(dated, VALUE_MAX, INT64_MAX) // np.maximum(lot_value, 1)
    too_big = np.flatnonzero(np.abs(qty) > limit[inst])
    if len(too_big):
        raise reject_slot(
            book,
            owner,
            int(too_big[0]),
            RejectReason.OVERFLOW,
            "position value at settlement exceeds int64",
        )


def mark_to_settlement(
    book: Book, owner: np.ndarray, lot_value: np.ndarray, dated: np.ndarray
) -> Marking:
    """Variation margin, mark-to-market and opening unrealized PnL of every slot.

    `lot_value` is per instrument at the settlement prices (checked by
    `check_values_at_settlement`); a value at a previous mark that does not fit is refused.
    """
    qty, inst, cost = book.pos_qty, book.pos_instrument, book.pos_cost
    live = qty != 0
    value = qty * lot_value[inst]
    dated_slot = live & dated[inst]
    variation_margin = np.where(dated_slot, value - cost, 0)
    marked = book.mark_set[inst] & live
    previous_limit = INT64_MAX // np.maximum(book.mark_lot_value, 1)
    if (marked & (np.abs(qty) > previous_limit[inst])).any():
        slot = int(np.flatnonzero(marked & (np.abs(qty) > previous_limit[inst]))[0])
        raise reject_slot(book, owner, slot, RejectReason.OVERFLOW, "position value exceeds int64")
    previous_value = np.where(marked, qty * book.mark_lot_value[inst], 0)
    opening_upnl = np.where(marked, previous_value - cost, 0)
    mtm = np.where(
        dated_slot, variation_margin, np.where(marked, value - previous_value, value - cost)
    )
    mtm = np.where(live, mtm, 0)
    return Marking(dated_slot, variation_margin, mtm, opening_upnl)
