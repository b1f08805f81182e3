#!/usr/bin/env bash
# Build the sdist and install it into a fresh virtual environment, outside the checkout, with
# the pinned versions; then run the installed `clearing` on the shipped sample book. Fails
# if the sdist lacks anything the build needs (C sources and headers, .pyx / .pxd, data).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python -m build --sdist --no-isolation -o "$tmp/dist" . >"$tmp/build.log" 2>&1 \
  || { cat "$tmp/build.log"; exit 1; }
sdist="$(ls "$tmp"/dist/*.tar.gz)"
python3 -m venv "$tmp/venv"
export PIP_CONSTRAINT="$REPO/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
"$tmp/venv/bin/python" -m pip install -q "$sdist" >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log"; exit 1; }
cd "$tmp"  # not the checkout: the installed package, not the source tree, is imported
"$tmp/venv/bin/clearing" --version
"$tmp/venv/bin/python" - <<'PY'
import subprocess, sys
from pathlib import Path
import engine, engine._native._kernels  # the compiled core
data = Path(engine.__file__).parent / "data"
assert "site-packages" in engine.__file__, engine.__file__
args = [f"--{n}={data / f}" for n, f in (("instruments", "instruments.json"),
        ("accounts", "sample_accounts.csv"), ("positions", "sample_positions.csv"),
        ("marks", "sample_marks.csv"))]
done = subprocess.run([str(Path(sys.executable).parent / "clearing"), "risk", *args,
                       "--out", "risk-out", "--json"], capture_output=True, text=True)
assert done.returncode == 0, done.stderr
print("sdist installs and runs: clearing", engine.__version__)
PY
