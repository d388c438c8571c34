#!/usr/bin/env bash
# submit -> watch -> download on real processes, then the determinism check:
# the same recipe + inputs + seed give byte-identical artifacts (report.json
# with its before/after perplexity included), and a retried submit with the
# same idempotency key gives the same job.
source "$(dirname "$0")/lib.sh"
require_model
start_coordinator "$T/data"
# --tasks-dir: the task files jobs may name (--tasks); see the per-job task check below.
start_worker w1 --tasks-dir "$SHARED_DIR/data/tasks"
W1_PID=$WORKER_PID
write_recipe "$T/recipe.yaml"
# A small evaluation text, so report.json carries perplexities computed by the worker.
head -c 4000 "$SHARED_DIR/data/tinystories/valid.txt" >"$T/eval.txt"

sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --eval-text "$T/eval.txt" --seed 7 --idempotency-key k1 \
  --json >"$T/submit.json" \
  || fail "submit"
J=$(json_field job_id <"$T/submit.json")
[ -n "$J" ] || fail "submit --json printed no job_id"
sq watch "$J" --json >"$T/events.jsonl" || fail "watch exited non-zero"
grep -q '"unit":"layer"' "$T/events.jsonl" || fail "no per-layer progress events"
grep -q '"state":"SUCCEEDED"' "$T/events.jsonl" || fail "no SUCCEEDED event"
# seq is 1..n with no gaps
n=$(wc -l <"$T/events.jsonl")
seqs=$(sed -n 's/.*"seq":\([0-9]*\).*/\1/p' "$T/events.jsonl" | tr '\n' ' ')
[ "$seqs" = "$(seq -s ' ' 1 "$n") " ] || fail "event seqs not 1..$n: $seqs"
[ "$(job_state "$J")" = SUCCEEDED ] || fail "get --json state"

sq download "$J" --out "$T/art1" >/dev/null || fail "download"
for f in config.json model.safetensors recipe.yaml report.json; do
  [ -s "$T/art1/$f" ] || fail "artifact lacks $f"
done
sq report "$J" --json >"$T/report.out" || fail "report"
report_md=$(sq report "$J") || fail "report (Markdown)"  # captured: grep -q would SIGPIPE the writer
grep -q "## Quality" <<<"$report_md" || fail "report (Markdown) has no quality section"
grep -q "\"format\"" "$T/report.out" || fail "report has no format field"
grep -q "\"perplexity\"" "$T/art1/report.json" || fail "report.json has no perplexity (eval text was given)"

# Idempotency: the same key returns the same job.
J_again=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --eval-text "$T/eval.txt" --seed 7 --idempotency-key k1 \
  --json | json_field job_id)
[ "$J_again" = "$J" ] || fail "same idempotency key gave a second job ($J_again != $J)"

# Determinism: a new job with the same inputs and seed gives the same bytes.
MODEL_DIGEST=$(json_field model_digest <"$T/submit.json")
J2=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIGEST" --eval-text "$T/eval.txt" --seed 7 --json \
  | json_field job_id)
[ "$J2" != "$J" ] || fail "a new key must give a new job"
sq watch "$J2" >/dev/null || fail "second job failed"
sq download "$J2" --out "$T/art2" >/dev/null || fail "download 2"
for f in "$T"/art1/*; do
  cmp -s "$f" "$T/art2/$(basename "$f")" || fail "$(basename "$f") differs between identical runs"
done
A1=$(sq get "$J" --json | json_field artifact_digest)
A2=$(sq get "$J2" --json | json_field artifact_digest)
[ "$A1" = "$A2" ] || fail "artifact digests differ: $A1 vs $A2"
# Resumed download: a partial file is completed, not restarted.
rm "$T/art2/model.safetensors"
head -c 1000 "$T/art1/model.safetensors" >"$T/art2/model.safetensors.partial"
sq download "$J2" --out "$T/art2" >/dev/null || fail "resumed download"
cmp -s "$T/art1/model.safetensors" "$T/art2/model.safetensors" || fail "resumed download differs"

# Per-job task sets: the worker resolves the names against its --tasks-dir;
# report.json carries each task's scores and the seeded sample's indices.
J3=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIGEST" --seed 7 --tasks copa,piqa --task-limit 10 \
  --task-seed 3 --no-latency --no-agreement --json | json_field job_id)
[ -n "$J3" ] || fail "submit with --tasks printed no job_id"
sq watch "$J3" >/dev/null || fail "job with --tasks failed: $(sq get "$J3" --json | json_field error)"
sq download "$J3" --out "$T/art3" >/dev/null || fail "download 3"
compact=$(tr -d ' \n' <"$T/art3/report.json")
for task in copa piqa; do
  entry=$(printf '%s' "$compact" | grep -o "\"$task\":{\"compressed\":{\"acc\":[-0-9.e]*[^}]*},\"dense\":{\"acc\":[-0-9.e]*[^}]*},\"examples\":\[[0-9,]*\],\"format\":\"multiple_choice\",\"n\":10}") \
    || fail "report.json has no quality.tasks.$task with scores, 10 examples and their sampled indices"
  idx=$(printf '%s' "$entry" | sed 's/.*"examples":\[\([0-9,]*\)\].*/\1/' | tr ',' '\n' | sort -un | wc -l)
  [ "$idx" = 10 ] || fail "quality.tasks.$task.examples: expected 10 distinct indices, got $idx"
done
# Refused at submit: a name that is not [a-z0-9_]+ (never reaches a worker).
out=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIGEST" --tasks ../copa 2>&1) && fail "bad task name accepted"
printf '%s' "$out" | grep -q "eval.tasks\[0\]" || fail "bad task name error does not name eval.tasks[0]: $out"
# A worker without a task directory fails such a job with an error naming the flag.
kill -TERM "$W1_PID" && wait "$W1_PID" || true
unset SQUEEZE_TASKS_DIR
sleep 1.5  # let w1's last long-poll (--lease-wait-ms 1000) end on the coordinator, so w2 gets the job
start_worker w2
J4=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIGEST" --tasks copa --max-attempts 1 --json | json_field job_id)
sq watch "$J4" >/dev/null 2>&1 && fail "a job asking for tasks succeeded on a worker without --tasks-dir"
[ "$(job_state "$J4")" = FAILED ] || fail "job $J4 should have FAILED"
j4_json=$(sq get "$J4" --json) || fail "get J4 --json"
grep -q -- "--tasks-dir" <<<"$j4_json" || fail "the failure does not name --tasks-dir: $j4_json"
log "PASS e2e ($J, artifact $A1)"
