#!/usr/bin/env bash
# The CLI rides out a coordinator that is not up yet (issue 11): `get`, `jobs`,
# `upload` and `submit` (idempotency key) are started while nothing listens on
# the coordinator's port, retry UNAVAILABLE with jittered backoff
# (--retry-seconds), and succeed once the coordinator starts there. The submit
# makes exactly one job. Nothing is asserted on time.
source "$(dirname "$0")/lib.sh"
start_coordinator "$T/data"   # picks the port (kernel), which the restart reuses
printf 'squeeze cli retry test: model reference blob\n' >"$T/model.bin"
MODEL=$(sq upload "$T/model.bin")
write_magnitude_recipe "$T/recipe.yaml"
J=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL" --json | json_field job_id)
[ -n "$J" ] || fail "first submit failed"
kill -TERM "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
# Down: a call with no retries fails at once with exit 3 (unreachable).
set +e
sq jobs --retry-seconds 0 >"$T/down.out" 2>&1
rc=$?
set -e
[ "$rc" = 3 ] || fail "jobs with the coordinator down exited $rc, want 3: $(cat "$T/down.out")"

printf 'uploaded while the coordinator was down\n' >"$T/late.bin"
declare -A CLI
sq get "$J" --json --retry-seconds 120 >"$T/get.out" 2>"$T/get.err" & CLI[get]=$!
sq jobs --json --retry-seconds 120 >"$T/jobs.out" 2>"$T/jobs.err" & CLI[jobs]=$!
sq upload "$T/late.bin" --retry-seconds 120 >"$T/upload.out" 2>"$T/upload.err" & CLI[upload]=$!
SQUEEZE_RETRY_SECONDS=120 sq submit --recipe "$T/recipe.yaml" --model "$MODEL" --idempotency-key retry-k1 --json \
  >"$T/submit.out" 2>"$T/submit.err" & CLI[submit]=$!
# Every CLI is waiting (retrying), none has given up, before the coordinator is back.
for name in "${!CLI[@]}"; do
  wait_for 60 "$name to announce its retry" grep -q "retrying for up to 120 s" "$T/$name.err"
  kill -0 "${CLI[$name]}" 2>/dev/null || fail "$name exited while the coordinator was down: $(cat "$T/$name.err")"
done
sleep 1
for name in "${!CLI[@]}"; do
  kill -0 "${CLI[$name]}" 2>/dev/null || fail "$name gave up: $(cat "$T/$name.err")"
done
log "coordinator restarting on port $PORT"
start_coordinator "$T/data"
for name in "${!CLI[@]}"; do
  set +e
  wait "${CLI[$name]}"
  rc=$?
  set -e
  [ "$rc" = 0 ] || fail "$name exited $rc after the coordinator came back: $(cat "$T/$name.err")"
done
[ "$(json_field job_id <"$T/get.out")" = "$J" ] || fail "get: $(cat "$T/get.out")"
grep -q "\"job_id\":\"$J\"" "$T/jobs.out" || fail "jobs: $(cat "$T/jobs.out")"
K=$(json_field job_id <"$T/submit.out")
[ -n "$K" ] || fail "submit: $(cat "$T/submit.out") $(cat "$T/submit.err")"
# The key makes the submit exactly-once: replaying it returns the same job.
K2=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL" --idempotency-key retry-k1 --json | json_field job_id)
[ "$K" = "$K2" ] || fail "idempotency key retry-k1 made two jobs: $K and $K2"
[ "$(sq jobs --json | grep -o '"job_id"' | wc -l)" = 2 ] || fail "want exactly 2 jobs: $(sq jobs --json)"
# The late upload is stored: submitting against it is accepted.
LATE=$(cat "$T/upload.out")
[[ "$LATE" =~ ^[0-9a-f]{64}$ ]] || fail "upload printed no digest: $LATE $(cat "$T/upload.err")"
sq submit --recipe "$T/recipe.yaml" --model "$LATE" --json >/dev/null || fail "uploaded digest $LATE is not stored"
log "PASS cli retry (get, jobs, upload, submit rode out a down coordinator)"
