#!/usr/bin/env bash
# Create .venv (if missing) and install the engine with its native core and dev tools, at the
# exact versions of constraints.txt (build tools included). Idempotent and quiet: every
# README command runs it first; it does nothing when the inputs of the install (pyproject,
# setup.py, constraints, the C and Cython sources) have not changed since the last one, and
# shows pip's output only when the install fails.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python 3.11 or newer is required (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.clearing-setup
inputs="$(cat pyproject.toml setup.py constraints.txt csrc/* engine/_native/*.pyx \
  engine/_native/*.pxd bench/*.pyx bench/csrc/* 2>/dev/null | cksum) ${CLEARING_DEBUG:-} ${CLEARING_MARCH:-}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ] && .venv/bin/python -c 'import engine._native._kernels' 2>/dev/null; then
  exit 0
fi
export PIP_CONSTRAINT="$REPO/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { .venv/bin/python -m pip install -q --upgrade pip &&
       .venv/bin/python -m pip install -q -e ".[dev]"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: the install failed (output above)" >&2
  exit 1
fi
echo "$inputs" >"$stamp"
