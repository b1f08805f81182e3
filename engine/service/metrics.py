"""Counters and latency histograms in the Prometheus text format, and a one-line status log.

`ServiceMetrics.serve(port)` answers GET /metrics on 127.0.0.1 from a daemon thread
(http.server; port 0 picks a free port, see `.port`). The service thread updates the
figures under a lock; a scrape renders them under the same lock. Nothing here feeds back
into the service's state: timings and clocks stay outside the core.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        i = 0
        while i < len(self.buckets) and value > self.buckets[i]:
            i += 1
        self.counts[i] += 1
        self.total += value
        self.count += 1

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (inf past the last bucket)."""
        if self.count == 0:
            return 0.0
        rank, seen = q * self.count, 0
        for bound, n in zip((*self.buckets, float("inf")), self.counts, strict=True):
            seen += n
            if seen >= rank:
                return bound
        return float("inf")

    def render(self, name: str, help_text: str) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            cumulative += n
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {self.total}")
        lines.append(f"{name}_count {self.count}")
        return lines


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + body + "}"


class ServiceMetrics:
    COUNTERS = {
        "ticks_total": "ticks processed",
        "records_total": "input records consumed",
        "account_events_total": "account events applied",
        "prices_total": "price messages accepted or held",
        "prices_held_total": "price messages held by the band",
        "rejects_total": "input records dead-lettered, by reason",
        "outputs_total": "output records published, by topic",
        "waterfalls_total": "ticks that ran the liquidation waterfall",
        "accounts_liquidated_total": "accounts liquidated",
        "full_sweeps_total": "ticks that swept every account",
    }
    HISTOGRAMS = {
        "tick_seconds": "time of one tick: apply, sweep, waterfall, publish",
        "sweep_seconds": "time of the sweep within a tick",
        "waterfall_seconds": "time of the waterfall within a tick",
    }

    def __init__(
        self,
        *,
        log_every_s: float = 5.0,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lock = threading.Lock()
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.histograms = {name: Histogram() for name in self.HISTOGRAMS}
        self.lag: dict[str, int] = {}
        self.gauges: dict[str, float] = {}
        self.log_every_s = log_every_s
        self.log = log if log is not None else _stderr
        self.clock = clock
        self._last_log = clock()
        self._last_log_ticks = 0.0
        self._last_log_records = 0.0
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    def inc(self, name: str, value: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        self.counters[key] = self.counters.get(key, 0) + value

    def counter(self, name: str, **labels: str) -> float:
        return self.counters.get((name, tuple(sorted(labels.items()))), 0)

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
                self.histograms["waterfall_seconds"].observe(stats.waterfall_s)
            if stats.full_sweep:
                self.inc("full_sweeps_total")
            self.histograms["tick_seconds"].observe(seconds)
            self.histograms["sweep_seconds"].observe(stats.sweep_s)
            self.gauges["swept_accounts_last"] = stats.swept_accounts

    def observe_lag(self, lag: Mapping[str, int]) -> None:
        with self.lock:
            self.lag = dict(lag)

    def maybe_log(self, now: float, service: Service) -> None:
        if now - self._last_log < self.log_every_s:
            return
        with self.lock:
            ticks, records = self.counter("ticks_total"), self.counter("records_total")
            seconds = max(now - self._last_log, 1e-9)
            rejects = sum(v for (k, _), v in self.counters.items() if k == "rejects_total")
            tick_p99 = self.histograms["tick_seconds"].quantile(0.99)
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
            lines: list[str] = []
            for name, help_text in self.COUNTERS.items():
                lines += [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} counter"]
                found = [(lb, v) for (n, lb), v in sorted(self.counters.items()) if n == name]
                for labels, value in found or [((), 0)]:
                    lines.append(f"{PREFIX}{name}{_labels(dict(labels))} {value:g}")
            for name, help_text in self.HISTOGRAMS.items():
                lines += self.histograms[name].render(PREFIX + name, help_text)
            lines += [
                f"# HELP {PREFIX}consumer_lag records behind the log end, per partition",
                f"# TYPE {PREFIX}consumer_lag gauge",
            ]
            for partition, lag in sorted(self.lag.items()):
                lines.append(f"{PREFIX}consumer_lag{_labels({'partition': partition})} {lag}")
            for name, value in sorted(self.gauges.items()):
                lines += [f"# TYPE {PREFIX}{name} gauge", f"{PREFIX}{name} {value:g}"]
            return "\n".join(lines) + "\n"

    def serve(self, port: int = 0, host: str = "127.0.0.1") -> int:
        """Start the /metrics endpoint in a daemon thread; returns the port."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
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


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
