"""Risk views over the book: equity, margins, status and liquidation prices at the marks.

Each is one call into the native kernels (engine._native) over the position store's CSR
columns, the instruments' tier tables and the marks' lot values; all results are exact
integers (money units, status codes as STATUS_NAMES in engine.book.book). `RiskView`
holds the references it reads; the book owns one and passes in what changes per call
(balances, the warning rate, threads).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine import _native
from engine.book.instruments import InstrumentTable
from engine.book.limits import PARALLEL_ACCOUNTS_MIN
from engine.book.positions import PositionStore


@dataclass(frozen=True)
class Risk:
    """One sweep's results per account row (money units; status codes as STATUS_NAMES)."""

    equity: np.ndarray
    maintenance_margin: np.ndarray
    initial_margin: np.ndarray | None
    status: np.ndarray

    @property
    def margin_ratio(self) -> np.ndarray:
        """maintenance_margin / equity for display (inf when equity <= 0 with margin due)."""
        mm = self.maintenance_margin.astype(np.float64)
        eq = self.equity.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(eq > 0, mm / np.where(eq > 0, eq, 1.0), np.inf)
        return np.where(mm == 0, 0.0, ratio)


SweepBuffers = tuple[np.ndarray, np.ndarray, np.ndarray]


class RiskView:
    """The margin kernels' view of a book: its positions, instruments and marks."""

    def __init__(
        self, positions: PositionStore, instruments: InstrumentTable, mark_lot_value: np.ndarray
    ) -> None:
        self.positions = positions
        self.instruments = instruments
        self.mark_lot_value = mark_lot_value  # written in place by the book's set_mark
        self._buffers: SweepBuffers | None = None

    def _position_columns(self, lo: int = 0, hi: int | None = None) -> tuple[np.ndarray, ...]:
        """The slot columns the margin kernels read, in their order (a slice for one account)."""
        part = slice(lo, hi)
        p = self.positions
        return (
            p.instrument[part],
            p.qty[part],
            p.cost[part],
            p.leverage[part],
            self.mark_lot_value,
        )

    def _tier_args(self) -> tuple[np.ndarray, ...]:
        t = self.instruments
        return (
            t.tier_start,
            t.tier_max_notional,
            t.tier_mmr,
            t.tier_maintenance_amount,
            t.tier_max_leverage,
        )

    def _per_contract(self) -> dict[str, np.ndarray]:
        t = self.instruments
        return {
            "tier_mm_per_contract": t.tier_mm_per_contract,
            "tier_im_per_contract": t.tier_im_per_contract,
        }

    def sweep_slots(
        self, lo: int, hi: int, balance: np.ndarray, warning_rate: int, *, with_initial_margin: bool
    ) -> Risk:
        """One account: its slots lo:hi (compacted) against its balance (a length-1 array)."""
        starts = np.array([0, hi - lo], dtype=np.int64)
        eq, mm, im, st = _native.sweep_accounts(
            starts,
            np.ascontiguousarray(balance, dtype=np.int64),
            *self._position_columns(lo, hi),
            *self._tier_args(),
            warning_rate,
            with_initial_margin,
            **self._per_contract(),
        )
        return Risk(eq, mm, im, st)

    def sweep(
        self,
        balance: np.ndarray,
        warning_rate: int,
        *,
        with_initial_margin: bool,
        threads: int,
        reuse_buffers: bool,
    ) -> Risk:
        """Every account; raises _native.NativeOverflowError naming the account row."""
        self.positions.compact()
        out = None
        if reuse_buffers:
            n = len(balance)
            if self._buffers is None or len(self._buffers[0]) != n:
                self._buffers = (
                    np.empty(n, dtype=np.int64),
                    np.empty(n, dtype=np.int64),
                    np.empty(n, dtype=np.int8),
                )
            out = self._buffers
        # Waking a thread costs tens of microseconds on a busy box: small books stay on one.
        threads = threads if len(balance) >= PARALLEL_ACCOUNTS_MIN else 1
        eq, mm, im, st = _native.sweep_accounts(
            self.positions.acct_start,
            balance,
            *self._position_columns(),
            *self._tier_args(),
            warning_rate,
            with_initial_margin,
            threads,
            out,
            **self._per_contract(),
        )
        return Risk(eq, mm, im, st)

    def sweep_rows(
        self, rows: np.ndarray, balance: np.ndarray, warning_rate: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Equity, maintenance margin and status of the given account rows only."""
        self.positions.compact()
        return _native.sweep_account_rows(
            np.ascontiguousarray(rows, dtype=np.int64),
            self.positions.acct_start,
            balance,
            *self._position_columns(),
            *self._tier_args(),
            warning_rate,
            **self._per_contract(),
        )

    def position_margins(self) -> dict[str, np.ndarray]:
        """Per slot: notional, unrealized_pnl, maintenance_margin, initial_margin, tier."""
        self.positions.compact()
        notional, upnl, mm, im, tier = _native.position_margins(
            *self._position_columns(),
            *self._tier_args(),
            **self._per_contract(),
        )
        return {
            "notional": notional,
            "unrealized_pnl": upnl,
            "maintenance_margin": mm,
            "initial_margin": im,
            "tier": tier,
        }

    def liquidation_prices(self, balance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cross liquidation and bankruptcy price (ticks; NULL_PRICE = none) of each slot."""
        p = self.positions
        p.compact()
        t = self.instruments
        return _native.liquidation_prices(
            p.acct_start,
            balance,
            p.instrument,
            p.qty,
            p.cost,
            t.tick_value,
            self.mark_lot_value,
            t.tier_start,
            t.tier_max_notional,
            t.tier_mmr,
            t.tier_maintenance_amount,
            tier_mm_per_contract=t.tier_mm_per_contract,
        )
