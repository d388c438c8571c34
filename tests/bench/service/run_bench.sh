#!/usr/bin/env bash
# Load benchmark of the coordinator on loopback (bounded; not run by ctest):
#   tests/bench/service/run_bench.sh BUILD_DIR [SUBMITS] [THREADS] [WATCHERS]
# Starts a coordinator in a temp dir (no worker: jobs stay queued, so the
# figures are the API and the durable store, not the engine) and runs
# service_bench against it.
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/squeeze-bench.XXXXXX")
"$BUILD/server/coordinator/squeeze-coordinator" --listen 127.0.0.1:0 --data-dir "$DIR/data" \
  --port-file "$DIR/port" 2>"$DIR/coordinator.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do [ -s "$DIR/port" ] && break; sleep 0.1; done
ADDR=127.0.0.1:$(cat "$DIR/port")
# No worker runs here, so the model is never loaded: any uploaded blob serves
# as the jobs' model reference.
printf 'squeeze service benchmark: model reference blob\n' >"$DIR/model.bin"
MODEL=$("$BUILD/client/squeeze" --server "$ADDR" upload "$DIR/model.bin")
"$BUILD/tests/bench/service/service_bench" "$ADDR" "$MODEL" "${2:-2000}" "${3:-8}" "${4:-200}"
