// AVX2 version of the int8 panel GEMM core (int8_panel_gemm.h) for CPUs
// without VNNI, compiled with -mavx2 -mfma in this file only; the tile
// skeleton is int8_panel_gemm_avx2.inc. Both arithmetic variants below are
// exact (no int16 saturation, for ANY int8 activation and any code offset),
// so the results equal Int8PanelGemmReference bit for bit:
//
//  - 4-bit codes (Int8Panel::code_bits <= 4, u <= 15): vpmaddubsw(u, qa)
//    gives per int16 lane u0 * a0 + u1 * a1, |.| <= 2 * 15 * 128 = 3840;
//    the 8 quads of a chunk are summed in int16 (<= 8 * 3840 = 30720 <
//    32767), then one vpmaddwd by 1 widens the chunk's pair sums to int32.
//    2 operations (maddubs + add) per 32 products.
//  - 8-bit codes: a single vpmaddubsw could saturate (2 * 255 * 128 >
//    32767), and the sign trick of the row kernels (|q| * sign(qa, q))
//    needs a signed int8 weight, which per-row offsets zo in 0..255 do not
//    give. So the codes are split into nibbles, u = 16 hi + lo, each nibble
//    product summed over the chunk in int16 exactly as above, and widened
//    with vpmaddwd by 1 (lo) and by 16 (hi; |.| <= 2 * 16 * 30720). 4
//    operations per 32 products, plus 3 per code vector for the split
//    (shared by the tile's tokens).
#include <immintrin.h>

#include <cstring>

#include "workers/kernels/cpu/int8_panel_gemm.h"

namespace squeeze::kernels::internal {
namespace {

#include "workers/kernels/cpu/int8_panel_gemm_avx2.inc"

// 4-bit codes: int16 chunk sums of maddubs.
struct Nibble4Ops {
  template <int H, int T>
  static inline void Chunk(const uint8_t* codes, const int8_t* const* qa, int64_t c, __m256i (&acc)[H][T]) {
    __m256i s16[H][T];
    #pragma GCC unroll 4
    for (int h = 0; h < H; ++h) {
      #pragma GCC unroll 16
      for (int t = 0; t < T; ++t) s16[h][t] = _mm256_setzero_si256();
    }
    #pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      __m256i w[H];
      #pragma GCC unroll 4
      for (int h = 0; h < H; ++h) w[h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 64 * j + 32 * h));
      #pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m256i b = _mm256_set1_epi32(Load4(qa[t] + c + 4 * j));
        #pragma GCC unroll 4
        for (int h = 0; h < H; ++h) s16[h][t] = _mm256_add_epi16(s16[h][t], _mm256_maddubs_epi16(w[h], b));
      }
    }
    const __m256i ones = _mm256_set1_epi16(1);
    #pragma GCC unroll 4
    for (int h = 0; h < H; ++h) {
      #pragma GCC unroll 16
      for (int t = 0; t < T; ++t) acc[h][t] = _mm256_add_epi32(acc[h][t], _mm256_madd_epi16(s16[h][t], ones));
    }
  }
};

// 8-bit codes: the nibble split.
struct Split8Ops {
  template <int H, int T>
  static inline void Chunk(const uint8_t* codes, const int8_t* const* qa, int64_t c, __m256i (&acc)[H][T]) {
    __m256i lo16[H][T], hi16[H][T];
    #pragma GCC unroll 4
    for (int h = 0; h < H; ++h) {
      #pragma GCC unroll 16
      for (int t = 0; t < T; ++t) lo16[h][t] = hi16[h][t] = _mm256_setzero_si256();
    }
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    #pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      __m256i lo[H], hi[H];
      #pragma GCC unroll 4
      for (int h = 0; h < H; ++h) {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 64 * j + 32 * h));
        lo[h] = _mm256_and_si256(w, m4);
        hi[h] = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
      }
      #pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m256i b = _mm256_set1_epi32(Load4(qa[t] + c + 4 * j));
        #pragma GCC unroll 4
        for (int h = 0; h < H; ++h) {
          lo16[h][t] = _mm256_add_epi16(lo16[h][t], _mm256_maddubs_epi16(lo[h], b));
          hi16[h][t] = _mm256_add_epi16(hi16[h][t], _mm256_maddubs_epi16(hi[h], b));
        }
      }
    }
    const __m256i ones = _mm256_set1_epi16(1), sixteen = _mm256_set1_epi16(16);
    #pragma GCC unroll 4
    for (int h = 0; h < H; ++h) {
      #pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        acc[h][t] = _mm256_add_epi32(acc[h][t], _mm256_add_epi32(_mm256_madd_epi16(lo16[h][t], ones),
                                                                 _mm256_madd_epi16(hi16[h][t], sixteen)));
      }
    }
  }
};

}  // namespace

void Int8PanelGemmAvx2(const Int8Panel& p, const Int8PanelActivations& x, const float* bias, float* y,
                       int64_t ldy) {
  if (p.code_bits <= 4) {
    // 2 halves x 4 tokens: 8 int16 sums, 2 code vectors and a broadcast in
    // registers; the 8 int32 accumulators (touched once per chunk) partly
    // on the stack. Measured faster than 2 x 3 (all in registers) by 15-30%
    // on packed int4 g32 / g128 (4096 x 4096, n = 128, this machine).
    if (p.rows > 8) {
      AllTokens<Nibble4Ops, 2, 4>(p, 0, x, bias, y, ldy);
    } else {
      AllTokens<Nibble4Ops, 1, 6>(p, 0, x, bias, y, ldy);
    }
  } else {
    // One half at a time, 4 tokens: 8 int16 sums, 4 int32 accumulators,
    // lo / hi codes, the mask and a broadcast (5 tokens measured no better).
    AllTokens<Split8Ops, 1, 4>(p, 0, x, bias, y, ldy);
    if (p.rows > 8) AllTokens<Split8Ops, 1, 4>(p, 1, x, bias, y, ldy);
  }
}

}  // namespace squeeze::kernels::internal
