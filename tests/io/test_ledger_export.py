"""engine.io.ledger_export: the ledger's postings as an Arrow table, reasons by name."""

from __future__ import annotations

import numpy as np

from engine.book.ledger import CLEARING, EXTERNAL, Ledger, Reason
from engine.io.ledger_export import ledger_to_arrow


def test_every_posting_with_its_reason_name() -> None:
    ledger = Ledger()
    ledger.post(EXTERNAL, 1, 500, Reason.DEPOSIT, event_id=7)
    ledger.post_many(
        np.array([CLEARING, 2]), np.array([1, CLEARING]), np.array([30, 0]), Reason.ADL, 8
    )
    table = ledger_to_arrow(ledger)
    assert table.column_names == ["seq", "event_id", "debit", "credit", "amount", "reason"]
    assert table.to_pylist() == [
        {"seq": 0, "event_id": 7, "debit": -1, "credit": 1, "amount": 500, "reason": "deposit"},
        {"seq": 1, "event_id": 8, "debit": -2, "credit": 1, "amount": 30, "reason": "adl"},
    ]
