"""Expected rejections of bad input, each with a reason code a dead-letter consumer can count."""

from __future__ import annotations

import numpy as np

from engine.book.reasons import RejectReason


class Rejected(ValueError):
    """Input refused; the engine's state is unchanged. `reason` is a stable `RejectReason`."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        code = RejectReason(reason)  # a code outside the enum is a programmer error
        super().__init__(f"{code}: {message}")
        self.reason = code
        self.detail = message


def as_int(value: object, what: str) -> int:
    """`value` as a Python int, refusing bools, floats and anything not an integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise Rejected(
            RejectReason.INVALID_VALUE, f"{what} must be an integer number of units, got {value!r}"
        )
    return int(value)
