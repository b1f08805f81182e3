"""The risk models' state in a service snapshot, beside the book: the collateral holdings
and prices (engine.collateral) and the isolated sub-account registry
(engine.risk.isolated_margin), as JSON in the snapshot's `extra` under "models".

    {"format": 1,
     "collateral": {"prices": {symbol: ticks or null},
                    "holdings": [[account_id, symbol, steps], ...]},   (by account, symbol)
     "isolated": [[sub_account, owner, symbol], ...]}                   (by sub-account)

A part is present only when the profile has that model; a profile with neither writes
nothing, so its snapshots stay as they were. What is derived is not stored: each holding's
haircut value is recomputed from its quantity and price (the formula the audit checks), and
the asset ledger restarts with one opening row per holding, as the book's ledger does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.book.book import Book
from engine.waterfall.models import Models
from engine.waterfall.profile import Profile

MODEL_STATE_FORMAT = 1


def models_to_extra(models: Models) -> dict[str, Any] | None:
    """The models' state, sorted (equal states give equal bytes); None without models."""
    if models.collateral is None and models.isolated is None:
        return None
    doc: dict[str, Any] = {"format": MODEL_STATE_FORMAT}
    collateral = models.collateral
    if collateral is not None:
        ids = collateral.book.account_id
        holdings = sorted(
            [int(ids[row]), rule.symbol, int(qty)]
            for rule, held in zip(collateral.assets, collateral.qty, strict=True)
            for row, qty in held.items()
        )
        prices = {
            rule.symbol: price
            for rule, price in zip(collateral.assets, collateral.price, strict=True)
        }
        doc["collateral"] = {"prices": dict(sorted(prices.items())), "holdings": holdings}
    isolated = models.isolated
    if isolated is not None:
        symbols = isolated.book.instruments.instruments
        doc["isolated"] = [
            [sub, p.owner, symbols[p.instrument].symbol]
            for sub, p in sorted(isolated.by_sub.items())
        ]
    return doc


def models_from_extra(book: Book, profile: Profile, saved: Mapping[str, Any] | None) -> Models:
    """The profile's models on a restored book with the saved state loaded (ValueError,
    KeyError or TypeError on a state that does not fit the profile or the book)."""
    models = Models.for_profile(book, profile)
    if saved is None:
        if models.collateral is not None or models.isolated is not None:
            raise ValueError("the profile has risk models but the snapshot holds no model state")
        return models
    if saved.get("format") != MODEL_STATE_FORMAT:
        raise ValueError(f"model state format {saved.get('format')!r}, expected 1")
    if (models.collateral is None) != ("collateral" not in saved) or (models.isolated is None) != (
        "isolated" not in saved
    ):
        raise ValueError("the snapshot's model state does not fit the profile's models")
    if models.collateral is not None:
        collateral, part = models.collateral, saved["collateral"]
        if sorted(part["prices"]) != sorted(collateral.index):
            raise ValueError("the snapshot's collateral assets differ from the profile's")
        for symbol, price in part["prices"].items():
            collateral.price[collateral.asset(symbol)] = None if price is None else int(price)
        for account, symbol, qty in part["holdings"]:
            collateral.load_holding(int(account), str(symbol), int(qty))
    if models.isolated is not None:
        registry, index = models.isolated, book.instruments.index
        for sub, owner, symbol in saved["isolated"]:
            book.row_of(int(sub))  # the sub-account must be in the book (unknown_account)
            registry.register(int(sub), int(owner), index[str(symbol)])
    book.changed_rows.clear()
    return models
