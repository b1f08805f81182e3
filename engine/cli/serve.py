"""`clearing serve`: the streaming service. (Over 400 lines: one table of every option with
its help, and their precedence rules, kept together.)

With --bootstrap-servers it reads `prices` and `account-events` from Kafka and publishes
`liquidations`, `adl`, `margin-calls`, `insurance` and `dead-letter`. Without a broker it
runs the same loop from JSON-lines files (--prices-file / --events-file), or, with neither,
from a built-in synthetic book and price path with a crash in the middle, so the service
can be tried on a fresh machine. Outputs then go to JSON-lines files in --out-dir.

On start it restores the newest valid snapshot in --snapshot-dir (reporting corrupt ones
it skipped), seeks to its offsets and replays the journaled ticks after it; it writes
snapshots every --snapshot-interval seconds or --snapshot-every-ticks ticks, and on a clean
shutdown (SIGINT / SIGTERM, end of input, --max-ticks, --exit-when-idle).

Settings come from four places; the first that gives one wins:
1. the command line (`--snapshot-dir /var/lib/clearing`);
2. environment variables, CLEARING_ and the option's name in capitals with underscores
   (`CLEARING_SNAPSHOT_DIR=/var/lib/clearing`, `CLEARING_FULL_SWEEP=true`);
3. a TOML file, `--config FILE` or CLEARING_CONFIG (`snapshot_dir = "/var/lib/clearing"`;
   dashes or underscores);
4. the defaults shown by `clearing serve --help`.
Kafka's TLS / SASL settings (engine.service.kafka_security) by their librdkafka names:
`-X security.protocol=SASL_SSL`, CLEARING_KAFKA_SASL_USERNAME (underscores become dots), or
a `[kafka]` table in the TOML file; they reach every Kafka client of both backends.

This module only turns those into an engine.service.app.ServeConfig and calls
engine.service.app.serve, which assembles and runs the service.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.book.errors import Rejected
from engine.book.fixed import RATE_SCALE, FixedPointError, parse_decimal, to_rate
from engine.book.reasons import RejectReason
from engine.cli.exit_codes import EXIT_USAGE
from engine.cli.handling import Parser, UsageError, add_json_argument, execute, fail
from engine.cli.inputs import out_directory, profile_argument
from engine.cli.logs import setup_logging
from engine.cli.outcome import Outcome
from engine.io.snapshot import SnapshotError
from engine.service.app import DEFAULT_INSTRUMENTS, ServeConfig, serve
from engine.service.kafka_batches import LINGER_MS_DEFAULT
from engine.service.kafka_common import BACKENDS
from engine.service.kafka_python import GROUP_SETTLE_S_DEFAULT
from engine.service.metrics import HOST_DEFAULT
from engine.service.ports import Topics
from engine.service.snapshots import KEEP_DEFAULT
from engine.service.state import BAND_CONFIRM_DEFAULT, ServiceConfig
from engine.waterfall.profile import ProfileError

ENV_PREFIX = "CLEARING_"
KAFKA_ENV_PREFIX = "CLEARING_KAFKA_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Setting:
    """One option of `clearing serve`: its flag, default, type and help."""

    dest: str
    default: Any
    help: str
    kind: Callable[[str], Any] | None = str  # None: a switch (store_true)
    metavar: str | None = None
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()

    def convert(self, value: Any, where: str) -> Any:
        """A value from the environment or the file as the option's type."""
        try:
            if self.kind is None:
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in _TRUE | _FALSE:
                    return text in _TRUE
                raise ValueError("expected true or false")
            converted = self.kind(str(value)) if not isinstance(value, bool) else None
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            raise Rejected(RejectReason.INVALID_INPUT, f"{where}: {value!r}: {exc}") from None
        if converted is None or (self.choices and converted not in self.choices):
            allowed = f"; one of {', '.join(self.choices)}" if self.choices else ""
            raise Rejected(RejectReason.INVALID_INPUT, f"{where}: {value!r} is not valid{allowed}")
        return converted


def _topic_settings() -> list[Setting]:
    return [
        Setting(f"{name}_topic", None, f"topic name (default: prefix + {default!r})")
        for name, default in vars(Topics()).items()
    ]


GROUPS: dict[str, list[Setting]] = {
    "Kafka (leave --bootstrap-servers out to run embedded)": [
        Setting("bootstrap_servers", None, "HOST:PORT[,HOST:PORT...] of the Kafka brokers"),
        Setting("backend", "kafka-python", "Kafka client library", choices=BACKENDS),
        Setting("topic_prefix", "", "prefix of every topic name"),
        *_topic_settings(),
        Setting(
            "create_topics",
            None,
            "create missing topics, account-events with this many partitions",
            int,
            "PARTITIONS",
        ),
        Setting("group", None, "consumer group sharing the account-events partitions"),
        Setting("shard", "0", "this instance's name in output ids, the journal and snapshots"),
        Setting("linger_ms", LINGER_MS_DEFAULT, "producer linger before a batch is sent", int),
        Setting(
            "group_settle",
            GROUP_SETTLE_S_DEFAULT,
            "seconds the group's assignment must stay unchanged before consuming",
            float,
        ),
    ],
    "engine": [
        Setting(
            "profile",
            "binance-like",
            "waterfall rules: a shipped name or a TOML file",
            profile_argument,
        ),
        Setting("instruments", DEFAULT_INSTRUMENTS, "instrument table, JSON or TOML", Path, "FILE"),
        Setting("fund", "0", "insurance fund deposit on a fresh start (money, decimal)"),
        Setting("assets", None, "asset table of an asset-liability profile", Path, "FILE"),
        Setting("balances", None, "asset-liability opening balances (fresh start)", Path, "FILE"),
        Setting("liabilities", None, "asset-liability opening debts (fresh start)", Path, "FILE"),
        Setting("asset_prices", None, "asset-liability opening prices (fresh start)", Path, "FILE"),
        Setting("band", "0.1", "price band around the last mark, a fraction (0: off)"),
        Setting(
            "band_confirm",
            BAND_CONFIRM_DEFAULT,
            "prices outside the band in a row that move the band",
            int,
        ),
        Setting("batch_records", None, "records per partition per tick", int),
        Setting(
            "max_events_per_tick",
            None,
            "account-event records per tick at most, the rest wait (prices never do)",
            int,
        ),
        Setting("full_sweep", False, "sweep every account every tick", None),
        Setting(
            "no_fill_checks",
            False,
            "accept fills without a mark, outside the band or below initial margin (replays)",
            None,
        ),
    ],
    "snapshots": [
        Setting("snapshot_dir", None, "snapshots (and the embedded journal) here", out_directory),
        Setting("snapshot_interval", 30.0, "seconds between snapshots (0: off)", float),
        Setting("snapshot_every_ticks", 0, "ticks between snapshots (0: off)", int),
        Setting("snapshots_keep", KEEP_DEFAULT, "snapshots kept on disk", int),
        Setting(
            "ledger_dir",
            None,
            "stream the ledger here as Parquet segments at each snapshot"
            " (default: SNAPSHOT_DIR/ledger)",
            out_directory,
        ),
        Setting(
            "ledger_in_memory",
            False,
            "keep the whole ledger in memory, no segments (memory grows with the run)",
            None,
        ),
    ],
    "operation": [
        Setting("metrics_port", None, "serve /metrics, /healthz, /readyz here (0: any free)", int),
        Setting(
            "metrics_host",
            HOST_DEFAULT,
            "address the metrics endpoint binds to (0.0.0.0: every interface)",
        ),
        Setting("status_every", 5.0, "seconds between status log lines", float),
        Setting(
            "max_ticks",
            None,
            "stop after this many new ticks in this run (counted after a restored snapshot"
            " and the journal's replay)",
            int,
        ),
        Setting("exit_when_idle", False, "stop when nothing is waiting on any input", None),
        Setting("log_level", "INFO", "log level", str.upper, choices=LOG_LEVELS),
        Setting("log_json", False, "log as JSON lines (time, level, logger, message)", None),
    ],
    "embedded (no broker)": [
        Setting("prices_file", None, "JSON lines of price messages", Path, "FILE"),
        Setting("events_file", None, "JSON lines of account events", Path, "FILE"),
        Setting("out_dir", None, "output topics as JSON-lines files here", out_directory),
        Setting("synthetic_accounts", 10_000, "synthetic book size", int),
        Setting("synthetic_steps", 300, "synthetic price path length (ticks)", int),
        Setting("seed", 7, "synthetic book and path seed", int),
    ],
}
SETTINGS = {s.dest: s for group in GROUPS.values() for s in group}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"TOML file of settings (env {ENV_PREFIX}CONFIG); flags > env > file > defaults",
    )
    parser.add_argument(
        "-X",
        "--kafka-option",
        action="append",
        metavar="NAME=VALUE",
        default=None,
        help="Kafka TLS / SASL setting by its librdkafka name, e.g. security.protocol=SSL,"
        " ssl.ca.location=ca.pem, sasl.mechanism=PLAIN (repeatable; env"
        f" {KAFKA_ENV_PREFIX}SASL_USERNAME=...; a [kafka] table in --config)",
    )
    for title, settings in GROUPS.items():
        group = parser.add_argument_group(title)
        for s in settings:
            shown = "" if s.default is None else f" (default {s.default})"
            options: dict[str, Any] = {
                "dest": s.dest,
                "default": argparse.SUPPRESS,
                "help": s.help + shown + f" [env {s.env}]",
            }
            if s.kind is None:
                group.add_argument(s.flag, action="store_true", **options)
            else:
                group.add_argument(
                    s.flag, type=s.kind, metavar=s.metavar, choices=s.choices, **options
                )


# ----- settings: flags > environment > file > defaults -----------------------------------
def read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(settings, Kafka settings) of a TOML file."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise Rejected(RejectReason.INVALID_INPUT, f"--config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise Rejected(RejectReason.INVALID_INPUT, f"--config {path}: {exc}") from None
    kafka = data.pop("kafka", {})
    if not isinstance(kafka, dict):
        raise Rejected(RejectReason.INVALID_INPUT, f"--config {path}: [kafka] must be a table")
    values = {}
    for key, value in data.items():
        dest = key.replace("-", "_")
        if dest not in SETTINGS:
            raise Rejected(
                RejectReason.INVALID_INPUT,
                f"--config {path}: unknown setting {key!r} (the names of `clearing serve --help`)",
            )
        values[dest] = SETTINGS[dest].convert(value, f"--config {path}: {key}")
    return values, {str(k): str(v) for k, v in kafka.items()}


def settings_of(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every setting's value and the Kafka client settings, by precedence."""
    environ = os.environ if environ is None else environ
    values = {dest: s.default for dest, s in SETTINGS.items()}
    kafka: dict[str, str] = {}
    config = getattr(args, "config", None) or environ.get(ENV_PREFIX + "CONFIG")
    if config:
        from_file, kafka_file = read_config_file(Path(config))
        values.update(from_file)
        kafka.update(kafka_file)
    for dest, s in SETTINGS.items():
        if s.env in environ:
            values[dest] = s.convert(environ[s.env], s.env)
    for name, value in environ.items():
        if name.startswith(KAFKA_ENV_PREFIX):
            kafka[name[len(KAFKA_ENV_PREFIX) :].lower().replace("_", ".")] = value
    for dest in SETTINGS:
        if dest in vars(args):
            values[dest] = getattr(args, dest)
    for item in getattr(args, "kafka_option", None) or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise Rejected(RejectReason.INVALID_INPUT, f"-X: expected NAME=VALUE, got {item!r}")
        kafka[name.strip()] = value
    return values, kafka


def topics_of(values: Mapping[str, Any]) -> Topics:
    base = Topics.with_prefix(values["topic_prefix"])
    chosen = {name: values.get(f"{name}_topic") or getattr(base, name) for name in vars(base)}
    return Topics(**chosen)


def _band_rate(text: str) -> int:
    rate = to_rate(parse_decimal(text, "--band"), "--band")
    if not 0 <= rate <= 100 * RATE_SCALE:
        raise FixedPointError(f"--band: expected 0 to 100, got {text}")
    return rate


def config_of(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> ServeConfig:
    """The command line, environment and config file as the service's configuration."""
    return config_from(*settings_of(args, environ))


def config_from(v: Mapping[str, Any], kafka: Mapping[str, str]) -> ServeConfig:
    service = ServiceConfig(
        topics=topics_of(v),
        shard=v["shard"],
        band_rate=_band_rate(str(v["band"])),
        band_confirm=v["band_confirm"],
        incremental=not v["full_sweep"],
        fill_checks=not v["no_fill_checks"],
    )
    return ServeConfig(
        service=service,
        bootstrap_servers=v["bootstrap_servers"],
        backend=v["backend"],
        create_topics=v["create_topics"],
        group=v["group"],
        linger_ms=v["linger_ms"],
        group_settle_s=v["group_settle"],
        kafka_settings=dict(kafka),
        profile=v["profile"],
        instruments=v["instruments"],
        fund=str(v["fund"]),
        assets=v["assets"],
        balances=v["balances"],
        liabilities=v["liabilities"],
        asset_prices=v["asset_prices"],
        batch_records=v["batch_records"],
        snapshot_dir=v["snapshot_dir"],
        snapshot_interval_s=v["snapshot_interval"],
        snapshot_every_ticks=v["snapshot_every_ticks"],
        snapshots_keep=v["snapshots_keep"],
        ledger_dir=v["ledger_dir"],
        ledger_in_memory=v["ledger_in_memory"],
        max_events_per_tick=v["max_events_per_tick"],
        metrics_port=v["metrics_port"],
        metrics_host=v["metrics_host"],
        status_every_s=v["status_every"],
        max_ticks=v["max_ticks"],
        exit_when_idle=v["exit_when_idle"],
        prices_file=v["prices_file"],
        events_file=v["events_file"],
        out_dir=v["out_dir"],
        synthetic_accounts=v["synthetic_accounts"],
        synthetic_steps=v["synthetic_steps"],
        seed=v["seed"],
    )


def run(args: argparse.Namespace) -> Outcome:
    values, kafka = settings_of(args)
    config = config_from(values, kafka)
    setup_logging(values["log_level"], values["log_json"])
    try:
        service, result, status = serve(config)
    except (ProfileError, SnapshotError) as exc:
        raise Rejected(RejectReason.INVALID_INPUT, str(exc)) from None
    return Outcome(
        {
            "stopped_by": result.stopped_by,
            "tick": service.state.tick,
            "ticks": result.ticks,
            "replayed": result.replayed,
            "records": result.records,
            "outputs": result.outputs,
        },
        status,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.cli.serve ...` (the benchmark runs the service this way): the same
    as `clearing serve ...`."""
    parser = Parser(prog="clearing serve", description=__doc__.splitlines()[0])
    add_arguments(parser)
    add_json_argument(parser, False)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return fail("serve", EXIT_USAGE, "usage", str(exc), "--json" in argv)
    return execute("serve", run, args)


if __name__ == "__main__":
    sys.exit(main())
