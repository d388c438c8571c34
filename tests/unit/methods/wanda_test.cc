#include "workers/methods/prune/wanda.h"

#include <random>

#include <gtest/gtest.h>

#include "tests/unit/methods/method_test_util.h"

#include "workers/methods/prune/magnitude.h"

namespace squeeze {
namespace {

using test_util::RandomMatrix;

std::vector<double> RandomNorms(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> d(0.1, 3.0);
  std::vector<double> v(n);
  for (double& x : v) x = d(rng);
  return v;
}

TEST(WandaPrune, RowSparsityIsExactAndKeepsTheHighestScores) {
  const MatrixRM w = RandomMatrix(24, 40, 1);
  const std::vector<double> norms = RandomNorms(40, 2);
  WandaOptions o;
  o.sparsity = 0.3;
  PruneStats stats;
  auto r = WandaPrune(w, norms, o, &stats);
  ASSERT_TRUE(r.ok()) << r.status();
  const int64_t k = std::llround(0.3 * 40);
  EXPECT_EQ(stats.zeros, 24 * k);
  EXPECT_EQ(stats.total, 24 * 40);
  for (int i = 0; i < 24; ++i) {
    EXPECT_EQ((r->row(i).array() == 0.0f).count(), k) << i;
    double max_pruned = 0, min_kept = 1e300;
    for (int j = 0; j < 40; ++j) {
      const double s = std::fabs(w(i, j)) * norms[j];
      if ((*r)(i, j) == 0.0f) {
        max_pruned = std::max(max_pruned, s);
      } else {
        min_kept = std::min(min_kept, s);
        EXPECT_EQ((*r)(i, j), w(i, j));  // no weight update
      }
    }
    EXPECT_LE(max_pruned, min_kept) << i;
  }
}

TEST(WandaPrune, LayerComparisonIsExact) {
  const MatrixRM w = RandomMatrix(16, 32, 3);
  WandaOptions o;
  o.sparsity = 0.45;
  o.comparison = PruneComparison::kLayer;
  auto r = WandaPrune(w, RandomNorms(32, 4), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(CountZeros(*r), std::llround(0.45 * 16 * 32));
}

TEST(WandaPrune, NofMHasExactlyNZerosPerGroup) {
  const MatrixRM w = RandomMatrix(12, 32, 5);
  const std::vector<double> norms = RandomNorms(32, 6);
  for (const char* spec : {"2:4", "4:8", "1:4"}) {
    WandaOptions o;
    o.mask = *ParseMaskStructure(spec);
    auto r = WandaPrune(w, norms, o);
    ASSERT_TRUE(r.ok()) << r.status();
    for (int i = 0; i < 12; ++i) {
      for (int g = 0; g < 32; g += o.mask.m) {
        int zeros = 0;
        double max_pruned = 0, min_kept = 1e300;
        for (int j = g; j < g + o.mask.m; ++j) {
          const double s = std::fabs(w(i, j)) * norms[j];
          if ((*r)(i, j) == 0.0f) {
            ++zeros;
            max_pruned = std::max(max_pruned, s);
          } else {
            min_kept = std::min(min_kept, s);
          }
        }
        EXPECT_EQ(zeros, o.mask.n) << spec << " row " << i << " group " << g;
        EXPECT_LE(max_pruned, min_kept);
      }
    }
  }
}

TEST(WandaPrune, EqualsMagnitudeWhenAllInputNormsAreEqual) {
  const MatrixRM w = RandomMatrix(20, 48, 7);
  const std::vector<double> norms(48, 2.75);
  for (const char* spec : {"0:0", "2:4"}) {
    for (PruneComparison cmp : {PruneComparison::kRow, PruneComparison::kLayer}) {
      WandaOptions wo;
      wo.sparsity = 0.5;
      wo.mask = *ParseMaskStructure(spec);
      wo.comparison = cmp;
      MagnitudeOptions mo;
      mo.sparsity = 0.5;
      mo.mask = wo.mask;
      mo.comparison = cmp;
      auto a = WandaPrune(w, norms, wo);
      auto b = MagnitudePrune(w, mo);
      ASSERT_TRUE(a.ok() && b.ok());
      EXPECT_TRUE((a->array() == b->array()).all()) << spec;
    }
  }
}

TEST(WandaPrune, ABigInputNormKeepsItsChannel) {
  // Channel 3 carries inputs 100x larger: magnitude pruning zeroes about half
  // of its weights, Wanda keeps every one of them.
  const MatrixRM w = RandomMatrix(32, 16, 9);
  std::vector<double> norms(16, 1.0);
  norms[3] = 100.0;
  WandaOptions wo;
  MagnitudeOptions mo;
  mo.comparison = PruneComparison::kRow;
  auto a = WandaPrune(w, norms, wo);
  auto b = MagnitudePrune(w, mo);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((a->col(3).array() == 0.0f).count(), 0);
  EXPECT_GT((b->col(3).array() == 0.0f).count(), 0);
  EXPECT_FALSE((a->array() == b->array()).all());
  // Same number of zeros per row either way.
  for (int i = 0; i < 32; ++i) EXPECT_EQ((a->row(i).array() == 0.0f).count(), (b->row(i).array() == 0.0f).count());
}

TEST(WandaPrune, RejectsBadInput) {
  const MatrixRM w = RandomMatrix(4, 6, 1);
  WandaOptions o;
  EXPECT_FALSE(WandaPrune(w, std::vector<double>(5, 1.0), o).ok());
  std::vector<double> bad(6, 1.0);
  bad[2] = -1.0;
  EXPECT_FALSE(WandaPrune(w, bad, o).ok());
  o.sparsity = 1.0;
  EXPECT_FALSE(WandaPrune(w, std::vector<double>(6, 1.0), o).ok());
  WandaOptions nm;
  nm.mask = *ParseMaskStructure("2:4");
  auto s = WandaPrune(w, std::vector<double>(6, 1.0), nm);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("multiple of 4"), std::string::npos) << s.status();
}

}  // namespace
}  // namespace squeeze
