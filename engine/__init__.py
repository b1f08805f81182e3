"""A clearing-house risk engine: margin, liquidation waterfall, settlement, stress.

The Python API (engine.api, documented in docs/api.md) is here: `engine.load_book`,
`engine.sweep`, `engine.liquidation_prices`, `engine.liquidate` (the waterfall),
`engine.settle`, `engine.stress_test`. It is imported on first use, so `import engine`
stays cheap.
"""

from __future__ import annotations

from typing import Any

from engine._version import __version__

_API = frozenset(
    {
        "Book",
        "Rejected",
        "RiskTables",
        "SettlementTables",
        "StressRun",
        "WaterfallTables",
        "describe",
        "events_table",
        "liquidation_prices",
        "load_book",
        "settle",
        "stress_test",
        "sweep",
        "liquidate",
    }
)


def __getattr__(name: str) -> Any:
    if name in _API:
        from engine import api

        return getattr(api, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API)


__all__ = ["__version__", *sorted(_API)]
