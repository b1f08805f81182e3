"""The service as `clearing serve` runs it: `serve(config)` assembles the parts and drives them.
(Over 400 lines: ServeConfig and the assembly of every adapter, the snapshots and the ledger
stream read best in one place, in the order `serve` uses them.)

With `bootstrap_servers` it reads prices and account events from Kafka and publishes
liquidations, ADL, margin calls, insurance and dead letters there. Without a broker it runs
the same loop from JSON-lines files (`prices_file` / `events_file`), or, with neither, from
a built-in synthetic book and price path with a crash in the middle, so the service can be
tried on a fresh machine; outputs then go to JSON-lines files in `out_dir` (or memory).

With an asset-liability profile (`[model] kind = "asset_liability"`) the book is an asset
book (engine.service.asset_service: `assets` and the opening files; its own snapshot format)
and each tick the asset-liability tick's; the driver, adapters and journal are the same.

On start it restores the newest valid snapshot in `snapshot_dir` (logging the corrupt ones
it skipped) or opens a fresh book with the insurance fund, seeks the source to the
snapshot's offsets and replays the journaled ticks after it; it writes snapshots every
`snapshot_interval_s` seconds or `snapshot_every_ticks` ticks, and on a clean shutdown
(SIGINT / SIGTERM, end of input, `max_ticks`, `exit_when_idle`, `stop()`). With a snapshot
directory the ledger streams out to Parquet segments at each snapshot (`ledger_dir`, by
default `snapshot_dir`/ledger; engine.io.ledger_segments) and a restore continues the
stream from the snapshot's mark, so memory holds only the postings since the last snapshot.

Time is an input to the core: the service is given a monotonic clock here, so the sweep and
waterfall timings it reports are real. A broker that cannot be reached fails within
CONNECT_TIMEOUT_S with `Unavailable`, before any client is made. Logs go through `logging`
(logger "engine.service"); `clearing serve` sets the format and level.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.book.book import Book
from engine.book.errors import Rejected
from engine.book.fixed import parse_decimal, to_units
from engine.book.instruments import InstrumentTable
from engine.book.reasons import RejectReason
from engine.io.ledger_segments import LedgerSegments
from engine.service import kafka_common, kafka_security
from engine.service.asset_service import AssetSnapshotter, fund_balance, open_asset_service
from engine.service.driver import RunResult, run
from engine.service.files_adapter import (
    FileJournal,
    FileSink,
    ListStream,
    MemorySink,
    StreamSource,
    file_source,
    synthetic_price_path,
)
from engine.service.kafka_batches import LINGER_MS_DEFAULT
from engine.service.kafka_python import GROUP_SETTLE_S_DEFAULT, AssignmentChanged, KafkaJournal
from engine.service.metrics import HOST_DEFAULT, ServiceMetrics
from engine.service.snapshots import KEEP_DEFAULT, Snapshotter, restore
from engine.service.state import ServiceConfig
from engine.service.tick import Service
from engine.stress.synthetic import synthetic_book, synthetic_marks
from engine.waterfall.fund import open_fund
from engine.waterfall.profile import PROFILES_DIR, Profile, ProfileError

DEFAULT_INSTRUMENTS = Path(__file__).resolve().parent.parent / "data" / "instruments.json"
EXIT_ASSIGNMENT_CHANGED = 4  # engine.cli.exit_codes lists every exit status
CONNECT_TIMEOUT_S = 5.0
logger = logging.getLogger("engine.service")


class Unavailable(RuntimeError):
    """Something the service needs outside its input (the Kafka broker) cannot be reached."""


SYNTHETIC_INSTRUMENTS = 20
EMBEDDED_BATCH_RECORDS_DEFAULT = 1000


@dataclass(frozen=True)
class ServeConfig:
    """Everything `serve` needs; the fields are `clearing serve`'s options, and error
    messages about them name those options (`--fund`)."""

    service: ServiceConfig = ServiceConfig()  # topics, shard, band, sweep method
    # Kafka: None runs embedded (files, or the synthetic path).
    bootstrap_servers: str | None = None
    backend: str = "kafka-python"
    create_topics: int | None = None  # create missing topics, account-events with this many
    group: str | None = None  # consumer group sharing the account-events partitions
    linger_ms: int = LINGER_MS_DEFAULT
    group_settle_s: float = GROUP_SETTLE_S_DEFAULT
    # TLS / SASL settings by their librdkafka names (engine.service.kafka_security), passed to
    # every Kafka client, both backends.
    kafka_settings: dict[str, str] = field(default_factory=dict)
    # Engine: a shipped profile name or a TOML path; the fund's deposit on a fresh start
    # (decimal text, parsed only when a fresh book is opened).
    profile: str = "binance-like"
    instruments: Path = DEFAULT_INSTRUMENTS
    fund: str = "0"
    # An asset-liability profile's asset table, and its opening balances, debts and prices
    # (all three or none; engine.io.asset_liability_inputs).
    assets: Path | None = None
    balances: Path | None = None
    liabilities: Path | None = None
    asset_prices: Path | None = None
    batch_records: int | None = None  # records per partition per tick
    # Snapshots (and the embedded journal) in snapshot_dir; None: neither.
    snapshot_dir: Path | None = None
    snapshot_interval_s: float = 30.0  # 0: off
    snapshot_every_ticks: int = 0  # 0: off
    snapshots_keep: int = KEEP_DEFAULT
    # The ledger streamed to Parquet segments at each snapshot (engine.io.ledger_segments):
    # None puts them in `snapshot_dir`/ledger; `ledger_in_memory` keeps the whole ledger in
    # memory instead (no segments). Without a snapshot directory the ledger stays in memory.
    ledger_dir: Path | None = None
    ledger_in_memory: bool = False
    # Account-event records per tick at most (None: only batch_records bounds them); the rest
    # wait for the next tick, prices are never held back (engine.service.kafka_batches).
    max_events_per_tick: int | None = None
    # Operation.
    metrics_port: int | None = None  # Prometheus /metrics, /healthz, /readyz (0: any free)
    metrics_host: str = HOST_DEFAULT  # the address they bind to (0.0.0.0: every interface)
    status_every_s: float = 5.0
    max_ticks: int | None = None
    exit_when_idle: bool = False
    # Embedded (no broker).
    prices_file: Path | None = None
    events_file: Path | None = None
    out_dir: Path | None = None
    synthetic_accounts: int = 10_000
    synthetic_steps: int = 300
    seed: int = 7

    @property
    def ledger_directory(self) -> Path | None:
        """Where the ledger's segments go; None: the ledger stays in memory."""
        if self.ledger_in_memory or self.snapshot_dir is None:
            return None
        return self.ledger_dir if self.ledger_dir is not None else self.snapshot_dir / "ledger"

    @property
    def synthetic(self) -> bool:
        """No broker and no input files: the built-in synthetic book and price path."""
        return (
            self.bootstrap_servers is None and self.prices_file is None and self.events_file is None
        )


def load_profile(text: str) -> Profile:
    """A TOML path (or an existing file), else a shipped profile's name."""
    path = Path(text)
    if path.suffix == ".toml" or path.exists():
        return Profile.load(path)
    if not (PROFILES_DIR / f"{text}.toml").is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise ProfileError(
            f"--profile: no shipped profile {text!r} and no file {text}; shipped: {known}"
        )
    return Profile.shipped(text)


def fresh_book(config: ServeConfig, profile: Profile) -> Book:
    """An empty book on the instrument table (or the synthetic book), with the fund open."""
    if config.synthetic:
        n = config.synthetic_accounts
        book = synthetic_book(n, 3 * n, SYNTHETIC_INSTRUMENTS, seed=config.seed)
    else:
        book = Book(InstrumentTable.load(config.instruments), warning_rate=profile.warning_rate)
    money_step = book.instruments.money_step
    fund = to_units(parse_decimal(config.fund, "--fund"), money_step, "--fund")
    if fund < 0:
        raise Rejected(RejectReason.INVALID_AMOUNT, "--fund must not be negative")
    open_fund(book, profile, fund)
    return book


def snapshot_extra(path: Path) -> dict[str, Any]:
    """The metadata its writer stored in a snapshot (the schema only: no checksum check)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(str(path)) as source:
        schema = ipc.open_file(source).schema
    raw = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    extra = json.loads(raw.get("extra", "{}"))
    return extra if isinstance(extra, dict) else {}


def open_service(
    config: ServeConfig,
    profile: Profile,
    log: Callable[[str], None],
    metrics: ServiceMetrics | None = None,
    clock: Callable[[], float] = time.monotonic,
    ledger: LedgerSegments | None = None,
) -> Service:
    """The service as of the newest valid snapshot (its counters into `metrics`), or on a
    fresh book; `ledger` continues its stream from the snapshot's mark."""
    if profile.model == "asset_liability":
        al_service, path = open_asset_service(config, profile, log)
        if path is not None and metrics is not None:
            metrics.restore_counters(snapshot_extra(path).get("metrics_counters"))
        return al_service  # type: ignore[return-value]  # the driver's duck type
    service = None
    if config.snapshot_dir is not None:
        service, recovery = restore(config.snapshot_dir, profile, config.service, clock=clock)
        for reason in recovery.skipped:
            log(f"snapshot skipped: {reason}")
        if recovery.path is not None:
            log(f"restored {recovery.path} (tick {service.state.tick if service else '?'})")
            if metrics is not None:
                metrics.restore_counters(snapshot_extra(recovery.path).get("metrics_counters"))
        if ledger is not None and service is not None:
            ledger.start(service.book, recovery.ledger)
            log(f"ledger segments in {ledger.directory}, from posting {service.book.ledger.base}")
        elif service is not None and recovery.ledger is not None:
            # streamed before, in memory now: the postings still count on from the mark
            service.book.ledger.restart(int(recovery.ledger["postings"]))
    if service is None:
        service = Service(fresh_book(config, profile), profile, config.service, clock=clock)
        if ledger is not None:
            ledger.start(service.book, None)
    return service


def check_reachable(bootstrap: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Unavailable unless some bootstrap server accepts a TCP connection within timeout_s
    (the Kafka clients would otherwise retry for 30 s or more before saying anything)."""
    problems = []
    for server in (s.strip() for s in bootstrap.split(",") if s.strip()):
        host, sep, port = server.rpartition(":")
        if not sep or not port.isdigit():
            raise Rejected(
                RejectReason.INVALID_INPUT,
                f"--bootstrap-servers: expected HOST:PORT[,HOST:PORT...], got {server!r}",
            )
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return
        except OSError as exc:
            problems.append(f"{server}: {exc.strerror or exc}")
    raise Unavailable(
        f"cannot reach the Kafka broker ({'; '.join(problems) or 'no server given'});"
        " is it running, and are --bootstrap-servers (CLEARING_BOOTSTRAP_SERVERS) right?"
    )


def open_kafka(
    config: ServeConfig, service: Service, log: Callable[[str], None]
) -> tuple[Any, Any, Any]:
    """Source, sink and journal on the broker; the source seeks to the service's offsets."""
    assert config.bootstrap_servers is not None
    bootstrap = config.bootstrap_servers
    security = kafka_security.check(config.kafka_settings)
    if security:
        log(f"Kafka security settings: {kafka_security.redacted(security)}")
    check_reachable(bootstrap)
    try:
        return _kafka_clients(config, service, log, security)
    except Exception as exc:
        if type(exc).__module__.split(".")[0] in ("kafka", "confluent_kafka", "cimpl"):
            raise Unavailable(f"Kafka at {bootstrap}: {type(exc).__name__}: {exc}") from exc
        raise


def _kafka_clients(
    config: ServeConfig, service: Service, log: Callable[[str], None], security: dict[str, str]
) -> tuple[Any, Any, Any]:
    assert config.bootstrap_servers is not None
    bootstrap, topics, shard = config.bootstrap_servers, config.service.topics, config.service.shard
    if config.create_topics:
        partitions = {name: 1 for name in (topics.prices, *topics.outputs())}
        partitions[topics.account_events] = config.create_topics
        kafka_common.create_topics(bootstrap, partitions, security)
    kafka_common.create_topics(bootstrap, {topics.journal: 1}, security)
    options: dict[str, Any] = {"offsets": service.state.offsets, "group": config.group}
    if config.batch_records:
        options["batch_records"] = config.batch_records
    if config.max_events_per_tick is not None:
        options["max_events"] = config.max_events_per_tick
    options["settle_s"] = config.group_settle_s
    options["client_id"] = f"clearing-{shard}"
    source = kafka_common.make_source(
        config.backend,
        bootstrap,
        topics.prices,
        topics.account_events,
        security=security,
        **options,
    )
    if source.n_event_partitions > 1:
        service.partition_of_account = kafka_common.AccountPartitions(source.n_event_partitions)
    log(f"shard {shard}: account-events partitions {source.event_partitions()}")
    sink = kafka_common.make_sink(
        config.backend, bootstrap, linger_ms=config.linger_ms, security=security
    )
    journal = KafkaJournal(
        bootstrap, topics.journal, shard, security=kafka_security.for_kafka_python(security)
    )
    return source, sink, journal


def open_embedded(config: ServeConfig, service: Service) -> tuple[Any, Any, Any]:
    """Source (files or the synthetic path), sink (files or memory) and the file journal."""
    topics = config.service.topics
    source: Any
    if config.synthetic:
        book = service.book
        # One step of the path (a price per instrument) per tick unless told otherwise.
        batch = config.batch_records or len(book.instruments)
        crash = config.synthetic_steps // 2
        # From the seed's starting marks, not the book's (a restored book has moved on),
        # so a restart replays the same path.
        start = synthetic_marks(len(book.instruments), config.seed)
        values = synthetic_price_path(
            book.instruments, start, config.synthetic_steps, seed=config.seed, crash_step=crash
        )
        stream = ListStream([(None, v) for v in values])
        source = StreamSource(
            {(topics.prices, 0): stream}, batch_records=batch, prices_topic=topics.prices
        )
    else:
        source = file_source(
            config.prices_file,
            config.events_file,
            prices_topic=topics.prices,
            events_topic=topics.account_events,
            batch_records=config.batch_records or EMBEDDED_BATCH_RECORDS_DEFAULT,
            max_events=config.max_events_per_tick,
        )
    source.seek(service.state.offsets)
    sink = FileSink(config.out_dir) if config.out_dir is not None else MemorySink()
    journal = None
    if config.snapshot_dir is not None:
        journal = FileJournal(config.snapshot_dir / "journal.jsonl")
    return source, sink, journal


def serve(
    config: ServeConfig,
    *,
    stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] = logger.info,
    started: Callable[[Service], None] | None = None,
) -> tuple[Service, RunResult, int]:
    """Run the service until it stops; returns it, what the run did, and the exit status
    (0, or EXIT_ASSIGNMENT_CHANGED when the consumer group moved partitions)."""
    profile = load_profile(config.profile)
    metrics = ServiceMetrics(
        log_every_s=config.status_every_s,
        log=log,
        build={"backend": config.backend if config.bootstrap_servers else "embedded"},
    )
    if config.metrics_port is not None:
        port = metrics.serve(config.metrics_port, config.metrics_host)
        log(f"metrics on http://{config.metrics_host}:{port}/metrics (and /healthz, /readyz)")
    ledger = None
    if config.ledger_directory is not None and profile.model != "asset_liability":
        ledger = LedgerSegments(config.ledger_directory)
    try:
        service = open_service(config, profile, log, metrics, ledger=ledger)
        first_tick = service.state.tick
        if config.bootstrap_servers is not None:
            source, sink, journal = open_kafka(config, service, log)
        else:
            source, sink, journal = open_embedded(config, service)
    except BaseException:
        metrics.close()
        raise
    snapshots = None
    if config.snapshot_dir is not None:
        kind = AssetSnapshotter if profile.model == "asset_liability" else Snapshotter
        snapshots = kind(
            config.snapshot_dir,
            every_s=config.snapshot_interval_s,
            every_ticks=config.snapshot_every_ticks,
            keep=config.snapshots_keep,
            ledger=ledger,
        )
    metrics.set_restored()
    stop_requested = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop_requested.set())
    if started is not None:
        started(service)
    status = 0
    try:
        result = run(
            service,
            source,
            sink,
            journal=journal,
            snapshots=snapshots,
            metrics=metrics,
            stop=lambda: stop_requested.is_set() or (stop is not None and stop()),
            max_ticks=config.max_ticks,
            exit_when_idle=config.exit_when_idle,
        )
    except AssignmentChanged as exc:
        sink.flush()
        if snapshots is not None:
            snapshots.write(
                service,
                {
                    "journal_position": journal.position if journal else 0,
                    "metrics_counters": metrics.counters(),
                },
            )
        log(f"error: {exc}")
        result, status = RunResult(stopped_by="assignment_changed"), EXIT_ASSIGNMENT_CHANGED
    finally:
        metrics.close()
        for part in (source, sink, journal):
            if part is not None:
                part.close()
    liquidated = metrics.counter("accounts_liquidated_total")
    log(
        f"stopped ({result.stopped_by}) at tick {service.state.tick}: from tick {first_tick},"
        f" {result.replayed} ticks replayed from the journal, then {result.ticks} new ticks"
        " (what --max-ticks counts),"
        f" {result.records:,} records, {result.outputs:,} outputs, {liquidated:,.0f} accounts"
        f" liquidated; fund balance {fund_balance(service.book, profile)}"
    )
    if snapshots is not None and snapshots.written:
        log(f"snapshot {snapshots.written[-1]}")
    return service, result, status
