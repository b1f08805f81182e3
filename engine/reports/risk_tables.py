"""The risk report of a book at its current marks, as two Arrow tables (accounts, positions).

Columns follow engine.reports.decimals: money is decimal128 at the money scale; qty, prices
are decimal128 in their units at the largest scale among the instruments (qty_lots keeps the
raw lots); symbols and statuses are strings.

Choices stated here once:
- entry_price is cost / (qty * tick_value) ticks, at four more places than the price
  columns (ENTRY_EXTRA_DECIMALS): exact on the tick grid (always, for a book loaded from
  files); between ticks (after partial closes by fills) rounded half-even at that scale.
- liquidation_price / bankruptcy_price are null where no price breaches (NULL_PRICE) and
  where the price does not fit the int64 range at the column's scale; mark_price likewise.
- Positions are the live slots (qty != 0) in the book's order: by account row, then
  instrument index.

`exact_strings` writes integer units as exact decimal text (for input files built by tools
and tests), through integer division and string padding, never a float.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine._native import NULL_PRICE
from engine.book.book import STATUS_NAMES, Book
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.book.limits import INT64_MAX
from engine.book.reasons import RejectReason
from engine.reports.decimals import grid_array, grid_scale, money_array

ENTRY_EXTRA_DECIMALS = 4
ENTRY_PRECISION = 38  # entry prices between ticks may need more than an int64 of digits


def exact_strings(units: np.ndarray, decimals: int | np.ndarray) -> pa.Array:
    """Exact decimal text of int64 `units` at `decimals` places (one for all, or per row)."""
    units = np.asarray(units, dtype=np.int64)
    if isinstance(decimals, (int, np.integer)):
        return _fixed_text(units, int(decimals))
    decimals = np.asarray(decimals)
    distinct = np.unique(decimals)
    if len(distinct) <= 1:  # one number of places, or no rows
        return _fixed_text(units, int(distinct[0]) if len(distinct) else 0)
    # Format each group of equal places at once, then put the rows back in their order.
    order = np.argsort(decimals.astype(np.int8), kind="stable")  # int8: a radix sort
    ordered = decimals[order]
    bounds = np.searchsorted(ordered, distinct)
    parts = [
        _fixed_text(units[order[lo:hi]], int(d))
        for d, lo, hi in zip(distinct, bounds, [*bounds[1:], len(order)], strict=True)
    ]
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return pc.take(pa.concat_arrays(parts), pa.array(inverse))


def _fixed_text(units: np.ndarray, decimals: int) -> pa.Array:
    negative = units < 0
    # uint64 holds |INT64_MIN| too.
    magnitude = np.abs(units).astype(np.uint64)
    if decimals == 0:
        text = pa.array(magnitude).cast(pa.string())
    else:
        scale = np.uint64(10**decimals)
        whole = pa.array(magnitude // scale).cast(pa.string())
        fraction = pc.utf8_lpad(
            pa.array(magnitude % scale).cast(pa.string()), width=decimals, padding="0"
        )
        text = pc.binary_join_element_wise(whole, fraction, ".")
    if negative.any():
        text = pc.if_else(pa.array(negative), pc.binary_join_element_wise("-", text, ""), text)
    return text


def accounts_table(book: Book) -> pa.Table:
    """One row per account: balance, equity, margins (money), margin ratio, status."""
    risk = book.sweep()
    assert risk.initial_margin is not None
    money = book.instruments.money_decimals
    columns: dict[str, pa.Array] = {"account_id": pa.array(book.account_id, type=pa.int64())}
    for name, units in (
        ("balance", book.balance),
        ("equity", risk.equity),
        ("maintenance_margin", risk.maintenance_margin),
        ("initial_margin", risk.initial_margin),
    ):
        columns[name] = money_array(units, money)
    columns["margin_ratio"] = pa.array(risk.margin_ratio, type=pa.float64())
    columns["status"] = pc.take(pa.array(STATUS_NAMES, pa.string()), pa.array(risk.status))
    return pa.table(columns)


def positions_table(book: Book) -> pa.Table:
    """One row per live position: size and prices in their units, margins in money."""
    instruments = book.instruments
    money = instruments.money_decimals
    margins = book.position_margins()
    liquidation, bankruptcy = book.liquidation_prices()
    owner = book.position_owner()
    live = np.flatnonzero(book.pos_qty != 0)
    inst = book.pos_instrument[live]
    qty = book.pos_qty[live]
    symbols = pa.array([i.symbol for i in instruments.instruments], type=pa.string())
    qty_column = grid_array(qty, inst, instruments, tick=False)
    if qty_column.null_count:
        raise OverflowError("a position size does not fit int64 at the qty column's scale")
    columns: dict[str, pa.Array] = {
        "account_id": pa.array(book.account_id[owner[live]], type=pa.int64()),
        "symbol": pc.take(symbols, pa.array(inst)),
        "qty": qty_column,
        "qty_lots": pa.array(qty, type=pa.int64()),
        "entry_price": entry_price_array(instruments, inst, qty, book.pos_cost[live]),
        "mark_price": grid_array(book.mark[inst], inst, instruments, tick=True),
    }
    for name in ("notional", "unrealized_pnl", "maintenance_margin", "initial_margin"):
        columns[name] = money_array(margins[name][live], money)
    for name, ticks in (("liquidation_price", liquidation), ("bankruptcy_price", bankruptcy)):
        columns[name] = grid_array(
            ticks[live], inst, instruments, tick=True, valid=ticks[live] != NULL_PRICE
        )
    columns["leverage"] = pa.array(book.pos_leverage[live], type=pa.int32())
    return pa.table(columns)


def entry_price_array(
    instruments: InstrumentTable, inst: np.ndarray, qty: np.ndarray, cost: np.ndarray
) -> pa.Array:
    """entry_price = cost / (qty * tick_value) ticks, decimal128 at the price columns' scale
    plus ENTRY_EXTRA_DECIMALS; see the module docstring for rounding."""
    per_tick, price_scale = grid_scale(instruments, tick=True)
    scale = price_scale + ENTRY_EXTRA_DECIMALS
    per_tick = per_tick * 10**ENTRY_EXTRA_DECIMALS  # units of 10**-scale in one tick
    tick_value = qty * instruments.tick_value[inst]  # |qty| * tick_value <= 2**62
    on_grid = cost % tick_value == 0
    ticks = np.where(on_grid, cost // tick_value, 0)
    size = per_tick[inst] if len(per_tick) else np.zeros(0, dtype=np.int64)
    fits = np.abs(ticks) <= INT64_MAX // np.maximum(size, 1)
    units = np.where(on_grid & fits, ticks, 0) * size
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = units >> 63
    # Between ticks (or beyond int64): Python ints, only for these rows, rounded half-even.
    # price x 10**scale = |cost| x per_tick / |qty x tick_value|.
    for p in np.flatnonzero(~(on_grid & fits)).tolist():
        numerator = abs(int(cost[p])) * int(size[p])
        denominator = abs(int(tick_value[p]))
        quotient, remainder = divmod(numerator, denominator)
        if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2):
            quotient += 1
        value = -quotient if (cost[p] < 0) != (tick_value[p] < 0) else quotient
        assert abs(value) < 10**ENTRY_PRECISION, f"entry price of position row {p} too large"
        low = value & (2**64 - 1)
        words[p, 0] = low - 2**64 if low >= 2**63 else low
        words[p, 1] = value >> 64
    return pa.Array.from_buffers(
        pa.decimal128(ENTRY_PRECISION, scale), len(units), [None, pa.py_buffer(words)]
    )


def risk_tables(book: Book) -> tuple[pa.Table, pa.Table]:
    """(accounts, positions) at the book's current marks; every instrument held needs a mark."""
    book.compact()
    held = np.unique(book.pos_instrument[book.pos_qty != 0])
    unmarked = held[~book.mark_set[held]]
    if len(unmarked):
        symbol = book.instruments.instruments[int(unmarked[0])].symbol
        raise Rejected(RejectReason.NO_MARK, f"no mark price for {symbol}")
    return accounts_table(book), positions_table(book)
