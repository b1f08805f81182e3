"""The shared error handling of `clearing`: how a command's expected failures become one
line `error: ...` on stderr, an exit status (engine.cli.exit_codes) and, with --json, one
JSON document on stdout (engine.cli.outcome) instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import Any, NoReturn

from engine.book.errors import Rejected
from engine.book.fixed import FixedPointError
from engine.book.instruments import InstrumentError
from engine.cli.exit_codes import EXIT_INPUT, EXIT_RUNTIME
from engine.cli.outcome import Outcome, document, emit
from engine.io.snapshot import SnapshotError
from engine.service.app import Unavailable
from engine.stress.scenario_model import ScenarioError
from engine.waterfall.profile import ProfileError

# Refusals of the input that carry no RejectReason of their own.
INPUT_ERRORS = (
    InstrumentError,
    FixedPointError,
    OverflowError,
    ScenarioError,
    ProfileError,
    SnapshotError,
)
UNREADABLE = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


class UsageError(Exception):
    """The command line is wrong (argparse's complaint, exit status 2)."""


class Parser(argparse.ArgumentParser):
    """argparse, raising UsageError instead of exiting, so that --json can report it."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def add_json_argument(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        default=default,
        help="one JSON document on stdout (docs/cli.md); human output on stderr",
    )


def execute(name: str, run: Callable[[argparse.Namespace], Outcome], args: Any) -> int:
    """Run a command; its exit status. With args.json its human output goes to stderr."""
    as_json = bool(getattr(args, "json", False))
    try:
        if as_json:
            with redirect_stdout(sys.stderr):
                outcome = run(args)
            emit(document(name, outcome.status, outcome.result), sys.stdout)
        else:
            outcome = run(args)
        return outcome.status
    except Rejected as exc:
        return fail(name, EXIT_INPUT, str(exc.reason), exc.detail, as_json)
    except INPUT_ERRORS as exc:
        return fail(name, EXIT_INPUT, "invalid_input", str(exc), as_json)
    except UNREADABLE as exc:
        return fail(name, EXIT_INPUT, "unreadable_file", _os_message(exc), as_json)
    except Unavailable as exc:
        return fail(name, EXIT_RUNTIME, "unavailable", str(exc), as_json)
    except OSError as exc:
        return fail(name, EXIT_RUNTIME, "os_error", _os_message(exc), as_json)
    except KeyboardInterrupt:
        return fail(name, EXIT_RUNTIME, "interrupted", "interrupted", as_json)


def _os_message(exc: OSError) -> str:
    return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")


def fail(command: str | None, status: int, reason: str, message: str, as_json: bool) -> int:
    print(f"error: {message}", file=sys.stderr)
    if as_json:
        emit(document(command, status, reason=reason, message=message), sys.stdout)
    return status
