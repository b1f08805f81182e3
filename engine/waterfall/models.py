"""The risk models a profile selects beyond cross USDT-margined accounts, and their hooks
into a tick: multi-asset collateral (`[collateral]`, engine.collateral), FX stop-out
(`[stop_out]`, engine.waterfall.stop_out) and isolated positions with auto-add margin
(`[isolated]`, engine.risk.isolated_margin).

`Models` holds their state beside a book (the collateral holdings, the isolated
sub-accounts). With any model on, a tick sweeps in full (`model_sweep`: the futures sweep over
the balance plus the collateral's haircut value, and with stop-out the margin-level status
from the same sweep's initial margin), and before the takeovers `prepare_takeovers` tops up
breached isolated positions from their owners' free balance and sells the collateral of the
accounts still breached at its haircut value. Stop-out then replaces the takeover step
(engine.waterfall.run). Without a model nothing here runs and the futures path is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.book.book import Book
from engine.book.ledger import Reason
from engine.collateral.holdings import CollateralBook
from engine.risk.isolated_margin import IsolatedRegistry
from engine.waterfall.events import WaterfallResult
from engine.waterfall.profile import Profile
from engine.waterfall.stop_out import margin_level_status
from engine.waterfall.takeover import liquidation_order


@dataclass
class Models:
    collateral: CollateralBook | None = None
    isolated: IsolatedRegistry | None = None

    @classmethod
    def for_profile(cls, book: Book, profile: Profile) -> Models:
        """Empty model state for a book under a profile (None where the profile has none)."""
        return cls(
            collateral=None
            if profile.collateral is None
            else CollateralBook(book, profile.collateral),
            isolated=None
            if profile.isolated is None
            else IsolatedRegistry(book, profile.isolated.subaccount_base),
        )

    def audit(self) -> None:
        if self.collateral is not None:
            self.collateral.audit()


def uses_models(profile: Profile) -> bool:
    return not (
        profile.collateral is None and profile.stop_out is None and profile.isolated is None
    )


def model_sweep(
    book: Book, profile: Profile
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, equity, maintenance margin, status) of every account under the profile's
    models: a full sweep (the balance plus collateral value: Book.risk_balance), and with
    stop-out the margin-level status. For stop-out the third array is the used (initial)
    margin, the figure its level divides by."""
    rows = np.arange(book.n_accounts, dtype=np.int64)
    if profile.stop_out is None:
        risk = book.sweep(with_initial_margin=False)
        return rows, risk.equity, risk.maintenance_margin, risk.status
    risk = book.sweep(with_initial_margin=True)
    assert risk.initial_margin is not None
    status = margin_level_status(risk.equity, risk.initial_margin, profile.stop_out)
    return rows, risk.equity, risk.initial_margin, status


def prepare_takeovers(
    book: Book,
    profile: Profile,
    models: Models,
    rows: np.ndarray,
    equity: np.ndarray,
    maintenance: np.ndarray,
    result: WaterfallResult,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Before the takeovers of `rows` (breached, in any order): isolated top-ups, then the
    collateral sale. Returns the rows still breached with their (unchanged) figures."""
    isolated = profile.isolated
    if models.isolated is not None and isolated is not None and isolated.auto_add_margin:
        saved = top_up_isolated(book, profile, models.isolated, rows, equity, maintenance, result)
        keep = ~np.isin(rows, saved)
        rows, equity, maintenance = rows[keep], equity[keep], maintenance[keep]
    if models.collateral is not None and len(rows):
        sell_collateral(book, models.collateral, rows, result)
    return rows, equity, maintenance


def sell_collateral(
    book: Book, collateral: CollateralBook, rows: np.ndarray, result: WaterfallResult
) -> None:
    """Sell the breached accounts' collateral at its haircut value (equity unchanged)."""
    held = [
        row
        for row in sorted(set(rows.tolist()))
        if collateral.row_value(row) or any(row in q for q in collateral.qty)
    ]
    for row in held:
        event_id = book.new_event_id()
        equity = book.account_margin(int(book.account_id[row]))[0]
        value = collateral.sell_for_takeover(np.array([row]), event_id).get(row, 0)
        account_id = int(book.account_id[row])
        assert book.account_margin(account_id)[0] == equity, (
            f"account {account_id}: selling collateral changed its equity"
        )
        result.log.append("collateral_sale", event_id, account_id, -1, 0, 0, value)


def top_up_isolated(
    book: Book,
    profile: Profile,
    registry: IsolatedRegistry,
    rows: np.ndarray,
    equity: np.ndarray,
    maintenance: np.ndarray,
    result: WaterfallResult,
) -> list[int]:
    """Auto-add margin: each breached isolated position, lowest equity / maintenance first
    (ties by id), takes from its owner's free balance what makes it safe -- up to its initial
    margin (`auto_add_target = "initial"`) or just above its maintenance margin -- when the
    free balance is enough; the rows so saved are returned."""
    assert profile.isolated is not None
    target_initial = profile.isolated.auto_add_target == "initial"
    ids = book.account_id[rows]
    candidates = np.array(
        [i for i in range(len(rows)) if registry.is_sub_account(int(ids[i]))], dtype=np.int64
    )
    order = liquidation_order(ids[candidates], equity[candidates], maintenance[candidates])
    saved = []
    for i in candidates[order].tolist():
        sub = int(ids[i])
        row = int(rows[i])
        position = registry.by_sub[sub]
        sub_equity, initial_margin = book._account_equity_and_initial_margin(row)
        sub_mm = book.account_margin(sub)[1]
        need = sub_mm - sub_equity + 1  # the least that makes it safe: equity > MM
        want = max(need, initial_margin - sub_equity) if target_initial else need
        free = registry.free_balance(position.owner)
        if need <= 0 or free < need:
            continue
        amount = min(free, want)
        event_id = book.new_event_id()
        owner_before = book.account_margin(position.owner)
        book.transfer(position.owner, sub, amount, Reason.ISOLATED_MARGIN, event_id)
        result.log.append("margin_top_up", event_id, sub, position.instrument, 0, 0, amount)
        after_equity, after_mm = book.account_margin(sub)
        owner_equity, owner_mm = book.account_margin(position.owner)
        assert after_equity == sub_equity + amount and after_equity > after_mm, (
            f"isolated account {sub}: the top-up of {amount} did not make it safe"
        )
        assert owner_equity == owner_before[0] - amount and (
            owner_equity > owner_mm or (owner_mm == 0 and owner_equity >= 0)
        ), f"account {position.owner}: a top-up left the owner unsafe"
        saved.append(row)
    return saved
