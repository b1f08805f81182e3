"""`clearing inspect SNAPSHOT`: what a service snapshot holds, after checking its checksum.

Prints the tick, the offsets consumed per partition, the dedup state, the insurance fund,
the house accounts, the marks and, when every instrument with positions has a mark, the
accounts by margin status at those marks. A file that fails its checksum is an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.book.book import STATUS_NAMES
from engine.book.errors import Rejected
from engine.book.fixed import format_units
from engine.book.ledger import HOUSE_ACCOUNTS
from engine.book.reasons import RejectReason
from engine.io.snapshot import SnapshotError, read_snapshot
from engine.waterfall.profile import RESERVED_ACCOUNT_BASE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("snapshot", type=Path, help="an Arrow snapshot written by clearing serve")


def run(args: argparse.Namespace) -> int:
    try:
        book, extra = read_snapshot(args.snapshot)
    except SnapshotError as exc:
        raise Rejected(RejectReason.INVALID_SNAPSHOT, str(exc)) from None
    money = book.instruments.money_decimals
    service = extra.get("service", {})
    book.compact()
    live = book.pos_qty != 0
    reserved = book.account_id >= RESERVED_ACCOUNT_BASE
    print(f"snapshot     {args.snapshot} (checksum ok)")
    if service:
        print(f"tick         {service['tick']} (event time {service['tick_ts']} ms)")
        print(f"shard        {service['shard']}")
    print(
        f"accounts     {book.n_accounts:,} ({int((~reserved).sum()):,} traders),"
        f" positions {int(live.sum()):,}, instruments {len(book.instruments)}"
    )
    print(f"balances     {format_units(sum(book.balance.tolist()), money)} (traders and funds)")
    for row in np.flatnonzero(reserved).tolist():
        account = int(book.account_id[row])
        equity, _ = book.account_margin(account)
        print(
            f"house book   {account}: balance {format_units(int(book.balance[row]), money)},"
            f" equity {format_units(equity, money)}, positions {len(book.positions_of(account))}"
        )
    for account, name in HOUSE_ACCOUNTS.items():
        print(f"house        {name}: {format_units(book.house_balance[account], money)}")
    print("marks")
    for i, inst in enumerate(book.instruments.instruments):
        if book.mark_set[i]:
            seq = service.get("mark_seq", {}).get(inst.symbol)
            price = format_units(int(book.mark[i]), inst.price_decimals)
            print(f"  {inst.symbol:<14} {price}" + (f" (seq {seq})" if seq is not None else ""))
        else:
            print(f"  {inst.symbol:<14} (none yet)")
    if service:
        print("offsets (next to consume)")
        for name, offset in service["offsets"].items():
            print(f"  {name:<30} {offset:,}")
        for name, last in service["last_event_id"].items():
            print(f"last event   {name}: {last}")
        for symbol, (side, count) in service["held"].items():
            print(
                f"price held   {symbol}: {count} outside the band ({'up' if side > 0 else 'down'})"
            )
        print(f"margin calls {len(service['margin_call']):,} accounts")
    if bool(book.mark_set[book.pos_instrument[live]].all()):
        counts = np.bincount(book.sweep(with_initial_margin=False).status, minlength=4)
        print(
            "status       "
            + ", ".join(f"{n} {c:,}" for n, c in zip(STATUS_NAMES, counts.tolist(), strict=True))
        )
    else:
        print("status       (not every instrument with positions has a mark)")
    return 0
