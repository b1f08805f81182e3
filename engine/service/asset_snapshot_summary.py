"""What an asset-liability service snapshot holds (engine.io.asset_snapshot), as lines of
text, after checking its checksum: engine.service.snapshot_summary's report for a margin
financing or spot margin book.

The tick, the shard, the accounts (customers apart from house accounts: ids from 2^62 up
and the profile's fund), per asset its price (and the seq behind it), what the accounts hold
and owe and the interest accrued; the service's offsets, dedup state, held prices, the last
settled date and the accounts in margin call; the call clock (accounts whose call has stood
over settlements, the longest); and, when every asset held or owed has a price, the lowest
maintenance ratio among customers and, under an asset-liability profile, the customers by
status.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE, format_units
from engine.book.reasons import RejectReason
from engine.io.asset_snapshot import FORMAT, read_asset_snapshot
from engine.io.snapshot import SnapshotError
from engine.margin.ratio import STATUS_NAMES, ratio_text, sweep
from engine.service.asset_settlement import SETTLEMENT_KEY
from engine.waterfall.profile import AssetLiabilityRules, Profile, reserved_mask


def is_asset_snapshot(path: Path) -> bool:
    """Whether the file's schema says it is an asset-liability snapshot (no checksum check)."""
    try:
        with pa.memory_map(str(path)) as source:
            metadata = ipc.open_file(source).schema.metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False
    return metadata.get(b"format_version") == FORMAT.encode()


def summarize_assets(path: Path, profile: Profile) -> list[str]:
    try:
        book, extra = read_asset_snapshot(path)
    except SnapshotError as exc:
        raise Rejected(RejectReason.INVALID_SNAPSHOT, str(exc)) from None
    assets, money = book.assets, book.assets.money_decimals
    service = extra.get("service", {})
    n = book.n_accounts
    customer = ~reserved_mask(book.account_id[:n], profile)
    lines = [f"snapshot     {path} (checksum ok)", "model        asset-liability"]
    if service:
        lines.append(f"tick         {service['tick']} (event time {service['tick_ts']} ms)")
        lines.append(f"shard        {service['shard']}")
    lines.append(
        f"accounts     {n:,} ({int(customer.sum()):,} customers), assets {len(assets.assets)}"
    )
    fund = book.index.find(profile.fund_account_id)
    if fund is not None:
        units = int(book.held[assets.money, fund])
        lines.append(f"fund         {profile.fund_account_id}: {format_units(units, money)}")
    lines.append("assets (price; held, owed and interest accrued by the accounts)")
    seqs = service.get("mark_seq", {})
    for i, asset in enumerate(assets.assets):
        price = "(none yet)"
        if book.price_set[i]:
            price = format_units(int(book.price[i]), money)
            if asset.symbol in seqs:
                price += f" (seq {seqs[asset.symbol]})"
        held = format_units(sum(book.held[i, :n].tolist()), asset.decimals)
        owed = format_units(sum(book.owed[i, :n].tolist()), asset.decimals)
        interest = format_units(book.interest_accrued[i], asset.decimals)
        lines.append(f"  {asset.symbol:<10} {price}; held {held}, owed {owed}, interest {interest}")
    if service:
        lines.append("offsets (next to consume)")
        for name, offset in service["offsets"].items():
            lines.append(f"  {name:<30} {offset:,}")
        for name, last in service["last_event_id"].items():
            lines.append(f"last event   {name}: {last}")
        for symbol, held_price in service["held"].items():
            lines.append(f"price held   {symbol}: {held_price[1]} in a row")
        settled = service["last_price_seq"].get(SETTLEMENT_KEY)
        if settled is not None:
            lines.append(
                f"settled      {settled // 10_000}-{settled // 100 % 100:02}-{settled % 100:02}"
            )
        lines.append(f"margin calls {len(service['margin_call']):,} accounts")
    days = book.call_days[:n][customer]
    if days.any():
        lines.append(
            f"call clock   {int((days > 0).sum()):,} accounts called at settlement,"
            f" longest {int(days.max())} settlements"
        )
    used = book.held.any(axis=1) | book.owed.any(axis=1)
    if (used & ~book.price_set).any():
        lines.append("status       (not every asset held or owed has a price)")
        return lines
    rules = profile.asset_liability or AssetLiabilityRules(RATE_SCALE, RATE_SCALE, None)
    risk = sweep(book, rules)
    owing = np.flatnonzero(customer & (risk.liability_value > 0))
    if len(owing):
        cv, lv = risk.collateral_value[owing].tolist(), risk.liability_value[owing].tolist()
        worst = min(zip(cv, lv, strict=True), key=lambda p: Fraction(p[0], p[1]))
        lines.append(f"lowest ratio {ratio_text(*worst)} ({len(owing):,} customers owe)")
    if profile.asset_liability is not None:
        counts = np.bincount(risk.status[customer], minlength=len(STATUS_NAMES))
        tally = ", ".join(
            f"{name} {int(c):,}" for name, c in zip(STATUS_NAMES, counts.tolist(), strict=False)
        )
        lines.append(f"status       {tally} (customers, profile {profile.name})")
    return lines
