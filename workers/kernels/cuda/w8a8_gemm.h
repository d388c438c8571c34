// W8A8 int8 x int8 GEMM on the GPU, the contract of the CPU kernel
// (workers/kernels/cpu/int8_gemm.h):
//
//   d[i, j] = sum_c a[i, c] * w[j, c]                          exact int32 (dp4a)
//   y[i, j] = float(d[i, j]) * a_scale[i] * w_scale[j] (+ bias[j])
//
// evaluated left to right with one rounding per operation (no fused
// multiply-add), so y is bit-identical to the CPU reference (tested). a [m, k]
// and w [n, k] row-major int8 (any value, -128 too), y [m, n] fp32. All
// pointers are device pointers. Requires k <= 2^17 (int32 sums cannot
// overflow) and m, n, k >= 1.
#pragma once

#include <cstdint>

#include "workers/kernels/cuda/gpu_status.h"

namespace squeeze::gpu {

GpuStatus Int8GemmNT(const int8_t* a, int64_t m, int64_t k, const float* a_scales, const int8_t* w, int64_t n,
                     const float* w_scales, const float* bias, float* y, void* stream = nullptr);

// Plain CPU reference on host pointers (the same expression, -ffp-contract=off).
void Int8GemmNTReference(const int8_t* a, int64_t m, int64_t k, const float* a_scales, const int8_t* w, int64_t n,
                         const float* w_scales, const float* bias, float* y);

}  // namespace squeeze::gpu
