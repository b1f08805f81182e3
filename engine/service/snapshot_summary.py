"""What a service snapshot holds, as lines of text, after checking its checksum.

The tick, the offsets consumed per partition, the dedup state, the insurance fund, the
house accounts, the marks and, when every instrument with positions has a mark, the
customers by margin status at those marks and the insurance fund's own status. House
accounts (ids from 2^62 up, the profile's fund and unwind accounts) are never counted as
customers (engine.reports.customers). A file that fails its checksum is rejected
(`invalid_snapshot`). `clearing inspect` prints these lines. An asset-liability service's
snapshot is described by engine.service.asset_snapshot_summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.book.errors import Rejected
from engine.book.fixed import format_units
from engine.book.ledger import HOUSE_ACCOUNTS
from engine.book.reasons import RejectReason
from engine.io.snapshot import SnapshotError, read_snapshot
from engine.reports.customers import customer_mask, fund_state, status_tally
from engine.service.asset_snapshot_summary import is_asset_snapshot, summarize_assets
from engine.waterfall.profile import Profile


def summarize(path: Path, profile: Profile | None = None) -> list[str]:
    """The snapshot at `path` described line by line; `profile` names the house accounts
    (default: the shipped profile)."""
    profile = Profile.shipped() if profile is None else profile
    if is_asset_snapshot(path):  # an asset-liability service's
        return summarize_assets(path, profile)
    try:
        book, extra = read_snapshot(path)
    except SnapshotError as exc:
        raise Rejected(RejectReason.INVALID_SNAPSHOT, str(exc)) from None
    money = book.instruments.money_decimals
    service = extra.get("service", {})
    book.compact()
    live = book.pos_qty != 0
    reserved = ~customer_mask(book, profile)
    lines = [f"snapshot     {path} (checksum ok)"]
    if service:
        lines.append(f"tick         {service['tick']} (event time {service['tick_ts']} ms)")
        lines.append(f"shard        {service['shard']}")
    lines.append(
        f"accounts     {book.n_accounts:,} ({int((~reserved).sum()):,} customers),"
        f" positions {int(live.sum()):,}, instruments {len(book.instruments)}"
    )
    lines.append(
        f"balances     {format_units(sum(book.balance.tolist()), money)} (traders and funds)"
    )
    for row in np.flatnonzero(reserved).tolist():
        account = int(book.account_id[row])
        equity, _ = book.account_margin(account)
        lines.append(
            f"house book   {account}: balance {format_units(int(book.balance[row]), money)},"
            f" equity {format_units(equity, money)}, positions {len(book.positions_of(account))}"
        )
    for account, name in HOUSE_ACCOUNTS.items():
        lines.append(f"house        {name}: {format_units(book.house_balance[account], money)}")
    lines.append("marks")
    for i, inst in enumerate(book.instruments.instruments):
        if book.mark_set[i]:
            seq = service.get("mark_seq", {}).get(inst.symbol)
            price = format_units(int(book.mark[i]), inst.price_decimals)
            lines.append(
                f"  {inst.symbol:<14} {price}" + (f" (seq {seq})" if seq is not None else "")
            )
        else:
            lines.append(f"  {inst.symbol:<14} (none yet)")
    if service:
        lines.append("offsets (next to consume)")
        for name, offset in service["offsets"].items():
            lines.append(f"  {name:<30} {offset:,}")
        for name, last in service["last_event_id"].items():
            lines.append(f"last event   {name}: {last}")
        for symbol, (side, count) in service["held"].items():
            lines.append(
                f"price held   {symbol}: {count} outside the band ({'up' if side > 0 else 'down'})"
            )
        lines.append(f"margin calls {len(service['margin_call']):,} accounts")
    if bool(book.mark_set[book.pos_instrument[live]].all()):
        status = book.sweep(with_initial_margin=False).status
        lines.append(f"status       {status_tally(book, status, profile).text()} (customers)")
        fund = fund_state(book, status, profile)
        if fund is not None:
            lines.append(f"fund         {fund.text(money)}")
    else:
        lines.append("status       (not every instrument with positions has a mark)")
    return lines
