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

#include "workers/kernels/cpu/gemm_f32_kernel.inc"

}  // namespace

void GemmF32NTAvx512(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, int64_t ldy) {
  GemmBody(x, n, k, w, m, y, ldy);
}

}  // namespace squeeze::kernels::internal
