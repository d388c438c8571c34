#!/usr/bin/env bash
# The distillation comparison of issue 6, through the real CLI: on
# stories260K, compress (magnitude 50% per layer, and/or RTN 3-bit per
# channel), then train the same number of steps with each loss
#   ce          plain cross-entropy fine-tuning on the text
#   forward_kl  standard KD on the dense teacher's logits (T = 1)
#   reverse_kl  MiniLLM's divergence on student-generated samples (lmbda 1)
#   gkd         generalized JSD, beta 0.5, half the steps on-policy (lmbda 0.5)
# and print held-out perplexity (TinyStories valid, first EVAL_BYTES bytes,
# rolling window = the model's context) before / after and the fraction of
# the lost perplexity recovered: (ppl_compressed - ppl_after) /
# (ppl_compressed - ppl_dense). Training text: TinyStories train.
# Every run is `squeeze run` on a recipe written from the template below;
# the artifacts (report.json / report.md / loss curve SVG) stay in OUT.
#   usage: scripts/demo-distill-compare.sh BUILD_DIR OUT_DIR
#   env: STEPS (200) STUDENTS ("magnitude50 rtn3") LOSSES ("ce forward_kl
#        reverse_kl gkd") THREADS (0 = all) EVAL_BYTES (65536) PARALLEL (1)
set -euo pipefail

BUILD=${1:?usage: $0 BUILD_DIR OUT_DIR}
OUT=${2:?usage: $0 BUILD_DIR OUT_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SQUEEZE=$BUILD/client/squeeze
SHARED=${SQUEEZE_SHARED_DIR:-$ROOT/../shared}
MODEL=$SHARED/models/stories260K/hf
TRAIN=$SHARED/data/tinystories/train.txt
VALID=$SHARED/data/tinystories/valid.txt
STEPS=${STEPS:-200}
STUDENTS=${STUDENTS:-"magnitude50 rtn3"}
LOSSES=${LOSSES:-"ce forward_kl reverse_kl gkd"}
THREADS=${THREADS:-0}
EVAL_BYTES=${EVAL_BYTES:-65536}
PARALLEL=${PARALLEL:-1}
for f in "$SQUEEZE" "$MODEL/config.json" "$TRAIN" "$VALID"; do
  [ -e "$f" ] || { echo "distill-compare: $f is missing" >&2; exit 2; }
done
mkdir -p "$OUT"

compress_stage() {  # $1 = student
  case "$1" in
    magnitude50) cat <<'YAML'
compress_stage:
  compress_modifiers:
    MagnitudePruningModifier:
      sparsity: 0.5
      targets: [Linear]
      ignore: [lm_head]
YAML
    ;;
    rtn3) cat <<'YAML'
compress_stage:
  compress_modifiers:
    QuantizationModifier:
      ignore: [lm_head]
      config_groups:
        group_0:
          targets: [Linear]
          weights: {num_bits: 3, type: int, symmetric: true, strategy: channel}
YAML
    ;;
    *) echo "distill-compare: unknown student $1" >&2; exit 2 ;;
  esac
}

distill_stage() {  # $1 = loss
  local extra=""
  case "$1" in
    ce|forward_kl) ;;
    reverse_kl) extra="      lmbda: 1.0" ;;
    gkd) extra=$'      beta: 0.5\n      lmbda: 0.5' ;;
    *) echo "distill-compare: unknown loss $1" >&2; exit 2 ;;
  esac
  cat <<YAML
distill_stage:
  distill_modifiers:
    DistillationModifier:
      loss: $1
      steps: $STEPS
      batch_size: 8
      seq_len: 64
      lr: 0.003
      min_lr: 0.0003
      warmup_steps: 10
      max_bytes: 400000
YAML
  [ -n "$extra" ] && echo "$extra"
  return 0
}

run_one() {  # $1 = name, $2 = recipe
  local name=$1 recipe=$2
  if [ -f "$OUT/$name/report.json" ]; then return 0; fi  # done in an earlier call
  rm -rf "$OUT/$name" "$OUT/$name.work"
  local t0=$SECONDS
  "$SQUEEZE" run --recipe "$recipe" --model "$MODEL" --out "$OUT/$name" --calib "$TRAIN" --eval-text "$VALID" \
    --eval-max-bytes "$EVAL_BYTES" --threads "$THREADS" --no-latency --no-agreement >"$OUT/$name.log" 2>&1 ||
    { echo "distill-compare: $name failed (log $OUT/$name.log)" >&2; tail -5 "$OUT/$name.log" >&2; return 1; }
  echo "distill-compare: $name done in $((SECONDS - t0)) s" >&2
}

jobs_running() { jobs -rp | wc -l; }
for s in $STUDENTS; do
  compress_stage "$s" >"$OUT/$s.yaml"
  run_one "$s" "$OUT/$s.yaml" &
  while [ "$(jobs_running)" -ge "$PARALLEL" ]; do wait -n || true; done
  for l in $LOSSES; do
    { compress_stage "$s"; distill_stage "$l"; } >"$OUT/$s-$l.yaml"
    run_one "$s-$l" "$OUT/$s-$l.yaml" &
    while [ "$(jobs_running)" -ge "$PARALLEL" ]; do wait -n || true; done
  done
done
wait

# The table (perplexities from each artifact's report.json).
python3 - "$OUT" "$STUDENTS" "$LOSSES" "$STEPS" <<'PY'
import json, os, sys
out, students, losses, steps = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]
def ppl(name):
    p = os.path.join(out, name, "report.json")
    if not os.path.exists(p): return None
    q = json.load(open(p))["quality"]["perplexity"]
    return q["dense"], q["compressed"]
print(f"| student | training ({steps} steps, 8 x 64 tokens) | held-out perplexity | lost perplexity recovered |")
print("|---|---|---|---|")
for s in students:
    base = ppl(s)
    if base is None: continue
    dense, comp = base
    print(f"| dense teacher | | {dense:.3f} | |")
    print(f"| {s} | none | {comp:.3f} | 0% |")
    for l in losses:
        r = ppl(f"{s}-{l}")
        if r is None: print(f"| {s} | {l} | (failed) | |"); continue
        after = r[1]
        rec = (comp - after) / (comp - dense) if comp != dense else float("nan")
        print(f"| {s} | {l} | {after:.3f} | {100*rec:.1f}% |")
PY
