#include "workers/methods/quant/int8_matmul.h"

#include <algorithm>
#include <cmath>

namespace squeeze {

float QuantizeRowInt8(const float* x, int64_t n, int8_t* q, const uint8_t* skip) {
  float amax = 0.0f;
  for (int64_t c = 0; c < n; ++c) {
    if (skip == nullptr || skip[c] == 0) amax = std::max(amax, std::fabs(x[c]));
  }
  const float s = amax > 0.0f ? amax / static_cast<float>(kInt8ActQmax) : 1.0f;
  for (int64_t c = 0; c < n; ++c) {
    if (skip != nullptr && skip[c] != 0) {
      q[c] = 0;
      continue;
    }
    const float v = std::clamp(std::round(x[c] / s), -static_cast<float>(kInt8ActQmax),
                               static_cast<float>(kInt8ActQmax));
    q[c] = static_cast<int8_t>(v);
  }
  return s;
}

int32_t DotInt8(const int8_t* a, const int8_t* b, int64_t n) {
  int32_t acc = 0;
  for (int64_t c = 0; c < n; ++c) acc += static_cast<int32_t>(a[c]) * static_cast<int32_t>(b[c]);
  return acc;
}

}  // namespace squeeze
