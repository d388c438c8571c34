#include "workers/methods/quant/rtn.h"

#include "workers/methods/quant/quant_grid.h"

namespace squeeze {

absl::StatusOr<std::unique_ptr<PackedIntLinear>> QuantizeRtn(const MatrixRM& w,
                                                             const WeightQuantArgs& args,
                                                             std::vector<float> bias) {
  if (absl::Status s = args.Validate(); !s.ok()) return s;
  const int64_t out = w.rows(), in = w.cols();
  const int64_t gpr = args.GroupsPerRow(in), gs = args.EffectiveGroupSize(in);
  const std::vector<QuantGroupParams> params = ComputeAllQuantGroupParams(w, args);
  std::vector<int32_t> q(static_cast<size_t>(out * in));
  std::vector<float> scales;
  std::vector<int32_t> zeros;
  SplitQuantGroupParams(params, args, &scales, &zeros);
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) q[r * in + c] = QuantCode(w(r, c), params[r * gpr + c / gs], args);
  }
  return PackedIntLinear::FromCodes(args, out, in, q, std::move(scales), std::move(zeros), std::move(bias));
}

MatrixRM FakeQuantRtnReference(const MatrixRM& w, const WeightQuantArgs& args) {
  const int64_t out = w.rows(), in = w.cols();
  const int64_t gpr = args.GroupsPerRow(in), gs = args.EffectiveGroupSize(in);
  const std::vector<QuantGroupParams> params = ComputeAllQuantGroupParams(w, args);
  MatrixRM r(out, in);
  for (int64_t i = 0; i < out; ++i) {
    for (int64_t c = 0; c < in; ++c) {
      const QuantGroupParams& p = params[i * gpr + c / gs];
      r(i, c) = DequantCode(QuantCode(w(i, c), p, args), p);
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
