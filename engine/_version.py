"""The engine's version, read from the installed package's metadata (pyproject.toml's
`version`), so that `clearing --version`, `engine.__version__` and the run metadata agree."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "clearing-engine"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
