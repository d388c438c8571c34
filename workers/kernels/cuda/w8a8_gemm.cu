// Tiled dp4a GEMM: a block computes a 64 x 64 tile of y with 256 threads
// (4 x 4 outputs each), staging 64 x 64-byte slices of a and w in shared
// memory as 32-bit words (rows padded by one word: no bank conflicts). Bytes
// past k are zero, so they add nothing to the exact int32 sums.
#include <cuda_runtime.h>

#include <string>

#include "workers/kernels/cuda/cuda_check.h"
#include "workers/kernels/cuda/w8a8_gemm.h"

namespace squeeze::gpu {
namespace {

constexpr int kTile = 64;        // rows of a / rows of w per block
constexpr int kKBytes = 64;      // k slice in bytes
constexpr int kKWords = kKBytes / 4;

// Packs 4 bytes of row `row` at column c (zero past k) into a word.
template <bool ALIGNED>
__device__ __forceinline__ int LoadWord(const int8_t* base, int64_t rows, int64_t k, int64_t row, int64_t c) {
  if (row >= rows) return 0;
  const int8_t* p = base + row * k;
  if (ALIGNED && c + 4 <= k) return __ldg(reinterpret_cast<const int*>(p + c));
  uint32_t v = 0;
  for (int t = 0; t < 4; ++t) {
    if (c + t < k) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[c + t])) << (8 * t);
  }
  return static_cast<int>(v);
}

template <bool ALIGNED>
__global__ void __launch_bounds__(256) Int8GemmKernel(const int8_t* __restrict__ a, int64_t m, int64_t k,
                                                      const float* __restrict__ a_scales,
                                                      const int8_t* __restrict__ w, int64_t n,
                                                      const float* __restrict__ w_scales,
                                                      const float* __restrict__ bias, float* __restrict__ y) {
  __shared__ int as[kTile][kKWords + 1];
  __shared__ int ws[kTile][kKWords + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t i0 = static_cast<int64_t>(blockIdx.y) * kTile, j0 = static_cast<int64_t>(blockIdx.x) * kTile;
  int d[4][4] = {};
  for (int64_t c0 = 0; c0 < k; c0 += kKBytes) {
    // 64 rows x 16 words per operand = 1024 words: 4 per thread.
    for (int t = threadIdx.x; t < kTile * kKWords; t += 256) {
      const int r = t / kKWords, cw = t % kKWords;
      as[r][cw] = LoadWord<ALIGNED>(a, m, k, i0 + r, c0 + 4 * cw);
      ws[r][cw] = LoadWord<ALIGNED>(w, n, k, j0 + r, c0 + 4 * cw);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kKWords; ++kk) {
      int av[4], wv[4];
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        av[q] = as[ty + 16 * q][kk];
        wv[q] = ws[tx + 16 * q][kk];
      }
#pragma unroll
      for (int p = 0; p < 4; ++p)
#pragma unroll
        for (int q = 0; q < 4; ++q) d[p][q] = __dp4a(av[p], wv[q], d[p][q]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    const int64_t i = i0 + ty + 16 * p;
    if (i >= m) continue;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t j = j0 + tx + 16 * q;
      if (j >= n) continue;
      float v = __fmul_rn(__fmul_rn(__int2float_rn(d[p][q]), a_scales[i]), w_scales[j]);
      if (bias != nullptr) v = __fadd_rn(v, bias[j]);
      y[i * n + j] = v;
    }
  }
}

}  // namespace

GpuStatus Int8GemmNT(const int8_t* a, int64_t m, int64_t k, const float* a_scales, const int8_t* w, int64_t n,
                     const float* w_scales, const float* bias, float* y, void* stream) {
  if (m < 1 || n < 1 || k < 1) {
    return GpuStatus::Error("Int8GemmNT: m, n, k must be >= 1 (got " + std::to_string(m) + ", " + std::to_string(n) +
                            ", " + std::to_string(k) + ")");
  }
  if (k > (int64_t{1} << 17)) return GpuStatus::Error("Int8GemmNT: k " + std::to_string(k) + " exceeds 2^17");
  if ((m + kTile - 1) / kTile > 65535) return GpuStatus::Error("Int8GemmNT: m " + std::to_string(m) + " too large");
  if (a == nullptr || w == nullptr || a_scales == nullptr || w_scales == nullptr || y == nullptr) {
    return GpuStatus::Error("Int8GemmNT: a, w, a_scales, w_scales and y must be device pointers, got null");
  }
  const dim3 grid(static_cast<unsigned>((n + kTile - 1) / kTile), static_cast<unsigned>((m + kTile - 1) / kTile));
  const bool aligned = k % 4 == 0 && reinterpret_cast<uintptr_t>(a) % 4 == 0 && reinterpret_cast<uintptr_t>(w) % 4 == 0;
  auto s = static_cast<cudaStream_t>(stream);
  if (aligned) {
    Int8GemmKernel<true><<<grid, 256, 0, s>>>(a, m, k, a_scales, w, n, w_scales, bias, y);
  } else {
    Int8GemmKernel<false><<<grid, 256, 0, s>>>(a, m, k, a_scales, w, n, w_scales, bias, y);
  }
  SQ_CUDA_RETURN_IF_LAUNCH_FAILED("Int8GemmKernel launch");
  return GpuStatus::Ok();
}

}  // namespace squeeze::gpu
