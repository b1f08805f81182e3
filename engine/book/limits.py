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

# Message fields (engine.service.messages). Event ids and sequence numbers stay below 2^62,
# so a sentinel such as int64's max can never be "the last seen" of a partition or symbol;
# event times are epoch milliseconds up to 2100-01-01T00:00:00Z.
EVENT_ID_MAX = 2**62 - 1
SEQ_MAX = 2**62 - 1
# A price whose seq jumps more than this above its symbol's last accepted seq is held until
# confirmed (engine.service.tick), so one message cannot push a symbol's seq to SEQ_MAX:
# walking there takes 2**30 accepted prices. A per-symbol counter or a ms timestamp (about
# 50 days) stays well inside it.
SEQ_GAP_MAX = 2**32
# An account event whose id is more than this above its partition's last applied id (0 for a
# partition with none) is refused (`invalid_event_id`), so one accepted event cannot push a
# partition's id to EVENT_ID_MAX and make every later event there a duplicate: walking there
# takes 2**30 applied events. Producers number events per partition with a counter (or any
# scheme whose steps, and first id, stay within the gap).
EVENT_ID_GAP_MAX = 2**32
TS_MAX = 4_102_444_800_000
# The service's event time after a tick is the largest ts among the tick's accepted messages,
# but at most this far past the event time the tick opened with (for a fresh service: past
# the earliest accepted ts of its first tick). One message with a ts near TS_MAX moves the
# event time a week, not to 2100; a week, so that a market closed over a weekend or a
# holiday (no messages at all) still reaches the next session's time in one tick, as margin
# call deadlines (engine.exchange) need. The message itself is applied as usual.
TS_SKEW_MAX = 7 * 86_400_000
JSON_DEPTH_MAX = 8  # nesting of objects and arrays in one message (an index is depth 2)

# What the service lets the stream grow: new accounts beyond ACCOUNTS_MAX and new positions
# beyond POSITION_SLOTS_MAX are refused (`limit_exceeded`); the full demo book holds 1.6
# million accounts and about 2 positions each.
ACCOUNTS_MAX = 8_000_000
POSITION_SLOTS_MAX = 32_000_000

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
assert EVENT_ID_MAX < RESERVED_ACCOUNT_BASE and SEQ_MAX < INT64_MAX and TS_MAX < INT64_MAX, (
    "message ids, sequence numbers and times stay well inside int64"
)
assert 0 < SEQ_GAP_MAX < SEQ_MAX // 2**20, "many accepted jumps are needed to reach SEQ_MAX"
assert 0 < EVENT_ID_GAP_MAX < EVENT_ID_MAX // 2**20, "many applied jumps to reach EVENT_ID_MAX"
assert 0 < TS_SKEW_MAX < TS_MAX // 2**10, "many ticks are needed to move the event time to TS_MAX"
assert 0 < ACCOUNTS_MAX <= POSITION_SLOTS_MAX < INT32_MAX, "slot counts fit int32 indices"
assert RESERVED_ACCOUNT_BASE > 0 and RESERVED_ACCOUNT_BASE + RESERVED_ACCOUNT_SPAN <= INT64_MAX, (
    "reserved account ids are valid non-negative int64 ids"
)
