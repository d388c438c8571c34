#!/usr/bin/env bash
# SIGTERM resume across workers. Worker A stops at a layer boundary,
# checkpoints, uploads the checkpoint to the object store, releases the lease
# with its digest (no attempt charged) and exits 143. Worker B, with another
# work dir, gets the next lease with that digest, downloads the checkpoint and
# resumes at layer > 0 (the job's events say where, and the first layer event
# after that is the next layer); the artifact is byte-identical to an
# uninterrupted run's. Then a checkpoint whose blob is gone from the store:
# the next worker logs it, starts from zero, and the job still succeeds with
# the same artifact.
source "$(dirname "$0")/lib.sh"
require_model
start_coordinator "$T/data"
write_recipe "$T/recipe.yaml"

# sigterm_mid_job NAME JOB: runs JOB on a paced worker NAME, SIGTERMs it
# mid-job and checks the graceful stop. Sets CKPT to the uploaded checkpoint.
sigterm_mid_job() {
  local name=$1 job=$2 rc
  start_worker "$name" --pace-ms 400
  wait_for 60 "progress of $job" seq_at_least "$job" 6
  [ "$(job_state "$job")" = RUNNING ] || fail "$job no longer RUNNING when the SIGTERM was due"
  kill -TERM "$WORKER_PID"
  set +e
  wait "$WORKER_PID"
  rc=$?
  set -e
  [ "$rc" = 143 ] || fail "worker $name exited $rc after SIGTERM, want 143"
  grep -q "stopped at a layer boundary" "$T/$name.log" || fail "worker $name did not checkpoint"
  CKPT=$(sed -n 's/.*checkpoint uploaded as \([0-9a-f]\{64\}\).*/\1/p' "$T/$name.log" | tail -n 1)
  [ -n "$CKPT" ] || fail "worker $name did not upload its checkpoint"
  [ "$(job_state "$job")" = QUEUED ] || fail "released job not QUEUED: $(job_state "$job")"
  [ ! -e "$T/$name/jobs/$job" ] || fail "worker $name kept its local copy after uploading it"
}

# ---- 1. A is stopped mid-job; B (another work dir) resumes from A's checkpoint.
J=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --seed 3 --json | json_field job_id)
sigterm_mid_job a "$J"
CKPT_A=$CKPT
start_worker b
B_PID=$WORKER_PID
sq watch "$J" --json >"$T/j.events" || fail "resumed job failed"
grep -q "fetched checkpoint $CKPT_A" "$T/b.log" || fail "worker b did not fetch checkpoint $CKPT_A"
grep -q "resume from checkpoint $CKPT_A" "$T/j.events" || fail "the second lease did not carry the checkpoint"
resume_line=$(grep -n '"stage":"resume"' "$T/j.events" | grep 'resumed from checkpoint' | head -n 1)
[ -n "$resume_line" ] || fail "no 'resumed from checkpoint' event: the run started from zero"
line_no=${resume_line%%:*}
r_stage=$(echo "$resume_line" | sed -n 's/.*"resume_stage":\([0-9]*\).*/\1/p')
r_layer=$(echo "$resume_line" | sed -n 's/.*"resume_layer":\([0-9]*\).*/\1/p')
[ $((r_stage * 1000 + r_layer)) -gt 0 ] || fail "resumed at stage $r_stage layer $r_layer, i.e. from zero"
first_layer=$(tail -n +"$line_no" "$T/j.events" | grep '"unit":"layer"' | head -n 1)
first_current=$(echo "$first_layer" | sed -n 's/.*"current":\([0-9]*\).*/\1/p')
[ "$first_current" = $((r_layer + 1)) ] ||
  fail "after resuming at layer $r_layer the first layer done was $first_current: $first_layer"
log "worker b resumed $J at stage $r_stage, layer $r_layer (first layer event after it: $first_current)"
[ "$(sq get "$J" --json | json_field attempts)" = 1 ] || fail "a release must not charge an attempt"

# ---- 2. The same job uninterrupted: byte-identical artifact.
J2=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --seed 3 --json | json_field job_id)
sq watch "$J2" >/dev/null || fail "uninterrupted job failed"
A1=$(sq get "$J" --json | json_field artifact_digest)
A2=$(sq get "$J2" --json | json_field artifact_digest)
[ "$A1" = "$A2" ] || fail "resumed artifact $A1 differs from uninterrupted $A2"
sq download "$J" --out "$T/art1" >/dev/null || fail "download $J"
sq download "$J2" --out "$T/art2" >/dev/null || fail "download $J2"
diff -r "$T/art1" "$T/art2" >/dev/null || fail "downloaded artifacts differ"

# ---- 3. A checkpoint whose blob is gone: logged, start from zero, same result.
kill -TERM "$B_PID"
wait "$B_PID" 2>/dev/null || true
J3=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --seed 3 --json | json_field job_id)
sigterm_mid_job c "$J3"
rm -f "$T/data/objects/blobs/${CKPT:0:2}/$CKPT"
start_worker d
sq watch "$J3" --json >"$T/j3.events" || fail "job with a lost checkpoint did not finish"
grep -q "checkpoint $CKPT unavailable" "$T/d.log" || fail "worker d did not report the lost checkpoint"
grep -q 'starting from zero' "$T/j3.events" || fail "the job's events do not say it started from zero"
! grep -q 'resumed from checkpoint' "$T/j3.events" || fail "resumed from a checkpoint that was deleted"
[ "$(sq get "$J3" --json | json_field artifact_digest)" = "$A1" ] || fail "restarted job's artifact differs"
log "PASS sigterm resume across workers (and a lost checkpoint starts from zero)"
