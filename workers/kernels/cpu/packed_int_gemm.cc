// Plain references, activation preparation and dispatch of the packed-int
// GEMV/GEMM; see packed_int_gemm.h for what is computed.
#include "workers/kernels/cpu/packed_int_gemm.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "workers/kernels/cpu/cpu_features.h"
#include "workers/kernels/cpu/gemm_f32.h"
#include "workers/kernels/cpu/packed_int_dequant_simd.h"
#include "workers/kernels/cpu/packed_int_gemm_simd.h"
#include "workers/kernels/cpu/packed_int_panel.h"

namespace squeeze::kernels {
namespace {

using internal::kUnit;
using internal::PackedIntJob;

// Output rows per pool work item (fixed: each output's arithmetic never
// depends on the split anyway).
constexpr int64_t kRowsPerItem = 16;
// Weight rows dequantized per tile on the fp32 GEMM path.
constexpr int64_t kDequantTileRows = 64;

inline int64_t GroupOf(const PackedIntWeights& w, int64_t c) {
  return w.g_idx != nullptr ? w.g_idx[c] : c / w.group_size;
}

inline int32_t Code(const PackedIntWeights& w, int64_t r, int64_t c) {
  const int per_word = 32 / w.num_bits;
  const uint32_t word = w.packed[r * w.words_per_row + c / per_word];
  const uint32_t u = (word >> ((c % per_word) * w.num_bits)) & ((1u << w.num_bits) - 1u);
  return static_cast<int32_t>(u) - (1 << (w.num_bits - 1));
}

inline int32_t ZeroPoint(const PackedIntWeights& w, int64_t r, int64_t g) {
  return w.zero_points != nullptr ? w.zero_points[r * w.groups_per_row + g] : 0;
}

// Copies x [n, cols] into dst in the kernels' activation order when the
// weights are 4-bit (packed_int_gemm_simd.h): columns [0, chunked) per
// `chunk`-column chunk, then every full 32-column unit, even columns first,
// then odd; the last partial unit (and everything for 8-bit weights) as is.
template <typename T>
void PermuteUnits(const T* x, int64_t n, int64_t cols, bool permute, int64_t chunk, int64_t chunked, T* dst) {
  for (int64_t i = 0; i < n; ++i) {
    const T* src = x + i * cols;
    T* out = dst + i * cols;
    int64_t c = 0;
    if (permute) {
      for (const auto [span, end] : {std::pair{chunk, chunked}, std::pair{kUnit, cols}}) {
        for (; c + span <= end; c += span) {
          for (int64_t t = 0; t < span / 2; ++t) {
            out[c + t] = src[c + 2 * t];
            out[c + span / 2 + t] = src[c + 2 * t + 1];
          }
        }
      }
    }
    for (; c < cols; ++c) out[c] = src[c];
  }
}

// Columns the 4-bit decode kernel of `isa` reads in chunks of `chunk`
// columns (packed_int_gemm_simd.h): its blocks of full groups (AVX-512: 16
// groups of 32, 64 or a multiple of 128 columns, R16Applies in
// packed_int_gemm_q8_rows16_avx512.inc; AVX2: 8 groups of 32 or a multiple
// of 64 columns, R8BlocksApply in packed_int_gemm_q8_rows8_avx2.inc); 0 for
// other layouts, which keep the per-unit order.
int64_t ChunkedColumns(const PackedIntWeights& w, KernelIsa isa, int64_t chunk) {
  const int64_t blocks_of = isa == KernelIsa::kAvx512 ? 16 : 8;
  if (w.num_bits != 4 || w.groups_per_row < blocks_of) return 0;
  const int64_t G = w.group_size;
  if (G != 32 && G != chunk / 2 && G % chunk != 0) return 0;
  const int64_t full_groups = w.cols / G, blocked = full_groups / blocks_of * blocks_of;
  // AVX-512 then runs one block of 8 groups of 32 or 64 when 8 are left.
  const bool half = isa == KernelIsa::kAvx512 && full_groups - blocked >= 8 && (G == 32 || G == 64);
  return (blocked + (half ? 8 : 0)) * G;
}

void RunRows(const PackedIntJob& job, ThreadPool& pool,
             void (*rows_fn)(const PackedIntJob&, int64_t, int64_t)) {
  const int64_t items = (job.w.rows + kRowsPerItem - 1) / kRowsPerItem;
  pool.ParallelFor(items, 1, [&](int64_t b, int64_t e) {
    rows_fn(job, b * kRowsPerItem, std::min(job.w.rows, e * kRowsPerItem));
  });
}

using DequantBlockFnPtr = void (*)(const PackedIntWeights&, int64_t, int64_t, int64_t, int64_t, float*, int64_t);

// The dequantization that serves w under the active ISA.
DequantBlockFnPtr DequantBlockFn(const PackedIntWeights& w) {
  if (PackedIntFastPathApplies(w)) {
    switch (ActiveIsa()) {
      case KernelIsa::kAvx512: return internal::PackedIntDequantBlockAvx512;
      case KernelIsa::kAvx2: return internal::PackedIntDequantBlockAvx2;
      case KernelIsa::kReference: break;
    }
  }
  return PackedIntDequantizeBlockReference;
}

// Prefill: GemmF32NTBlocks with W blocks dequantized on demand.
struct DequantFill {
  const PackedIntWeights* w;
  DequantBlockFnPtr dequant;
  static void Fill(const void* ctx, int64_t j0, int64_t nr, int64_t k0, int64_t kc, float* dst) {
    const auto* f = static_cast<const DequantFill*>(ctx);
    f->dequant(*f->w, j0, j0 + nr, k0, k0 + kc, dst, kc);
  }
};

void DequantBlocksGemm(const PackedIntWeights& w, const float* x, int64_t n, const float* bias, float* y,
                       ThreadPool& pool) {
  const DequantFill fill{&w, DequantBlockFn(w)};
  GemmF32WBlocks blocks;
  blocks.fill = &DequantFill::Fill;
  blocks.ctx = &fill;
  GemmF32NTBlocks(x, n, w.cols, blocks, w.rows, y, pool);
  if (bias != nullptr) {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t r = 0; r < w.rows; ++r) y[i * w.rows + r] += bias[r];
    }
  }
}

// Dequantize 64-row tiles and multiply with the fp32 GEMM (the previous
// prefill path; decode of layouts without a SIMD version).
void DequantTileGemm(const PackedIntWeights& w, const float* x, int64_t n, const float* bias, float* y,
                     ThreadPool& pool) {
  const int64_t tiles = (w.rows + kDequantTileRows - 1) / kDequantTileRows;
  pool.ParallelFor(tiles, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> tile(static_cast<size_t>(kDequantTileRows * w.cols));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * kDequantTileRows, r1 = std::min(w.rows, r0 + kDequantTileRows);
      PackedIntDequantizeRowsReference(w, r0, r1, tile.data());
      // y[:, r0:r1] = x * tile^T, written with row stride w.rows.
      GemmF32NTStrided(x, n, w.cols, tile.data(), r1 - r0, y + r0, w.rows);
      if (bias != nullptr) {
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t r = r0; r < r1; ++r) y[i * w.rows + r] += bias[r];
        }
      }
    }
  });
}

// The Q8 reference for output rows [r0, r1) (a pure function of its inputs
// per output, so it can run split over the pool).
void Q8ReferenceRows(const PackedIntWeights& w, const int8_t* qa, const float* a, int64_t n,
                     const float* bias, float* y, int64_t r0, int64_t r1) {
  std::vector<int32_t> d(static_cast<size_t>(w.groups_per_row));
  std::vector<int32_t> codes(static_cast<size_t>(w.cols));
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = 0; c < w.cols; ++c) codes[c] = Code(w, r, c);
    for (int64_t i = 0; i < n; ++i) {
      std::fill(d.begin(), d.end(), 0);
      for (int64_t c = 0; c < w.cols; ++c) {
        const int64_t g = GroupOf(w, c);
        d[g] += (codes[c] - ZeroPoint(w, r, g)) * int32_t{qa[i * w.cols + c]};
      }
      float acc = 0.0f;
      for (int64_t g = 0; g < w.groups_per_row; ++g) {
        const float scale = w.scales[r * w.groups_per_row + g] * a[i * w.groups_per_row + g];
        acc = std::fma(static_cast<float>(d[g]), scale, acc);
      }
      y[i * w.rows + r] = bias != nullptr ? acc + bias[r] : acc;
    }
  }
}

}  // namespace

bool PackedIntFastPathApplies(const PackedIntWeights& w) {
  if (w.num_bits != 4 && w.num_bits != 8) return false;
  if (w.g_idx != nullptr || w.rows <= 0 || w.cols <= 0 || w.cols > (int64_t{1} << 16)) return false;
  return w.groups_per_row == 1 || (w.group_size > 0 && w.group_size % kUnit == 0);
}

float PackedIntDequant(const PackedIntWeights& w, int64_t r, int64_t c) {
  const int64_t g = GroupOf(w, c);
  return static_cast<float>(Code(w, r, c) - ZeroPoint(w, r, g)) * w.scales[r * w.groups_per_row + g];
}

void PackedIntDequantizeRows(const PackedIntWeights& w, int64_t r0, int64_t r1, float* dst) {
  PackedIntDequantizeBlock(w, r0, r1, 0, w.cols, dst, w.cols);
}

void PackedIntDequantizeBlockReference(const PackedIntWeights& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                                       float* dst, int64_t ld) {
  for (int64_t r = r0; r < r1; ++r) {
    float* row = dst + (r - r0) * ld;
    for (int64_t c = c0; c < c1; ++c) row[c - c0] = PackedIntDequant(w, r, c);
  }
}

void PackedIntDequantizeBlock(const PackedIntWeights& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1, float* dst,
                              int64_t ld) {
  DequantBlockFn(w)(w, r0, r1, c0, c1, dst, ld);
}

void PackedIntDequantizeRowsReference(const PackedIntWeights& w, int64_t r0, int64_t r1, float* dst) {
  for (int64_t r = r0; r < r1; ++r) {
    float* row = dst + (r - r0) * w.cols;
    for (int64_t c = 0; c < w.cols; ++c) row[c] = PackedIntDequant(w, r, c);
  }
}

void PackedIntGemmReference(const PackedIntWeights& w, const float* x, int64_t n, const float* bias,
                            float* y) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    PackedIntDequantizeRowsReference(w, r, r + 1, row.data());
    for (int64_t i = 0; i < n; ++i) {
      double acc = bias != nullptr ? bias[r] : 0.0;
      for (int64_t c = 0; c < w.cols; ++c) acc += double{x[i * w.cols + c]} * row[c];
      y[i * w.rows + r] = static_cast<float>(acc);
    }
  }
}

void PackedIntGemmDequantTilesReference(const PackedIntWeights& w, const float* x, int64_t n, const float* bias,
                                        float* y, ThreadPool& pool) {
  DequantTileGemm(w, x, n, bias, y, pool);
}

void QuantizeActivationGroups(const PackedIntWeights& w, const float* x, int64_t n, int8_t* qa, float* a,
                              int32_t* qsum) {
  const int64_t ng = w.groups_per_row;
  std::vector<float> amax(static_cast<size_t>(ng)), inv(static_cast<size_t>(ng));
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * w.cols;
    std::fill(amax.begin(), amax.end(), 0.0f);
    for (int64_t c = 0; c < w.cols; ++c) {
      float& m = amax[GroupOf(w, c)];
      m = std::max(m, std::fabs(xi[c]));
    }
    for (int64_t g = 0; g < ng; ++g) {
      a[i * ng + g] = amax[g] / 127.0f;
      inv[g] = amax[g] > 0.0f ? 127.0f / amax[g] : 0.0f;
      qsum[i * ng + g] = 0;
    }
    for (int64_t c = 0; c < w.cols; ++c) {
      const int64_t g = GroupOf(w, c);
      const float v = std::nearbyint(xi[c] * inv[g]);  // round half to even
      const int32_t q = static_cast<int32_t>(std::min(127.0f, std::max(-127.0f, v)));
      qa[i * w.cols + c] = static_cast<int8_t>(q);
      qsum[i * ng + g] += q;
    }
  }
}

void PackedIntGemmQ8Reference(const PackedIntWeights& w, const float* x, int64_t n, const float* bias,
                              float* y) {
  std::vector<int8_t> qa(static_cast<size_t>(n * w.cols));
  std::vector<float> a(static_cast<size_t>(n * w.groups_per_row));
  std::vector<int32_t> qsum(static_cast<size_t>(n * w.groups_per_row));
  QuantizeActivationGroups(w, x, n, qa.data(), a.data(), qsum.data());
  Q8ReferenceRows(w, qa.data(), a.data(), n, bias, y, 0, w.rows);
}

void PackedIntGemm(const PackedIntWeights& w, const float* x, int64_t n, const float* bias, float* y,
                   ThreadPool& pool) {
  const KernelIsa isa = ActiveIsa();
  if (n >= kPackedIntDequantRows) {
    DequantBlocksGemm(w, x, n, bias, y, pool);
    return;
  }
  if (isa == KernelIsa::kReference || !PackedIntFastPathApplies(w)) {
    DequantTileGemm(w, x, n, bias, y, pool);
    return;
  }
  std::vector<float> xp(static_cast<size_t>(n * w.cols));
  PermuteUnits(x, n, w.cols, w.num_bits == 4, kUnit, 0, xp.data());
  PackedIntJob job;
  job.w = w;
  job.n = n;
  job.xp = xp.data();
  job.bias = bias;
  job.y = y;
  RunRows(job, pool, isa == KernelIsa::kAvx512 ? internal::PackedIntRowsF32Avx512
                                               : internal::PackedIntRowsF32Avx2);
}

namespace {

// Grow-only resize of a scratch vector (its contents are overwritten).
template <typename V>
void GrowTo(V& v, int64_t size) {
  if (static_cast<int64_t>(v.size()) < size) v.resize(static_cast<size_t>(size));
}

// The row kernels' part of the int8-activation path, shared by both
// quantizers (PackedIntGemmQ8's per-group one and a caller's, e.g.
// QuantizeActivationsQ8_0 for the Q4_0 GGUF layers): activations already
// quantized, natural column order, rows cols apart. Layouts without a
// version under `isa` run the reference rows; the others get the
// activations permuted into their kernels' order and the rows split over
// the pool.
void Q8RowsOnQuantized(const PackedIntWeights& w, KernelIsa isa, const int8_t* qa, const float* a,
                       const int32_t* qsum, int64_t n, const float* bias, float* y, ThreadPool& pool) {
  if (isa == KernelIsa::kReference || !PackedIntFastPathApplies(w)) {
    const int64_t items = (w.rows + kRowsPerItem - 1) / kRowsPerItem;
    pool.ParallelFor(items, 1, [&](int64_t b, int64_t e) {
      Q8ReferenceRows(w, qa, a, n, bias, y, b * kRowsPerItem, std::min(w.rows, e * kRowsPerItem));
    });
    return;
  }
  // Per calling thread, grow-only: a decode step calls this for every layer
  // and fresh buffers cost allocations and page faults each time. Every
  // element used is written below.
  thread_local std::vector<int8_t> qp;
  GrowTo(qp, n * w.cols);
  PackedIntJob job;
  const int64_t chunk = isa == KernelIsa::kAvx512 ? internal::kChunk : internal::kChunkAvx2;
  job.qa_chunked_cols = ChunkedColumns(w, isa, chunk);
  PermuteUnits(qa, n, w.cols, w.num_bits == 4, chunk, job.qa_chunked_cols, qp.data());
  job.w = w;
  job.n = n;
  job.qa = qp.data();
  job.a = a;
  job.qsum = qsum;
  job.bias = bias;
  job.y = y;
  if (isa == KernelIsa::kAvx512) {
    const bool vnni = UseAvx512Vnni();
    const int64_t items = (w.rows + kRowsPerItem - 1) / kRowsPerItem;
    pool.ParallelFor(items, 1, [&](int64_t b, int64_t e) {
      internal::PackedIntRowsQ8Avx512(job, b * kRowsPerItem, std::min(w.rows, e * kRowsPerItem), vnni);
    });
  } else {
    RunRows(job, pool, internal::PackedIntRowsQ8Avx2);
  }
}

}  // namespace

void PackedIntGemmQ8(const PackedIntWeights& w, const float* x, int64_t n, const float* bias, float* y,
                     ThreadPool& pool) {
  internal::PackedIntGemmQ8WithTileRows(w, x, n, bias, y, pool, PackedIntTileRows(w));
}

void internal::PackedIntGemmQ8WithTileRows(const PackedIntWeights& w, const float* x, int64_t n,
                                           const float* bias, float* y, ThreadPool& pool, int64_t min_tile_rows) {
  // Prefill: 16-row panels repacked on the fly, every token over each panel
  // (packed_int_panel.h); the row kernels stay for decode.
  if (n >= min_tile_rows && Int8PanelGemmFast() && PackedIntFastPathApplies(w)) {
    PackedIntGemmQ8Panels(w, x, n, bias, y, pool);
    return;
  }
  const int64_t ng = w.groups_per_row;
  const KernelIsa isa = ActiveIsa();
  if (isa == KernelIsa::kReference || !PackedIntFastPathApplies(w)) {
    std::vector<int8_t> qa(static_cast<size_t>(n * w.cols));
    std::vector<float> a(static_cast<size_t>(n * ng));
    std::vector<int32_t> qsum(static_cast<size_t>(n * ng));
    QuantizeActivationGroups(w, x, n, qa.data(), a.data(), qsum.data());
    Q8RowsOnQuantized(w, isa, qa.data(), a.data(), qsum.data(), n, bias, y, pool);
    return;
  }
  // Per calling thread, grow-only (see Q8RowsOnQuantized).
  thread_local std::vector<int8_t> qa;
  thread_local std::vector<float> a;
  thread_local std::vector<int32_t> qsum;
  GrowTo(qa, n * w.cols);
  GrowTo(a, n * ng);
  GrowTo(qsum, n * ng);
  // The SIMD quantizer writes QuantizeActivationGroups' bytes (tested).
  QuantizePanelActivations(w, x, n, qa.data(), w.cols, a.data(), qsum.data());
  Q8RowsOnQuantized(w, isa, qa.data(), a.data(), qsum.data(), n, bias, y, pool);
}

void PackedIntGemmQ8Quantized(const PackedIntWeights& w, const int8_t* qa, const float* a, const int32_t* qsum,
                              int64_t n, const float* bias, float* y, ThreadPool& pool) {
  internal::PackedIntGemmQ8QuantizedWithTileRows(w, qa, a, qsum, n, bias, y, pool, PackedIntTileRows(w));
}

void internal::PackedIntGemmQ8QuantizedWithTileRows(const PackedIntWeights& w, const int8_t* qa, const float* a,
                                                    const int32_t* qsum, int64_t n, const float* bias, float* y,
                                                    ThreadPool& pool, int64_t min_tile_rows) {
  // The panels read rows padded to whole 32-column chunks: qa's own rows
  // when cols is a multiple of 32.
  if (n >= min_tile_rows && w.cols % kPanelChunkCols == 0 && Int8PanelGemmFast() && PackedIntFastPathApplies(w)) {
    PackedIntGemmQ8PanelsQuantized(w, qa, w.cols, a, qsum, n, bias, y, pool);
    return;
  }
  Q8RowsOnQuantized(w, ActiveIsa(), qa, a, qsum, n, bias, y, pool);
}

void PackedIntGemmQ8QuantizedReference(const PackedIntWeights& w, const int8_t* qa, const float* a, int64_t n,
                                       const float* bias, float* y) {
  Q8ReferenceRows(w, qa, a, n, bias, y, 0, w.rows);
}

}  // namespace squeeze::kernels
