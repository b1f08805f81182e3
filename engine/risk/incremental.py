"""Incremental sweep: re-check only the accounts a mark move could have brought to a warning.

Equity and maintenance margin are piecewise linear in the marks. For an account that was
`ok` at the anchor, take its warning slack `W = w*E - S*MM` (status stays ok while W > 0;
w the warning rate, S the rate scale). If every mark moved by at most R relative to the
anchor, with G the account's gross notional at the anchor and n its positions:

    |dE| <= R*G,   |dMM| <= R*G + n   (mmr < 1; MM is continuous; +1 per rounded position)
    W(now) >= W0 - R*G*(w + S) - S*n

so the account is still ok while R < critical = (W0 - S*n) / ((w + S) * G). Accounts are
kept in buckets of `critical` on a geometric scale (an index of distances to breach, like a
book of stop orders, built by a counting sort rather than a full sort); a tick evaluates the
buckets whose lower edge is <= R (a superset of the accounts with critical <= R), plus every
account that was not ok at the anchor and every account changed by events since. The
bound is computed in float64 with explicit safety margins, always on the side of checking
more. When the candidates exceed `reanchor_fraction` of the book, or a mark moves off a zero
anchor, the tick runs a full sweep and re-anchors.

The statuses this returns equal a full sweep's for every account (accounts not evaluated
are `ok`, which the bound proves); the equity and margins returned are exact for the
accounts evaluated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine import _native
from engine.book.book import STATUS_OK, Book
from engine.book.fixed import RATE_SCALE

FLOAT_SAFETY = 1e-9  # relative slack for float rounding; far above float64's 1e-16
REANCHOR_FRACTION_DEFAULT = 0.05
REANCHOR_WORK = 1.0  # single-account checks since the anchor, per account of the book
# Buckets of `critical` (a relative move): bucket 0 holds the accounts not ok at the anchor
# (critical = -inf) and any at or below BUCKET_LOW; then BUCKETS_PER_DECADE per factor of 10
# up to BUCKET_HIGH; the last holds the rest (+inf: no positions).
BUCKET_LOW, BUCKET_HIGH, BUCKETS_PER_DECADE = 1e-6, 10.0, 16
N_BUCKETS = 2 + int(round(np.log10(BUCKET_HIGH / BUCKET_LOW))) * BUCKETS_PER_DECADE


def bucket_index(move: float) -> int:
    """bucket_of for one finite value, without numpy's per-call overhead (a tick's move)."""
    if not move > BUCKET_LOW:
        return 0
    scaled = math.log10(move / BUCKET_LOW) * BUCKETS_PER_DECADE
    return min(int(math.floor(scaled)) + 1, N_BUCKETS - 1)


def bucket_of(critical: np.ndarray | float) -> np.ndarray:
    """Bucket index of each `critical`; the lower edge of bucket b >= 1 is bucket_low(b)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.log10(np.maximum(critical, BUCKET_LOW) / BUCKET_LOW) * BUCKETS_PER_DECADE
    bucket = np.floor(np.nan_to_num(scaled, posinf=N_BUCKETS)).astype(np.int64) + 1
    bucket = np.where(np.asarray(critical) <= BUCKET_LOW, 0, bucket)
    return np.clip(bucket, 0, N_BUCKETS - 1)


@dataclass(frozen=True)
class TickResult:
    rows: np.ndarray  # account rows evaluated this tick
    equity: np.ndarray
    maintenance_margin: np.ndarray
    status: np.ndarray
    full_sweep: bool  # True when this tick re-anchored

    def status_of_all(self, n_accounts: int) -> np.ndarray:
        status = np.full(n_accounts, STATUS_OK, dtype=np.int8)
        status[self.rows] = self.status
        return status


class IncrementalSweep:
    def __init__(self, book: Book, *, reanchor_fraction: float = REANCHOR_FRACTION_DEFAULT):
        if not 0 < reanchor_fraction <= 1:
            raise ValueError("reanchor_fraction must be in (0, 1]")
        self.book = book
        self.reanchor_fraction = reanchor_fraction
        self.anchors = 0
        self.anchor()

    def anchor(self) -> TickResult:
        """Full sweep; rebuild the index of distances to a warning."""
        book = self.book
        risk = book.sweep(with_initial_margin=False)
        book.changed_rows.clear()
        self.anchors += 1
        self._anchor_lot_value = book.mark_lot_value.astype(np.float64)
        self._anchor_zero = book.mark_lot_value == 0
        self._n_accounts = book.n_accounts
        w, s = float(book.warning_rate), float(RATE_SCALE)
        equity = risk.equity.astype(np.float64)
        maintenance = risk.maintenance_margin.astype(np.float64)
        gross, n_positions = self._gross_notional()
        slack = w * equity - s * maintenance
        slack -= FLOAT_SAFETY * (w * np.abs(equity) + s * maintenance) + s * (n_positions + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            critical = slack / ((w + s) * gross * (1 + FLOAT_SAFETY))
        critical = np.where(gross > 0, critical, np.inf)
        critical = np.where(risk.status == STATUS_OK, critical, -np.inf)
        bucket = bucket_of(critical).astype(np.uint8)
        self._order = np.argsort(bucket, kind="stable")  # a radix sort on 8-bit keys
        self._bucket_end = np.cumsum(np.bincount(bucket, minlength=N_BUCKETS))
        # The index prefix evaluated so far (it only grows until the next anchor: a larger
        # set than needed is still exact) and the rows changed by events since the anchor,
        # whose anchor figures are stale; both as masks, so a union costs no sort.
        self._prefix = 0
        self._in_prefix = np.zeros(book.n_accounts, dtype=bool)
        self._is_dirty = np.zeros(book.n_accounts, dtype=bool)
        self._dirty = np.zeros(0, dtype=np.int64)
        self._cached: np.ndarray | None = None
        self._work = 0
        rows = np.arange(book.n_accounts, dtype=np.int64)
        return TickResult(rows, risk.equity, risk.maintenance_margin, risk.status, True)

    def _gross_notional(self) -> tuple[np.ndarray, np.ndarray]:
        book = self.book
        book.compact()
        return _native.account_exposure(
            book.acct_start, book.pos_instrument, book.pos_qty, book.mark_lot_value
        )

    def max_relative_move(self) -> float:
        """The largest |mark - anchor| / anchor over all instruments, rounded up."""
        now = self.book.mark_lot_value.astype(np.float64)
        moved_off_zero = self._anchor_zero & (now != 0)
        if moved_off_zero.any():
            return np.inf
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(self._anchor_zero, 0.0, np.abs(now - self._anchor_lot_value))
            rel = rel / np.where(self._anchor_zero, 1.0, self._anchor_lot_value)
        return float(rel.max(initial=0.0)) * (1 + FLOAT_SAFETY) + 1e-15

    def candidates(self) -> np.ndarray:
        """Rows to evaluate, each once: accounts not ok at the anchor (critical = -inf, so
        always in the prefix), those the move could reach, and those changed since the
        anchor. Between ticks the set only changes when the move reaches another bucket or
        events change accounts, so it is kept and reused until then."""
        move = self.max_relative_move()
        # every bucket whose accounts may have critical <= move: up to the move's own bucket
        k = int(self._bucket_end[bucket_index(move)]) if move < np.inf else len(self._order)
        if k > self._prefix:
            self._in_prefix[self._order[self._prefix : k]] = True
            self._prefix = k
            self._cached = None
        book = self.book
        if book.changed_rows or book.n_accounts > self._n_accounts:
            grown = book.n_accounts - len(self._is_dirty)
            if grown > 0:
                self._in_prefix = np.concatenate([self._in_prefix, np.zeros(grown, bool)])
                self._is_dirty = np.concatenate([self._is_dirty, np.zeros(grown, bool)])
            changed = np.fromiter(book.changed_rows, dtype=np.int64, count=len(book.changed_rows))
            new_rows = np.arange(self._n_accounts, book.n_accounts, dtype=np.int64)
            rows = np.concatenate([changed, new_rows])
            rows = rows[~self._is_dirty[rows]]
            self._is_dirty[rows] = True
            self._dirty = np.concatenate([self._dirty, np.unique(rows)])
            self._n_accounts = book.n_accounts
            book.changed_rows.clear()
            self._cached = None
        if self._cached is None:
            extra = self._dirty[~self._in_prefix[self._dirty]]
            # sorted: the checks then walk the columns forward, which the prefetcher follows
            self._cached = np.sort(np.concatenate([self._order[: self._prefix], extra]))
        return self._cached

    def tick(self) -> TickResult:
        move = self.max_relative_move()
        if not np.isfinite(move):
            return self.anchor()
        rows = self.candidates()
        n = max(self.book.n_accounts, 1)
        # Accounts the move reached and accounts changed since the anchor are re-checked every
        # tick until the next anchor, which resets the move to zero. Once that repeated work
        # adds up to about what an anchor costs (a full pass plus the index, in the time of
        # scattered single-account checks), anchoring again is cheaper (ski rental). The
        # accounts already in warning at the anchor stay candidates either way: not counted.
        self._work += len(rows) - int(self._bucket_end[0])
        if len(rows) > self.reanchor_fraction * n or self._work > REANCHOR_WORK * n:
            return self.anchor()
        equity, maintenance, status = self.book.sweep_rows(rows)
        return TickResult(rows, equity, maintenance, status, False)
