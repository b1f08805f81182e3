"""Expected rejections of bad input, each with a reason code a dead-letter consumer can count."""

from __future__ import annotations


class Rejected(ValueError):
    """Input refused; the engine's state is unchanged. `reason` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message
