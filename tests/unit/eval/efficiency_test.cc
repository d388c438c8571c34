// ELUE-style score, Pareto fronts and the HULK-style break-even on hand-made
// points whose answers are known by construction.
#include "workers/engine/eval/efficiency.h"

#include <gtest/gtest.h>

namespace squeeze {
namespace {

TEST(EfficiencyTest, InterpolateCurveIsPiecewiseLinearAndFlatOutside) {
  const std::vector<std::pair<double, double>> pts = {{20, 70}, {10, 50}, {40, 90}};
  EXPECT_DOUBLE_EQ(*InterpolateCurve(pts, 15), 60);
  EXPECT_DOUBLE_EQ(*InterpolateCurve(pts, 30), 80);
  EXPECT_DOUBLE_EQ(*InterpolateCurve(pts, 20), 70);
  EXPECT_DOUBLE_EQ(*InterpolateCurve(pts, 5), 50);     // cheaper than every reference
  EXPECT_DOUBLE_EQ(*InterpolateCurve(pts, 100), 90);   // dearer than every reference
  // Equal FLOPs are averaged.
  EXPECT_DOUBLE_EQ(*InterpolateCurve({{10, 40}, {10, 60}, {20, 70}}, 10), 50);
  EXPECT_DOUBLE_EQ(*InterpolateCurve({{10, 40}, {10, 60}, {20, 70}}, 15), 60);
  EXPECT_FALSE(InterpolateCurve({}, 1).ok());
}

TEST(EfficiencyTest, ElueScoreByHand) {
  VariantPoint dense{"dense", 20, 1000, 0, {{"a", 70}, {"b", 50}}};
  VariantPoint small{"small", 10, 500, 0, {{"a", 50}, {"b", 30}}};
  VariantPoint model{"model", 15, 600, 0, {{"a", 65}, {"b", 40}, {"c", 10}}};
  auto e = ElueScore(model, {dense, small});
  ASSERT_TRUE(e.ok()) << e.status();
  // Baseline at 15 FLOPs: a = 60, b = 40 -> d = (+5, 0), mean 2.5; c has no reference.
  EXPECT_DOUBLE_EQ(e->baseline.at("a"), 60);
  EXPECT_DOUBLE_EQ(e->baseline.at("b"), 40);
  EXPECT_DOUBLE_EQ(e->per_task.at("a"), 5);
  EXPECT_DOUBLE_EQ(e->per_task.at("b"), 0);
  EXPECT_DOUBLE_EQ(e->score, 2.5);
  ASSERT_EQ(e->missing.size(), 1u);
  EXPECT_EQ(e->missing[0], "c");
  // A single reference: the curve is flat, the score is the plain difference.
  auto one = ElueScore(small, {dense});
  ASSERT_TRUE(one.ok());
  EXPECT_DOUBLE_EQ(one->score, ((50 - 70) + (30 - 50)) / 2.0);
  // No shared task.
  VariantPoint other{"other", 1, 1, 0, {{"z", 1}}};
  EXPECT_FALSE(ElueScore(other, {dense}).ok());
}

TEST(EfficiencyTest, ParetoFrontByConstruction) {
  // (cost, quality): A(1,50) B(2,60) C(3,55) D(2,50) E(2,60)
  std::vector<VariantPoint> v = {{"A", 0, 1, 0, {{"t", 50}}}, {"B", 0, 2, 0, {{"t", 60}}}, {"C", 0, 3, 0, {{"t", 55}}},
                                 {"D", 0, 2, 0, {{"t", 50}}}, {"E", 0, 2, 0, {{"t", 60}}}};
  const auto tasks = CommonTasks(v);
  ASSERT_EQ(tasks, std::vector<std::string>{"t"});
  const auto opt = ParetoOptimal(v, [](const VariantPoint& p) { return p.bytes; },
                                 [&](const VariantPoint& p) { return MeanScore(p, tasks); });
  EXPECT_EQ(opt, (std::vector<bool>{true, true, false, false, true}));  // B and E tie: neither dominates
}

TEST(EfficiencyTest, CommonTasksAndMeanScore) {
  std::vector<VariantPoint> v = {{"x", 0, 0, 0, {{"a", 10}, {"b", 20}, {"c", 1}}}, {"y", 0, 0, 0, {{"a", 30}, {"b", 40}}}};
  EXPECT_EQ(CommonTasks(v), (std::vector<std::string>{"a", "b"}));
  EXPECT_DOUBLE_EQ(MeanScore(v[0], CommonTasks(v)), 15);
  EXPECT_DOUBLE_EQ(MeanScore(v[1], CommonTasks(v)), 35);
}

TEST(EfficiencyTest, HulkBreakEven) {
  const HulkResult h = HulkCost(10, 30, 2.0, 1.5);
  EXPECT_DOUBLE_EQ(h.saved_ms_per_token, 0.5);
  EXPECT_DOUBLE_EQ(h.break_even_tokens, 20000);  // 10 s / 0.5 ms
  EXPECT_DOUBLE_EQ(h.compression_cpu_s, 30);
  EXPECT_EQ(HulkCost(10, 30, 1.5, 2.0).break_even_tokens, -1);  // slower: never paid back
  EXPECT_EQ(HulkCost(10, 30, 0, 0).break_even_tokens, -1);      // not measured
}

}  // namespace
}  // namespace squeeze
