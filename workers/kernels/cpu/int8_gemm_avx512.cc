// AVX-512 (BW) int8 dot products for the W8A8 GEMM, without VNNI; see
// int8_gemm.h and int8_gemm_kernel.inc (mode 1).
#include <immintrin.h>

#include "workers/kernels/cpu/int8_gemm.h"

namespace squeeze::kernels::internal {
namespace {
#define SQ_I8_MODE 1
#include "workers/kernels/cpu/int8_gemm_kernel.inc"
#undef SQ_I8_MODE
}  // namespace

void Int8DotAvx512(const int8_t* a, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* d, int64_t ldd) {
  DotBody(a, m, k, w, n, d, ldd);
}

}  // namespace squeeze::kernels::internal
