"""Which dates may be settled: calendar dates (YYYY-MM-DD), each once, in order, unless forced.

Idempotence lives with the caller's metadata: `settled_dates` (ISO dates) travels in the
snapshot's extra metadata; `check_date` refuses a date already settled or before the last.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def settlement_date(text: str) -> str:
    """`text` if it is a calendar date written YYYY-MM-DD (the form `settled_dates` keeps)."""
    if not _DATE.fullmatch(text):
        raise Rejected(RejectReason.INVALID_DATE, f"--date: expected YYYY-MM-DD, got {text!r}")
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        raise Rejected(
            RejectReason.INVALID_DATE, f"--date: {text} is not a calendar date"
        ) from None
    return text


def check_date(date: str, settled_dates: Sequence[str], *, force: bool) -> None:
    """Refuse a date already settled, or before the last settled one, unless forced."""
    if force:
        return
    if date in settled_dates:
        raise Rejected(
            RejectReason.ALREADY_SETTLED,
            f"{date} is already settled in this book (use --force to redo it)",
        )
    last = max(settled_dates, default="")
    if date < last:
        raise Rejected(
            RejectReason.DATE_OUT_OF_ORDER,
            f"{date} is before the last settled date {last} (use --force to settle it anyway)",
        )


def with_settled_date(extra: dict[str, object], date: str) -> dict[str, object]:
    """The next snapshot's metadata: the previous one's with `date` added to settled_dates."""
    dates = extra.get("settled_dates", [])
    assert isinstance(dates, list)
    return {**extra, "settled_dates": sorted({*map(str, dates), date}), "settlement_date": date}
