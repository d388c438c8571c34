// AVX2 repacker of ggml Q4_0 / Q8_0 blocks into the int8 panel layout
// (q8_0_gemm_panel.h), for the AVX2 panel cores: per block and half panel of
// 8 rows, each row's 32 codes are formed in natural column order (Q4_0: the
// 16 low nibbles are columns 0..15, the high ones 16..31; Q8_0: qs xor 0x80)
// and the 8 x 8 dwords transposed to [quad][row]; the fp16 block scales are
// widened with F16C (exact). Lanes past the last row are 0. Writes exactly
// the bytes of RepackGgmlBlockPanelReference (tested).
#include <immintrin.h>

#include <cstring>

#include "workers/kernels/cpu/q8_0_gemm_panel.h"

namespace squeeze::kernels::internal {
namespace {

#include "workers/kernels/cpu/int8_panel_transpose_avx2.inc"

template <bool Q4>
void RepackPanel(const uint8_t* w, int64_t row_bytes, int64_t nb, int nrows, uint8_t* codes, float* scales) {
  constexpr int64_t bb = Q4 ? 18 : 34;  // bytes per block: fp16 d, then the codes
  const __m128i m4 = _mm_set1_epi8(0x0f);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < nb; ++b) {
    alignas(16) uint16_t d[16] = {};
    uint8_t* out = codes + b * kPanelChunkBytes;
    for (int h = 0; h < 2; ++h) {
      __m256i r[8];
      for (int l = 0; l < 8; ++l) {
        const int row = 8 * h + l;
        if (row >= nrows) {
          r[l] = _mm256_setzero_si256();
          continue;
        }
        const uint8_t* blk = w + row * row_bytes + b * bb;
        std::memcpy(&d[row], blk, 2);
        if (Q4) {
          const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
          r[l] = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
        } else {
          r[l] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)), flip);
        }
      }
      Transpose8x8Dwords(r);
      for (int j = 0; j < 8; ++j) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 64 * j + 32 * h), r[j]);
    }
    _mm256_storeu_ps(scales + 16 * b, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d))));
    _mm256_storeu_ps(scales + 16 * b + 8, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d + 8))));
  }
}

}  // namespace

void GgmlBlockRepackPanelAvx2(bool q4, const uint8_t* w, int64_t row_bytes, int64_t blocks_per_row, int nrows,
                              uint8_t* codes, float* scales) {
  if (q4) {
    RepackPanel<true>(w, row_bytes, blocks_per_row, nrows, codes, scales);
  } else {
    RepackPanel<false>(w, row_bytes, blocks_per_row, nrows, codes, scales);
  }
}

}  // namespace squeeze::kernels::internal
