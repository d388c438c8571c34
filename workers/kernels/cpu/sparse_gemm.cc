// Plain references, densification and dispatch of the sparse GEMV / small
// GEMM; see sparse_gemm.h for what is computed.
#include "workers/kernels/cpu/sparse_gemm.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "workers/kernels/cpu/gemm_f32.h"

namespace squeeze::kernels {
namespace {

// Weight rows densified per tile on the n > kSparseGemvMaxRows path.
constexpr int64_t kDensifyTileRows = 64;

inline int NMPosition(const uint8_t* idx_row, int64_t k) { return (idx_row[k / 2] >> (4 * (k % 2))) & 0xF; }

// Runs rows_fn over fixed blocks of kSparseRowsPerItem output rows.
template <typename Fn>
void RunRowBlocks(int64_t rows, ThreadPool& pool, const Fn& rows_fn) {
  const int64_t items = (rows + kSparseRowsPerItem - 1) / kSparseRowsPerItem;
  pool.ParallelFor(items, 1, [&](int64_t b, int64_t e) {
    rows_fn(b * kSparseRowsPerItem, std::min(rows, e * kSparseRowsPerItem));
  });
}

// n > kSparseGemvMaxRows: densify 64-row tiles and run the fp32 GEMM on each.
template <typename Densify>
void DensifiedGemm(int64_t rows, int64_t cols, const Densify& densify, const float* x, int64_t n,
                   const float* bias, float* y, ThreadPool& pool) {
  const int64_t tiles = (rows + kDensifyTileRows - 1) / kDensifyTileRows;
  pool.ParallelFor(tiles, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> tile(static_cast<size_t>(kDensifyTileRows * cols));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * kDensifyTileRows, r1 = std::min(rows, r0 + kDensifyTileRows);
      densify(r0, r1, tile.data());
      GemmF32NTStrided(x, n, cols, tile.data(), r1 - r0, y + r0, rows);
      if (bias != nullptr) {
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t r = r0; r < r1; ++r) y[i * rows + r] += bias[r];
        }
      }
    }
  });
}

}  // namespace

bool SparseNMFastPathApplies(const SparseNMWeights& w, KernelIsa isa) {
  const int k = w.keep, m = w.group;
  if (k < 1 || k >= m || m > 16 || w.rows <= 0 || w.cols <= 0 || w.cols % m != 0) return false;
  switch (isa) {
    case KernelIsa::kAvx512: return 16 % k == 0 && 16 / k * m <= 32;
    case KernelIsa::kAvx2: return 8 % k == 0 && 8 / k * m <= 16;
    case KernelIsa::kReference: return false;
  }
  return false;
}

void SparseNMDensifyRows(const SparseNMWeights& w, int64_t r0, int64_t r1, float* dst) {
  const int64_t per_row = w.values_per_row();
  for (int64_t r = r0; r < r1; ++r) {
    float* row = dst + (r - r0) * w.cols;
    std::fill(row, row + w.cols, 0.0f);
    const float* v = w.values + r * per_row;
    const uint8_t* idx = w.indices + r * w.index_row_bytes();
    for (int64_t k = 0; k < per_row; ++k) row[(k / w.keep) * w.group + NMPosition(idx, k)] = v[k];
  }
}

void SparseBitmaskDensifyRows(const SparseBitmaskWeights& w, int64_t r0, int64_t r1, float* dst) {
  if (ActiveIsa() == KernelIsa::kAvx512) {
    internal::SparseBitmaskDensifyRowsAvx512(w, r0, r1, dst);
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    float* row = dst + (r - r0) * w.cols;
    std::fill(row, row + w.cols, 0.0f);
    const uint8_t* mask = w.bitmask + r * w.mask_row_bytes();
    const float* v = w.values + w.row_offsets[r];
    for (int64_t c = 0; c < w.cols; ++c) {
      if ((mask[c / 8] >> (c % 8)) & 1) row[c] = *v++;
    }
  }
}

void SparseNMGemmReference(const SparseNMWeights& w, const float* x, int64_t n, const float* bias, float* y) {
  const int64_t per_row = w.values_per_row();
  for (int64_t r = 0; r < w.rows; ++r) {
    const float* v = w.values + r * per_row;
    const uint8_t* idx = w.indices + r * w.index_row_bytes();
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * w.cols;
      double acc = bias != nullptr ? bias[r] : 0.0;
      for (int64_t k = 0; k < per_row; ++k) {
        acc += double{v[k]} * xi[(k / w.keep) * w.group + NMPosition(idx, k)];
      }
      y[i * w.rows + r] = static_cast<float>(acc);
    }
  }
}

void SparseBitmaskGemmReference(const SparseBitmaskWeights& w, const float* x, int64_t n, const float* bias,
                                float* y) {
  for (int64_t r = 0; r < w.rows; ++r) {
    const uint8_t* mask = w.bitmask + r * w.mask_row_bytes();
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * w.cols;
      const float* v = w.values + w.row_offsets[r];
      double acc = bias != nullptr ? bias[r] : 0.0;
      for (int64_t c = 0; c < w.cols; ++c) {
        if ((mask[c / 8] >> (c % 8)) & 1) acc += double{*v++} * xi[c];
      }
      y[i * w.rows + r] = static_cast<float>(acc);
    }
  }
}

void SparseNMGemm(const SparseNMWeights& w, const float* x, int64_t n, const float* bias, float* y,
                  ThreadPool& pool) {
  if (n <= 0 || w.rows <= 0) return;
  if (n > kSparseGemvMaxRows) {
    DensifiedGemm(
        w.rows, w.cols, [&](int64_t r0, int64_t r1, float* dst) { SparseNMDensifyRows(w, r0, r1, dst); }, x, n, bias,
        y, pool);
    return;
  }
  const KernelIsa isa = ActiveIsa();
  if (isa == KernelIsa::kAvx512 && SparseNMFastPathApplies(w, isa)) {
    RunRowBlocks(w.rows, pool, [&](int64_t r0, int64_t r1) { internal::SparseNMRowsAvx512(w, x, n, bias, y, r0, r1); });
  } else if (isa >= KernelIsa::kAvx2 && SparseNMFastPathApplies(w, KernelIsa::kAvx2)) {
    RunRowBlocks(w.rows, pool, [&](int64_t r0, int64_t r1) { internal::SparseNMRowsAvx2(w, x, n, bias, y, r0, r1); });
  } else {
    RunRowBlocks(w.rows, pool, [&](int64_t r0, int64_t r1) {
      SparseNMWeights part = w;
      part.rows = r1 - r0;
      part.values = w.values + r0 * w.values_per_row();
      part.indices = w.indices + r0 * w.index_row_bytes();
      // The reference writes y[i * part.rows + r]; run it per x row into a
      // scratch row and scatter (n is at most kSparseGemvMaxRows here).
      std::vector<float> tmp(static_cast<size_t>(part.rows));
      for (int64_t i = 0; i < n; ++i) {
        SparseNMGemmReference(part, x + i * w.cols, 1, bias != nullptr ? bias + r0 : nullptr, tmp.data());
        std::memcpy(y + i * w.rows + r0, tmp.data(), tmp.size() * sizeof(float));
      }
    });
  }
}

void SparseBitmaskGemm(const SparseBitmaskWeights& w, const float* x, int64_t n, const float* bias, float* y,
                       ThreadPool& pool) {
  if (n <= 0 || w.rows <= 0) return;
  if (n > kSparseGemvMaxRows) {
    DensifiedGemm(
        w.rows, w.cols, [&](int64_t r0, int64_t r1, float* dst) { SparseBitmaskDensifyRows(w, r0, r1, dst); }, x, n,
        bias, y, pool);
    return;
  }
  const KernelIsa isa = ActiveIsa();
  if (isa == KernelIsa::kAvx512 && n >= kSparseBitmaskDensifyMinRows) {
    RunRowBlocks(w.rows, pool, [&](int64_t r0, int64_t r1) {
      internal::SparseBitmaskRowsDensifiedAvx512(w, x, n, bias, y, r0, r1);
    });
  } else if (isa == KernelIsa::kAvx512) {
    RunRowBlocks(w.rows, pool,
                 [&](int64_t r0, int64_t r1) { internal::SparseBitmaskRowsAvx512(w, x, n, bias, y, r0, r1); });
  } else if (isa == KernelIsa::kAvx2) {
    RunRowBlocks(w.rows, pool,
                 [&](int64_t r0, int64_t r1) { internal::SparseBitmaskRowsAvx2(w, x, n, bias, y, r0, r1); });
  } else {
    RunRowBlocks(w.rows, pool, [&](int64_t r0, int64_t r1) {
      SparseBitmaskWeights part = w;
      part.rows = r1 - r0;
      part.bitmask = w.bitmask + r0 * w.mask_row_bytes();
      part.row_offsets = w.row_offsets + r0;
      std::vector<float> tmp(static_cast<size_t>(part.rows));
      for (int64_t i = 0; i < n; ++i) {
        SparseBitmaskGemmReference(part, x + i * w.cols, 1, bias != nullptr ? bias + r0 : nullptr, tmp.data());
        std::memcpy(y + i * w.rows + r0, tmp.data(), tmp.size() * sizeof(float));
      }
    });
  }
}

}  // namespace squeeze::kernels
