#!/usr/bin/env bash
# Two workers racing for leases: every job is leased exactly once and succeeds.
source "$(dirname "$0")/lib.sh"
require_model
start_coordinator "$T/data"
write_recipe "$T/recipe.yaml"
MODEL=$(sq upload "$MODEL_DIR") || fail "upload"
start_worker w1 --pace-ms 50
start_worker w2 --pace-ms 50
JOBS=()
for i in 1 2 3 4 5 6; do
  JOBS+=("$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL" --seed "$i" --json | json_field job_id)")
done
for j in "${JOBS[@]}"; do
  sq watch "$j" >/dev/null || fail "job $j did not succeed"
  [ "$(sq get "$j" --json | json_field attempts)" = 1 ] || fail "job $j was leased more than once"
  leased=$(cat "$T/w1.log" "$T/w2.log" | grep -c "leased $j ")
  [ "$leased" = 1 ] || fail "job $j leased $leased times across workers"
done
w1=$(grep -c "leased job-" "$T/w1.log" || true)
w2=$(grep -c "leased job-" "$T/w2.log" || true)
log "PASS race (w1 ran $w1 jobs, w2 ran $w2)"
