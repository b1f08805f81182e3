#!/usr/bin/env bash
# The main job on the embedded sample book: set up, then the margin report of 20 accounts
# (a few healthy, margin calls, liquidations, a bankrupt one, empty accounts) at fixed marks.
# Extra arguments go to `clearing risk` (e.g. --warning-level 0.5).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/setup.sh
DATA=engine/data
OUT=out/demo-risk
.venv/bin/clearing risk \
  --instruments "$DATA/instruments.json" \
  --accounts "$DATA/sample_accounts.csv" \
  --positions "$DATA/sample_positions.csv" \
  --marks "$DATA/sample_marks.csv" \
  --out "$OUT" "$@"
echo
echo "outputs:"
echo "  $REPO/$OUT/accounts.parquet   (one row per account: equity, margins, status)"
echo "  $REPO/$OUT/positions.parquet  (one row per position: PnL, margins, liquidation price)"
echo "each decimal column also as exact text in <name>_exact; to look:"
echo "  .venv/bin/python -c \"import polars as pl; print(pl.read_parquet('$OUT/accounts.parquet'))\""
