// Direct GEMV / small GEMM with F16 or BF16 weights and fp32 activations:
//
//   y[i * ldy + j] = sum_c x[i * k + c] * widen(w[j * k + c])
//
// for x [n, k] fp32 row-major, w [m, k] 16-bit row-major (IEEE binary16 or
// bfloat16, the stored dtype of a DenseLinear), y fp32. The weights are
// widened to fp32 in registers (never written back to memory): F16 with
// vcvtph2ps (F16C), BF16 by zero-extending to 32 bits and shifting left 16.
// Both widenings are exact, so the only rounding is the fp32 accumulation.
// This is for decode / short batches, where reading 2 bytes per weight once
// is the cost (the old path widened W chunk by chunk to fp32 in memory and
// then ran the fp32 GEMM: 2 bytes read + 4 written + 4 read per weight).
//
// Versions (runtime dispatch on ActiveIsa(), cpu_features.h):
//   reference  GemmHalfNTReference: plain loops, double sums (the definition).
//   avx2       8-lane fp32 FMA; W in tiles of 4 rows against up to 4 x rows.
//   avx512     16-lane fp32 FMA, the same tiling; masked loads for the tail.
// Arithmetic (SIMD versions): every output is ONE fp32 FMA chain over k in
// lane blocks of LANES inputs in increasing order (avx512: the last partial
// block masked, then reduce_add; avx2: reduce of the full blocks, then the
// k % 8 tail added one product at a time), whatever n, which x rows share a
// tile, or how the caller splits the columns: the same x row gives
// bit-identical outputs for every n and pool size. Tolerance against the
// double reference: |err| <= 1e-5 * sum_c |x_c w_c| + 1e-6 (fp32 summation
// of up to ~11008 / LANES terms per lane; tests/unit/kernels/gemm_half_test.cc).
// Under KernelIsa::kReference the dispatcher runs the reference (slow; the
// engine then keeps its widen-then-GEMM path, see DenseLinear).
#pragma once

#include <cstdint>

namespace squeeze::kernels {

enum class HalfType { kF16, kBF16 };

const char* HalfTypeName(HalfType t);  // "f16" | "bf16"

// Single-threaded: y[i * ldy + j] for i < n, j < m (ldy >= m). Any n works;
// each block of 4 x rows re-reads W (from cache when the caller's column
// chunk fits), so it is meant for n up to a few dozen.
void GemmHalfNTStrided(HalfType type, const float* x, int64_t n, int64_t k, const uint16_t* w, int64_t m,
                       float* y, int64_t ldy);

// Plain reference: double sums of x * widen(w), rounded once to fp32.
void GemmHalfNTReference(HalfType type, const float* x, int64_t n, int64_t k, const uint16_t* w, int64_t m,
                         float* y, int64_t ldy);

// dst[i] = widen(src[i]) for i < count (exact; the same bits as
// F16ToFloat / Bf16ToFloat in workers/engine/core/half.h, which
// WidenHalfReference loops over, for every non-NaN pattern; a NaN stays a
// NaN, its payload possibly quieted by vcvtph2ps). SIMD under avx2 / avx512 (vcvtph2ps, or
// zero-extend + shift for BF16); for the many-row path of DenseLinear.
void WidenHalf(HalfType type, const uint16_t* src, int64_t count, float* dst);
void WidenHalfReference(HalfType type, const uint16_t* src, int64_t count, float* dst);

namespace internal {
void WidenHalfAvx2(HalfType type, const uint16_t* src, int64_t count, float* dst);
void WidenHalfAvx512(HalfType type, const uint16_t* src, int64_t count, float* dst);
// Per-ISA bodies (gemm_half_avx2.cc, gemm_half_avx512.cc).
void GemmHalfNTAvx2(HalfType type, const float* x, int64_t n, int64_t k, const uint16_t* w, int64_t m, float* y,
                    int64_t ldy);
void GemmHalfNTAvx512(HalfType type, const float* x, int64_t n, int64_t k, const uint16_t* w, int64_t m,
                      float* y, int64_t ldy);
}  // namespace internal

}  // namespace squeeze::kernels
