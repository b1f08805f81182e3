"""Pytest fixtures for a real single-node Kafka broker (see scripts/kafka.sh).

A plain module, not a conftest: import the fixture where it is needed, e.g. in
tests/conftest.py::

    from tests.kafka_fixtures import kafka_bootstrap  # noqa: F401

The broker listens on 127.0.0.1:$KAFKA_PORT (default 19092). If a broker is
already running (``scripts/kafka.sh start`` by hand or by CI), it is reused and
left running; otherwise the fixture starts one and stops it at session end.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "scripts" / "kafka.sh"

# First use may fetch the jars from Maven Central, then the JVM must start.
START_TIMEOUT_S = float(os.environ.get("KAFKA_FIXTURE_START_TIMEOUT", "600"))


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KAFKA_SH), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _bootstrap_from(stdout: str) -> str:
    for line in stdout.splitlines():
        if line.startswith("bootstrap="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError(f"scripts/kafka.sh printed no bootstrap= line:\n{stdout}")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers ("127.0.0.1:PORT") of a running real Kafka broker."""
    status = _run("status", timeout=30)
    already_running = status.returncode == 0
    if already_running:
        bootstrap = _bootstrap_from(status.stdout)
    else:
        started = _run("start", timeout=START_TIMEOUT_S)
        if started.returncode != 0:
            pytest.fail(
                "scripts/kafka.sh start failed "
                f"(rc={started.returncode}):\n{started.stdout}\n{started.stderr}",
                pytrace=False,
            )
        bootstrap = _bootstrap_from(started.stdout)
    try:
        yield bootstrap
    finally:
        if not already_running:
            _run("stop", timeout=120)
