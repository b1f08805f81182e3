#!/usr/bin/env bash
# Set up and run the whole test suite, Kafka tests included (the real broker is started by
# scripts/kafka.sh and stopped again if this script started it). Extra arguments go to pytest:
#   bash scripts/test.sh -m "not kafka and not slow"    # the fast set, in seconds
# A marker expression that leaves the Kafka tests out ("not kafka") starts no broker.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/setup.sh
needs_kafka=1
prev=""
for arg in "$@"; do
  expr=""
  if [ "$prev" = "-m" ]; then expr="$arg"; fi
  case "$arg" in -m=*|-m?*) expr="${arg#-m}"; expr="${expr#=}" ;; esac
  if [ -n "$expr" ] && [[ "$expr" =~ not[[:space:]]+kafka ]]; then needs_kafka=0; fi
  prev="$arg"
done
started_kafka=0
if [ "$needs_kafka" = 1 ] && ! bash scripts/kafka.sh status >/dev/null 2>&1; then
  bash scripts/kafka.sh start --fresh
  started_kafka=1
fi
cleanup() { if [ "$started_kafka" = 1 ]; then bash scripts/kafka.sh stop || true; fi; }
trap cleanup EXIT
.venv/bin/python -m pytest "$@"
