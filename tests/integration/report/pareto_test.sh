#!/usr/bin/env bash
# The store-wide Pareto front on real processes: four small jobs on
# stories260K (RTN W4A16, RTN W8A16, magnitude 50% without latency, and
# deploy/examples/distill-magnitude-50.yaml: magnitude 50% distilled back from
# the job's own input model on its calibration text) through a
# coordinator + worker, then `squeeze pareto` (GetPareto) and `squeeze report`
# (GetReport's scores.pareto.store): the front must hold what is known by
# construction (W4 is the smallest model, so it is on the bytes front;
# magnitude 50% keeps the dense bytes at a far worse perplexity, so it is
# dominated; it has no latency, so it is unmeasured there), agree with a plain
# re-computation from the variants it lists, and the job's evaluation options
# show in `squeeze get` and the report. The distillation job streams per-step
# loss / lr events and beats plain magnitude pruning on the eval text.
source "$(dirname "$0")/../service/lib.sh"
require_model
command -v node >/dev/null || { echo "SKIP: needs node for the JSON checks"; exit 77; }
start_coordinator "$T/data"
start_worker w1 --tasks-dir "$SHARED_DIR/data/tasks"
head -c 4000 "$SHARED_DIR/data/tinystories/valid.txt" >"$T/eval.txt"

recipe() {  # recipe FILE MODIFIER-YAML
  printf 'stage:\n  main_modifiers:\n%s\n' "$2" >"$1"
}
recipe "$T/w4.yaml" '    QuantizationModifier:
      targets: ["Linear"]
      scheme: W4A16'
recipe "$T/w8.yaml" '    QuantizationModifier:
      targets: ["Linear"]
      scheme: W8A16'
recipe "$T/mag.yaml" '    MagnitudePruningModifier:
      targets: ["Linear"]
      sparsity: 0.5'

MODEL=$(sq upload "$MODEL_DIR" --json | json_field digest)
[ -n "$MODEL" ] || fail "upload printed no digest"
common=(--model "$MODEL" --eval-text "$T/eval.txt" --tasks copa --task-limit 20 --task-seed 5 --no-agreement --json)
J_W4=$(sq submit --recipe "$T/w4.yaml" "${common[@]}" | json_field job_id)
# W8 is evaluated with int8 activations in its packed layers (as llama.cpp would serve it).
J_W8=$(sq submit --recipe "$T/w8.yaml" "${common[@]}" --packed-activations int8 | json_field job_id)
J_MAG=$(sq submit --recipe "$T/mag.yaml" "${common[@]}" --no-latency | json_field job_id)
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
head -c 400000 "$SHARED_DIR/data/tinystories/train.txt" >"$T/train.txt"
J_KD=$(sq submit --recipe "$REPO/deploy/examples/distill-magnitude-50.yaml" "${common[@]}" --calib "$T/train.txt" \
  | json_field job_id)
for j in "$J_W4" "$J_W8" "$J_MAG"; do
  [ -n "$j" ] || fail "a submit printed no job_id"
  sq watch "$j" >/dev/null || fail "job $j failed: $(sq get "$j" --json | json_field error)"
done

sq watch "$J_KD" --json >"$T/kd_events.jsonl" || fail "distill job failed: $(sq get "$J_KD" --json | json_field error)"
n_steps=$(grep -c '"unit":"step"' "$T/kd_events.jsonl" || true)
[ "$n_steps" -ge 40 ] || fail "the distill job streamed $n_steps step events (want >= 40)"
grep '"unit":"step"' "$T/kd_events.jsonl" | tail -n 1 | grep -q '"current":200' || fail "no event for the last step"
grep '"unit":"step"' "$T/kd_events.jsonl" | tail -n 1 | grep -q '"loss":' || fail "step events carry no loss"

# The front, anchored on the W4 job.
sq pareto --model "$J_W4" --json >"$T/front.json" || fail "squeeze pareto --model JOB"
node - "$T/front.json" "$J_W4" "$J_W8" "$J_MAG" "$J_KD" <<'JS' || fail "front checks (see above)"
const fs = require('fs');
const [file, w4, w8, mag, kd] = process.argv.slice(2);
const f = JSON.parse(fs.readFileSync(file, 'utf8'));
const fail = (m) => { console.error('front: ' + m); process.exit(1); };
if (f.anchor_job !== w4) fail('anchor ' + f.anchor_job);
if (f.variants.length !== 5) fail('expected dense + 4 variants, got ' + f.variants.length);
const names = f.variants.map((v) => v.name).sort();
if (JSON.stringify(names) !== JSON.stringify(['dense', w4, w8, mag, kd].sort())) fail('variants ' + names);
if (JSON.stringify(f.quality_tasks) !== JSON.stringify(['copa', 'eval_text'])) fail('quality_tasks ' + f.quality_tasks);
if (f.excluded.length || f.dropped_scores.length) fail('nothing should be excluded: ' + JSON.stringify(f));
const by = Object.fromEntries(f.variants.map((v) => [v.name, v]));
for (const v of f.variants) console.log('  ' + v.name + ' ' + v.recipe + ' bytes ' + v.bytes + ' FLOPs ' + v.flops_per_token +
  ' quality ' + v.quality.toFixed(3) + ' eval_text ' + v.scores.eval_text.toFixed(3) + ' copa ' + v.scores.copa.toFixed(1) +
  ' latency ' + v.latency_ms + ' elue ' + (v.elue ? v.elue.score.toFixed(3) : '-'));
if (!(by[w4].bytes < by[w8].bytes && by[w8].bytes < by.dense.bytes)) fail('bytes order W4 < W8 < dense');
if (!f.fronts.bytes.optimal.includes(w4)) fail('W4 (smallest) must be on the bytes front');
if (!f.fronts.bytes.dominated.includes(mag)) fail('magnitude 50% must be dominated on bytes');
if (JSON.stringify(f.fronts.latency.unmeasured) !== JSON.stringify([mag])) fail('latency.unmeasured ' + f.fronts.latency.unmeasured);
if (by[mag].latency_ms !== null || !(by[w4].latency_ms > 0)) fail('latency_ms');
// Distillation wins back perplexity lost to pruning (same bytes: KD keeps the masks).
if (!(by[kd].scores.eval_text > by[mag].scores.eval_text)) fail('KD eval_text score not above magnitude alone');
// A plain re-computation of every front from the listed variants.
const axes = { bytes: (v) => v.bytes, flops: (v) => v.flops_per_token, latency: (v) => v.latency_ms || 0 };
for (const [axis, cost] of Object.entries(axes)) {
  const measured = f.variants.filter((v) => cost(v) > 0);
  const opt = measured.filter((v) => !measured.some((w) => w !== v && cost(w) <= cost(v) &&
      w.quality >= v.quality && (cost(w) < cost(v) || w.quality > v.quality))).map((v) => v.name).sort();
  if (JSON.stringify(opt) !== JSON.stringify([...f.fronts[axis].optimal].sort())) fail(axis + ': ' + opt + ' vs ' + f.fronts[axis].optimal);
}
// Quality is the mean of the listed task scores.
for (const v of f.variants) {
  const q = (v.scores.copa + v.scores.eval_text) / 2;
  if (Math.abs(q - v.quality) > 1e-9) fail('quality of ' + v.name);
}
// ELUE with the store's other variants as the baseline.
for (const v of f.variants.filter((v) => v.kind === 'compressed')) {
  if (!v.elue || v.elue.references.length !== 4) fail('ELUE of ' + v.name + ' lacks the other variants');
}
console.log('front ok: bytes ' + f.fronts.bytes.optimal.join(',') + ' | latency ' + f.fronts.latency.optimal.join(','));
JS

# By model digest: the anchor is the newest job (the distillation one).
sq pareto --model "$MODEL" --json >"$T/front2.json" || fail "squeeze pareto --model DIGEST"
grep -q "\"anchor_job\": \"$J_KD\"" "$T/front2.json" || fail "the newest job is not the anchor"
table=$(sq pareto --model "$MODEL") || fail "squeeze pareto --model DIGEST (table)"
grep -q "Pareto front over the store" <<<"$table" || fail "pareto table"
out=$(sq pareto --model 0000 2>&1) && fail "a job that does not exist was accepted"
rc=0
out=$(sq pareto --model "sha256:$(printf '%064d' 0)" 2>&1) || rc=$?
[ "$rc" = 2 ] || fail "an unknown model gave exit $rc (want 2): $out"

# GetReport carries the same front and the ELUE score against the store.
sq report "$J_W4" --json >"$T/report.json" || fail "report --json"
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const s = r.scores;
if (!s.pareto.store || s.pareto.store.variants.length !== 5) { console.error("no scores.pareto.store"); process.exit(1); }
if (!s.elue.store || s.elue.store.references.length !== 4) { console.error("no scores.elue.store"); process.exit(1); }
if (JSON.stringify(r.quality.evaluation.tasks) !== "[\"copa\"]" || r.quality.evaluation.task_limit !== 20 ||
    r.quality.evaluation.task_seed !== 5 || r.quality.evaluation.packed_activations !== "fp32") {
  console.error("quality.evaluation"); process.exit(1);
}
if (!/^[0-9a-f]{64}$/.test(r.quality.task_samples.copa.subset_sha256)) { console.error("subset hash"); process.exit(1); }
for (const st of r.stages) if (st.gpu_s !== 0 || st.device !== "cpu") { console.error("stage gpu"); process.exit(1); }
' "$T/report.json" || fail "report JSON checks"
# Outputs are captured before grep: `grep -q` stops reading at its first match,
# and the writer's SIGPIPE would fail the pipeline under pipefail.
w8_report=$(sq report "$J_W8" --json) || fail "report W8 --json"
grep -Eq '"packed_activations": ?"int8"' <<<"$w8_report" || fail "W8's report does not say int8 activations"
w8_get=$(sq get "$J_W8") || fail "get W8"
grep -q "agreement off, int8 activations" <<<"$w8_get" || fail "get shows no int8 activations for W8"
out=$(sq submit --recipe "$T/w8.yaml" "${common[@]}" --packed-activations int4 2>&1) && fail "--packed-activations int4 was accepted"
echo "$out" | grep -q -- "--packed-activations" || fail "a bad --packed-activations does not name the flag: $out"
sq report "$J_W4" --svg "$T/store.svg" >"$T/report.md" || fail "report --svg"
grep -q "## Pareto front over the store" "$T/report.md" || fail "report.md lacks the store front"
grep -q "## Evaluation" "$T/report.md" || fail "report.md lacks the evaluation options"
grep -q "0 (no GPU used)" "$T/report.md" || fail "report.md lacks the GPU seconds"
n=$(grep -c 'class="point" data-panel="bytes"' "$T/store.svg")
[ "$n" = 5 ] || fail "the store plot has $n points on the bytes panel (want 5)"
w4_get=$(sq get "$J_W4") || fail "get W4"
grep -q "eval       tasks copa, limit 20, seed 5, latency on, agreement off" <<<"$w4_get" || fail "get shows no eval options"
mag_get=$(sq get "$J_MAG" --json) || fail "get MAG --json"
grep -q '"eval":{"agreement":false,"latency":false,"packed_activations":"fp32","task_limit":20,"task_seed":5,"tasks":\["copa"\]}' \
  <<<"$mag_get" || fail "get --json shows no eval options: $mag_get"
log "PASS"
