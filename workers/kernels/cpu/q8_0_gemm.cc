// Plain reference, activation quantization and dispatch of the Q4_0 / Q8_0
// block GEMV/GEMM; see q8_0_gemm.h for what is computed. Compiled with
// -ffp-contract=off (CMakeLists.txt): the reference's fp32 operations are
// exactly the ones written here.
#include "workers/kernels/cpu/q8_0_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "workers/engine/core/half.h"
#include "workers/kernels/cpu/cpu_features.h"
#include "workers/kernels/cpu/q8_0_gemm_panel.h"
#include "workers/kernels/cpu/q8_0_gemm_simd.h"

namespace squeeze::kernels {
namespace {

// Weight rows per pool work item, activation rows per inner tile (fixed: the
// arithmetic of one output never depends on the split anyway).
constexpr int64_t kRowsPerItem = 16;
constexpr int64_t kTokensPerTile = 64;

inline const uint8_t* BlockPtr(const GgmlBlockWeights& w, int64_t r, int64_t b) {
  return w.data + r * w.RowBytes() + b * GgmlBlockBytes(w.kind);
}

// The reference for activation rows [i0, i1) and weight rows [r0, r1).
void ReferenceRows(const GgmlBlockWeights& w, const Q8_0Activations& a, const float* bias, float* y, int64_t i0,
                   int64_t i1, int64_t r0, int64_t r1) {
  const int64_t nb = w.blocks_per_row();
  for (int64_t i = i0; i < i1; ++i) {
    const int8_t* qa = a.qa.data() + i * w.cols;
    for (int64_t r = r0; r < r1; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        int32_t p = 0;
        for (int64_t c = b * kGgmlBlockCols; c < (b + 1) * kGgmlBlockCols; ++c) {
          p += GgmlBlockCode(w, r, c) * int32_t{qa[c]};
        }
        const float s = GgmlBlockScale(w, r, b) * a.da[i * nb + b];
        acc = std::fma(static_cast<float>(p), s, acc);
      }
      y[i * w.rows + r] = bias != nullptr ? acc + bias[r] : acc;
    }
  }
}

}  // namespace

void QuantizeActivationsQ8_0(const float* x, int64_t n, int64_t cols, Q8_0Activations* out) {
  const int64_t nb = cols / kGgmlBlockCols;
  out->n = n;
  out->cols = cols;
  out->qa.resize(static_cast<size_t>(n * cols));
  out->da.resize(static_cast<size_t>(n * nb));
  out->block_sums.resize(static_cast<size_t>(n * nb));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + i * cols + b * kGgmlBlockCols;
      int8_t* qb = out->qa.data() + i * cols + b * kGgmlBlockCols;
      float amax = 0.0f;
      for (int64_t c = 0; c < kGgmlBlockCols; ++c) amax = std::max(amax, std::fabs(xb[c]));
      const float d = amax / 127.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      out->da[i * nb + b] = F16ToFloat(FloatToF16(d));
      for (int64_t c = 0; c < kGgmlBlockCols; ++c) {
        const float v = std::nearbyint(xb[c] * id);  // round half to even
        qb[c] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, v)));
      }
    }
    const int8_t* qa = out->qa.data() + i * cols;
    int32_t* bs = out->block_sums.data() + i * nb;
    for (int64_t b = 0; b < nb; ++b) {
      int32_t sum = 0;
      for (int64_t c = 0; c < kGgmlBlockCols; ++c) sum += qa[b * kGgmlBlockCols + c];
      bs[b] = sum;
    }
  }
}

namespace internal {

void PermuteQ4Activations(const Q8_0Activations& a, std::vector<int8_t>* out) {
  const int64_t cols = a.cols, full = cols / 128 * 128;
  out->resize(a.qa.size());
  for (int64_t i = 0; i < a.n; ++i) {
    const int8_t* src = a.qa.data() + i * cols;
    int8_t* dst = out->data() + i * cols;
    for (int64_t g = 0; g < full; g += 128) {
      for (int64_t k = 0; k < 4; ++k) {
        std::memcpy(dst + g + 16 * k, src + g + 32 * k, 16);
        std::memcpy(dst + g + 64 + 16 * k, src + g + 32 * k + 16, 16);
      }
    }
    std::memcpy(dst + full, src + full, static_cast<size_t>(cols - full));
  }
}

}  // namespace internal

int32_t GgmlBlockCode(const GgmlBlockWeights& w, int64_t r, int64_t c) {
  const uint8_t* blk = BlockPtr(w, r, c / kGgmlBlockCols);
  const int64_t j = c % kGgmlBlockCols;
  if (w.kind == GgmlBlockKind::kQ8_0) return static_cast<int8_t>(blk[2 + j]);
  const uint8_t byte = blk[2 + (j % 16)];
  return (j < 16 ? (byte & 0xF) : (byte >> 4)) - 8;
}

float GgmlBlockScale(const GgmlBlockWeights& w, int64_t r, int64_t block) {
  const uint8_t* blk = BlockPtr(w, r, block);
  return F16ToFloat(static_cast<uint16_t>(blk[0] | (uint16_t{blk[1]} << 8)));
}

void GgmlBlockDequantizeRows(const GgmlBlockWeights& w, int64_t r0, int64_t r1, float* dst) {
  for (int64_t r = r0; r < r1; ++r) {
    float* row = dst + (r - r0) * w.cols;
    for (int64_t c = 0; c < w.cols; ++c) {
      row[c] = GgmlBlockScale(w, r, c / kGgmlBlockCols) * static_cast<float>(GgmlBlockCode(w, r, c));
    }
  }
}

void GgmlBlockGemmReference(const GgmlBlockWeights& w, const float* x, int64_t n, const float* bias, float* y) {
  Q8_0Activations a;
  QuantizeActivationsQ8_0(x, n, w.cols, &a);
  ReferenceRows(w, a, bias, y, 0, n, 0, w.rows);
}

void GgmlBlockGemmQ8(const GgmlBlockWeights& w, const Q8_0Activations& a, const float* bias, float* y,
                     ThreadPool& pool) {
  internal::GgmlBlockGemmQ8WithPanelRows(w, a, bias, y, pool, kGgmlBlockPanelRows);
}

void internal::GgmlBlockGemmQ8WithPanelRows(const GgmlBlockWeights& w, const Q8_0Activations& a, const float* bias,
                                            float* y, ThreadPool& pool, int64_t min_panel_rows) {
  if (a.n >= min_panel_rows && Int8PanelGemmFast()) {
    internal::GgmlBlockGemmQ8Panels(w, a, bias, y, pool);
    return;
  }
  const KernelIsa isa = ActiveIsa();
  internal::GgmlBlockJob job;
  job.q4 = w.kind == GgmlBlockKind::kQ4_0;
  job.rows = w.rows;
  job.cols = w.cols;
  job.blocks_per_row = w.blocks_per_row();
  job.row_bytes = w.RowBytes();
  job.w = w.data;
  job.qa = a.qa.data();
  job.da = a.da.data();
  job.block_sums = a.block_sums.data();
  job.bias = bias;
  job.y = y;
  std::vector<int8_t> qa_q4;
  if (job.q4 && isa == KernelIsa::kAvx512) {
    internal::PermuteQ4Activations(a, &qa_q4);
    job.qa_q4 = qa_q4.data();
  }
  void (*rows_fn)(const internal::GgmlBlockJob&, int64_t, int64_t, int64_t, int64_t) = nullptr;
  if (isa == KernelIsa::kAvx512) {
    rows_fn = UseAvx512Vnni() ? internal::GgmlBlockRowsAvx512Vnni : internal::GgmlBlockRowsAvx512;
  } else if (isa == KernelIsa::kAvx2) {
    rows_fn = internal::GgmlBlockRowsAvx2;
  }
  const int64_t items = (w.rows + kRowsPerItem - 1) / kRowsPerItem;
  pool.ParallelFor(items, 1, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t r0 = item * kRowsPerItem, r1 = std::min(w.rows, r0 + kRowsPerItem);
      // Activation tiles inside the item: its weight rows stay in cache
      // while the tiles of activations stream past them.
      for (int64_t i0 = 0; i0 < a.n; i0 += kTokensPerTile) {
        const int64_t i1 = std::min(a.n, i0 + kTokensPerTile);
        if (rows_fn != nullptr) {
          rows_fn(job, i0, i1, r0, r1);
        } else {
          ReferenceRows(w, a, bias, y, i0, i1, r0, r1);
        }
      }
    }
  });
}

void GgmlBlockGemm(const GgmlBlockWeights& w, const float* x, int64_t n, const float* bias, float* y,
                   ThreadPool& pool) {
  Q8_0Activations a;
  QuantizeActivationsQ8_0(x, n, w.cols, &a);
  GgmlBlockGemmQ8(w, a, bias, y, pool);
}

}  // namespace squeeze::kernels
