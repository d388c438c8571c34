#include <vector>

#include "workers/kernels/cuda/w8a8_gemm.h"

namespace squeeze::gpu {

void Int8GemmNTReference(const int8_t* a, int64_t m, int64_t k, const float* a_scales, const int8_t* w, int64_t n,
                         const float* w_scales, const float* bias, float* y) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      int32_t d = 0;
      for (int64_t c = 0; c < k; ++c) d += int32_t{a[i * k + c]} * int32_t{w[j * k + c]};
      const float p = static_cast<float>(d) * a_scales[i] * w_scales[j];
      y[i * n + j] = bias != nullptr ? p + bias[j] : p;
    }
  }
}

}  // namespace squeeze::gpu
