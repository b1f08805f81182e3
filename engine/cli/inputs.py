"""Arguments shared by the subcommands: one definition of each option, so the commands
cannot drift apart. How the files become a book is engine.io.book_inputs."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE, FixedPointError, parse_decimal, to_rate
from engine.book.reasons import RejectReason
from engine.waterfall.profile import Profile, ProfileError


def add_book_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--instruments", required=required, type=Path, help="JSON or TOML")
    parser.add_argument("--accounts", required=required, type=Path, help="account_id, balance")
    parser.add_argument(
        "--positions",
        required=required,
        type=Path,
        help="account_id, symbol, qty, entry_price [, leverage]",
    )


def add_out_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output directory")


def add_marks_and_out_arguments(
    parser: argparse.ArgumentParser, *, marks_required: bool = True
) -> None:
    parser.add_argument("--marks", required=marks_required, type=Path, help="symbol, mark_price")
    add_out_argument(parser)


def add_warning_level_argument(parser: argparse.ArgumentParser, default: str | None) -> None:
    """`--warning-level`; None as the default: the profile's."""
    shown = ": the profile's" if default is None else f" {default}"
    parser.add_argument(
        "--warning-level",
        default=default,
        help=f"margin call when maintenance margin >= this x equity (default{shown})",
    )


def warning_rate(text: str, option: str = "--warning-level") -> int:
    """A warning level such as 0.8 as a rate over RATE_SCALE, in (0, 1]."""
    rate = to_rate(parse_decimal(text, option), option)
    if not 0 < rate <= RATE_SCALE:
        raise FixedPointError(f"{option}: must be above 0 and at most 1, got {text}")
    return rate


def load_profile(path: Path) -> Profile:
    """A profile file, or `invalid_profile` naming what is wrong."""
    try:
        return Profile.load(path)
    except ProfileError as exc:
        raise Rejected(RejectReason.INVALID_PROFILE, str(exc)) from None
