#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz (built with SQUEEZE_FUZZ=ON, see
# tests/fuzz/CMakeLists.txt: fuzz_all = the readers, fuzz_deep = model loaders
# and recipe parser; whatever is built runs) one after the other and fails on
# any crash, sanitizer report, timeout or out-of-memory.
#
#   scripts/stress-fuzz.sh [--smoke] [--build-dir DIR] [--seconds N] [--targets "gguf recipe ..."]
#                          [--corpus DIR]
#
# --smoke       the short CI run (ctest fuzz_smoke): 10 s per target (unless
#               --seconds), a throw-away corpus; exits 77 (skip) when DIR has
#               no fuzz targets.
# default       the long run (make stress): 300 s per target, corpus kept in
#               DIR/fuzz-corpus/<target> so runs accumulate.
# Every run starts from the seeds (fuzz_seeds + stories260K files +
# deploy/examples recipes) and first replays tests/fuzz/regressions/<target>/
# (inputs of crashes that were found and fixed). Findings go to
# DIR/fuzz-artifacts/ (the long run also keeps each target's libFuzzer log
# there, as <target>.log). A table per target (seconds, executions, exec/s,
# coverage as libFuzzer's last cov/ft line, corpus size, result) ends the run.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
smoke=0
build_dir="$here/build-fuzz"
seconds=""
targets=""
corpus_root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --build-dir) build_dir="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --targets) targets="$2"; shift ;;
    --corpus) corpus_root="$2"; shift ;;
    *) echo "stress-fuzz: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
bin_dir="$build_dir/tests/fuzz"
if [ -z "$seconds" ]; then
  if [ "$smoke" = 1 ]; then seconds="${SQUEEZE_FUZZ_SECONDS:-10}"; else seconds="${SQUEEZE_FUZZ_SECONDS:-300}"; fi
fi
if [ -z "$targets" ]; then
  targets="$(cd "$bin_dir" 2>/dev/null && ls fuzz_* 2>/dev/null | grep -v '^fuzz_seeds$' | sed 's/^fuzz_//' | tr '\n' ' ' || true)"
fi
if [ -z "$targets" ] || [ ! -x "$bin_dir/fuzz_seeds" ]; then
  echo "stress-fuzz: no fuzz targets in $bin_dir (build them: make fuzz-build, or" \
       "cmake -DSQUEEZE_FUZZ=ON with CXX=clang++-14 and --target fuzz_all)"
  [ "$smoke" = 1 ] && exit 77
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/squeeze-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
if [ -z "$corpus_root" ]; then
  if [ "$smoke" = 1 ]; then corpus_root="$work/corpus"; else corpus_root="$build_dir/fuzz-corpus"; fi
fi
artifacts="$build_dir/fuzz-artifacts"
mkdir -p "$artifacts"

# Seeds: generated from tiny models, plus the real files when present.
seeds="$work/seeds"
"$bin_dir/fuzz_seeds" "$seeds" >/dev/null
shared="${SQUEEZE_SHARED_DIR:-$here/../shared}/models/stories260K"
if [ -f "$shared/tok512.bin" ]; then cp "$shared/tok512.bin" "$seeds/tokenizer_bin/"; fi
if [ -f "$shared/hf/config.json" ]; then cp "$shared/hf/config.json" "$seeds/hf_config/stories260K.json"; fi
# The real 1 MB checkpoints would slow every execution: the real header with a
# truncated body (a rejected input that reaches the size check) stands in.
if [ -f "$shared/stories260K.bin" ]; then head -c 4096 "$shared/stories260K.bin" >"$seeds/llama2c/stories260K_head.bin"; fi
if [ -f "$shared/hf/model.safetensors" ]; then
  head -c 8192 "$shared/hf/model.safetensors" >"$seeds/safetensors/stories260K_head.safetensors"
fi
cp "$here"/deploy/examples/*.yaml "$seeds/recipe/" 2>/dev/null || true
mkdir -p "$seeds/grpcweb_frame"
# gRPC-web: the first byte picks the entry point (see grpcweb_frame_fuzz.cc).
printf '\x00\x00\x00\x00\x00\x05hello\x80\x00\x00\x00\x0fgrpc-status:0\r\n' >"$seeds/grpcweb_frame/frames.bin"
printf '\x01AAAAAAVoZWxsbw==gAAAAA9ncnBjLXN0YXR1czowDQo=' >"$seeds/grpcweb_frame/text.bin"
printf '\x02caf\xc3\xa9 100%% done\n' >"$seeds/grpcweb_frame/message.bin"
printf '\x03application/grpc-web-text+proto; charset=utf-8' >"$seeds/grpcweb_frame/content_type.bin"

# Targets whose reader takes a path write scratch files under $TMPDIR: keep
# them in the work directory, removed on exit.
mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
summary="$work/summary"
printf '%-16s %6s %10s %9s %6s %7s %8s %s\n' target secs execs exec/s cov ft corpus result >"$summary"
for t in $targets; do
  exe="$bin_dir/fuzz_$t"
  if [ ! -x "$exe" ]; then echo "stress-fuzz: $exe missing" >&2; failed+=("$t(missing)"); continue; fi
  log="$work/$t.log"
  # 1. Regression inputs of fixed crashes must stay fixed.
  reg="$here/tests/fuzz/regressions/$t"
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
    if ! "$exe" -rss_limit_mb=2048 -malloc_limit_mb=512 "$reg"/* >"$log.reg" 2>&1; then
      echo "stress-fuzz: $t: a regression input crashes again:" >&2; tail -40 "$log.reg" >&2
      failed+=("$t(regression)"); continue
    fi
  fi
  # 2. Fuzz for $seconds from the seeds (and the kept corpus). The deep
  # targets (fuzz_deep) start from their reader's seeds.
  case "$t" in
    hf_model) seed_dir="$seeds/safetensors" ;;
    *_model) seed_dir="$seeds/${t%_model}" ;;
    *) seed_dir="$seeds/$t" ;;
  esac
  mkdir -p "$corpus_root/$t" "$artifacts/$t" "$seed_dir"
  rc=0
  t0=$(date +%s)
  "$exe" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=200000 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$t/" "$corpus_root/$t" "$seed_dir" >"$log" 2>&1 || rc=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  # Coverage as libFuzzer last printed it: cov = edges, ft = features.
  covline="$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$covline")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$covline")"
  secs=$(( $(date +%s) - t0 ))
  ncorpus="$(ls "$corpus_root/$t" | wc -l)"
  # The long run keeps each target's log beside its artifacts.
  [ "$smoke" = 1 ] || cp "$log" "$artifacts/$t.log"
  if [ "$rc" -ne 0 ]; then
    result="FAILED (exit $rc; reproducer in $artifacts/$t/)"
    failed+=("$t")
    echo "stress-fuzz: $t failed, last lines of its log:" >&2
    tail -60 "$log" >&2
  else
    result=ok
  fi
  printf '%-16s %6s %10s %9s %6s %7s %8s %s\n' "$t" "$secs" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
    "$ncorpus" "$result" >>"$summary"
done
echo "stress-fuzz: ${seconds} s per target (build $build_dir)"
cat "$summary"
if [ ${#failed[@]} -gt 0 ]; then
  echo "stress-fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
