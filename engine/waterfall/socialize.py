"""Socialized loss: what the fund is still short after ADL, charged to accounts in profit.

The rule (the same promise as ADL's, engine.waterfall.adl): a payer is left safe and pays
at most its unrealized profit. Each trader account (never a house or fund account) weighs
min(unrealized profit, safe cap): its net unrealized PnL over all its positions at the mark,
and its safe capacity, equity - maintenance - 1 unit (it keeps its positions, so equity
after > maintenance after). What is still short is allocated pro rata to those weights
with exact largest-remainder rounding (csrc/allocation.h, ties by account id): the parts
sum to the loss to the unit and each is at most its weight. A loss beyond all the weights
is left to the caller to report as unallocated (engine.waterfall.run), never invented.
"""

from __future__ import annotations

import numpy as np

from engine import _native
from engine.book.book import Book
from engine.book.ledger import Reason
from engine.waterfall.events import KIND_CODE, WaterfallResult
from engine.waterfall.fund import fund_shortfall
from engine.waterfall.profile import Profile, reserved_mask


def socialize_loss(book: Book, profile: Profile, floor: int, result: WaterfallResult) -> int:
    """Charge the fund's shortfall below `floor` to accounts in profit; returns (and adds
    to result.socialized_amount) what was placed."""
    fund = profile.fund_account_id
    need = fund_shortfall(book, profile, floor)
    if need == 0:
        return 0
    margins = book.position_margins()
    owner = book.position_owner()
    upnl = np.zeros(book.n_accounts, dtype=np.int64)
    np.add.at(upnl, owner, margins["unrealized_pnl"])
    risk = book.sweep(with_initial_margin=False)
    cap = risk.equity - risk.maintenance_margin - 1
    weight = np.where(
        (upnl > 0) & (cap > 0) & ~reserved_mask(book.account_id, profile),
        np.minimum(upnl, cap),
        0,
    )
    rows = np.nonzero(weight)[0]
    # In account-id order, so the events do not depend on the book's row layout (a
    # restored or compacted book lists the same payers in the same order).
    rows = rows[np.argsort(book.account_id[rows], kind="stable")]
    account_ids = np.ascontiguousarray(book.account_id[rows])
    parts, allocated = _native.allocate_largest_remainder(weight[rows], account_ids, need)
    assert allocated == sum(parts.tolist()) <= need
    assert (parts <= weight[rows]).all(), "a socialized-loss part above its payer's weight"
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
    return allocated
