#include "workers/methods/quant/rtn.h"

#include <algorithm>
#include <cmath>

namespace squeeze {
namespace {

struct GroupParams {
  float scale = 1.0f;
  int32_t zero = 0;
};

GroupParams ComputeParams(const float* v, int64_t n, const WeightQuantArgs& a) {
  GroupParams p;
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

int32_t Code(float v, const GroupParams& p, const WeightQuantArgs& a) {
  const float q = std::round(v / p.scale) + static_cast<float>(p.zero);
  return static_cast<int32_t>(std::clamp(q, static_cast<float>(a.qmin()), static_cast<float>(a.qmax())));
}

// Computes params for every (row, group); tensor strategy shares one set.
std::vector<GroupParams> AllParams(const MatrixRM& w, const WeightQuantArgs& a) {
  const int64_t out = w.rows(), in = w.cols();
  const int64_t gpr = a.GroupsPerRow(in), gs = a.EffectiveGroupSize(in);
  std::vector<GroupParams> params(static_cast<size_t>(out * gpr));
  if (a.strategy == QuantStrategy::kTensor) {
    const GroupParams p = ComputeParams(w.data(), w.size(), a);
    std::fill(params.begin(), params.end(), p);
    return params;
  }
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t g = 0; g < gpr; ++g) {
      const int64_t c0 = g * gs, c1 = std::min(in, c0 + gs);
      params[r * gpr + g] = ComputeParams(w.data() + r * in + c0, c1 - c0, a);
    }
  }
  return params;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PackedIntLinear>> QuantizeRtn(const MatrixRM& w,
                                                             const WeightQuantArgs& args,
                                                             std::vector<float> bias) {
  if (absl::Status s = args.Validate(); !s.ok()) return s;
  const int64_t out = w.rows(), in = w.cols();
  const int64_t gpr = args.GroupsPerRow(in), gs = args.EffectiveGroupSize(in);
  const std::vector<GroupParams> params = AllParams(w, args);
  std::vector<int32_t> q(static_cast<size_t>(out * in));
  std::vector<float> scales(params.size());
  std::vector<int32_t> zeros;
  if (!args.symmetric) zeros.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    scales[i] = params[i].scale;
    if (!args.symmetric) zeros[i] = params[i].zero;
  }
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) q[r * in + c] = Code(w(r, c), params[r * gpr + c / gs], args);
  }
  return PackedIntLinear::FromCodes(args, out, in, q, std::move(scales), std::move(zeros), std::move(bias));
}

MatrixRM FakeQuantRtnReference(const MatrixRM& w, const WeightQuantArgs& args) {
  const int64_t out = w.rows(), in = w.cols();
  const int64_t gpr = args.GroupsPerRow(in), gs = args.EffectiveGroupSize(in);
  const std::vector<GroupParams> params = AllParams(w, args);
  MatrixRM r(out, in);
  for (int64_t i = 0; i < out; ++i) {
    for (int64_t c = 0; c < in; ++c) {
      const GroupParams& p = params[i * gpr + c / gs];
      r(i, c) = static_cast<float>(Code(w(i, c), p, args) - p.zero) * p.scale;
    }
  }
  return r;
}

double RelativeError(const MatrixRM& w, const MatrixRM& w_hat) {
  const double n = w.cast<double>().norm();
  if (n == 0.0) return 0.0;
  return (w - w_hat).cast<double>().norm() / n;
}

}  // namespace squeeze
