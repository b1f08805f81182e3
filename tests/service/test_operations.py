"""Running the service: Prometheus exposition (parsed by prometheus_client's own parser),
/healthz and /readyz, real timings from the clock the app passes in, counters that carry
over a restore, logging, settings from flags / environment / TOML, and Kafka TLS / SASL
settings reaching every client of both backends."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.book.errors import Rejected
from engine.cli import serve as serve_cli
from engine.cli.logs import setup_logging
from engine.service import kafka_common, kafka_python, kafka_security
from engine.service.app import ServeConfig, serve
from engine.service.metrics import ServiceMetrics


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _serve_synthetic(tmp_path: Path, steps: int, **options: Any) -> tuple[Any, list[str]]:
    lines: list[str] = []
    config = ServeConfig(
        synthetic_accounts=2000,
        synthetic_steps=steps,
        out_dir=tmp_path / "out",
        snapshot_dir=tmp_path / "snap",
        **options,
    )
    return serve(config, log=lines.append), lines


def test_exposition_parses_with_help_type_and_real_timings(tmp_path: Path) -> None:
    scraped: list[tuple[int, str]] = []
    ready: list[int] = []
    seen: dict[str, Any] = {}

    def stop() -> bool:
        port = seen["port"]
        ready.append(_get(f"http://127.0.0.1:{port}/readyz")[0])
        scraped.append(_get(f"http://127.0.0.1:{port}/metrics"))
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        return False

    lines: list[str] = []
    config = ServeConfig(synthetic_accounts=2000, synthetic_steps=40, metrics_port=0)
    original = ServiceMetrics.serve

    def remember(self: ServiceMetrics, port: int = 0, host: str = "127.0.0.1") -> int:
        seen["port"] = original(self, port, host)
        return seen["port"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ServiceMetrics, "serve", remember)
        serve(config, log=lines.append, stop=stop)
    assert any("metrics on http://127.0.0.1:" in line for line in lines)
    assert ready[0] == 503 and ready[-1] == 200  # ready once caught up with its input
    status, text = scraped[-1]
    assert status == 200
    families = _families(text)  # raises on anything malformed
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            family = next(f for f in families.values() if name.startswith(f.name))
            assert family.documentation, f"no HELP for {name}"
            assert family.type != "unknown", f"no TYPE for {name}"
    assert "process_resident_memory_bytes" in families or "process_cpu_seconds" in families
    build = families["clearing_build_info"].samples[0]
    assert build.labels["version"] and build.labels["backend"] == "embedded"
    samples = {s.name: s.value for f in families.values() for s in f.samples if not s.labels}
    assert samples["clearing_ticks_total"] == 40
    # The app gives the service a clock: the sweep and waterfall take time, not 0.0.
    assert samples["clearing_sweep_seconds_sum"] > 0
    assert samples["clearing_waterfall_seconds_count"] > 0
    assert samples["clearing_waterfall_seconds_sum"] > 0
    assert samples["clearing_ready"] == 1


def test_the_metrics_bind_address(tmp_path: Path) -> None:
    metrics = ServiceMetrics()
    port = metrics.serve(0, "127.0.0.2" if sys.platform == "linux" else "127.0.0.1")
    try:
        host = "127.0.0.2" if sys.platform == "linux" else "127.0.0.1"
        assert _get(f"http://{host}:{port}/readyz")[0] == 503
        metrics.set_restored()
        metrics.observe_lag({"prices-0": 0})
        assert _get(f"http://{host}:{port}/readyz")[0] == 200
        assert _get(f"http://{host}:{port}/nope")[0] == 404
    finally:
        metrics.close()


def test_counters_carry_over_a_restore_and_max_ticks_counts_new_ticks(tmp_path: Path) -> None:
    (service, first, _), _ = _serve_synthetic(tmp_path, 30, max_ticks=10)
    assert first.ticks == 10 and service.state.tick == 10
    (service, second, _), lines = _serve_synthetic(tmp_path, 30, max_ticks=5)
    assert second.ticks == 5 and service.state.tick == 15  # from the restored tick 10
    assert any("from tick 10" in line and "5 new ticks" in line for line in lines)
    path = sorted((tmp_path / "snap").glob("*.arrow"))[-1]
    from engine.service.app import snapshot_extra

    counters = {n: v for n, labels, v in snapshot_extra(path)["metrics_counters"] if not labels}
    assert counters["ticks_total"] == 15  # not 5: the counters did not reset on restore


def test_logging_has_levels_and_timestamps(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", as_json=True)
    logging.getLogger("engine.service").info("hello %s", "there")
    logging.getLogger("engine.service").debug("hidden")
    record = json.loads(capsys.readouterr().err.strip())
    assert record["level"] == "INFO" and record["message"] == "hello there"
    assert record["time"].endswith("Z") and record["logger"] == "engine.service"
    setup_logging("WARNING", as_json=False)
    logging.getLogger("engine.service").warning("careful")
    line = capsys.readouterr().err.strip()
    assert " WARNING " in line and line.endswith("engine.service: careful") and line[:4].isdigit()
    setup_logging("INFO", as_json=False)


# ----- settings ---------------------------------------------------------------------------
def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_settings_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "serve.toml"
    toml.write_text(
        'shard = "file"\nlinger-ms = 7\nfund = "100"\nfull_sweep = true\nseed = 3\n'
        '[kafka]\n"security.protocol" = "SSL"\n"ssl.ca.location" = "/file/ca.pem"\n'
    )
    env = {
        "CLEARING_CONFIG": str(toml),
        "CLEARING_SHARD": "env",
        "CLEARING_LINGER_MS": "9",
        "CLEARING_KAFKA_SSL_CA_LOCATION": "/env/ca.pem",
    }
    config = serve_cli.config_of(_args("--shard", "flag", "-X", "sasl.mechanism=PLAIN"), env)
    assert config.service.shard == "flag"  # flag over env
    assert config.linger_ms == 9  # env over file
    assert config.fund == "100" and not config.service.incremental and config.seed == 3  # file
    assert config.synthetic_accounts == ServeConfig().synthetic_accounts  # default
    assert config.kafka_settings == {
        "security.protocol": "SSL",
        "ssl.ca.location": "/env/ca.pem",
        "sasl.mechanism": "PLAIN",
    }
    assert serve_cli.config_of(_args(), {}) == ServeConfig()


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    toml = tmp_path / "serve.toml"
    toml.write_text("nope = 1\n")
    with pytest.raises(Rejected, match="unknown setting 'nope'"):
        serve_cli.config_of(_args("--config", str(toml)), {})
    with pytest.raises(Rejected, match="CLEARING_LINGER_MS"):
        serve_cli.config_of(_args(), {"CLEARING_LINGER_MS": "soon"})
    with pytest.raises(Rejected, match="CLEARING_FULL_SWEEP"):
        serve_cli.config_of(_args(), {"CLEARING_FULL_SWEEP": "maybe"})


# ----- Kafka security settings reach every client -----------------------------------------
SECURITY = {
    "security.protocol": "SASL_SSL",
    "ssl.ca.location": "/etc/ca.pem",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "clearing",
    "sasl.password": "secret",
}
KAFKA_PYTHON = {
    "security_protocol": "SASL_SSL",
    "ssl_cafile": "/etc/ca.pem",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_plain_username": "clearing",
    "sasl_plain_password": "secret",
}


class _Stop(Exception):
    pass


def test_security_settings_reach_the_kafka_python_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[tuple[str, dict[str, Any]]] = []

    def fake(kind: str) -> Any:
        def make(*args: Any, **kwargs: Any) -> Any:
            made.append((kind, kwargs))
            raise _Stop

        return make

    for name in ("KafkaConsumer", "KafkaProducer"):
        monkeypatch.setattr(kafka_python, name, fake(name))
    monkeypatch.setattr(kafka_common, "KafkaAdminClient", fake("KafkaAdminClient"))
    attempts = [
        lambda: kafka_common.make_source("kafka-python", "b:1", "p", "e", security=SECURITY),
        lambda: kafka_common.make_sink("kafka-python", "b:1", security=SECURITY),
        lambda: kafka_common.create_topics("b:1", {"t": 1}, SECURITY),
        lambda: kafka_python.KafkaJournal(
            "b:1", "j", "0", security=kafka_security.for_kafka_python(SECURITY)
        ),
    ]
    for attempt in attempts:
        with pytest.raises(_Stop):
            attempt()
    assert [k for k, _ in made] == [
        "KafkaConsumer",
        "KafkaProducer",
        "KafkaAdminClient",
        "KafkaProducer",
    ]
    for _, kwargs in made:
        assert kwargs.items() >= KAFKA_PYTHON.items()


def test_security_settings_reach_the_confluent_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []

    def fake(config: dict[str, Any]) -> Any:
        made.append(config)
        raise _Stop

    module = types.SimpleNamespace(Consumer=fake, Producer=fake)
    monkeypatch.setitem(sys.modules, "confluent_kafka", module)
    for attempt in (
        lambda: kafka_common.make_source("confluent", "b:1", "p", "e", security=SECURITY),
        lambda: kafka_common.make_sink("confluent", "b:1", security=SECURITY),
    ):
        with pytest.raises(_Stop):
            attempt()
    assert len(made) == 2
    for config in made:
        assert config.items() >= SECURITY.items() and config["bootstrap.servers"] == "b:1"


def test_only_security_settings_pass_and_secrets_are_redacted() -> None:
    with pytest.raises(Rejected, match="only security.protocol, ssl.\\* and sasl.\\*"):
        kafka_security.check({"acks": "0"})
    with pytest.raises(Rejected, match="use --backend confluent"):
        kafka_security.for_kafka_python({"sasl.oauthbearer.config": "x"})
    assert kafka_security.redacted(SECURITY)["sasl.password"] == "***"
    assert kafka_security.for_kafka_python({"ssl.endpoint.identification.algorithm": "none"}) == {
        "ssl_check_hostname": False
    }
