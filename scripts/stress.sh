#!/usr/bin/env bash
# make stress: the long reliability runs (bounded, loopback only; not in ctest).
#   1. crash consistency with more jobs and more kills than the ctest run
#      (SEED=... replays a schedule; JOBS / KILLS / WORKERS override);
#   2. the coordinator under load (thousands of submits, hundreds of WatchJob
#      streams, workers joining and leaving) with its RSS sampled over time;
# (`make stress` also runs scripts/stress-fuzz.sh, as its other prerequisite
# `stress-fuzz`; it is not called again here.)
#   usage: scripts/stress.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BINS=("$BUILD/server/coordinator/squeeze-coordinator" "$BUILD/workers/worker/squeeze-worker" "$BUILD/client/squeeze")
REL=$ROOT/tests/integration/reliability

echo "== crash consistency (long)"
JOBS=${JOBS:-24} KILLS=${KILLS:-30} WORKERS=${WORKERS:-4} PACE_MS=${PACE_MS:-300} bash "$REL/crash_consistency_test.sh" "${BINS[@]}"
echo
echo "== load with coordinator RSS sampling"
bash "$REL/load_test.sh" "${BINS[@]}" "$BUILD/tests/bench/service/service_bench"
