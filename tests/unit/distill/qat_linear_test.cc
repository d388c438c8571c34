// QatLinear: forward = the packed layer of the same codes; dx exact (finite
// differences); dW = the straight-through estimator of dL/dWq.
#include <gtest/gtest.h>

#include "tests/unit/train/grad_check.h"
#include "workers/methods/distill/qat_linear.h"
#include "workers/methods/quant/quant_grid.h"

namespace squeeze {
namespace {

using train::testing::CheckEntries;
using train::testing::Dot;
using train::testing::RandomVector;

WeightQuantArgs Int4Group8() {
  WeightQuantArgs a;
  a.num_bits = 4;
  a.symmetric = false;
  a.strategy = QuantStrategy::kGroup;
  a.group_size = 8;
  return a;
}

TEST(QatLinear, ForwardMatchesPackedAndGradientsAreStraightThrough) {
  const int64_t out = 6, in = 16, n = 3;
  std::vector<float> wv = RandomVector(out * in, 1, 0.5f);
  MatrixRM w = ConstMapMatrixRM(wv.data(), out, in);
  auto qat = MakeQat(w, RandomVector(out, 2), Int4Group8());
  ASSERT_TRUE(qat.ok()) << qat.status();
  train::TrainableLinear& l = **qat;
  ThreadPool pool(2);
  std::vector<float> x = RandomVector(n * in, 3), r = RandomVector(n * out, 4), y(n * out), y2(n * out);
  l.Forward(x.data(), n, y.data(), pool);
  std::unique_ptr<LinearLayer> packed = l.ToInference();
  EXPECT_EQ(packed->kind().rfind("packed_int_", 0), 0u) << packed->kind();
  packed->Forward(x.data(), n, y2.data(), pool);
  for (int64_t i = 0; i < n * out; ++i) EXPECT_NEAR(y[i], y2[i], 1e-5);
  // dx against finite differences.
  auto f = [&] {
    l.Forward(x.data(), n, y.data(), pool);
    return Dot(r.data(), y.data(), y.size());
  };
  std::vector<float> dx(n * in);
  l.Backward(x.data(), r.data(), n, dx.data(), pool);
  CheckEntries("qat dx", x.data(), dx.data(), dx.size(), f);
  // dW: dL/dWq = r^T x (a dense layer's weight gradient), passed straight
  // through everywhere inside the grid (the grid covers min..max of W, so no
  // entry of the initial weights is clamped).
  train::Param* wp = l.Params()[0].second;
  MatrixRM expect = ConstMapMatrixRM(r.data(), n, out).transpose() * ConstMapMatrixRM(x.data(), n, in);
  for (int64_t i = 0; i < out * in; ++i) EXPECT_NEAR(wp->grad[i], expect.data()[i], 1e-5) << i;
  // Bias gradient exact.
  train::Param* bp = l.Params()[1].second;
  CheckEntries("qat bias", bp->value.data(), bp->grad.data(), out, f);
  // A weight pushed far outside the grid is clamped: no gradient there.
  for (auto& [name, p] : l.Params()) p->ZeroGrad();
  wp->value[5] = 100.0f;
  l.Backward(x.data(), r.data(), n, dx.data(), pool);
  EXPECT_EQ(wp->grad[5], 0.0f);
  EXPECT_NE(wp->grad[6], 0.0f);
}

TEST(QatLinear, FromPackedKeepsTheGrid) {
  const int64_t out = 4, in = 16;
  std::vector<float> wv = RandomVector(out * in, 5, 0.5f);
  MatrixRM w = ConstMapMatrixRM(wv.data(), out, in);
  const WeightQuantArgs a = Int4Group8();
  auto params = ComputeAllQuantGroupParams(w, a);
  std::vector<int32_t> q(out * in);
  for (int64_t r = 0; r < out; ++r)
    for (int64_t c = 0; c < in; ++c) q[r * in + c] = QuantCode(w(r, c), params[r * 2 + c / 8], a);
  std::vector<float> scales;
  std::vector<int32_t> zeros;
  SplitQuantGroupParams(params, a, &scales, &zeros);
  auto packed = PackedIntLinear::FromCodes(a, out, in, q, scales, zeros);
  ASSERT_TRUE(packed.ok());
  auto qat = MakeQatFromPacked(**packed);
  ASSERT_TRUE(qat.ok());
  std::unique_ptr<LinearLayer> back = (*qat)->ToInference();
  auto* p = dynamic_cast<PackedIntLinear*>(back.get());
  ASSERT_NE(p, nullptr);
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t g = 0; g < 2; ++g) {
      EXPECT_EQ(p->Scale(r, g), (*packed)->Scale(r, g));
      EXPECT_EQ(p->ZeroPoint(r, g), (*packed)->ZeroPoint(r, g));
    }
    for (int64_t c = 0; c < in; ++c) EXPECT_EQ(p->Code(r, c), (*packed)->Code(r, c));
  }
}

}  // namespace
}  // namespace squeeze
