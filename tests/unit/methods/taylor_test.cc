// First-order Taylor importance (methods/prune/taylor.h) against central
// finite differences of the loss computed with the inference forward pass:
// I(S) = |d/dt L(W + t W_S)| at t = 0, for every head group and MLP channel
// of a small synthetic GQA model (with q/k/v biases, untied head).
#include "workers/methods/prune/taylor.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include <gtest/gtest.h>

#include "tests/common/synthetic_inputs.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

// Mean next-token cross-entropy over every predicted token (as taylor.h),
// from the inference forward, in double.
double Loss(const Model& model, const std::vector<std::vector<int>>& seqs) {
  double total = 0.0;
  int64_t count = 0;
  for (const std::vector<int>& s : seqs) {
    KVCache cache(model, static_cast<int>(s.size()));
    MatrixRM logits;
    EXPECT_TRUE(Forward(model, s, 0, cache, logits).ok());
    for (size_t t = 0; t + 1 < s.size(); ++t) {
      const Eigen::VectorXd row = logits.row(static_cast<int64_t>(t)).transpose().cast<double>();
      const double mx = row.maxCoeff();
      const double lse = mx + std::log((row.array() - mx).exp().sum());
      total += lse - row(s[t + 1]);
      ++count;
    }
  }
  return total / static_cast<double>(count);
}

// Scales the rows [r0, r1) (and bias entries) or columns [c0, c1) of a block
// linear by (1 + t): W + t W_S on that part.
void ScaleRows(std::unique_ptr<LinearLayer>& l, int64_t r0, int64_t r1, float f) {
  MatrixRM w = l->DenseWeight();
  std::vector<float> b(l->bias().begin(), l->bias().end());
  for (int64_t r = r0; r < r1; ++r) {
    w.row(r) *= f;
    if (!b.empty()) b[r] *= f;
  }
  l = DenseLinear::FromMatrix(std::move(w), std::move(b));
}
void ScaleCols(std::unique_ptr<LinearLayer>& l, int64_t c0, int64_t c1, float f) {
  MatrixRM w = l->DenseWeight();
  std::vector<float> b(l->bias().begin(), l->bias().end());
  for (int64_t c = c0; c < c1; ++c) w.col(c) *= f;
  l = DenseLinear::FromMatrix(std::move(w), std::move(b));
}

// Central difference of L(W + t W_S) at 0 with step h; `apply(f)` scales S by f.
double DirectionalDerivative(Model& model, const std::vector<std::vector<int>>& seqs,
                             const std::function<void(float)>& apply, double h) {
  apply(static_cast<float>(1.0 + h));
  const double up = Loss(model, seqs);
  apply(static_cast<float>((1.0 - h) / (1.0 + h)));  // from 1 + h to 1 - h
  const double down = Loss(model, seqs);
  return (up - down) / (2.0 * h);
}

TEST(TaylorImportance, MatchesFiniteDifferencesOfTheLoss) {
  ModelConfig c = test_inputs::SmallGqaConfig(/*hidden_dim=*/24, /*n_layers=*/2, /*vocab_size=*/50,
                                              /*max_seq_len=*/32, /*tied=*/false);
  c.attention_bias = true;
  const Model original = MakeRandomModel(c, 5);
  const std::vector<std::vector<int>> seqs = {{1, 7, 9, 30, 4, 4, 12, 40, 2}, {1, 3, 3, 17, 25, 49, 8}, {5}};

  ThreadPool pool(2);
  auto scores = TaylorImportance(original, seqs, pool);
  ASSERT_TRUE(scores.ok()) << scores.status();
  ASSERT_EQ(scores->head_groups.size(), 2u);
  ASSERT_EQ(scores->head_groups[0].size(), 2u);  // 2 kv heads
  ASSERT_EQ(scores->channels[0].size(), 24u);
  // The same bits for another pool size.
  ThreadPool one(1);
  auto again = TaylorImportance(original, seqs, one);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->head_groups, scores->head_groups);
  EXPECT_EQ(again->channels, scores->channels);

  const int64_t hd = c.head_dim, n_rep = c.n_heads / c.n_kv_heads;
  const double h = 1e-2;
  int checked = 0;
  double max_score = 0.0;
  for (int l = 0; l < 2; ++l) {
    for (int64_t g = 0; g < c.n_kv_heads; ++g) {
      Model m = MakeRandomModel(c, 5);  // a fresh copy for each structure (no drift)
      TransformerBlock& b = m.blocks[l];
      auto apply = [&](float f) {
        ScaleRows(b.q_proj, g * n_rep * hd, (g + 1) * n_rep * hd, f);
        ScaleRows(b.k_proj, g * hd, (g + 1) * hd, f);
        ScaleRows(b.v_proj, g * hd, (g + 1) * hd, f);
        ScaleCols(b.o_proj, g * n_rep * hd, (g + 1) * n_rep * hd, f);
      };
      const double fd = std::abs(DirectionalDerivative(m, seqs, apply, h));
      const double got = scores->head_groups[l][g];
      EXPECT_NEAR(got, fd, 2e-2 * fd + 2e-4) << "layer " << l << " head group " << g;
      max_score = std::max(max_score, got);
      ++checked;
    }
    for (int64_t ch : {0, 5, 23}) {
      Model m = MakeRandomModel(c, 5);
      TransformerBlock& b = m.blocks[l];
      auto apply = [&](float f) {
        ScaleRows(b.gate_proj, ch, ch + 1, f);
        ScaleRows(b.up_proj, ch, ch + 1, f);
        ScaleCols(b.down_proj, ch, ch + 1, f);
      };
      const double fd = std::abs(DirectionalDerivative(m, seqs, apply, h));
      const double got = scores->channels[l][ch];
      EXPECT_NEAR(got, fd, 2e-2 * fd + 2e-4) << "layer " << l << " channel " << ch;
      max_score = std::max(max_score, got);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 10);
  EXPECT_GT(max_score, 1e-3);  // the check is not vacuous: the scores are not all ~0

  // No sequence of 2+ tokens: refused.
  auto none = TaylorImportance(original, {{1}}, pool);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace squeeze
