"""The fill rule: what a fill does to a position and how much PnL it realizes.

A position is (qty lots, signed; cost money units, the entry value, with the sign of qty).
A fill of q lots at lot value v (= price ticks x tick value) opens or adds (cost += q v),
reduces, closes or flips. Closing k of the position's lots (k signed as the position)
takes ceil(cost k / qty) of its cost -- rounded up, the house's favour -- and realizes
k v - that; closing the whole position removes its whole cost, so nothing drifts over a
position's life. `close_lots` is that one rule; the book's fills, the waterfall's
takeover and fund replays, and ADL's profit arithmetic all go through it.

Every fill satisfies, exactly: (cost after - cost before) - realized = q v. So a pair of
fills at one price (a trader gives k lots, the fund takes them) moves no money between the
two sides beyond their realized PnL; `FillBatch` carries a batch of such pairs to the book,
which checks this identity before it writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.book.errors import Rejected
from engine.book.limits import BALANCE_MAX, POSITION_TICK_VALUE_MAX, VALUE_MAX
from engine.book.positions import PositionStore
from engine.book.reasons import RejectReason


def close_lots(qty: int, cost: int, closed: int, lot_value: int) -> tuple[int, int, int]:
    """Close `closed` lots (signed as the position, 0 <= |closed| <= |qty|) of (qty, cost)
    at `lot_value`: returns (qty after, cost after, realized PnL)."""
    assert qty != 0 and 0 <= closed * (1 if qty > 0 else -1) <= abs(qty), (
        f"cannot close {closed} lots of a position of {qty}"
    )
    closed_cost = -((-cost * closed) // qty)  # ceil(cost * closed / qty): the house's favour
    return qty - closed, cost - closed_cost, closed * lot_value - closed_cost


def close_lots_many(
    qty: np.ndarray, cost: np.ndarray, closed: np.ndarray, lot_value: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """close_lots over int64 columns. A whole close takes the whole cost (what close_lots
    gives exactly); a partial one goes through close_lots, whose product needs 128 bits.
    The caller keeps |closed| x lot_value within int64."""
    closed_cost = cost.copy()
    for j in np.flatnonzero(closed != qty).tolist():
        q, c, k = int(qty[j]), int(cost[j]), int(closed[j])
        closed_cost[j] = c - close_lots(q, c, k, 0)[1]
    return qty - closed, cost - closed_cost, closed * lot_value - closed_cost


def fill_position(qty: int, cost: int, fill: int, lot_value: int) -> tuple[int, int, int]:
    """The position after a fill of `fill` lots at `lot_value`: (qty, cost, realized)."""
    if qty == 0 or (qty > 0) == (fill > 0):
        return qty + fill, cost + fill * lot_value, 0
    closed = -fill if abs(fill) <= abs(qty) else qty
    left_qty, left_cost, realized = close_lots(qty, cost, closed, lot_value)
    new_qty = qty + fill
    if new_qty != left_qty:  # flipped: the remainder opens at this price
        assert left_qty == 0 and left_cost == 0
        return new_qty, new_qty * lot_value, realized
    assert new_qty != 0 or left_cost == 0, "a closed position must carry no cost"
    return new_qty, left_cost, realized


def position_fits(qty: int, cost: int, tick_value: int) -> bool:
    """Whether the book accepts a position: |qty| x tick value and |cost| within bounds."""
    return abs(qty) * tick_value <= POSITION_TICK_VALUE_MAX and abs(cost) <= VALUE_MAX


@dataclass(frozen=True)
class PlannedFill:
    """One side of a trade, checked and computed, not yet written."""

    account_id: int
    row: int
    instrument: int
    qty: int  # the position after the fill
    cost: int
    realized: int
    fee: int


def plan_fill(
    account_id: int,
    row: int,
    inst: int,
    position: tuple[int, int],
    balance: int,
    qty: int,
    price: int,
    fee: int,
    tick_value: int,
    label: str,
) -> PlannedFill:
    """Check one fill side against the account's position and balance, and compute it;
    Rejected (naming `label`, the account and symbol) when it is not acceptable."""
    if qty == 0:
        raise Rejected(RejectReason.INVALID_QTY, "fill qty must not be zero")
    if not price > 0:
        raise Rejected(RejectReason.INVALID_PRICE, f"fill price must be positive, got {price}")
    if fee < 0:
        raise Rejected(RejectReason.INVALID_AMOUNT, f"fee must not be negative, got {fee}")
    old_qty, old_cost = position
    new_qty, new_cost, realized = fill_position(old_qty, old_cost, qty, price * tick_value)
    if not position_fits(new_qty, new_cost, tick_value):
        raise Rejected(RejectReason.OVERFLOW, f"{label}: position too large")
    new_balance = balance + realized - fee
    if not -BALANCE_MAX <= new_balance <= BALANCE_MAX:
        raise Rejected(RejectReason.OVERFLOW, f"account {account_id}: balance out of range")
    return PlannedFill(account_id, row, inst, new_qty, new_cost, realized, fee)


@dataclass
class FillBatch:
    """Pairs of fills at the mark, planned outside the book (the waterfall's takeovers and
    ADL): slot j's owner gives `closed[j]` lots (signed as its position) to one
    counterparty account, which takes them in order. The book's `commit_fills` writes it.

    Per slot: the position after, the owner's realized PnL and the counterparty's (which
    depends on the counterparty's position before each fill, so the planner replays them
    in order with fill_position). `counterparty_positions` is the counterparty's (qty,
    cost) after, per instrument it traded."""

    slots: np.ndarray
    rows: np.ndarray  # the owner's account row per slot
    instrument: np.ndarray
    closed: np.ndarray
    lot_value: np.ndarray  # the mark's lot value per slot
    qty_after: np.ndarray
    cost_after: np.ndarray
    realized: np.ndarray
    counterparty_realized: np.ndarray
    counterparty_positions: dict[int, tuple[int, int]] = field(default_factory=dict)


def _wrap64(value: int) -> int:
    """`value` modulo 2**64 as a signed int64: what numpy's int64 sums give."""
    return (value + 2**63) % 2**64 - 2**63


def check_batch(
    batch: FillBatch,
    store: PositionStore,
    counterparty_row: int,
    counterparty: int,
    account_ids: np.ndarray,
) -> None:
    """Before a FillBatch is written: each slot lies in its owner's row and closes part of
    its position; each side's realized PnL is what the fill rule gives for its change of
    cost at the mark (cost after - cost before - realized = lots received x lot value), so
    a pair moves no money beyond the PnL; the counterparty takes exactly the lots the
    owners give, per instrument (open interest is unchanged). AssertionError naming the
    accounts otherwise. Vectorized over slots; a loop over the instruments traded."""
    slots, rows, closed = batch.slots, batch.rows, batch.closed
    qty_before, cost_before = store.qty[slots], store.cost[slots]
    inside = (store.acct_start[rows] <= slots) & (slots < store.acct_start[rows + 1])
    side_ok = (np.sign(closed) == np.sign(qty_before)) & (np.abs(closed) <= np.abs(qty_before))
    rule_ok = (batch.cost_after - cost_before) - batch.realized == -closed * batch.lot_value
    ok = inside & side_ok & (closed != 0) & (qty_before - closed == batch.qty_after) & rule_ok
    if not ok.all():
        bad = account_ids[rows[~ok][:10]].tolist()
        raise AssertionError(f"fills planned off the fill rule for accounts {bad}")
    n = store.n_instruments
    received_lots = np.zeros(n, dtype=np.int64)
    received_value = np.zeros(n, dtype=np.int64)
    cp_realized = np.zeros(n, dtype=np.int64)
    np.add.at(received_lots, batch.instrument, closed)
    np.add.at(received_value, batch.instrument, closed * batch.lot_value)
    np.add.at(cp_realized, batch.instrument, batch.counterparty_realized)
    traded = set(np.unique(batch.instrument).tolist())
    assert traded == set(batch.counterparty_positions), (
        f"account {counterparty}: positions planned for other instruments than traded"
    )
    for inst, (qty, cost) in batch.counterparty_positions.items():
        q0, c0 = store.get(counterparty_row, inst)
        assert qty - q0 == int(received_lots[inst]), (
            f"account {counterparty}: instrument {inst} takes other lots than given"
        )
        assert _wrap64(cost - c0 - int(cp_realized[inst])) == int(received_value[inst]), (
            f"account {counterparty}: instrument {inst} off the fill rule"
        )


def check_batch_written(
    batch: FillBatch, store: PositionStore, counterparty_row: int, counterparty: int
) -> None:
    """After a FillBatch is written: the store holds what was planned."""
    slots = batch.slots
    assert (store.qty[slots] == batch.qty_after).all(), "slot quantities misstored"
    assert (store.cost[slots] == batch.cost_after).all(), "slot costs misstored"
    for inst, position in batch.counterparty_positions.items():
        assert store.get(counterparty_row, inst) == position, (
            f"account {counterparty}: instrument {inst} misstored"
        )
