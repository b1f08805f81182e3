"""Kill -9 trials on the real broker: outputs are never lost across a crash.

`python -m bench.kill_trials --bootstrap-servers 127.0.0.1:19092 --trials 20`

One input log (a scenario that liquidates) is served once without interruption, then once
per trial by `clearing serve` as its own process (a snapshot every tick, a producer that
lingers 500 ms so outputs sit in its buffer) killed with SIGKILL right after the snapshot
of a tick that published outputs appears, and restarted to the end. Each trial passes when
its published outputs, deduplicated by id, equal the uninterrupted run's byte for byte
(nothing lost), every repeat is byte-identical, and its final snapshot's book equals the
uninterrupted run's. The snapshot after a tick is written only once the producer has
delivered that tick's outputs (engine.service.driver), so a kill right after it loses none.
tests/service/test_kill_trials.py runs two trials.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from engine.io.snapshot import book_batch, read_snapshot
from engine.service import messages
from engine.service.kafka_common import create_topics, partition_for_key
from engine.service.ports import Topics
from engine.service.snapshots import snapshot_name
from tests.service.scenario import scenario

EVENT_PARTITIONS = 3
REPO = Path(__file__).resolve().parent.parent
OUTPUT_TOPICS = Topics().outputs()


@dataclass
class Trial:
    kill_tick: int
    killed: bool = False  # False: the run ended before the snapshot appeared
    lost: list[str] = field(default_factory=list)  # ids the uninterrupted run published
    extra: list[str] = field(default_factory=list)  # ids it did not
    differing: list[str] = field(default_factory=list)  # same id, other bytes
    book_equal: bool = False

    @property
    def ok(self) -> bool:
        return not (self.lost or self.extra or self.differing) and self.book_equal


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def prepare_inputs(bootstrap: str, seed: int = 3) -> str:
    """Topics with a scenario's account events and prices; returns their prefix."""
    inputs = f"kill-in-{uuid.uuid4().hex[:10]}-"
    base = Topics()
    create_topics(
        bootstrap, {inputs + base.prices: 1, inputs + base.account_events: EVENT_PARTITIONS}
    )
    events, prices = scenario(n_pairs=30, n_prices=40, seed=seed)

    def partition_of(key: bytes) -> int:
        return partition_for_key(key, EVENT_PARTITIONS)

    _produce(
        bootstrap,
        inputs + base.account_events,
        [(k, messages.encode(d)) for d in events for k in messages.routing_keys(d, partition_of)],
    )
    _produce(
        bootstrap,
        inputs + base.prices,
        [(d["symbol"].encode(), messages.encode(d)) for d in prices],
    )
    return inputs


def _outputs_prefix(bootstrap: str) -> str:
    prefix = f"kill-out-{uuid.uuid4().hex[:10]}-"
    base = Topics()
    create_topics(bootstrap, {prefix + name: 1 for name in (*base.outputs(), base.journal)})
    return prefix


def serve_command(
    bootstrap: str, inputs: str, outputs: str, snapshots: Path, *extra: str
) -> list[str]:
    base = Topics()
    return [
        sys.executable, "-m", "engine.cli.serve",
        "--bootstrap-servers", bootstrap,
        "--topic-prefix", outputs,
        "--prices-topic", inputs + base.prices,
        "--account-events-topic", inputs + base.account_events,
        "--snapshot-dir", str(snapshots),
        "--snapshot-every-ticks", "1",
        "--snapshots-keep", "3",
        "--batch-records", "3",
        "--fund", "1000",
        "--no-fill-checks",
        "--exit-when-idle",
        "--status-every", "3600",
        *extra,
    ]  # fmt: skip


def _run(command: Sequence[str]) -> None:
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=300)


def published(bootstrap: str, outputs: str) -> tuple[dict[str, bytes], list[str]]:
    """Every output record by id, and the ids whose repeats differ in bytes."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    by_id: dict[str, bytes] = {}
    differing: list[str] = []
    try:
        tps = [TopicPartition(outputs + name, 0) for name in OUTPUT_TOPICS]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{outputs}: outputs below the high watermark never came")
            for records in consumer.poll(timeout_ms=200).values():
                for r in records:
                    doc_id = json.loads(r.value)["id"]
                    if by_id.setdefault(doc_id, r.value) != r.value:
                        differing.append(doc_id)
    finally:
        consumer.close()
    return by_id, differing


def _final_book(snapshots: Path) -> Any:
    return book_batch(read_snapshot(sorted(snapshots.glob("*.arrow"))[-1])[0])


def reference(bootstrap: str, inputs: str, workdir: Path) -> tuple[dict[str, bytes], Any]:
    """The uninterrupted run: its outputs by id and its final book."""
    outputs = _outputs_prefix(bootstrap)
    snaps = workdir / "reference"
    _run(serve_command(bootstrap, inputs, outputs, snaps))
    by_id, differing = published(bootstrap, outputs)
    assert not differing
    return by_id, _final_book(snaps)


def output_ticks(by_id: dict[str, bytes]) -> list[int]:
    """The ticks that published something (ids are shard-tick-n)."""
    return sorted({int(doc_id.split("-")[1]) for doc_id in by_id})


def trial(
    bootstrap: str,
    inputs: str,
    workdir: Path,
    kill_tick: int,
    want: dict[str, bytes],
    want_book: Any,
    *,
    linger_ms: int = 500,
) -> Trial:
    """Serve, SIGKILL right after tick `kill_tick`'s snapshot appears, restart to the end."""
    outputs = _outputs_prefix(bootstrap)
    snaps = workdir / f"trial-{uuid.uuid4().hex[:8]}"
    result = Trial(kill_tick)
    target = snaps / snapshot_name(kill_tick)
    command = serve_command(bootstrap, inputs, outputs, snaps, "--linger-ms", str(linger_ms))
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if target.exists():
                os.kill(process.pid, signal.SIGKILL)
                result.killed = True
                break
            time.sleep(0.0005)
    finally:
        if process.poll() is None and not result.killed:
            process.kill()
        process.wait()
    _run(serve_command(bootstrap, inputs, outputs, snaps))
    got, result.differing = published(bootstrap, outputs)
    result.lost = sorted(set(want) - set(got))
    result.extra = sorted(set(got) - set(want))
    result.differing += sorted(i for i in set(want) & set(got) if want[i] != got[i])
    result.book_equal = _final_book(snaps).equals(want_book)
    return result


def run_trials(bootstrap: str, n_trials: int, workdir: Path) -> list[Trial]:
    inputs = prepare_inputs(bootstrap)
    want, want_book = reference(bootstrap, inputs, workdir)
    ticks = output_ticks(want)
    if not ticks:
        raise RuntimeError("the scenario published nothing")
    # Spread the kills over the ticks that published outputs.
    picks = [ticks[(i * len(ticks)) // n_trials] for i in range(n_trials)]
    return [trial(bootstrap, inputs, workdir, tick, want, want_book) for tick in picks]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:19092")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=Path("out/kill-trials"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    trials = run_trials(args.bootstrap_servers, args.trials, args.workdir)
    for t in trials:
        print(
            f"kill after tick {t.kill_tick:4d}: killed={t.killed} lost={len(t.lost)}"
            f" extra={len(t.extra)} differing={len(t.differing)} book_equal={t.book_equal}"
        )
    bad = [t for t in trials if not t.ok]
    print(f"{len(trials)} trials, {sum(t.killed for t in trials)} killed, {len(bad)} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
