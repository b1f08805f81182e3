"""Packaging: dependencies as ranges in pyproject with every one pinned in constraints.txt,
the sdist carries what the native build needs (the full install is scripts/check_sdist.sh,
run by CI), and `scripts/test.sh -m "not kafka"` starts no broker."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_runtime_dependencies_are_ranges_pinned_in_constraints() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    for requirement in project["dependencies"]:
        assert "==" not in requirement and "<" in requirement, requirement
        assert _name(requirement) in pins, f"{requirement} has no pin in constraints.txt"
    for requirement in project["optional-dependencies"]["dev"]:
        assert _name(requirement) in pins, f"{requirement} has no pin in constraints.txt"
    assert "prometheus-client" in pins and "cython" in pins and "setuptools" in pins
    assert project["license"] and project["classifiers"]


@pytest.mark.slow
def test_the_sdist_carries_the_native_sources(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(tmp_path), "."],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    needed = {
        "engine/_native/_kernels.pyx",
        "engine/_native/kernels.pxd",
        "csrc/fixed_point.h",
        "csrc/kernel_assert.h",
        "engine/data/profiles/binance-like.toml",
        "constraints.txt",
        "setup.py",
    }
    needed |= {f"csrc/{p.name}" for p in (REPO / "csrc").iterdir()}
    assert needed <= names, sorted(needed - names)


def _fake_repo(tmp_path: Path) -> Path:
    """scripts/test.sh beside stand-ins that record what it runs."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "test.sh", tmp_path / "scripts" / "test.sh")
    (tmp_path / "scripts" / "setup.sh").write_text("exit 0\n")
    (tmp_path / "scripts" / "kafka.sh").write_text(
        'echo "kafka $*" >> "$(dirname "$0")/../log"\nexit 1\n'
    )
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\necho "pytest $*" >> "$(dirname "$0")/../../log"\n')
    python.chmod(0o755)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (["-m", "not kafka"], False),
        (["-q", "-m", "not kafka and not slow"], False),
        (["-m=not kafka"], False),
        (["-q"], True),
        (["-m", "kafka"], True),
    ],
)
def test_test_sh_starts_a_broker_only_for_kafka_tests(
    tmp_path: Path, args: list[str], starts: bool
) -> None:
    repo = _fake_repo(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_PORT"}
    done = subprocess.run(
        ["bash", str(repo / "scripts" / "test.sh"), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    log = (repo / "log").read_text()
    assert done.returncode == (1 if starts else 0) or "kafka start" in log
    assert ("kafka start" in log) == starts, log
    if not starts:
        assert "pytest" in log and "kafka" not in log.replace("not kafka", "")
