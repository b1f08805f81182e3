"""engine.settlement.dates: a date is settled once, in order, unless forced."""

from __future__ import annotations

import pytest

from engine.book.errors import Rejected
from engine.settlement.dates import check_date, settlement_date, with_settled_date


def test_date_guard() -> None:
    check_date("2025-10-12", ["2025-10-10", "2025-10-11"], force=False)
    with pytest.raises(Rejected, match="already settled"):
        check_date("2025-10-11", ["2025-10-11"], force=False)
    with pytest.raises(Rejected, match="before the last settled date 2025-10-11"):
        check_date("2025-10-09", ["2025-10-11"], force=False)
    check_date("2025-10-11", ["2025-10-11"], force=True)
    extra = with_settled_date({"offsets": [1], "settled_dates": ["2025-10-11"]}, "2025-10-11")
    assert extra == {
        "offsets": [1],
        "settled_dates": ["2025-10-11"],
        "settlement_date": "2025-10-11",
    }


def test_settlement_date_is_a_calendar_date() -> None:
    assert settlement_date("2024-02-29") == "2024-02-29"
    with pytest.raises(Rejected, match="expected YYYY-MM-DD, got '2025-1-01'"):
        settlement_date("2025-1-01")
    with pytest.raises(Rejected, match="2025-02-29 is not a calendar date"):
        settlement_date("2025-02-29")
