# Shared helpers of the service integration tests: real squeeze-coordinator and
# squeeze-worker processes on loopback (ports picked by the kernel), a private
# temp dir, and cleanup of exactly the processes started here.
#
# Usage (from a test script):  source lib.sh COORDINATOR WORKER SQUEEZE
set -euo pipefail

COORD_BIN=$1
WORKER_BIN=$2
SQUEEZE_BIN=$3
SHARED_DIR=${SQUEEZE_SHARED_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)/shared}
MODEL_DIR=$SHARED_DIR/models/stories260K/hf
T=$(mktemp -d "${TMPDIR:-/tmp}/squeeze-it.XXXXXX")
PIDS=()

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
fail() {
  log "FAIL: $*"
  for f in "$T"/*.log; do [ -f "$f" ] && { echo "---- $f" >&2; tail -n 30 "$f" >&2; }; done
  exit 1
}
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

require_model() {
  if [ ! -f "$MODEL_DIR/config.json" ]; then
    echo "SKIP: needs the stories260K model at $MODEL_DIR (../shared)"
    exit 77
  fi
}

# start_coordinator DATA_DIR [flags...]; sets COORD_PID and PORT (reuses $PORT
# when already set, so a restart listens where clients expect it).
start_coordinator() {
  local data=$1
  shift
  rm -f "$T/port"
  "$COORD_BIN" --listen "127.0.0.1:${PORT:-0}" --data-dir "$data" --port-file "$T/port" "$@" \
    >>"$T/coordinator.log" 2>&1 &
  COORD_PID=$!
  PIDS+=("$COORD_PID")
  for _ in $(seq 1 100); do
    [ -s "$T/port" ] && break
    kill -0 "$COORD_PID" 2>/dev/null || fail "coordinator exited at start"
    sleep 0.1
  done
  [ -s "$T/port" ] || fail "coordinator did not start"
  PORT=$(cat "$T/port")
  export SQUEEZE_SERVER=127.0.0.1:$PORT
}

# start_worker NAME [flags...]; sets WORKER_PID.
start_worker() {
  local name=$1
  shift
  "$WORKER_BIN" --coordinator "127.0.0.1:$PORT" --work-dir "$T/$name" --threads 1 --lease-wait-ms 1000 "$@" \
    >>"$T/$name.log" 2>&1 &
  WORKER_PID=$!
  PIDS+=("$WORKER_PID")
}

sq() { "$SQUEEZE_BIN" "$@"; }

# json_field NAME < json  (flat string or number fields of our compact JSON)
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}[,}].*/\1/p" | head -n 1; }

job_state() { sq get "$1" --json | json_field state; }

# wait_for TIMEOUT_S DESCRIPTION COMMAND...: polls until COMMAND succeeds.
wait_for() {
  local timeout=$1 what=$2
  shift 2
  local end=$(($(date +%s) + timeout))
  until "$@"; do
    [ "$(date +%s)" -lt "$end" ] || fail "timed out after ${timeout}s waiting for $what"
    sleep 0.1
  done
}
state_is() { [ "$(job_state "$1")" = "$2" ]; }
# True once the job's newest event has seq >= N (progress events count).
seq_at_least() { [ "$(sq get "$1" --json | json_field last_seq)" -ge "$2" ]; }

write_recipe() {
  cat >"$1" <<'YAML'
sparsity_stage:
  sparsity_modifiers:
    MagnitudePruningModifier:
      sparsity: 0.5
      targets: ["Linear"]
quant_stage:
  quant_modifiers:
    QuantizationModifier:
      targets: ["Linear"]
      scheme: W8A16
YAML
}
