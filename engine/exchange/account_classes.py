"""Account classes for the forced-close order of a futures exchange (CFFEX): when clearing
reserves run short, the exchange closes its members' proprietary accounts before their
brokerage (customer) accounts.

An account is `brokerage` unless stated `proprietary`. With the profile's
`liquidation_priority = "proprietary_first"` the class is the first key of the liquidation
order (engine.waterfall.takeover.liquidation_order): proprietary 0, brokerage 1; within a
class the order is the margin ratio's. Batch: an optional `account_class` column in the
accounts file; service: the `account_class` account event (engine.service.messages).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.io.columns import Column, first_row, int_column
from engine.io.tables import read_table

ACCOUNT_CLASSES = ("proprietary", "brokerage")
PROPRIETARY, BROKERAGE = 0, 1
CLASS_COLUMN = "account_class"


def class_code(name: object, where: str) -> int:
    """The code of a class name; `invalid_account_class` naming `where` otherwise."""
    if name not in ACCOUNT_CLASSES:
        raise Rejected(
            RejectReason.INVALID_ACCOUNT_CLASS,
            f"{where}: expected one of {ACCOUNT_CLASSES}, got {str(name)[:32]!r}",
        )
    return ACCOUNT_CLASSES.index(str(name))


class AccountClasses:
    """The proprietary accounts of a book (every other account is brokerage)."""

    def __init__(self, proprietary: np.ndarray | list[int] | None = None) -> None:
        ids = np.asarray([] if proprietary is None else proprietary, dtype=np.int64)
        self.proprietary = np.unique(ids)

    def set(self, account_id: int, code: int) -> None:
        ids = self.proprietary[self.proprietary != account_id]
        if code == PROPRIETARY:
            ids = np.append(ids, account_id)
        self.proprietary = np.unique(ids)

    def code_of(self, account_ids: np.ndarray) -> np.ndarray:
        """Class code per account id: PROPRIETARY or BROKERAGE."""
        ids = np.asarray(account_ids, dtype=np.int64)
        return np.where(np.isin(ids, self.proprietary), PROPRIETARY, BROKERAGE).astype(np.int64)

    def priority(self, account_ids: np.ndarray) -> np.ndarray:
        """The liquidation order's first key (lower first): proprietary before brokerage."""
        return self.code_of(account_ids)

    def to_list(self) -> list[int]:
        return [int(a) for a in self.proprietary]


def read_account_classes(path: str | Path) -> AccountClasses:
    """The accounts file's optional `account_class` column (empty: brokerage)."""
    path = Path(path)
    table = read_table(path, ("account_id",), (CLASS_COLUMN,))
    if CLASS_COLUMN not in table.column_names:
        return AccountClasses()
    ids = int_column(table, Column(path, "account_id"))
    names = table[CLASS_COLUMN].to_pylist()
    known = np.array([n is None or n in ACCOUNT_CLASSES for n in names], dtype=bool)
    row = first_row(~known)
    if row is not None:
        raise Column(path, CLASS_COLUMN).reject(
            RejectReason.INVALID_ACCOUNT_CLASS,
            row,
            f"expected one of {ACCOUNT_CLASSES} or empty, got {str(names[row])[:32]!r}",
        )
    proprietary = np.array([n == "proprietary" for n in names], dtype=bool)
    return AccountClasses(ids[proprietary])
