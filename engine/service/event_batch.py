"""A tick's run of account-event records applied through the batch path.

engine.service.tick calls `apply_account_records` with the tick's account-event records in
order. With `Service.batch_account_events` off it applies them one by one
(messages.parse_account_event, then Service._apply_event: the reference). On, the records
are decoded into columns (engine.service.ingest), the state-free refusals are found
vectorized (a house account: `reserved_account`), the sides a sharded service applies are
marked, and engine.book.batch applies the run with the C kernel; the per-event path runs
for each refused event (so its dead letter carries the per-event detail) and wherever the
kernel defers to it. Either way the book, the service state and the outputs are the same.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.book.batch import CODE_OF_REASON, FILL, ONE_BY_ONE, EventRules, apply_account_events
from engine.book.errors import Rejected
from engine.book.reasons import RejectReason
from engine.service import messages
from engine.service.ingest import PlainEvent, decode_account_events
from engine.service.order import EventTime
from engine.service.outputs import TickOutputs
from engine.service.ports import Record, tp_name
from engine.service.state import TickStats
from engine.waterfall.profile import reserved_mask


def apply_account_records(
    service: Any,  # engine.service.tick.Service (which imports this module)
    records: Sequence[Record],
    out: TickOutputs,
    stats: TickStats,
    tick_ts: EventTime,
    *,
    stop_on_reject: bool = True,
    known: Sequence[PlainEvent | None] = (),
) -> None:
    """Apply the records in order, dead-lettering the refused ones in order; the applied
    events' ts go into the tick's event time `tick_ts`. `stop_on_reject` off (tests) takes
    the kernel's refusal codes without the per-event path's details. `known`: the records'
    rows as the tick order already decoded them (engine.service.ingest.PlainEvent), if so."""
    if not service.batch_account_events:
        instruments = service.book.instruments
        for record in records:
            try:
                event = messages.parse_account_event(record.value, record.key, instruments)
                service._apply_event(record, event)
                tick_ts.accept(event.ts)
                stats.account_events += 1
            except Rejected as exc:
                service._dead_letter(out, stats, record, exc)
        return
    if not records:
        return
    decoded = decode_account_events(records, service.book.instruments, known)
    refused = dict(decoded.refused)
    cols, where = decoded.columns, decoded.rows
    if len(cols):
        names = sorted({tp_name(r.topic, r.partition) for r in records})
        part_of = {name: k for k, name in enumerate(names)}
        cols.partition[:] = [
            part_of[tp_name(records[i].topic, records[i].partition)] for i in where
        ]
        last = service.state.last_event_id
        last_event_id = np.asarray([last.get(name, 0) for name in names], dtype=np.int64)
        is_fill = cols.kind == FILL
        reserved = reserved_mask(cols.account, service.profile)
        reserved |= is_fill & reserved_mask(cols.counterparty, service.profile)
        cols.pre_outcome[reserved] = CODE_OF_REASON[RejectReason.RESERVED_ACCOUNT]
        limits = sys.modules[type(service).__module__]  # the tick module's limits, as it reads them
        # An id more than EVENT_ID_GAP_MAX above its partition's last applied one as the run
        # opens may be a jump (an `invalid_event_id`): the per-event path decides it exactly.
        gap = cols.event_id - last_event_id[cols.partition] > limits.EVENT_ID_GAP_MAX
        cols.pre_outcome[gap] = ONE_BY_ONE
        if service.partition_of_account is not None:
            owned = service.partition_of_account
            for j in np.flatnonzero(is_fill).tolist():
                partition = records[int(where[j])].partition
                cols.sides[j] = int(owned(int(cols.account[j])) == partition) | (
                    2 * int(owned(int(cols.counterparty[j])) == partition)
                )

        def sync_out() -> None:
            for name, k in part_of.items():
                if last_event_id[k] > 0 or name in last:
                    last[name] = int(last_event_id[k])

        def one_by_one(j: int) -> None:
            sync_out()
            record = records[int(where[j])]
            event = messages.parse_account_event(record.value, record.key, service.book.instruments)
            try:
                service._apply_event(record, event)
            finally:
                name = tp_name(record.topic, record.partition)
                last_event_id[part_of[name]] = last.get(name, 0)

        config = service.config
        rules = EventRules(
            fill_checks=config.fill_checks,
            band_rate=config.band_rate,
            accounts_max=limits.ACCOUNTS_MAX,
            balance_max=limits.BALANCE_MAX,
            position_slots_max=limits.POSITION_SLOTS_MAX,
        )
        outcome = apply_account_events(
            service.book, cols, rules, last_event_id, one_by_one, stop_on_reject=stop_on_reject
        )
        sync_out()
        applied = outcome.applied
        for j, refusal in outcome.refusals.items():
            refused[int(where[j])] = refusal
        for j in np.flatnonzero(~applied).tolist():
            if j not in outcome.refusals:
                reason = outcome.reason(j)
                assert reason is not None
                refused[int(where[j])] = Rejected(reason, "refused by the batch kernel")
        if applied.any():
            tick_ts.accept(int(decoded.ts[applied].max()))
            tick_ts.accept(int(decoded.ts[applied].min()))
            stats.account_events += int(applied.sum())
    for i in sorted(refused):
        service._dead_letter(out, stats, records[i], refused[i])
