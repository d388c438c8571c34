// AVX2 dequantization of packed int4 / int8 weights; see
// packed_int_dequant_simd.h. 8 columns per vector: u8 codes widened to
// int32, minus zu, converted, times the group scale.
#include <immintrin.h>

#include "workers/kernels/cpu/packed_int_dequant_simd.h"

namespace squeeze::kernels::internal {
namespace {

// Columns from the low 8 bytes of u8.
inline void Store8(const __m128i u8, uint32_t zu, float s, float* dst) {
  const __m256i d = _mm256_sub_epi32(_mm256_cvtepu8_epi32(u8), _mm256_set1_epi32(static_cast<int32_t>(zu)));
  _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(s)));
}

inline void Store16(const __m128i u8, uint32_t zu, float s, float* dst) {
  Store8(u8, zu, s, dst);
  Store8(_mm_srli_si128(u8, 8), zu, s, dst + 8);
}

inline void Unit4(const uint8_t* bytes, uint32_t zu, float s, float* dst) {
  const __m128i m4 = _mm_set1_epi8(0x0f);
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes));
  const __m128i lo = _mm_and_si128(b, m4);                     // even columns
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4);  // odd columns
  Store16(_mm_unpacklo_epi8(lo, hi), zu, s, dst);              // columns 0..15
  Store16(_mm_unpackhi_epi8(lo, hi), zu, s, dst + 16);         // columns 16..31
}

inline void Unit8(const uint8_t* bytes, uint32_t zu, float s, float* dst) {
  Store16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes)), zu, s, dst);
  Store16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + 16)), zu, s, dst + 16);
}

#include "workers/kernels/cpu/packed_int_dequant_kernel.inc"

}  // namespace

void PackedIntDequantBlockAvx2(const PackedIntWeights& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* dst,
                               int64_t ld) {
  if (w.num_bits == 4) {
    DequantRows<4>(w, r0, r1, c0, c1, dst, ld);
  } else {
    DequantRows<8>(w, r0, r1, c0, c1, dst, ld);
  }
}

}  // namespace squeeze::kernels::internal
