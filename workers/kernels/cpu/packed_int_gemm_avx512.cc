// AVX-512 (F/BW/VL/DQ) row kernels of the packed-int GEMV/GEMM, fp32 path
// and the int8 path without VNNI (the VNNI variant is the same template,
// compiled in packed_int_gemm_avx512vnni.cc). See packed_int_gemm.h for the
// arithmetic and packed_int_gemm_simd.h for the activation layout.
#include <immintrin.h>

#include "workers/kernels/cpu/packed_int_gemm_simd.h"

namespace squeeze::kernels::internal {
namespace {

inline int64_t MinI(int64_t a, int64_t b) { return a < b ? a : b; }
inline int32_t U4(const uint8_t* row, int64_t c) { return (row[c >> 1] >> ((c & 1) * 4)) & 15; }

// ---------------------------------------------------------------- fp32 path

template <int NT, int BITS>
void F32Rows(const PackedIntJob& j, int64_t i0, int64_t r0, int64_t r1) {
  const PackedIntWeights& w = j.w;
  const int64_t cols = w.cols, ng = w.groups_per_row, G = ng == 1 ? cols : w.group_size;
  const __m128i m4 = _mm_set1_epi8(0x0f);
  constexpr int A = NT == 1 ? 4 : 2;  // independent FMA chains per x row
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = reinterpret_cast<const uint8_t*>(w.packed + r * w.words_per_row);
    __m512 tot[NT];
    float tail[NT];
    #pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
      tot[t] = _mm512_setzero_ps();
      tail[t] = 0.0f;
    }
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * G, c1 = MinI(c0 + G, cols), cf = c0 + ((c1 - c0) / kUnit) * kUnit;
      const int32_t zu = (w.zero_points != nullptr ? w.zero_points[r * ng + g] : 0) + (1 << (BITS - 1));
      const float s = w.scales[r * ng + g];
      __m512 acc[NT][A];
      #pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) {
        #pragma GCC unroll 16
        for (int q = 0; q < A; ++q) acc[t][q] = _mm512_setzero_ps();
      }
      int par = 0;  // alternates the chains between units when A == 4
      for (int64_t c = c0; c < cf; c += kUnit, par ^= 2) {
        __m512 f0, f1;
        if (BITS == 4) {
          const __m128i z8 = _mm_set1_epi8(static_cast<char>(zu));
          const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c / 2));
          const __m128i lo = _mm_sub_epi8(_mm_and_si128(b, m4), z8);
          const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), m4), z8);
          f0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo));  // even columns
          f1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi));  // odd columns
        } else {
          const __m512i z32 = _mm512_set1_epi32(zu);
          const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c));
          const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c + 16));
          f0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(b0), z32));
          f1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(b1), z32));
        }
        const int k0 = A == 4 ? par : 0;
        #pragma GCC unroll 16
        for (int t = 0; t < NT; ++t) {
          const float* xp = j.xp + (i0 + t) * cols + c;
          acc[t][k0] = _mm512_fmadd_ps(f0, _mm512_loadu_ps(xp), acc[t][k0]);
          acc[t][k0 + 1] = _mm512_fmadd_ps(f1, _mm512_loadu_ps(xp + 16), acc[t][k0 + 1]);
        }
      }
      for (int64_t c = cf; c < c1; ++c) {
        const int32_t u = BITS == 4 ? U4(row, c) : int32_t{row[c]};
        const float wv = static_cast<float>(u - zu);
        #pragma GCC unroll 16
        for (int t = 0; t < NT; ++t) tail[t] += wv * s * j.xp[(i0 + t) * cols + c];
      }
      const __m512 sv = _mm512_set1_ps(s);
      #pragma GCC unroll 16
      for (int t = 0; t < NT; ++t) {
        __m512 sum = _mm512_add_ps(acc[t][0], acc[t][1]);
        if (A == 4) sum = _mm512_add_ps(sum, _mm512_add_ps(acc[t][2 % A], acc[t][3 % A]));
        tot[t] = _mm512_fmadd_ps(sum, sv, tot[t]);
      }
    }
    #pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
      const float b = j.bias != nullptr ? j.bias[r] : 0.0f;
      j.y[(i0 + t) * w.rows + r] = _mm512_reduce_add_ps(tot[t]) + tail[t] + b;
    }
  }
}

template <int BITS>
void F32AllRows(const PackedIntJob& j, int64_t r0, int64_t r1) {
  int64_t i = 0;
  for (; i + 4 <= j.n; i += 4) F32Rows<4, BITS>(j, i, r0, r1);
  for (; i + 2 <= j.n; i += 2) F32Rows<2, BITS>(j, i, r0, r1);
  for (; i < j.n; ++i) F32Rows<1, BITS>(j, i, r0, r1);
}

#define SQ_Q8_VNNI 0
#include "workers/kernels/cpu/packed_int_gemm_q8_avx512.inc"
#undef SQ_Q8_VNNI

}  // namespace

void PackedIntRowsF32Avx512(const PackedIntJob& job, int64_t r0, int64_t r1) {
  if (job.w.num_bits == 4) {
    F32AllRows<4>(job, r0, r1);
  } else {
    F32AllRows<8>(job, r0, r1);
  }
}


void PackedIntRowsQ8Avx512(const PackedIntJob& job, int64_t r0, int64_t r1, bool vnni) {
  if (vnni) {
    PackedIntRowsQ8Avx512Vnni(job, r0, r1);
  } else {
    Q8Dispatch(job, r0, r1);
  }
}

}  // namespace squeeze::kernels::internal
