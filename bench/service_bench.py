"""End-to-end benchmark of `clearing serve` through the real broker (scripts/kafka.sh).

A seeded synthetic book (1M accounts by default, 3 positions each over 100 instruments) is
written as the service's starting snapshot; the service runs as its own process (one
core of the two) and this process produces its input and consumes its output:

1. start: restore the snapshot, first tick at the book's marks (anchor sweep and the
   liquidation of the accounts the synthetic book starts breached);
2. account events: a backlog of deposits and fills between existing accounts, produced
   as fast as the client allows; measured: events applied per second until it is drained;
3. price ticks: a backlog of small moves (inside the band), measured the same way, with
   the sweeps (ticks) per second they turned into;
4. latency: one price message every --latency-interval-ms, each a 1.5% move of one
   instrument; measured: from the produce call to the consumption of the first
   liquidation event carrying that message's seq (`mark_seq`), p50 / p99.

Run: .venv/bin/python -m bench.service_bench [--accounts 1000000] [--backend both]
Numbers print as a table and go to --out (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from engine.book.limits import RESERVED_ACCOUNT_BASE
from engine.service import kafka_common, messages
from engine.service.kafka_common import create_topics, partition_for_key
from engine.service.ports import Topics
from engine.service.snapshots import Snapshotter
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.stress.synthetic import USDT, synthetic_book
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import Profile

REPO = Path(__file__).resolve().parent.parent
EVENT_PARTITIONS = 3
FUND_USDT = 10**9  # deep enough that ADL stays out of the latency figures


def _bootstrap() -> str:
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "kafka.sh"), "status"], capture_output=True, text=True
    )
    for line in out.stdout.splitlines():
        if line.startswith("bootstrap="):
            return line.split("=", 1)[1]
    started = subprocess.run(
        ["bash", str(REPO / "scripts" / "kafka.sh"), "start"], capture_output=True, text=True
    )
    for line in started.stdout.splitlines():
        if line.startswith("bootstrap="):
            return line.split("=", 1)[1]
    raise SystemExit(f"no broker: {started.stderr}")


class Producer:
    """confluent-kafka when installed (about 1M msg/s here, so the service is what is
    measured), kafka-python otherwise; both partition keys with murmur2."""

    def __init__(self, bootstrap: str) -> None:
        self.confluent = kafka_common.have_confluent()
        if self.confluent:
            from confluent_kafka import Producer as CProducer

            self.p: Any = CProducer(
                {
                    "bootstrap.servers": bootstrap,
                    "linger.ms": 0,
                    "partitioner": "murmur2_random",
                    "queue.buffering.max.messages": 2_000_000,
                }
            )
        else:
            from kafka import KafkaProducer

            self.p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        if self.confluent:
            while True:
                try:
                    self.p.produce(topic, value=value, key=key)
                    break
                except BufferError:
                    self.p.poll(0.01)
            self.p.poll(0)
        else:
            self.p.send(topic, key=key, value=value)

    def flush(self) -> None:
        self.p.flush()


class Metrics:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    def scrape(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url, timeout=5) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def get(self, name: str) -> float:
        return self.scrape().get(f"clearing_{name}", 0.0)

    def wait(self, name: str, target: float, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.get(name)
            if value >= target:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} reached {value} of {target}")
            time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _price_text(ticks: int) -> str:
    return str(Decimal(ticks) / 100)  # synthetic instruments: tick 0.01


def run_one(args: argparse.Namespace, backend: str, bootstrap: str) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    topics = Topics.with_prefix(prefix)
    partitions = {name: 1 for name in (topics.prices, *topics.outputs(), topics.journal)}
    partitions[topics.account_events] = EVENT_PARTITIONS
    create_topics(bootstrap, partitions)
    result: dict[str, Any] = {"backend": backend, "accounts": args.accounts}

    started = time.perf_counter()
    profile = Profile.shipped()
    book = synthetic_book(args.accounts, 3 * args.accounts, args.instruments, seed=args.seed)
    open_fund(book, profile, FUND_USDT * USDT)
    result["positions"] = int((book.pos_qty != 0).sum())
    snap_dir = Path(tempfile.mkdtemp(prefix="service-bench-"))
    snapshotter = Snapshotter(snap_dir, every_s=0)
    path = snapshotter.write(Service(book, profile, ServiceConfig()), {"journal_position": 0})
    result["snapshot_write_s"] = round(snapshotter.last_write_s, 3)
    result["snapshot_mb"] = round(path.stat().st_size / 1e6, 1)
    result["book_build_s"] = round(time.perf_counter() - started, 2)
    marks = book.mark.copy()
    symbols = [inst.symbol for inst in book.instruments.instruments]
    account_ids = book.account_id[book.account_id < RESERVED_ACCOUNT_BASE].copy()
    del book, snapshotter

    port = _free_port()
    log_path = snap_dir / "service.log"
    command = [
        sys.executable, "-m", "engine.cli.serve",
        "--bootstrap-servers", bootstrap, "--backend", backend,
        "--topic-prefix", prefix, "--snapshot-dir", str(snap_dir),
        "--snapshot-interval", "0", "--metrics-port", str(port), "--status-every", "5",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        service = subprocess.Popen(command, stderr=log, cwd=REPO)
    metrics = Metrics(port)
    producer = Producer(bootstrap)
    t0 = time.monotonic()
    try:
        while True:
            try:
                metrics.scrape()
                break
            except OSError:
                if service.poll() is not None or time.monotonic() - t0 > 300:
                    raise SystemExit(f"service did not start: {log_path.read_text()}") from None
                time.sleep(0.1)
        result["service_start_s"] = round(time.monotonic() - t0, 2)

        # 1. first tick at the book's marks.
        seq = dict.fromkeys(symbols, 0)

        def send_price(i: int, ticks: int) -> int:
            seq[symbols[i]] += 1
            doc = messages.price_doc(
                symbols[i], int(time.time() * 1000), seq[symbols[i]], mark_price=_price_text(ticks)
            )
            producer.send(topics.prices, symbols[i].encode(), messages.encode(doc))
            return seq[symbols[i]]

        t0 = time.monotonic()
        for i in range(len(symbols)):
            send_price(i, int(marks[i]))
        producer.flush()
        metrics.wait("prices_total", len(symbols), 300)
        result["first_tick_s"] = round(time.monotonic() - t0, 2)
        result["liquidated_at_start"] = int(metrics.get("accounts_liquidated_total"))

        # 2. account events backlog.
        rng = np.random.default_rng(args.seed)

        def partition_of(key: bytes) -> int:
            return partition_for_key(key, EVENT_PARTITIONS)

        n_events = args.events
        base_records = metrics.get("records_total")
        base_applied = metrics.get("account_events_total")
        t0 = time.monotonic()
        sent = 0
        picks = rng.integers(0, len(account_ids), (n_events, 2))
        inst_pick = rng.integers(0, len(symbols), n_events)
        for k in range(n_events):
            event_id = k + 1
            a, b = int(account_ids[picks[k, 0]]), int(account_ids[picks[k, 1]])
            if k % 2 == 0 or a == b:
                doc = messages.deposit_doc(event_id, 0, a, "10")
            else:
                i = int(inst_pick[k])
                doc = messages.fill_doc(
                    event_id, 0, symbols[i], _price_text(int(marks[i])), "0.001", a, b
                )
            for key in messages.routing_keys(doc, partition_of):
                producer.send(topics.account_events, key, messages.encode(doc))
                sent += 1
        producer.flush()
        produced = time.monotonic() - t0
        metrics.wait("records_total", base_records + sent, 600)
        elapsed = time.monotonic() - t0
        applied = metrics.get("account_events_total") - base_applied
        result["account_event_records"] = sent
        result["account_events_applied"] = int(applied)
        result["account_events_produce_s"] = round(produced, 2)
        result["account_events_per_s"] = round(sent / elapsed)
        # the same client reading the same topic, nothing else: the raw consume rate
        result["raw_consume_per_s"] = raw_consume_rate(
            backend, bootstrap, topics.account_events, sent
        )
        result["drain_over_raw"] = round(
            result["account_events_per_s"] / max(result["raw_consume_per_s"], 1), 3
        )
        result["account_event_rejects"] = int(
            sum(v for k, v in metrics.scrape().items() if k.startswith("clearing_rejects_total"))
        )

        # 3. price backlog: small moves (0.05%) inside the band.
        base_prices = metrics.get("prices_total")
        base_ticks = metrics.get("ticks_total")
        current = marks.copy()
        t0 = time.monotonic()
        for k in range(args.prices):
            i = k % len(symbols)
            current[i] = max(1, int(round(current[i] * (1 + rng.normal(0, 0.0005)))))
            send_price(i, int(current[i]))
        producer.flush()
        metrics.wait("prices_total", base_prices + args.prices, 600)
        elapsed = time.monotonic() - t0
        result["price_messages_per_s"] = round(args.prices / elapsed)
        ticks = metrics.get("ticks_total") - base_ticks
        result["price_ticks"] = int(ticks)
        result["sweeps_per_s"] = round(ticks / elapsed, 1)

        # 4. latency: paced 1.5% moves, price produced -> liquidation consumed.
        sent_at: dict[tuple[str, int], float] = {}
        first_seen: dict[tuple[str, int], float] = {}
        stop = threading.Event()
        ready = threading.Event()

        def consume() -> None:
            from kafka import KafkaConsumer, TopicPartition

            consumer = KafkaConsumer(
                bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
            )
            tp = TopicPartition(topics.liquidations, 0)
            consumer.assign([tp])
            consumer.seek_to_end(tp)
            consumer.position(tp)
            ready.set()
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=20).values():
                    now = time.perf_counter()
                    for r in records:
                        doc = json.loads(r.value)
                        if doc.get("kind") == "liquidation" and doc.get("mark_in_tick"):
                            first_seen.setdefault((doc["symbol"], doc["mark_seq"]), now)
            consumer.close()

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        ready.wait(30)
        direction = rng.choice([-1, 1], len(symbols))
        liquidated_before = metrics.get("accounts_liquidated_total")
        for k in range(args.latency_samples):
            i = k % len(symbols)
            if k % len(symbols) == 0 and k:
                direction = -direction
            current[i] = max(1, int(round(current[i] * (1 + 0.015 * direction[i]))))
            s = send_price(i, int(current[i]))
            producer.flush()
            sent_at[(symbols[i], s)] = time.perf_counter()
            time.sleep(args.latency_interval_ms / 1000)
        time.sleep(3)
        stop.set()
        thread.join(10)
        latencies = sorted(
            (first_seen[key] - sent_at[key]) * 1000 for key in sent_at if key in first_seen
        )
        result["latency_samples"] = len(latencies)
        result["latency_price_messages"] = len(sent_at)
        if latencies:
            result["latency_p50_ms"] = round(float(np.percentile(latencies, 50)), 2)
            result["latency_p99_ms"] = round(float(np.percentile(latencies, 99)), 2)
            result["latency_max_ms"] = round(latencies[-1], 2)
        result["accounts_liquidated_in_latency_phase"] = int(
            metrics.get("accounts_liquidated_total") - liquidated_before
        )
        scraped = metrics.scrape()
        result["tick_p99_le_ms"] = _quantile_bound(scraped, "clearing_tick_seconds", 0.99) * 1000
        with open(f"/proc/{service.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM"):
                    result["service_peak_rss_mb"] = round(int(line.split()[1]) / 1024)
    finally:
        t0 = time.monotonic()
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(120)
        except subprocess.TimeoutExpired:
            service.kill()
        result["shutdown_with_snapshot_s"] = round(time.monotonic() - t0, 2)
        result["service_log_tail"] = log_path.read_text().splitlines()[-3:]
    return result


def raw_consume_rate(backend: str, bootstrap: str, topic: str, expected: int) -> int:
    """Records per second the backend's client alone reads of `topic` (every
    account-events partition, from the beginning, until `expected` records), with the
    service's consumer settings for its fetch sizes."""
    count = 0
    if backend == "confluent":
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"raw-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
                "queued.min.messages": 200_000,
            }
        )
        consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(EVENT_PARTITIONS)]
        )
        t0 = time.monotonic()
        while count < expected and time.monotonic() - t0 < 300:
            batch = consumer.consume(num_messages=10_000, timeout=0.5)
            count += sum(1 for m in batch if m.error() is None)
    else:
        from kafka import KafkaConsumer
        from kafka import TopicPartition as KTopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            max_poll_records=100_000,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        tps = [KTopicPartition(topic, p) for p in range(EVENT_PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        t0 = time.monotonic()
        while count < expected and time.monotonic() - t0 < 300:
            polled = consumer.poll(timeout_ms=100)
            count += sum(len(records) for records in polled.values())
    elapsed = time.monotonic() - t0
    consumer.close()
    return round(count / elapsed)


def _quantile_bound(scraped: dict[str, float], name: str, q: float) -> float:
    buckets = sorted(
        (float(k.split('le="')[1].rstrip('"}')), v)
        for k, v in scraped.items()
        if k.startswith(name + "_bucket") and "+Inf" not in k
    )
    total = scraped.get(name + "_count", 0.0)
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--instruments", type=int, default=100)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--prices", type=int, default=50_000)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--latency-interval-ms", type=float, default=20)
    parser.add_argument("--backend", choices=(*kafka_common.BACKENDS, "both"), default="both")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "service_bench.json")
    args = parser.parse_args(argv)
    bootstrap = _bootstrap()
    backends = list(kafka_common.BACKENDS) if args.backend == "both" else [args.backend]
    if "confluent" in backends and not kafka_common.have_confluent():
        backends.remove("confluent")
        print("confluent-kafka not installed: kafka-python only", file=sys.stderr)
    results = [run_one(args, backend, bootstrap) for backend in backends]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    keys = [k for k in results[0] if k != "service_log_tail"]
    width = max(len(k) for k in keys)
    for key in keys:
        print(f"{key:<{width}}  " + "  ".join(f"{str(r.get(key, '')):>14}" for r in results))
    for r in results:
        print(f"[{r['backend']}] " + " / ".join(r["service_log_tail"]))
    print(f"wrote {args.out} (cpus: {os.cpu_count()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
