"""The service's documents for the futures exchange conventions (engine.exchange): margin
calls with a deadline and their outcome (on `margin-calls`), and the sides of a forced
position reduction (on `liquidations`). Money twice, as in engine.service.outputs: decimal
text and raw integer units."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.book.book import Book
from engine.book.fixed import format_units
from engine.exchange.forced_reduction import Reduction
from engine.exchange.margin_calls import MarginCall


def deadline_call_doc(call: MarginCall, money_decimals: int) -> dict[str, Any]:
    """A margin call with a deadline: the account is held until `deadline_ts`."""
    return {
        "kind": "margin_call",
        "account": call.account_id,
        "reason": call.reason,
        "equity": format_units(call.equity, money_decimals),
        "maintenance_margin": format_units(call.maintenance_margin, money_decimals),
        "call_amount": format_units(call.call_amount, money_decimals),
        "equity_units": call.equity,
        "maintenance_margin_units": call.maintenance_margin,
        "initial_margin_units": call.initial_margin,
        "shortfall_units": call.shortfall,
        "call_amount_units": call.call_amount,
        "deadline_ts": call.deadline_ts,
    }


def call_outcome_doc(account_id: int, outcome: str) -> dict[str, Any]:
    """`margin_call_met` (no longer short) or `margin_call_lapsed` (liquidated)."""
    return {"kind": f"margin_call_{outcome}", "account": account_id}


def reduction_doc(book: Book, reduction: Reduction) -> dict[str, Any]:
    inst = book.instruments.instruments[reduction.instrument]
    money = book.instruments.money_decimals
    return {
        "kind": "forced_reduction",
        "account": reduction.account_id,
        "role": "reducer" if reduction.reducer else "counterparty",
        "book_event_id": reduction.event_id,
        "symbol": inst.symbol,
        "qty": str(Decimal(reduction.qty) * inst.lot_size),
        "price": str(Decimal(reduction.price) * inst.tick_size),
        "realized": format_units(reduction.realized, money),
        "qty_lots": reduction.qty,
        "price_ticks": reduction.price,
        "realized_units": reduction.realized,
    }
