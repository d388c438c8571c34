#!/usr/bin/env bash
# Builds every unit-test binary (tests/unit/*, targets unit_*) with
# SQUEEZE_SANITIZE=ON (ASan + UBSan) in BUILD_DIR and runs them (ctest -L unit).
# Any sanitizer report fails the run: UBSan halts on the first error, ASan
# reports leaks (LeakSanitizer) too.
#   scripts/test-sanitize.sh [BUILD_DIR (build-asan)] [JOBS (nproc)] [TARGETS (all unit_*)]
# e.g. scripts/test-sanitize.sh build-asan 2 "unit_formats unit_tokenizer"
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="$(realpath -m "${1:-$here/build-asan}")"  # absolute: the tests run from inside it
jobs="${2:-$(nproc)}"
start=$(date +%s)
# -O1 -g keeps stacks readable and the build tolerable on 2 cores; UB aborts
# (-fno-sanitize-recover) instead of printing and going on; CUDA off (the
# device code is checked by compute-sanitizer on a GPU, not here).
cmake -S "$here" -B "$build_dir" -G Ninja -DSQUEEZE_SANITIZE=ON -DSQUEEZE_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug \
  "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g" "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" \
  -DCMAKE_CXX_FLAGS=-fno-sanitize-recover=undefined -DCMAKE_C_FLAGS=-fno-sanitize-recover=undefined >/dev/null
targets="${3:-$(ninja -C "$build_dir" -t targets all | sed -n 's/^\(unit_[A-Za-z0-9_]*\): .*/\1/p' | sort -u | tr '\n' ' ')}"
if [ -z "$targets" ]; then echo "test-sanitize: no unit_* targets in $build_dir" >&2; exit 1; fi
echo "test-sanitize: building $targets"
cmake --build "$build_dir" -j "$jobs" --target $targets
built=$(date +%s)
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=0:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
rc=0
# Only the tests of the binaries built (ctest -R on their discovered names
# would be fragile): run each binary's tests through ctest by label, skipping
# tests whose binary was not built.
# With TARGETS given, the binaries run one after the other and a table
# (binary, tests, seconds, exit, sanitizer reports) ends the run; each log is
# kept in BUILD_DIR/sanitize-logs/<binary>.log. GoogleTest reads
# GTEST_FILTER from the environment, so a slow case can be left out by name
# (say which in the record: GTEST_FILTER='-Suite.SlowCase').
if [ -n "${3:-}" ]; then
  mkdir -p "$build_dir/sanitize-logs"
  table="$(printf '%-18s %6s %8s %5s %s' binary tests seconds exit sanitizer_reports)"
  for t in $targets; do
    exe="$(find "$build_dir/tests" -type f -name "$t" -perm -u+x | head -1)"
    [ -n "$exe" ] || { echo "test-sanitize: $t not built" >&2; rc=1; continue; }
    log="$build_dir/sanitize-logs/$t.log"
    n="$("$exe" --gtest_list_tests | grep -c '^  ' || true)"
    t0=$(date +%s)
    trc=0
    (cd "$build_dir" && "$exe" --gtest_brief=1) >"$log" 2>&1 || trc=$?
    tail -20 "$log"
    reports="$(grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log" || true)"
    table+="$(printf '\n%-18s %6s %8s %5s %s' "$t" "$n" "$(( $(date +%s) - t0 ))" "$trc" "$reports")"
    [ "$trc" -eq 0 ] || rc=$trc
  done
  echo "$table"
else
  (cd "$build_dir" && ctest -L unit --output-on-failure -j "$jobs" --timeout 900) || rc=$?
fi
end=$(date +%s)
echo "test-sanitize: build $((built - start)) s, tests $((end - built)) s (exit $rc)"
exit $rc
