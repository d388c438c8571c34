#!/usr/bin/env bash
# make demo: a coordinator and a worker with embedded defaults in a temp dir, a
# real recipe (deploy/examples/) on a real model (../shared/models/stories260K),
# live progress, the report, then both processes stopped. Without that model
# (SQUEEZE_SHARED_DIR without models/stories260K) it first trains its own
# small teacher on Debian's fortunes corpus (scripts/demo-teacher.sh).
#   usage: scripts/demo.sh BUILD_DIR
set -euo pipefail

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
COORD=$BUILD/server/coordinator/squeeze-coordinator
WORKER=$BUILD/workers/worker/squeeze-worker
SQUEEZE=$BUILD/client/squeeze
SHARED=${SQUEEZE_SHARED_DIR:-$ROOT/../shared}
MODEL=$SHARED/models/stories260K/hf
EVAL_TEXT=$SHARED/data/tinystories/valid.txt
CALIB_TEXT=$SHARED/data/tinystories/train.txt
RECIPE=${DEMO_RECIPE:-$ROOT/deploy/examples/gptq-w4a16.yaml}

for b in "$COORD" "$WORKER" "$SQUEEZE"; do
  if [ ! -x "$b" ]; then
    echo "demo: $b is missing; build first (make build)" >&2
    exit 2
  fi
done
DIR=$(mktemp -d "${TMPDIR:-/tmp}/squeeze-demo.XXXXXX")
COORD_PID="" WORKER_PID=""
stop() {
  [ -n "$WORKER_PID" ] && kill -TERM "$WORKER_PID" 2>/dev/null || true
  [ -n "$COORD_PID" ] && kill -TERM "$COORD_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap stop EXIT

if [ ! -f "$MODEL/config.json" ]; then
  # No pretrained model on this machine: train a small teacher from scratch
  # on a corpus from Debian's archive (scripts/demo-teacher.sh:
  # the `fortunes` package, about two minutes on 2 cores) and compress that.
  echo "== no pretrained model at $MODEL: training a small teacher on Debian's fortunes corpus instead"
  bash "$ROOT/scripts/demo-teacher.sh" "$BUILD" "$DIR/teacher"
  MODEL=$DIR/teacher/teacher/model
  EVAL_TEXT=$DIR/teacher/corpus/valid.txt
  CALIB_TEXT=$DIR/teacher/corpus/train.txt
fi
if [ ! -f "$CALIB_TEXT" ] && [ -z "${DEMO_RECIPE:-}" ]; then
  # GPTQ needs calibration text; without it the demo runs round-to-nearest,
  # which needs none.
  echo "demo: no calibration text at $CALIB_TEXT; running the RTN W4A16 recipe instead of GPTQ" >&2
  RECIPE=$ROOT/deploy/examples/w4a16-rtn.yaml
fi
if [ ! -f "$RECIPE" ]; then
  echo "demo: recipe $RECIPE not found" >&2
  exit 2
fi

echo "== squeeze demo in $DIR"
"$COORD" --listen 127.0.0.1:0 --data-dir "$DIR/coordinator" --port-file "$DIR/port" 2>"$DIR/coordinator.log" &
COORD_PID=$!
for _ in $(seq 1 100); do [ -s "$DIR/port" ] && break; sleep 0.1; done
[ -s "$DIR/port" ] || { cat "$DIR/coordinator.log" >&2; echo "demo: coordinator did not start" >&2; exit 1; }
export SQUEEZE_SERVER=127.0.0.1:$(cat "$DIR/port")
echo "== coordinator on $SQUEEZE_SERVER (data in $DIR/coordinator)"
# --pace-ms slows the tiny model down just enough to watch the progress bars.
"$WORKER" --coordinator "$SQUEEZE_SERVER" --work-dir "$DIR/worker" --pace-ms 150 2>"$DIR/worker.log" &
WORKER_PID=$!
echo "== worker started; recipe $(basename "$RECIPE"):"
sed 's/^/   /' "$RECIPE"

EXTRA=()
[ -f "$EVAL_TEXT" ] && EXTRA+=(--eval-text "$EVAL_TEXT")
[ -f "$CALIB_TEXT" ] && EXTRA+=(--calib "$CALIB_TEXT")
echo "== squeeze submit --recipe $(basename "$RECIPE") --model $MODEL ${EXTRA[*]} --watch"
set +e
"$SQUEEZE" submit --recipe "$RECIPE" --model "$MODEL" "${EXTRA[@]}" --labels demo=1 --watch
rc=$?
set -e
JOB=$("$SQUEEZE" jobs --labels demo=1 --limit 1 --json | sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p')
if [ "$rc" != 0 ]; then
  echo "demo: job $JOB did not succeed (exit $rc)" >&2
  "$SQUEEZE" get "$JOB" >&2 || true
  tail -n 20 "$DIR/worker.log" >&2
  exit 1
fi
echo "== squeeze download $JOB --out $DIR/artifact"
"$SQUEEZE" download "$JOB" --out "$DIR/artifact"
ls -l "$DIR/artifact"
echo "== report ($JOB; per-layer figures omitted here, 'squeeze report JOB' prints all)"
"$SQUEEZE" report "$JOB" | awk '/^  "stages": \[/ {skip=1; print "  \"stages\": [...],"; next}
                                skip && /^  \],?$/ {skip=0; next}
                                !skip'
echo "== squeeze jobs"
"$SQUEEZE" jobs
echo "== stopping the worker and the coordinator"
