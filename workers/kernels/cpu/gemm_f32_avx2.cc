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

#include "workers/kernels/cpu/gemm_f32_kernel.inc"

}  // namespace

void GemmF32NTAvx2(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, int64_t ldy) {
  GemmBody(x, n, k, w, m, y, ldy);
}

}  // namespace squeeze::kernels::internal
