#!/usr/bin/env bash
# What one call on a lent GPU machine runs (from the repository root):
# configure + build the standalone CUDA project, run its tests, then
# bench_cuda, then compute-sanitizer memcheck on the kernel tests. Logs go to
# $OUT (or /tmp/cuda-device-out). usage: device_run.sh [--quick] [--no-sanitizer]
set -uo pipefail
OUT=${OUT:-/tmp/cuda-device-out}
mkdir -p "$OUT"
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
B=/tmp/sq-cuda-build
QUICK=""
SAN=1
NCU=0
for a in "$@"; do
  case "$a" in --quick) QUICK=--quick ;; --no-sanitizer) SAN=0 ;; --ncu) NCU=1 ;; esac
done
{
  echo "== probe"; date -u; nvcc --version | tail -2; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
  cmake --version | head -1
  for h in cublas_v2.h cusolverDn.h cusparseLt.h; do
    f=$(find / -name "$h" -not -path '*/proc/*' 2>/dev/null | head -1); echo "$h: ${f:-absent}"
  done
} 2>&1 | tee "$OUT/probe.log"
GT=()
[ -d build-cuda-carry/googletest ] && GT=(-DSQ_GTEST_DIR=$PWD/build-cuda-carry/googletest)
echo "== build"
cmake -S workers/kernels/cuda -B $B -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 "${GT[@]}" > "$OUT/build.log" 2>&1 &&
  cmake --build $B -j16 >> "$OUT/build.log" 2>&1
rc=$?
tail -30 "$OUT/build.log" | grep -E "error|FAILED|warning" | head -30
[ $rc -eq 0 ] || { echo "BUILD FAILED"; tail -60 "$OUT/build.log"; exit 1; }
echo "== tests"
$B/cuda_kernels_tests 2>&1 | tee "$OUT/tests.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |FAILED|Failure|error" | head -40
if [ $NCU -eq 1 ] && command -v ncu >/dev/null; then
  echo "== ncu (4096x11008 int4 batch 1, tensor-core variants)"
  timeout 200 ncu -k 'regex:Mma(Gemv|Pipe)Kernel' -c 3 --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis $B/bench_cuda --profile \
    > "$OUT/ncu.log" 2>&1
  grep -E "MmaGemvKernel|MmaPipeKernel|^ +(Duration|DRAM Throughput|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per Thread|Issued Warp Per Scheduler|No Eligible|Active Warps Per Scheduler|Eligible Warps Per Scheduler|Warp Cycles Per Issued Instruction)" "$OUT/ncu.log" | sed -E 's/\(int, int, int.*//' | cut -c1-150
fi
echo "== bench"
$B/bench_cuda $QUICK 2>&1 | tee "$OUT/bench.log"
if [ $SAN -eq 1 ] && command -v compute-sanitizer >/dev/null; then
  echo "== compute-sanitizer memcheck (kernel tests)"
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $B/cuda_kernels_tests \
    --gtest_filter='PackedIntGemv.EveryRowsPerWarp*:PackedIntGemv.Extreme*:PackedIntGemv.TensorCore*:Int8Gemm.*:GptqGpu.*' > "$OUT/sanitizer.log" 2>&1
  echo "sanitizer rc=$?"; grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/sanitizer.log" | head
fi
