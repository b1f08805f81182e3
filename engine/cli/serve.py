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

This module only parses the command line into an engine.service.app.ServeConfig and calls
engine.service.app.serve, which assembles and runs the service.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE, FixedPointError, parse_decimal, to_rate
from engine.book.reasons import RejectReason
from engine.io.snapshot import SnapshotError
from engine.service.app import DEFAULT_INSTRUMENTS, ServeConfig, serve
from engine.service.kafka_batches import LINGER_MS_DEFAULT
from engine.service.kafka_common import BACKENDS
from engine.service.kafka_python import GROUP_SETTLE_S_DEFAULT
from engine.service.ports import Topics
from engine.service.snapshots import KEEP_DEFAULT
from engine.service.state import BAND_CONFIRM_DEFAULT, ServiceConfig
from engine.waterfall.profile import ProfileError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kafka = parser.add_argument_group("Kafka (leave --bootstrap-servers out to run embedded)")
    kafka.add_argument("--bootstrap-servers", help="e.g. 127.0.0.1:19092")
    kafka.add_argument("--backend", choices=BACKENDS, default="kafka-python")
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
    kafka.add_argument("--linger-ms", type=int, default=LINGER_MS_DEFAULT)
    kafka.add_argument(
        "--group-settle",
        type=float,
        default=GROUP_SETTLE_S_DEFAULT,
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
    engine.add_argument(
        "--no-fill-checks",
        action="store_true",
        help="accept fills without a mark, outside the band or below initial margin (replays)",
    )
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


def _band_rate(text: str) -> int:
    rate = to_rate(parse_decimal(text, "--band"), "--band")
    if not 0 <= rate <= 100 * RATE_SCALE:
        raise FixedPointError(f"--band: expected 0 to 100, got {text}")
    return rate


def config_of(args: argparse.Namespace) -> ServeConfig:
    """The parsed command line as the service's configuration."""
    service = ServiceConfig(
        topics=topics_of(args),
        shard=args.shard,
        band_rate=_band_rate(args.band),
        band_confirm=args.band_confirm,
        incremental=not args.full_sweep,
        fill_checks=not args.no_fill_checks,
    )
    return ServeConfig(
        service=service,
        bootstrap_servers=args.bootstrap_servers,
        backend=args.backend,
        create_topics=args.create_topics,
        group=args.group,
        linger_ms=args.linger_ms,
        group_settle_s=args.group_settle,
        profile=args.profile,
        instruments=args.instruments,
        fund=args.fund,
        batch_records=args.batch_records,
        snapshot_dir=args.snapshot_dir,
        snapshot_interval_s=args.snapshot_interval,
        snapshot_every_ticks=args.snapshot_every_ticks,
        snapshots_keep=args.snapshots_keep,
        metrics_port=args.metrics_port,
        status_every_s=args.status_every,
        max_ticks=args.max_ticks,
        exit_when_idle=args.exit_when_idle,
        prices_file=args.prices_file,
        events_file=args.events_file,
        out_dir=args.out_dir,
        synthetic_accounts=args.synthetic_accounts,
        synthetic_steps=args.synthetic_steps,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    try:
        return serve(config_of(args))[2]
    except (ProfileError, SnapshotError) as exc:
        raise Rejected(RejectReason.INVALID_INPUT, str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.cli.serve ...` (the benchmark runs the service this way)."""
    parser = argparse.ArgumentParser(prog="clearing serve", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except (Rejected, ProfileError, FixedPointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
