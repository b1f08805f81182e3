# cython: language_level=3
"""The benchmark's bandwidth baseline (bench/csrc/read_bandwidth.h), built by setup.py for
the source tree only: the engine does not ship it."""
from libc.stdint cimport int32_t, int64_t, uint64_t

cdef extern from "read_bandwidth.h" nogil:
    uint64_t c_read_sweep_columns "read_sweep_columns" (
        int64_t n_accounts, const int64_t *acct_start, const int64_t *balance,
        int64_t n_positions, const int32_t *pos_instrument, const int64_t *pos_qty,
        const int64_t *pos_cost)

# A zero-length memoryview has no element 0 to take the address of.
cdef int64_t _one_i64[1]
cdef int32_t _one_i32[1]


cdef inline const int64_t* p64(const int64_t[::1] v) noexcept nogil:
    return &v[0] if v.shape[0] > 0 else _one_i64


cdef inline const int32_t* p32(const int32_t[::1] v) noexcept nogil:
    return &v[0] if v.shape[0] > 0 else _one_i32


def read_sweep_columns(const int64_t[::1] acct_start, const int64_t[::1] balance,
                       const int32_t[::1] pos_instrument, const int64_t[::1] pos_qty,
                       const int64_t[::1] pos_cost):
    """Read the sweep's columns once, as the sweep reads them; returns a checksum."""
    if acct_start.shape[0] != balance.shape[0] + 1:
        raise ValueError("acct_start must have one more entry than balance")
    if not (pos_instrument.shape[0] == pos_qty.shape[0] == pos_cost.shape[0]):
        raise ValueError("position columns must have equal lengths")
    cdef uint64_t checksum
    with nogil:
        checksum = c_read_sweep_columns(balance.shape[0], p64(acct_start), p64(balance),
                                        pos_qty.shape[0], p32(pos_instrument), p64(pos_qty),
                                        p64(pos_cost))
    return checksum
