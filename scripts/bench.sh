#!/usr/bin/env bash
# make bench: the engine benchmark (prefill/decode tokens/s and GEMM GFLOP/s,
# each beside Eigen's own GEMM on the same shapes in the same run) and the
# service load benchmark (submissions/s, p50/p99 submit latency, WatchJob
# streams) on loopback. Figures vary with machine load: compare ratios.
#   usage: scripts/bench.sh BUILD_DIR
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac

echo "== engine (tests/bench/bench_engine)"
"$BUILD/tests/bench/bench_engine" --benchmark_counters_tabular=true
echo
echo "== service (tests/bench/service/run_bench.sh)"
bash "$ROOT/tests/bench/service/run_bench.sh" "$BUILD"
echo
echo "== kernels (tests/bench/bench_kernels): int4/int8 GEMV vs copy bandwidth, W8A8, fp32 GEMM vs Eigen"
"$BUILD/tests/bench/bench_kernels" --benchmark_counters_tabular=true
echo
echo "== batched forward (tests/bench/bench_batch): batch-1/8 decode and prefill, batched vs one sequence after another"
"$BUILD/tests/bench/bench_batch" 3
echo
echo "== GPTQ (tests/bench/bench_gptq): runtime and peak RSS on Llama-7B layer shapes vs Eigen GEMM time of its FLOPs"
"$BUILD/tests/bench/bench_gptq"
echo
echo "== sparse / low-rank layers (tests/bench/bench_sparse): bitmask 50/70/90% and 2:4 GEMV, low-rank, vs dense fp32 on Llama-7B shapes"
"$BUILD/tests/bench/bench_sparse"
echo
echo "== GGUF import (tests/bench/bench_gguf_load): Q4_0/Q8_0 kept as blocks from the start vs dequantize-then-replace, load time and peak RSS"
"$BUILD/tests/bench/bench_gguf_load"
if [ -x "$BUILD/workers/kernels/cuda/bench_cuda" ]; then
  echo
  echo "== CUDA kernels (workers/kernels/cuda/bench/bench_cuda.cc): int4/int8 GEMV vs copy bandwidth and cuBLAS fp16, GPTQ on the GPU"
  "$BUILD/workers/kernels/cuda/bench_cuda"
fi
echo
echo "== llama.cpp (tests/bench/llamacpp/run_llamacpp_bench.sh): Llama-7B-shaped model, prefill/decode tokens/s vs node-llama-cpp, int4 decode bandwidth vs copy"
bash "$ROOT/tests/bench/llamacpp/run_llamacpp_bench.sh" "$BUILD"
