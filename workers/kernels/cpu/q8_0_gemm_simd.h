// Internal: the per-ISA row kernels behind q8_0_gemm.h. Each computes
// y[i, r] for activation rows [i0, i1) and weight rows [r0, r1) with exactly
// the arithmetic q8_0_gemm.h defines; the caller (q8_0_gemm.cc) quantizes the
// activations and splits the rows over the pool. The ISA files use only
// intrinsics and helpers in an anonymous namespace (see
// packed_int_gemm_simd.h for why).
#pragma once

#include <cstdint>
#include <vector>

#include "workers/kernels/cpu/q8_0_gemm.h"

namespace squeeze::kernels::internal {

// Plain pointers and sizes only: the ISA files must not call the inline
// helpers of q8_0_gemm.h or std::vector members (see above).
struct GgmlBlockJob {
  bool q4 = true;                     // kQ4_0, else kQ8_0
  int64_t rows = 0, cols = 0;         // weights [rows, cols]
  int64_t blocks_per_row = 0;         // cols / 32
  int64_t row_bytes = 0;              // bytes of one weight row
  const uint8_t* w = nullptr;         // weight blocks
  const int8_t* qa = nullptr;         // [n, cols] activation codes
  const float* da = nullptr;          // [n, blocks_per_row] activation scales
  const int32_t* block_sums = nullptr;// [n, blocks_per_row]
  // Q4_0 only, optional: qa with every 4 blocks (128 columns) permuted to
  // [32 * k + c for k < 4, c < 16] then [32 * k + 16 + c ...] (the order of
  // the low, then the high nibbles of 4 blocks' bytes); a partial group of 4
  // at the row end stays natural. [n, cols]. See PermuteQ4Activations.
  const int8_t* qa_q4 = nullptr;
  const float* bias = nullptr;        // [rows] or null
  float* y = nullptr;                 // [n, rows]
};

// Fills out [a.n, a.cols] with a.qa in the qa_q4 order above (plain C++).
void PermuteQ4Activations(const Q8_0Activations& a, std::vector<int8_t>* out);

void GgmlBlockRowsAvx2(const GgmlBlockJob& job, int64_t i0, int64_t i1, int64_t r0, int64_t r1);
void GgmlBlockRowsAvx512(const GgmlBlockJob& job, int64_t i0, int64_t i1, int64_t r0, int64_t r1);
void GgmlBlockRowsAvx512Vnni(const GgmlBlockJob& job, int64_t i0, int64_t i1, int64_t r0, int64_t r1);

}  // namespace squeeze::kernels::internal
