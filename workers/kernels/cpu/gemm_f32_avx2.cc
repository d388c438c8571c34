// AVX2 + FMA fp32 GEMM (6x16 register tile); see gemm_f32.h and
// gemm_f32_kernel.inc. Compiled with -mavx2 -mfma.
#include <immintrin.h>

#include <cstdlib>

#include "workers/kernels/cpu/gemm_f32.h"

namespace squeeze::kernels::internal {
namespace {

using VF = __m256;
constexpr int64_t LANES = 8;
constexpr int MR = 6;
inline VF VLOAD(const float* p) { return _mm256_loadu_ps(p); }
inline void VSTORE(float* p, VF v) { _mm256_storeu_ps(p, v); }
inline VF VZERO() { return _mm256_setzero_ps(); }
inline VF VBCAST(float s) { return _mm256_set1_ps(s); }
inline VF VFMA(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }
inline VF VADD(VF a, VF b) { return _mm256_add_ps(a, b); }
inline float VHSUM(VF v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// In place: r[c] becomes column c of the 8x8 block whose rows were r[0..7].
inline void Transpose8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int p = 0; p < 4; ++p) {  // per 128-bit lane: pairs of rows interleaved
    t[2 * p] = _mm256_unpacklo_ps(r[2 * p], r[2 * p + 1]);
    t[2 * p + 1] = _mm256_unpackhi_ps(r[2 * p], r[2 * p + 1]);
  }
  // u[4g + j], lane l: column 4l + j of rows 4g..4g+3.
  for (int g = 0; g < 2; ++g) {
    u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);      // lane 0 of both
    r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);  // lane 1 of both
  }
}

// dst[kk * 6 + i] = src[i * ld + kk] for i < 6, kk < kc (MR = 6): 8x8
// transposes of the 6 rows and 2 zero rows, 6 lanes stored per kk.
inline void PackXTile(const float* src, int64_t ld, int64_t kc, float* dst) {
  const int64_t kv = kc / 8 * 8;
  const __m256i six = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
  for (int64_t k0 = 0; k0 < kv; k0 += 8) {
    __m256 r[8];
    for (int q = 0; q < 6; ++q) r[q] = _mm256_loadu_ps(src + q * ld + k0);
    r[6] = r[7] = _mm256_setzero_ps();
    Transpose8x8(r);
    for (int q = 0; q < 8; ++q) _mm256_maskstore_ps(dst + (k0 + q) * 6, six, r[q]);
  }
  for (int64_t kk = kv; kk < kc; ++kk) {
    for (int q = 0; q < 6; ++q) dst[kk * 6 + q] = src[q * ld + kk];
  }
}

// dst[kk * 16 + jj] = src[jj * ld + kk] for jj < 16, kk < kc (NR = 16).
inline void PackWPanel(const float* src, int64_t ld, int64_t kc, float* dst) {
  const int64_t kv = kc / 8 * 8;
  for (int64_t half = 0; half < 2; ++half) {
    const float* s = src + half * 8 * ld;
    float* d = dst + half * 8;
    for (int64_t k0 = 0; k0 < kv; k0 += 8) {
      __m256 r[8];
      for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(s + q * ld + k0);
      Transpose8x8(r);
      for (int q = 0; q < 8; ++q) _mm256_storeu_ps(d + (k0 + q) * 16, r[q]);
    }
    for (int64_t kk = kv; kk < kc; ++kk) {
      for (int q = 0; q < 8; ++q) d[kk * 16 + q] = s[q * ld + kk];
    }
  }
}

#include "workers/kernels/cpu/gemm_f32_kernel.inc"

}  // namespace

void GemmF32NTAvx2(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, int64_t ldy) {
  GemmBody(x, n, k, w, m, y, ldy);
}

void GemmF32NTBlocksAvx2(const float* x, int64_t n, int64_t k, const GemmF32WBlocks& w, int64_t j_base, int64_t m,
                         float* y, int64_t ldy) {
  GemmBlocksBody(x, n, k, w, j_base, m, y, ldy);
}

}  // namespace squeeze::kernels::internal
