#!/usr/bin/env bash
# scripts/demo.sh with no model under SQUEEZE_SHARED_DIR: it must train a
# teacher from the fortunes corpus (DEMO_TRAIN_STEPS steps, few here to stay
# fast), then compress it through a real coordinator and worker, and print
# the report. Usage: demo_fallback_test.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
FORTUNES=${FORTUNES_DIR:-/usr/share/games/fortunes}
if [ ! -d "$FORTUNES" ]; then
  echo "SKIP: $FORTUNES is absent (Debian package 'fortunes', scripts/install-deps.sh)"
  exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/demo-fallback.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/empty-shared"
set +e
SQUEEZE_SHARED_DIR=$T/empty-shared DEMO_TRAIN_STEPS=${DEMO_TRAIN_STEPS:-20} SQUEEZE_THREADS=${SQUEEZE_THREADS:-2} \
  bash "$ROOT/scripts/demo.sh" "$BUILD" >"$T/out.txt" 2>&1
rc=$?
set -e
cat "$T/out.txt"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$rc" = 0 ] || fail "demo exited $rc"
grep -q "training a small teacher on Debian's fortunes corpus" "$T/out.txt" || fail "the fallback did not run"
grep -Eq "^trained ${DEMO_TRAIN_STEPS:-20} steps \(fresh\)" "$T/out.txt" || fail "squeeze train did not finish"
grep -q "teacher/teacher/model" "$T/out.txt" || fail "the job did not use the trained teacher"
grep -q "SUCCEEDED" "$T/out.txt" || fail "the compression job did not succeed"
grep -q "perplexity" "$T/out.txt" || fail "no report printed"
echo "PASS: demo trained its own teacher and compressed it"
