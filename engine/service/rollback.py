"""Put the book back exactly as it was before one account event, whatever that event did.

The book validates before it writes, so a refused operation changes nothing; this is the
service's last line of defence behind that rule (engine.service.tick): a record whose apply
raises -- a bug, a check after the write (the fill margin rule) -- is undone and
dead-lettered instead of crashing the service on every restart.

One account event touches only its own accounts (one, or a fill's two sides), the ledger's
tail, the house balances and the book's event counter, and may open accounts. A `Savepoint`
saves exactly those -- a few numbers per account and instrument, so it costs nothing per
record next to parsing -- and `restore` writes them back. Positions are restored by content
(qty, cost, leverage per instrument): a compaction in between moves slots, not positions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.book.book import Book


@dataclass(frozen=True)
class _Row:
    balance: int
    positions: dict[int, tuple[int, int, int]]  # instrument -> (qty, cost, slot leverage)
    leverage: dict[int, int | None]  # instrument -> explicit setting (None: the default)
    changed: bool  # whether the row was already in book.changed_rows


class Savepoint:
    def __init__(self, book: Book, accounts: Iterable[int]) -> None:
        self.book = book
        self.ledger_length = len(book.ledger)
        self.house = dict(book.house_balance)
        self.next_event_id = book._next_event_id
        self.n_accounts = book.n_accounts
        self.opening_position_cost = book.opening_position_cost
        self.rows: dict[int, _Row] = {}
        n_inst = len(book.instruments)
        for account in set(accounts):
            row = book.index.find(account)
            if row is None:
                continue
            settings = book._leverage_setting
            self.rows[row] = _Row(
                int(book.balance[row]),
                {
                    inst: (qty, cost, _slot_leverage(book, row, inst))
                    for inst, qty, cost in book.positions.of_row(row)
                },
                {inst: settings.get((row, inst)) for inst in range(n_inst)},
                row in book.changed_rows,
            )

    def restore(self) -> None:
        book = self.book
        positions = book.positions
        for row, saved in self.rows.items():
            now = {inst for inst, _, _ in positions.of_row(row)}
            for inst in sorted(now | set(saved.positions)):
                qty, cost, leverage = saved.positions.get(inst, (0, 0, book.default_leverage))
                positions.put(row, inst, qty, cost, leverage)
                positions.set_leverage(row, inst, leverage)
            for inst, setting in saved.leverage.items():
                if setting is None:
                    book._leverage_setting.pop((row, inst), None)
                else:
                    book._leverage_setting[(row, inst)] = setting
            book._balance[row] = saved.balance
            if not saved.changed:
                book.changed_rows.discard(row)
        if book.n_accounts > self.n_accounts:
            new_rows = range(self.n_accounts, book.n_accounts)
            for row in new_rows:  # opened by the event: flat and empty again first
                for inst, _, _ in positions.of_row(row):
                    positions.put(row, inst, 0, 0, book.default_leverage)
                book._balance[row] = 0
                for inst in range(len(book.instruments)):
                    book._leverage_setting.pop((row, inst), None)
            book.compact()
            positions.drop_newest_accounts(self.n_accounts)
            book.balances.drop_newest(self.n_accounts)
        book.ledger.drop_newest(self.ledger_length)
        book.house_balance.clear()
        book.house_balance.update(self.house)
        book._next_event_id = self.next_event_id
        book.opening_position_cost = self.opening_position_cost


def _slot_leverage(book: Book, row: int, inst: int) -> int:
    positions = book.positions
    pending = positions.pending.get((row, inst))
    if pending is not None:
        return pending[2]
    slot = positions.find_slot(row, inst)
    assert slot is not None, f"account row {row}: an open position without a slot"
    return int(positions.leverage[slot])
