"""The profile's `[exchange]` section: which futures exchange conventions a venue applies.

    [exchange]
    margin_call_grace_ms = 3600000        # a margin call's deadline after the event; 0: none
    price_limit_locked = "forced_reduction" # or "hold": what a limit-locked market does
    liquidation_priority = "proprietary_first"  # or "none": the CFFEX forced-close order

Every key is optional; the defaults (no grace, hold, no priority) leave a profile without
the section behaving exactly as before. Parsing raises ExchangeRulesError naming the key
(engine.waterfall.profile turns it into a ProfileError).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOCKED_ACTIONS = ("hold", "forced_reduction")
LIQUIDATION_PRIORITIES = ("none", "proprietary_first")
GRACE_MS_MAX = 30 * 24 * 3600 * 1000  # thirty days


class ExchangeRulesError(ValueError):
    """A malformed `[exchange]` section; the message names the key."""


@dataclass(frozen=True)
class ExchangeRules:
    # After a margin change, an account it leaves short gets a margin call due this long
    # after the change's event time, and is held (not liquidated) until then; 0: no calls,
    # the waterfall takes such accounts at once.
    margin_call_grace_ms: int = 0
    # A breached account that holds the losing side of a limit-locked market cannot be
    # unwound: "hold" keeps it with a margin call, "forced_reduction" first closes its
    # losing positions there against profitable opposite positions pro rata.
    price_limit_locked: str = "hold"
    # "proprietary_first": proprietary accounts are liquidated before brokerage accounts
    # (the first key of the liquidation order); "none": the order is the margin ratio's.
    liquidation_priority: str = "none"

    @property
    def proprietary_first(self) -> bool:
        return self.liquidation_priority == "proprietary_first"

    @property
    def forced_reduction(self) -> bool:
        return self.price_limit_locked == "forced_reduction"


def parse_exchange_rules(table: Any) -> ExchangeRules:
    if not isinstance(table, dict):
        raise ExchangeRulesError("exchange: expected a table")
    unknown = sorted(set(table) - {f for f in ExchangeRules.__dataclass_fields__})
    if unknown:
        raise ExchangeRulesError(f"exchange.{unknown[0]}: unknown key")
    grace = table.get("margin_call_grace_ms", 0)
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= GRACE_MS_MAX:
        raise ExchangeRulesError(
            f"exchange.margin_call_grace_ms: expected milliseconds from 0 to {GRACE_MS_MAX}"
        )
    locked = table.get("price_limit_locked", "hold")
    if locked not in LOCKED_ACTIONS:
        raise ExchangeRulesError(
            f"exchange.price_limit_locked: expected one of {LOCKED_ACTIONS}, got {locked!r}"
        )
    priority = table.get("liquidation_priority", "none")
    if priority not in LIQUIDATION_PRIORITIES:
        raise ExchangeRulesError(
            f"exchange.liquidation_priority: expected one of {LIQUIDATION_PRIORITIES},"
            f" got {priority!r}"
        )
    return ExchangeRules(grace, str(locked), str(priority))
