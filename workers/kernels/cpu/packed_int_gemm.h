// GEMV / GEMM with packed int2..int8 weights and per-group scales:
//
//   y[i, r] = sum_c x[i, c] * (q[r, c] - z[r, g(c)]) * s[r, g(c)]  (+ bias[r])
//
// for x [n, cols] fp32 row-major, W [rows, cols] in PackedIntLinear's layout
// (workers/methods/quant/packed_int_linear.h): row r is words_per_row 32-bit
// words, value c at bit (c % (32/bits)) * bits of word c / (32/bits) as the
// unsigned code u = q - qmin, qmin = -2^(bits-1). Groups are contiguous runs
// of group_size columns (the last may be shorter) unless g_idx is given.
//
// Two arithmetic paths, each with a plain reference and SIMD versions:
//
//  * fp32 activations (PackedIntGemm): the exact dequantized product,
//    computed in fp32. The reference dequantizes w = float(q - z) * s and
//    accumulates in double; the fast versions (AVX2+FMA, AVX-512) form the
//    same w in registers (int32 q - z, exact conversion, one multiply; on
//    AVX-512 4-bit weights through a 16-entry table per group) and sum
//    x * w with fp32 FMAs, several weight rows in flight, the chains added
//    into the row total every 256 columns; they match the reference within
//    |err| <= 1e-5 * sum_c |x_c w_c| + 1e-30 (summation order only).
//    n >= kPackedIntDequantRows rows run the fp32 GEMM instead (prefill):
//    GemmF32NTBlocks (gemm_f32.h) with each 32 x 256 block of W dequantized
//    (SIMD, bit-identical to PackedIntDequant) just before it is packed, so
//    the result equals GemmF32NT on the dequantized matrix bit for bit.
//
//  * int8 activations (PackedIntGemmQ8, as llama.cpp does on CPU): each row of
//    x is quantized per weight group to int8 (QuantizeActivationGroups:
//    a = amax/127, qa = round_half_even(x / a), qa in [-127, 127]); the group
//    dot products d_g = sum_c (q - z) * qa are exact int32 and
//    y = sum_g fma(float(d_g), s_g * a_g, .) in group order (+ bias). Every
//    version computes the same integers and the same fp32 operations in the
//    same order, so the results are bit-identical to the reference. The AVX2
//    version uses _mm256_maddubs_epi16, the AVX-512 one VNNI vpdpbusd when the
//    CPU has it (else maddubs on 512 bits). On AVX2, layouts with >= 8
//    groups whose size is a multiple of 32 decode with the 8-group version
//    of the kernel below (packed_int_gemm_q8_rows8_avx2.inc). On AVX-512, layouts with >= 16
//    groups of 32 (or of a multiple of 64) columns run a kernel that reduces
//    16 group dots into one register and keeps 4 weight rows' fp32 chains in
//    the lanes of one vector, software-pipelined, prefetching the next 4
//    rows' codes and scales (packed_int_gemm_q8_rows16_avx512.inc): decode,
//    and for group 32 every row of x. The zero point is folded in as d_g = sum_c u * qa -
//    (z + offset) * qsum_g, qsum_g the sum of qa over the group.
//    Prefill (n >= PackedIntTileRows(w), AVX-512 VNNI, or AVX2 with or
//    without AVX-VNNI: a panel as two 8-lane halves): 16-row panels are
//    repacked on the fly and run for every row of x with weight rows in the
//    lanes (packed_int_panel.h, core in int8_panel_gemm.h); same results.
//
// Fast versions cover 4- and 8-bit weights with contiguous groups whose size
// is a multiple of 32 (or one group per row); everything else (g_idx, other
// bit widths, odd group sizes) runs the reference, so every input is served.
// Work is split over the ThreadPool in fixed blocks of output rows; each
// output is computed by the same instructions whatever the pool size, so the
// results do not depend on the thread count. Requires cols <= 2^16 for the
// int8-activation path (int32 group sums cannot overflow).
#pragma once

#include <cstdint>

#include "workers/engine/core/thread_pool.h"

namespace squeeze::kernels {

// A read-only view of packed weights; nothing is owned.
struct PackedIntWeights {
  int num_bits = 4;                       // 2..8
  int64_t rows = 0, cols = 0;             // [out, in]
  int64_t words_per_row = 0;              // ceil(cols / (32 / num_bits))
  const uint32_t* packed = nullptr;       // [rows, words_per_row]
  int64_t groups_per_row = 1;
  int64_t group_size = 0;                 // columns per contiguous group
  const float* scales = nullptr;          // [rows, groups_per_row]
  const int32_t* zero_points = nullptr;   // [rows, groups_per_row] in q units, or null (z = 0)
  const int32_t* g_idx = nullptr;         // [cols] group of each column, or null
};

// Rows of x from which PackedIntGemm runs the fp32 GEMM on dequantized
// blocks. Measured (AVX-512, 1 thread, 4096x4096 int4 g32 / g128): the row
// kernel is as fast up to n = 28 and 1.1-1.25x slower from n = 31 on.
inline constexpr int64_t kPackedIntDequantRows = 32;

// True when a SIMD version handles these weights (else the reference runs).
bool PackedIntFastPathApplies(const PackedIntWeights& w);

// Dequantized element (r, c) as fp32: float(q - z) * s.
float PackedIntDequant(const PackedIntWeights& w, int64_t r, int64_t c);

// Writes dequantized rows [r0, r1) into dst (row-major, cols wide).
// PackedIntDequantizeRows runs a SIMD version when PackedIntFastPathApplies
// (bit-identical: the same int32 subtraction, int -> fp32 conversion and one
// fp32 multiply per element); the Reference is the plain loop over
// PackedIntDequant.
void PackedIntDequantizeRows(const PackedIntWeights& w, int64_t r0, int64_t r1, float* dst);
void PackedIntDequantizeRowsReference(const PackedIntWeights& w, int64_t r0, int64_t r1, float* dst);
// The block rows [r0, r1) x columns [c0, c1) into dst (row stride ld >=
// c1 - c0), SIMD / reference as above.
void PackedIntDequantizeBlock(const PackedIntWeights& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* dst,
                              int64_t ld);
void PackedIntDequantizeBlockReference(const PackedIntWeights& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                                       float* dst, int64_t ld);

// fp32-activation path: y [n, rows] = x [n, cols] * W^T (+ bias [rows] if non-null).
void PackedIntGemm(const PackedIntWeights& w, const float* x, int64_t n, const float* bias, float* y,
                   ThreadPool& pool);
void PackedIntGemmReference(const PackedIntWeights& w, const float* x, int64_t n, const float* bias,
                            float* y);

// The previous prefill path, kept as the plain reference of the fused one and
// as a benchmark baseline: scalar dequantization of 64-row tiles
// (PackedIntDequantizeRowsReference) and GemmF32NTStrided per tile, tiles
// split over the pool. Any n.
void PackedIntGemmDequantTilesReference(const PackedIntWeights& w, const float* x, int64_t n, const float* bias,
                                        float* y, ThreadPool& pool);

// int8-activation path (see above). Same shapes.
void PackedIntGemmQ8(const PackedIntWeights& w, const float* x, int64_t n, const float* bias, float* y,
                     ThreadPool& pool);
void PackedIntGemmQ8Reference(const PackedIntWeights& w, const float* x, int64_t n, const float* bias,
                              float* y);

// Quantizes row i of x per weight group: for every group g (the columns c
// with group(c) == g), a[i, g] = max|x| / 127 (0 for an all-zero group),
// qa[i, c] = clamp(round_half_even(x * (127 / max|x|)), -127, 127), and
// qsum[i, g] = sum of qa over the group. qa [n, cols], a and qsum
// [n, groups_per_row].
void QuantizeActivationGroups(const PackedIntWeights& w, const float* x, int64_t n, int8_t* qa, float* a,
                              int32_t* qsum);

// The int8-activation path on activations quantized by the caller, in
// natural column order: qa [n, cols] (rows cols apart, |qa| <= 127), a and
// qsum [n, groups_per_row] (a[i, g] the group's fp32 activation scale, qsum
// the sum of its qa). Each output is exactly PackedIntGemmQ8's chain with
// these values in place of QuantizeActivationGroups': d_g = sum (q - z) * qa
// exact int32, tot = fma(float(d_g), s_g * a[i, g], tot) group after group
// (+ bias); the same row kernels (decode) and panel path (n >=
// PackedIntTileRows(w), cols % 32 == 0) run, so every variant and thread
// count is bit-identical to PackedIntGemmQ8QuantizedReference. Any weights
// (layouts without a SIMD version run the reference rows). Serves the Q4_0
// GGUF layers (ggml_block_linear.h), fed by QuantizeActivationsQ8_0.
void PackedIntGemmQ8Quantized(const PackedIntWeights& w, const int8_t* qa, const float* a, const int32_t* qsum,
                              int64_t n, const float* bias, float* y, ThreadPool& pool);
void PackedIntGemmQ8QuantizedReference(const PackedIntWeights& w, const int8_t* qa, const float* a, int64_t n,
                                       const float* bias, float* y);

}  // namespace squeeze::kernels
