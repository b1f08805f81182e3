"""The driver: source -> service -> sink, with the journal, snapshots and metrics.

`run` pulls batches from a source, ticks the service (engine.service.tick.Service), records
each tick's end offsets in the journal before publishing its outputs, and publishes them to
the sink. A snapshot covers every tick up to its own, and recovery resumes after it, so
before writing one the driver flushes the sink: every output published so far is delivered
and acknowledged (the sink's flush raises on any delivery error, and then no snapshot is
written: a restart replays from the previous one and publishes again, with the same ids). A
kill at any moment so never loses a tick's outputs. On start it first replays the journaled
ticks after the service's tick (a restore from a snapshot older than the crash), cutting
each one exactly as it was, so the replay gives the same outputs and ids. Timing (the clock)
stays here, outside the core.

Each snapshot also stores the metrics' counters (`metrics_counters`), so that a restored
service counts on from them (engine.service.metrics). `max_ticks` counts the ticks this run
reads anew: the journal's replay after a restore is not counted (RunResult.replayed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from engine.service.ports import Journal, Record, Sink, Source, tp_name
from engine.service.state import TickStats
from engine.service.tick import Service


class Snapshots(Protocol):
    def due(self, service: Service, now: float) -> bool: ...

    def write(self, service: Service, extra: dict[str, Any]) -> object: ...


class Metrics(Protocol):
    def observe_tick(self, stats: TickStats, seconds: float) -> None: ...

    def observe_lag(self, lag: Mapping[str, int]) -> None: ...

    def maybe_log(self, now: float, service: Service) -> None: ...

    def counters(self) -> list[list[Any]]: ...


@dataclass
class RunResult:
    ticks: int = 0
    replayed: int = 0
    records: int = 0
    outputs: int = 0
    stopped_by: str = ""


def batch_end(records: Iterable[Record]) -> dict[str, int]:
    """The next offset after a batch, per partition it read from (a journal entry)."""
    end: dict[str, int] = {}
    for record in records:
        end[tp_name(record.topic, record.partition)] = record.offset + 1
    return dict(sorted(end.items()))


def run(
    service: Service,
    source: Source,
    sink: Sink,
    *,
    journal: Journal | None = None,
    snapshots: Snapshots | None = None,
    metrics: Metrics | None = None,
    stop: Callable[[], bool] | None = None,
    max_ticks: int | None = None,
    exit_when_idle: bool = False,
    final_snapshot: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Drive the service until the input ends, `stop()` says so, `max_ticks` ticks ran, or
    (with exit_when_idle) nothing is waiting. Journaled ticks after the service's tick are
    replayed first, cut exactly as they were, and not journaled again."""
    result = RunResult()

    def step(batch: list[Record], replaying: bool) -> None:
        started = clock()
        outputs = service.tick(batch)
        if journal is not None and not replaying:
            journal.append(service.state.tick, batch_end(batch))
        for output in outputs:
            sink.publish(output.topic, output.key, output.value)
        result.records += len(batch)
        result.outputs += len(outputs)
        if metrics is not None:
            metrics.observe_tick(service.last_stats, clock() - started)

    def extra() -> dict[str, Any]:
        saved: dict[str, Any] = {"journal_position": journal.position if journal is not None else 0}
        if metrics is not None:
            saved["metrics_counters"] = metrics.counters()
        return saved

    if journal is not None:
        for tick, end in journal.entries_after(service.state.tick, service.journal_position):
            batch = source.next_batch(until=end)
            if batch is None or batch_end(batch) != end or service.state.tick + 1 != tick:
                raise RuntimeError(f"journal: tick {tick} cannot be re-cut at {end}")
            step(batch, replaying=True)
            result.replayed += 1
    while True:
        if stop is not None and stop():
            result.stopped_by = "stop"
            break
        if max_ticks is not None and result.ticks >= max_ticks:
            result.stopped_by = "max_ticks"
            break
        batch = source.next_batch()
        now = clock()
        if batch is None:
            result.stopped_by = "end_of_input"
            break
        if batch:
            step(batch, replaying=False)
            result.ticks += 1
            if snapshots is not None and snapshots.due(service, now):
                sink.flush()  # delivered and acknowledged before a snapshot covers them
                snapshots.write(service, extra())
        elif exit_when_idle and source.idle():
            result.stopped_by = "idle"
            break
        if metrics is not None:
            metrics.observe_lag(source.lag())
            metrics.maybe_log(now, service)
    sink.flush()  # raises on a delivery error: then no final snapshot
    if snapshots is not None and final_snapshot:
        snapshots.write(service, extra())
    return result
