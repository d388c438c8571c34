// Pareto fronts (workers/engine/eval/pareto.h) on hand-made points whose front
// is known by construction (ties, unmeasured latency), and on random points
// against a plain reference: a sweep by cost that keeps a point when its
// quality beats every cheaper-or-equal point's.
#include "workers/engine/eval/pareto.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>

namespace squeeze {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

VariantPoint P(const std::string& name, double bytes, double flops, double latency, double score) {
  return VariantPoint{name, flops, bytes, latency, {{"t", score}}};
}

double Cost(const VariantPoint& v) { return v.bytes; }
double Quality(const VariantPoint& v) { return v.scores.at("t"); }

TEST(ParetoFront, DominatedPointsLeaveTheFrontOrderedByCost) {
  const std::vector<VariantPoint> v = {P("dense", 100, 0, 0, 80), P("q4", 25, 0, 0, 75), P("bad", 50, 0, 0, 60),
                                       P("q2", 12, 0, 0, 40)};
  const AxisFront f = ParetoFront(v, "bytes", Cost, Quality);
  EXPECT_EQ(f.axis, "bytes");
  EXPECT_THAT(f.optimal, ElementsAre("q2", "q4", "dense"));  // by cost
  EXPECT_THAT(f.dominated, ElementsAre("bad"));              // q4 is smaller and better
  EXPECT_THAT(f.unmeasured, IsEmpty());
}

TEST(ParetoFront, ExactTiesStayOnTheFrontButEqualCostWithLowerQualityIsDominated) {
  const std::vector<VariantPoint> v = {P("a", 10, 0, 0, 50), P("b", 10, 0, 0, 50),   // exact tie
                                       P("c", 10, 0, 0, 49),                         // same cost, worse
                                       P("d", 20, 0, 0, 50),                         // same quality, dearer
                                       P("e", 5, 0, 0, 30)};
  const AxisFront f = ParetoFront(v, "bytes", Cost, Quality);
  EXPECT_THAT(f.optimal, ElementsAre("e", "a", "b"));  // ties: by name
  EXPECT_THAT(f.dominated, ElementsAre("c", "d"));
}

TEST(ParetoFront, MissingLatencyIsUnmeasuredAndDominatesNobody) {
  // "nolat" would dominate everything if its 0 ms counted as a latency.
  const std::vector<VariantPoint> v = {P("dense", 100, 200, 0.05, 80), P("q4", 25, 200, 0.08, 78),
                                       P("nolat", 50, 100, 0, 90), P("nan", 50, 100, std::nan(""), 90)};
  const std::vector<AxisFront> fronts = ReportParetoFronts(v, {"t"});
  ASSERT_EQ(fronts.size(), 3u);
  const AxisFront& lat = fronts[2];
  EXPECT_EQ(lat.axis, "latency");
  EXPECT_THAT(lat.optimal, ElementsAre("dense"));  // q4 is slower and worse here
  EXPECT_THAT(lat.dominated, ElementsAre("q4"));
  EXPECT_THAT(lat.unmeasured, ElementsAre("nolat", "nan"));
  // On bytes and FLOPs every variant is measured.
  EXPECT_THAT(fronts[0].unmeasured, IsEmpty());
  EXPECT_THAT(fronts[0].optimal, ElementsAre("q4", "nan", "nolat"));  // nan / nolat: an exact tie, by name
  EXPECT_THAT(fronts[1].axis, "flops");
  EXPECT_THAT(fronts[1].optimal, UnorderedElementsAre("nolat", "nan"));  // equal FLOPs and quality: a tie
  EXPECT_THAT(fronts[1].dominated, ElementsAre("dense", "q4"));
}

TEST(ParetoFront, QualityIsTheMeanOverTheGivenTasks) {
  VariantPoint a{"a", 10, 10, 0, {{"x", 90}, {"y", 10}}};  // mean 50
  VariantPoint b{"b", 10, 10, 0, {{"x", 60}, {"y", 60}}};  // mean 60
  const std::vector<AxisFront> both = ReportParetoFronts({a, b}, {"x", "y"});
  EXPECT_THAT(both[0].optimal, ElementsAre("b"));
  const std::vector<AxisFront> only_x = ReportParetoFronts({a, b}, {"x"});
  EXPECT_THAT(only_x[0].optimal, ElementsAre("a"));
}

TEST(ParetoFront, EmptyAndSingleInputs) {
  EXPECT_THAT(ParetoFront({}, "bytes", Cost, Quality).optimal, IsEmpty());
  EXPECT_THAT(ParetoFront({P("one", 1, 1, 0, 1)}, "bytes", Cost, Quality).optimal, ElementsAre("one"));
}

// Plain reference: sort by (cost, -quality); a point is optimal when its
// quality is above the best quality of every strictly cheaper point and it
// is not beaten at its own cost.
std::vector<std::string> ReferenceFront(const std::vector<VariantPoint>& v) {
  std::vector<std::string> out;
  for (const VariantPoint& p : v) {
    bool beaten = false;
    for (const VariantPoint& q : v) {
      if (Cost(q) < Cost(p) && Quality(q) >= Quality(p)) beaten = true;
      if (Cost(q) == Cost(p) && Quality(q) > Quality(p)) beaten = true;
    }
    if (!beaten) out.push_back(p.name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ParetoFront, RandomPointsAgreeWithThePlainReference) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(1, 6);  // few distinct values: many ties
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<VariantPoint> v;
    const int n = 1 + trial % 12;
    for (int i = 0; i < n; ++i) v.push_back(P("v" + std::to_string(i), small(rng), 1, 0, small(rng)));
    AxisFront f = ParetoFront(v, "bytes", Cost, Quality);
    std::vector<std::string> got = f.optimal;
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got, ReferenceFront(v)) << "trial " << trial;
    ASSERT_EQ(f.optimal.size() + f.dominated.size(), v.size());
    // The front is monotone: cost ascending, quality never falling.
    std::map<std::string, const VariantPoint*> by_name;
    for (const VariantPoint& p : v) by_name[p.name] = &p;
    for (size_t i = 1; i < f.optimal.size(); ++i) {
      const VariantPoint& a = *by_name[f.optimal[i - 1]];
      const VariantPoint& b = *by_name[f.optimal[i]];
      ASSERT_LE(Cost(a), Cost(b));
      ASSERT_LE(Quality(a), Quality(b));
    }
  }
}

}  // namespace
}  // namespace squeeze
