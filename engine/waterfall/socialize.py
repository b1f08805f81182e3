"""Socialized loss: what the fund is still short after ADL, charged to accounts in profit.

What is still short is allocated over the trader accounts in profit, pro rata to
min(unrealized profit, equity), with exact largest-remainder rounding
(csrc/allocation.h); the parts sum to the loss to the unit, each at most its weight, and a
loss beyond all profit is reported as unallocated, never invented.
"""

from __future__ import annotations

import numpy as np

from engine import _native
from engine.book.book import Book
from engine.book.ledger import Reason
from engine.waterfall.events import KIND_CODE, WaterfallResult
from engine.waterfall.fund import fund_shortfall
from engine.waterfall.profile import Profile, reserved_mask


def socialize_loss(book: Book, profile: Profile, floor: int, result: WaterfallResult) -> None:
    fund = profile.fund_account_id
    need = fund_shortfall(book, profile, floor)
    if need == 0:
        return
    margins = book.position_margins()
    owner = book.position_owner()
    upnl = np.zeros(book.n_accounts, dtype=np.int64)
    np.add.at(upnl, owner, margins["unrealized_pnl"])
    equity = book.sweep(with_initial_margin=False).equity
    weight = np.where(
        (upnl > 0) & (equity > 0) & ~reserved_mask(book.account_id, profile),
        np.minimum(upnl, equity),
        0,
    )
    rows = np.nonzero(weight)[0]
    account_ids = np.ascontiguousarray(book.account_id[rows])
    parts, allocated = _native.allocate_largest_remainder(weight[rows], account_ids, need)
    assert allocated == sum(parts.tolist()) <= need
    event_id = book.new_event_id()
    paying = parts > 0
    book.post_many(account_ids[paying], fund, parts[paying], Reason.SOCIALIZED_LOSS, event_id)
    n = int(paying.sum())
    result.log.extend(
        {
            "kind": np.full(n, KIND_CODE["socialized_loss"]),
            "event_id": np.full(n, event_id),
            "account_id": account_ids[paying],
            "instrument": np.full(n, -1),
            "qty": np.zeros(n, dtype=np.int64),
            "price": np.zeros(n, dtype=np.int64),
            "amount": parts[paying],
        }
    )
    result.socialized_amount += allocated
    result.unallocated_loss = need - allocated
    if result.unallocated_loss:
        result.log.append("unallocated_loss", event_id, fund, -1, 0, 0, result.unallocated_loss)
