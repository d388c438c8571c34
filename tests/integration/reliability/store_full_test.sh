#!/usr/bin/env bash
# Object store full: the coordinator runs with --store-max-bytes just above
# what the uploaded model takes, so the job's artifact cannot be stored. The
# upload is refused (RESOURCE_EXHAUSTED) before anything of it is visible, the
# worker fails the task with that error (not retried: the job FAILS at once,
# naming the limit), the worker itself stays up and takes the next job, and
# the data dir passes --verify with no blob added by the failed upload.
source "$(dirname "$0")/lib.sh"
require_model
model_bytes=$(find "$MODEL_DIR" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
QUOTA=$((model_bytes + 512 * 1024))  # the model fits, a packed W4A16 artifact (~0.27 MB) too; a dense one (~1 MB) not
start_coordinator "$T/data" --store-max-bytes "$QUOTA"
start_worker w1
W1=$WORKER_PID
write_magnitude_recipe "$T/magnitude.yaml"
J=$(sq submit --recipe "$T/magnitude.yaml" --model "$MODEL_DIR" --json | json_field job_id)
[ -n "$J" ] || fail "submit under the quota failed"
blobs_before=$(find "$T/data/objects/blobs" -type f | wc -l)
sq watch "$J" >/dev/null 2>&1 && fail "a job whose artifact cannot be stored succeeded"
info=$(sq get "$J" --json)
[ "$(echo "$info" | json_field state)" = FAILED ] || fail "job not FAILED: $info"
[ "$(echo "$info" | json_field attempts)" = 1 ] || fail "a full store must not be retried: $info"
echo "$info" | grep -q "cannot store the artifact: .*object store full.*--store-max-bytes $QUOTA" ||
  fail "the error does not say the store is full and name the limit: $info"
grep -q "$J: artifact upload failed" "$T/w1.log" || fail "worker log does not report the failed upload"
kill -0 "$W1" 2>/dev/null || fail "the worker died on a full store"
blobs_after=$(find "$T/data/objects/blobs" -type f | wc -l)
[ "$blobs_after" = "$blobs_before" ] || fail "the failed upload left $((blobs_after - blobs_before)) blobs"
[ -z "$(ls -A "$T/data/objects/tmp")" ] || fail "the failed upload left files in objects/tmp"
# The same worker takes the next job: one whose artifact fits (W4A16 packs to ~1/4).
write_rtn_recipe "$T/rtn.yaml"
MODEL=$(echo "$info" | json_field model_digest)
J2=$(sq submit --recipe "$T/rtn.yaml" --model "$MODEL" --json | json_field job_id)
sq watch "$J2" >/dev/null || fail "a job whose artifact fits failed: $(sq get "$J2" --json)"
grep -q "leased $J2 " "$T/w1.log" || fail "the worker did not take the next job"
kill -TERM "$W1" "$COORD_PID"
wait "$W1" "$COORD_PID" 2>/dev/null || true
"$COORD_BIN" --verify --data-dir "$T/data" >"$T/verify.out" 2>&1 || fail "verify: $(cat "$T/verify.out")"
log "$(head -n 1 "$T/verify.out")"
log "PASS object store full (quota $QUOTA bytes): job FAILED cleanly, nothing half-written"
