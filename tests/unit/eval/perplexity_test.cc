// Perplexity windows (lm_eval rolling, GPTQ) and scoring on synthetic models.
#include "workers/engine/eval/perplexity.h"

#include <cmath>
#include <numeric>

#include <gtest/gtest.h>

#include "tests/common/synthetic_inputs.h"
#include "tests/unit/eval/byte_tokenizer.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

std::vector<int> Iota(int n, int from = 100) {
  std::vector<int> t(n);
  std::iota(t.begin(), t.end(), from);
  return t;
}

TEST(RollingWindowsTest, MatchesLmEvalOnAWorkedExample) {
  // lm_eval get_rolling_token_windows(t0..t9, prefix=B, max_seq_len=4,
  // context_len=1) + make_disjoint_window gives:
  //   ([B], [t0 t1 t2 t3]), ([t3 t4 t5 t6]->ctx [t3], [t4..t7]), ([t5 t6 t7 t8]->ctx [t5 t6 t7], [t8 t9])
  const auto t = Iota(10);
  const auto w = RollingWindows(t, 1, 4);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].input, (std::vector<int>{1, 100, 101, 102}));
  EXPECT_EQ(w[0].targets, (std::vector<int>{100, 101, 102, 103}));
  EXPECT_EQ(w[0].first_scored_row, 0);
  EXPECT_EQ(w[1].input, (std::vector<int>{103, 104, 105, 106}));
  EXPECT_EQ(w[1].targets, (std::vector<int>{104, 105, 106, 107}));
  EXPECT_EQ(w[1].first_scored_row, 0);
  EXPECT_EQ(w[2].input, (std::vector<int>{105, 106, 107, 108}));
  EXPECT_EQ(w[2].targets, (std::vector<int>{108, 109}));
  EXPECT_EQ(w[2].first_scored_row, 2);
}

TEST(RollingWindowsTest, EveryTokenScoredOnceWithItsTrueContext) {
  for (int n : {1, 3, 16, 17, 50, 64}) {
    for (int L : {2, 5, 16}) {
      const auto t = Iota(n);
      std::vector<int> stream = {1};
      stream.insert(stream.end(), t.begin(), t.end());
      int64_t scored = 0;
      for (const EvalWindow& w : RollingWindows(t, 1, L)) {
        ASSERT_LE(static_cast<int>(w.input.size()), L);
        ASSERT_EQ(w.first_scored_row + static_cast<int64_t>(w.targets.size()), static_cast<int64_t>(w.input.size()));
        // input + last target is a contiguous slice of [BOS] + t; targets are the next tokens.
        const int start = w.input[0] == 1 ? 0 : w.input[0] - 100 + 1;
        for (size_t i = 0; i < w.input.size(); ++i) ASSERT_EQ(w.input[i], stream[start + i]);
        for (size_t j = 0; j < w.targets.size(); ++j) {
          ASSERT_EQ(w.targets[j], stream[start + w.first_scored_row + j + 1]);
          ASSERT_EQ(w.targets[j], t[scored + j]) << "tokens are scored in order, exactly once";
        }
        scored += w.targets.size();
      }
      EXPECT_EQ(scored, n);
    }
  }
  EXPECT_TRUE(RollingWindows({}, 1, 8).empty());
}

TEST(GptqWindowsTest, FixedWindowsTailDropped) {
  const auto w = GptqWindows(Iota(10), 4);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[1].input, (std::vector<int>{104, 105, 106, 107}));
  EXPECT_EQ(w[1].targets, (std::vector<int>{105, 106, 107}));
  EXPECT_TRUE(GptqWindows(Iota(3), 4).empty());
}

ModelConfig ByteModelConfig() {
  return test_inputs::SmallGqaConfig(/*hidden_dim=*/48, /*n_layers=*/2, /*vocab_size=*/259, /*max_seq_len=*/64,
                                     /*tied=*/true);
}

TEST(PerplexityTest, UniformModelHasPerplexityVocab) {
  Model m = MakeRandomModel(ByteModelConfig(), 1);
  m.embedding.setZero();  // tied head: every logit is 0
  testing::ByteTokenizer tok;
  PerplexityOptions opt;
  opt.seq_len = 16;
  const std::string text = "hello, uniform world; this text spans several windows.";
  auto r = EvaluatePerplexity(m, tok, {text}, opt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tokens, static_cast<int64_t>(text.size()));
  EXPECT_EQ(r->bytes, static_cast<int64_t>(text.size()));
  EXPECT_NEAR(r->nll_per_token, std::log(259.0), 1e-5);
  EXPECT_NEAR(r->perplexity, 259.0, 1e-2);
  EXPECT_NEAR(r->bits_per_byte, std::log2(259.0), 1e-5);
}

// Sum of -log p(t_i | t_<i) for the sequence [BOS] + t scored in one pass.
double DirectNll(const Model& m, const std::vector<int>& t) {
  std::vector<int> input = {1};
  input.insert(input.end(), t.begin(), t.end() - 1);
  KVCache cache(m, 0);
  MatrixRM logits;
  EXPECT_TRUE(Forward(m, input, 0, cache, logits).ok());
  double nll = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const Eigen::ArrayXd row = logits.row(i).transpose().cast<double>().array();
    nll += std::log((row - row.maxCoeff()).exp().sum()) + row.maxCoeff() - row(t[i]);
  }
  return nll;
}

TEST(PerplexityTest, RollingOverDocumentsMatchesDirectScoring) {
  Model m = MakeRandomModel(ByteModelConfig(), 2);
  testing::ByteTokenizer tok;
  const std::vector<std::string> docs = {"first story.", "a second, longer story here."};
  PerplexityOptions opt;  // seq_len 0 -> 64: each document fits one window
  int64_t progress_calls = 0;
  opt.progress = [&](int64_t d, int64_t n) {
    EXPECT_EQ(n, 2);
    progress_calls = d;
  };
  auto r = EvaluatePerplexity(m, tok, docs, opt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(progress_calls, 2);
  const double expect = DirectNll(m, tok.Encode(docs[0], false)) + DirectNll(m, tok.Encode(docs[1], false));
  EXPECT_NEAR(r->nll, expect, 1e-3);
  EXPECT_EQ(r->tokens, 12 + 28);
  EXPECT_EQ(r->windows, 2);
  EXPECT_NEAR(r->perplexity, std::exp(expect / 40), 1e-3);
  // Shorter windows: same tokens scored, different (less) context.
  opt.seq_len = 8;
  opt.progress = nullptr;
  auto short_r = EvaluatePerplexity(m, tok, docs, opt);
  ASSERT_TRUE(short_r.ok());
  EXPECT_EQ(short_r->tokens, 40);
  EXPECT_EQ(short_r->windows, 2 + 4);
}

TEST(PerplexityTest, GptqProtocolAndErrors) {
  Model m = MakeRandomModel(ByteModelConfig(), 3);
  testing::ByteTokenizer tok;
  PerplexityOptions opt;
  opt.protocol = PplProtocol::kGptq;
  opt.seq_len = 10;
  auto r = EvaluatePerplexity(m, tok, {"abcdefghijklmnop", "qrstu"}, opt);  // 16 + 2 + 5 = 23 bytes
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->windows, 2);
  EXPECT_EQ(r->tokens, 18);
  EXPECT_EQ(r->bytes, 18);
  opt.seq_len = 100;
  EXPECT_EQ(EvaluatePerplexity(m, tok, {"short"}, opt).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ParsePplProtocol("gptq").ok());
  EXPECT_FALSE(ParsePplProtocol("sliding").ok());
}

TEST(SplitDocumentsTest, SplitsAtSeparatorLines) {
  const std::string text = "one\ntwo\n<|endoftext|>\nthree\n<|endoftext|>\n\n<|endoftext|>\nfour";
  EXPECT_EQ(SplitDocuments(text, "<|endoftext|>"), (std::vector<std::string>{"one\ntwo", "three", "four"}));
  EXPECT_EQ(SplitDocuments(text, "").size(), 1u);
}

}  // namespace
}  // namespace squeeze
