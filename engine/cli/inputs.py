"""Arguments shared by the subcommands: one definition of each option, so the commands
cannot drift apart. How the files become a book is engine.io.book_inputs."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE, FixedPointError, parse_decimal, to_rate
from engine.book.reasons import RejectReason
from engine.waterfall.profile import PROFILES_DIR, Profile, ProfileError


def shipped_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def profile_argument(text: str) -> str:
    """`--profile`: an existing TOML file, or the name of a shipped profile (checked while the
    command line is parsed, so a typo is a usage error that lists the shipped names)."""
    path = Path(text)
    if path.is_file() or (PROFILES_DIR / f"{text}.toml").is_file():
        return text
    where = "no such file" if path.suffix == ".toml" or "/" in text else "not a shipped profile"
    raise argparse.ArgumentTypeError(
        f"{text!r}: {where}; shipped profiles: {', '.join(shipped_profiles())}"
        " (or give a TOML file)"
    )


def profile_path(text: str) -> Path:
    """`--profile` as a file: a shipped name becomes the shipped file."""
    checked = profile_argument(text)
    path = Path(checked)
    return path if path.is_file() else PROFILES_DIR / f"{checked}.toml"


def out_directory(text: str) -> Path:
    """An output directory: may not exist yet, but must not be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is an existing file, not a directory")
    return path


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
    parser.add_argument(
        "--out", required=True, type=out_directory, help="output directory (created if missing)"
    )


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


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The risk models' extra inputs (engine.io.model_inputs documents the columns)."""
    parser.add_argument(
        "--collateral", type=Path, help="collateral balances: account_id, asset, qty"
    )
    parser.add_argument("--collateral-prices", type=Path, help="collateral prices: asset, price")


def load_profile(path: Path) -> Profile:
    """A profile file, or `invalid_profile` naming what is wrong."""
    try:
        return Profile.load(path)
    except ProfileError as exc:
        raise Rejected(RejectReason.INVALID_PROFILE, str(exc)) from None
