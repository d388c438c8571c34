#include "workers/engine/calib/activation_stats.h"

#include <algorithm>
#include <cmath>

#include "workers/engine/core/tensor.h"
#include "workers/kernels/cpu/gemm_f32.h"

namespace squeeze {

ActivationStats::ActivationStats(int64_t channels, bool with_xtx)
    : channels_(channels), with_xtx_(with_xtx), sum_sq_(channels, 0.0), max_abs_(channels, 0.0f) {
  if (with_xtx_) xtx_ = Eigen::MatrixXd::Zero(channels, channels);
}

void ActivationStats::Add(const float* x, int64_t rows, ThreadPool& pool) {
  if (rows <= 0) return;
  count_ += rows;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * channels_;
    for (int64_t c = 0; c < channels_; ++c) {
      sum_sq_[c] += double{xr[c]} * xr[c];
      max_abs_[c] = std::max(max_abs_[c], std::abs(xr[c]));
    }
  }
  if (with_xtx_) {
    // X^T X = Xt Xt^T with Xt = X^T (channels x rows), via our fp32 GEMM
    // over the pool (kernels::GemmF32NT; kernels::GemmNT, Eigen, is its
    // reference; sequential_test.cc checks the sum against plain doubles).
    const MatrixRM xt = ConstMapMatrixRM(x, rows, channels_).transpose();
    MatrixRM batch(channels_, channels_);
    kernels::GemmF32NT(xt.data(), channels_, rows, xt.data(), channels_, batch.data(), pool);
    xtx_ += batch.cast<double>();
  }
}

std::vector<double> ActivationStats::ChannelNorms() const {
  std::vector<double> n(sum_sq_.size());
  for (size_t i = 0; i < n.size(); ++i) n[i] = std::sqrt(sum_sq_[i]);
  return n;
}

}  // namespace squeeze
