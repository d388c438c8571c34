#!/usr/bin/env bash
# Crash consistency: N jobs on one coordinator and several workers, while the
# coordinator and the workers are killed (kill -9; sometimes a worker gets
# SIGTERM, its graceful checkpoint-and-release path) at random points and
# restarted on the same data / work dirs. Afterwards:
#   - every accepted job (submit returned a job id) is SUCCEEDED exactly once:
#     one SUCCEEDED event, the last one, events seq 1..n without gaps, and one
#     job per idempotency key (a submit retried across a kill made no twin);
#   - its artifact is byte-identical to an undisturbed run of the same recipe
#     (the references are computed first, once per recipe, on a quiet service);
#   - jobs.db passes `PRAGMA integrity_check` (sqlite3 CLI) and the whole data
#     dir passes `squeeze-coordinator --verify` (every blob hashes to its name,
#     every manifest's files exist, events gapless, artifacts present).
# The random points come from SEED (printed; `SEED=... bash this.sh ...`
# replays the same schedule, though process timing still varies).
#
# Usage: crash_consistency_test.sh COORDINATOR WORKER SQUEEZE
# Env: SEED, JOBS (default 8), KILLS (default 8), WORKERS (default 3),
#      PACE_MS (default 120: per-layer sleep so jobs live long enough to be hit)
source "$(dirname "$0")/lib.sh"
require_model

SEED=${SEED:-$(( ($(date +%s%N) / 1000) % 1000000 ))}
JOBS=${JOBS:-8}
KILLS=${KILLS:-8}
WORKERS=${WORKERS:-3}
PACE_MS=${PACE_MS:-120}
RANDOM=$SEED
log "crash consistency: SEED=$SEED JOBS=$JOBS KILLS=$KILLS WORKERS=$WORKERS PACE_MS=$PACE_MS"

# ---- recipes: small and fast (RTN, magnitude pruning, both in two stages)
write_rtn_recipe "$T/rtn.yaml"
write_magnitude_recipe "$T/magnitude.yaml"
write_recipe "$T/two_stage.yaml"
RECIPES=(rtn magnitude two_stage)

# retry N CMD...: runs CMD until it succeeds (the coordinator may be down).
retry() {
  local n=$1
  shift
  for _ in $(seq 1 "$n"); do
    "$@" 2>/dev/null && return 0
    sleep 0.3
  done
  return 1
}
# sqr ARGS...: the CLI, retried while it exits 3 (coordinator unreachable: down
# for a restart, or a connect that timed out on a loaded machine).
sqr() {
  local out rc
  for _ in $(seq 1 60); do
    if out=$(sq "$@" 2>"$T/sqr.err"); then rc=0; else rc=$?; fi
    if [ "$rc" != 3 ]; then
      [ -z "$out" ] || printf '%s\n' "$out"
      return "$rc"
    fi
    sleep 0.3
  done
  cat "$T/sqr.err" >&2
  return 3
}
get_json() { sqr get "$1" --json 2>/dev/null; }

# ---- 1. references: one undisturbed run per recipe
# The measured parts of the report (latency, agreement) are skipped: they
# cost time and never enter the artifact anyway.
SUBMIT_OPTS=(--seed 5 --no-latency --no-agreement)
start_coordinator "$T/ref-data"
REF_PIDS=("$COORD_PID")
for r in "${RECIPES[@]}"; do
  start_worker "ref-$r"
  REF_PIDS+=("$WORKER_PID")
done
MODEL=$(sqr upload "$MODEL_DIR" --json | json_field digest)
[ -n "$MODEL" ] || fail "model upload printed no digest"
declare -A REF REF_JOB
for r in "${RECIPES[@]}"; do
  REF_JOB[$r]=$(sqr submit --recipe "$T/$r.yaml" --model "$MODEL" "${SUBMIT_OPTS[@]}" --json | json_field job_id)
done
for r in "${RECIPES[@]}"; do
  j=${REF_JOB[$r]}
  sqr watch "$j" >/dev/null || fail "reference job for $r failed: $(get_json "$j")"
  REF[$r]=$(get_json "$j" | json_field artifact_digest)
  log "reference $r: artifact ${REF[$r]}"
  if [ "$r" = two_stage ]; then sqr download "$j" --out "$T/ref-art" >/dev/null || fail "download reference"; fi
done
kill -TERM "${REF_PIDS[@]}" 2>/dev/null || true
wait "${REF_PIDS[@]}" 2>/dev/null || true
unset PORT

# ---- 2. the disturbed run
DATA=$T/data
COORD_FLAGS=(--lease-ttl-ms 1500 --max-attempts 100)
start_coordinator "$DATA" "${COORD_FLAGS[@]}"
retry 30 sq upload "$MODEL_DIR" >/dev/null || fail "upload to the chaos coordinator"
declare -a WPID
for w in $(seq 1 "$WORKERS"); do
  start_worker "w$w" --pace-ms "$PACE_MS"
  WPID[$w]=$WORKER_PID
done

COORD_KILLS=0 WORKER_KILLS=0 WORKER_TERMS=0
# One random disturbance: the coordinator (1 in 3) or a worker; a worker gets
# SIGTERM 1 time in 4, else kill -9. Each victim restarts after 0-0.6 s.
disturb() {
  local pick=$((RANDOM % 3)) pause
  pause=$(printf '0.%d' $((RANDOM % 7)))
  if [ "$pick" = 0 ]; then
    kill -9 "$COORD_PID" 2>/dev/null || true
    wait "$COORD_PID" 2>/dev/null || true
    COORD_KILLS=$((COORD_KILLS + 1))
    log "kill -9 coordinator (kill $((COORD_KILLS + WORKER_KILLS + WORKER_TERMS)))"
    sleep "$pause"
    start_coordinator "$DATA" "${COORD_FLAGS[@]}"
  else
    local w=$((RANDOM % WORKERS + 1)) sig=9
    [ $((RANDOM % 4)) = 0 ] && sig=TERM
    kill -"$sig" "${WPID[$w]}" 2>/dev/null || true
    wait "${WPID[$w]}" 2>/dev/null || true
    if [ "$sig" = 9 ]; then WORKER_KILLS=$((WORKER_KILLS + 1)); else WORKER_TERMS=$((WORKER_TERMS + 1)); fi
    log "kill -$sig worker w$w (kill $((COORD_KILLS + WORKER_KILLS + WORKER_TERMS)))"
    sleep "$pause"
    start_worker "w$w" --pace-ms "$PACE_MS"
    WPID[$w]=$WORKER_PID
  fi
}
# Random gap before the next disturbance: 0.2-1.7 s.
gap() { sleep "$(printf '%d.%d' $((RANDOM % 2)) $((RANDOM % 8 + 2)))"; }

# Submits, with disturbances in between; each submit is retried with its
# idempotency key until the coordinator answers.
declare -a JOB RECIPE_OF
done_kills=0
for i in $(seq 1 "$JOBS"); do
  r=${RECIPES[$((i % ${#RECIPES[@]}))]}
  id=""
  for _ in $(seq 1 60); do
    id=$(sqr submit --recipe "$T/$r.yaml" --model "$MODEL" "${SUBMIT_OPTS[@]}" --idempotency-key "crash-$i" --json 2>/dev/null |
      json_field job_id) && [ -n "$id" ] && break
    sleep 0.3
  done
  [ -n "$id" ] || fail "submit $i never accepted"
  JOB[$i]=$id
  RECIPE_OF[$i]=$r
  if [ "$done_kills" -lt "$KILLS" ] && [ $((RANDOM % 2)) = 0 ]; then
    disturb
    done_kills=$((done_kills + 1))
  fi
done
log "submitted $JOBS jobs"
all_terminal() {
  local i s
  for i in $(seq 1 "$JOBS"); do
    s=$(get_json "${JOB[$i]}" | json_field state)
    case "$s" in SUCCEEDED | FAILED | CANCELLED) ;; *) return 1 ;; esac
  done
}
while [ "$done_kills" -lt "$KILLS" ]; do
  gap
  all_terminal && break
  disturb
  done_kills=$((done_kills + 1))
done
SURVIVED=$((COORD_KILLS + WORKER_KILLS + WORKER_TERMS))
log "disturbances done ($SURVIVED); waiting for every job"
wait_for 240 "every job to finish" all_terminal

# ---- 3. checks
i_list=$(seq 1 "$JOBS")
listed=$(sqr jobs --limit 1000 --json | grep -o '"job_id"' | wc -l)
[ "$listed" = "$JOBS" ] || fail "the coordinator holds $listed jobs for $JOBS accepted submits"
for i in $i_list; do
  j=${JOB[$i]} r=${RECIPE_OF[$i]}
  info=$(get_json "$j")
  [ "$(echo "$info" | json_field state)" = SUCCEEDED ] || fail "job $i ($j, $r) ended $(echo "$info" | json_field state): $info"
  a=$(echo "$info" | json_field artifact_digest)
  [ "$a" = "${REF[$r]}" ] || fail "job $i ($j, $r): artifact $a differs from the undisturbed ${REF[$r]}"
  sqr watch "$j" --json >"$T/ev.$i" || fail "watch $j"
  n=$(wc -l <"$T/ev.$i")
  seqs=$(sed -n 's/.*"seq":\([0-9]*\).*/\1/p' "$T/ev.$i" | tr '\n' ' ')
  [ "$seqs" = "$(seq -s ' ' 1 "$n") " ] || fail "job $j: event seqs are not 1..$n: $seqs"
  [ "$(grep -c '"state":"SUCCEEDED"' "$T/ev.$i")" = 1 ] || fail "job $j: not exactly one SUCCEEDED event"
  tail -n 1 "$T/ev.$i" | grep -q '"state":"SUCCEEDED"' || fail "job $j: events after SUCCEEDED"
  [ "$(grep -c '"kind":"STATE".*"message":"artifact ' "$T/ev.$i")" = 1 ] || fail "job $j: not exactly one artifact"
done
# Byte-identical files, downloaded from the disturbed store.
for i in $i_list; do
  [ "${RECIPE_OF[$i]}" = two_stage ] || continue
  retry 20 sq download "${JOB[$i]}" --out "$T/art" >/dev/null || fail "download ${JOB[$i]}"
  diff -r "$T/ref-art" "$T/art" >/dev/null || fail "downloaded artifact of ${JOB[$i]} differs from the reference"
  break
done
# Offline integrity: stop everything, then SQLite and the object store.
for w in $(seq 1 "$WORKERS"); do kill -TERM "${WPID[$w]}" 2>/dev/null || true; done
for w in $(seq 1 "$WORKERS"); do wait "${WPID[$w]}" 2>/dev/null || true; done
kill -TERM "$COORD_PID" 2>/dev/null || true
wait "$COORD_PID" 2>/dev/null || true
if command -v sqlite3 >/dev/null; then
  ic=$(sqlite3 "$DATA/jobs.db" 'PRAGMA integrity_check;')
  [ "$ic" = ok ] || fail "sqlite3 integrity_check: $ic"
else
  log "note: no sqlite3 CLI (scripts/install-deps.sh installs it); --verify runs integrity_check itself"
fi
"$COORD_BIN" --verify --data-dir "$DATA" >"$T/verify.out" 2>&1 || fail "verify: $(cat "$T/verify.out")"
log "$(head -n 1 "$T/verify.out")"
echo "crash consistency: SEED=$SEED N=$JOBS jobs, kills survived: $SURVIVED (coordinator kill -9: $COORD_KILLS," \
  "worker kill -9: $WORKER_KILLS, worker SIGTERM: $WORKER_TERMS); all SUCCEEDED once, artifacts byte-identical"
log "PASS crash consistency (SEED=$SEED)"
