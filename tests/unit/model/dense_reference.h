// The double-precision reference of a dense layer for the DenseLinear tests:
// y = x W^T + b summed in double (W as the layer stores it, [out, in]), and
// the magnitude sum_c |x_c w_c| + |b| of each output that the kernels'
// tolerance is stated against (kernel_test_util.h Near).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "workers/engine/core/tensor.h"

namespace squeeze::test_inputs {

inline void DoubleReference(const std::vector<float>& x, const MatrixRM& w, const std::vector<float>& bias, int64_t n,
                            std::vector<float>& y, std::vector<double>& mag) {
  const int64_t out = w.rows(), in = w.cols();
  y.assign(n * out, 0.0f);
  mag.assign(n * out, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < out; ++j) {
      double s = bias.empty() ? 0.0 : bias[j], a = bias.empty() ? 0.0 : std::fabs(bias[j]);
      for (int64_t c = 0; c < in; ++c) {
        const double p = double{x[i * in + c]} * w(j, c);
        s += p;
        a += std::fabs(p);
      }
      y[i * out + j] = static_cast<float>(s);
      mag[i * out + j] = a;
    }
  }
}

}  // namespace squeeze::test_inputs
