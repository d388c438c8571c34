// Weight-only int4 / int8 GEMV / small-batch GEMM on the GPU, reading the
// packed layout of PackedIntLinear (workers/methods/quant/packed_int_linear.h)
// and of the CPU kernels (workers/kernels/cpu/packed_int_gemm.h) byte for
// byte, so a stored layer's tensors go to the device unchanged (no repack):
//
//   row r = words_per_row 32-bit words; value c at bit (c % per_word) * bits
//   of word c / per_word (per_word = 32 / bits) as the code u = q - qmin,
//   qmin = -2^(bits-1); padding slots hold u = 0. scales fp32 and optional
//   zero points int32 [rows, groups_per_row]; group g covers columns
//   [g * group_size, (g + 1) * group_size).
//
//   y[i, r] = sum_c x[i, c] * (q[r, c] - z[r, g(c)]) * s[r, g(c)] (+ bias[r])
//
// Why no repack: for batch 1..16 the product is bound by reading W once, and
// both kernels read the layout as stored with full 32-byte sectors: the
// CUDA-core kernel has a warp read 32 consecutive words of a row (128
// contiguous bytes) and each lane the x vector of its word from shared memory
// (16 / 8 bytes, no bank conflicts); the tensor-core kernel has 4 lanes read
// 64 contiguous bytes of a row and feeds mma.sync with a permuted k order
// that x follows (PRMT in registers), see packed_int_gemv.cu. A Marlin-style
// offline repack would only save those few PRMTs.
//
// Precision: x and y are fp16 (passed as uint16_t bit patterns), bias fp32.
// The kernel dequantizes exactly (q - z is an exact small integer in fp32),
// multiplies by fp32 x, sums each word's per_word products in fp32, scales
// by s, accumulates in fp32 and rounds the result to fp16 once. Against the
// double-precision reference (PackedIntGemvReference on the same fp16 x):
//   |y - ref| <= 2^-11 |ref| + 1e-5 * sum_c |x_c w_c| + 2^-24   (tested)
// (the first term is the final fp16 rounding, the second fp32 summation).
//
// Supported: bits 4 or 8; contiguous groups (no g_idx: act-order "group"
// layers stay on the CPU path) whose size is a multiple of per_word, or one
// group per row; any rows, cols >= 1; n >= 1 (processed 16 rows of x at a
// time). Anything else returns an error naming the field.
#pragma once

#include <cstdint>

#include "workers/kernels/cuda/gpu_status.h"

namespace squeeze::gpu {

// Device pointers (nothing owned) with the shapes of PackedIntWeights.
struct PackedIntGpuWeights {
  int num_bits = 4;                      // 4 or 8
  int64_t rows = 0, cols = 0;            // [out, in]
  int64_t words_per_row = 0;             // ceil(cols / (32 / num_bits))
  const uint32_t* packed = nullptr;      // [rows, words_per_row]
  int64_t groups_per_row = 1;
  int64_t group_size = 0;                // columns per group (cols when groups_per_row == 1)
  const float* scales = nullptr;         // [rows, groups_per_row]
  const int32_t* zero_points = nullptr;  // [rows, groups_per_row] in q units, or null
};

// Checks shapes and support (see above); the error names the field.
GpuStatus ValidatePackedIntGpuWeights(const PackedIntGpuWeights& w);

// y [n, rows] fp16 = x [n, cols] fp16 * W^T (+ bias [rows] fp32 if non-null).
// x, y, bias are device pointers; asynchronous on `stream`.
GpuStatus PackedIntGemv(const PackedIntGpuWeights& w, const uint16_t* x, int64_t n, const float* bias,
                        uint16_t* y, void* stream = nullptr);

// Same with a chosen kernel (for tests and the benchmark's table):
//   0                 automatic (below);
//   1, 2, 4           CUDA-core kernel with that many rows per warp (any
//                     supported layout, int4 and int8);
//   kGemvTensorCores  mma.sync kernel (cols and group size multiples of 128
//                     for int4 / 64 for int8, or one group per row; packed
//                     and x 16-byte aligned; else an error).
// Automatic picks the tensor-core kernel whenever it applies, else the
// CUDA-core kernel. Both read the layout unchanged and meet the same bound.
//   kGemvTensorCoresPipe8 / Pipe16  the same mma math fed by a cp.async
//                     shared-memory pipeline (8 warps x 8 stages, 16 warps x
//                     4 stages) instead of the register double buffer
//                     (kept for the benchmark's comparison; slower on H100).
inline constexpr int kGemvTensorCores = 8;
inline constexpr int kGemvTensorCoresPipe8 = 9;
inline constexpr int kGemvTensorCoresPipe16 = 10;
GpuStatus PackedIntGemvVariant(const PackedIntGpuWeights& w, const uint16_t* x, int64_t n, const float* bias,
                               uint16_t* y, int variant, void* stream = nullptr);

// Bytes the kernel must read from device memory for W: packed words, scales
// and zero points (what "achieved GB/s" counts).
int64_t PackedIntWeightBytes(const PackedIntGpuWeights& w);

// Plain CPU reference on host pointers (same struct, host memory): dequantize
// w = float(q - z) * s and accumulate x * w in double; y in fp32 (not rounded
// to fp16) so a test sees the kernel's error. abs_sum[i, r] (if non-null)
// receives sum_c |x w| for the tolerance.
void PackedIntGemvReference(const PackedIntGpuWeights& host_w, const uint16_t* x, int64_t n, const float* bias,
                            float* y, double* abs_sum = nullptr);

}  // namespace squeeze::gpu
