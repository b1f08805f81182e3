"""Per account, what a stress run did to it: accounts.parquet of `clearing stress` and
`clearing demo`, so "the ten accounts that lost most" is one query:

    SELECT account_id, loss FROM 'accounts.parquet' WHERE NOT house
    ORDER BY loss DESC LIMIT 10

Columns (money decimal128 at the money scale; one row per account, by account id):

    account_id               int64
    house                    bool       the fund or the unwind account (not a customer)
    opening_balance          decimal128 before the run (the fund: after its deposit)
    opening_equity           decimal128 at the marks the run starts from
    closing_balance          decimal128 after the last step
    closing_equity           decimal128 at the last step's marks
    equity_change            decimal128 closing_equity - opening_equity
    loss                     decimal128 opening_equity - closing_equity (negative: a gain)
    liquidations             int64      liquidation actions taken on the account
    first_liquidation_time   timestamp[us, UTC], null if never liquidated
    closing_status           string     margin status after the run

An account the run opened (the fund, the unwind account) starts at zero, the fund at its
deposit (SimulationResult.fund_start).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.book.book import STATUS_NAMES, Book
from engine.reports.decimals import money_array, utc_times
from engine.stress.simulation_result import KIND_CODE, SimulationResult
from engine.waterfall.profile import Profile, reserved_mask


@dataclass(frozen=True)
class Opening:
    """The accounts as a run starts: ids, balances and equity (money units)."""

    account_id: np.ndarray
    balance: np.ndarray
    equity: np.ndarray

    @classmethod
    def of(cls, book: Book) -> Opening:
        risk = book.sweep(with_initial_margin=False)
        return cls(book.account_id.copy(), book.balance.copy(), risk.equity.copy())


def _at(ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row in `ids` (distinct) of each wanted id, and where it was found."""
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    pos = np.minimum(np.searchsorted(ordered, wanted), max(len(ids) - 1, 0))
    if len(ids) == 0:
        return np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
    found = ordered[pos] == wanted
    return order[pos], found


def accounts_table(
    opening: Opening, book: Book, result: SimulationResult, profile: Profile
) -> pa.Table:
    """The table of the module docstring, from the opening state and the book after the run."""
    money = book.instruments.money_decimals
    risk = book.sweep(with_initial_margin=False)
    order = np.argsort(book.account_id, kind="stable")
    ids = book.account_id[order]
    rows, found = _at(opening.account_id, ids)
    opening_balance = np.where(found, opening.balance[rows], 0)
    opening_equity = np.where(found, opening.equity[rows], 0)
    # The fund opens with its deposit: the run's start is after it (balance and equity
    # both rise by the deposit; 0 before where the run opened the account).
    fund = ids == profile.fund_account_id
    deposit = np.where(fund, result.fund_start - opening_equity, 0)
    opening_balance = opening_balance + deposit
    opening_equity = opening_equity + deposit
    closing_equity = risk.equity[order]
    kind = result.events.column("kind")
    liquidated = kind == KIND_CODE["liquidation"]
    who = result.events.column("account_id")[liquidated]
    when = result.events.column("t_s")[liquidated]
    at, hit = _at(ids, who)
    count = np.zeros(len(ids), dtype=np.int64)
    np.add.at(count, at[hit], 1)
    first = np.full(len(ids), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, at[hit], when[hit])
    ever = count > 0
    return pa.table(
        {
            "account_id": pa.array(ids, pa.int64()),
            "house": pa.array(reserved_mask(ids, profile), pa.bool_()),
            "opening_balance": money_array(opening_balance, money),
            "opening_equity": money_array(opening_equity, money),
            "closing_balance": money_array(book.balance[order], money),
            "closing_equity": money_array(closing_equity, money),
            "equity_change": money_array(closing_equity - opening_equity, money),
            "loss": money_array(opening_equity - closing_equity, money),
            "liquidations": pa.array(count, pa.int64()),
            "first_liquidation_time": pc.if_else(
                pa.array(ever),
                utc_times(result.start, np.where(ever, first, 0)),
                pa.scalar(None, pa.timestamp("us", tz="UTC")),
            ),
            "closing_status": pc.take(
                pa.array(STATUS_NAMES, pa.string()), pa.array(risk.status[order])
            ),
        }
    )
