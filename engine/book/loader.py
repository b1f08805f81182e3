"""Bulk load: account and position columns checked as a whole, laid out for the book.

`check_columns` refuses a load with Rejected naming the first offending row (0-based) of
the column at fault, and otherwise returns the columns in the book's CSR layout (positions
in (account row, instrument) order) with the account index built. `Book.from_arrays` takes
the result, and `install` writes it into the book's balances and position store, the
opening balances as postings from EXTERNAL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.book.accounts import AccountIndex
from engine.book.balances import Balances
from engine.book.errors import Rejected
from engine.book.instruments import InstrumentTable
from engine.book.ledger import EXTERNAL, Reason
from engine.book.limits import LEVERAGE_MAX, POSITION_TICK_VALUE_MAX, VALUE_MAX
from engine.book.positions import PositionStore
from engine.book.reasons import RejectReason


@dataclass(frozen=True)
class CheckedColumns:
    index: AccountIndex
    account_ids: np.ndarray
    balances: np.ndarray
    rows: np.ndarray  # account row of each input account (insertion order)
    acct_start: np.ndarray
    pos_instrument: np.ndarray
    pos_qty: np.ndarray
    pos_cost: np.ndarray
    pos_leverage: np.ndarray


def check_columns(
    instruments: InstrumentTable,
    account_ids: np.ndarray,
    balances: np.ndarray,
    pos_account_ids: np.ndarray,
    pos_instrument: np.ndarray,
    pos_qty: np.ndarray,
    pos_cost: np.ndarray,
    pos_leverage: np.ndarray | None,
    default_leverage: int,
) -> CheckedColumns:
    account_ids = np.asarray(account_ids, dtype=np.int64)
    balances = np.asarray(balances, dtype=np.int64)
    n = len(account_ids)
    _first_bad(account_ids < 0, RejectReason.INVALID_ACCOUNT, "accounts", "account_id must be >= 0")
    sorted_ids = np.sort(account_ids)
    dup = np.nonzero(sorted_ids[1:] == sorted_ids[:-1])[0]
    if len(dup):
        row = int(np.nonzero(account_ids == sorted_ids[dup[0]])[0][1])
        raise Rejected(RejectReason.DUPLICATE_ACCOUNT, f"accounts row {row}: account id repeated")
    pos_account_ids = np.asarray(pos_account_ids, dtype=np.int64)
    pos_instrument = np.asarray(pos_instrument, dtype=np.int32)
    pos_qty = np.asarray(pos_qty, dtype=np.int64)
    pos_cost = np.asarray(pos_cost, dtype=np.int64)
    if pos_leverage is None:
        pos_leverage = np.full(len(pos_qty), default_leverage, dtype=np.int32)
    pos_leverage = np.asarray(pos_leverage, dtype=np.int32)
    index = AccountIndex()
    rows = index.add_many(account_ids)
    owner = index.rows(pos_account_ids)
    _first_bad(owner < 0, RejectReason.UNKNOWN_ACCOUNT, "positions", "account_id not in accounts")
    _first_bad(
        (pos_instrument < 0) | (pos_instrument >= len(instruments)),
        RejectReason.UNKNOWN_SYMBOL,
        "positions",
        "unknown instrument",
    )
    _first_bad(pos_qty == 0, RejectReason.INVALID_QTY, "positions", "qty must not be zero")
    tick_value = instruments.tick_value[pos_instrument]
    with np.errstate(over="ignore"):
        too_big = (np.abs(pos_qty) > POSITION_TICK_VALUE_MAX // np.maximum(tick_value, 1)) | (
            np.abs(pos_cost) > VALUE_MAX
        )
    _first_bad(too_big, RejectReason.OVERFLOW, "positions", "position too large")
    _first_bad(
        (pos_cost != 0) & ((pos_cost > 0) != (pos_qty > 0)),
        RejectReason.INVALID_COST,
        "positions",
        "entry value must have the sign of qty",
    )
    _first_bad(
        (pos_leverage < 1) | (pos_leverage > LEVERAGE_MAX),
        RejectReason.INVALID_LEVERAGE,
        "positions",
        f"leverage must be 1..{LEVERAGE_MAX}",
    )
    key = owner * max(len(instruments), 1) + pos_instrument
    order = np.lexsort((pos_instrument, owner))
    dup_pos = np.nonzero(key[order][1:] == key[order][:-1])[0]
    if len(dup_pos):
        row = int(max(order[dup_pos[0]], order[dup_pos[0] + 1]))
        raise Rejected(
            RejectReason.DUPLICATE_POSITION,
            f"positions row {row}: account already holds this symbol",
        )
    acct_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=acct_start[1:])
    return CheckedColumns(
        index=index,
        account_ids=account_ids,
        balances=balances,
        rows=rows,
        acct_start=acct_start,
        pos_instrument=pos_instrument[order],
        pos_qty=pos_qty[order],
        pos_cost=pos_cost[order],
        pos_leverage=pos_leverage[order],
    )


def install(checked: CheckedColumns, balances: Balances, positions: PositionStore) -> int:
    """Write checked columns into an empty book's parts; returns the loaded cost basis."""
    n = len(checked.account_ids)
    account_ids, amounts = checked.account_ids, checked.balances
    balances.load(checked.index, account_ids, checked.rows)
    positions.load(
        checked.acct_start,
        checked.pos_instrument,
        checked.pos_qty,
        checked.pos_cost,
        checked.pos_leverage,
    )
    balances.ledger.post_many(
        np.where(amounts >= 0, EXTERNAL, account_ids),
        np.where(amounts >= 0, account_ids, EXTERNAL),
        np.abs(amounts),
        Reason.OPENING_BALANCE,
        np.zeros(n, dtype=np.int64),
    )
    balances.amount[checked.rows] = amounts
    balances.house_balance[EXTERNAL] = -int(amounts.sum(dtype=np.int64))
    return int(positions.cost.sum(dtype=np.int64))


def _first_bad(mask: np.ndarray, reason: RejectReason, table: str, message: str) -> None:
    bad = np.nonzero(mask)[0]
    if len(bad):
        raise Rejected(reason, f"{table} row {int(bad[0])}: {message}")
