"""Kill -9 trials on the real broker: outputs are never lost across a crash.

`python -m bench.kill_trials --bootstrap-servers 127.0.0.1:19092 --trials 20`

One input log (a scenario that liquidates) is served once without interruption, then once
per trial by `clearing serve` as its own process (a snapshot every tick, a producer that
lingers 500 ms so outputs sit in its buffer) killed with SIGKILL, and restarted to the end.
The kills, in turn over the trials (--modes), each aimed at a tick that published outputs:

- after:  right after that tick's snapshot appears;
- during: while that tick's snapshot is being written (its temporary file exists; a write
  too quick to catch counts as `after`, and the report says which it hit);
- torn:   right after that tick's snapshot appears, and the snapshot is then cut to half
  its bytes, as a disk that lost the end of the write would leave it (recovery must skip it
  and start from an older one);
- random: at a random moment of the run (seeded), whatever it is doing.

Each trial passes when its published outputs, deduplicated by id, equal the uninterrupted
run's byte for byte (nothing lost), every repeat is byte-identical, and its final
snapshot's book equals the uninterrupted run's (so no money moved: the report gives the
difference of the balances' sum, 0). The snapshot after a tick is written only once the
producer has delivered that tick's outputs (engine.service.driver), so a kill right after
it loses none. tests/service/test_kill_trials.py runs two trials.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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


MODES = ("after", "during", "torn", "random")


@dataclass
class Trial:
    kill_tick: int
    mode: str = "after"
    hit: str = ""  # where the kill landed: after / during / torn / random (at N s)
    killed: bool = False  # False: the run ended before the snapshot appeared
    lost: list[str] = field(default_factory=list)  # ids the uninterrupted run published
    extra: list[str] = field(default_factory=list)  # ids it did not
    differing: list[str] = field(default_factory=list)  # same id, other bytes
    book_equal: bool = False
    money_delta: int = 0  # the final balances' sum minus the uninterrupted run's, in units

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


def _money(batch: Any) -> int:
    return sum(int(v) for v in batch.column("balance").to_pylist() if v is not None)


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
    mode: str = "after",
    kill_at_s: float = 0.0,
) -> Trial:
    """Serve, SIGKILL it (`mode`, see the module text: after, during or torn for tick
    `kill_tick`'s snapshot, or random at `kill_at_s` seconds), restart to the end."""
    outputs = _outputs_prefix(bootstrap)
    snaps = workdir / f"trial-{uuid.uuid4().hex[:8]}"
    result = Trial(kill_tick, mode)
    target = snaps / snapshot_name(kill_tick)
    partial = target.with_name(f".{target.name}.tmp")  # engine.io.snapshot.write_snapshot
    command = serve_command(bootstrap, inputs, outputs, snaps, "--linger-ms", str(linger_ms))
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        started = time.monotonic()
        deadline = started + 120
        while process.poll() is None and time.monotonic() < deadline:
            if mode == "random":
                hit = time.monotonic() - started >= kill_at_s
                result.hit = f"random at {kill_at_s:.2f} s"
            elif mode == "during" and partial.exists():
                hit, result.hit = True, "during"
            else:
                hit, result.hit = target.exists(), "after"
            if hit:
                os.kill(process.pid, signal.SIGKILL)
                result.killed = True
                break
            time.sleep(0.0002)
    finally:
        if process.poll() is None and not result.killed:
            process.kill()
        process.wait()
    if mode == "torn" and result.killed and target.exists():
        size = target.stat().st_size
        with open(target, "r+b") as handle:
            handle.truncate(size // 2)
        result.hit = "torn"
    _run(serve_command(bootstrap, inputs, outputs, snaps))
    got, result.differing = published(bootstrap, outputs)
    result.lost = sorted(set(want) - set(got))
    result.extra = sorted(set(got) - set(want))
    result.differing += sorted(i for i in set(want) & set(got) if want[i] != got[i])
    final = _final_book(snaps)
    result.book_equal = final.equals(want_book)
    result.money_delta = _money(final) - _money(want_book)
    return result


def run_trials(
    bootstrap: str,
    n_trials: int,
    workdir: Path,
    modes: Sequence[str] = ("after",),
    seed: int = 1,
) -> list[Trial]:
    inputs = prepare_inputs(bootstrap)
    started = time.monotonic()
    want, want_book = reference(bootstrap, inputs, workdir)
    seconds = time.monotonic() - started  # the random kills fall within a run's length
    ticks = output_ticks(want)
    if not ticks:
        raise RuntimeError("the scenario published nothing")
    rng = random.Random(seed)
    # Spread the kills over the ticks that published outputs; the modes in turn.
    picks = [ticks[(i * len(ticks)) // n_trials] for i in range(n_trials)]
    return [
        trial(
            bootstrap,
            inputs,
            workdir,
            tick,
            want,
            want_book,
            mode=modes[i % len(modes)],
            kill_at_s=rng.uniform(0.5, max(seconds, 1.0)),
        )
        for i, tick in enumerate(picks)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:19092")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=Path("out/kill-trials"))
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, in turn")
    parser.add_argument("--seed", type=int, default=1, help="for the random kill times")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    trials = run_trials(args.bootstrap_servers, args.trials, args.workdir, modes, args.seed)
    for t in trials:
        print(
            f"{t.mode:<6} tick {t.kill_tick:4d}: hit={t.hit or '-'} killed={t.killed}"
            f" lost={len(t.lost)} extra={len(t.extra)} differing={len(t.differing)}"
            f" book_equal={t.book_equal} money_delta={t.money_delta}"
        )
    bad = [t for t in trials if not t.ok]
    lost = sum(len(t.lost) for t in trials)
    print(
        f"{len(trials)} trials, {sum(t.killed for t in trials)} killed"
        f" ({', '.join(f'{m} {sum(t.hit.startswith(m) for t in trials)}' for m in MODES)}),"
        f" {len(bad)} mismatches, {lost} lost outputs,"
        f" money lost {sum(abs(t.money_delta) for t in trials)} units"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
