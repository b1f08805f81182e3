"""scripts/kafka.sh's cluster id, without a broker: never an id the storage tool would read
as an option, and a saved id of the wrong shape is replaced."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka.sh"
ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}")


def _cluster_id_function() -> str:
    text = SCRIPT.read_text()
    match = re.search(r"^cluster_id\(\) \{\n.*?^\}\n", text, re.S | re.M)
    assert match, "cluster_id() not found in scripts/kafka.sh"
    return match.group(0)


def _bash(script: str) -> str:
    return subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout


def test_cluster_ids_never_start_with_a_dash(tmp_path: Path) -> None:
    # 1 in 64 random ids starts with '-': 320 draws would meet about 5.
    file = tmp_path / "cluster.id"
    loop = 'for i in $(seq 320); do rm -f "$CLUSTER_ID_FILE"; cluster_id; done'
    drawn = _bash(f'{_cluster_id_function()}\nCLUSTER_ID_FILE="{file}"\n{loop}\n').split()
    assert len(drawn) == 320 and len(set(drawn)) == 320
    assert all(ID.fullmatch(i) for i in drawn)


def test_a_bad_saved_cluster_id_is_replaced_and_a_good_one_kept(tmp_path: Path) -> None:
    file = tmp_path / "cluster.id"
    run = f'{_cluster_id_function()}\nCLUSTER_ID_FILE="{file}"\ncluster_id\n'
    file.write_text("-AbCdEfGhIjKlMnOpQrStU")
    replaced = _bash(run).strip()
    assert ID.fullmatch(replaced) and file.read_text() == replaced
    assert _bash(run).strip() == replaced


def test_fresh_start_forgets_the_cluster_id() -> None:
    text = SCRIPT.read_text()
    fresh = text[text.index('say "fresh start') :][:300]
    assert 'rm -f "$CLUSTER_ID_FILE"' in fresh
