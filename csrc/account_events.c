#include "account_events.h"

#include "fixed_point.h"
#include "kernel_assert.h"

/* ----- the working state of one call ---------------------------------------------------- */
enum { UNDO_SLOT = 1, UNDO_PAIR = 2, UNDO_BALANCE = 3 };
#define UNDO_MAX 16

typedef struct undo_entry {
    int kind;
    int64_t index;
    int64_t v[6];
} undo_entry;

typedef struct run {
    const event_columns *ev;
    account_table *acc;
    pair_table *pairs;
    book_state *book;
    const tier_table *tiers;
    const event_rules *rules;
    event_out *out;
    /* the current event's undo log */
    undo_entry undo[UNDO_MAX];
    int n_undo;
    int64_t saved_postings;
    int64_t saved_house[HOUSE_COUNT];
    int64_t saved_pending;
} run;

static inline i128 abs128(i128 v) { return v < 0 ? -v : v; }

/* ----- the pair table --------------------------------------------------------------------- */
static inline uint64_t pair_hash(int64_t key, int64_t capacity) {
    uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ULL;
    return (h ^ (h >> 29)) & (uint64_t)(capacity - 1);
}

static int64_t pair_find(const pair_table *t, int64_t key) {
    uint64_t i = pair_hash(key, t->capacity);
    for (;;) {
        if (t->key[i] == key) return (int64_t)i;
        if (t->key[i] < 0) return -1;
        i = (i + 1) & (uint64_t)(t->capacity - 1);
    }
}

/* The entry of `key`, added empty if absent; -1 when the table is too full to add. */
static int64_t pair_insert(pair_table *t, int64_t key) {
    uint64_t i = pair_hash(key, t->capacity);
    for (;;) {
        if (t->key[i] == key) return (int64_t)i;
        if (t->key[i] < 0) break;
        i = (i + 1) & (uint64_t)(t->capacity - 1);
    }
    if (2 * (t->n_keys + 1) > t->capacity) return -1;
    t->key[i] = key;
    t->pending[i] = 0;
    t->qty[i] = t->cost[i] = t->leverage[i] = t->setting[i] = 0;
    t->setting_changed[i] = 0;
    t->n_keys++;
    return (int64_t)i;
}

static inline int64_t pair_key(const run *r, int64_t row, int32_t inst) {
    return row * r->book->n_instruments + inst;
}

/* ----- positions (PositionStore's rules) ------------------------------------------------- */
static inline void slot_range(const run *r, int64_t row, int64_t *lo, int64_t *hi) {
    if (row < r->book->n_accounts) {
        *lo = r->book->acct_start[row];
        *hi = r->book->acct_start[row + 1];
    } else {
        *lo = *hi = 0;
    }
}

static int64_t find_slot(const run *r, int64_t row, int32_t inst) {
    int64_t lo, hi;
    slot_range(r, row, &lo, &hi);
    for (int64_t p = lo; p < hi; p++)
        if (r->book->pos_qty[p] != 0 && r->book->pos_instrument[p] == inst) return p;
    return -1;
}

static int64_t free_slot(const run *r, int64_t row) {
    int64_t lo, hi;
    slot_range(r, row, &lo, &hi);
    for (int64_t p = lo; p < hi; p++)
        if (r->book->pos_qty[p] == 0 && r->book->pos_cost[p] == 0) return p;
    return -1;
}

static int64_t pending_of(const run *r, int64_t row, int32_t inst) {
    if (r->pairs->n_pending == 0) return -1;
    int64_t e = pair_find(r->pairs, pair_key(r, row, inst));
    return e >= 0 && r->pairs->pending[e] ? e : -1;
}

static int has_pending(const run *r, int64_t row) {
    if (r->pairs->n_pending == 0) return 0;
    for (int32_t i = 0; i < r->book->n_instruments; i++)
        if (pending_of(r, row, i) >= 0) return 1;
    return 0;
}

static void get_position(const run *r, int64_t row, int32_t inst, int64_t *qty, int64_t *cost) {
    int64_t e = pending_of(r, row, inst);
    if (e >= 0) {
        *qty = r->pairs->qty[e];
        *cost = r->pairs->cost[e];
        return;
    }
    int64_t p = find_slot(r, row, inst);
    *qty = p >= 0 ? r->book->pos_qty[p] : 0;
    *cost = p >= 0 ? r->book->pos_cost[p] : 0;
}

static int64_t leverage_for(const run *r, int64_t row, int32_t inst) {
    int64_t e = pair_find(r->pairs, pair_key(r, row, inst));
    return e >= 0 && r->pairs->setting[e] ? r->pairs->setting[e] : r->rules->default_leverage;
}

/* ----- the undo log ----------------------------------------------------------------------- */
static void undo_begin(run *r) {
    r->n_undo = 0;
    r->saved_postings = r->out->n_postings;
    for (int h = 0; h < HOUSE_COUNT; h++) r->saved_house[h] = r->out->house_delta[h];
    r->saved_pending = r->pairs->n_pending;
}

static void save_slot(run *r, int64_t p) {
    KERNEL_ASSERT(r->n_undo < UNDO_MAX);
    undo_entry *u = &r->undo[r->n_undo++];
    u->kind = UNDO_SLOT;
    u->index = p;
    u->v[0] = r->book->pos_instrument[p];
    u->v[1] = r->book->pos_qty[p];
    u->v[2] = r->book->pos_cost[p];
    u->v[3] = r->book->pos_leverage[p];
}

static void save_pair(run *r, int64_t e) {
    KERNEL_ASSERT(r->n_undo < UNDO_MAX);
    const pair_table *t = r->pairs;
    undo_entry *u = &r->undo[r->n_undo++];
    u->kind = UNDO_PAIR;
    u->index = e;
    u->v[0] = t->pending[e];
    u->v[1] = t->qty[e];
    u->v[2] = t->cost[e];
    u->v[3] = t->leverage[e];
    u->v[4] = t->setting[e];
    u->v[5] = t->setting_changed[e];
}

static void save_balance(run *r, int64_t row) {
    KERNEL_ASSERT(r->n_undo < UNDO_MAX);
    undo_entry *u = &r->undo[r->n_undo++];
    u->kind = UNDO_BALANCE;
    u->index = row;
    u->v[0] = r->book->balance[row];
}

/* Put back everything the current event wrote, newest first. */
static void undo_all(run *r) {
    for (int k = r->n_undo - 1; k >= 0; k--) {
        const undo_entry *u = &r->undo[k];
        if (u->kind == UNDO_SLOT) {
            r->book->pos_instrument[u->index] = (int32_t)u->v[0];
            r->book->pos_qty[u->index] = u->v[1];
            r->book->pos_cost[u->index] = u->v[2];
            r->book->pos_leverage[u->index] = (int32_t)u->v[3];
        } else if (u->kind == UNDO_PAIR) {
            pair_table *t = r->pairs;
            t->pending[u->index] = (int8_t)u->v[0];
            t->qty[u->index] = u->v[1];
            t->cost[u->index] = u->v[2];
            t->leverage[u->index] = u->v[3];
            t->setting[u->index] = u->v[4];
            t->setting_changed[u->index] = (int8_t)u->v[5];
        } else {
            r->book->balance[u->index] = u->v[0];
        }
    }
    r->n_undo = 0;
    r->out->n_postings = r->saved_postings;
    for (int h = 0; h < HOUSE_COUNT; h++) r->out->house_delta[h] = r->saved_house[h];
    r->pairs->n_pending = r->saved_pending;
}

/* PositionStore.put: write (qty, cost) of (row, inst); a new position takes the row's first
 * free slot (with the row's leverage for inst) or becomes pending. 0, or -1 when the pair
 * table is full (nothing written then). */
static int put_position(run *r, int64_t row, int32_t inst, int64_t qty, int64_t cost) {
    pair_table *t = r->pairs;
    int64_t e = pending_of(r, row, inst);
    if (e >= 0) {
        save_pair(r, e);
        if (qty == 0) {
            t->pending[e] = 0;
            t->n_pending--;
        } else {
            t->qty[e] = qty;
            t->cost[e] = cost;
        }
        return 0;
    }
    int64_t p = find_slot(r, row, inst);
    if (p < 0 && qty != 0) {
        p = free_slot(r, row);
        if (p < 0) {
            e = pair_insert(t, pair_key(r, row, inst));
            if (e < 0) return -1;
            save_pair(r, e);
            t->pending[e] = 1;
            t->qty[e] = qty;
            t->cost[e] = cost;
            t->leverage[e] = leverage_for(r, row, inst);
            t->n_pending++;
            return 0;
        }
        save_slot(r, p);
        r->book->pos_instrument[p] = inst;
        r->book->pos_leverage[p] = (int32_t)leverage_for(r, row, inst);
    } else if (p >= 0) {
        save_slot(r, p);
    }
    if (p >= 0) {
        r->book->pos_qty[p] = qty;
        r->book->pos_cost[p] = cost;
    }
    return 0;
}

/* ----- money ------------------------------------------------------------------------------ */
/* One ledger posting of `amount` (either sign, 0: nothing) between two accounts; house
 * accounts (negative ids) change house_delta, traders' balances are written by the caller.
 * 0, or -1 when a house delta would leave int64 (nothing written then). */
static int post(run *r, int64_t debit, int64_t credit, int64_t amount, int reason,
                int64_t event_id) {
    if (amount == 0) return 0;
    if (amount < 0) {
        int64_t swap = debit;
        debit = credit;
        credit = swap;
        amount = -amount;
    }
    event_out *o = r->out;
    int64_t *hd = o->house_delta, d0 = 0, d1 = 0;
    if (debit < 0 && __builtin_sub_overflow(hd[-debit - 1], amount, &d0)) return -1;
    if (credit < 0 && __builtin_add_overflow(hd[-credit - 1], amount, &d1)) return -1;
    if (debit < 0) hd[-debit - 1] = d0;
    if (credit < 0) hd[-credit - 1] = d1;
    KERNEL_ASSERT(o->n_postings < o->posting_capacity);
    int64_t k = o->n_postings++;
    o->posting_event_id[k] = event_id;
    o->posting_debit[k] = debit;
    o->posting_credit[k] = credit;
    o->posting_amount[k] = amount;
    o->posting_reason[k] = (int8_t)reason;
    return 0;
}

/* Equity and initial margin of an account without pending positions, as sweep_accounts
 * with initial margin computes them (sweep_one in margin.c). 0, or 1 on overflow. */
static int account_margin(const run *r, int64_t row, int64_t *equity, int64_t *initial) {
    const book_state *b = r->book;
    const tier_table *t = r->tiers;
    int64_t lo, hi;
    slot_range(r, row, &lo, &hi);
    i128 eq = b->balance[row];
    int64_t mm = 0, im = 0;
    int overflow = 0;
    for (int64_t p = lo; p < hi; p++) {
        int64_t q = b->pos_qty[p];
        int32_t inst = b->pos_instrument[p];
        int64_t value;
        overflow |= __builtin_mul_overflow(q, b->mark_lot_value[inst], &value);
        overflow |= value == INT64_MIN;
        int64_t notional = value < 0 ? (int64_t)(0 - (uint64_t)value) : value;
        eq += (i128)value - b->pos_cost[p];
        int64_t k = tier_of(t->tier_max_notional, t->tier_start[inst], t->tier_start[inst + 1],
                            notional);
        overflow |= __builtin_add_overflow(
            mm, ceil_rate_product(notional, t->tier_mmr[k]) - t->tier_maintenance_amount[k], &mm);
        int64_t lev = b->pos_leverage[p];
        if (lev > t->tier_max_leverage[k]) lev = t->tier_max_leverage[k];
        overflow |= __builtin_add_overflow(im, notional / lev + (notional % lev != 0), &im);
    }
    if (overflow || !fits_i64(eq)) return 1;
    *equity = (int64_t)eq;
    *initial = im;
    return 0;
}

/* NO_MARK, OVERFLOW or INSUFFICIENT_MARGIN when the account (no pending positions) holds a
 * live position without a mark or equity - withheld < initial margin; else APPLIED. */
static int margin_outcome(const run *r, int64_t row, int64_t withheld) {
    int64_t lo, hi, equity, initial;
    slot_range(r, row, &lo, &hi);
    for (int64_t p = lo; p < hi; p++)
        if (r->book->pos_qty[p] != 0 && !r->book->mark_set[r->book->pos_instrument[p]])
            return EVENT_NO_MARK;
    if (account_margin(r, row, &equity, &initial)) return EVENT_OVERFLOW;
    if ((i128)equity - withheld < initial) return EVENT_INSUFFICIENT_MARGIN;
    return EVENT_APPLIED;
}

static void changed(run *r, int64_t row) {
    KERNEL_ASSERT(r->out->n_changed < r->out->changed_capacity);
    r->out->changed_row[r->out->n_changed++] = row;
}

static void counted(run *r, int64_t event_id) {
    if (event_id > r->out->max_event_id) r->out->max_event_id = event_id;
}

/* ----- the four events -------------------------------------------------------------------- */
static int deposit(run *r, int64_t i) {
    const event_columns *ev = r->ev;
    int64_t ref = ev->account[i], amount = ev->amount[i];
    int64_t row = r->acc->row[ref];
    const event_rules *rules = r->rules;
    if (row < 0 && r->book->n_open >= rules->accounts_max) return EVENT_LIMIT_EXCEEDED;
    if (row >= 0 && (i128)r->book->balance[row] + amount > rules->balance_max)
        return EVENT_OVERFLOW;
    if (row < 0 && amount > rules->balance_max) return EVENT_OVERFLOW;
    if (amount <= 0) return EVENT_INVALID_AMOUNT;
    if (row >= 0 && (i128)r->book->balance[row] + amount > INT64_MAX) return EVENT_OVERFLOW;
    if (r->out->house_delta[-HOUSE_EXTERNAL - 1] < INT64_MIN + amount) return EVENT_ONE_BY_ONE;
    if (row < 0) {
        row = r->book->n_open++;
        r->acc->row[ref] = row;
        r->book->balance[row] = 0;
    }
    post(r, HOUSE_EXTERNAL, r->acc->account_id[ref], amount, POSTING_DEPOSIT, ev->event_id[i]);
    r->book->balance[row] += amount;
    changed(r, row);
    counted(r, ev->event_id[i]);
    return EVENT_APPLIED;
}

static int withdraw(run *r, int64_t i) {
    const event_columns *ev = r->ev;
    int64_t ref = ev->account[i], amount = ev->amount[i];
    if (amount <= 0) return EVENT_INVALID_AMOUNT;
    int64_t row = r->acc->row[ref];
    if (row < 0) return EVENT_UNKNOWN_ACCOUNT;
    if (has_pending(r, row)) return EVENT_ONE_BY_ONE; /* the per-event path re-lays here */
    int outcome = margin_outcome(r, row, amount);
    if (outcome != EVENT_APPLIED) return outcome;
    if (amount > r->book->balance[row]) return EVENT_INSUFFICIENT_MARGIN;
    if (r->out->house_delta[-HOUSE_EXTERNAL - 1] > INT64_MAX - amount) return EVENT_ONE_BY_ONE;
    post(r, r->acc->account_id[ref], HOUSE_EXTERNAL, amount, POSTING_WITHDRAW, ev->event_id[i]);
    r->book->balance[row] -= amount;
    KERNEL_ASSERT(r->book->balance[row] >= 0);
    changed(r, row);
    counted(r, ev->event_id[i]);
    return EVENT_APPLIED;
}

static int set_leverage(run *r, int64_t i) {
    const event_columns *ev = r->ev;
    int64_t row = r->acc->row[ev->account[i]], lev = ev->leverage[i];
    int32_t inst = ev->instrument[i];
    if (row < 0) return EVENT_UNKNOWN_ACCOUNT;
    if (lev < 1 || lev > r->rules->leverage_max) return EVENT_INVALID_LEVERAGE;
    int64_t qty, cost;
    get_position(r, row, inst, &qty, &cost);
    i128 notional = abs128((i128)qty) * r->book->mark_lot_value[inst];
    if (notional > INT64_MAX) return EVENT_ONE_BY_ONE; /* beyond every tier: the per-event path says */
    const tier_table *t = r->tiers;
    int64_t k = tier_of(t->tier_max_notional, t->tier_start[inst], t->tier_start[inst + 1],
                        (int64_t)notional);
    if (lev > t->tier_max_leverage[k]) return EVENT_LEVERAGE_ABOVE_MAX;
    int64_t e = pair_insert(r->pairs, pair_key(r, row, inst));
    if (e < 0) return EVENT_ONE_BY_ONE;
    int64_t previous = r->pairs->setting[e];
    int64_t effective = previous ? previous : r->rules->default_leverage;
    int lowering = qty != 0 && lev < effective;
    if (lowering && has_pending(r, row)) return EVENT_ONE_BY_ONE;
    save_pair(r, e);
    r->pairs->setting[e] = lev;
    r->pairs->setting_changed[e] = 1;
    if (r->pairs->pending[e]) r->pairs->leverage[e] = lev;
    int64_t p = find_slot(r, row, inst);
    if (p >= 0) {
        save_slot(r, p);
        r->book->pos_leverage[p] = (int32_t)lev;
    }
    if (!lowering) return EVENT_APPLIED;
    int outcome = margin_outcome(r, row, 0);
    if (outcome != EVENT_APPLIED) undo_all(r);
    return outcome;
}

/* fill_position and plan_fill (engine.book.fills) for one side, in 128 bits. */
typedef struct side_plan {
    int64_t ref, fill, row, before_qty, qty, cost, realized, fee, balance;
} side_plan;

static int plan_side(const run *r, side_plan *s, int64_t fill, int64_t price, int32_t inst) {
    if (fill == 0) return EVENT_INVALID_QTY;
    if (price <= 0) return EVENT_INVALID_PRICE;
    if (s->fee < 0) return EVENT_INVALID_AMOUNT;
    int64_t q0, c0;
    get_position(r, s->row, inst, &q0, &c0);
    s->before_qty = q0;
    i128 tick_value = r->tiers->tick_value[inst];
    i128 lot_value = (i128)price * tick_value;
    i128 qty, cost, realized = 0;
    if (q0 == 0 || (q0 > 0) == (fill > 0)) {
        qty = (i128)q0 + fill;
        cost = (i128)c0 + (i128)fill * lot_value;
    } else {
        i128 closed = abs128(fill) <= abs128(q0) ? -(i128)fill : (i128)q0;
        /* close_lots: ceil(cost * closed / qty), the house's favour */
        i128 closed_cost = -floor_div_i128(-(i128)c0 * closed * (q0 > 0 ? 1 : -1),
                                           q0 > 0 ? (i128)q0 : -(i128)q0);
        i128 left_qty = (i128)q0 - closed, left_cost = (i128)c0 - closed_cost;
        realized = closed * lot_value - closed_cost;
        qty = (i128)q0 + fill;
        cost = qty != left_qty ? qty * lot_value : left_cost; /* a flip opens the rest */
    }
    if (abs128(qty) * tick_value > r->rules->position_value_max ||
        abs128(cost) > r->rules->position_value_max)
        return EVENT_OVERFLOW;
    i128 balance = (i128)r->book->balance[s->row] + realized - s->fee;
    if (balance < -(i128)r->rules->fill_balance_max || balance > r->rules->fill_balance_max)
        return EVENT_OVERFLOW;
    if (!fits_i64(realized)) return EVENT_ONE_BY_ONE;
    s->qty = (int64_t)qty;
    s->cost = (int64_t)cost;
    s->realized = (int64_t)realized;
    s->balance = (int64_t)balance;
    return EVENT_APPLIED;
}

static int fill(run *r, int64_t i) {
    const event_columns *ev = r->ev;
    const event_rules *rules = r->rules;
    int32_t inst = ev->instrument[i];
    int64_t price = ev->price[i], event_id = ev->event_id[i];
    side_plan side[2];
    int n = 0;
    int8_t owned = ev->sides[i];
    if (owned & 1) {
        side[n].ref = ev->account[i];
        side[n].fill = ev->qty[i];
        side[n].fee = ev->fee[i];
        n++;
    }
    if (owned & 2) {
        side[n].ref = ev->counterparty[i];
        side[n].fill = -ev->qty[i];
        side[n].fee = ev->counterparty_fee[i];
        n++;
    }
    if (n == 0) return EVENT_NOT_OWNED;
    int opening = 0;
    for (int s = 0; s < n; s++) {
        side[s].row = r->acc->row[side[s].ref];
        if (side[s].row < 0) return EVENT_UNKNOWN_ACCOUNT;
        int64_t q0, c0;
        get_position(r, side[s].row, inst, &q0, &c0);
        opening += q0 == 0;
    }
    if (rules->fill_checks) {
        if (!r->book->mark_set[inst]) return EVENT_NO_MARK;
        int64_t mark = r->book->mark[inst];
        i128 gap = abs128((i128)price - mark);
        if (rules->band_rate && gap * RATE_SCALE > (i128)rules->band_rate * mark)
            return EVENT_PRICE_OUT_OF_BAND;
    }
    int64_t slots = r->book->n_positions + r->pairs->n_pending;
    if (opening && slots + opening > rules->position_slots_max) return EVENT_LIMIT_EXCEEDED;
    if (n == 2 && r->acc->account_id[side[0].ref] == r->acc->account_id[side[1].ref])
        return EVENT_INVALID_TRADE;
    for (int s = 0; s < n; s++) {
        int outcome = plan_side(r, &side[s], side[s].fill, price, inst);
        if (outcome != EVENT_APPLIED) return outcome;
    }
    /* the write, then the checks the per-event path makes after it */
    for (int s = 0; s < n; s++) {
        int64_t account = r->acc->account_id[side[s].ref];
        if (put_position(r, side[s].row, inst, side[s].qty, side[s].cost) ||
            post(r, HOUSE_CLEARING, account, side[s].realized, POSTING_REALIZED_PNL, event_id) ||
            post(r, account, HOUSE_FEES, side[s].fee, POSTING_TRADING_FEE, event_id)) {
            undo_all(r);
            return EVENT_ONE_BY_ONE;
        }
        save_balance(r, side[s].row);
        r->book->balance[side[s].row] = side[s].balance;
    }
    int outcome = EVENT_APPLIED;
    i128 mark_lot_value = r->book->mark_lot_value[inst];
    for (int s = 0; s < n && outcome == EVENT_APPLIED; s++)
        if (abs128((i128)side[s].qty) * mark_lot_value > rules->position_value_max)
            outcome = EVENT_OVERFLOW;
    for (int s = 0; s < n && outcome == EVENT_APPLIED && rules->fill_checks; s++) {
        int64_t q0 = side[s].before_qty, q1 = side[s].qty;
        int grew = abs128((i128)q1) > abs128((i128)q0) || (q0 > 0 && q1 < 0) || (q0 < 0 && q1 > 0);
        if (!grew) continue;
        if (has_pending(r, side[s].row)) outcome = EVENT_ONE_BY_ONE; /* it re-lays here */
        else outcome = margin_outcome(r, side[s].row, 0);
    }
    if (outcome != EVENT_APPLIED) {
        undo_all(r);
        /* the per-event path's roll-back may move a position: it replays this one */
        if (outcome != EVENT_ONE_BY_ONE) r->out->replay = 1;
        return outcome;
    }
    for (int s = 0; s < n; s++) changed(r, side[s].row);
    counted(r, event_id);
    return EVENT_APPLIED;
}

/* ----- the batch -------------------------------------------------------------------------- */
static void assert_inputs(const event_columns *ev, const account_table *acc,
                          const pair_table *pairs, const book_state *book,
                          const tier_table *tiers, int64_t n_partitions, event_out *out) {
    KERNEL_ASSERT(ev != NULL && acc != NULL && pairs != NULL && book != NULL && out != NULL);
    KERNEL_ASSERT(tiers != NULL && tiers->tick_value != NULL && tiers->tier_max_leverage != NULL);
    KERNEL_ASSERT(tiers->n_instruments == book->n_instruments);
    KERNEL_ASSERT(pairs->capacity > 0 && (pairs->capacity & (pairs->capacity - 1)) == 0);
    KERNEL_ASSERT(book->n_accounts <= book->n_open);
    KERNEL_ASSERT(book->acct_start[0] == 0 && book->acct_start[book->n_accounts] <= book->n_positions);
    KERNEL_ASSERT(out->posting_capacity >= POSTINGS_PER_EVENT_MAX * ev->n);
    KERNEL_ASSERT(out->changed_capacity >= 2 * ev->n);
    for (int64_t i = 0; i < ev->n; i++) {
        KERNEL_ASSERT(0 <= ev->kind[i] && ev->kind[i] <= EVENT_LEVERAGE);
        KERNEL_ASSERT(0 <= ev->partition[i] && ev->partition[i] < n_partitions);
        KERNEL_ASSERT(0 <= ev->account[i] && ev->account[i] < acc->n);
        KERNEL_ASSERT(0 <= ev->instrument[i] && ev->instrument[i] < book->n_instruments);
        if (ev->kind[i] == EVENT_FILL)
            KERNEL_ASSERT(0 <= ev->counterparty[i] && ev->counterparty[i] < acc->n);
    }
    for (int64_t a = 0; a < acc->n; a++) KERNEL_ASSERT(acc->row[a] < book->n_open);
}

int64_t apply_account_events(const event_columns *events, account_table *accounts,
                             pair_table *pairs, book_state *book, const tier_table *tiers,
                             int64_t *last_event_id, int64_t n_partitions,
                             const event_rules *rules, int64_t start, event_out *out) {
    if (KERNEL_DEBUG) assert_inputs(events, accounts, pairs, book, tiers, n_partitions, out);
    run r = {events, accounts, pairs, book, tiers, rules, out};
    out->replay = 0;
    for (int64_t i = start; i < events->n; i++) {
        int outcome;
        int32_t part = events->partition[i];
        undo_begin(&r);
        if (events->event_id[i] <= last_event_id[part]) {
            outcome = EVENT_DUPLICATE_EVENT_ID;
        } else if (events->pre_outcome[i] != EVENT_APPLIED) {
            outcome = events->pre_outcome[i];
        } else {
            switch (events->kind[i]) {
            case EVENT_DEPOSIT: outcome = deposit(&r, i); break;
            case EVENT_WITHDRAW: outcome = withdraw(&r, i); break;
            case EVENT_FILL: outcome = fill(&r, i); break;
            default: outcome = set_leverage(&r, i); break;
            }
        }
        out->outcome[i] = (int8_t)outcome;
        if (outcome == EVENT_APPLIED) {
            last_event_id[part] = events->event_id[i];
            continue;
        }
        if (outcome == EVENT_ONE_BY_ONE || out->replay || rules->stop_on_reject) return i;
    }
    return events->n;
}
