// Prefill path of the Q4_0 / Q8_0 block GEMM (GgmlBlockGemmQ8 for n >=
// kGgmlBlockPanelRows activation rows when the int8 panel core has a SIMD
// version, int8_panel_gemm.h: AVX-512 VNNI, AVX-VNNI or AVX2): 16 weight rows at a time are repacked on the
// fly into the int8 panel layout and every token runs over the panel while it
// sits in cache. One panel at a time lives in a per-thread scratch; the
// weights are not stored twice.
//
// Repacking rows r0 .. r0 + 15 of ggml blocks (q8_0_gemm.h) into a panel:
//   one ggml block = one panel chunk = one group (chunks = groups =
//   blocks_per_row, chunks_per_group = 1);
//   codes: u(row, c) = the nibble (Q4_0, zo_const = 8) or qs + 128 (Q8_0,
//          stored as (qs xor 0x80), zo_const = 128), natural column order;
//   scales[b][l] = fp32(d_w) of block b of row r0 + l;
//   lanes past the last row: codes and scales 0.
// The activations are QuantizeActivationsQ8_0's: qa (rows cols apart, cols a
// multiple of 32), a = da, qsum = block_sums. The panel core's chain
// (d_b = sum u * qa - zo * block_sum = p_b exactly, acc = fma(fp32(d_b),
// fp32(d_w) * da_b, acc) block after block, + bias) is q8_0_gemm.h's, so the
// panel path is bit-identical to GgmlBlockGemmReference.
#pragma once

#include <cstdint>

#include "workers/kernels/cpu/int8_panel_gemm.h"
#include "workers/kernels/cpu/q8_0_gemm.h"

namespace squeeze::kernels {

// Activation rows from which GgmlBlockGemmQ8 runs the panel path (when
// Int8PanelGemmFast()); fewer rows run the row kernels (decode).
inline constexpr int64_t kGgmlBlockPanelRows = 4;

// Fills `panel` in `buffers` with weight rows [r0, min(r0 + 16, w.rows)) of
// w. RepackGgmlBlockPanel runs the repacker of the active variant (AVX-512
// or AVX2); the reference writes the same bytes.
void RepackGgmlBlockPanel(const GgmlBlockWeights& w, int64_t r0, Int8PanelBuffers* buffers, Int8Panel* panel);
void RepackGgmlBlockPanelReference(const GgmlBlockWeights& w, int64_t r0, Int8PanelBuffers* buffers,
                                   Int8Panel* panel);

namespace internal {
// GgmlBlockGemmQ8 with the panel path taken from min_panel_rows activation
// rows (GgmlBlockGemmQ8 uses kGgmlBlockPanelRows; a huge value keeps the row
// kernels): for tests and benchmarks. The panel path still needs
// Int8PanelGemmFast().
void GgmlBlockGemmQ8WithPanelRows(const GgmlBlockWeights& w, const Q8_0Activations& a, const float* bias,
                                  float* y, ThreadPool& pool, int64_t min_panel_rows);

// The panel path alone (any n; Int8PanelGemm's best version, the reference
// core without AVX-512 VNNI).
void GgmlBlockGemmQ8Panels(const GgmlBlockWeights& w, const Q8_0Activations& a, const float* bias, float* y,
                           ThreadPool& pool);

// The AVX-512 (F/BW) repacker of panel rows [0, nrows) starting at `w`
// (row_bytes apart, blocks_per_row blocks): codes [blocks][8][16][4],
// scales [blocks][16]; needs avx512f/bw.
void GgmlBlockRepackPanelAvx512(bool q4, const uint8_t* w, int64_t row_bytes, int64_t blocks_per_row, int nrows,
                                uint8_t* codes, float* scales);
// The AVX2 (+ F16C) repacker, same contract (q8_0_gemm_panel_avx2.cc).
void GgmlBlockRepackPanelAvx2(bool q4, const uint8_t* w, int64_t row_bytes, int64_t blocks_per_row, int nrows,
                              uint8_t* codes, float* scales);
}  // namespace internal

}  // namespace squeeze::kernels
