"""The ledger as an Arrow table, for Parquet outputs: one row per posting, reasons by name.

The ledger itself (engine.book.ledger) is plain numpy columns in memory; turning it into a
file format happens here, at the output boundary.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.book.ledger import Ledger, Reason


def ledger_to_arrow(ledger: Ledger) -> pa.Table:
    """Every posting: seq, event_id, debit, credit, amount (raw money units), reason (text)."""
    reason_names = np.full(max(Reason) + 1, "", dtype=object)  # by value: codes may skip
    for r in Reason:
        reason_names[r] = r.name.lower()
    return pa.table(
        {
            "seq": ledger.column("seq"),
            "event_id": ledger.column("event_id"),
            "debit": ledger.column("debit"),
            "credit": ledger.column("credit"),
            "amount": ledger.column("amount"),
            "reason": pa.array(reason_names[ledger.column("reason")], type=pa.string()),
        }
    )
