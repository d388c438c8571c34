// AVX-512 F16 / BF16 GEMV (compiled with the AVX-512 flags; called only when
// the CPU has them). See gemm_half.h. 16 fp32 lanes; 4 W rows x up to 4 x
// rows per tile (16 accumulators); the k % 16 tail is one more masked block
// of the same chain (weights and x loaded as 0 past k), then reduce_add.
#include <immintrin.h>

#include "workers/kernels/cpu/gemm_half.h"

namespace squeeze::kernels::internal {
namespace {

using VF = __m512;
constexpr int64_t LANES = 16;
constexpr int kMaxTileRows = 4;
inline VF VLOAD(const float* p) { return _mm512_loadu_ps(p); }
inline VF VZERO() { return _mm512_setzero_ps(); }
inline VF VFMA(VF a, VF b, VF c) { return _mm512_fmadd_ps(a, b, c); }

template <HalfType T>
inline __m512 Widen(__m256i h) {
  if constexpr (T == HalfType::kF16) {
    return _mm512_cvtph_ps(h);
  } else {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <HalfType T>
inline VF WidenBlock(const uint16_t* p) {
  return Widen<T>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// acc + the masked block [kv, k) (< 16 inputs; nothing past k is read),
// reduced to one float.
template <HalfType T>
inline float TailDot(VF acc, const float* x, const uint16_t* w, int64_t kv, int64_t k) {
  if (k > kv) {
    const __mmask16 m = static_cast<__mmask16>((1u << (k - kv)) - 1u);
    const VF wv = Widen<T>(_mm256_maskz_loadu_epi16(m, w + kv));
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + kv), wv, acc);
  }
  return _mm512_reduce_add_ps(acc);
}

#include "workers/kernels/cpu/gemm_half_kernel.inc"

}  // namespace

void WidenHalfAvx512(HalfType type, const uint16_t* src, int64_t count, float* dst) {
  const int64_t full = count / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (count - full)) - 1u);
  if (type == HalfType::kF16) {
    for (int64_t i = 0; i < full; i += 16) _mm512_storeu_ps(dst + i, WidenBlock<HalfType::kF16>(src + i));
    if (count > full) {
      _mm512_mask_storeu_ps(dst + full, tail, Widen<HalfType::kF16>(_mm256_maskz_loadu_epi16(tail, src + full)));
    }
  } else {
    for (int64_t i = 0; i < full; i += 16) _mm512_storeu_ps(dst + i, WidenBlock<HalfType::kBF16>(src + i));
    if (count > full) {
      _mm512_mask_storeu_ps(dst + full, tail, Widen<HalfType::kBF16>(_mm256_maskz_loadu_epi16(tail, src + full)));
    }
  }
}

void GemmHalfNTAvx512(HalfType type, const float* x, int64_t n, int64_t k, const uint16_t* w, int64_t m, float* y,
                      int64_t ldy) {
  HalfBody(type, x, n, k, w, m, y, ldy);
}

}  // namespace squeeze::kernels::internal
