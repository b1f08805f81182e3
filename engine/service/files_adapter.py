"""The service without a broker: JSON-lines files, memory, and a synthetic price path.

Each input file (or list) is one partition of its topic; a record's offset is its line
number from 0, and a line's bytes are the message value (files carry no keys). A batch
takes up to `batch_records` records from each partition, in a fixed partition order, so the
cut is deterministic. Outputs go to one `<topic>.jsonl` file per topic (or a list); the
journal is a JSON-lines file of {"tick", "end"}, fsynced on every append.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, Protocol

import numpy as np

from engine.book.instruments import InstrumentTable
from engine.service import messages
from engine.service.kafka_batches import Buffers
from engine.service.ports import Record, tp_name

BATCH_RECORDS_DEFAULT = 1000


class Stream(Protocol):
    """One partition of input, read forward from `position`."""

    position: int

    def read(self, n: int) -> list[tuple[bytes | None, bytes]]: ...

    def seek(self, offset: int) -> None: ...


class ListStream:
    """A partition in memory; `append` adds records as a producer would."""

    def __init__(self, records: Sequence[tuple[bytes | None, bytes]] = ()) -> None:
        self.records = list(records)
        self.position = 0

    def append(self, value: bytes, key: bytes | None = None) -> None:
        self.records.append((key, value))

    def read(self, n: int) -> list[tuple[bytes | None, bytes]]:
        chunk = self.records[self.position : self.position + n]
        self.position += len(chunk)
        return chunk

    def seek(self, offset: int) -> None:
        self.position = min(offset, len(self.records))


class LinesStream:
    """A JSON-lines file; the record at offset k is line k (without its newline)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.position = 0
        self._handle: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 (closed in close())

    def read(self, n: int) -> list[tuple[bytes | None, bytes]]:
        chunk: list[tuple[bytes | None, bytes]] = []
        while len(chunk) < n:
            line = self._handle.readline()
            if not line:
                break
            chunk.append((None, line.rstrip(b"\r\n")))
        self.position += len(chunk)
        return chunk

    def seek(self, offset: int) -> None:
        self._handle.seek(0)
        self.position = 0
        while self.position < offset and self._handle.readline():
            self.position += 1

    def close(self) -> None:
        self._handle.close()


class StreamSource:
    """Batches over named partitions. `finite`: an exhausted input ends the run (files);
    otherwise it is idle and more may be appended (memory, tests)."""

    def __init__(
        self,
        streams: Mapping[tuple[str, int], Stream],
        *,
        batch_records: int = BATCH_RECORDS_DEFAULT,
        finite: bool = True,
        max_events: int | None = None,
        prices_topic: str = "prices",
    ) -> None:
        if batch_records < 1:
            raise ValueError("batch_records must be at least 1")
        self.streams = dict(sorted(streams.items()))
        self.batch_records = batch_records
        self.finite = finite
        # at most max_events account-event records a batch (the Kafka sources' rule)
        self.max_events = max_events
        self.prices_topic = prices_topic

    def next_batch(self, until: Mapping[str, int] | None = None) -> list[Record] | None:
        batch: list[Record] = []
        limit = Buffers(self.batch_records, self.prices_topic, self.max_events).limits(
            list(self.streams)
        )
        for (topic, partition), stream in self.streams.items():
            if until is None:
                n = limit[(topic, partition)]
            else:
                n = until.get(tp_name(topic, partition), stream.position) - stream.position
            start = stream.position
            for i, (key, value) in enumerate(stream.read(n)):
                batch.append(Record(topic, partition, start + i, key, value))
        if not batch and self.finite and until is None:
            return None
        return batch

    def seek(self, offsets: Mapping[str, int]) -> None:
        for (topic, partition), stream in self.streams.items():
            stream.seek(offsets.get(tp_name(topic, partition), 0))

    def idle(self) -> bool:
        return all(
            stream.position >= len(stream.records)
            for stream in self.streams.values()
            if isinstance(stream, ListStream)
        )

    def lag(self) -> dict[str, int]:
        lag = {}
        for (topic, partition), stream in self.streams.items():
            if isinstance(stream, ListStream):
                lag[tp_name(topic, partition)] = len(stream.records) - stream.position
        return lag

    def close(self) -> None:
        for stream in self.streams.values():
            if isinstance(stream, LinesStream):
                stream.close()


def file_source(
    prices: str | Path | None,
    events: str | Path | None,
    *,
    prices_topic: str = "prices",
    events_topic: str = "account-events",
    batch_records: int = BATCH_RECORDS_DEFAULT,
    max_events: int | None = None,
) -> StreamSource:
    streams: dict[tuple[str, int], Stream] = {}
    if events is not None:
        streams[(events_topic, 0)] = LinesStream(events)
    if prices is not None:
        streams[(prices_topic, 0)] = LinesStream(prices)
    return StreamSource(
        streams, batch_records=batch_records, max_events=max_events, prices_topic=prices_topic
    )


# ----- outputs ---------------------------------------------------------------------------
class MemorySink:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        self.records.append((topic, key, value))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def docs(self, topic: str | None = None) -> list[dict]:
        return [json.loads(v) for t, _, v in self.records if topic is None or t == topic]


class FileSink:
    """One JSON-lines file per output topic in `directory`, appended to."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[bytes]] = {}
        self.counts: dict[str, int] = {}

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        handle = self._files.get(topic)
        if handle is None:
            handle = open(self.directory / f"{topic}.jsonl", "ab")  # noqa: SIM115
            self._files[topic] = handle
        handle.write(value + b"\n")
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def flush(self) -> None:
        """Written and fsynced: on disk before a snapshot covers them."""
        for handle in self._files.values():
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()


class MemoryJournal:
    def __init__(self) -> None:
        self.entries: list[tuple[int, dict[str, int]]] = []
        self.position = 0

    def append(self, tick: int, end: Mapping[str, int]) -> None:
        self.entries.append((tick, dict(end)))
        self.position = len(self.entries)

    def entries_after(self, tick: int, position: int) -> list[tuple[int, dict[str, int]]]:
        self.position = len(self.entries)
        return [(t, e) for t, e in self.entries[position:] if t > tick]

    def close(self) -> None:
        pass


class FileJournal:
    """One JSON line per tick; fsynced, so a tick's end offsets survive a crash."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.position = 0
        if self.path.exists():
            with open(self.path, "rb") as handle:
                self.position = sum(1 for _ in handle)
        self._handle = open(self.path, "ab")  # noqa: SIM115

    def append(self, tick: int, end: Mapping[str, int]) -> None:
        self._handle.write(json.dumps({"tick": tick, "end": dict(end)}).encode() + b"\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.position += 1

    def entries_after(self, tick: int, position: int) -> list[tuple[int, dict[str, int]]]:
        entries = []
        with open(self.path, "rb") as handle:
            for n, line in enumerate(handle):
                if n < position:
                    continue
                doc = json.loads(line)
                if doc["tick"] > tick:
                    entries.append((int(doc["tick"]), {k: int(v) for k, v in doc["end"].items()}))
        return entries

    def close(self) -> None:
        self._handle.close()


# ----- a synthetic price path ------------------------------------------------------------
def synthetic_price_path(
    instruments: InstrumentTable,
    start_marks: np.ndarray,
    steps: int,
    *,
    seed: int = 11,
    volatility: float = 0.002,
    crash_step: int | None = None,
    crash: float = -0.08,
    start_ts: int = 1_760_140_800_000,  # 2025-10-11 00:00 UTC, ms
    interval_ms: int = 100,
) -> list[bytes]:
    """Mark price messages for every instrument at every step: a seeded random walk in
    ticks (floats only to draw the path; every message is an exact decimal on the grid),
    with an optional one-step crash."""
    rng = np.random.default_rng([seed, 2])
    returns = rng.normal(0.0, volatility, (steps, len(instruments)))
    if crash_step is not None and 0 <= crash_step < steps:
        returns[crash_step] += np.log1p(crash)
    path = np.maximum(1, np.round(start_marks * np.exp(np.cumsum(returns, axis=0))))
    values = []
    seq = 0
    for step in range(steps):
        for i, inst in enumerate(instruments.instruments):
            seq += 1
            price = format_ticks(int(path[step, i]), inst.tick_size)
            doc = messages.price_doc(
                inst.symbol, start_ts + step * interval_ms, seq, mark_price=price
            )
            values.append(messages.encode(doc))
    return values


def format_ticks(ticks: int, tick_size: Decimal) -> str:
    return str(Decimal(ticks) * tick_size)
