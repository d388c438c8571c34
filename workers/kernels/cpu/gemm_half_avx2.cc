// AVX2 + FMA + F16C F16 / BF16 GEMV (compiled with the AVX2 flags; called
// only when the CPU has them). See gemm_half.h. 8 fp32 lanes; 4 W rows x up
// to 2 x rows per tile (8 accumulators: 16 ymm registers in all); the k % 8
// tail is added one product at a time after the horizontal sum.
#include <immintrin.h>

#include "workers/engine/core/half.h"
#include "workers/kernels/cpu/gemm_half.h"

namespace squeeze::kernels::internal {
namespace {

using VF = __m256;
constexpr int64_t LANES = 8;
constexpr int kMaxTileRows = 2;
inline VF VLOAD(const float* p) { return _mm256_loadu_ps(p); }
inline VF VZERO() { return _mm256_setzero_ps(); }
inline VF VFMA(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }
inline float VHSUM(VF v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <HalfType T>
inline VF WidenBlock(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (T == HalfType::kF16) {
    return _mm256_cvtph_ps(h);
  } else {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

template <HalfType T>
inline float TailDot(VF acc, const float* x, const uint16_t* w, int64_t kv, int64_t k) {
  float s = VHSUM(acc);
  for (int64_t c = kv; c < k; ++c) s += x[c] * (T == HalfType::kF16 ? F16ToFloat(w[c]) : Bf16ToFloat(w[c]));
  return s;
}

#include "workers/kernels/cpu/gemm_half_kernel.inc"

}  // namespace

void WidenHalfAvx2(HalfType type, const uint16_t* src, int64_t count, float* dst) {
  const int64_t full = count / 8 * 8;
  if (type == HalfType::kF16) {
    for (int64_t i = 0; i < full; i += 8) _mm256_storeu_ps(dst + i, WidenBlock<HalfType::kF16>(src + i));
    for (int64_t i = full; i < count; ++i) dst[i] = F16ToFloat(src[i]);
  } else {
    for (int64_t i = 0; i < full; i += 8) _mm256_storeu_ps(dst + i, WidenBlock<HalfType::kBF16>(src + i));
    for (int64_t i = full; i < count; ++i) dst[i] = Bf16ToFloat(src[i]);
  }
}

void GemmHalfNTAvx2(HalfType type, const float* x, int64_t n, int64_t k, const uint16_t* w, int64_t m, float* y,
                    int64_t ldy) {
  HalfBody(type, x, n, k, w, m, y, ldy);
}

}  // namespace squeeze::kernels::internal
