"""Waterfall events as a readable Arrow table: what `clearing liquidate`, the stress run and
the Python API (engine.api) write and return.

The waterfall logs each action as integers (engine.waterfall.events: kind code, instrument
index, lots, ticks, money units). Decoded here, one row per action in the order taken:

    kind          string     liquidation, liquidation_fee, takeover, insurance_payout, adl,
                             socialized_loss, unallocated_loss
    event_id      int64
    account_id    int64
    symbol        string     null for money-only actions
    qty           decimal128 in the instrument's units (signed as the trader's position),
                             at the largest lot scale among the instruments
    qty_lots      int64      the same in lots
    price         decimal128 the execution price, at the largest tick scale
    price_ticks   int64      the same in ticks
    amount        decimal128 the money the action moved, at the money scale
    notional      decimal128 |qty| x price in money; null for money-only actions and where
                             it does not fit int64 units
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.book.instruments import InstrumentTable
from engine.book.limits import VALUE_MAX
from engine.reports.decimals import decimal_array, grid_array, money_array
from engine.waterfall.events import EVENT_KINDS, NO_INSTRUMENT, WaterfallResult


def event_arrays(
    columns: dict[str, np.ndarray], instruments: InstrumentTable
) -> dict[str, pa.Array]:
    """The decoded columns (module docstring) of integer event columns: kind (code in
    EVENT_KINDS), event_id, account_id, instrument (index; NO_INSTRUMENT or < 0 for none),
    qty (lots), price (ticks), amount (money units)."""
    inst = np.asarray(columns["instrument"], dtype=np.int64)
    has_inst = (inst != NO_INSTRUMENT) & (inst >= 0)
    safe_inst = np.where(has_inst, inst, 0)
    qty = np.asarray(columns["qty"], dtype=np.int64)
    price = np.asarray(columns["price"], dtype=np.int64)
    money = instruments.money_decimals
    tick_value = (
        instruments.tick_value[safe_inst] if len(instruments) else np.zeros(len(inst), np.int64)
    )
    # The float bound keeps the integer product from wrapping; rows beyond it are null.
    notional_f = np.abs(qty).astype(np.float64) * price * tick_value
    notional_fits = has_inst & (notional_f < float(VALUE_MAX))
    notional = np.where(notional_fits, np.abs(qty) * price * tick_value, 0)
    symbols = pa.array([i.symbol for i in instruments.instruments], type=pa.string())
    kinds = pa.array(list(EVENT_KINDS), type=pa.string())
    return {
        "kind": pc.take(kinds, pa.array(np.asarray(columns["kind"], dtype=np.int64))),
        "event_id": pa.array(np.asarray(columns["event_id"], dtype=np.int64)),
        "account_id": pa.array(np.asarray(columns["account_id"], dtype=np.int64)),
        "symbol": pc.take(symbols, pa.array(safe_inst, mask=~has_inst, type=pa.int64())),
        "qty": grid_array(qty, safe_inst, instruments, tick=False, valid=has_inst),
        "qty_lots": pa.array(qty, type=pa.int64(), mask=~has_inst),
        "price": grid_array(price, safe_inst, instruments, tick=True, valid=has_inst),
        "price_ticks": pa.array(price, type=pa.int64(), mask=~has_inst),
        "amount": money_array(np.asarray(columns["amount"], dtype=np.int64), money),
        "notional": decimal_array(notional, money, notional_fits),
    }


def events_table(instruments: InstrumentTable, result: WaterfallResult) -> pa.Table:
    """One row per action of one waterfall run, in order, with its sequence number `seq`."""
    columns = result.log.columns()
    n = len(columns["kind"])
    return pa.table(
        {"seq": pa.array(np.arange(n, dtype=np.int64)), **event_arrays(columns, instruments)}
    )
