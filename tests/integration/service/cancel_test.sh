#!/usr/bin/env bash
# Cancel: a queued job ends at once; a running job stops at a layer boundary.
source "$(dirname "$0")/lib.sh"
require_model
start_coordinator "$T/data"
write_recipe "$T/recipe.yaml"

# No worker yet: the job stays queued and cancels at once.
Q=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --json | json_field job_id)
sq cancel "$Q" >/dev/null || fail "cancel queued"
[ "$(job_state "$Q")" = CANCELLED ] || fail "queued job not CANCELLED"

start_worker w1 --pace-ms 300
R=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --json | json_field job_id)
wait_for 60 "job running with progress" seq_at_least "$R" 5
sq cancel "$R" >/dev/null || fail "cancel running"
set +e
sq watch "$R" >"$T/watch.out" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || fail "watch of a cancelled job exited $rc, want 1"
[ "$(job_state "$R")" = CANCELLED ] || fail "running job not CANCELLED: $(job_state "$R")"
# The worker is free again: another job runs to completion.
S=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --json | json_field job_id)
sq watch "$S" >/dev/null || fail "job after cancel did not succeed"
log "PASS cancel"
