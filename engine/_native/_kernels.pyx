# cython: language_level=3
"""Bindings of the C kernels: check shapes, build the column structs, release the GIL, call.

The Python signatures take the book's columns one by one (engine.book passes its arrays);
each function checks their lengths, points a `book_columns` and a `tier_table` (csrc/
book_columns.h) at them and calls the kernel. The shared constants below come from the C
headers, so Python and C read one definition.
"""
import numpy as np

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t

from engine._native.kernels cimport (
    ADL_POLICY_HYPERLIQUID as C_ADL_POLICY_HYPERLIQUID,
    ADL_POLICY_PNL_LEVERAGE as C_ADL_POLICY_PNL_LEVERAGE,
    ADL_SCORE_SCALE as C_ADL_SCORE_SCALE,
    ASSET_LIABILITY_ASSETS_MAX as C_ASSET_LIABILITY_ASSETS_MAX,
    KERNEL_DEBUG as C_KERNEL_DEBUG,
    NULL_PRICE as C_NULL_PRICE,
    POSITION_TICK_VALUE_MAX as C_POSITION_TICK_VALUE_MAX,
    RATE_SCALE as C_RATE_SCALE,
    STATUS_BANKRUPT as C_STATUS_BANKRUPT,
    STATUS_COUNT as C_STATUS_COUNT,
    STATUS_LIQUIDATE as C_STATUS_LIQUIDATE,
    STATUS_MARGIN_CALL as C_STATUS_MARGIN_CALL,
    STATUS_NAMES as C_STATUS_NAMES,
    STATUS_OK as C_STATUS_OK,
    account_exposure as c_account_exposure,
    adl_scores as c_adl_scores,
    adl_top_k as c_adl_top_k,
    allocate_largest_remainder as c_allocate_largest_remainder,
    asset_liability_book,
    asset_liability_out,
    apply_account_events as c_apply_account_events,
    EVENT_APPLIED as C_EVENT_APPLIED,
    EVENT_DEPOSIT as C_EVENT_DEPOSIT,
    EVENT_FILL as C_EVENT_FILL,
    EVENT_LEVERAGE as C_EVENT_LEVERAGE,
    EVENT_ONE_BY_ONE as C_EVENT_ONE_BY_ONE,
    EVENT_OUTCOME_COUNT as C_EVENT_OUTCOME_COUNT,
    EVENT_WITHDRAW as C_EVENT_WITHDRAW,
    POSTINGS_PER_EVENT_MAX as C_POSTINGS_PER_EVENT_MAX,
    account_table,
    book_state,
    event_columns,
    event_out,
    event_rules,
    pair_table,
    book_columns,
    liquidation_prices as c_liquidation_prices,
    position_margin_out,
    position_margins as c_position_margins,
    sweep_account_rows as c_sweep_account_rows,
    sweep_accounts as c_sweep_accounts,
    sweep_asset_liability as c_sweep_asset_liability,
    sweep_out,
    tier_table,
)

KERNEL_DEBUG = bool(C_KERNEL_DEBUG)  # precondition asserts compiled in (a debug build)
RATE_SCALE = C_RATE_SCALE
POSITION_TICK_VALUE_MAX = C_POSITION_TICK_VALUE_MAX
STATUS_OK = C_STATUS_OK
STATUS_MARGIN_CALL = C_STATUS_MARGIN_CALL
STATUS_LIQUIDATE = C_STATUS_LIQUIDATE
STATUS_BANKRUPT = C_STATUS_BANKRUPT


def _status_names():
    cdef int code
    return tuple([C_STATUS_NAMES[code].decode("ascii") for code in range(C_STATUS_COUNT)])


STATUS_NAMES = _status_names()
NULL_PRICE = C_NULL_PRICE
ADL_POLICY_PNL_LEVERAGE = C_ADL_POLICY_PNL_LEVERAGE
ADL_POLICY_HYPERLIQUID = C_ADL_POLICY_HYPERLIQUID
ADL_SCORE_SCALE = C_ADL_SCORE_SCALE
EVENT_DEPOSIT = C_EVENT_DEPOSIT
EVENT_WITHDRAW = C_EVENT_WITHDRAW
EVENT_FILL = C_EVENT_FILL
EVENT_LEVERAGE = C_EVENT_LEVERAGE
EVENT_APPLIED = C_EVENT_APPLIED
EVENT_ONE_BY_ONE = C_EVENT_ONE_BY_ONE
EVENT_OUTCOME_COUNT = C_EVENT_OUTCOME_COUNT
POSTINGS_PER_EVENT_MAX = C_POSTINGS_PER_EVENT_MAX

# A zero-length memoryview has no element 0 to take the address of.
cdef int64_t _one_i64[1]
cdef int32_t _one_i32[1]


class NativeOverflowError(OverflowError):
    """A value outside the fixed-point range; `index` names the account or position."""

    def __init__(self, message, index):
        super().__init__(message)
        self.index = index


cdef inline const int64_t* p64(const int64_t[::1] v) noexcept nogil:
    return &v[0] if v.shape[0] > 0 else _one_i64


cdef inline const int32_t* p32(const int32_t[::1] v) noexcept nogil:
    return &v[0] if v.shape[0] > 0 else _one_i32


def _check_book(const int64_t[::1] acct_start, const int64_t[::1] balance,
                const int32_t[::1] pos_instrument, const int64_t[::1] pos_qty,
                const int64_t[::1] pos_cost, const int64_t[::1] tier_start,
                Py_ssize_t n_instruments):
    if acct_start.shape[0] != balance.shape[0] + 1:
        raise ValueError("acct_start must have one more entry than balance")
    n_pos = pos_qty.shape[0]
    if pos_instrument.shape[0] != n_pos or pos_cost.shape[0] != n_pos:
        raise ValueError("position columns must have equal lengths")
    if acct_start.shape[0] and (acct_start[0] != 0 or acct_start[acct_start.shape[0] - 1] > n_pos):
        raise ValueError("acct_start must start at 0 and end within the position columns")
    if tier_start.shape[0] != n_instruments + 1:
        raise ValueError("tier_start must have one entry per instrument plus one")


cdef book_columns _positions(const int32_t[::1] pos_instrument, const int64_t[::1] pos_qty,
                             const int64_t[::1] mark_lot_value) noexcept:
    """A book_columns over checked instrument, qty and mark columns; the caller points the
    other columns it has (cost, leverage, accounts), and the rest stay NULL: not read."""
    cdef book_columns book
    book.n_accounts = 0
    book.acct_start = NULL
    book.balance = NULL
    book.n_positions = pos_qty.shape[0]
    book.pos_instrument = p32(pos_instrument)
    book.pos_qty = p64(pos_qty)
    book.pos_cost = NULL
    book.pos_leverage = NULL
    book.n_instruments = mark_lot_value.shape[0]
    book.mark_lot_value = p64(mark_lot_value)
    return book


cdef tier_table _tiers(const int64_t[::1] tier_start, const int64_t[::1] tier_max_notional,
                       const int64_t[::1] tier_mmr, const int64_t[::1] tier_maintenance_amount,
                       const int64_t[::1] tier_max_leverage) except *:
    """A tier_table over checked columns; tier_max_leverage may be None (NULL: not read),
    tick_value is NULL until the caller points it."""
    cdef Py_ssize_t n_tiers = tier_max_notional.shape[0]
    if tier_mmr.shape[0] != n_tiers or tier_maintenance_amount.shape[0] != n_tiers or (
        tier_max_leverage is not None and tier_max_leverage.shape[0] != n_tiers
    ):
        raise ValueError("tier columns must have equal lengths")
    if tier_start.shape[0] == 0 or tier_start[tier_start.shape[0] - 1] != n_tiers:
        raise ValueError("tier_start must end at the number of tiers")
    cdef tier_table tiers
    tiers.n_instruments = tier_start.shape[0] - 1
    tiers.tick_value = NULL
    tiers.tier_start = p64(tier_start)
    tiers.n_tiers = n_tiers
    tiers.tier_max_notional = p64(tier_max_notional)
    tiers.tier_mmr = p64(tier_mmr)
    tiers.tier_maintenance_amount = p64(tier_maintenance_amount)
    tiers.tier_max_leverage = NULL if tier_max_leverage is None else p64(tier_max_leverage)
    tiers.tier_mm_per_contract = NULL  # the caller points the per-contract columns
    tiers.tier_im_per_contract = NULL
    return tiers


def _per_contract(values, Py_ssize_t n_tiers, str name):
    """A per-contract tier column (money units per lot) as int64, zeros when None.
    The caller binds the result to a local, so the memory outlives the kernel call."""
    if values is None:
        return np.zeros(max(n_tiers, 1), dtype=np.int64)
    column = np.ascontiguousarray(values, dtype=np.int64)
    if column.ndim != 1 or column.shape[0] != n_tiers:
        raise ValueError(f"{name} must have one entry per tier")
    return column  # values >= 0: the loader's check, asserted in the debug build


def sweep_accounts(const int64_t[::1] acct_start, const int64_t[::1] balance,
                   const int32_t[::1] pos_instrument, const int64_t[::1] pos_qty,
                   const int64_t[::1] pos_cost, const int32_t[::1] pos_leverage,
                   const int64_t[::1] mark_lot_value, const int64_t[::1] tier_start,
                   const int64_t[::1] tier_max_notional, const int64_t[::1] tier_mmr,
                   const int64_t[::1] tier_maintenance_amount,
                   const int64_t[::1] tier_max_leverage, int64_t warning_rate,
                   bint with_initial_margin=True, int n_threads=1, out=None, *,
                   tier_mm_per_contract=None, tier_im_per_contract=None):
    """Equity, maintenance margin, initial margin (or None) and status of every account.

    `out`, an (equity, maintenance, status) tuple of arrays of the right length, is written
    instead of fresh arrays: a per-tick loop then does not pay page faults on new memory.
    The per-contract tier columns (csrc/book_columns.h) default to zeros: rate-only tiers.
    """
    _check_book(acct_start, balance, pos_instrument, pos_qty, pos_cost, tier_start,
                mark_lot_value.shape[0])
    if pos_leverage.shape[0] != pos_qty.shape[0]:
        raise ValueError("pos_leverage must match the position columns")
    cdef Py_ssize_t n = balance.shape[0]
    if out is None:
        equity = np.empty(n, dtype=np.int64)
        maintenance = np.empty(n, dtype=np.int64)
        status = np.empty(n, dtype=np.int8)
    else:
        equity, maintenance, status = out
        if not (len(equity) == len(maintenance) == len(status) == n):
            raise ValueError("out arrays must have one entry per account")
    initial = np.empty(n if with_initial_margin else 0, dtype=np.int64)
    cdef int64_t[::1] eq_v = equity
    cdef int64_t[::1] mm_v = maintenance
    cdef int64_t[::1] im_v = initial
    cdef int8_t[::1] st_v = status
    cdef int8_t one_status[1]
    cdef book_columns book = _positions(pos_instrument, pos_qty, mark_lot_value)
    book.pos_cost = p64(pos_cost)
    book.n_accounts = n
    book.acct_start = p64(acct_start)
    book.balance = p64(balance)
    book.pos_leverage = p32(pos_leverage)
    cdef tier_table tiers = _tiers(tier_start, tier_max_notional, tier_mmr,
                                   tier_maintenance_amount, tier_max_leverage)
    cdef const int64_t[::1] mm_pc_v = _per_contract(tier_mm_per_contract, tiers.n_tiers,
                                                    "tier_mm_per_contract")
    cdef const int64_t[::1] im_pc_v = _per_contract(tier_im_per_contract, tiers.n_tiers,
                                                    "tier_im_per_contract")
    tiers.tier_mm_per_contract = p64(mm_pc_v)
    tiers.tier_im_per_contract = p64(im_pc_v)
    cdef sweep_out result
    result.equity = <int64_t*>p64(eq_v)
    result.maintenance_margin = <int64_t*>p64(mm_v)
    result.initial_margin = <int64_t*>p64(im_v) if with_initial_margin else NULL
    result.status = &st_v[0] if n > 0 else one_status
    scratch = np.empty(2 * tiers.n_tiers, dtype=np.int64)
    cdef int64_t[::1] scratch_v = scratch
    cdef int64_t bad
    with nogil:
        bad = c_sweep_accounts(&book, &tiers, warning_rate, <int64_t*>p64(scratch_v), n_threads,
                               &result)
    if bad >= 0:
        raise NativeOverflowError(f"account at index {bad}: a notional or total exceeds int64", bad)
    return equity, maintenance, (initial if with_initial_margin else None), status


def sweep_account_rows(const int64_t[::1] rows, const int64_t[::1] acct_start,
                       const int64_t[::1] balance, const int32_t[::1] pos_instrument,
                       const int64_t[::1] pos_qty, const int64_t[::1] pos_cost,
                       const int32_t[::1] pos_leverage, const int64_t[::1] mark_lot_value,
                       const int64_t[::1] tier_start, const int64_t[::1] tier_max_notional,
                       const int64_t[::1] tier_mmr, const int64_t[::1] tier_maintenance_amount,
                       const int64_t[::1] tier_max_leverage, int64_t warning_rate, *,
                       tier_mm_per_contract=None, tier_im_per_contract=None):
    """Equity, maintenance margin and status of the listed account rows only."""
    _check_book(acct_start, balance, pos_instrument, pos_qty, pos_cost, tier_start,
                mark_lot_value.shape[0])
    if pos_leverage.shape[0] != pos_qty.shape[0]:
        raise ValueError("pos_leverage must match the position columns")
    cdef Py_ssize_t n = rows.shape[0]
    cdef Py_ssize_t i
    for i in range(n):
        if not (0 <= rows[i] < balance.shape[0]):
            raise IndexError(f"account row {rows[i]} out of range")
    equity = np.empty(n, dtype=np.int64)
    maintenance = np.empty(n, dtype=np.int64)
    status = np.empty(n, dtype=np.int8)
    cdef int64_t[::1] eq_v = equity
    cdef int64_t[::1] mm_v = maintenance
    cdef int8_t[::1] st_v = status
    cdef int8_t one_status[1]
    cdef book_columns book = _positions(pos_instrument, pos_qty, mark_lot_value)
    book.pos_cost = p64(pos_cost)
    book.n_accounts = balance.shape[0]
    book.acct_start = p64(acct_start)
    book.balance = p64(balance)
    book.pos_leverage = p32(pos_leverage)
    cdef tier_table tiers = _tiers(tier_start, tier_max_notional, tier_mmr,
                                   tier_maintenance_amount, tier_max_leverage)
    cdef const int64_t[::1] mm_pc_v = _per_contract(tier_mm_per_contract, tiers.n_tiers,
                                                    "tier_mm_per_contract")
    cdef const int64_t[::1] im_pc_v = _per_contract(tier_im_per_contract, tiers.n_tiers,
                                                    "tier_im_per_contract")
    tiers.tier_mm_per_contract = p64(mm_pc_v)
    tiers.tier_im_per_contract = p64(im_pc_v)
    cdef sweep_out result
    result.equity = <int64_t*>p64(eq_v)
    result.maintenance_margin = <int64_t*>p64(mm_v)
    result.initial_margin = NULL
    result.status = &st_v[0] if n > 0 else one_status
    cdef int64_t bad
    with nogil:
        bad = c_sweep_account_rows(&book, &tiers, warning_rate, n, p64(rows), &result)
    if bad >= 0:
        raise NativeOverflowError(f"account row {rows[bad]}: a notional or total exceeds int64",
                                  rows[bad])
    return equity, maintenance, status


def account_exposure(const int64_t[::1] acct_start, const int32_t[::1] pos_instrument,
                     const int64_t[::1] pos_qty, const int64_t[::1] mark_lot_value):
    """(gross notional, live positions) per account as float64, for screening only."""
    cdef Py_ssize_t n = acct_start.shape[0] - 1
    if n < 0 or pos_instrument.shape[0] != pos_qty.shape[0]:
        raise ValueError("bad CSR columns")
    if acct_start[0] != 0 or acct_start[n] > pos_qty.shape[0]:
        raise ValueError("acct_start must start at 0 and end within the position columns")
    cdef Py_ssize_t i
    for i in range(pos_instrument.shape[0]):
        if not (0 <= pos_instrument[i] < mark_lot_value.shape[0]):
            raise IndexError(f"position {i}: instrument out of range")
    gross = np.empty(n, dtype=np.float64)
    live = np.empty(n, dtype=np.float64)
    cdef double[::1] gross_v = gross
    cdef double[::1] live_v = live
    cdef double one[1]
    cdef book_columns book = _positions(pos_instrument, pos_qty, mark_lot_value)
    book.n_accounts = n
    book.acct_start = p64(acct_start)
    with nogil:
        c_account_exposure(&book, &gross_v[0] if n > 0 else one, &live_v[0] if n > 0 else one)
    return gross, live


def position_margins(const int32_t[::1] pos_instrument, const int64_t[::1] pos_qty,
                     const int64_t[::1] pos_cost, const int32_t[::1] pos_leverage,
                     const int64_t[::1] mark_lot_value, const int64_t[::1] tier_start,
                     const int64_t[::1] tier_max_notional, const int64_t[::1] tier_mmr,
                     const int64_t[::1] tier_maintenance_amount,
                     const int64_t[::1] tier_max_leverage, *, tier_mm_per_contract=None,
                     tier_im_per_contract=None):
    """Notional, unrealized PnL, maintenance and initial margin and tier of each position."""
    cdef Py_ssize_t n = pos_qty.shape[0]
    if pos_instrument.shape[0] != n or pos_cost.shape[0] != n or pos_leverage.shape[0] != n:
        raise ValueError("position columns must have equal lengths")
    if tier_start.shape[0] != mark_lot_value.shape[0] + 1:
        raise ValueError("tier_start must have one entry per instrument plus one")
    cdef book_columns book = _positions(pos_instrument, pos_qty, mark_lot_value)
    book.pos_cost = p64(pos_cost)
    book.pos_leverage = p32(pos_leverage)
    cdef tier_table tiers = _tiers(tier_start, tier_max_notional, tier_mmr,
                                   tier_maintenance_amount, tier_max_leverage)
    cdef const int64_t[::1] mm_pc_v = _per_contract(tier_mm_per_contract, tiers.n_tiers,
                                                    "tier_mm_per_contract")
    cdef const int64_t[::1] im_pc_v = _per_contract(tier_im_per_contract, tiers.n_tiers,
                                                    "tier_im_per_contract")
    tiers.tier_mm_per_contract = p64(mm_pc_v)
    tiers.tier_im_per_contract = p64(im_pc_v)
    out = [np.empty(n, dtype=np.int64) for _ in range(5)]
    cdef int64_t[::1] o0 = out[0]
    cdef int64_t[::1] o1 = out[1]
    cdef int64_t[::1] o2 = out[2]
    cdef int64_t[::1] o3 = out[3]
    cdef int64_t[::1] o4 = out[4]
    cdef position_margin_out result
    result.notional = <int64_t*>p64(o0)
    result.unrealized_pnl = <int64_t*>p64(o1)
    result.maintenance_margin = <int64_t*>p64(o2)
    result.initial_margin = <int64_t*>p64(o3)
    result.tier_index = <int64_t*>p64(o4)
    cdef int64_t bad
    with nogil:
        bad = c_position_margins(&book, &tiers, &result)
    if bad >= 0:
        raise NativeOverflowError(f"position at index {bad}: a value exceeds int64", bad)
    return tuple(out)


def liquidation_prices(const int64_t[::1] acct_start, const int64_t[::1] balance,
                       const int32_t[::1] pos_instrument, const int64_t[::1] pos_qty,
                       const int64_t[::1] pos_cost, const int64_t[::1] tick_value,
                       const int64_t[::1] mark_lot_value, const int64_t[::1] tier_start,
                       const int64_t[::1] tier_max_notional, const int64_t[::1] tier_mmr,
                       const int64_t[::1] tier_maintenance_amount, *,
                       tier_mm_per_contract=None):
    """Cross liquidation and bankruptcy price (ticks, NULL_PRICE for none) of each slot."""
    _check_book(acct_start, balance, pos_instrument, pos_qty, pos_cost, tier_start,
                mark_lot_value.shape[0])
    if tick_value.shape[0] != mark_lot_value.shape[0]:
        raise ValueError("tick_value must have one entry per instrument")
    cdef book_columns book = _positions(pos_instrument, pos_qty, mark_lot_value)
    book.pos_cost = p64(pos_cost)
    book.n_accounts = balance.shape[0]
    book.acct_start = p64(acct_start)
    book.balance = p64(balance)
    cdef tier_table tiers = _tiers(tier_start, tier_max_notional, tier_mmr,
                                   tier_maintenance_amount, None)
    tiers.tick_value = p64(tick_value)
    cdef const int64_t[::1] mm_pc_v = _per_contract(tier_mm_per_contract, tiers.n_tiers,
                                                    "tier_mm_per_contract")
    tiers.tier_mm_per_contract = p64(mm_pc_v)
    cdef Py_ssize_t n_pos = pos_qty.shape[0]
    liq = np.full(n_pos, C_NULL_PRICE, dtype=np.int64)
    bkr = np.full(n_pos, C_NULL_PRICE, dtype=np.int64)
    cdef int64_t[::1] liq_v = liq
    cdef int64_t[::1] bkr_v = bkr
    cdef int64_t bad
    with nogil:
        bad = c_liquidation_prices(&book, &tiers, <int64_t*>p64(liq_v), <int64_t*>p64(bkr_v))
    if bad >= 0:
        raise NativeOverflowError(
            f"account at index {bad}: a notional or per-contract margin exceeds int64", bad
        )
    return liq, bkr


def adl_scores(int policy, const int64_t[::1] unrealized_pnl, const int64_t[::1] cost_abs,
               const int64_t[::1] notional, const int64_t[::1] account_equity):
    """ADL ranking score of each candidate position (csrc/adl.h), int64 at ADL_SCORE_SCALE."""
    cdef Py_ssize_t n = unrealized_pnl.shape[0]
    if cost_abs.shape[0] != n or notional.shape[0] != n or account_equity.shape[0] != n:
        raise ValueError("candidate columns must have equal lengths")
    score = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] score_v = score
    cdef int64_t bad
    with nogil:
        bad = c_adl_scores(n, policy, p64(unrealized_pnl), p64(cost_abs), p64(notional),
                           p64(account_equity), <int64_t*>p64(score_v))
    if bad == n:
        raise ValueError(f"unknown ADL policy {policy}")
    if bad >= 0:
        raise ValueError(f"candidate {bad}: cost_abs and notional must not be negative")
    return score


def adl_top_k(const int64_t[::1] group, const int64_t[::1] score,
              const int64_t[::1] account_id, Py_ssize_t n_groups, Py_ssize_t k):
    """Best min(k, size) candidates of each group, best first: (top_index[g, :], count[g])."""
    cdef Py_ssize_t n = group.shape[0]
    if score.shape[0] != n or account_id.shape[0] != n:
        raise ValueError("candidate columns must have equal lengths")
    if not (k >= 1 and n_groups >= 0):
        raise ValueError("k must be at least 1 and n_groups not negative")
    top = np.full((n_groups, k), -1, dtype=np.int64)
    count = np.zeros(n_groups, dtype=np.int64)
    cdef int64_t[:, ::1] top_v = top
    cdef int64_t[::1] count_v = count
    cdef int64_t bad
    with nogil:
        bad = c_adl_top_k(n, p64(group), p64(score), p64(account_id), n_groups, k,
                          &top_v[0, 0] if n_groups > 0 else _one_i64,
                          <int64_t*>p64(count_v))
    if bad >= 0:
        raise ValueError(f"candidate {bad}: group out of range")
    return top, count


def allocate_largest_remainder(const int64_t[::1] weight, const int64_t[::1] account_id,
                               int64_t total):
    """Exact pro-rata parts of `total` over `weight` (csrc/allocation.h): (part, allocated)."""
    cdef Py_ssize_t n = weight.shape[0]
    if account_id.shape[0] != n:
        raise ValueError("weight and account_id must have equal lengths")
    if not total >= 0:
        raise ValueError("total must not be negative")
    part = np.zeros(n, dtype=np.int64)
    remainder = np.zeros(n, dtype=np.int64)
    scratch = np.zeros(n, dtype=np.int64)
    cdef int64_t[::1] part_v = part
    cdef int64_t[::1] rem_v = remainder
    cdef int64_t[::1] scratch_v = scratch
    cdef int64_t allocated
    with nogil:
        allocated = c_allocate_largest_remainder(n, p64(weight), p64(account_id), total,
                                                 <int64_t*>p64(part_v), <int64_t*>p64(rem_v),
                                                 <int64_t*>p64(scratch_v))
    if allocated < 0:
        raise ValueError(f"weight {-1 - allocated}: negative, or the weights sum beyond int64")
    return part, allocated


_POWERS_OF_TEN = frozenset(10**d for d in range(19))


def sweep_asset_liability(const int64_t[:, ::1] held, const int64_t[:, ::1] owed,
                          Py_ssize_t n_accounts, const int64_t[::1] price,
                          const int64_t[::1] unit, const int64_t[::1] collateral_rate,
                          int64_t call_level, int64_t liquidation_level, int n_threads=1,
                          out=None):
    """Market, collateral and liability value and status of the first n_accounts columns
    of the asset-major (n_assets, capacity) held and owed arrays (csrc/asset_liability.h).

    `out`, a (market, collateral, liability, status) tuple of arrays n_accounts long, is
    written instead of fresh arrays (a per-tick loop then pays no page faults)."""
    cdef Py_ssize_t n_assets = held.shape[0]
    if owed.shape[0] != n_assets or owed.shape[1] != held.shape[1]:
        raise ValueError("held and owed must have the same shape")
    if price.shape[0] != n_assets or unit.shape[0] != n_assets or (
        collateral_rate.shape[0] != n_assets
    ):
        raise ValueError("price, unit and collateral_rate need one entry per asset")
    if not (0 <= n_accounts <= held.shape[1]):
        raise ValueError("n_accounts must be within the columns' capacity")
    if not (0 < liquidation_level <= call_level):
        raise ValueError("levels must satisfy 0 < liquidation_level <= call_level")
    if n_assets > C_ASSET_LIABILITY_ASSETS_MAX:
        raise ValueError(f"at most {C_ASSET_LIABILITY_ASSETS_MAX} assets")
    cdef Py_ssize_t k
    for k in range(n_assets):
        if not (price[k] >= 0 and unit[k] in _POWERS_OF_TEN
                and 0 <= collateral_rate[k] <= C_RATE_SCALE):
            raise ValueError(
                f"asset {k}: price >= 0, unit a power of ten up to 10^18, 0 <= rate <= RATE_SCALE"
            )
    if out is None:
        market = np.empty(n_accounts, dtype=np.int64)
        collateral = np.empty(n_accounts, dtype=np.int64)
        liability = np.empty(n_accounts, dtype=np.int64)
        status = np.empty(n_accounts, dtype=np.int8)
    else:
        market, collateral, liability, status = out
        if not (len(market) == len(collateral) == len(liability) == len(status) == n_accounts):
            raise ValueError("out arrays must have one entry per account")
    cdef int64_t[::1] mv_v = market
    cdef int64_t[::1] cv_v = collateral
    cdef int64_t[::1] lv_v = liability
    cdef int8_t[::1] st_v = status
    cdef int8_t one_status[1]
    cdef asset_liability_book book
    book.n_accounts = n_accounts
    book.n_assets = n_assets
    book.stride = held.shape[1]
    book.held = &held[0, 0] if held.shape[0] > 0 and held.shape[1] > 0 else _one_i64
    book.owed = &owed[0, 0] if owed.shape[0] > 0 and owed.shape[1] > 0 else _one_i64
    book.price = p64(price)
    book.unit = p64(unit)
    book.collateral_rate = p64(collateral_rate)
    cdef asset_liability_out result
    result.market_value = <int64_t*>p64(mv_v)
    result.collateral_value = <int64_t*>p64(cv_v)
    result.liability_value = <int64_t*>p64(lv_v)
    result.status = &st_v[0] if n_accounts > 0 else one_status
    cdef int64_t bad
    with nogil:
        bad = c_sweep_asset_liability(&book, call_level, liquidation_level, n_threads, &result)
    if bad >= 0:
        raise NativeOverflowError(f"account at index {bad}: a value exceeds int64", bad)
    return market, collateral, liability, status


cdef inline int64_t* w64(int64_t[::1] v) noexcept nogil:
    return &v[0] if v.shape[0] > 0 else <int64_t*>_one_i64


cdef inline int32_t* w32(int32_t[::1] v) noexcept nogil:
    return &v[0] if v.shape[0] > 0 else <int32_t*>_one_i32


cdef int8_t _one_i8[1]


cdef inline const int8_t* p8(const int8_t[::1] v) noexcept nogil:
    return &v[0] if v.shape[0] > 0 else _one_i8


cdef inline int8_t* w8(int8_t[::1] v) noexcept nogil:
    return &v[0] if v.shape[0] > 0 else _one_i8


def apply_account_events(events, accounts, pairs, book, tiers, int64_t[::1] last_event_id,
                         rules, int64_t start, out):
    """Apply events[start:] to the book's columns (csrc/account_events.h); returns (stop,
    n_postings, n_changed, n_open, n_pending, n_keys, max_event_id, replay, house_delta).

    events: (kind i8, event_id, partition i32, pre_outcome i8, account, counterparty,
    instrument i32, price, qty, amount, fee, counterparty_fee, leverage, sides i8);
    accounts: (account_id, row); pairs: (key, pending i8, qty, cost, leverage, setting,
    setting_changed i8, n_keys, n_pending); book: (n_accounts, n_open, acct_start, balance,
    pos_instrument i32, pos_qty, pos_cost, pos_leverage i32, mark, mark_lot_value,
    mark_set u8); tiers: (tick_value, tier_start, tier_max_notional, tier_mmr,
    tier_maintenance_amount, tier_max_leverage); rules: (default_leverage, leverage_max,
    accounts_max, balance_max, fill_balance_max, position_value_max, position_slots_max,
    band_rate, fill_checks, stop_on_reject); out: (outcome i8, posting event_id, debit,
    credit, amount, reason i8, changed_row). Arrays are int64 unless marked."""
    cdef const int8_t[::1] kind = events[0]
    cdef const int64_t[::1] event_id = events[1]
    cdef const int32_t[::1] partition = events[2]
    cdef const int8_t[::1] pre_outcome = events[3]
    cdef const int64_t[::1] account = events[4]
    cdef const int64_t[::1] counterparty = events[5]
    cdef const int32_t[::1] instrument = events[6]
    cdef const int64_t[::1] price = events[7]
    cdef const int64_t[::1] qty = events[8]
    cdef const int64_t[::1] amount = events[9]
    cdef const int64_t[::1] fee = events[10]
    cdef const int64_t[::1] counterparty_fee = events[11]
    cdef const int64_t[::1] leverage = events[12]
    cdef const int8_t[::1] sides = events[13]
    cdef Py_ssize_t n = kind.shape[0]
    for column in events:
        if column.shape[0] != n:
            raise ValueError("event columns must have equal lengths")
    if not 0 <= start <= n:
        raise ValueError("start must lie within the events")
    cdef const int64_t[::1] account_id = accounts[0]
    cdef int64_t[::1] account_row = accounts[1]
    if account_row.shape[0] != account_id.shape[0]:
        raise ValueError("account columns must have equal lengths")
    cdef int64_t[::1] pair_key = pairs[0]
    cdef int8_t[::1] pair_pending = pairs[1]
    cdef int64_t[::1] pair_qty = pairs[2]
    cdef int64_t[::1] pair_cost = pairs[3]
    cdef int64_t[::1] pair_leverage = pairs[4]
    cdef int64_t[::1] pair_setting = pairs[5]
    cdef int8_t[::1] pair_changed = pairs[6]
    cdef Py_ssize_t cap = pair_key.shape[0]
    if cap == 0 or cap & (cap - 1) or any(c.shape[0] != cap for c in pairs[1:7]):
        raise ValueError("pair columns must have one equal power-of-two length")
    cdef const int64_t[::1] acct_start = book[2]
    cdef int64_t[::1] balance = book[3]
    cdef int32_t[::1] pos_instrument = book[4]
    cdef int64_t[::1] pos_qty = book[5]
    cdef int64_t[::1] pos_cost = book[6]
    cdef int32_t[::1] pos_leverage = book[7]
    cdef const int64_t[::1] mark = book[8]
    cdef const int64_t[::1] mark_lot_value = book[9]
    cdef const uint8_t[::1] mark_set = book[10]
    cdef int64_t n_accounts = book[0], n_open = book[1]
    cdef Py_ssize_t n_pos = pos_qty.shape[0]
    cdef Py_ssize_t n_inst = mark.shape[0]
    if acct_start.shape[0] != n_accounts + 1 or n_open < n_accounts:
        raise ValueError("acct_start must have one entry per account plus one")
    if acct_start[0] != 0 or acct_start[n_accounts] > n_pos:
        raise ValueError("acct_start must start at 0 and end within the position columns")
    if pos_instrument.shape[0] != n_pos or pos_cost.shape[0] != n_pos or pos_leverage.shape[0] != n_pos:
        raise ValueError("position columns must have equal lengths")
    if mark_lot_value.shape[0] != n_inst or mark_set.shape[0] != n_inst:
        raise ValueError("mark columns must have one entry per instrument")
    cdef int64_t unopened = 0
    cdef Py_ssize_t r, i
    for r in range(account_row.shape[0]):
        if account_row[r] < 0:
            unopened += 1
        elif account_row[r] >= n_open:
            raise ValueError("an account row beyond the open accounts")
    if balance.shape[0] < n_open + unopened:
        raise ValueError("balance needs room for every account the batch may open")
    cdef const int64_t[::1] tick_value = tiers[0]
    cdef const int64_t[::1] tier_max_leverage = tiers[5]
    if tick_value.shape[0] != n_inst:
        raise ValueError("tick_value must have one entry per instrument")
    cdef tier_table tt = _tiers(tiers[1], tiers[2], tiers[3], tiers[4], tier_max_leverage)
    if tt.n_instruments != n_inst:
        raise ValueError("tier_start must have one entry per instrument plus one")
    tt.tick_value = p64(tick_value)
    cdef Py_ssize_t n_parts = last_event_id.shape[0]
    for i in range(n):
        if not (0 <= partition[i] < n_parts and 0 <= instrument[i] < n_inst
                and 0 <= account[i] < account_id.shape[0]
                and (kind[i] != C_EVENT_FILL or 0 <= counterparty[i] < account_id.shape[0])
                and 0 <= kind[i] <= C_EVENT_LEVERAGE
                and 0 <= pre_outcome[i] < C_EVENT_OUTCOME_COUNT):
            raise ValueError(f"event {i}: a reference out of range")
    cdef int8_t[::1] outcome = out[0]
    cdef int64_t[::1] post_event = out[1]
    cdef int64_t[::1] post_debit = out[2]
    cdef int64_t[::1] post_credit = out[3]
    cdef int64_t[::1] post_amount = out[4]
    cdef int8_t[::1] post_reason = out[5]
    cdef int64_t[::1] changed_row = out[6]
    cdef Py_ssize_t n_post = post_event.shape[0]
    if outcome.shape[0] != n or changed_row.shape[0] < 2 * n or n_post < C_POSTINGS_PER_EVENT_MAX * n:
        raise ValueError("output arrays too short")
    if any(c.shape[0] != n_post for c in out[2:6]):
        raise ValueError("posting columns must have equal lengths")

    cdef event_columns ev
    ev.n = n
    ev.kind = p8(kind)
    ev.event_id = p64(event_id)
    ev.partition = p32(partition)
    ev.pre_outcome = p8(pre_outcome)
    ev.account = p64(account)
    ev.counterparty = p64(counterparty)
    ev.instrument = p32(instrument)
    ev.price = p64(price)
    ev.qty = p64(qty)
    ev.amount = p64(amount)
    ev.fee = p64(fee)
    ev.counterparty_fee = p64(counterparty_fee)
    ev.leverage = p64(leverage)
    ev.sides = p8(sides)
    cdef account_table at
    at.n = account_id.shape[0]
    at.account_id = p64(account_id)
    at.row = w64(account_row)
    cdef pair_table pt
    pt.capacity = cap
    pt.n_keys = pairs[7]
    pt.key = w64(pair_key)
    pt.pending = w8(pair_pending)
    pt.qty = w64(pair_qty)
    pt.cost = w64(pair_cost)
    pt.leverage = w64(pair_leverage)
    pt.setting = w64(pair_setting)
    pt.setting_changed = w8(pair_changed)
    pt.n_pending = pairs[8]
    cdef book_state bs
    bs.n_accounts = n_accounts
    bs.n_open = n_open
    bs.acct_start = p64(acct_start)
    bs.balance = w64(balance)
    bs.n_positions = n_pos
    bs.pos_instrument = w32(pos_instrument)
    bs.pos_qty = w64(pos_qty)
    bs.pos_cost = w64(pos_cost)
    bs.pos_leverage = w32(pos_leverage)
    bs.n_instruments = n_inst
    bs.mark = p64(mark)
    bs.mark_lot_value = p64(mark_lot_value)
    bs.mark_set = &mark_set[0] if n_inst > 0 else NULL
    cdef event_rules er
    (er.default_leverage, er.leverage_max, er.accounts_max, er.balance_max,
     er.fill_balance_max, er.position_value_max, er.position_slots_max, er.band_rate,
     er.fill_checks, er.stop_on_reject) = rules
    cdef event_out eo
    eo.outcome = w8(outcome)
    eo.posting_capacity = n_post
    eo.n_postings = 0
    eo.posting_event_id = w64(post_event)
    eo.posting_debit = w64(post_debit)
    eo.posting_credit = w64(post_credit)
    eo.posting_amount = w64(post_amount)
    eo.posting_reason = w8(post_reason)
    eo.changed_capacity = changed_row.shape[0]
    eo.n_changed = 0
    eo.changed_row = w64(changed_row)
    for h in range(4):
        eo.house_delta[h] = 0
    eo.max_event_id = 0
    eo.replay = 0
    cdef int64_t stop
    cdef int64_t *last = w64(last_event_id)
    with nogil:
        stop = c_apply_account_events(&ev, &at, &pt, &bs, &tt, last, n_parts, &er, start, &eo)
    house = [eo.house_delta[h] for h in range(4)]
    return (stop, eo.n_postings, eo.n_changed, bs.n_open, pt.n_pending, pt.n_keys,
            eo.max_event_id, bool(eo.replay), house)
