/*
 * Account events applied in order to the book's columns: deposits, withdrawals, fills and
 * leverage changes, each all or nothing, with the rules of the per-event path
 * (engine.book.book.Book and the service's checks in engine.service.tick).
 *
 * Inputs (units in fixed_point.h; the tier table as in book_columns.h):
 *   event_columns  n events in stream order. kind EVENT_*; event_id > 0; partition: index
 *                  into last_event_id (the dedup state, per input partition, in/out);
 *                  pre_outcome: 0, or a refusal found before the book (a house account),
 *                  which counts after the duplicate check; account: index into the account
 *                  table (deposit/withdraw/leverage: the account; fill: the buyer);
 *                  counterparty: the fill's seller; instrument in [0, n_instruments); price
 *                  ticks; qty lots (a fill's size, > 0: the buyer takes +qty); amount money;
 *                  fee / counterparty_fee money (buyer's, seller's); leverage; sides: bit 0
 *                  the buyer's side is applied here, bit 1 the seller's (a sharded service
 *                  applies the sides keyed into its partition).
 *   account_table  the batch's distinct accounts: id and book row (in/out), -1 for an
 *                  account not open yet (a deposit opens it at the next row).
 *   pair_table     (account row, instrument) -> the position without a slot ("pending",
 *                  qty, cost, leverage) and the account's leverage setting (0: none, the
 *                  default applies). Open addressing, linear probing; entries are never
 *                  removed. The caller seeds every pending position of the book and the
 *                  settings of the pairs the batch names.
 *   book_state     the book's columns (CSR slots as book_columns.h; rows at or beyond
 *                  n_accounts have no slots yet), balances by row (capacity for the new
 *                  accounts), marks.
 *   event_rules    the limits and the service's fill checks.
 *
 * Outputs (event_out): per event its outcome (EVENT_APPLIED or the reason it was refused);
 * the ledger postings in order (debit, credit, amount > 0, reason, event id: what
 * Balances.post would append); the rows whose balance or positions changed; the change of
 * each house account's balance; the highest event id the book counted.
 *
 * Invariants: a refused event changes nothing (its writes are undone before the next).
 * Every posting moves the same amount out of one balance and into another, so the house
 * deltas plus the traders' balance changes sum to zero. Slots are written in place and a
 * new position takes the account's first free slot or becomes pending, as PositionStore.put
 * does; the kernel never re-lays the columns. Where the per-event path would (a withdrawal,
 * a lowered leverage or a fill's margin check on an account with a pending position), or
 * where its roll-back would move a position (a refusal after the write), the kernel stops
 * before that event with EVENT_ONE_BY_ONE (or the refusal and `replay` set): the caller
 * applies it the per-event way and calls again from the next event.
 *
 * Returns the index of the event it stopped at, or n when all are done.
 */
#ifndef CLEARING_ACCOUNT_EVENTS_H
#define CLEARING_ACCOUNT_EVENTS_H

#include <stdint.h>

#include "book_columns.h"

enum { EVENT_DEPOSIT = 0, EVENT_WITHDRAW = 1, EVENT_FILL = 2, EVENT_LEVERAGE = 3 };

/* Outcomes; engine.book.batch maps each refusal to its RejectReason. */
enum {
    EVENT_APPLIED = 0,
    EVENT_ONE_BY_ONE = 1, /* not applied: the caller applies it the per-event way */
    EVENT_DUPLICATE_EVENT_ID = 2,
    EVENT_RESERVED_ACCOUNT = 3,
    EVENT_NOT_OWNED = 4,
    EVENT_UNKNOWN_ACCOUNT = 5,
    EVENT_LIMIT_EXCEEDED = 6,
    EVENT_OVERFLOW = 7,
    EVENT_INVALID_AMOUNT = 8,
    EVENT_INVALID_QTY = 9,
    EVENT_INVALID_PRICE = 10,
    EVENT_INVALID_LEVERAGE = 11,
    EVENT_LEVERAGE_ABOVE_MAX = 12,
    EVENT_NO_MARK = 13,
    EVENT_PRICE_OUT_OF_BAND = 14,
    EVENT_INSUFFICIENT_MARGIN = 15,
    EVENT_INVALID_TRADE = 16,
    EVENT_OUTCOME_COUNT = 17
};

/* House accounts and posting reasons, as engine.book.ledger numbers them. */
enum { HOUSE_EXTERNAL = -1, HOUSE_CLEARING = -2, HOUSE_FEES = -3, HOUSE_COUNT = 4 };
enum {
    POSTING_DEPOSIT = 2,
    POSTING_WITHDRAW = 3,
    POSTING_REALIZED_PNL = 4,
    POSTING_TRADING_FEE = 5
};
#define POSTINGS_PER_EVENT_MAX 4

typedef struct event_columns {
    int64_t n;
    const int8_t *kind;
    const int64_t *event_id;
    const int32_t *partition;
    const int8_t *pre_outcome;
    const int64_t *account;
    const int64_t *counterparty;
    const int32_t *instrument;
    const int64_t *price;
    const int64_t *qty;
    const int64_t *amount;
    const int64_t *fee;
    const int64_t *counterparty_fee;
    const int64_t *leverage;
    const int8_t *sides;
} event_columns;

typedef struct account_table {
    int64_t n;
    const int64_t *account_id;
    int64_t *row;
} account_table;

typedef struct pair_table {
    int64_t capacity; /* a power of two */
    int64_t n_keys;   /* in/out */
    int64_t *key;     /* row * n_instruments + instrument; -1: empty */
    int8_t *pending;
    int64_t *qty;
    int64_t *cost;
    int64_t *leverage;
    int64_t *setting;
    int8_t *setting_changed; /* set when the kernel wrote `setting` */
    int64_t n_pending;       /* in/out: entries with pending set */
} pair_table;

typedef struct book_state {
    int64_t n_accounts; /* rows with a CSR range */
    int64_t n_open;     /* in/out: open accounts; rows n_accounts.. have no slots */
    const int64_t *acct_start;
    int64_t *balance;
    int64_t n_positions;
    int32_t *pos_instrument;
    int64_t *pos_qty;
    int64_t *pos_cost;
    int32_t *pos_leverage;
    int64_t n_instruments;
    const int64_t *mark;
    const int64_t *mark_lot_value;
    const uint8_t *mark_set;
} book_state;

typedef struct event_rules {
    int64_t default_leverage;
    int64_t leverage_max;
    int64_t accounts_max;       /* a deposit may not open more */
    int64_t balance_max;        /* a deposit may not take a balance beyond */
    int64_t fill_balance_max;   /* a fill may not take a balance beyond +-this */
    int64_t position_value_max; /* |qty| * tick_value, |cost|, |qty| * mark lot value */
    int64_t position_slots_max; /* slots plus pending positions */
    int64_t band_rate;          /* over RATE_SCALE; 0: no band */
    int32_t fill_checks;        /* mark, band and initial margin checks on fills */
    int32_t stop_on_reject;     /* stop at every refusal (the caller wants its details) */
} event_rules;

typedef struct event_out {
    int8_t *outcome; /* n */
    int64_t posting_capacity;
    int64_t n_postings;
    int64_t *posting_event_id;
    int64_t *posting_debit;
    int64_t *posting_credit;
    int64_t *posting_amount;
    int8_t *posting_reason;
    int64_t changed_capacity;
    int64_t n_changed;
    int64_t *changed_row;
    int64_t house_delta[HOUSE_COUNT]; /* index -id - 1 */
    int64_t max_event_id;             /* highest id counted by the book's event counter */
    int32_t replay; /* the stop is a refusal the caller should replay one by one */
} event_out;

int64_t apply_account_events(const event_columns *events, account_table *accounts,
                             pair_table *pairs, book_state *book, const tier_table *tiers,
                             int64_t *last_event_id, int64_t n_partitions,
                             const event_rules *rules, int64_t start, event_out *out);

#endif
