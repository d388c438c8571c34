// Prefill path of the int8-activation packed-int GEMM (PackedIntGemmQ8 for
// n >= PackedIntTileRows(w) when Int8PanelGemmFast(): AVX-512 VNNI, AVX-VNNI
// or AVX2): 16-row panels of PackedIntWeights
// are repacked on the fly into the int8 panel layout (int8_panel_gemm.h) and
// every token runs over the panel while it sits in cache. The weights are not
// stored twice: one panel at a time lives in a per-thread scratch.
//
// Repacking a panel (rows r0 .. r0 + 15 of w, fast path layouts only: 4- or
// 8-bit codes, contiguous groups of a multiple of 32 columns or one group per
// row, cols <= 2^16):
//   codes: u(row, c) = the stored unsigned code (q - qmin) in NATURAL column
//          order; chunks = ceil(cols / 32), columns >= cols are 0.
//   chunks_per_group = group_size / 32 (one group per row: chunks).
//   scales[g][l] = w.scales[(r0 + l) * groups + g];
//   zo[g][l] = z[r0 + l, g] + 2^(bits-1), or zo = null and
//   zo_const = 2^(bits-1) without zero points; lanes past the last row are 0.
// The activations are QuantizeActivationGroups' codes in natural order, rows
// padded with zeros to a multiple of 32 columns. Each output then runs the
// reference's exact integers and fp32 operations: bit-identical to
// PackedIntGemmQ8Reference.
#pragma once

#include <cstdint>

#include "workers/kernels/cpu/int8_panel_gemm.h"
#include "workers/kernels/cpu/packed_int_gemm.h"

namespace squeeze::kernels {

// Rows of x from which PackedIntGemmQ8 runs the panel path (when a SIMD
// panel core is available, Int8PanelGemmFast(), and the layout has a fast
// path; the AVX2 cores use the same values, not re-measured): the repack costs
// about as much as a few rows through the row kernels (crossovers measured
// on 4096x4096): 4 rows for group 32 (whose row kernel handles one row of x
// at a time), 5 / 6 for int4 / int8 with larger groups, 10 for one group
// per row (the row kernels share codes between 4 rows of x there).
int64_t PackedIntTileRows(const PackedIntWeights& w);

// Fills `panel` in `buffers` with weight rows [r0, min(r0 + 16, w.rows)) of
// w; requires PackedIntFastPathApplies(w). RepackPackedIntPanel picks the
// SIMD repacker of the active variant (AVX-512 or AVX2); the reference writes
// the same bytes.
void RepackPackedIntPanel(const PackedIntWeights& w, int64_t r0, Int8PanelBuffers* buffers, Int8Panel* panel);
void RepackPackedIntPanelReference(const PackedIntWeights& w, int64_t r0, Int8PanelBuffers* buffers,
                                   Int8Panel* panel);

// The panel path: y [n, rows] = PackedIntGemmQ8Reference(w, x, n, bias)
// bit for bit. Quantizes x (QuantizeActivationGroups' arithmetic; the AVX-512
// quantizer writes the same bytes) into rows padded to whole chunks, then
// runs the panels over the pool. Requires PackedIntFastPathApplies(w).
// Scratch: the quantized activations live in grow-only thread-local buffers
// of the calling thread (n * cols bytes and more at the largest call), the
// panels in per-pool-thread ones (2 x 512 bytes per 32 columns).
void PackedIntGemmQ8Panels(const PackedIntWeights& w, const float* x, int64_t n, const float* bias, float* y,
                           ThreadPool& pool);
// The same panels on activations quantized by the caller (PackedIntGemmQ8Quantized):
// qa rows qa_stride apart, qa_stride a multiple of 32 >= cols, columns
// [cols, qa_stride) zero; a and qsum [n, groups_per_row]. Requires
// PackedIntFastPathApplies(w).
void PackedIntGemmQ8PanelsQuantized(const PackedIntWeights& w, const int8_t* qa, int64_t qa_stride, const float* a,
                                    const int32_t* qsum, int64_t n, const float* bias, float* y, ThreadPool& pool);

// QuantizeActivationGroups for contiguous groups (g_idx null) with qa rows
// qa_stride >= cols apart, columns [cols, qa_stride) zeroed; the AVX-512 /
// AVX2 version when the active variant is AVX-512 / AVX2 (same bytes, tested).
void QuantizePanelActivations(const PackedIntWeights& w, const float* x, int64_t n, int8_t* qa, int64_t qa_stride,
                              float* a, int32_t* qsum);

namespace internal {
// PackedIntGemmQ8 with the panel path taken from min_tile_rows rows of x
// (PackedIntGemmQ8 uses PackedIntTileRows(w); a huge value keeps the row
// kernels, the path before the panels existed): for tests and benchmarks.
void PackedIntGemmQ8WithTileRows(const PackedIntWeights& w, const float* x, int64_t n, const float* bias,
                                 float* y, ThreadPool& pool, int64_t min_tile_rows);
// PackedIntGemmQ8Quantized with the panel path taken from min_tile_rows
// rows of x (same use).
void PackedIntGemmQ8QuantizedWithTileRows(const PackedIntWeights& w, const int8_t* qa, const float* a,
                                          const int32_t* qsum, int64_t n, const float* bias, float* y,
                                          ThreadPool& pool, int64_t min_tile_rows);

// The AVX-512 (F/BW) code repacker for chunks [0, full_chunks) of 16 rows
// (row pointers into w.packed, null rows = zeros); needs avx512f/bw.
void RepackCodesAvx512(const uint8_t* const* rows, int num_bits, int64_t full_chunks, uint8_t* codes);
// The AVX2 quantizer behind QuantizePanelActivations; needs avx2.
void QuantizeGroupsAvx2(const PackedIntWeights& w, const float* x, int64_t n, int8_t* qa, int64_t qa_stride,
                        float* a, int32_t* qsum);
// The AVX2 code repacker, same contract; needs avx2.
void RepackCodesAvx2(const uint8_t* const* rows, int num_bits, int64_t full_chunks, uint8_t* codes);
// The AVX-512 quantizer behind QuantizePanelActivations.
void QuantizeGroupsAvx512(const PackedIntWeights& w, const float* x, int64_t n, int8_t* qa, int64_t qa_stride,
                          float* a, int32_t* qsum);
}  // namespace internal

}  // namespace squeeze::kernels
