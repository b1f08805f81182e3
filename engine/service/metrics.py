"""The service's metrics (prometheus_client), its /metrics, /healthz and /readyz endpoint,
and the one-line status log.

Every metric has HELP and TYPE; the registry is the instance's own (several services in one
process, as in the tests, do not collide) and holds the process metrics (CPU, memory, open
files), the Python platform's, and `clearing_build_info` (engine version, Python, backend).
Counters carry over a restore: the driver stores them in each snapshot
(`counters()`), and `restore_counters` starts the next process from them, so
`clearing_ticks_total` counts the ticks of the book's whole history, not of one process
(histograms and gauges start afresh).

`serve(port, host)` answers from a daemon thread (http.server):
- GET /metrics: the Prometheus text format;
- GET /healthz: 200 while the process serves;
- GET /readyz: 200 once the service is restored and has caught up with its input (a first
  loop with no lag after the journal replay), 503 before.
Nothing here feeds back into the service's state: timings and clocks stay outside the core.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from engine._version import __version__
from engine.service.state import TickStats
from engine.service.tick import Service

# Seconds: 100 us to 10 s, about 2.5x apart.
LATENCY_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
PREFIX = "clearing_"
HOST_DEFAULT = "127.0.0.1"
logger = logging.getLogger("engine.service")


class ServiceMetrics:
    # name (without PREFIX) -> (help, label names)
    COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
        "ticks_total": ("ticks processed", ()),
        "records_total": ("input records consumed", ()),
        "account_events_total": ("account events applied", ()),
        "prices_total": ("price messages accepted or held", ()),
        "prices_held_total": ("price messages held by the band", ()),
        "rejects_total": ("input records dead-lettered, by reason", ("reason",)),
        "outputs_total": ("output records published, by topic", ("topic",)),
        "waterfalls_total": ("ticks that ran the liquidation waterfall", ()),
        "accounts_liquidated_total": ("accounts liquidated", ()),
        "full_sweeps_total": ("ticks that swept every account", ()),
    }
    HISTOGRAMS = {
        "tick_seconds": "time of one tick: apply, sweep, waterfall, publish (seconds)",
        "sweep_seconds": "time of the sweep within a tick (seconds)",
        "waterfall_seconds": "time of the waterfall within a tick that ran it (seconds)",
    }

    def __init__(
        self,
        *,
        log_every_s: float = 5.0,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        build: Mapping[str, str] | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        info = Info(PREFIX + "build", "the engine's build", registry=self.registry)
        info.info(
            {"version": __version__, "python": platform.python_version(), **dict(build or {})}
        )
        self._counters = {
            name: Counter(PREFIX + name, text, labels, registry=self.registry)
            for name, (text, labels) in self.COUNTERS.items()
        }
        self._histograms = {
            name: Histogram(PREFIX + name, text, buckets=LATENCY_BUCKETS_S, registry=self.registry)
            for name, text in self.HISTOGRAMS.items()
        }
        self._lag = Gauge(
            PREFIX + "consumer_lag",
            "records behind the log end, per partition",
            ("partition",),
            registry=self.registry,
        )
        self._swept = Gauge(
            PREFIX + "swept_accounts_last",
            "accounts the last tick's sweep looked at",
            registry=self.registry,
        )
        self._ready = Gauge(
            PREFIX + "ready", "1 once restored and caught up (/readyz)", registry=self.registry
        )
        # Plain mirrors of the counters, for counters() and the status log.
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.lag: dict[str, int] = {}
        self.restored = False
        self.caught_up = False
        self.log_every_s = log_every_s
        self.log = log if log is not None else logger.info
        self.clock = clock
        self._last_log = clock()
        self._last_log_ticks = 0.0
        self._last_log_records = 0.0
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # ----- counters ------------------------------------------------------------------------
    def inc(self, name: str, value: float = 1, **labels: str) -> None:
        if value == 0 and not labels:
            return
        key = (name, tuple(sorted(labels.items())))
        self.values[key] = self.values.get(key, 0) + value
        counter = self._counters[name]
        (counter.labels(**labels) if labels else counter).inc(value)

    def counter(self, name: str, **labels: str) -> float:
        return self.values.get((name, tuple(sorted(labels.items()))), 0)

    def counters(self) -> list[list[Any]]:
        """Every counter's value, JSON-able: [[name, {labels}, value], ...] (for snapshots)."""
        with self.lock:
            return [[n, dict(lb), v] for (n, lb), v in sorted(self.values.items())]

    def restore_counters(self, saved: Any) -> None:
        """Start from the counters a snapshot stored (unknown names are skipped)."""
        if not isinstance(saved, list):
            return
        with self.lock:
            for item in saved:
                if not (isinstance(item, list) and len(item) == 3):
                    continue
                name, labels, value = item
                if name in self._counters and isinstance(labels, dict) and value > 0:
                    # Counts stay ints (a snapshot after a restart writes the same bytes).
                    value = value if isinstance(value, int) else float(value)
                    self.inc(name, value, **{str(k): str(v) for k, v in labels.items()})

    # ----- readiness -----------------------------------------------------------------------
    def set_restored(self) -> None:
        self.restored = True
        self._update_ready()

    def _update_ready(self) -> None:
        self._ready.set(1 if self.ready else 0)

    @property
    def ready(self) -> bool:
        return self.restored and self.caught_up

    # ----- the driver's hooks (engine.service.driver.Metrics) -------------------------------
    def observe_tick(self, stats: TickStats, seconds: float) -> None:
        with self.lock:
            self.inc("ticks_total")
            self.inc("records_total", stats.records)
            self.inc("account_events_total", stats.account_events)
            self.inc("prices_total", stats.prices)
            self.inc("prices_held_total", stats.prices_held)
            for reason, n in stats.rejects.items():
                self.inc("rejects_total", n, reason=reason)
            for topic, n in stats.outputs.items():
                self.inc("outputs_total", n, topic=topic)
            if stats.waterfall:
                self.inc("waterfalls_total")
                self.inc("accounts_liquidated_total", stats.accounts_liquidated)
                self._histograms["waterfall_seconds"].observe(stats.waterfall_s)
            if stats.full_sweep:
                self.inc("full_sweeps_total")
            self._histograms["tick_seconds"].observe(seconds)
            self._histograms["sweep_seconds"].observe(stats.sweep_s)
            self._swept.set(stats.swept_accounts)

    def observe_lag(self, lag: Mapping[str, int]) -> None:
        with self.lock:
            for partition in set(self.lag) - set(lag):
                self._lag.remove(partition)
            self.lag = dict(lag)
            for partition, value in lag.items():
                self._lag.labels(partition=partition).set(value)
            if not self.caught_up and sum(lag.values()) == 0:
                self.caught_up = True
            self._update_ready()

    def quantile(self, name: str, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile of a histogram (0 when empty)."""
        buckets = [
            (float(s.labels["le"]), s.value)
            for metric in self._histograms[name].collect()
            for s in metric.samples
            if s.name.endswith("_bucket")
        ]
        count = buckets[-1][1] if buckets else 0
        if count == 0:
            return 0.0
        for bound, cumulative in buckets:
            if cumulative >= q * count:
                return bound
        return float("inf")

    def maybe_log(self, now: float, service: Service) -> None:
        if now - self._last_log < self.log_every_s:
            return
        with self.lock:
            ticks, records = self.counter("ticks_total"), self.counter("records_total")
            seconds = max(now - self._last_log, 1e-9)
            rejects = sum(v for (k, _), v in self.values.items() if k == "rejects_total")
            tick_p99 = self.quantile("tick_seconds", 0.99)
            line = (
                f"tick {service.state.tick} | {(ticks - self._last_log_ticks) / seconds:.1f}"
                f" ticks/s {(records - self._last_log_records) / seconds:,.0f} records/s |"
                f" accounts {service.book.n_accounts:,} | liquidated"
                f" {self.counter('accounts_liquidated_total'):,.0f} | rejects {rejects:,.0f} |"
                f" lag {sum(self.lag.values()):,} | tick p99 <= {tick_p99 * 1000:g} ms"
            )
            self._last_log, self._last_log_ticks, self._last_log_records = now, ticks, records
        self.log(line)

    # ----- exposition ---------------------------------------------------------------------
    def render(self) -> str:
        with self.lock:
            return generate_latest(self.registry).decode()

    def serve(self, port: int = 0, host: str = HOST_DEFAULT) -> int:
        """Start /metrics, /healthz and /readyz in a daemon thread; returns the port."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                if path in ("/metrics", "/"):
                    self._answer(200, metrics.render(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._answer(200, "ok\n")
                elif path == "/readyz":
                    if metrics.ready:
                        self._answer(200, "ready\n")
                    else:
                        why = "restoring" if not metrics.restored else "catching up"
                        self._answer(503, f"not ready: {why}\n")
                else:
                    self.send_error(404)

            def _answer(self, status: int, text: str, kind: str = "text/plain") -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
