// Gradient checks of the losses w.r.t. the student logits, and their values
// against direct formulas.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/unit/train/grad_check.h"
#include "workers/engine/train/losses.h"

namespace squeeze::train {
namespace {

using testing::CheckDirectional;
using testing::CheckEntries;
using testing::RandomVector;

MatrixRM Logits(int64_t n, int64_t v, uint64_t seed, float stddev) {
  std::vector<float> x = RandomVector(n * v, seed, stddev);
  return ConstMapMatrixRM(x.data(), n, v);
}

std::vector<double> Softmax(const MatrixRM& l, int64_t row, double t) {
  std::vector<double> p(l.cols());
  double mx = -1e300, s = 0;
  for (int64_t j = 0; j < l.cols(); ++j) mx = std::max(mx, l(row, j) / t);
  for (int64_t j = 0; j < l.cols(); ++j) s += (p[j] = std::exp(l(row, j) / t - mx));
  for (double& x : p) x /= s;
  return p;
}

TEST(Losses, CrossEntropyGradient) {
  ThreadPool pool(2);
  MatrixRM s = Logits(5, 7, 1, 2.0f);
  std::vector<int> targets = {0, 3, -1, 6, 2};
  MatrixRM g;
  const double loss = CrossEntropy(s, targets, 1.0, &g, pool);
  double expect = 0;
  for (int i : {0, 1, 3, 4}) expect -= std::log(Softmax(s, i, 1)[targets[i]]);
  EXPECT_NEAR(loss, expect / 4, 1e-6);
  for (int64_t j = 0; j < 7; ++j) EXPECT_EQ(g(2, j), 0.0f);  // ignored row
  auto f = [&] { return CrossEntropy(s, targets, 1.0, nullptr, pool); };
  CheckEntries("ce", s.data(), g.data(), s.size(), f, 35, 1e-2, 1e-2, 1e-4);
}

void CheckDistill(DistillLossOptions o, double expect_row0) {
  ThreadPool pool(2);
  MatrixRM s = Logits(4, 6, 2, 1.5f), t = Logits(4, 6, 3, 1.5f);
  std::vector<float> w = {1.0f, 0.5f, 0.0f, 2.0f};
  MatrixRM g;
  auto loss = DistillLoss(s, t, o, w, 1.0, &g, pool);
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_GT(*loss, 0.0);
  auto f = [&] { return *DistillLoss(s, t, o, w, 1.0, nullptr, pool); };
  const std::string what = std::string(LossKindName(o.kind)) + " T=" + std::to_string(o.temperature);
  CheckEntries(what, s.data(), g.data(), s.size(), f, 24, 1e-2, 1e-2, 1e-4);
  CheckDirectional(what, s.data(), g.data(), s.size(), f, 5, 1e-2, 1e-2, 1e-5);
  // Row 0 alone against the formula.
  MatrixRM s0 = s.topRows(1), t0 = t.topRows(1);
  auto l0 = DistillLoss(s0, t0, o, {}, 1.0, nullptr, pool);
  ASSERT_TRUE(l0.ok());
  EXPECT_NEAR(*l0, expect_row0, 1e-6 * std::max(1.0, expect_row0)) << what;
}

double Kl(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t j = 0; j < a.size(); ++j) s += a[j] * std::log(a[j] / b[j]);
  return s;
}

TEST(Losses, ForwardReverseAndGeneralizedJsd) {
  MatrixRM s = Logits(4, 6, 2, 1.5f), t = Logits(4, 6, 3, 1.5f);
  for (float temp : {1.0f, 2.0f}) {
    const auto q = Softmax(s, 0, temp), p = Softmax(t, 0, temp);
    const double t2 = double{temp} * temp;
    CheckDistill({LossKind::kForwardKl, temp, 0.5f}, t2 * Kl(p, q));
    CheckDistill({LossKind::kReverseKl, temp, 0.5f}, t2 * Kl(q, p));
    for (float beta : {0.1f, 0.5f, 0.9f}) {
      std::vector<double> m(p.size());
      for (size_t j = 0; j < m.size(); ++j) m[j] = beta * p[j] + (1 - beta) * q[j];
      CheckDistill({LossKind::kGeneralizedJsd, temp, beta}, t2 * (beta * Kl(p, m) + (1 - beta) * Kl(q, m)));
    }
    // GKD convention: beta 0 is forward KL, beta 1 is reverse KL.
    CheckDistill({LossKind::kGeneralizedJsd, temp, 0.0f}, t2 * Kl(p, q));
    CheckDistill({LossKind::kGeneralizedJsd, temp, 1.0f}, t2 * Kl(q, p));
  }
}

TEST(Losses, ZeroWhenStudentEqualsTeacher) {
  ThreadPool pool(1);
  MatrixRM s = Logits(3, 5, 9, 1.0f);
  for (LossKind k : {LossKind::kForwardKl, LossKind::kReverseKl, LossKind::kGeneralizedJsd}) {
    MatrixRM g;
    auto l = DistillLoss(s, s, {k, 1.0f, 0.5f}, {}, 1.0, &g, pool);
    ASSERT_TRUE(l.ok());
    EXPECT_NEAR(*l, 0.0, 1e-9);
    EXPECT_LT(g.cwiseAbs().maxCoeff(), 1e-7);
  }
}

TEST(Losses, BadInputsNameTheProblem) {
  ThreadPool pool(1);
  MatrixRM s = Logits(3, 5, 9, 1.0f), t = Logits(3, 4, 9, 1.0f);
  auto l = DistillLoss(s, t, {}, {}, 1.0, nullptr, pool);
  EXPECT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("teacher logits"), std::string::npos);
  auto l2 = DistillLoss(s, s, {LossKind::kGeneralizedJsd, 1.0f, 1.5f}, {}, 1.0, nullptr, pool);
  EXPECT_NE(l2.status().message().find("beta"), std::string::npos);
  EXPECT_FALSE(ParseLossKind("bogus").ok());
  EXPECT_EQ(*ParseLossKind("minillm"), LossKind::kReverseKl);
}

}  // namespace
}  // namespace squeeze::train
