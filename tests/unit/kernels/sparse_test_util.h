// Sparse weights for the sparse GEMM tests (sparse_gemm_test.cc,
// sparse_gemm_batch_test.cc): a bitmask layout encoded from a dense weight,
// and the per-output magnitudes of the kernels' stated tolerance.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "workers/kernels/cpu/sparse_gemm.h"

namespace squeeze::kernels::testing {

// Owns a bitmask layout and the dense [rows, cols] weight it holds. Moving
// keeps the view valid (vector buffers move); copying does not.
struct BitmaskTestWeights {
  std::vector<uint8_t> bitmask;
  std::vector<int64_t> row_offsets;
  std::vector<float> values;
  std::vector<float> dense;
  SparseBitmaskWeights view;
};

// Stores every nonzero of `dense` (row-major [rows, cols]).
inline BitmaskTestWeights BitmaskFromDense(std::vector<float> dense, int64_t rows, int64_t cols) {
  BitmaskTestWeights o;
  o.dense = std::move(dense);
  SparseBitmaskWeights& v = o.view;
  v.rows = rows;
  v.cols = cols;
  o.bitmask.assign(rows * v.mask_row_bytes(), 0);
  for (int64_t r = 0; r < rows; ++r) {
    o.row_offsets.push_back(static_cast<int64_t>(o.values.size()));
    for (int64_t c = 0; c < cols; ++c) {
      if (o.dense[r * cols + c] == 0.0f) continue;
      o.bitmask[r * v.mask_row_bytes() + c / 8] |= static_cast<uint8_t>(1u << (c % 8));
      o.values.push_back(o.dense[r * cols + c]);
    }
  }
  // The values array ends exactly at nnz, so a kernel reading past it is
  // caught by ASan builds; keep it tight (no reserve slack).
  o.values.shrink_to_fit();
  v.bitmask = o.bitmask.data();
  v.row_offsets = o.row_offsets.data();
  v.values = o.values.data();
  return o;
}

// sum_c |x_c w_c| + |b_r| per output [n, rows] of x [n, cols] and the dense
// weight, for the tolerance (testing::Near).
inline std::vector<double> DenseMagnitudes(const std::vector<float>& dense, int64_t rows, int64_t cols,
                                           const float* x, int64_t n, const std::vector<float>& bias) {
  std::vector<double> mag(n * rows);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < rows; ++r) {
      double m = std::fabs(bias[r]);
      for (int64_t c = 0; c < cols; ++c) m += std::fabs(double{x[i * cols + c]} * dense[r * cols + c]);
      mag[i * rows + r] = m;
    }
  }
  return mag;
}

}  // namespace squeeze::kernels::testing
