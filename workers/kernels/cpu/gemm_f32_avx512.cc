// AVX-512F fp32 GEMM (8x32 register tile); see gemm_f32.h and
// gemm_f32_kernel.inc. Compiled with -mavx512f.
#include <immintrin.h>

#include <cstdlib>

#include "workers/kernels/cpu/gemm_f32.h"

namespace squeeze::kernels::internal {
namespace {

using VF = __m512;
constexpr int64_t LANES = 16;
constexpr int MR = 8;
inline VF VLOAD(const float* p) { return _mm512_loadu_ps(p); }
inline void VSTORE(float* p, VF v) { _mm512_storeu_ps(p, v); }
inline VF VZERO() { return _mm512_setzero_ps(); }
inline VF VBCAST(float s) { return _mm512_set1_ps(s); }
inline VF VFMA(VF a, VF b, VF c) { return _mm512_fmadd_ps(a, b, c); }
inline VF VADD(VF a, VF b) { return _mm512_add_ps(a, b); }
inline float VHSUM(VF v) { return _mm512_reduce_add_ps(v); }

// In place: r[c] becomes column c of the 16x16 block whose rows were r[0..15].
inline void Transpose16x16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int p = 0; p < 8; ++p) {  // per 128-bit lane: pairs of rows interleaved
    t[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
    t[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
  }
  // u[4g + j], lane l: column 4l + j of rows 4g..4g+3.
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  // Column 4l + j = lane l of u[j], u[4 + j], u[8 + j], u[12 + j].
  for (int j = 0; j < 4; ++j) {
    const __m512 p0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44);
    const __m512 p1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);
    const __m512 p2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
    const __m512 p3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
    r[j] = _mm512_shuffle_f32x4(p0, p2, 0x88);
    r[4 + j] = _mm512_shuffle_f32x4(p0, p2, 0xDD);
    r[8 + j] = _mm512_shuffle_f32x4(p1, p3, 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(p1, p3, 0xDD);
  }
}

// In place: r[c] becomes column c of the 8x8 block whose rows were r[0..7].
inline void Transpose8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int p = 0; p < 4; ++p) {
    t[2 * p] = _mm256_unpacklo_ps(r[2 * p], r[2 * p + 1]);
    t[2 * p + 1] = _mm256_unpackhi_ps(r[2 * p], r[2 * p + 1]);
  }
  for (int g = 0; g < 2; ++g) {
    u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

// dst[kk * 8 + i] = src[i * ld + kk] for i < 8, kk < kc (MR = 8).
inline void PackXTile(const float* src, int64_t ld, int64_t kc, float* dst) {
  const int64_t kv = kc / 8 * 8;
  for (int64_t k0 = 0; k0 < kv; k0 += 8) {
    __m256 r[8];
    for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(src + q * ld + k0);
    Transpose8x8(r);
    for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + (k0 + q) * 8, r[q]);
  }
  for (int64_t kk = kv; kk < kc; ++kk) {
    for (int q = 0; q < 8; ++q) dst[kk * 8 + q] = src[q * ld + kk];
  }
}

// dst[kk * 32 + jj] = src[jj * ld + kk] for jj < 32, kk < kc (NR = 32).
inline void PackWPanel(const float* src, int64_t ld, int64_t kc, float* dst) {
  const int64_t kv = kc / 16 * 16;
  for (int64_t half = 0; half < 2; ++half) {
    const float* s = src + half * 16 * ld;
    float* d = dst + half * 16;
    for (int64_t k0 = 0; k0 < kv; k0 += 16) {
      __m512 r[16];
      for (int q = 0; q < 16; ++q) r[q] = _mm512_loadu_ps(s + q * ld + k0);
      Transpose16x16(r);
      for (int q = 0; q < 16; ++q) _mm512_storeu_ps(d + (k0 + q) * 32, r[q]);
    }
    for (int64_t kk = kv; kk < kc; ++kk) {
      for (int q = 0; q < 16; ++q) d[kk * 32 + q] = s[q * ld + kk];
    }
  }
}

#include "workers/kernels/cpu/gemm_f32_kernel.inc"

}  // namespace

void GemmF32NTAvx512(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, int64_t ldy) {
  GemmBody(x, n, k, w, m, y, ldy);
}

void GemmF32NTBlocksAvx512(const float* x, int64_t n, int64_t k, const GemmF32WBlocks& w, int64_t j_base, int64_t m,
                         float* y, int64_t ldy) {
  GemmBlocksBody(x, n, k, w, j_base, m, y, ldy);
}

}  // namespace squeeze::kernels::internal
