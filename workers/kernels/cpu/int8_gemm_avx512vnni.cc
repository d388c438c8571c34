// AVX-512 VNNI int8 dot products for the W8A8 GEMM (vpdpbusd); see
// int8_gemm.h and int8_gemm_kernel.inc (mode 2).
#include <immintrin.h>

#include "workers/kernels/cpu/int8_gemm.h"

namespace squeeze::kernels::internal {
namespace {
#define SQ_I8_MODE 2
#include "workers/kernels/cpu/int8_gemm_kernel.inc"
#undef SQ_I8_MODE
}  // namespace

void Int8DotAvx512Vnni(const uint8_t* au, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* d,
                       int64_t ldd) {
  DotBody(au, m, k, w, n, d, ldd);
}

}  // namespace squeeze::kernels::internal
