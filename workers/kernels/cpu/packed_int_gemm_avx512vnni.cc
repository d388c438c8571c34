// AVX-512 VNNI (vpdpbusd) variant of the packed-int int8-activation row
// kernel: the template in packed_int_gemm_q8_avx512.inc with SQ_Q8_VNNI = 1,
// compiled with -mavx512vnni in this file only.
#include <immintrin.h>

#include "workers/kernels/cpu/packed_int_gemm_simd.h"

namespace squeeze::kernels::internal {
namespace {

inline int64_t MinI(int64_t a, int64_t b) { return a < b ? a : b; }
inline int32_t U4(const uint8_t* row, int64_t c) { return (row[c >> 1] >> ((c & 1) * 4)) & 15; }

#define SQ_Q8_VNNI 1
#include "workers/kernels/cpu/packed_int_gemm_q8_avx512.inc"
#undef SQ_Q8_VNNI

}  // namespace

void PackedIntRowsQ8Avx512Vnni(const PackedIntJob& job, int64_t r0, int64_t r1) { Q8Dispatch(job, r0, r1); }

}  // namespace squeeze::kernels::internal
