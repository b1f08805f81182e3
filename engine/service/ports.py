"""The service's edges: the records it reads and writes, the topic names, and the one-method
protocols a source, a sink and a journal implement.

The core (engine.service.tick) sees only `Record` batches in and `Output` records out; Kafka
(engine.service.kafka_python, engine.service.kafka_confluent), JSON-lines files and memory
(engine.service.files_adapter) are interchangeable adapters behind these protocols, driven
by engine.service.driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol


class Record(NamedTuple):
    """One input record: where it was read (topic, partition, offset) and its bytes. `row`
    >= 0: one event of a columnar batch record (engine.service.ingest.arrow_rows), its row
    in the batch, with that event alone as its value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    row: int = -1


class Output(NamedTuple):
    """One output record, serialized, ready to publish."""

    topic: str
    key: bytes
    value: bytes


def tp_name(topic: str, partition: int) -> str:
    """A partition's name in offsets and journal entries: "topic:partition"."""
    return f"{topic}:{partition}"


@dataclass(frozen=True)
class Topics:
    prices: str = "prices"
    account_events: str = "account-events"
    liquidations: str = "liquidations"
    adl: str = "adl"
    margin_calls: str = "margin-calls"
    insurance: str = "insurance"
    dead_letter: str = "dead-letter"
    journal: str = "clearing-journal"

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        base = cls()
        return cls(**{name: prefix + getattr(base, name) for name in base.__dataclass_fields__})

    def outputs(self) -> tuple[str, ...]:
        return (self.liquidations, self.adl, self.margin_calls, self.insurance, self.dead_letter)


class Source(Protocol):
    def next_batch(self, until: Mapping[str, int] | None = None) -> list[Record] | None:
        """The next batch; [] when nothing is waiting now; None when a finite input ended.
        With `until` ("topic:partition" -> end offset), exactly the records below those
        offsets (a journaled tick being replayed)."""
        ...

    def seek(self, offsets: Mapping[str, int]) -> None: ...

    def lag(self) -> dict[str, int]: ...

    def idle(self) -> bool:
        """Nothing buffered and nothing more in the input right now."""
        ...

    def close(self) -> None: ...


class Sink(Protocol):
    def publish(self, topic: str, key: bytes, value: bytes) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Journal(Protocol):
    """Where each tick's end offsets are recorded before its outputs are published."""

    position: int  # the journal's next offset: saved in snapshots, read from on recovery

    def append(self, tick: int, end: Mapping[str, int]) -> None:
        """Durable when it returns."""
        ...

    def entries_after(self, tick: int, position: int) -> list[tuple[int, dict[str, int]]]: ...

    def close(self) -> None: ...
