// GEMV / GEMM on ggml's Q4_0 and Q8_0 weight blocks, with the activations
// quantized to Q8_0 blocks on the fly (as llama.cpp's CPU backend does).
//
// Weight layout (ggml-common.h block_q4_0 / block_q8_0; the same bytes a GGUF
// tensor stores, see also workers/engine/formats/ggml_blocks.h). A weight
// matrix W [rows, cols] (cols a multiple of 32) is rows rows one after another,
// each row cols / 32 consecutive blocks, every block covering 32 columns:
//   Q8_0 block, 34 bytes: uint16 d (IEEE binary16, little-endian), int8 qs[32];
//        w[c] = d * qs[c]                             (c in [0, 32))
//   Q4_0 block, 18 bytes: uint16 d, uint8 qs[16];
//        w[c]      = d * ((qs[c] & 0xF) - 8)          (c in [0, 16): low nibbles)
//        w[c + 16] = d * ((qs[c] >> 4)  - 8)          (the high nibbles)
// Blocks are packed without padding (a block's d is at any 2-byte offset).
//
// Activations (QuantizeActivationsQ8_0): each row of x [n, cols] is cut into
// the same 32-column blocks; per block, as llama.cpp's quantize_row_q8_0 with
// its SIMD rounding: amax = max |x|, d = amax / 127, id = d != 0 ? 1 / d : 0,
// qa = clamp(round_half_even(x * id), -127, 127), and the block scale used in
// the product is da = fp32(fp16(d)) (llama.cpp stores d as fp16).
//
// Arithmetic (every version computes exactly this, so the results are
// bit-identical to the reference for any thread count and any tiling):
//   for each output y[i, r], blocks b = 0, 1, ..., nb - 1 in increasing order:
//     p_b = sum_{c < 32} w_q[32b + c] * qa[32b + c]   (exact int32; w_q the
//           integer code: qs for Q8_0, nibble - 8 for Q4_0),
//     s_b = fp32(d_w,b) * da_b                        (one fp32 product),
//     acc = fma(fp32(p_b), s_b, acc)                  (one fused multiply-add),
//   with acc starting at +0; y = acc (+ bias[r], one fp32 add).
// One fp32 chain per output, the same as the int8-activation chain of the
// packed int layers (packed_int_gemm.h): a SIMD version may put 16 blocks of
// one row in a register (decode) or 16 weight rows in the lanes (prefill),
// as long as each output's fma chain runs block after block. |p_b| <=
// 32 * 128 * 127 < 2^20, so int32 never overflows and fp32(p_b) is exact.
//
// Versions: plain reference; row kernels for AVX2 (maddubs, 8 block dots per
// register) and AVX-512 BW (maddubs) / VNNI (vpdpbusd) (16 block dots of one
// weight row reduced into one register, 4 rows' chains in one vector, next rows
// prefetched: the decode GEMV), dispatched at runtime (cpu_features.h); from
// kGgmlBlockPanelRows activation rows on AVX-512 VNNI or AVX2 (AVX-VNNI when
// present; int8_panel_gemm.h), the prefill path of
// q8_0_gemm_panel.h (16 weight rows in the lanes of the int8 panel core).
// Work is split over the ThreadPool in fixed blocks of weight rows; results
// never depend on the pool size or on which path ran.
#pragma once

#include <cstdint>
#include <vector>

#include "workers/engine/core/thread_pool.h"

namespace squeeze::kernels {

enum class GgmlBlockKind { kQ4_0, kQ8_0 };

inline constexpr int64_t kGgmlBlockCols = 32;  // columns per block (both kinds)
inline constexpr int64_t kQ4_0BlockBytes = 18;
inline constexpr int64_t kQ8_0BlockBytes = 34;

inline int64_t GgmlBlockBytes(GgmlBlockKind kind) {
  return kind == GgmlBlockKind::kQ4_0 ? kQ4_0BlockBytes : kQ8_0BlockBytes;
}

// A read-only view of block weights; nothing is owned.
struct GgmlBlockWeights {
  GgmlBlockKind kind = GgmlBlockKind::kQ4_0;
  int64_t rows = 0, cols = 0;     // [out, in]; cols % 32 == 0
  const uint8_t* data = nullptr;  // rows * RowBytes() bytes, no alignment needed
  int64_t blocks_per_row() const { return cols / kGgmlBlockCols; }
  int64_t RowBytes() const { return blocks_per_row() * GgmlBlockBytes(kind); }
};

// Activations quantized to Q8_0 blocks (see above), plus the sum of every
// block's codes (the SIMD versions fold the Q4_0 offset -8 and the Q8_0 +128
// bias of vpdpbusd into them).
struct Q8_0Activations {
  int64_t n = 0, cols = 0;
  std::vector<int8_t> qa;          // [n, cols]
  std::vector<float> da;           // [n, cols / 32] block scales, fp16-rounded
  std::vector<int32_t> block_sums; // [n, cols / 32]: sum of qa[32b .. 32b+31]
};

// Quantizes x [n, cols] (cols % 32 == 0) into `out` (resized).
void QuantizeActivationsQ8_0(const float* x, int64_t n, int64_t cols, Q8_0Activations* out);

// w_q of element (r, c) (the integer code) and its fp16 block scale as fp32.
int32_t GgmlBlockCode(const GgmlBlockWeights& w, int64_t r, int64_t c);
float GgmlBlockScale(const GgmlBlockWeights& w, int64_t r, int64_t block);

// Writes dequantized rows [r0, r1) (w = d * w_q in fp32) into dst, cols wide.
void GgmlBlockDequantizeRows(const GgmlBlockWeights& w, int64_t r0, int64_t r1, float* dst);

// y [n, rows] = x [n, cols] * W^T (+ bias [rows] if non-null), with the
// arithmetic above. The reference is single-threaded plain C++.
void GgmlBlockGemm(const GgmlBlockWeights& w, const float* x, int64_t n, const float* bias, float* y,
                   ThreadPool& pool);
void GgmlBlockGemmReference(const GgmlBlockWeights& w, const float* x, int64_t n, const float* bias, float* y);

// The same on activations already quantized (lets callers reuse one
// quantization for several layers with the same input, e.g. q/k/v).
void GgmlBlockGemmQ8(const GgmlBlockWeights& w, const Q8_0Activations& a, const float* bias, float* y,
                     ThreadPool& pool);

}  // namespace squeeze::kernels
