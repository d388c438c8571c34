// LossCurve: at most max_points points, each the mean loss of the steps it
// covers, the last point always the last step.
#include "workers/engine/train/loss_curve.h"

#include <gtest/gtest.h>

namespace squeeze::train {
namespace {

std::vector<StepLog> History(int n) {
  std::vector<StepLog> h;
  for (int i = 1; i <= n; ++i) {
    StepLog l;
    l.step = i;
    l.loss = 10.0 / i + (i % 3) * 0.25;  // not monotone, so a wrong span shows
    l.lr = 1e-3 * (1.0 - static_cast<double>(i) / (n + 1));
    h.push_back(l);
  }
  return h;
}

TEST(LossCurve, ShortRunKeepsEveryStep) {
  const auto h = History(37);
  const auto c = LossCurve(h, 200);
  ASSERT_EQ(c.size(), 37u);
  for (size_t i = 0; i < c.size(); ++i) {
    EXPECT_EQ(c[i].step, h[i].step);
    EXPECT_EQ(c[i].loss, h[i].loss);
    EXPECT_EQ(c[i].lr, h[i].lr);
    EXPECT_EQ(c[i].steps_covered, 1);
  }
}

TEST(LossCurve, LongRunIsAveragedIntoAtMostMaxPoints) {
  const auto h = History(1001);
  const auto c = LossCurve(h, 200);
  // every = ceil(1001 / 200) = 6: 166 full spans and a last one of 5 steps.
  ASSERT_EQ(c.size(), 167u);
  int64_t covered = 0;
  for (size_t k = 0; k < c.size(); ++k) {
    const int64_t first = covered;  // 0-based index of the span's first step
    covered += c[k].steps_covered;
    double sum = 0;
    for (int64_t i = first; i < covered; ++i) sum += h[i].loss;
    EXPECT_EQ(c[k].step, covered) << k;
    EXPECT_NEAR(c[k].loss, sum / c[k].steps_covered, 1e-12) << k;
    EXPECT_EQ(c[k].lr, h[covered - 1].lr) << k;
  }
  EXPECT_EQ(covered, 1001);
  EXPECT_EQ(c.front().steps_covered, 6);
  EXPECT_EQ(c.back().steps_covered, 5);
  EXPECT_EQ(c.back().step, 1001);
}

TEST(LossCurve, EdgeCases) {
  EXPECT_TRUE(LossCurve({}, 200).empty());
  const auto h = History(10);
  const auto one = LossCurve(h, 0);  // treated as 1: the mean of everything
  ASSERT_EQ(one.size(), 1u);
  double sum = 0;
  for (const StepLog& l : h) sum += l.loss;
  EXPECT_NEAR(one[0].loss, sum / 10, 1e-12);
  EXPECT_EQ(one[0].step, 10);
  EXPECT_EQ(LossCurve(h, 10).size(), 10u);
  EXPECT_EQ(LossCurve(h, 9).size(), 5u);  // every 2
}

}  // namespace
}  // namespace squeeze::train
