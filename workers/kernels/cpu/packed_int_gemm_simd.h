// Internal: the per-ISA row kernels behind packed_int_gemm.h. Each computes
// outputs y[i, r] for x rows [0, job.n) and weight rows [r0, r1); the caller
// (packed_int_gemm.cc) prepares the activations, splits rows over the pool
// and guarantees PackedIntFastPathApplies(job.w).
//
// The ISA files (*_avx2.cc, *_avx512.cc) are compiled with -mavx2/-mavx512*
// and must not odr-use inline functions or templates shared with other
// translation units (a shared inline emitted with AVX-512 instructions could
// be picked by the linker for baseline code): they use intrinsics and local
// helpers in an anonymous namespace only.
#pragma once

#include <cstdint>

#include "workers/kernels/cpu/packed_int_gemm.h"

namespace squeeze::kernels::internal {

// Columns per SIMD unit. For 4-bit weights the activations of every full
// unit [32u, 32u + 32) (32u + 32 <= cols) are stored permuted: the 16 even
// columns first, then the 16 odd ones (the order of the low / high nibbles of
// the unit's 16 weight bytes). Columns of the last partial unit keep their
// natural order. 8-bit weights use the natural order.
inline constexpr int64_t kUnit = 32;
// The decode kernels for 4-bit weights read a chunk of code bytes at a time
// (AVX-512, packed_int_gemm_q8_rows16_avx512.inc: 64 bytes = kChunk = 128
// columns; AVX2, packed_int_gemm_q8_rows8_avx2.inc: 32 bytes = kChunkAvx2 =
// 64 columns): their low nibbles are the chunk's even columns, the high
// nibbles the odd ones. For them the activations of columns
// [0, qa_chunked_cols) are permuted per chunk instead (all even columns of
// the chunk, then all odd); columns from qa_chunked_cols on follow the
// per-unit order above. qa_chunked_cols is a multiple of the chunk (whole
// blocks of full groups, see ChunkedColumns in packed_int_gemm.cc), 0 when
// the kernel does not use chunks.
inline constexpr int64_t kChunk = 128;
inline constexpr int64_t kChunkAvx2 = 64;

struct PackedIntJob {
  PackedIntWeights w;
  int64_t n = 0;                 // rows of x
  const float* xp = nullptr;     // fp32 path: [n, cols], permuted as above
  const int8_t* qa = nullptr;    // int8 path: [n, cols], permuted as above
  int64_t qa_chunked_cols = 0;   // int8 path: leading columns of qa in chunk order (see above)
  const float* a = nullptr;      // int8 path: [n, groups_per_row] activation scales
  const int32_t* qsum = nullptr; // int8 path: [n, groups_per_row] sums of qa per group
  const float* bias = nullptr;   // [rows] or null
  float* y = nullptr;            // [n, rows]
};

void PackedIntRowsF32Avx2(const PackedIntJob& job, int64_t r0, int64_t r1);
void PackedIntRowsQ8Avx2(const PackedIntJob& job, int64_t r0, int64_t r1);
void PackedIntRowsF32Avx512(const PackedIntJob& job, int64_t r0, int64_t r1);
void PackedIntRowsQ8Avx512(const PackedIntJob& job, int64_t r0, int64_t r1, bool vnni);
void PackedIntRowsQ8Avx512Vnni(const PackedIntJob& job, int64_t r0, int64_t r1);  // needs avx512vnni

}  // namespace squeeze::kernels::internal
