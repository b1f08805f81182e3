"""Every bound the engine checks, in one place, with the relations between them asserted.

Money, quantities and prices are int64 raw values (engine.book.fixed holds the scales and
turns text into them). The book keeps every value it stores -- a cost basis, a balance
after a fill, a position's value per tick -- within +-VALUE_MAX, half of int64's range, so
a sum of two stored values fits int64 and the kernels' 128-bit products have room
(csrc/liquidation_price.h). Paths that screen a batch with floats first (the waterfall's
batch takeover, settlement) stay below FLOAT_SCREEN_MAX, far enough under VALUE_MAX that a
float's relative error of a few 2**-53 cannot carry a value across it.

The asserts at the bottom run at import: a bound edited out of line with the others stops
the engine from starting instead of overflowing later.
"""

from __future__ import annotations

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
INT32_MAX = 2**31 - 1

VALUE_MAX = 2**62  # |cost basis|, |balance| and |qty| * tick_value the book accepts
POSITION_TICK_VALUE_MAX = VALUE_MAX  # |qty| * tick_value: a position's value per tick
BALANCE_MAX = VALUE_MAX  # a fill may not take a balance beyond +-this
FLOAT_SCREEN_MAX = float(2**61)  # a float-screened running value stays below this

LEVERAGE_MAX = 10_000  # per position; stored as int32
DEFAULT_LEVERAGE = 20
WARNING_RATE_DEFAULT = 80_000_000  # 0.8 over RATE_SCALE (engine.book.fixed)

# Account ids at and above this are the house's own book accounts (insurance funds, the
# unwind counterparty); trader ids stay below, so a trader can never be mistaken for a fund.
RESERVED_ACCOUNT_BASE = 2**62
RESERVED_ACCOUNT_SPAN = 2**61  # the default fund and unwind ids lie in [base, base + span]

# Below this many accounts a sweep stays on one thread: waking a thread costs tens of
# microseconds on a busy box.
PARALLEL_ACCOUNTS_MIN = 100_000

assert POSITION_TICK_VALUE_MAX < INT64_MAX, "a position's value per tick fits int64"
assert -2 * BALANCE_MAX >= INT64_MIN and 2 * BALANCE_MAX - 1 <= INT64_MAX, (
    "two balances in range add up within int64 (short of both at +BALANCE_MAX)"
)
assert FLOAT_SCREEN_MAX * (1 + 2.0**-40) < VALUE_MAX, "the float screen has room for error"
assert 1 <= DEFAULT_LEVERAGE <= LEVERAGE_MAX <= INT32_MAX, "leverage fits its int32 column"
assert WARNING_RATE_DEFAULT > 0, "the warning level is a positive rate"
assert RESERVED_ACCOUNT_BASE > 0 and RESERVED_ACCOUNT_BASE + RESERVED_ACCOUNT_SPAN <= INT64_MAX, (
    "reserved account ids are valid non-negative int64 ids"
)
