#!/usr/bin/env bash
# kill -9 of a worker mid-stage: its lease expires (TTL 2 s), the job goes back
# to the queue and another worker finishes it.
source "$(dirname "$0")/lib.sh"
require_model
start_coordinator "$T/data" --lease-ttl-ms 2000
start_worker w1 --pace-ms 400
write_recipe "$T/recipe.yaml"
J=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --json | json_field job_id)
wait_for 60 "progress" seq_at_least "$J" 6
[ "$(job_state "$J")" = RUNNING ] || fail "job no longer RUNNING when the kill was due"
kill -9 "$WORKER_PID"
log "killed worker $WORKER_PID"
start_worker w2
sq watch "$J" --json >"$T/events.jsonl" || fail "job did not succeed after the worker died"
grep -q 'lease expired' "$T/events.jsonl" || fail "no lease-expired event"
[ "$(sq get "$J" --json | json_field attempts)" = 2 ] || fail "want 2 attempts"
grep -q "leased $J " "$T/w2.log" || fail "w2 never ran the job"
log "PASS worker kill -9"
