"""The risk report of a book at its current marks, as two Arrow tables (accounts, positions).

Every decimal column appears twice: float64 under its name, for convenience, and the exact
decimal text under `<name>_exact` (money at money_decimals places, prices at the tick's
places, sizes at the lot's places). The exact text is built from the integers with integer
division and string padding, never through a float (pyarrow's decimal -> string cast
would write 1E-8 for small values).

Choices stated here once:
- entry_price is cost / (qty * tick_value) ticks. On the tick grid (always, for a book
  loaded from files) it is exact at the tick's places; between ticks (after partial closes
  by fills) it is rounded half-even to four more places than the tick.
- liquidation_price / bankruptcy_price are null where no price breaches (NULL_PRICE) and
  where the price does not fit the int64 range at the tick's places.
- Positions are the live slots (qty != 0) in the book's order: by account row, then
  instrument index.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine._native import NULL_PRICE
from engine.book.book import STATUS_NAMES, Book
from engine.book.errors import Rejected
from engine.book.fixed import format_units
from engine.book.instruments import InstrumentTable
from engine.book.limits import INT64_MAX
from engine.book.reasons import RejectReason

ENTRY_EXTRA_DECIMALS = 4
_POW10_FLOAT = 10.0 ** np.arange(39)  # exact as float64 up to 10**22, nearest above


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


def _floats(units: np.ndarray, decimals: int | np.ndarray) -> np.ndarray:
    # Both operands are exact below 2**53, so the quotient is the nearest float to the value.
    return units.astype(np.float64) / _POW10_FLOAT[decimals]


def decimal_columns(
    name: str, units: np.ndarray, decimals: int | np.ndarray, valid: np.ndarray | None = None
) -> dict[str, pa.Array]:
    """`name` (float64) and `name_exact` (text) of integer units; null where not `valid`."""
    mask = None if valid is None else ~valid
    return {
        name: pa.array(_floats(units, decimals), type=pa.float64(), mask=mask),
        f"{name}_exact": _with_nulls(exact_strings(units, decimals), mask),
    }


def _with_nulls(text: pa.Array, mask: np.ndarray | None) -> pa.Array:
    if mask is None or not mask.any():
        return text
    return pc.if_else(pa.array(mask), pa.scalar(None, type=pa.string()), text)


def _grid_scale(instruments: InstrumentTable, tick: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per instrument: (units of 10**-places in one step, places), for ticks or lots."""
    places, per_step = [], []
    for inst in instruments.instruments:
        d = inst.price_decimals if tick else inst.qty_decimals
        step = inst.tick_size if tick else inst.lot_size
        places.append(d)
        per_step.append(int(step.scaleb(d)))
    return np.asarray(per_step, dtype=np.int64), np.asarray(places, dtype=np.int64)


def _scaled(steps: np.ndarray, per_step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """steps * per_step and where that fits int64 (elsewhere the product is 0)."""
    fits = np.abs(steps) <= INT64_MAX // per_step
    return np.where(fits, steps, 0) * per_step, fits


def _columns(tasks: list[Callable[[], dict[str, pa.Array]]]) -> dict[str, pa.Array]:
    """Run column builders on threads (pyarrow and numpy release the GIL), keep their order."""
    workers = max(1, min(len(tasks), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(lambda task: task(), tasks))
    return {name: array for part in parts for name, array in part.items()}


def accounts_table(book: Book) -> pa.Table:
    risk = book.sweep()
    assert risk.initial_margin is not None
    money = book.instruments.money_decimals
    columns: dict[str, pa.Array] = {"account_id": pa.array(book.account_id, type=pa.int64())}
    columns |= _columns(
        [
            partial(decimal_columns, name, units, money)
            for name, units in (
                ("balance", book.balance),
                ("equity", risk.equity),
                ("maintenance_margin", risk.maintenance_margin),
                ("initial_margin", risk.initial_margin),
            )
        ]
    )
    columns["margin_ratio"] = pa.array(risk.margin_ratio, type=pa.float64())
    columns["status"] = pc.take(pa.array(STATUS_NAMES), pa.array(risk.status))
    return pa.table(columns)


def positions_table(book: Book) -> pa.Table:
    instruments = book.instruments
    money = instruments.money_decimals
    margins = book.position_margins()
    liquidation, bankruptcy = book.liquidation_prices()
    owner = book.position_owner()
    live = np.flatnonzero(book.pos_qty != 0)
    inst = book.pos_instrument[live]
    qty = book.pos_qty[live]
    cost = book.pos_cost[live]
    symbols = pa.array([i.symbol for i in instruments.instruments], type=pa.string())
    tick_per_step, tick_places = _grid_scale(instruments, tick=True)
    lot_per_step, lot_places = _grid_scale(instruments, tick=False)
    price_places = tick_places[inst]

    qty_units, fits = _scaled(qty, lot_per_step[inst])
    if not fits.all():
        raise OverflowError("a position size does not fit int64 at its lot's decimal places")
    mark_units, mark_fits = _scaled(book.mark[inst], tick_per_step[inst])
    tasks: list[Callable[[], dict[str, pa.Array]]] = [
        partial(decimal_columns, "qty", qty_units, lot_places[inst]),
        partial(_entry_price_columns, instruments, inst, qty, cost, tick_per_step, tick_places),
        partial(decimal_columns, "mark_price", mark_units, price_places, mark_fits),
    ]
    for name in ("notional", "unrealized_pnl", "maintenance_margin", "initial_margin"):
        tasks.append(partial(decimal_columns, name, margins[name][live], money))
    for name, ticks in (("liquidation_price", liquidation), ("bankruptcy_price", bankruptcy)):
        price_units, fits = _scaled(ticks[live], tick_per_step[inst])
        valid = fits & (ticks[live] != NULL_PRICE)
        tasks.append(partial(decimal_columns, name, price_units, price_places, valid))
    columns: dict[str, pa.Array] = {
        "account_id": pa.array(book.account_id[owner[live]], type=pa.int64()),
        "symbol": pc.take(symbols, pa.array(inst)),
    }
    columns |= _columns(tasks)
    columns["leverage"] = pa.array(book.pos_leverage[live], type=pa.int32())
    return pa.table(columns)


def _entry_price_columns(
    instruments: InstrumentTable,
    inst: np.ndarray,
    qty: np.ndarray,
    cost: np.ndarray,
    tick_per_step: np.ndarray,
    tick_places: np.ndarray,
) -> dict[str, pa.Array]:
    """entry_price = cost / (qty * tick_value) ticks; see the module docstring for rounding."""
    per_tick = qty * instruments.tick_value[inst]  # |qty| * tick_value <= 2**62: no overflow
    on_grid = cost % per_tick == 0
    ticks = np.where(on_grid, cost // per_tick, 0)
    units, fits = _scaled(ticks, tick_per_step[inst])
    places = tick_places[inst]
    slow = np.flatnonzero(~(on_grid & fits))
    if len(slow) == 0:
        return decimal_columns("entry_price", units, places)
    floats = _floats(units, places)
    # Between ticks (or beyond int64 at the tick's places): Python ints, only for these rows.
    # price x 10**d = |cost| x per_step x 10**EXTRA / |qty x tick_value|, d = places + EXTRA.
    texts = []
    extra = 10**ENTRY_EXTRA_DECIMALS
    for p in slow.tolist():
        places_p = int(places[p])
        numerator = abs(int(cost[p])) * int(tick_per_step[inst[p]])
        denominator = abs(int(per_tick[p]))
        quotient, remainder = divmod(numerator * extra, denominator)
        if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2):
            quotient += 1
        sign = -1 if cost[p] < 0 else 1
        texts.append(format_units(sign * quotient, places_p + ENTRY_EXTRA_DECIMALS))
        # int / int is correctly rounded in Python.
        floats[p] = sign * numerator / (denominator * 10**places_p)
    mask = np.zeros(len(units), dtype=bool)
    mask[slow] = True
    text = pc.replace_with_mask(
        exact_strings(units, places), pa.array(mask), pa.array(texts, type=pa.string())
    )
    return {"entry_price": pa.array(floats, type=pa.float64()), "entry_price_exact": text}


def risk_tables(book: Book) -> tuple[pa.Table, pa.Table]:
    """(accounts, positions) at the book's current marks; every instrument held needs a mark."""
    book.compact()
    held = np.unique(book.pos_instrument[book.pos_qty != 0])
    unmarked = held[~book.mark_set[held]]
    if len(unmarked):
        symbol = book.instruments.instruments[int(unmarked[0])].symbol
        raise Rejected(RejectReason.NO_MARK, f"no mark price for {symbol}")
    return accounts_table(book), positions_table(book)
