#!/usr/bin/env bash
# Our engine vs llama.cpp (npm node-llama-cpp, prebuilt CPU binaries) on the
# same machine in the same run, same thread count, CPU only.
#
# Model: random weights with real Llama-7B layer shapes (hidden 4096,
# intermediate 11008, 32 heads, vocab 32000) but only $LAYERS blocks (default
# 2: the full 32 would not fit a small CI machine; per-token work per layer is
# the same). Written once by our own tools (llamacpp_bench_models gen: GGUF
# F32 / Q8_0 / Q4_0 via our exporter, our format int8 / int4 RTN group 32 via
# SaveModel) into $SQUEEZE_LLAMACPP_BENCH_DIR (default BUILD/llamacpp-bench).
#
# Pairs (ours / llama.cpp, tokens/s, higher is better):
#   f32            our dense fp32 layers (the F32 GGUF read by our reader)  vs F32
#   q8_0 / q4_0    our format, packed int8 / int4 g32 (RTN of the same weights) vs Q8_0 / Q4_0
#   q8_0_blocks /  our lossless GGUF block layers on the very same Q8_0 / Q4_0 file
#   q4_0_blocks
#   int8a8 /       our format int8 / int4 g32 as q8_0 / q4_0, with int8 activations
#   int4a8         (squeeze --packed-activations int8; loader ours-a8) vs Q8_0 / Q4_0
# Prefill: PROMPT tokens in one call; decode: DECODE tokens one at a time.
# THREADS (default nproc) is used by both sides. On a machine shared with
# other jobs, llama.cpp's spin-waiting thread barriers suffer far more than
# our pool when a thread is descheduled: THREADS=1 then compares the kernels.
# Each side reports the median of TRIALS trials. Also the decode bandwidth of
# our int4 model (weight bytes read per token x tokens/s) as a fraction of a
# STREAM-like copy measured in the same process.
#   usage: run_llamacpp_bench.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=$BUILD/tests/bench/llamacpp_bench_models
LAYERS=${LAYERS:-2}
THREADS=${THREADS:-$(nproc)}
PROMPT=${PROMPT:-128}
DECODE=${DECODE:-32}
TRIALS=${TRIALS:-3}
DIR=${SQUEEZE_LLAMACPP_BENCH_DIR:-$BUILD/llamacpp-bench}
SHARED=${SQUEEZE_SHARED_DIR:-$ROOT/../shared}
TOKENIZER=$SHARED/models/stories260K/tok512.bin
MODULES=$ROOT/tests/node/node_modules

if [ ! -f "$TOKENIZER" ]; then
  echo "SKIP llama.cpp comparison: $TOKENIZER is absent (../shared)"; exit 0
fi
if [ ! -d "$MODULES/node-llama-cpp" ]; then
  echo "SKIP llama.cpp comparison: $MODULES/node-llama-cpp is absent (run tests/node/install.sh)"; exit 0
fi

STAMP=$DIR/.done-layers-$LAYERS
if [ ! -f "$STAMP" ]; then
  mkdir -p "$DIR"
  echo "writing the models (${LAYERS} layers of Llama-7B shapes) into $DIR"
  "$BIN" gen "$DIR" "$TOKENIZER" "$LAYERS"
  touch "$STAMP"
fi

# Fixed ids (the vocabulary is padded to 32000; every id is a valid token).
REQ=$DIR/prompt.json
awk -v p="$PROMPT" -v d="$DECODE" 'BEGIN {
  s = 12345; printf "{\"prompt_ids\": [1";
  for (i = 1; i < p; ++i) { s = (s * 1103515245 + 12345) % 2147483648; printf ", %d", 3 + s % 31997 }
  printf "], \"decode_ids\": [";
  for (i = 0; i < d; ++i) { s = (s * 1103515245 + 12345) % 2147483648; printf "%s%d", (i ? ", " : ""), 3 + s % 31997 }
  printf "]}\n" }' > "$REQ"

field() { awk -v k="$1" '/^RESULT/ { for (i = 2; i < NF; i += 2) if ($i == k) print $(i + 1) }' <<< "$2"; }

declare -A OURS THEIRS
run_ours() {  # name model loader
  echo "-- ours: $1 ($3 $2)"
  OURS[$1]=$("$BIN" run "$2" "$3" "$THREADS" "$REQ" "$TRIALS" | grep '^RESULT')
  echo "${OURS[$1]}"
}
run_theirs() {  # name model
  echo "-- llama.cpp: $1 ($2)"
  THEIRS[$1]=$(node "$ROOT/tests/bench/llamacpp/llamacpp_bench.mjs" "$MODULES" "$2" "$THREADS" "$REQ" "$TRIALS" | grep '^RESULT')
  echo "${THEIRS[$1]}"
}

echo "threads $THREADS, prompt $PROMPT tokens, decode $DECODE tokens, median of $TRIALS trials"
run_theirs f32 "$DIR/model-f32.gguf";  run_ours f32 "$DIR/model-f32.gguf" gguf
run_theirs q8_0 "$DIR/model-q8_0.gguf"; run_ours q8_0 "$DIR/ours-int8" ours; run_ours q8_0_blocks "$DIR/model-q8_0.gguf" gguf-blocks
run_ours int8a8 "$DIR/ours-int8" ours-a8
run_theirs q4_0 "$DIR/model-q4_0.gguf"; run_ours q4_0 "$DIR/ours-int4" ours; run_ours q4_0_blocks "$DIR/model-q4_0.gguf" gguf-blocks
run_ours int4a8 "$DIR/ours-int4" ours-a8
THEIRS[q8_0_blocks]=${THEIRS[q8_0]}
THEIRS[q4_0_blocks]=${THEIRS[q4_0]}
THEIRS[int8a8]=${THEIRS[q8_0]}
THEIRS[int4a8]=${THEIRS[q4_0]}

echo
printf '%-12s %14s %14s %14s %14s\n' type ours_prefill llama_prefill ours_decode llama_decode
for t in f32 q8_0 q8_0_blocks int8a8 q4_0 q4_0_blocks int4a8; do
  printf '%-12s %14s %14s %14s %14s\n' "$t" "$(field prefill_tps "${OURS[$t]}")" "$(field prefill_tps "${THEIRS[$t]}")" \
    "$(field decode_tps "${OURS[$t]}")" "$(field decode_tps "${THEIRS[$t]}")"
done
# Each row's bandwidth against the copy measured in its own process (the
# machine's bandwidth drifts between runs when it is shared).
for t in q4_0 q4_0_blocks int4a8; do
  awk -v b="$(field weight_bytes "${OURS[$t]}")" -v tps="$(field decode_tps "${OURS[$t]}")" \
    -v c="$(field copy_gbs "${OURS[$t]}")" -v t="$t" \
    'BEGIN { printf "%s decode: %.2f GB/s of weights (%.1f MB per token), copy bandwidth %.2f GB/s\n", t, b * tps / 1e9, b / 1e6, c }'
done
for t in f32 q8_0 q4_0 q8_0_blocks q4_0_blocks int8a8 int4a8; do
  for phase in prefill decode; do
    awk -v o="$(field ${phase}_tps "${OURS[$t]}")" -v l="$(field ${phase}_tps "${THEIRS[$t]}")" -v n="llamacpp_${t}_${phase}" \
      'BEGIN { printf "RATIO %s %.3f\n", n, o / l }'
  done
done
bw_ratio() {  # RATIO name, row
  awk -v b="$(field weight_bytes "${OURS[$2]}")" -v tps="$(field decode_tps "${OURS[$2]}")" \
    -v c="$(field copy_gbs "${OURS[$2]}")" -v n="$1" 'BEGIN { printf "RATIO %s %.3f\n", n, b * tps / 1e9 / c }'
}
bw_ratio int4_decode_bw_fraction q4_0
bw_ratio q4_0_blocks_decode_bw_fraction q4_0_blocks
bw_ratio int4a8_decode_bw_fraction int4a8
