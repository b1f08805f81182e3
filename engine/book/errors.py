"""Expected rejections of bad input, each with a reason code a dead-letter consumer can count."""

from __future__ import annotations

from engine.book.reasons import RejectReason


class Rejected(ValueError):
    """Input refused; the engine's state is unchanged. `reason` is a stable `RejectReason`."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        code = RejectReason(reason)  # a code outside the enum is a programmer error
        super().__init__(f"{code}: {message}")
        self.reason = code
        self.detail = message
