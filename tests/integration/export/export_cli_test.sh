#!/usr/bin/env bash
# squeeze export on real artifacts (see CMakeLists.txt):
#  1. magnitude 2:4 -> compressed-tensors (auto = sparse-24-bitmask) in shards
#     of at most 100KB; perplexity of the reloaded export equals the
#     artifact's exactly (the sparse layers come back bit for bit);
#  2. magnitude 50% -> compressed-tensors (auto = sparse-bitmask), exact too;
#     --sparse-format sparse-24-bitmask is refused (exit 2, nothing written);
#  3. magnitude 50% -> --format hf (every layer dense) in 200kb (= 25000
#     bytes, transformers' bits rule) shards: the same perplexity up to the
#     summation order (relative 1e-6);
#  4. a bad --max-shard-size is a usage error naming the flag.
set -u
SQ=$1
SHARED_DIR=${SQUEEZE_SHARED_DIR:-$(cd "$(dirname "$0")/../../../.." && pwd)/shared}
M=$SHARED_DIR/models/stories260K/hf
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
if [ ! -f "$M/config.json" ]; then
  echo "SKIP: needs the stories260K model at $M (../shared)"
  exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/squeeze-export.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
head -c 20000 "$SHARED_DIR/data/tinystories/valid.txt" >"$T/text.txt"
ppl() { "$SQ" eval --model "$1" --text "$T/text.txt" --json | grep -o '"perplexity":[0-9.e+-]*' | cut -d: -f2; }

"$SQ" run --recipe "$REPO/deploy/examples/magnitude-2of4.yaml" --model "$M" --out "$T/p24" >/dev/null 2>"$T/run.log" ||
  fail "squeeze run magnitude-2of4"
"$SQ" run --recipe "$REPO/deploy/examples/magnitude-50.yaml" --model "$M" --out "$T/p50" >/dev/null 2>"$T/run.log" ||
  fail "squeeze run magnitude-50"

# 1. 2:4 -> sparse-24-bitmask, sharded.
"$SQ" export --model "$T/p24" --format compressed-tensors --max-shard-size 100KB --out "$T/ct24" >"$T/ct24.log" ||
  fail "export ct24: $(cat "$T/ct24.log")"
grep -q '"format": "sparse-24-bitmask"' "$T/ct24/config.json" || fail "ct24: no sparse-24-bitmask sparsity_config"
[ -f "$T/ct24/model.safetensors.index.json" ] || fail "ct24: no index"
[ ! -f "$T/ct24/model.safetensors" ] || fail "ct24: unsharded file next to the shards"
n=$(ls "$T/ct24" | grep -c '^model-0000[0-9]-of-0000[0-9]\.safetensors$')
[ "$n" -ge 3 ] || fail "ct24: $n shards, expected several at 100KB"
a=$(ppl "$T/p24") b=$(ppl "$T/ct24")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "2:4 perplexity $a (artifact) vs $b (compressed-tensors)"
echo "2:4: perplexity $a, compressed-tensors in $n shards: $b"

# 2. unstructured -> sparse-bitmask; 2:4 requested -> refused.
"$SQ" export --model "$T/p50" --format compressed-tensors --out "$T/ct50" >/dev/null || fail "export ct50"
grep -q '"format": "sparse-bitmask"' "$T/ct50/config.json" || fail "ct50: no sparse-bitmask sparsity_config"
a=$(ppl "$T/p50") b=$(ppl "$T/ct50")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "50% perplexity $a (artifact) vs $b (compressed-tensors)"
echo "50%: perplexity $a, compressed-tensors: $b"
"$SQ" export --model "$T/p50" --format compressed-tensors --sparse-format sparse-24-bitmask --out "$T/bad" \
  2>"$T/bad.err"
rc=$?
[ $rc -eq 2 ] || fail "sparse-24-bitmask of an unstructured model: exit $rc, expected 2"
grep -q 'not 2:4 sparse (row' "$T/bad.err" || fail "refusal does not say why: $(cat "$T/bad.err")"
[ ! -e "$T/bad" ] || fail "a refused export left $T/bad"

# 3. plain HF, dense, sharded at 25000 bytes.
"$SQ" export --model "$T/p50" --format hf --max-shard-size 200kb --out "$T/hf50" >/dev/null || fail "export hf50"
grep -q 'dense_f32' "$T/hf50/model-00001-of-"*.safetensors || fail "hf50: linear kinds are not dense"
c=$(ppl "$T/hf50")
awk -v a="$a" -v c="$c" 'BEGIN { d = (a - c) / a; if (d < 0) d = -d; exit !(d < 1e-6) }' ||
  fail "hf perplexity $c vs the artifact's $a"
echo "50%: plain HF (dense) perplexity $c"

# 4. GGUF: squeeze eval keeps a Q8_0 / Q4_0 file's blocks by default (the block
#    kernels run them) and dequantizes with --gguf-weights fp32; both close to
#    the artifact (int8/int4 noise), blocks and fp32 close to each other.
for ty in Q8_0 Q4_0; do
  "$SQ" export --model "$T/p50" --format gguf --type $ty --out "$T/m_$ty.gguf" >/dev/null || fail "export gguf $ty"
  "$SQ" eval --model "$T/m_$ty.gguf" --text "$T/text.txt" --json >"$T/blocks_$ty.json" || fail "eval gguf $ty"
  "$SQ" eval --model "$T/m_$ty.gguf" --text "$T/text.txt" --json --gguf-weights fp32 >"$T/fp32_$ty.json" ||
    fail "eval gguf $ty fp32"
  kind=gguf_$(echo $ty | tr 'Q' 'q')
  grep -q "\"$kind\":" "$T/blocks_$ty.json" || fail "$ty blocks: no $kind layers: $(cat "$T/blocks_$ty.json")"
  grep -q "\"gguf_q" "$T/fp32_$ty.json" && fail "$ty --gguf-weights fp32 kept blocks: $(cat "$T/fp32_$ty.json")"
  pb=$(grep -o '"perplexity":[0-9.e+-]*' "$T/blocks_$ty.json" | cut -d: -f2)
  pf=$(grep -o '"perplexity":[0-9.e+-]*' "$T/fp32_$ty.json" | cut -d: -f2)
  awk -v a="$pb" -v b="$pf" -v c="$a" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; e = (b - c) / c; if (e < 0) e = -e;
    exit !(a != b && d < 0.02 && e < 0.25) }' || fail "$ty perplexity blocks $pb, fp32 $pf, artifact $a"
  echo "gguf $ty: perplexity blocks $pb, fp32 $pf (artifact $a)"
done
"$SQ" eval --model "$T/m_Q8_0.gguf" --text "$T/text.txt" --gguf-weights fp16 2>"$T/gw.err"
rc=$?
[ $rc -eq 2 ] && grep -q -- '--gguf-weights: "fp16" is not blocks or fp32' "$T/gw.err" || fail "bad --gguf-weights: exit $rc"

# 5. usage errors.
"$SQ" export --model "$T/p50" --format hf --max-shard-size 5XB --out "$T/bad" 2>"$T/usage.err"
rc=$?
[ $rc -eq 2 ] && grep -q -- '--max-shard-size: shard size "5XB"' "$T/usage.err" || fail "bad --max-shard-size: exit $rc"
[ ! -e "$T/bad" ] || fail "a refused export left $T/bad"
echo "PASS"
