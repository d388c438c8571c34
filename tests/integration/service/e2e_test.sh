#!/usr/bin/env bash
# submit -> watch -> download on real processes, then the determinism check:
# the same recipe + inputs + seed give byte-identical artifacts (report.json
# with its before/after perplexity included), and a retried submit with the
# same idempotency key gives the same job.
source "$(dirname "$0")/lib.sh"
require_model
start_coordinator "$T/data"
start_worker w1
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
sq report "$J" | grep -q "## Quality" || fail "report (Markdown) has no quality section"
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
log "PASS e2e ($J, artifact $A1)"
