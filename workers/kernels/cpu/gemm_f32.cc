// Dispatch and threading of the fp32 GEMM; see gemm_f32.h.
#include "workers/kernels/cpu/gemm_f32.h"

#include <algorithm>
#include <vector>

#include <Eigen/Core>

#include "workers/kernels/cpu/cpu_features.h"

namespace squeeze::kernels {

void GemmF32NTStrided(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, int64_t ldy) {
  if (n <= 0 || m <= 0) return;
  switch (ActiveIsa()) {
    case KernelIsa::kAvx512:
      internal::GemmF32NTAvx512(x, n, k, w, m, y, ldy);
      return;
    case KernelIsa::kAvx2:
      internal::GemmF32NTAvx2(x, n, k, w, m, y, ldy);
      return;
    case KernelIsa::kReference:
      break;
  }
  using MatRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const MatRM> X(x, n, k);
  Eigen::Map<const MatRM> W(w, m, k);
  Eigen::Map<MatRM, 0, Eigen::OuterStride<>> Y(y, n, m, Eigen::OuterStride<>(ldy));
  Y.noalias() = X * W.transpose();
}

int64_t GemmF32ChunkColumns(int64_t n, int64_t m, int64_t k) {
  // At least 64K multiply-adds per chunk, at most ~64 chunks, a multiple of
  // 32 columns (the widest register tile); on the packed path (n > 32, see
  // kDotMaxRows in gemm_f32_kernel.inc) at least 256 columns, so that each
  // chunk's packing of x is amortised (with 64-column chunks at n = 33..64
  // packing x cost ~20% of the time).
  const int64_t by_work = (int64_t{1} << 16) / std::max<int64_t>(1, k * std::max<int64_t>(1, n));
  const int64_t by_count = (m + 63) / 64;
  const int64_t by_packing = n > 32 ? 256 : 32;
  const int64_t c = std::max<int64_t>({32, by_work, by_count, by_packing});
  return (c + 31) / 32 * 32;
}

void GemmF32NT(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, ThreadPool& pool) {
  const int64_t chunk = GemmF32ChunkColumns(n, m, k);
  const int64_t n_chunks = (m + chunk - 1) / chunk;
  pool.ParallelFor(n_chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t j0 = c * chunk, j1 = std::min(m, j0 + chunk);
      GemmF32NTStrided(x, n, k, w + j0 * k, j1 - j0, y + j0, m);
    }
  });
}

namespace {

// Single-threaded blocks GEMM for W rows [j_base, j_base + m).
void BlocksStrided(const float* x, int64_t n, int64_t k, const GemmF32WBlocks& w, int64_t j_base, int64_t m,
                   float* y, int64_t ldy) {
  if (n <= 0 || m <= 0) return;
  switch (ActiveIsa()) {
    case KernelIsa::kAvx512:
      internal::GemmF32NTBlocksAvx512(x, n, k, w, j_base, m, y, ldy);
      return;
    case KernelIsa::kAvx2:
      internal::GemmF32NTBlocksAvx2(x, n, k, w, j_base, m, y, ldy);
      return;
    case KernelIsa::kReference:
      break;
  }
  // Reference: materialize 256-row slices of W (filled in the blocks the
  // contract promises) and run the matrix GEMM on each.
  constexpr int64_t kSlice = 256;
  std::vector<float> slice(static_cast<size_t>(std::min(m, kSlice) * k));
  std::vector<float> block(static_cast<size_t>(kGemmF32BlockRows * kGemmF32BlockCols));
  for (int64_t s0 = 0; s0 < m; s0 += kSlice) {
    const int64_t s1 = std::min(m, s0 + kSlice);
    for (int64_t j0 = s0; j0 < s1; j0 += kGemmF32BlockRows) {
      const int64_t nr = std::min(kGemmF32BlockRows, s1 - j0);
      for (int64_t k0 = 0; k0 < k; k0 += kGemmF32BlockCols) {
        const int64_t kc = std::min(kGemmF32BlockCols, k - k0);
        w.fill(w.ctx, j_base + j0, nr, k0, kc, block.data());
        for (int64_t jj = 0; jj < nr; ++jj) {
          std::copy(block.begin() + jj * kc, block.begin() + (jj + 1) * kc, slice.begin() + (j0 - s0 + jj) * k + k0);
        }
      }
    }
    GemmF32NTStrided(x, n, k, slice.data(), s1 - s0, y + s0, ldy);
  }
}

}  // namespace

void GemmF32NTBlocksStrided(const float* x, int64_t n, int64_t k, const GemmF32WBlocks& w, int64_t m, float* y,
                            int64_t ldy) {
  BlocksStrided(x, n, k, w, 0, m, y, ldy);
}

void GemmF32NTBlocks(const float* x, int64_t n, int64_t k, const GemmF32WBlocks& w, int64_t m, float* y,
                     ThreadPool& pool) {
  const int64_t chunk = GemmF32ChunkColumns(std::max<int64_t>(n, 33), m, k);
  const int64_t n_chunks = (m + chunk - 1) / chunk;
  pool.ParallelFor(n_chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const int64_t j0 = c * chunk, j1 = std::min(m, j0 + chunk);
      BlocksStrided(x, n, k, w, j0, j1 - j0, y + j0, m);
    }
  });
}

}  // namespace squeeze::kernels
