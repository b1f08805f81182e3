"""What a subcommand hands back to `clearing`'s entry point: its exit status and the
`result` object of its --json document (docs/cli.md gives each command's schema).

The document is one JSON object on stdout:

    {"command": "risk", "ok": true, "exit_code": 0, "engine_version": "0.1.0",
     "result": {...}}                            # the command's own fields
    {"command": "risk", "ok": false, "exit_code": 3, "engine_version": "0.1.0",
     "error": {"kind": "rejected_input", "reason": "off_grid", "message": "..."}}

Money and prices in `result` are decimal strings (exact), counts are integers, durations
are seconds as numbers, paths are strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TextIO

from engine._version import __version__
from engine.cli.exit_codes import EXIT_OK, NAMES


@dataclass
class Outcome:
    result: dict[str, Any] = field(default_factory=dict)
    status: int = EXIT_OK


def document(
    command: str | None,
    status: int,
    result: dict[str, Any] | None = None,
    *,
    reason: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "command": command,
        "ok": status == EXIT_OK,
        "exit_code": status,
        "engine_version": __version__,
    }
    if result is not None:
        doc["result"] = result
    if message is not None:
        doc["error"] = {"kind": NAMES.get(status, "error"), "reason": reason, "message": message}
    return doc


def emit(doc: dict[str, Any], stream: TextIO) -> None:
    stream.write(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    stream.flush()
