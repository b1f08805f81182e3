"""Waterfall safety: profiles, books and the checks shared by the safety tests.

The rules checked (docs/design.md, "Waterfall safety"): an account that did not default and
pays ADL or socialized loss is left safe (positions left: equity > maintenance margin; flat:
equity >= 0) and pays at most the profit, at the mark, of the lots it closes (ADL) or its
unrealized profit (socialized loss); the tick's deficit is accounted for to the unit by
`fund_drawdown + adl_amount + socialized_amount + unallocated_loss == deficit_to_cover`;
money is conserved and the waterfall never opens positions.

Each check takes a `Snapshot` taken just before `run_waterfall` and one taken after, and
raises AssertionError naming the accounts and figures.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.book.book import STATUS_BANKRUPT, STATUS_LIQUIDATE, Book
from engine.waterfall.adl_book import closed_profit
from engine.waterfall.conservation import audit
from engine.waterfall.events import WaterfallResult
from engine.waterfall.profile import PROFILES_DIR, Profile, reserved_mask

USDT = 10**8  # money units per USDT (money_decimals 8)


def profile(
    *,
    adl: bool = True,
    policy: str = "pnl_leverage",
    quantity: str | None = None,
    socialized: bool = True,
    floor_usdt: int = 0,
    protection: bool = True,
    partial: bool = False,
) -> Profile:
    """The shipped binance-like profile with the waterfall options replaced.

    `quantity` None leaves `[adl] quantity` out (the default, "fewest"); otherwise it is
    written with `price = "bankruptcy"` as the profile text would have it."""
    doc: dict[str, Any] = tomllib.loads((PROFILES_DIR / "binance-like.toml").read_text())
    doc["adl"] = {"enabled": adl, "policy": policy}
    if quantity is not None:
        doc["adl"].update({"price": "bankruptcy", "quantity": quantity})
    doc["socialized_loss"] = {"enabled": socialized, "basis": "profit"}
    doc["insurance_fund"]["floor"] = str(floor_usdt)
    doc["negative_balance"] = {"protection": protection}
    doc["liquidation"]["partial"] = partial
    return Profile.from_dict(doc)


@dataclass(frozen=True)
class Snapshot:
    """Per account id: equity, maintenance margin, status, positions {instrument: (qty,
    cost)} and unrealized PnL; per instrument: long lots and net lots over every account."""

    equity: dict[int, int]
    maintenance: dict[int, int]
    status: dict[int, int]
    positions: dict[int, dict[int, tuple[int, int]]]
    upnl: dict[int, int]
    trader: dict[int, bool]
    long_lots: list[int]
    net_lots: list[int]


def snapshot(book: Book, p: Profile) -> Snapshot:
    risk = book.sweep(with_initial_margin=False)
    ids = book.account_id.tolist()
    lot_value = book.mark_lot_value.tolist()
    positions = {a: {i: (q, c) for i, q, c in book.positions_of(a)} for a in ids}
    upnl = {
        a: sum(q * lot_value[i] - c for i, (q, c) in pos.items()) for a, pos in positions.items()
    }
    book.compact()
    n = len(book.instruments)
    long_lots = np.zeros(n, dtype=np.int64)
    net_lots = np.zeros(n, dtype=np.int64)
    np.add.at(long_lots, book.pos_instrument, np.maximum(book.pos_qty, 0))
    np.add.at(net_lots, book.pos_instrument, book.pos_qty)
    trader = ~reserved_mask(book.account_id, p)
    return Snapshot(
        equity=dict(zip(ids, risk.equity.tolist(), strict=True)),
        maintenance=dict(zip(ids, risk.maintenance_margin.tolist(), strict=True)),
        status=dict(zip(ids, risk.status.tolist(), strict=True)),
        positions=positions,
        upnl=upnl,
        trader=dict(zip(ids, trader.tolist(), strict=True)),
        long_lots=long_lots.tolist(),
        net_lots=net_lots.tolist(),
    )


def paid(result: WaterfallResult, kind: str) -> dict[int, int]:
    """Money paid per account in events of `kind` ("adl" or "socialized_loss")."""
    out: dict[int, int] = {}
    for e in result.events:
        if e.kind == kind:
            out[e.account_id] = out.get(e.account_id, 0) + e.amount
    return out


def adl_closed_profit(book: Book, before: Snapshot, result: WaterfallResult) -> dict[int, int]:
    """Per account, the profit at the mark of the lots its ADL events closed: each event's
    |qty| lots closed from the position as it stood, exactly as Book.apply_fill rounds."""
    position = {a: dict(pos) for a, pos in before.positions.items()}
    symbols = [i.symbol for i in book.instruments.instruments]
    profit: dict[int, int] = {}
    for e in result.events:
        if e.kind != "adl" or e.qty == 0:
            continue
        inst = symbols.index(e.symbol)
        qty, cost = position[e.account_id][inst]
        k = abs(e.qty)
        assert 0 < k <= abs(qty), f"ADL event {e} closes more than account's {qty} lots"
        lot_value = int(book.mark_lot_value[inst])
        profit[e.account_id] = profit.get(e.account_id, 0) + closed_profit(qty, cost, k, lot_value)
        closed = k if qty > 0 else -k
        closed_cost = -((-cost * closed) // qty)
        position[e.account_id][inst] = (qty - closed, cost - closed_cost)
    return profit


# ----- the checks ------------------------------------------------------------------------
def check_no_trader_breached(after: Snapshot, debt_mode: bool) -> None:
    """(i) No trader account is left liquidate/bankrupt, unless flat and in debt mode."""
    bad = [
        (a, after.status[a], after.equity[a], after.maintenance[a], after.positions[a])
        for a in after.status
        if after.trader[a]
        and after.status[a] >= STATUS_LIQUIDATE
        and not (debt_mode and not after.positions[a] and after.status[a] == STATUS_BANKRUPT)
    ]
    assert not bad, f"traders left breached (id, status, equity, mm, positions): {bad}"


def check_payers_safe(
    book: Book, before: Snapshot, after: Snapshot, result: WaterfallResult
) -> None:
    """(ii) Every ADL / socialized-loss payer is safe after and paid at most its profit; an
    account that was not breached before loses exactly what its events say, no more."""
    adl, social = paid(result, "adl"), paid(result, "socialized_loss")
    profit = adl_closed_profit(book, before, result)
    for a in sorted(adl.keys() | social.keys()):
        assert before.trader[a], f"house account {a} paid ADL or socialized loss"
        if after.positions[a]:
            assert after.equity[a] > after.maintenance[a], (
                f"payer {a} left with equity {after.equity[a]} <= maintenance"
                f" {after.maintenance[a]} (paid adl {adl.get(a, 0)}, socialized"
                f" {social.get(a, 0)}; positions {after.positions[a]})"
            )
        else:
            assert after.equity[a] >= 0, f"payer {a} left flat at equity {after.equity[a]}"
        if before.status[a] >= STATUS_LIQUIDATE:
            continue  # partially liquidated first: its positions changed before ADL
        assert 0 <= adl.get(a, 0) <= profit.get(a, 0), (
            f"account {a} paid ADL {adl.get(a, 0)} > profit {profit.get(a, 0)} of its lots"
        )
        # Closing lots at the mark moves none of an account's unrealized PnL away: what is
        # left after ADL is the unrealized PnL before less the profit ADL closed.
        left = before.upnl[a] - profit.get(a, 0)
        assert 0 <= social.get(a, 0) <= max(left, 0), (
            f"account {a} paid socialized loss {social.get(a, 0)} > its unrealized profit {left}"
        )
    for a, equity in before.equity.items():
        if not before.trader[a] or before.status[a] >= STATUS_LIQUIDATE:
            continue
        lost = equity - after.equity[a]
        assert lost == adl.get(a, 0) + social.get(a, 0), (
            f"account {a} lost {lost} of equity but its events say adl {adl.get(a, 0)}"
            f" + socialized {social.get(a, 0)}"
        )


def check_deficit_identity(
    result: WaterfallResult, fund_before: int, floor: int, default: bool
) -> None:
    """(iii) fund_drawdown + adl_amount + socialized_amount + unallocated_loss ==
    deficit_to_cover, to the unit; deficit_to_cover = insurance payouts + unwind losses;
    the fund draws down at most what it held above its floor (plus the tick's fees and
    takeover surplus) and what it cannot place stays as its deficit below the floor."""
    parts = (
        result.fund_drawdown,
        result.adl_amount,
        result.socialized_amount,
        result.unallocated_loss,
    )
    assert all(x >= 0 for x in parts), f"negative part in {parts}"
    payouts = sum(e.amount for e in result.events if e.kind == "insurance_payout")
    unwind_loss = sum(-e.amount for e in result.events if e.kind == "unwind" and e.amount < 0)
    assert result.deficit_to_cover == payouts + unwind_loss, (
        f"deficit_to_cover {result.deficit_to_cover} != payouts {payouts} + unwind loss"
        f" {unwind_loss}"
    )
    assert sum(parts) == result.deficit_to_cover, (
        f"drawdown + adl + socialized + unallocated = {parts} sum {sum(parts)}"
        f" != deficit_to_cover {result.deficit_to_cover}"
    )
    offsets = result.liquidation_fees + result.takeover_surplus
    assert result.fund_drawdown <= max(0, fund_before - floor) + offsets
    adl_events = sum(e.amount for e in result.events if e.kind == "adl")
    assert adl_events == result.adl_amount + result.adl_overshoot
    if default:
        assert result.adl_overshoot == 0
    if result.unallocated_loss:
        assert result.fund_equity_after == floor - result.unallocated_loss
    else:
        assert result.fund_equity_after >= floor


def check_open_interest(before: Snapshot, after: Snapshot) -> None:
    """(vi) Per instrument the positions of all accounts (fund and unwind counterparty
    included) still net to zero, as before, and the waterfall opened no lots: takeovers and
    the unwind move positions, ADL only closes pairs."""
    assert after.net_lots == before.net_lots == [0] * len(before.net_lots)
    assert all(a <= b for a, b in zip(after.long_lots, before.long_lots, strict=True)), (
        f"open interest grew: {before.long_lots} -> {after.long_lots}"
    )


def check_conserved(book: Book) -> None:
    """(v) The conservation audit over the closed book."""
    assert audit(book, closed=True).ok
