// AVX2 row kernel of the Q4_0 / Q8_0 block GEMV/GEMM (compiled with -mavx2
// -mfma -mf16c). One 256-bit register per block: the 8 int32 lanes of
// _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), 1) are the partial dots
// p_b[k] of q8_0_gemm.h; blocks of even / odd index accumulate into two
// registers (lanes 0-7 / 8-15 of the reference).
//   Q4_0: u = the nibbles (0..15), p = u.a - 8 * (sum of the 4 codes).
//   Q8_0: u = |w|, a sign-adjusted by w (_mm256_sign_epi8), so pair sums
//         stay <= 2 * 128 * 127 < 2^15.
#include <immintrin.h>

#include "workers/kernels/cpu/q8_0_gemm_simd.h"

namespace squeeze::kernels::internal {
namespace {

inline float Half(const uint8_t* p) {
  return _cvtsh_ss(static_cast<unsigned short>(p[0] | (p[1] << 8)));
}

template <bool Q4, int R, int NT>
void Tile(const GgmlBlockJob& j, int64_t i0, int64_t r0) {
  const int64_t nb = j.blocks_per_row, cols = j.cols, rb = j.row_bytes;
  constexpr int64_t bb = Q4 ? 18 : 34;
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256 acc[R][NT][2];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();
  }
  const uint8_t* wrow[R];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) wrow[r] = j.w + (r0 + r) * rb;

  auto step = [&](int64_t b, int par) __attribute__((always_inline)) {
    __m256i av[NT], off[NT];
    float da[NT];
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      av[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(j.qa + (i0 + t) * cols + 32 * b));
      if (Q4) {
        off[t] = _mm256_slli_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(j.quad_sums + (i0 + t) * (cols / 4) + 8 * b)), 3);
      }
      da[t] = j.da[(i0 + t) * nb + b];
    }
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = wrow[r] + b * bb;
      const float dw = Half(blk);
      __m256i u, wq;
      if (Q4) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
        u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
        wq = u;
      } else {
        wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
        u = _mm256_sign_epi8(wq, wq);
      }
      #pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        __m256i p;
        if (Q4) {
          p = _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(u, av[t]), ones), off[t]);
        } else {
          p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_sign_epi8(av[t], wq)), ones);
        }
        const float s = dw * da[t];
        acc[r][t][par] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(s), acc[r][t][par]);
      }
    }
  };
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    step(b, 0);
    step(b + 1, 1);
  }
  if (b < nb) step(b, 0);

  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    #pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const __m256 v = _mm256_add_ps(acc[r][t][0], acc[r][t][1]);
      __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));
      h = _mm_add_ss(h, _mm_movehdup_ps(h));
      const float y = _mm_cvtss_f32(h);
      j.y[(i0 + t) * j.rows + r0 + r] = j.bias != nullptr ? y + j.bias[r0 + r] : y;
    }
  }
}

template <bool Q4>
void Rows(const GgmlBlockJob& j, int64_t i0, int64_t i1, int64_t r0, int64_t r1) {
  int64_t i = i0;
  for (; i + 4 <= i1; i += 4) {
    for (int64_t r = r0; r < r1; ++r) Tile<Q4, 1, 4>(j, i, r);
  }
  for (; i < i1; ++i) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) Tile<Q4, 4, 1>(j, i, r);
    for (; r < r1; ++r) Tile<Q4, 1, 1>(j, i, r);
  }
}

}  // namespace

void GgmlBlockRowsAvx2(const GgmlBlockJob& job, int64_t i0, int64_t i1, int64_t r0, int64_t r1) {
  if (job.q4) {
    Rows<true>(job, i0, i1, r0, r1);
  } else {
    Rows<false>(job, i0, i1, r0, r1);
  }
}

}  // namespace squeeze::kernels::internal
