#!/usr/bin/env bash
# The main job on the embedded default, no broker and no input files: set up, then replay
# the 2025-10-11 liquidation day on a seeded synthetic book (500,000 accounts, about a minute
# on 2 cores), with the reverse stress test. Extra arguments go to `clearing demo`
# (--full for 1.6M accounts, --accounts N, --out DIR, --no-reverse).
# `bash scripts/demo.sh --risk-sample` instead runs `clearing risk` on the 20-account sample.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/setup.sh
if [ "${1:-}" = "--risk-sample" ]; then
  shift
  DATA=engine/data
  exec .venv/bin/clearing risk --instruments "$DATA/instruments.json" \
    --accounts "$DATA/sample_accounts.csv" --positions "$DATA/sample_positions.csv" \
    --marks "$DATA/sample_marks.csv" --out out/demo-risk "$@"
fi
exec .venv/bin/clearing demo "$@"
