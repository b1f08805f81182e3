"""Columns the profile's risk models add to the accounts table of `clearing risk` and
`clearing liquidate` (engine.waterfall.models), after the futures columns:

- `model_status`: the status the models decide (with stop-out: on the margin level;
  otherwise the futures status over the balance plus collateral value);
- with stop-out, `margin_level` (equity / used margin, float for display; null without used
  margin);
- with collateral, `collateral_value`: the haircut value counted in the equity (money,
  decimal128 like every money column);
- with isolated positions, `isolated_owner`: the owner of a sub-account (null for others).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.book.book import STATUS_NAMES, Book
from engine.reports.decimals import money_array
from engine.waterfall.models import Models, model_sweep
from engine.waterfall.profile import Profile


def with_model_columns(table: pa.Table, book: Book, profile: Profile, models: Models) -> pa.Table:
    assert table.column("account_id").to_pylist() == book.account_id.tolist()
    _, equity, margin, status = model_sweep(book, profile)
    columns = {"model_status": pc.take(pa.array(STATUS_NAMES), pa.array(status))}
    if profile.stop_out is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            level = equity.astype(np.float64) / np.where(margin > 0, margin, 1)
        columns["margin_level"] = pa.array(level, type=pa.float64(), mask=margin <= 0)
    if models.collateral is not None:
        value = np.zeros(book.n_accounts, dtype=np.int64)
        k = min(book.n_accounts, len(models.collateral.value_by_row))
        value[:k] = models.collateral.value_by_row[:k]
        columns["collateral_value"] = money_array(value, book.instruments.money_decimals)
    if models.isolated is not None:
        owner = [
            None if (p := models.isolated.by_sub.get(a)) is None else p.owner
            for a in book.account_id.tolist()
        ]
        columns["isolated_owner"] = pa.array(owner, type=pa.int64())
    for name, column in columns.items():
        table = table.append_column(name, column)
    return table
