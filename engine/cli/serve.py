"""`clearing serve`: the streaming service.

With --bootstrap-servers it reads `prices` and `account-events` from Kafka and publishes
`liquidations`, `adl`, `margin-calls`, `insurance` and `dead-letter`. Without a broker it
runs the same loop from JSON-lines files (--prices-file / --events-file), or, with neither,
from a built-in synthetic book and price path with a crash in the middle, so the service
can be tried on a fresh machine. Outputs then go to JSON-lines files in --out-dir.

On start it restores the newest valid snapshot in --snapshot-dir (reporting corrupt ones
it skipped), seeks to its offsets and replays the journaled ticks after it; it writes
snapshots every --snapshot-interval seconds or --snapshot-every-ticks ticks, and on a clean
shutdown (SIGINT / SIGTERM, end of input, --max-ticks, --exit-when-idle).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE, FixedPointError, parse_decimal, to_rate, to_units
from engine.book.instruments import InstrumentTable
from engine.book.reasons import RejectReason
from engine.io.snapshot import SnapshotError
from engine.service import kafka_adapter
from engine.service.files_adapter import (
    FileJournal,
    FileSink,
    ListStream,
    MemorySink,
    StreamSource,
    file_source,
    synthetic_price_path,
)
from engine.service.loop import (
    BAND_CONFIRM_DEFAULT,
    RunResult,
    Service,
    ServiceConfig,
    Topics,
)
from engine.service.loop import run as drive
from engine.service.metrics import ServiceMetrics
from engine.service.snapshots import KEEP_DEFAULT, Snapshotter, restore
from engine.stress.synthetic import synthetic_book, synthetic_marks
from engine.waterfall.profile import PROFILES_DIR, Profile, ProfileError
from engine.waterfall.waterfall import open_fund

DEFAULT_INSTRUMENTS = Path(__file__).resolve().parent.parent / "data" / "instruments.json"
EXIT_ASSIGNMENT_CHANGED = 3
SYNTHETIC_INSTRUMENTS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kafka = parser.add_argument_group("Kafka (leave --bootstrap-servers out to run embedded)")
    kafka.add_argument("--bootstrap-servers", help="e.g. 127.0.0.1:19092")
    kafka.add_argument("--backend", choices=kafka_adapter.BACKENDS, default="kafka-python")
    kafka.add_argument("--topic-prefix", default="", help="prefix of every topic name")
    for name, default in vars(Topics()).items():
        kafka.add_argument(
            f"--{name.replace('_', '-')}-topic", dest=f"{name}_topic", help=f"default {default}"
        )
    kafka.add_argument(
        "--create-topics",
        type=int,
        metavar="PARTITIONS",
        help="create missing topics, account-events with this many partitions",
    )
    kafka.add_argument("--group", help="consumer group sharing the account-events partitions")
    kafka.add_argument("--shard", default="0", help="this instance's name in ids and journal")
    kafka.add_argument("--linger-ms", type=int, default=kafka_adapter.LINGER_MS_DEFAULT)
    kafka.add_argument(
        "--group-settle",
        type=float,
        default=kafka_adapter.GROUP_SETTLE_S_DEFAULT,
        help="seconds the group's assignment must stay unchanged before consuming",
    )
    engine = parser.add_argument_group("engine")
    engine.add_argument("--profile", default="binance-like", help="shipped name or TOML path")
    engine.add_argument("--instruments", type=Path, default=DEFAULT_INSTRUMENTS)
    engine.add_argument("--fund", default="0", help="insurance fund deposit on a fresh start")
    engine.add_argument("--band", default="0.1", help="price band around the last mark (0: off)")
    engine.add_argument("--band-confirm", type=int, default=BAND_CONFIRM_DEFAULT)
    engine.add_argument("--batch-records", type=int, help="records per partition per tick")
    engine.add_argument("--full-sweep", action="store_true", help="sweep every account every tick")
    state = parser.add_argument_group("snapshots")
    state.add_argument("--snapshot-dir", type=Path)
    state.add_argument("--snapshot-interval", type=float, default=30.0, help="seconds (0: off)")
    state.add_argument("--snapshot-every-ticks", type=int, default=0)
    state.add_argument("--snapshots-keep", type=int, default=KEEP_DEFAULT)
    ops = parser.add_argument_group("operation")
    ops.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: any free)")
    ops.add_argument("--status-every", type=float, default=5.0, help="status log, seconds")
    ops.add_argument("--max-ticks", type=int)
    ops.add_argument("--exit-when-idle", action="store_true")
    embedded = parser.add_argument_group("embedded (no broker)")
    embedded.add_argument("--prices-file", type=Path, help="JSON lines of price messages")
    embedded.add_argument("--events-file", type=Path, help="JSON lines of account events")
    embedded.add_argument("--out-dir", type=Path, help="output topics as JSON-lines files")
    embedded.add_argument("--synthetic-accounts", type=int, default=10_000)
    embedded.add_argument("--synthetic-steps", type=int, default=300)
    embedded.add_argument("--seed", type=int, default=7)


def topics_of(args: argparse.Namespace) -> Topics:
    base = Topics.with_prefix(args.topic_prefix)
    chosen = {
        name: getattr(args, f"{name}_topic", None) or getattr(base, name) for name in vars(base)
    }
    return Topics(**chosen)


def _profile(text: str) -> Profile:
    path = Path(text)
    if path.suffix == ".toml" or path.exists():
        return Profile.load(path)
    if not (PROFILES_DIR / f"{text}.toml").is_file():
        raise ProfileError(f"no shipped profile {text!r} and no file {text}")
    return Profile.shipped(text)


def _band_rate(text: str) -> int:
    rate = to_rate(parse_decimal(text, "--band"), "--band")
    if not 0 <= rate <= 100 * RATE_SCALE:
        raise FixedPointError(f"--band: expected 0 to 100, got {text}")
    return rate


def _fresh_book(args: argparse.Namespace, profile: Profile, synthetic: bool) -> Book:
    if synthetic:
        n = args.synthetic_accounts
        book = synthetic_book(n, 3 * n, SYNTHETIC_INSTRUMENTS, seed=args.seed)
    else:
        book = Book(InstrumentTable.load(args.instruments), warning_rate=profile.warning_rate)
    fund = to_units(parse_decimal(args.fund, "--fund"), book.instruments.money_step, "--fund")
    if fund < 0:
        raise Rejected(RejectReason.INVALID_AMOUNT, "--fund must not be negative")
    open_fund(book, profile, fund)
    return book


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def serve(
    args: argparse.Namespace,
    *,
    stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] = _log,
    started: Callable[[Service], None] | None = None,
) -> tuple[Service, RunResult, int]:
    """The service as `clearing serve` runs it; returns it, what the run did, exit status."""
    profile = _profile(args.profile)
    topics = topics_of(args)
    config = ServiceConfig(
        topics=topics,
        shard=args.shard,
        band_rate=_band_rate(args.band),
        band_confirm=args.band_confirm,
        incremental=not args.full_sweep,
    )
    synthetic = (
        args.bootstrap_servers is None and args.prices_file is None and (args.events_file is None)
    )
    service = None
    if args.snapshot_dir is not None:
        service, recovery = restore(args.snapshot_dir, profile, config)
        for reason in recovery.skipped:
            log(f"snapshot skipped: {reason}")
        if recovery.path is not None:
            log(f"restored {recovery.path} (tick {service.state.tick if service else '?'})")
    if service is None:
        service = Service(_fresh_book(args, profile, synthetic), profile, config)
    journal: Any = None
    source: Any
    sink: Any
    if args.bootstrap_servers is not None:
        bootstrap = args.bootstrap_servers
        if args.create_topics:
            partitions = {name: 1 for name in (topics.prices, *topics.outputs())}
            partitions[topics.account_events] = args.create_topics
            kafka_adapter.create_topics(bootstrap, partitions)
        kafka_adapter.create_topics(bootstrap, {topics.journal: 1})
        options: dict[str, Any] = {"offsets": service.state.offsets, "group": args.group}
        if args.batch_records:
            options["batch_records"] = args.batch_records
        options["settle_s"] = args.group_settle
        options["client_id"] = f"clearing-{args.shard}"
        source = kafka_adapter.make_source(
            args.backend, bootstrap, topics.prices, topics.account_events, **options
        )
        if source.n_event_partitions > 1:
            service.partition_of_account = kafka_adapter.AccountPartitions(
                source.n_event_partitions
            )
        log(f"shard {args.shard}: account-events partitions {source.event_partitions()}")
        sink = kafka_adapter.make_sink(args.backend, bootstrap, linger_ms=args.linger_ms)
        journal = kafka_adapter.KafkaJournal(bootstrap, topics.journal, args.shard)
    else:
        batch = args.batch_records or 1000
        if synthetic:
            book = service.book
            # One step of the path (a price per instrument) per tick unless told otherwise.
            batch = args.batch_records or len(book.instruments)
            crash = args.synthetic_steps // 2
            # From the seed's starting marks, not the book's (a restored book has moved on),
            # so a restart replays the same path.
            start = synthetic_marks(len(book.instruments), args.seed)
            values = synthetic_price_path(
                book.instruments, start, args.synthetic_steps, seed=args.seed, crash_step=crash
            )
            stream = ListStream([(None, v) for v in values])
            source = StreamSource({(topics.prices, 0): stream}, batch_records=batch)
        else:
            source = file_source(
                args.prices_file,
                args.events_file,
                prices_topic=topics.prices,
                events_topic=topics.account_events,
                batch_records=batch,
            )
        source.seek(service.state.offsets)
        sink = FileSink(args.out_dir) if args.out_dir is not None else MemorySink()
        if args.snapshot_dir is not None:
            journal = FileJournal(args.snapshot_dir / "journal.jsonl")
    snapshots = None
    if args.snapshot_dir is not None:
        snapshots = Snapshotter(
            args.snapshot_dir,
            every_s=args.snapshot_interval,
            every_ticks=args.snapshot_every_ticks,
            keep=args.snapshots_keep,
        )
    metrics = ServiceMetrics(log_every_s=args.status_every, log=log)
    if args.metrics_port is not None:
        log(f"metrics on http://127.0.0.1:{metrics.serve(args.metrics_port)}/metrics")
    stop_requested = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop_requested.set())
    if started is not None:
        started(service)
    status = 0
    try:
        result = drive(
            service,
            source,
            sink,
            journal=journal,
            snapshots=snapshots,
            metrics=metrics,
            stop=lambda: stop_requested.is_set() or (stop is not None and stop()),
            max_ticks=args.max_ticks,
            exit_when_idle=args.exit_when_idle,
        )
    except kafka_adapter.AssignmentChanged as exc:
        sink.flush()
        if snapshots is not None:
            snapshots.write(service, {"journal_position": journal.position if journal else 0})
        log(f"error: {exc}")
        result, status = RunResult(stopped_by="assignment_changed"), EXIT_ASSIGNMENT_CHANGED
    finally:
        metrics.close()
        for part in (source, sink, journal):
            if part is not None:
                part.close()
    liquidated = metrics.counter("accounts_liquidated_total")
    money = Decimal(1).scaleb(-service.book.instruments.money_decimals)
    fund_row = service.book.row_of(profile.fund_account_id)
    log(
        f"stopped ({result.stopped_by}): {result.ticks} ticks ({result.replayed} replayed),"
        f" {result.records:,} records, {result.outputs:,} outputs, {liquidated:,.0f} accounts"
        f" liquidated; fund balance {int(service.book.balance[fund_row]) * money}"
    )
    if snapshots is not None and snapshots.written:
        log(f"snapshot {snapshots.written[-1]}")
    return service, result, status


def run(args: argparse.Namespace) -> int:
    try:
        return serve(args)[2]
    except (ProfileError, SnapshotError) as exc:
        raise Rejected(RejectReason.INVALID_INPUT, str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.service.serve_cli ...` (the benchmark runs the service this way)."""
    parser = argparse.ArgumentParser(prog="clearing serve", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except (Rejected, ProfileError, FixedPointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
