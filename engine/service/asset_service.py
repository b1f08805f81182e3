"""`clearing serve` with an asset-liability profile (`[model] kind = "asset_liability"`):
the book it opens, its snapshots and their recovery, around
engine.service.asset_liability_tick.AssetLiabilityService. The driver, the sources, the
sinks and the journal are the futures service's (engine.service.driver, files_adapter,
the Kafka adapters); only the book and the snapshot format differ.

A fresh start opens the book of the asset table (`--assets`), with the opening balances,
debts and prices of the batch inputs when given (`--balances`, `--liabilities`,
`--asset-prices`, all three: engine.io.asset_liability_inputs), and the insurance fund with
`--fund`. A restart restores the newest valid snapshot (engine.io.asset_snapshot: Arrow IPC,
checksum), its service state in `extra` as the futures service's, and the driver replays
the journal after it, so a restart ends where an uninterrupted run does, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.book.errors import Rejected
from engine.book.fixed import parse_decimal, to_units
from engine.book.reasons import RejectReason
from engine.io.asset_liability_inputs import book_from_files
from engine.io.asset_snapshot import latest_valid_asset_snapshot, write_asset_snapshot
from engine.io.snapshot import SnapshotError, prune_snapshots
from engine.margin.accounts import HELD, AssetBook
from engine.margin.assets import AssetTable
from engine.margin.liquidation import open_fund
from engine.service.asset_liability_tick import AssetLiabilityService
from engine.service.snapshots import Recovery, Snapshotter, snapshot_name
from engine.service.state import ServiceConfig, ServiceState
from engine.waterfall.profile import Profile


def fresh_asset_book(
    assets: Path | None,
    opening: tuple[Path | None, Path | None, Path | None],
    fund: str,
    profile: Profile,
) -> AssetBook:
    """The book of the asset table (and the opening files: balances, liabilities, prices),
    with the insurance fund open holding `fund` (decimal money)."""
    if assets is None:
        raise Rejected(
            RejectReason.INVALID_INPUT,
            f"--assets: profile {profile.name} is an asset-liability model; give its asset table",
        )
    table = AssetTable.load(assets)
    balances, liabilities, prices = opening
    if balances is None and liabilities is None and prices is None:
        book = AssetBook(table)
    elif balances is None or liabilities is None or prices is None:
        raise Rejected(
            RejectReason.INVALID_INPUT,
            "--balances, --liabilities and --asset-prices: give all three or none",
        )
    else:
        book = book_from_files(table, balances, liabilities, prices)
    step = Decimal(1).scaleb(-table.money_decimals)
    amount = to_units(parse_decimal(fund, "--fund"), step, "--fund")
    if amount < 0:
        raise Rejected(RejectReason.INVALID_AMOUNT, "--fund must not be negative")
    open_fund(book, profile, amount)
    return book


class AssetSnapshotter(Snapshotter):
    """Snapshotter for an asset-liability service (the same triggers and pruning)."""

    def write(self, service: Any, extra: dict[str, Any]) -> Path:
        started = self.clock()
        tick = service.state.tick
        path = write_asset_snapshot(
            service.book, self.directory / snapshot_name(tick), service.extra() | extra
        )
        prune_snapshots(self.directory, self.keep)
        self.last_tick = tick
        self.last_time = self.clock()
        self.last_write_s = self.last_time - started
        self.written.append(path)
        return path


def restore_asset_service(
    directory: str | Path, profile: Profile, config: ServiceConfig
) -> tuple[AssetLiabilityService | None, Recovery]:
    """The service as of the newest valid snapshot in `directory` (None if there is none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None, Recovery()
    states: dict[Path, ServiceState] = {}

    def check(path: Path, book: AssetBook, extra: dict[str, Any]) -> None:
        saved = extra.get("service")
        if not isinstance(saved, dict) or saved.get("shard") != config.shard:
            raise SnapshotError(f"{path}: not a service snapshot of shard {config.shard!r}")
        if book.index.find(profile.fund_account_id) is None:
            raise SnapshotError(f"{path}: the profile's insurance fund is not in the book")
        try:
            states[path] = ServiceState.from_extra(saved)
            int(extra.get("journal_position", 0))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"{path}: service state unreadable: {exc!r}"[:300]) from None

    found, skipped = latest_valid_asset_snapshot(directory, check)
    if found is None:
        return None, Recovery(None, skipped)
    path, book, extra = found
    service = AssetLiabilityService(book, profile, config, states[path])
    service.journal_position = int(extra.get("journal_position", 0))
    return service, Recovery(path, skipped)


def open_asset_service(
    config: Any, profile: Profile, log: Callable[[str], None]
) -> tuple[AssetLiabilityService, Path | None]:
    """As engine.service.app.open_service, for an asset-liability profile (`config` a
    ServeConfig): the service, and the snapshot it was restored from (None: fresh)."""
    if config.bootstrap_servers is None and config.synthetic:
        raise Rejected(
            RejectReason.INVALID_INPUT,
            f"profile {profile.name} (asset-liability): give --prices-file / --events-file or"
            " --bootstrap-servers (there is no synthetic asset-liability book)",
        )
    if config.snapshot_dir is not None:
        service, recovery = restore_asset_service(config.snapshot_dir, profile, config.service)
        for reason in recovery.skipped:
            log(f"snapshot skipped: {reason}")
        if service is not None:
            log(f"restored {recovery.path} (tick {service.state.tick})")
            return service, recovery.path
    opening = (config.balances, config.liabilities, config.asset_prices)
    book = fresh_asset_book(config.assets, opening, config.fund, profile)
    return AssetLiabilityService(book, profile, config.service), None


def fund_balance(book: Any, profile: Profile) -> Decimal:
    """The insurance fund's money balance, in money (either kind of book)."""
    if isinstance(book, AssetBook):
        money = book.assets.money
        units = book.of(HELD, money, profile.fund_account_id)
        return units * Decimal(1).scaleb(-book.assets.money_decimals)
    row = book.row_of(profile.fund_account_id)
    return int(book.balance[row]) * Decimal(1).scaleb(-book.instruments.money_decimals)
