// AVX2 repacker of packed int4 / int8 codes into the int8 panel layout
// (int8_panel_gemm.h, packed_int_panel.h), for the AVX2 panel cores: per
// 32-column chunk and half panel of 8 rows, each row's codes are widened to
// u8 in natural column order (4-bit: low nibble = even column) and the 8 x 8
// dwords transposed to [quad][row]. Moves only: writes exactly the bytes of
// RepackPackedIntPanelReference (tested). Also the AVX2 activation
// quantizer of the panel path (QuantizePanelActivations).
#include <immintrin.h>

#include <cstring>

#include "workers/kernels/cpu/packed_int_panel.h"

namespace squeeze::kernels::internal {
namespace {

#include "workers/kernels/cpu/int8_panel_transpose_avx2.inc"

}  // namespace

void RepackCodesAvx2(const uint8_t* const* rows, int num_bits, int64_t full_chunks, uint8_t* codes) {
  const __m128i m4 = _mm_set1_epi8(0x0f);
  const int64_t row_bytes_per_chunk = num_bits == 4 ? 16 : 32;
  const int64_t chunks_per_line = 64 / row_bytes_per_chunk;
  for (int64_t k = 0; k < full_chunks; ++k) {
    // 16 row streams: fetch each row's line 512 bytes ahead (as the AVX-512
    // repacker; prefetches never fault).
    if (k % chunks_per_line == 0) {
      for (int l = 0; l < 16; ++l) {
        _mm_prefetch(reinterpret_cast<const char*>(rows[l] + k * row_bytes_per_chunk + 512), _MM_HINT_T0);
      }
    }
    uint8_t* out = codes + k * kPanelChunkBytes;
    for (int h = 0; h < 2; ++h) {
      __m256i r[8];
      for (int l = 0; l < 8; ++l) {
        const uint8_t* src = rows[8 * h + l];
        if (num_bits == 4) {
          const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16 * k));
          const __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
          r[l] = _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));  // columns 0..15 | 16..31
        } else {
          r[l] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32 * k));
        }
      }
      Transpose8x8Dwords(r);
      for (int j = 0; j < 8; ++j) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 64 * j + 32 * h), r[j]);
    }
  }
}

}  // namespace squeeze::kernels::internal

namespace squeeze::kernels::internal {
namespace {

// Horizontal max / sum of 8 lanes (max and int32 addition are exact in any
// order).
inline float HMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

inline int32_t HSum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

}  // namespace

// QuantizeActivationGroups' arithmetic 8 columns at a time (the AVX-512
// quantizer's, in 256 bits): amax with vmaxps(|x|, m) (keeps m when |x| is
// NaN, as std::max(m, |x|)), x * inv rounded to nearest even (vroundps, as
// std::nearbyint), clamped with vmaxps(v, -127) (NaN -> -127, as
// std::max(-127, v)) then vminps(v, 127); tails by masked loads (zeros)
// and a partial store.
void QuantizeGroupsAvx2(const PackedIntWeights& w, const float* x, int64_t n, int8_t* qa, int64_t qa_stride,
                        float* a, int32_t* qsum) {
  const int64_t cols = w.cols, ng = w.groups_per_row, G = ng == 1 ? cols : w.group_size;
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * cols;
    int8_t* qi = qa + i * qa_stride;
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * G, c1 = c0 + G < cols ? c0 + G : cols;
      __m256 m = _mm256_setzero_ps();
      for (int64_t c = c0; c < c1; c += 8) {
        const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(c1 - c)), iota);
        m = _mm256_max_ps(_mm256_and_ps(_mm256_maskload_ps(xi + c, k), abs_mask), m);
      }
      const float amax = HMax(m);
      a[i * ng + g] = amax / 127.0f;
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      const __m256 iv = _mm256_set1_ps(inv);
      __m256i sum = _mm256_setzero_si256();
      for (int64_t c = c0; c < c1; c += 8) {
        const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(c1 - c)), iota);
        __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_maskload_ps(xi + c, k), iv),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        const __m256i q = _mm256_and_si256(_mm256_cvtps_epi32(v), k);  // masked lanes 0
        sum = _mm256_add_epi32(sum, q);
        const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        const __m128i q8 = _mm_packs_epi16(q16, q16);  // bytes 0..7: the 8 codes (|q| <= 127: no saturation)
        if (c1 - c >= 8) {
          _mm_storel_epi64(reinterpret_cast<__m128i*>(qi + c), q8);
        } else {
          alignas(16) int8_t tmp[16];
          _mm_store_si128(reinterpret_cast<__m128i*>(tmp), q8);
          std::memcpy(qi + c, tmp, static_cast<size_t>(c1 - c));
        }
      }
      qsum[i * ng + g] = HSum(sum);
    }
    if (qa_stride > cols) std::memset(qi + cols, 0, static_cast<size_t>(qa_stride - cols));
  }
}

}  // namespace squeeze::kernels::internal
