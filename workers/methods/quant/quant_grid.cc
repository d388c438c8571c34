#include "workers/methods/quant/quant_grid.h"

#include <algorithm>
#include <cmath>

namespace squeeze {

namespace {

// The minmax formulas for the range [lo, hi] (lo <= 0 <= hi).
QuantGroupParams ParamsForRange(float lo, float hi, const WeightQuantArgs& a) {
  QuantGroupParams p;
  if (a.symmetric) {
    const float amax = std::max(-lo, hi);
    p.scale = amax > 0.0f ? amax / static_cast<float>(a.qmax()) : 1.0f;
    return p;
  }
  if (hi - lo <= 0.0f) return p;
  p.scale = (hi - lo) / static_cast<float>((1 << a.num_bits) - 1);
  const float z = std::round(static_cast<float>(a.qmin()) - lo / p.scale);
  p.zero = static_cast<int32_t>(std::clamp(z, static_cast<float>(a.qmin()), static_cast<float>(a.qmax())));
  return p;
}

constexpr int kMseGrid = 100;      // p = 1 - i / kMseGrid
constexpr int kMseMaxShrinkPct = 80;  // i in [0, 80)

}  // namespace

QuantGroupParams ComputeQuantGroupParams(const float* v, int64_t n, const WeightQuantArgs& a) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, v[i]);
    hi = std::max(hi, v[i]);
  }
  if (a.symmetric) {
    // max|w| exactly as the minmax observer has always computed it.
    float amax = 0.0f;
    for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(v[i]));
    lo = -amax;
    hi = amax;
  }
  const QuantGroupParams minmax = ParamsForRange(lo, hi, a);
  if (a.observer != QuantObserver::kMse) return minmax;
  auto sq_error = [&](const QuantGroupParams& p) {
    double e = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(DequantCode(QuantCode(v[i], p, a), p)) - static_cast<double>(v[i]);
      e += d * d;
    }
    return e;
  };
  QuantGroupParams best = minmax;
  double best_err = sq_error(minmax);
  for (int i = 1; i < kMseMaxShrinkPct; ++i) {
    const float p = 1.0f - static_cast<float>(i) / static_cast<float>(kMseGrid);
    const QuantGroupParams cand = ParamsForRange(p * lo, p * hi, a);
    const double err = sq_error(cand);
    if (err < best_err) {
      best_err = err;
      best = cand;
    }
  }
  return best;
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
