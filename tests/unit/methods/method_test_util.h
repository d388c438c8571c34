// Helpers shared by the method tests (tests/unit/methods/*_test.cc).
#pragma once

#include <cstdint>
#include <random>

#include <Eigen/Core>

#include "workers/engine/core/tensor.h"
#include "workers/methods/quant/quant_args.h"

namespace squeeze {
namespace test_util {

// [rows, cols] of independent N(0, 1) draws from mt19937_64(seed), row-major
// order (so a given seed always gives the same matrix).
inline MatrixRM RandomMatrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  MatrixRM m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = d(rng);
  return m;
}

// X^T X [in, in] in double of the inputs x [rows, in].
inline Eigen::MatrixXd XtX(const MatrixRM& x) {
  const Eigen::MatrixXd xd = x.cast<double>();
  return xd.transpose() * xd;
}

inline WeightQuantArgs Args(int bits, bool sym, QuantStrategy s, int group = 0) {
  WeightQuantArgs a;
  a.num_bits = bits;
  a.symmetric = sym;
  a.strategy = s;
  a.group_size = group;
  return a;
}

}  // namespace test_util
}  // namespace squeeze
