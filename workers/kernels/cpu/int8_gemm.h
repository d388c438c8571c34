// W8A8 int8 x int8 GEMM (SmoothQuant-style linear layers):
//
//   d[i, j] = sum_c a[i, c] * w[j, c]                      exact int32
//   y[i, j] = float(d[i, j]) * a_scale[i] * w_scale[j] (+ bias[j])   fp32, left to right
//
// a: int8 activations [m, k] row-major, one scale per row (token);
// w: int8 weights [n, k] row-major ([out, in], as every linear), one scale
// per output row; y [m, n] fp32. The fp32 expression is evaluated exactly as
// written (no contraction), so every version gives bit-identical y, equal to
// W8A8Linear's plain loop (workers/methods/quant/w8a8_linear.cc) given the
// same int8 rows and scales: W8A8Linear::Forward can call Int8GemmNT.
//
// Versions: reference (plain int32 loops); AVX2 (_mm256_maddubs_epi16 on
// |w| x sign-adjusted a; needs a in [-127, 127], else the dispatcher runs
// the reference); AVX-512 (same trick on 512 bits); AVX-512 VNNI
// (vpdpbusd on (a + 128) as u8, minus 128 * sum(w): any int8 input).
// Columns of y are split over the pool in fixed chunks; each output is
// computed identically whatever the split. Requires k <= 2^17 (int32 sums).
#pragma once

#include <cstdint>

#include "workers/engine/core/thread_pool.h"

namespace squeeze::kernels {

void Int8GemmNT(const int8_t* a, int64_t m, int64_t k, const float* a_scales, const int8_t* w, int64_t n,
                const float* w_scales, const float* bias, float* y, ThreadPool& pool);
void Int8GemmNTReference(const int8_t* a, int64_t m, int64_t k, const float* a_scales, const int8_t* w,
                         int64_t n, const float* w_scales, const float* bias, float* y);

// The int32 dot products alone: d [m, n].
void Int8DotNT(const int8_t* a, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* d, ThreadPool& pool);
void Int8DotNTReference(const int8_t* a, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* d);

// Symmetric per-row (per-token) quantization of x [m, k], the convention of
// QuantizeRowInt8 (workers/methods/quant/int8_matmul.h):
// scale[i] = max|x[i, :]| / 127 (1 for an all-zero row),
// q[i, c] = clamp(round_half_away(x[i, c] / scale[i]), -127, 127).
void QuantizeRowsInt8(const float* x, int64_t m, int64_t k, int8_t* q, float* scales);

namespace internal {
// d[i * ldd + j] for i < m, j < n; the ISA bodies (int8_gemm_avx*.cc).
// Avx2 / Avx512 need a in [-127, 127]; Avx512Vnni takes au = a + 128 (u8).
void Int8DotAvx2(const int8_t* a, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* d, int64_t ldd);
void Int8DotAvx512(const int8_t* a, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* d, int64_t ldd);
void Int8DotAvx512Vnni(const uint8_t* au, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* d,
                       int64_t ldd);
}  // namespace internal

}  // namespace squeeze::kernels
