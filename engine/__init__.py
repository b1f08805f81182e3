"""Clearing-house risk engine: exact margin sweep, liquidation waterfall, settlement."""

from engine._version import __version__

__all__ = ["__version__"]
