// Internal: SIMD dequantization of packed int4 / int8 weights
// (packed_int_gemm.h, PackedIntDequantizeBlock).
//
//   dst[(r - r0) * ld + (c - c0)] = float(q[r, c] - z[r, g(c)]) * s[r, g(c)]
//
// for r in [r0, r1), c in [c0, c1): per element one int32 subtraction, one
// int32 -> fp32 conversion (round to nearest) and one fp32 multiply, exactly
// as PackedIntDequant does, so the results are bit-identical to it. Full
// 32-column units (c % 32 == 0, c + 32 <= c1) are converted in registers
// (4-bit: low / high nibbles interleaved back into column order); the
// columns before the first and after the last unit use the same formula in
// scalar code. Requires PackedIntFastPathApplies(w) (4 or 8 bits, no g_idx,
// group_size a multiple of 32 or one group per row: a unit never straddles
// two groups). Same ISA-file rules as packed_int_gemm_simd.h.
#pragma once

#include <cstdint>

#include "workers/kernels/cpu/packed_int_gemm.h"

namespace squeeze::kernels::internal {

void PackedIntDequantBlockAvx2(const PackedIntWeights& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* dst,
                               int64_t ld);
void PackedIntDequantBlockAvx512(const PackedIntWeights& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                                 float* dst, int64_t ld);

}  // namespace squeeze::kernels::internal
