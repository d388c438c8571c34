#!/usr/bin/env bash
# Run THERE (a lent GPU machine), from the repository root, with
# build-cuda-carry carried (filled by engine_bundle.sh on the development
# machine): runs the engine's device tests (GPTQ through QuantizeGptqOnDevice
# and the stage runner on cuda vs cpu, stories260K included), then
# compute-sanitizer memcheck on the random-layer GPU test. Logs go to $OUT
# (or /tmp/engine-device-out).
# usage: workers/kernels/cuda/bench/engine_device_run.sh [--no-sanitizer]
set -uo pipefail
OUT=${OUT:-/tmp/engine-device-out}
mkdir -p "$OUT"
D=$PWD/build-cuda-carry/engine
[ -x "$D/unit_device" ] || { echo "no $D/unit_device: run engine_bundle.sh on the development machine first"; exit 1; }
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
CUDA_LIB=$(dirname "$(command -v nvcc)")/../lib64
export LD_LIBRARY_PATH="$D/lib:$CUDA_LIB:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SQUEEZE_SHARED_DIR=$D/shared
{
  echo "== probe"; date -u; cat "$D/commit.txt" 2>/dev/null | head -3
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  ldd "$D/unit_device" "$D/libsqueeze_cuda_plugin.so" | grep -E "not found|libcu|libnv"
} 2>&1 | tee "$OUT/engine_probe.log"
if ! "$D/unit_device" --gtest_list_tests > /dev/null 2>&1; then
  echo "unit_device does not start with the GPU machine's libstdc++: adding the carried one"
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$D/lib-std"
  "$D/unit_device" --gtest_list_tests > /dev/null || { echo "unit_device does not start"; exit 1; }
fi
echo "== engine device tests"
"$D/unit_device" 2>&1 | tee "$OUT/engine_tests.log" |
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[       OK |FAILED|Failure|modules on|this process" | head -60
rc=${PIPESTATUS[0]}
echo "unit_device rc=$rc"
if [ "${1:-}" != "--no-sanitizer" ] && command -v compute-sanitizer >/dev/null; then
  echo "== compute-sanitizer memcheck (EngineGptqGpu.RandomLayersCudaEqualsCpu)"
  timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 "$D/unit_device" \
    --gtest_filter='EngineGptqGpu.RandomLayersCudaEqualsCpu' > "$OUT/engine_sanitizer.log" 2>&1
  echo "sanitizer rc=$?"; grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/engine_sanitizer.log" | head
fi
exit $rc
