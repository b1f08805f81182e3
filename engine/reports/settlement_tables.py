"""Settlement outputs as Arrow tables: statements and the run's ledger, money exact.

Money columns are decimal128 at the book's money scale (exact, and numbers to polars and
duckdb), built from the raw int64 units without a float or a per-row loop.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.book.book import STATUS_NAMES, Book
from engine.book.ledger import Reason
from engine.reports.decimals import money_array
from engine.settlement.results import SettlementResult


def statements_table(book: Book, result: SettlementResult) -> pa.Table:
    """One row per account: the statement, the closing risk figures, the status."""
    md = book.instruments.money_decimals
    closing = result.closing
    columns: dict[str, pa.Array] = {"account_id": pa.array(book.account_id, type=pa.int64())}
    for name, units in (
        ("opening_balance", result.opening_balance),
        ("realized_pnl", result.realized_pnl),
        ("funding", result.funding),
        ("fees", result.fees),
        ("liquidation_losses", result.liquidation_losses),
        ("closing_balance", book.balance),
        ("unrealized_pnl", closing.equity - book.balance),
        ("equity", closing.equity),
        ("maintenance_margin", closing.maintenance_margin),
        ("opening_equity", result.opening_equity),
        ("equity_change", closing.equity - result.opening_equity),
    ):
        columns[name] = money_array(units, md)
    columns["margin_ratio"] = pa.array(closing.margin_ratio, type=pa.float64())
    columns["status"] = pa.DictionaryArray.from_arrays(
        pa.array(closing.status.astype(np.int8)), pa.array(list(STATUS_NAMES))
    )
    return pa.table(columns)


def ledger_table(book: Book, result: SettlementResult) -> pa.Table:
    """Every posting of the run; `symbol` set on variation-margin and funding postings."""
    ledger = book.ledger
    start = result.ledger_start
    event_id = ledger.column("event_id")[start:]
    symbol_code = np.full(len(event_id), -1, dtype=np.int32)
    if result.event_instrument:
        top = max(result.event_instrument)
        lookup = np.full(top - result.event_start + 1, -1, dtype=np.int32)
        for event, inst in result.event_instrument.items():
            lookup[event - result.event_start] = inst
        inside = (event_id >= result.event_start) & (event_id <= top)
        symbol_code[inside] = lookup[event_id[inside] - result.event_start]
    symbols = pa.array([i.symbol for i in book.instruments.instruments], type=pa.string())
    reason_names = pa.array([""] + [r.name.lower() for r in Reason], type=pa.string())
    return pa.table(
        {
            "seq": pa.array(ledger.column("seq")[start:]),
            "event_id": pa.array(event_id),
            "debit": pa.array(ledger.column("debit")[start:]),
            "credit": pa.array(ledger.column("credit")[start:]),
            "amount": money_array(ledger.column("amount")[start:], book.instruments.money_decimals),
            "reason": pa.DictionaryArray.from_arrays(
                pa.array(ledger.column("reason")[start:].astype(np.int8)), reason_names
            ),
            "symbol": pa.DictionaryArray.from_arrays(
                pa.array(symbol_code, mask=symbol_code < 0), symbols
            ),
        }
    )
