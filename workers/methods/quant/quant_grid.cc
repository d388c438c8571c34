#include "workers/methods/quant/quant_grid.h"

#include <algorithm>
#include <cmath>

namespace squeeze {

QuantGroupParams ComputeQuantGroupParams(const float* v, int64_t n, const WeightQuantArgs& a) {
  QuantGroupParams p;
  if (a.symmetric) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(v[i]));
    p.scale = amax > 0.0f ? amax / static_cast<float>(a.qmax()) : 1.0f;
    return p;
  }
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, v[i]);
    hi = std::max(hi, v[i]);
  }
  if (hi - lo <= 0.0f) return p;
  p.scale = (hi - lo) / static_cast<float>((1 << a.num_bits) - 1);
  const float z = std::round(static_cast<float>(a.qmin()) - lo / p.scale);
  p.zero = static_cast<int32_t>(std::clamp(z, static_cast<float>(a.qmin()), static_cast<float>(a.qmax())));
  return p;
}

int32_t QuantCode(float v, const QuantGroupParams& p, const WeightQuantArgs& a) {
  const float q = std::round(v / p.scale) + static_cast<float>(p.zero);
  return static_cast<int32_t>(std::clamp(q, static_cast<float>(a.qmin()), static_cast<float>(a.qmax())));
}

std::vector<QuantGroupParams> ComputeAllQuantGroupParams(const MatrixRM& w, const WeightQuantArgs& a) {
  const int64_t out = w.rows(), in = w.cols();
  const int64_t gpr = a.GroupsPerRow(in), gs = a.EffectiveGroupSize(in);
  std::vector<QuantGroupParams> params(static_cast<size_t>(out * gpr));
  if (a.strategy == QuantStrategy::kTensor) {
    std::fill(params.begin(), params.end(), ComputeQuantGroupParams(w.data(), w.size(), a));
    return params;
  }
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t g = 0; g < gpr; ++g) {
      const int64_t c0 = g * gs, c1 = std::min(in, c0 + gs);
      params[r * gpr + g] = ComputeQuantGroupParams(w.data() + r * in + c0, c1 - c0, a);
    }
  }
  return params;
}

void SplitQuantGroupParams(const std::vector<QuantGroupParams>& params, const WeightQuantArgs& a,
                           std::vector<float>* scales, std::vector<int32_t>* zeros) {
  scales->resize(params.size());
  zeros->clear();
  if (!a.symmetric) zeros->resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    (*scales)[i] = params[i].scale;
    if (!a.symmetric) (*zeros)[i] = params[i].zero;
  }
}

}  // namespace squeeze
