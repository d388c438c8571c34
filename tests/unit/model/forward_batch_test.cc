// ForwardBatch against its plain reference, B separate single-sequence
// Forward calls, on synthetic dense models: B = 1, 3, 8 with unequal prompt
// lengths, then batched decode steps from unequal positions; all-logits and
// last-logits modes; thread-count independence; bad batches refused without
// touching any cache.
#include "tests/common/synthetic_inputs.h"
#include "workers/engine/model/forward_batch.h"

#include <algorithm>
#include <random>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

using test_inputs::ForwardTestConfig;
using test_inputs::RandomTokens;
using test_inputs::RelDiff;

using ::testing::HasSubstr;

// Tolerance of the comparison: max |batched - reference| <= kRelTol * max(1, max |reference|).
constexpr float kRelTol = 1e-5f;

// Prefills B sequences of unequal lengths batched and one by one, then runs
// `steps` batched decode steps (each sequence fed its own greedy token) and
// the same steps one Forward at a time; every logit row must agree.
void CheckBatchAgainstReference(const Model& m, int batch, bool all_logits, ThreadPool& pool) {
  const int vocab = m.config.vocab_size;
  std::vector<std::vector<int>> prompts;
  for (int b = 0; b < batch; ++b) prompts.push_back(RandomTokens(3 + (b * 7) % 19, vocab, 100 + b));
  std::vector<KVCache> ref_caches, caches;
  for (int b = 0; b < batch; ++b) {
    ref_caches.emplace_back(m, 0);
    caches.emplace_back(m, 0);
  }
  // Prefill. One scratch serves every call (it grows and is reused).
  ForwardBatchScratch scratch;
  std::vector<BatchSequence> seqs(batch);
  for (int b = 0; b < batch; ++b) seqs[b] = {prompts[b], 0, &caches[b]};
  MatrixRM got;
  ASSERT_TRUE(ForwardBatch(m, seqs, got, all_logits, pool, &scratch).ok());
  const std::vector<int64_t> off = BatchRowOffsets(seqs);
  ASSERT_EQ(got.rows(), all_logits ? off.back() : batch);
  std::vector<int> next(batch), pos(batch);
  for (int b = 0; b < batch; ++b) {
    MatrixRM want;
    ASSERT_TRUE(Forward(m, prompts[b], 0, ref_caches[b], want, all_logits, pool).ok());
    const MatrixRM rows = all_logits ? MatrixRM(got.middleRows(off[b], want.rows())) : MatrixRM(got.row(b));
    EXPECT_LE(RelDiff(rows, want), kRelTol) << "B=" << batch << " prefill of sequence " << b;
    Eigen::Index arg;
    want.bottomRows(1).row(0).maxCoeff(&arg);
    next[b] = static_cast<int>(arg);
    pos[b] = static_cast<int>(prompts[b].size());
  }
  // Decode: one batched step of B tokens at B different positions.
  for (int step = 0; step < 4; ++step) {
    for (int b = 0; b < batch; ++b) seqs[b] = {absl::MakeConstSpan(&next[b], 1), pos[b], &caches[b]};
    ASSERT_TRUE(ForwardBatch(m, seqs, got, all_logits, pool, &scratch).ok());
    ASSERT_EQ(got.rows(), batch);
    for (int b = 0; b < batch; ++b) {
      MatrixRM want;
      ASSERT_TRUE(Forward(m, absl::MakeConstSpan(&next[b], 1), pos[b], ref_caches[b], want, all_logits, pool).ok());
      EXPECT_LE(RelDiff(MatrixRM(got.row(b)), want), kRelTol) << "B=" << batch << " step " << step << " seq " << b;
      Eigen::Index arg;
      want.row(0).maxCoeff(&arg);
      next[b] = static_cast<int>(arg);
      ++pos[b];
    }
  }
  // The caches hold the same keys / values.
  for (int b = 0; b < batch; ++b) {
    for (int l = 0; l < caches[b].n_layers(); ++l) {
      const int64_t count = int64_t{pos[b]} * caches[b].kv_width(l);
      for (int64_t i = 0; i < count; ++i) {
        ASSERT_NEAR(caches[b].k(l)[i], ref_caches[b].k(l)[i], 1e-4f) << "seq " << b << " layer " << l;
        ASSERT_NEAR(caches[b].v(l)[i], ref_caches[b].v(l)[i], 1e-4f) << "seq " << b << " layer " << l;
      }
    }
  }
}

TEST(ForwardBatchTest, MatchesSeparateForwardsForB1B3B8) {
  for (bool tied : {true, false}) {
    for (bool bias : {false, true}) {
      const Model m = MakeRandomModel(ForwardTestConfig(tied, bias), 11);
      for (int batch : {1, 3, 8}) {
        for (bool all_logits : {false, true}) {
          SCOPED_TRACE(testing::Message() << "tied=" << tied << " bias=" << bias << " B=" << batch
                                          << " all_logits=" << all_logits);
          CheckBatchAgainstReference(m, batch, all_logits, ThreadPool::Default());
        }
      }
    }
  }
}

TEST(ForwardBatchTest, SlidingWindowAndPrunedWidthsMatch) {
  ModelConfig c = ForwardTestConfig(false, false);
  c.sliding_window = 5;
  Model m = MakeRandomModel(c, 5);
  // Block 1 pruned as structured pruning would: 2 query heads, 1 kv head, 37 channels.
  TransformerBlock& b = m.blocks[1];
  const int hd = c.head_dim;
  auto top = [](const LinearLayer& l, int64_t rows) { return MatrixRM(l.DenseWeight().topRows(rows)); };
  auto left = [](const LinearLayer& l, int64_t cols) { return MatrixRM(l.DenseWeight().leftCols(cols)); };
  b.q_proj = DenseLinear::FromMatrix(top(*b.q_proj, 2 * hd));
  b.k_proj = DenseLinear::FromMatrix(top(*b.k_proj, hd));
  b.v_proj = DenseLinear::FromMatrix(top(*b.v_proj, hd));
  b.o_proj = DenseLinear::FromMatrix(left(*b.o_proj, 2 * hd));
  b.gate_proj = DenseLinear::FromMatrix(top(*b.gate_proj, 37));
  b.up_proj = DenseLinear::FromMatrix(top(*b.up_proj, 37));
  b.down_proj = DenseLinear::FromMatrix(left(*b.down_proj, 37));
  ASSERT_TRUE(ValidateModel(m).ok()) << ValidateModel(m);
  for (int batch : {3, 8}) CheckBatchAgainstReference(m, batch, false, ThreadPool::Default());
}

TEST(ForwardBatchTest, PoolSizeDoesNotChangeLogits) {
  ModelConfig c = ForwardTestConfig(true, false);
  c.dim = 128;
  c.hidden_dim = 300;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 16;
  c.vocab_size = 500;
  const Model m = MakeRandomModel(c, 9);
  std::vector<std::vector<int>> prompts = {RandomTokens(20, c.vocab_size, 1), RandomTokens(7, c.vocab_size, 2),
                                           RandomTokens(33, c.vocab_size, 3)};
  MatrixRM first;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    std::vector<KVCache> caches;
    for (size_t b = 0; b < prompts.size(); ++b) caches.emplace_back(m, 0);
    std::vector<BatchSequence> seqs;
    for (size_t b = 0; b < prompts.size(); ++b) seqs.push_back({prompts[b], 0, &caches[b]});
    MatrixRM logits;
    ASSERT_TRUE(ForwardBatch(m, seqs, logits, true, pool).ok());
    if (threads == 1) {
      first = logits;
    } else {
      EXPECT_EQ(logits, first) << threads << " threads";
    }
  }
}

TEST(ForwardBatchTest, RejectsBadBatchesWithoutTouchingCaches) {
  const Model m = MakeRandomModel(ForwardTestConfig(true, false), 3);
  const std::vector<int> good = RandomTokens(5, m.config.vocab_size, 1);
  const std::vector<int> bad = {1, 2, 97};
  KVCache c0(m, 16), c1(m, 16), c2(m, 16);
  std::fill(c0.k(0), c0.k(0) + 16 * c0.kv_width(0), 7.0f);
  MatrixRM logits;

  EXPECT_THAT(ForwardBatch(m, {}, logits).message(), HasSubstr("empty batch"));
  std::vector<BatchSequence> s = {{good, 0, &c0}, {{}, 0, &c1}};
  EXPECT_THAT(ForwardBatch(m, s, logits).message(), HasSubstr("sequence 1: no tokens"));
  s = {{good, 0, &c0}, {good, 0, nullptr}};
  EXPECT_THAT(ForwardBatch(m, s, logits).message(), HasSubstr("sequence 1: no KV cache"));
  s = {{good, 0, &c0}, {good, 0, &c1}, {good, 5, &c0}};
  EXPECT_THAT(ForwardBatch(m, s, logits).message(), HasSubstr("sequence 2: shares its KV cache with sequence 0"));
  s = {{good, 0, &c0}, {bad, 0, &c1}};
  EXPECT_THAT(ForwardBatch(m, s, logits).message(), HasSubstr("sequence 1: token id 97 at index 2"));
  s = {{good, 0, &c0}, {good, 12, &c1}};
  auto st = ForwardBatch(m, s, logits);
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(st.message(), HasSubstr("sequence 1: positions [12, 17) exceed the context length 16"));
  ModelConfig other = ForwardTestConfig(true, false);
  other.n_layers = 2;
  const Model m2 = MakeRandomModel(other, 3);
  KVCache wrong(m2, 16);
  s = {{good, 0, &c0}, {good, 0, &wrong}};
  EXPECT_THAT(ForwardBatch(m, s, logits).message(), HasSubstr("sequence 1: KV cache has 2 layers"));
  // Sequence 0 was valid in every call above, yet its cache is untouched.
  for (int64_t i = 0; i < 16 * c0.kv_width(0); ++i) ASSERT_EQ(c0.k(0)[i], 7.0f);
}

}  // namespace
}  // namespace squeeze
