// The forward pass on synthetic models: against a naive reference forward,
// prefill vs token-by-token decode, thread-count independence, pruned
// (per-layer width) models and shape validation.
#include "tests/common/synthetic_inputs.h"
#include "workers/engine/model/forward.h"

#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/kernels/cpu/transformer_ops.h"

namespace squeeze {
namespace {

using test_inputs::ForwardTestConfig;
using test_inputs::RandomTokens;
using test_inputs::RelDiff;

// y = x W^T + b with the layer's dense weight, plain loops.
MatrixRM NaiveLinear(const LinearLayer& l, const MatrixRM& x) {
  const MatrixRM w = l.DenseWeight();
  MatrixRM y(x.rows(), w.rows());
  kernels::GemmNTReference(x.data(), x.rows(), x.cols(), w.data(), w.rows(), y.data());
  auto b = l.bias();
  for (int64_t r = 0; r < y.rows(); ++r) {
    for (size_t j = 0; j < b.size(); ++j) y(r, j) += b[j];
  }
  return y;
}

// The whole model with reference ops only: logits [n, vocab] of a sequence
// starting at position 0.
MatrixRM NaiveForward(const Model& m, const std::vector<int>& tokens) {
  const ModelConfig& c = m.config;
  const int64_t n = tokens.size(), dim = c.dim, hd = c.head_dim;
  MatrixRM h(n, dim);
  for (int64_t i = 0; i < n; ++i) h.row(i) = m.embedding.row(tokens[i]);
  std::vector<int32_t> pos(n);
  std::iota(pos.begin(), pos.end(), 0);
  for (const TransformerBlock& b : m.blocks) {
    MatrixRM a(n, dim);
    kernels::RmsNormReference(h.data(), b.attn_norm.data(), n, dim, c.norm_eps, a.data());
    MatrixRM q = NaiveLinear(*b.q_proj, a), k = NaiveLinear(*b.k_proj, a), v = NaiveLinear(*b.v_proj, a);
    kernels::AttentionShape s{static_cast<int>(q.cols() / hd), static_cast<int>(k.cols() / hd),
                              static_cast<int>(hd), c.sliding_window};
    kernels::ApplyRopeReference(q.data(), n, s.n_heads, s.head_dim, pos.data(), c.rope_theta);
    kernels::ApplyRopeReference(k.data(), n, s.n_kv_heads, s.head_dim, pos.data(), c.rope_theta);
    MatrixRM att(n, q.cols());
    kernels::CausalAttentionReference(q.data(), n, pos.data(), k.data(), v.data(), n, s, att.data());
    h += NaiveLinear(*b.o_proj, att);
    kernels::RmsNormReference(h.data(), b.ffn_norm.data(), n, dim, c.norm_eps, a.data());
    MatrixRM g = NaiveLinear(*b.gate_proj, a), u = NaiveLinear(*b.up_proj, a);
    kernels::SwigluReference(g.data(), u.data(), g.size(), g.data());
    h += NaiveLinear(*b.down_proj, g);
  }
  MatrixRM hn(n, dim);
  kernels::RmsNormReference(h.data(), m.final_norm.data(), n, dim, c.norm_eps, hn.data());
  if (m.lm_head) return NaiveLinear(*m.lm_head, hn);
  MatrixRM logits(n, m.embedding.rows());
  kernels::GemmNTReference(hn.data(), n, dim, m.embedding.data(), m.embedding.rows(), logits.data());
  return logits;
}

float MaxAbsDiff(const MatrixRM& a, const MatrixRM& b) {
  EXPECT_EQ(a.rows(), b.rows());
  EXPECT_EQ(a.cols(), b.cols());
  return (a - b).cwiseAbs().maxCoeff();
}

TEST(ForwardTest, PrefillMatchesNaiveReference) {
  for (bool tied : {true, false}) {
    for (bool bias : {false, true}) {
      Model m = MakeRandomModel(ForwardTestConfig(tied, bias), 42);
      ASSERT_TRUE(ValidateModel(m).ok());
      const auto tokens = RandomTokens(40, m.config.vocab_size, 1);
      KVCache cache(m, 0);
      MatrixRM logits;
      ASSERT_TRUE(Forward(m, tokens, 0, cache, logits).ok());
      EXPECT_LT(MaxAbsDiff(logits, NaiveForward(m, tokens)), 1e-4) << "tied=" << tied << " bias=" << bias;
    }
  }
}

TEST(ForwardTest, DecodeTokenByTokenMatchesPrefill) {
  Model m = MakeRandomModel(ForwardTestConfig(false, true), 7);
  const auto tokens = RandomTokens(33, m.config.vocab_size, 2);
  KVCache prefill_cache(m, 0);
  MatrixRM all;
  ASSERT_TRUE(Forward(m, tokens, 0, prefill_cache, all).ok());
  KVCache cache(m, 0);
  MatrixRM step;
  for (size_t i = 0; i < tokens.size(); ++i) {
    ASSERT_TRUE(Forward(m, absl::MakeConstSpan(&tokens[i], 1), static_cast<int>(i), cache, step).ok());
    ASSERT_EQ(step.rows(), 1);
    EXPECT_LT((step.row(0) - all.row(i)).cwiseAbs().maxCoeff(), 1e-4) << "position " << i;
  }
  // Chunked prefill (10 then 23 tokens), last-logits mode.
  KVCache chunked(m, 0);
  MatrixRM last;
  ASSERT_TRUE(Forward(m, absl::MakeConstSpan(tokens.data(), 10), 0, chunked, last, false).ok());
  EXPECT_LT((last.row(0) - all.row(9)).cwiseAbs().maxCoeff(), 1e-4);
  ASSERT_TRUE(Forward(m, absl::MakeConstSpan(tokens.data() + 10, 23), 10, chunked, last, false).ok());
  EXPECT_LT((last.row(0) - all.row(32)).cwiseAbs().maxCoeff(), 1e-4);
}

TEST(ForwardTest, ThreadCountDoesNotChangeLogits) {
  ModelConfig c = ForwardTestConfig(true, false);
  c.dim = 256;
  c.hidden_dim = 700;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 32;
  c.vocab_size = 3000;
  c.n_layers = 2;
  Model m = MakeRandomModel(c, 3);
  const auto tokens = RandomTokens(45, c.vocab_size, 3);
  MatrixRM a, b, da, db;
  ThreadPool one(1), four(4);
  KVCache ca(m, 0), cb(m, 0);
  ASSERT_TRUE(Forward(m, tokens, 0, ca, a, true, one).ok());
  ASSERT_TRUE(Forward(m, tokens, 0, cb, b, true, four).ok());
  EXPECT_TRUE(a == b);
  const int next = 5;
  ASSERT_TRUE(Forward(m, absl::MakeConstSpan(&next, 1), 45, ca, da, true, one).ok());
  ASSERT_TRUE(Forward(m, absl::MakeConstSpan(&next, 1), 45, cb, db, true, four).ok());
  EXPECT_TRUE(da == db);
}

TEST(ForwardTest, SlidingWindowMatchesReference) {
  ModelConfig c = ForwardTestConfig(true, false);
  c.sliding_window = 6;
  Model m = MakeRandomModel(c, 9);
  const auto tokens = RandomTokens(30, c.vocab_size, 4);
  KVCache cache(m, 0);
  MatrixRM logits;
  ASSERT_TRUE(Forward(m, tokens, 0, cache, logits).ok());
  EXPECT_LT(MaxAbsDiff(logits, NaiveForward(m, tokens)), 1e-4);
}

// Replaces a block's widths as structured pruning would: keep `heads` query
// heads (and kv heads), and `ffn` hidden channels.
void PruneBlock(Model& m, int layer, int q_heads, int kv_heads, int ffn) {
  TransformerBlock& b = m.blocks[layer];
  const int hd = m.config.head_dim;
  auto top = [](const LinearLayer& l, int64_t rows) { return MatrixRM(l.DenseWeight().topRows(rows)); };
  auto left = [](const LinearLayer& l, int64_t cols) { return MatrixRM(l.DenseWeight().leftCols(cols)); };
  auto bias = [](const LinearLayer& l, int64_t n) {
    auto b = l.bias();
    return b.empty() ? std::vector<float>{} : std::vector<float>(b.begin(), b.begin() + n);
  };
  b.q_proj = DenseLinear::FromMatrix(top(*b.q_proj, q_heads * hd), bias(*b.q_proj, q_heads * hd));
  b.k_proj = DenseLinear::FromMatrix(top(*b.k_proj, kv_heads * hd), bias(*b.k_proj, kv_heads * hd));
  b.v_proj = DenseLinear::FromMatrix(top(*b.v_proj, kv_heads * hd), bias(*b.v_proj, kv_heads * hd));
  b.o_proj = DenseLinear::FromMatrix(left(*b.o_proj, q_heads * hd));
  b.gate_proj = DenseLinear::FromMatrix(top(*b.gate_proj, ffn));
  b.up_proj = DenseLinear::FromMatrix(top(*b.up_proj, ffn));
  b.down_proj = DenseLinear::FromMatrix(left(*b.down_proj, ffn));
}

TEST(ForwardTest, StructurallyPrunedModelRuns) {
  Model m = MakeRandomModel(ForwardTestConfig(false, false), 11);
  PruneBlock(m, 1, 2, 1, 37);
  ASSERT_TRUE(ValidateModel(m).ok()) << ValidateModel(m);
  const auto tokens = RandomTokens(20, m.config.vocab_size, 5);
  KVCache cache(m, 0);
  EXPECT_EQ(cache.kv_width(1), 8);
  MatrixRM logits;
  ASSERT_TRUE(Forward(m, tokens, 0, cache, logits).ok());
  EXPECT_LT(MaxAbsDiff(logits, NaiveForward(m, tokens)), 1e-4);
}

TEST(ForwardTest, RunBlockWithoutCacheMatchesCachedRun) {
  Model m = MakeRandomModel(ForwardTestConfig(true, true), 12);
  const auto tokens = RandomTokens(25, m.config.vocab_size, 6);
  MatrixRM h1, h2;
  ASSERT_TRUE(Embed(m, tokens, h1).ok());
  h2 = h1;
  KVCache cache(m, 0);
  ThreadPool pool(2);
  ASSERT_TRUE(RunBlock(m, 0, h1, 0, &cache, nullptr, pool).ok());
  ASSERT_TRUE(RunBlock(m, 0, h2, 0, nullptr, nullptr, pool).ok());
  EXPECT_TRUE(h1 == h2);
}

TEST(ForwardTest, RejectsBadInput) {
  Model m = MakeRandomModel(ForwardTestConfig(true, false), 13);
  KVCache cache(m, 16);
  MatrixRM logits;
  const std::vector<int> bad = {1, 97};
  auto s = Forward(m, bad, 0, cache, logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("97"), std::string::npos) << s;
  const auto long_seq = RandomTokens(17, 97, 7);
  EXPECT_EQ(Forward(m, long_seq, 0, cache, logits).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Forward(m, {}, 0, cache, logits).code(), absl::StatusCode::kInvalidArgument);
  // A down_proj of the wrong width is named.
  m.blocks[2].down_proj = DenseLinear::FromMatrix(MatrixRM::Zero(48, 99));
  s = ValidateModel(m);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("model.layers.2.mlp.down_proj"), std::string::npos) << s;
  EXPECT_FALSE(Forward(m, long_seq, 0, cache, logits).ok());
}

}  // namespace
}  // namespace squeeze
