#!/usr/bin/env bash
# SIGTERM: the worker stops at a layer boundary, checkpoints, releases the
# lease (no attempt charged) and exits 143; restarted, it resumes and the
# artifact is byte-identical to an uninterrupted run's.
source "$(dirname "$0")/lib.sh"
require_model
start_coordinator "$T/data"
start_worker w1 --pace-ms 400
write_recipe "$T/recipe.yaml"
J=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --seed 3 --json | json_field job_id)
wait_for 60 "progress" seq_at_least "$J" 6
[ "$(job_state "$J")" = RUNNING ] || fail "job no longer RUNNING when the kill was due"
kill -TERM "$WORKER_PID"
set +e
wait "$WORKER_PID"
rc=$?
set -e
[ "$rc" = 143 ] || fail "worker exited $rc after SIGTERM, want 143"
grep -q "stopped at a layer boundary" "$T/w1.log" || fail "worker did not checkpoint"
[ "$(job_state "$J")" = QUEUED ] || fail "released job not QUEUED: $(job_state "$J")"
start_worker w1
sq watch "$J" >/dev/null || fail "resumed job failed"
[ "$(sq get "$J" --json | json_field attempts)" = 1 ] || fail "a release must not charge an attempt"
J2=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --seed 3 --json | json_field job_id)
sq watch "$J2" >/dev/null || fail "uninterrupted job failed"
A1=$(sq get "$J" --json | json_field artifact_digest)
A2=$(sq get "$J2" --json | json_field artifact_digest)
[ "$A1" = "$A2" ] || fail "resumed artifact $A1 differs from uninterrupted $A2"
log "PASS sigterm resume"
