"""`clearing`'s conventions: --version, --json on every command (one document on stdout that
parses, with the schema of docs/cli.md), the exit statuses of engine.cli.exit_codes, and one
line instead of a traceback for every expected failure."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.cli.exit_codes import EXIT_INPUT, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE
from engine.cli.main import COMMANDS, main
from engine.waterfall.profile import PROFILES_DIR
from tests.cli.test_cli import risk_args
from tests.cli.test_demo import test_stress_file_scenario_reverse_along_a_direction as _two
from tests.cli.test_liquidate_cli import _inputs
from tests.settlement.example import write_example_files

ENVELOPE = {"command", "ok", "exit_code", "engine_version"}


def _json(capsys: pytest.CaptureFixture[str], argv: list[str], status: int) -> dict[str, Any]:
    capsys.readouterr()
    assert main(argv) == status
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # stdout is exactly one JSON document
    assert set(doc) >= ENVELOPE and doc["exit_code"] == status and doc["ok"] == (status == 0)
    assert doc["engine_version"] == engine.__version__
    return doc


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    assert engine.__version__ == version("clearing-engine")
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"clearing {engine.__version__}"


def test_risk_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(capsys, [*risk_args(tmp_path / "out"), "--json"], EXIT_OK)
    result = doc["result"]
    assert result["customers"] == 20 and result["positions"] == 23
    assert sum(result["by_status"].values()) == 20
    assert set(result["seconds"]) == {"load", "risk", "write"}
    assert all(Path(p).is_file() for p in result["files"])
    assert isinstance(result["total_equity"], str)  # exact decimal text


def test_liquidate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _inputs(tmp_path)
    argv = ["--json", "liquidate", "--insurance-fund", "8750", "--out", str(tmp_path / "out")]
    for name, path in files.items():
        argv += [f"--{name}", str(path)]
    result = _json(capsys, argv, EXIT_OK)["result"]
    assert result["accounts_liquidated"] >= 1
    assert set(result["fund"]) == {
        "balance_before",
        "balance_after",
        "equity_before",
        "equity_after",
    }
    assert result["fund"]["balance_before"] == "8750.00000000"


def test_settle_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = write_example_files(tmp_path / "in")
    argv = ["settle", "--json", "--date", "2025-10-11", "--out", str(tmp_path / "out")]
    for name in ("instruments", "accounts", "positions", "prices", "funding", "fees"):
        argv += [f"--{name}", str(d / f"{name}.{'json' if name == 'instruments' else 'csv'}")]
    result = _json(capsys, argv, EXIT_OK)["result"]
    assert result["date"] == "2025-10-11" and all(result["checks"].values())
    assert "snapshot.arrow" in result["files"]


def test_serve_and_inspect_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snap = tmp_path / "snap"
    argv = ["serve", "--json", "--synthetic-accounts", "300", "--synthetic-steps", "6"]
    argv += ["--snapshot-dir", str(snap), "--out-dir", str(tmp_path / "out")]
    result = _json(capsys, argv, EXIT_OK)["result"]
    assert result["stopped_by"] == "end_of_input" and result["ticks"] == 6
    path = sorted(snap.glob("*.arrow"))[-1]
    result = _json(capsys, ["inspect", str(path), "--json"], EXIT_OK)["result"]
    assert result["written_by"] == "clearing serve (shard '0')" and result["tick"] == 6
    assert result["lines"][1] == "written by   clearing serve (shard '0')"


def test_stress_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _two(tmp_path)  # writes two.json
    argv = ["stress", str(tmp_path / "two.json"), "--out", str(tmp_path / "fwd"), "--json"]
    result = _json(capsys, argv, EXIT_OK)["result"]
    assert result == json.loads((tmp_path / "fwd" / "summary.json").read_text())


def test_every_command_has_json_and_help_on_every_option() -> None:
    from engine.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in COMMANDS:
        child = sub.choices[command.name]  # type: ignore[index]
        flags = {s for a in child._actions for s in a.option_strings}
        assert "--json" in flags, command.name
        for action in child._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{command.name} {action.option_strings}"


def test_usage_error_json(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(capsys, ["risk", "--json", "--nope"], EXIT_USAGE)
    assert doc["command"] == "risk" and doc["error"]["kind"] == "usage"


def test_rejected_input_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*risk_args(tmp_path, marks=tmp_path / "none.csv"), "--json"]
    doc = _json(capsys, argv, EXIT_INPUT)
    assert doc["error"]["kind"] == "rejected_input" and "none.csv" in doc["error"]["message"]


def test_unreachable_broker_fails_fast(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    doc = _json(capsys, ["serve", "--json", "--bootstrap-servers", "127.0.0.1:1"], EXIT_RUNTIME)
    assert time.monotonic() - started < 10
    assert doc["error"]["reason"] == "unavailable"
    assert "cannot reach the Kafka broker" in doc["error"]["message"]


def test_unknown_direction_leaves_no_output_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = [
        "stress",
        "2025-10-11",
        "--reverse",
        "--direction",
        "BTCUSDT=-1,FOO=1",
        "--out",
        str(out),
    ]
    assert main(argv) == EXIT_INPUT
    assert "'FOO' is not a market of the scenario" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("command", ["serve", "settle", "liquidate"])
def test_unknown_profile_lists_the_shipped_ones(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--profile", "nosuch"]) == EXIT_USAGE
    err = capsys.readouterr().err
    shipped = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
    assert len(shipped) >= 3 and "binance-like" in shipped
    assert "'nosuch'" in err and f"shipped profiles: {', '.join(shipped)}" in err


@pytest.mark.parametrize("command", ["risk", "stress", "demo", "settle"])
def test_an_out_that_is_a_file_says_so(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "taken"
    file.write_text("x")
    argv = [command, "--out", str(file), *(["2025-10-11"] if command == "stress" else [])]
    assert main(argv) == EXIT_USAGE
    assert f"{file} is an existing file, not a directory" in capsys.readouterr().err


def test_serve_module_entry_point(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli.serve", "--bootstrap-servers", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == EXIT_RUNTIME
    assert "Traceback" not in done.stderr and done.stderr.startswith("error: ")
