// ActivationStats: running statistics of a linear layer's input rows, the raw
// material of calibration-based methods:
//   count       rows seen
//   sum_sq[c]   sum of x[r, c]^2 over rows (Wanda's ||X_c||_2^2, AWQ's scale)
//   max_abs[c]  max |x[r, c]| over rows (SmoothQuant)
//   xtx         optional sum over rows of x^T x, [channels, channels] (GPTQ /
//               SparseGPT Hessian H = 2 X^T X / count). Each Add's batch is
//               multiplied in fp32 and accumulated in double.
#pragma once

#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "workers/engine/core/thread_pool.h"

namespace squeeze {

class ActivationStats {
 public:
  ActivationStats() = default;
  ActivationStats(int64_t channels, bool with_xtx);

  // x: rows x channels(), row-major fp32.
  void Add(const float* x, int64_t rows, ThreadPool& pool = ThreadPool::Default());

  int64_t channels() const { return channels_; }
  int64_t count() const { return count_; }
  const std::vector<double>& sum_sq() const { return sum_sq_; }
  const std::vector<float>& max_abs() const { return max_abs_; }
  // sqrt(sum_sq[c]): the L2 norm of input channel c over all rows.
  std::vector<double> ChannelNorms() const;
  bool has_xtx() const { return with_xtx_; }
  // Sum of x^T x (symmetric); empty when !has_xtx().
  const Eigen::MatrixXd& xtx() const { return xtx_; }

 private:
  int64_t channels_ = 0;
  bool with_xtx_ = false;
  int64_t count_ = 0;
  std::vector<double> sum_sq_;
  std::vector<float> max_abs_;
  Eigen::MatrixXd xtx_;
};

}  // namespace squeeze
