// AVX-VNNI version of the int8 panel GEMM core (int8_panel_gemm.h): VEX
// vpdpbusd on 8 lanes (_mm256_dpbusd_avx_epi32; Alder Lake+, Zen 5),
// compiled with -mavx2 -mfma -mavxvnni in this file only; the tile skeleton
// is int8_panel_gemm_avx2.inc. vpdpbusd adds the 4 exact u8 x s8 products of
// a lane to its int32 (wrapping like the reference), for any code width.
#include <immintrin.h>

#include <cstring>

#include "workers/kernels/cpu/int8_panel_gemm.h"

namespace squeeze::kernels::internal {
namespace {

#include "workers/kernels/cpu/int8_panel_gemm_avx2.inc"

struct VnniOps {
  template <int H, int T>
  static inline void Chunk(const uint8_t* codes, const int8_t* const* qa, int64_t c, __m256i (&acc)[H][T]) {
    #pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      __m256i w[H];
      #pragma GCC unroll 4
      for (int h = 0; h < H; ++h) w[h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 64 * j + 32 * h));
      #pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m256i b = _mm256_set1_epi32(Load4(qa[t] + c + 4 * j));
        #pragma GCC unroll 4
        for (int h = 0; h < H; ++h) acc[h][t] = _mm256_dpbusd_avx_epi32(acc[h][t], w[h], b);
      }
    }
  }
};

}  // namespace

void Int8PanelGemmAvxVnni(const Int8Panel& p, const Int8PanelActivations& x, const float* bias, float* y,
                          int64_t ldy) {
  // 2 halves x 6 tokens: 12 int32 accumulators, 2 code vectors and a
  // broadcast in the 16 registers (8 loads per 12 vpdpbusd).
  if (p.rows > 8) {
    AllTokens<VnniOps, 2, 6>(p, 0, x, bias, y, ldy);
  } else {
    AllTokens<VnniOps, 1, 6>(p, 0, x, bias, y, ldy);
  }
}

}  // namespace squeeze::kernels::internal
