#!/usr/bin/env bash
# kill -9 of the coordinator mid-job, then restart on the same data dir: the
# job finishes exactly once (one lease, one SUCCEEDED) and a watcher resumes
# with after_seq across the restart.
source "$(dirname "$0")/lib.sh"
require_model
start_coordinator "$T/data" --lease-ttl-ms 4000
start_worker w1 --pace-ms 400
W1_PID=$WORKER_PID
write_recipe "$T/recipe.yaml"
J=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --json | json_field job_id)
wait_for 60 "progress" seq_at_least "$J" 5
sq watch "$J" --json >"$T/events.jsonl" 2>"$T/watch.log" &
WATCH_PID=$!
PIDS+=("$WATCH_PID")
sleep 0.3
[ "$(job_state "$J")" = RUNNING ] || fail "job no longer RUNNING when the kill was due"
kill -9 "$COORD_PID"
log "killed coordinator $COORD_PID"
sleep 1
start_coordinator "$T/data" --lease-ttl-ms 4000
log "restarted coordinator on port $PORT"
wait "$WATCH_PID" || fail "watch across the restart failed: $(cat "$T/watch.log")"
[ "$(job_state "$J")" = SUCCEEDED ] || fail "job not SUCCEEDED after restart"
[ "$(sq get "$J" --json | json_field attempts)" = 1 ] || fail "job was leased again after the restart"
[ "$(grep -c '"state":"SUCCEEDED"' "$T/events.jsonl")" = 1 ] || fail "not exactly one SUCCEEDED event"
n=$(wc -l <"$T/events.jsonl")
seqs=$(sed -n 's/.*"seq":\([0-9]*\).*/\1/p' "$T/events.jsonl" | tr '\n' ' ')
[ "$seqs" = "$(seq -s ' ' 1 "$n") " ] || fail "watch across restart missed or repeated events: $seqs"
# The worker kept its work through the outage and re-attached: the same
# process ran the job once (no second lease, no restart from layer 0 of a
# stage) and, registered again with the new coordinator, takes the next job.
kill -0 "$W1_PID" 2>/dev/null || fail "the worker died while the coordinator was down"
[ "$(grep -c "leased $J " "$T/w1.log")" = 1 ] || fail "the worker leased $J more than once"
for stage in $(sed -n 's/.*"stage":"\([^"]*\)".*"unit":"layer".*/\1/p' "$T/events.jsonl" | sort -u); do
  starts=$(grep "\"stage\":\"$stage\"" "$T/events.jsonl" | grep '"unit":"layer"' | grep -c '"current":1,') || true
  [ "$starts" -le 1 ] || fail "stage $stage restarted after the coordinator came back ($starts first layers)"
done
J2=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --json | json_field job_id)
sq watch "$J2" >/dev/null || fail "job after the restart failed"
grep -q "leased $J2 " "$T/w1.log" || fail "the worker did not re-attach to the restarted coordinator"
[ "$(grep -c 'registered as' "$T/w1.log")" -ge 2 ] || fail "the worker never registered again"
log "PASS coordinator kill -9 ($n events; the worker kept its work and re-attached)"
