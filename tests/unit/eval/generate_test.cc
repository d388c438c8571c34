// Generation on synthetic models: greedy = argmax of a full forward at every
// step, seeded sampling is reproducible, top-p and temperature behave.
#include "workers/engine/eval/generate.h"

#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "tests/unit/eval/byte_tokenizer.h"
#include "tests/unit/eval/eval_test_models.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

ModelConfig Config(bool tied) { return testing::ByteGenerateConfig(tied); }

TEST(SampleTokenTest, GreedyTemperatureAndTopP) {
  std::mt19937_64 rng(1);
  const std::vector<float> logits = {0.0f, 2.0f, 1.0f, 2.0f, -1.0f};
  EXPECT_EQ(SampleToken(logits.data(), 5, 0.0f, 1.0f, rng), 1);  // lowest id among ties
  // Frequencies follow softmax(logits / T).
  const float T = 0.7f;
  std::vector<double> p(5);
  double sum = 0;
  for (int i = 0; i < 5; ++i) sum += (p[i] = std::exp(logits[i] / T));
  std::vector<int> counts(5, 0);
  const int draws = 40000;
  for (int i = 0; i < draws; ++i) counts[SampleToken(logits.data(), 5, T, 1.0f, rng)]++;
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(counts[i] / double(draws), p[i] / sum, 0.01) << i;
  // top_p = 0.5 keeps only the two most likely (ids 1 and 3, 0.37 each at T=1).
  std::map<int, int> seen;
  for (int i = 0; i < 2000; ++i) seen[SampleToken(logits.data(), 5, 1.0f, 0.5f, rng)]++;
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen.count(1) && seen.count(3));
  // Same seed, same draws.
  std::mt19937_64 a(7), b(7);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(SampleToken(logits.data(), 5, 1.3f, 0.9f, a), SampleToken(logits.data(), 5, 1.3f, 0.9f, b));
  }
}

TEST(GenerateTest, GreedyIsArgmaxOfFullForward) {
  Model m = MakeRandomModel(Config(true), 5);
  testing::ByteTokenizer tok;
  GenerateOptions opt;
  opt.max_tokens = 12;
  opt.stop_at_eos = false;
  std::string streamed;
  auto r = Generate(m, tok, tok.Encode("hi", true), opt, [&](int, const std::string& p) { streamed += p; });
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->ids.size(), 12u);
  EXPECT_EQ(r->stop_reason, "max_tokens");
  EXPECT_EQ(streamed, r->text);
  std::vector<int> seq = tok.Encode("hi", true);
  for (int id : r->ids) {
    KVCache cache(m, 0);
    MatrixRM logits;
    ASSERT_TRUE(Forward(m, seq, 0, cache, logits, false).ok());
    int best = 0;
    logits.row(0).maxCoeff(&best);
    EXPECT_EQ(id, best);
    seq.push_back(id);
  }
}

TEST(GenerateTest, SamplingIsSeededAndContextBounded) {
  Model m = MakeRandomModel(Config(false), 6);
  testing::ByteTokenizer tok;
  GenerateOptions opt;
  opt.max_tokens = 100;  // more than the 40-token context allows
  opt.temperature = 1.0f;
  opt.top_p = 0.9f;
  opt.seed = 123;
  opt.stop_at_eos = false;
  auto a = Generate(m, tok, {1}, opt, nullptr);
  auto b = Generate(m, tok, {1}, opt, nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->ids, b->ids);
  EXPECT_EQ(a->stop_reason, "context_full");
  EXPECT_EQ(a->ids.size(), 40u);
  opt.seed = 124;
  auto c = Generate(m, tok, {1}, opt, nullptr);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->ids, c->ids);
}

TEST(GenerateTest, StopsAtEos) {
  Model m = MakeRandomModel(Config(false), 7);
  std::vector<float> bias(259, 0.0f);
  bias[2] = 1000.0f;  // EOS always wins
  m.lm_head = DenseLinear::FromMatrix(m.lm_head->DenseWeight(), bias);
  testing::ByteTokenizer tok;
  GenerateOptions opt;
  opt.max_tokens = 10;
  auto r = Generate(m, tok, {1, 50}, opt, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ids.empty());
  EXPECT_EQ(r->stop_reason, "eos");
  opt.top_p = 0.0f;
  EXPECT_FALSE(Generate(m, tok, {1}, opt, nullptr).ok());
  opt.top_p = 1.0f;
  EXPECT_FALSE(Generate(m, tok, {}, opt, nullptr).ok());
}

}  // namespace
}  // namespace squeeze
