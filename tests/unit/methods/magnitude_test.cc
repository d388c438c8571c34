#include "workers/methods/prune/magnitude.h"

#include <random>

#include <gtest/gtest.h>

#include "tests/unit/methods/method_test_util.h"

namespace squeeze {
namespace {

using test_util::RandomMatrix;

TEST(MaskStructure, Parses) {
  auto s = ParseMaskStructure("2:4");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->n, 2);
  EXPECT_EQ(s->m, 4);
  EXPECT_DOUBLE_EQ(s->sparsity(), 0.5);
  EXPECT_TRUE(ParseMaskStructure("0:0")->unstructured());
  for (const char* bad : {"4:2", "2:2", "a:b", "2", "-1:4", "2:4:8", "0:4"}) {
    EXPECT_FALSE(ParseMaskStructure(bad).ok()) << bad;
  }
}

TEST(MagnitudePrune, LayerSparsityIsExactAndKeepsTheLargest) {
  const MatrixRM w = RandomMatrix(48, 40, 1);
  MagnitudeOptions o;
  o.sparsity = 0.3;
  PruneStats stats;
  auto r = MagnitudePrune(w, o, &stats);
  ASSERT_TRUE(r.ok()) << r.status();
  const int64_t expected = std::llround(0.3 * 48 * 40);
  EXPECT_EQ(CountZeros(*r), expected);
  EXPECT_EQ(stats.zeros, expected);
  // Every kept weight is at least as large as every pruned one, and kept
  // weights are unchanged.
  float max_pruned = 0.0f, min_kept = 1e30f;
  for (int64_t i = 0; i < w.size(); ++i) {
    if (r->data()[i] == 0.0f) {
      max_pruned = std::max(max_pruned, std::fabs(w.data()[i]));
    } else {
      EXPECT_EQ(r->data()[i], w.data()[i]);
      min_kept = std::min(min_kept, std::fabs(w.data()[i]));
    }
  }
  EXPECT_LE(max_pruned, min_kept);
}

TEST(MagnitudePrune, RowComparisonPrunesEachRowEqually) {
  MatrixRM w = RandomMatrix(16, 30, 2);
  w.row(3) *= 100.0f;  // a per-layer ranking would spare this row entirely
  MagnitudeOptions o;
  o.sparsity = 0.5;
  o.comparison = PruneComparison::kRow;
  auto r = MagnitudePrune(w, o);
  ASSERT_TRUE(r.ok());
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ((r->row(i).array() == 0.0f).count(), 15) << "row " << i;
  }
  o.comparison = PruneComparison::kLayer;
  auto layer = MagnitudePrune(w, o);
  ASSERT_TRUE(layer.ok());
  EXPECT_EQ((layer->row(3).array() == 0.0f).count(), 0);
}

TEST(MagnitudePrune, NMHasExactlyNZerosPerGroup) {
  const MatrixRM w = RandomMatrix(12, 64, 3);
  for (auto [n, m] : {std::pair{2, 4}, std::pair{4, 8}, std::pair{1, 4}}) {
    MagnitudeOptions o;
    o.mask = MaskStructure{n, m};
    auto r = MagnitudePrune(w, o);
    ASSERT_TRUE(r.ok());
    for (int i = 0; i < 12; ++i) {
      for (int g = 0; g < 64; g += m) {
        int zeros = 0;
        float max_pruned = 0.0f, min_kept = 1e30f;
        for (int c = g; c < g + m; ++c) {
          if ((*r)(i, c) == 0.0f) {
            ++zeros;
            max_pruned = std::max(max_pruned, std::fabs(w(i, c)));
          } else {
            min_kept = std::min(min_kept, std::fabs(w(i, c)));
          }
        }
        EXPECT_EQ(zeros, n) << n << ":" << m << " row " << i << " group " << g;
        EXPECT_LE(max_pruned, min_kept);
      }
    }
  }
}

TEST(MagnitudePrune, TiesAreBrokenByPositionDeterministically) {
  MatrixRM w = MatrixRM::Constant(4, 8, 1.0f);
  MagnitudeOptions o;
  o.sparsity = 0.25;
  auto r = MagnitudePrune(w, o);
  ASSERT_TRUE(r.ok());
  for (int64_t i = 0; i < w.size(); ++i) EXPECT_EQ(r->data()[i] == 0.0f, i < 8) << i;
}

TEST(MagnitudePrune, RejectsBadInput) {
  const MatrixRM w = RandomMatrix(4, 10, 4);
  MagnitudeOptions o;
  o.mask = MaskStructure{2, 4};
  auto r = MagnitudePrune(w, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a multiple of 4"), absl::string_view::npos) << r.status();
  MagnitudeOptions s;
  s.sparsity = 1.0;
  EXPECT_FALSE(MagnitudePrune(w, s).ok());
  s.sparsity = -0.1;
  EXPECT_FALSE(MagnitudePrune(w, s).ok());
}

}  // namespace
}  // namespace squeeze
