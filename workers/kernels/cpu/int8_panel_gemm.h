// Format-agnostic int8-activation GEMM core on 16-row weight panels (prefill).
//
// "Lanes = weight rows": a panel holds up to 16 weight rows whose integer
// codes are stored quad-interleaved, so one 512-bit register holds 4
// consecutive columns ("a quad") of all 16 rows and one vpdpbusd with the 4
// int8 activation codes of a token broadcast to 16 lanes adds those 4 columns'
// products to the 16 outputs of that token. No horizontal reductions; the 16
// outputs of a token end as one 512-bit store. Weight formats (our packed
// int4/int8, ggml Q4_0/Q8_0 blocks, ...) are repacked into panels by their own
// repackers (packed_int_panel.h for PackedIntWeights); the panel is reused for
// every token, so the repack is amortized over n.
//
// Panel layout (Int8Panel), for rows r0 .. r0 + rows - 1 (rows <= 16) and
// panel columns c = 0 .. 32 * chunks - 1:
//   codes  uint8 [chunks][8 quads][16 lanes][4]: byte
//          codes[((k * 8 + j) * 16 + l) * 4 + b] = u(row r0 + l, column 32k + 4j + b),
//          u the UNSIGNED integer code (0..255). 512 bytes per chunk; the
//          8 quads of a chunk are eight consecutive 64-byte vectors.
//          Columns past the weight's last column are padding with u = 0.
//   groups group g covers chunks [g * chunks_per_group,
//          min((g + 1) * chunks_per_group, chunks)); every group is whole
//          chunks (a group of 32, 64, ... columns, one group per row, or one
//          ggml block per group with chunks_per_group = 1).
//   scales fp32 [groups][16]: the weight scale s[g, l] of row r0 + l.
//   zo     int32 [groups][16]: the code offset of row r0 + l in group g, so
//          that the signed weight value is (u - zo) (our packed ints:
//          zo = z + 2^(bits-1); Q4_0: 8; Q8_0 stored as u = qs + 128: 128),
//          or null: zo_const for every row and group.
//   Lanes l >= rows must hold finite values (the repackers write zeros); they
//   are computed and never stored.
//   code_bits 4 or 8: every code u < 2^code_bits (lanes and padding
//          included). A promise the AVX2 core relies on (4: one int16
//          maddubs per quad is exact); 8 is always correct.
//
// Activations (Int8PanelActivations), for tokens t = 0 .. n - 1, in the SAME
// column order as the panel's codes:
//   qa    int8 [n][qa_stride], qa_stride >= 32 * chunks: all 32 * chunks
//         bytes of every row must be readable (padding columns may hold any
//         value since their codes are 0; zeros are what the callers write).
//   a     fp32 [n][group_stride]: activation scale of (token, group).
//   qsum  int32 [n][group_stride]: sum of qa over the group's columns.
//   nzq   optional int32 [n][group_stride]: -(zo_const * qsum) precomputed
//         for panels without per-row offsets (saves a multiply per group,
//         token and panel).
//
// Arithmetic (every version computes exactly this; the reference below is its
// definition): for each token t and lane l < rows,
//   d_g   = sum_{c in group g} u[l, c] * qa[t, c] - zo[g, l] * qsum[t, g]
//           (int32; intermediate sums may wrap, the final d_g is exact
//           whenever it fits in int32, which the callers guarantee,
//           e.g. PackedIntFastPathApplies' cols <= 2^16),
//   acc   = +0.0f; for g = 0, 1, ...: acc = fmaf(float(d_g), s[g, l] * a[t, g], acc)
//           (s * a one fp32 product, then one fused multiply-add; groups in
//           increasing order),
//   y[t * ldy + l] = bias ? acc + bias[l] : acc.
// This is PackedIntGemmQ8Reference's per-output chain (packed_int_gemm.h), so
// a packed-int layer run through panels is bit-identical to it.
//
// Versions: Int8PanelGemmReference (plain C++); the AVX-512 VNNI kernel
// (int8_panel_gemm_avx512vnni.cc: 8 vpdpbusd per chunk, token and panel;
// tiles of 2 panels x 5 tokens share each loaded code vector and each
// activation broadcast); for AVX2 CPUs (int8_panel_gemm_avx2.inc: a panel
// is two halves of 8 rows in the 8 lanes of a ymm) the AVX-VNNI kernel
// (int8_panel_gemm_avxvnni.cc, VEX vpdpbusd) and the plain AVX2 one
// (int8_panel_gemm_avx2.cc: vpmaddubsw with int16 chunk sums, 8-bit codes
// split into nibbles; exact). Int8PanelGemm dispatches (ActiveInt8PanelCore).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "workers/engine/core/thread_pool.h"

namespace squeeze::kernels {

inline constexpr int64_t kPanelRows = 16;        // weight rows (lanes) per panel
inline constexpr int64_t kPanelChunkCols = 32;   // columns per chunk
inline constexpr int64_t kPanelQuads = 8;        // 4-column quads per chunk
inline constexpr int64_t kPanelChunkBytes = 512; // code bytes per chunk

// A read-only view of one panel; nothing is owned.
struct Int8Panel {
  int64_t rows = kPanelRows;        // valid lanes, 1..16
  int64_t chunks = 0;               // 32-column chunks
  int64_t chunks_per_group = 1;     // >= 1
  int64_t groups = 0;               // ceil(chunks / chunks_per_group)
  const uint8_t* codes = nullptr;   // [chunks][8][16][4]; 64-byte alignment recommended
  const float* scales = nullptr;    // [groups][16]
  const int32_t* zo = nullptr;      // [groups][16], or null
  int32_t zo_const = 0;             // used when zo is null
  int code_bits = 8;                // 4: every code <= 15 (see above)
};

// Quantized activations in the panel's column order; nothing is owned.
struct Int8PanelActivations {
  int64_t n = 0;                    // tokens
  const int8_t* qa = nullptr;       // [n][qa_stride]
  int64_t qa_stride = 0;            // >= 32 * chunks
  const float* a = nullptr;         // [n][group_stride]
  const int32_t* qsum = nullptr;    // [n][group_stride]
  int64_t group_stride = 0;         // >= groups
  // Optional (a hint for the SIMD core; results do not change): nzq[t *
  // group_stride + g] = -(nzq_for * qsum[t, g]) in wrapping int32, used for
  // panels with zo == null and zo_const == nzq_for.
  const int32_t* nzq = nullptr;
  int32_t nzq_for = 0;
};

// Owned, 64-byte aligned storage a repacker fills (reused between panels;
// Reserve only grows).
class Int8PanelBuffers {
 public:
  void Reserve(int64_t chunks, int64_t groups);
  uint8_t* codes() { return Align(codes_); }
  float* scales() { return reinterpret_cast<float*>(Align(scales_)); }
  int32_t* zo() { return reinterpret_cast<int32_t*>(Align(zo_)); }

 private:
  static uint8_t* Align(std::vector<uint8_t>& v);
  std::vector<uint8_t> codes_, scales_, zo_;
};

// y [n rows of ldy] for the panel's lanes (columns y[t * ldy + l], l < rows).
// bias: [rows] or null. Single-threaded.
void Int8PanelGemmReference(const Int8Panel& p, const Int8PanelActivations& x, const float* bias, float* y,
                            int64_t ldy);

// The version of the core that runs now (cpu_features.h): AVX-512 VNNI when
// UseAvx512Vnni(); with ActiveIsa() == kAvx2 the AVX-VNNI one when
// UseAvxVnni(), else the plain AVX2 one; the plain AVX2 one on AVX-512
// without VNNI; else (the reference dispatch) the reference.
enum class Int8PanelCore { kReference, kAvx2, kAvxVnni, kAvx512Vnni };
Int8PanelCore ActiveInt8PanelCore();
const char* Int8PanelCoreName(Int8PanelCore core);  // "reference" | "avx2" | "avxvnni" | "avx512vnni"

// True when a SIMD version of the core runs now (ActiveInt8PanelCore() is
// not the reference); the prefill paths use panels only then.
bool Int8PanelGemmFast();

// The best version (same results as the reference, bit for bit).
void Int8PanelGemm(const Int8Panel& p, const Int8PanelActivations& x, const float* bias, float* y, int64_t ldy);

// Two panels of the same matrix at once (same chunks, chunks_per_group and
// groups; p0.rows == 16): p1's outputs go to y + 16 (bias + 16). Results equal
// Int8PanelGemm on each; each activation broadcast feeds both panels, which
// is what the SIMD version needs to run near vpdpbusd throughput.
void Int8PanelGemmPair(const Int8Panel& p0, const Int8Panel& p1, const Int8PanelActivations& x, const float* bias,
                       float* y, int64_t ldy);

// Fills `panel` (pointing into `buffers`) for weight rows [r0, r0 + 16) ∩
// [0, rows). Called once per panel, possibly from several threads at once
// (each with its own buffers).
using Int8PanelFill = std::function<void(int64_t r0, Int8PanelBuffers* buffers, Int8Panel* panel)>;

// Whole GEMM: y [n, ldy] (columns [0, rows)) over pairs of panels of 16
// weight rows split over the pool; each pair is filled into a per-thread
// scratch and run for all n tokens (Int8PanelGemmPair; a last odd panel alone). Results do not depend on the pool size. bias: [rows] or null.
void Int8PanelGemmRun(int64_t rows, const Int8PanelActivations& x, const float* bias, float* y, int64_t ldy,
                      ThreadPool& pool, const Int8PanelFill& fill);

namespace internal {
// The AVX-512 VNNI core (int8_panel_gemm_avx512vnni.cc); needs avx512vnni.
void Int8PanelGemmAvx512Vnni(const Int8Panel& p, const Int8PanelActivations& x, const float* bias, float* y,
                             int64_t ldy);
void Int8PanelGemmPairAvx512Vnni(const Int8Panel& p0, const Int8Panel& p1, const Int8PanelActivations& x,
                                 const float* bias, float* y, int64_t ldy);
// The AVX2 cores (int8_panel_gemm_avx2.cc needs avx2 + fma;
// int8_panel_gemm_avxvnni.cc also avxvnni); a pair runs as two panels.
void Int8PanelGemmAvx2(const Int8Panel& p, const Int8PanelActivations& x, const float* bias, float* y,
                       int64_t ldy);
void Int8PanelGemmAvxVnni(const Int8Panel& p, const Int8PanelActivations& x, const float* bias, float* y,
                          int64_t ldy);
}  // namespace internal

}  // namespace squeeze::kernels
