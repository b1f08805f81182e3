"""Seeded synthetic books for benchmarks, the demo and tests: columns, not Python objects.

Leverage mix of a retail crowd on a crash day (about 60% of traders at 5x or more, 20% at
10x, a tail to 100x), a long bias, and heavy-tailed sizes. The same seed gives the same
book, bit for bit.
"""

from __future__ import annotations

import numpy as np

from engine.book.book import Book
from engine.book.instruments import InstrumentTable

USDT = 10**8


def synthetic_instruments(n_instruments: int) -> InstrumentTable:
    """BTC-like tiers on every instrument; prices on a 0.01 tick, sizes on a 0.001 lot."""
    tiers = [
        {"max_notional": "50000", "mmr": "0.004", "max_leverage": 125},
        {"max_notional": "250000", "mmr": "0.005", "max_leverage": 100},
        {"max_notional": "1000000", "mmr": "0.01", "max_leverage": 50},
        {"max_notional": "10000000", "mmr": "0.025", "max_leverage": 20},
        {"max_notional": None, "mmr": "0.05", "max_leverage": 10},
    ]
    return InstrumentTable.from_dict(
        {
            "money_decimals": 8,
            "instruments": [
                {
                    "symbol": f"SYN{i:04d}USDT",
                    "tick_size": "0.01",
                    "lot_size": "0.001",
                    "tiers": tiers,
                }
                for i in range(n_instruments)
            ],
        }
    )


def synthetic_marks(n_instruments: int, seed: int) -> np.ndarray:
    """Mark prices in ticks (0.01): log-uniform from 0.1 to 100000."""
    rng = np.random.default_rng([seed, 1])
    return np.round(10 ** rng.uniform(1, 7, n_instruments)).astype(np.int64)


def synthetic_book(
    n_accounts: int,
    n_positions: int,
    n_instruments: int = 100,
    *,
    seed: int = 7,
    long_share: float = 0.6,
) -> Book:
    """A book of about n_positions positions over n_accounts accounts, marked at entry +-2%."""
    rng = np.random.default_rng(seed)
    instruments = synthetic_instruments(n_instruments)
    marks = synthetic_marks(n_instruments, seed)
    per_account = rng.poisson(max(n_positions / max(n_accounts, 1) - 1, 0), n_accounts) + 1
    per_account = np.minimum(per_account, n_instruments)
    owner = np.repeat(np.arange(n_accounts, dtype=np.int64), per_account)
    # Distinct instruments within an account: a random offset plus a stride of 1.
    first = rng.integers(0, n_instruments, n_accounts)
    within = np.arange(len(owner)) - np.repeat(np.cumsum(per_account) - per_account, per_account)
    inst = ((np.repeat(first, per_account) + within) % n_instruments).astype(np.int32)
    entry = np.maximum(1, np.round(marks[inst] * rng.uniform(0.98, 1.02, len(owner)))).astype(
        np.int64
    )
    notional_usdt = np.minimum(rng.pareto(1.5, len(owner)) * 200 + 10, 5_000_000)
    # lots = notional / (price * 0.01 * 0.001)
    lots = np.maximum(1, notional_usdt / (entry * 1e-5)).astype(np.int64)
    side = np.where(rng.random(len(owner)) < long_share, 1, -1)
    qty = side * lots
    tick_value = instruments.tick_value[inst]
    cost = qty * entry * tick_value
    leverage = rng.choice(
        np.array([1, 2, 3, 5, 10, 20, 50, 100], dtype=np.int32),
        len(owner),
        p=[0.1, 0.15, 0.15, 0.2, 0.2, 0.12, 0.05, 0.03],
    )
    account_notional = np.bincount(owner, weights=np.abs(cost) / USDT, minlength=n_accounts)
    account_leverage = rng.choice(
        np.array([1.0, 2, 3, 5, 10, 20, 50, 100]),
        n_accounts,
        p=[0.1, 0.15, 0.15, 0.2, 0.2, 0.12, 0.05, 0.03],
    )
    balance = np.round(account_notional / account_leverage * USDT).astype(np.int64)
    account_ids = np.arange(1, n_accounts + 1, dtype=np.int64) * 10 + 3
    book = Book.from_arrays(
        instruments, account_ids, balance, account_ids[owner], inst, qty, cost, leverage
    )
    for i, symbol in enumerate(instruments.index):
        book.set_mark(symbol, int(marks[i]))
    return book


# Leverage mix of a retail crowd on a crash day: 60% of traders at 5x or more, 20% at 10x,
# a tail to 100x.
CRASH_LEVERAGES = np.array([1, 2, 3, 5, 10, 20, 25, 50, 75, 100], dtype=np.int64)
CRASH_LEVERAGE_SHARE = np.array([0.10, 0.15, 0.15, 0.20, 0.20, 0.08, 0.04, 0.05, 0.02, 0.01])
MAKER_LEVERAGE = 2


def crash_book(
    instruments: InstrumentTable,
    marks: np.ndarray,
    n_accounts: int,
    *,
    seed: int = 11,
    weights: np.ndarray | None = None,
    long_share: float = 0.75,
    maker_share: float = 0.01,
) -> Book:
    """A closed book of leveraged traders facing low-leverage market makers, at `marks`.

    Traders (all but `maker_share` of the accounts) hold 1 + Poisson(0.6) positions in
    instruments drawn by `weights` (share of positions, default equal), long with
    probability `long_share` (on 2025-10-11 about 87% of the liquidated notional was
    long), notional 200 + 4000 * Lomax(1.5) USDT (heavy-tailed, capped at 20M), entry within
    a few percent of the mark, one account leverage from CRASH_LEVERAGES capped by the
    tiers, and a balance that puts the account's equity at its notional / leverage.
    The makers take the traders' net open interest per instrument at 2x, so open interest
    nets to zero (engine.waterfall.conservation.audit(closed=True) holds). Marks are in
    ticks, money at the table's money_decimals; the same seed gives the same book, bit for bit.
    """
    n_inst = len(instruments)
    marks = np.asarray(marks, dtype=np.int64)
    if not (len(marks) == n_inst and (marks > 0).all()):
        raise ValueError("marks: one positive mark per instrument")
    if not n_accounts >= 2:
        raise ValueError("n_accounts: at least one trader and one maker")
    rng = np.random.default_rng([seed, 2025, 10, 11])
    p = np.full(n_inst, 1.0 / n_inst) if weights is None else np.asarray(weights, float)
    p = p / p.sum()
    money_scale = 10**instruments.money_decimals
    tick_value = instruments.tick_value
    n_makers = min(max(1, round(n_accounts * maker_share)), n_accounts - 1)
    n_traders = n_accounts - n_makers

    per_account = np.minimum(rng.poisson(0.6, n_traders) + 1, n_inst)
    owner = np.repeat(np.arange(n_traders, dtype=np.int64), per_account)
    inst = rng.choice(n_inst, len(owner), p=p).astype(np.int32)
    # One position per (account, instrument): later draws of the same pair are dropped.
    _, first = np.unique(owner * n_inst + inst, return_index=True)
    owner, inst = owner[first], inst[first]
    n_pos = len(owner)
    notional = np.minimum(200 + 4000 * rng.pareto(1.5, n_pos), 20_000_000) * money_scale
    entry = np.maximum(1, np.round(marks[inst] * np.exp(rng.normal(0, 0.02, n_pos))))
    entry = entry.astype(np.int64)
    lots = np.maximum(1, notional / (entry * tick_value[inst])).astype(np.int64)
    side = np.where(rng.random(n_pos) < long_share, 1, -1)
    qty = side * lots
    cost = qty * entry * tick_value[inst]
    leverage = rng.choice(CRASH_LEVERAGES, n_traders, p=CRASH_LEVERAGE_SHARE)
    mark_value = lots * marks[inst] * tick_value[inst]
    cap = _tier_max_leverage(instruments, inst, mark_value)
    account_cap = np.full(n_traders, int(CRASH_LEVERAGES.max()), dtype=np.int64)
    np.minimum.at(account_cap, owner, cap)
    leverage = np.minimum(leverage, account_cap)

    # Integer sums throughout: bincount's float weights could round at billions of lots.
    net = np.zeros(n_inst, dtype=np.int64)
    np.add.at(net, inst, qty)
    maker_weight = 1 + rng.pareto(1.2, n_makers)
    share = maker_weight / maker_weight.sum()
    m_owner = np.repeat(np.arange(n_makers, dtype=np.int64), n_inst)
    m_inst = np.tile(np.arange(n_inst, dtype=np.int32), n_makers)
    m_qty = np.floor(-net[m_inst] * share[m_owner]).astype(np.int64)
    placed = np.zeros(n_inst, dtype=np.int64)
    np.add.at(placed, m_inst, m_qty)
    m_qty[:n_inst] += -net - placed  # maker 0 rounds off each instrument's net exactly
    live = m_qty != 0
    m_owner, m_inst, m_qty = m_owner[live], m_inst[live], m_qty[live]
    m_cost = m_qty * marks[m_inst] * tick_value[m_inst]

    all_owner = np.concatenate([owner, n_traders + m_owner])
    all_inst = np.concatenate([inst, m_inst])
    all_qty = np.concatenate([qty, m_qty])
    all_cost = np.concatenate([cost, m_cost])
    account_leverage = np.concatenate([leverage, np.full(n_makers, MAKER_LEVERAGE)])
    value = np.abs(all_qty) * marks[all_inst] * tick_value[all_inst]
    upnl = all_qty * marks[all_inst] * tick_value[all_inst] - all_cost
    target = np.bincount(all_owner, weights=value, minlength=n_accounts) / account_leverage
    account_upnl = np.zeros(n_accounts, dtype=np.int64)
    np.add.at(account_upnl, all_owner, upnl)
    balance = np.maximum(np.ceil(target).astype(np.int64) - account_upnl, 0)
    pos_leverage = account_leverage[all_owner].astype(np.int32)
    account_ids = np.arange(1, n_accounts + 1, dtype=np.int64)
    book = Book.from_arrays(
        instruments,
        account_ids,
        balance,
        account_ids[all_owner],
        all_inst,
        all_qty,
        all_cost,
        pos_leverage,
    )
    for i, symbol in enumerate(instruments.index):
        book.set_mark(symbol, int(marks[i]))
    return book


def _tier_max_leverage(
    instruments: InstrumentTable, inst: np.ndarray, notional: np.ndarray
) -> np.ndarray:
    """The max leverage of the tier each notional (money units) falls in."""
    out = np.empty(len(inst), dtype=np.int64)
    for i in range(len(instruments)):
        lo, hi = int(instruments.tier_start[i]), int(instruments.tier_start[i + 1])
        mask = inst == i
        tier = np.searchsorted(instruments.tier_max_notional[lo:hi], notional[mask], side="left")
        out[mask] = instruments.tier_max_leverage[lo:hi][np.minimum(tier, hi - lo - 1)]
    return out
