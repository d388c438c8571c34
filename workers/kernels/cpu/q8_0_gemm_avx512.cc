// AVX-512 BW (maddubs) variant of the Q4_0 / Q8_0 block row kernel: the template in
// q8_0_gemm_avx512.inc with SQ_BLK_VNNI = 0, compiled with -mavx512f/bw/vl/dq
// in this file only; also the AVX-512 panel repacker (q8_0_gemm_panel.h).
#include <immintrin.h>

#include "workers/kernels/cpu/q8_0_gemm_panel.h"
#include "workers/kernels/cpu/q8_0_gemm_simd.h"

namespace squeeze::kernels::internal {
namespace {

#define SQ_BLK_VNNI 0
#include "workers/kernels/cpu/q8_0_gemm_avx512.inc"
#undef SQ_BLK_VNNI

}  // namespace

void GgmlBlockRowsAvx512(const GgmlBlockJob& job, int64_t i0, int64_t i1, int64_t r0, int64_t r1) {
  Dispatch(job, i0, i1, r0, r1);
}

void GgmlBlockRepackPanelAvx512(bool q4, const uint8_t* w, int64_t row_bytes, int64_t blocks_per_row, int nrows,
                                uint8_t* codes, float* scales) {
  if (q4) {
    RepackPanel<true>(w, row_bytes, blocks_per_row, nrows, codes, scales);
  } else {
    RepackPanel<false>(w, row_bytes, blocks_per_row, nrows, codes, scales);
  }
}

}  // namespace squeeze::kernels::internal
