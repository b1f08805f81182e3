# cython: language_level=3
"""Bindings of the C kernels: check shapes, build the column structs, release the GIL, call.

The Python signatures take the book's columns one by one (engine.book passes its arrays);
each function checks their lengths, points a `book_columns` and a `tier_table` (csrc/
book_columns.h) at them and calls the kernel. The shared constants below come from the C
headers, so Python and C read one definition.
"""
import numpy as np

from libc.stdint cimport int8_t, int32_t, int64_t

from engine._native.kernels cimport (
    ADL_POLICY_HYPERLIQUID as C_ADL_POLICY_HYPERLIQUID,
    ADL_POLICY_PNL_LEVERAGE as C_ADL_POLICY_PNL_LEVERAGE,
    ADL_SCORE_SCALE as C_ADL_SCORE_SCALE,
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
    book_columns,
    liquidation_prices as c_liquidation_prices,
    position_margin_out,
    position_margins as c_position_margins,
    sweep_account_rows as c_sweep_account_rows,
    sweep_accounts as c_sweep_accounts,
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
