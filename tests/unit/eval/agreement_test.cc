// KL divergence / top-1 agreement between a model and a reference.
#include "workers/engine/eval/agreement.h"

#include <cmath>
#include <cstdio>
#include <random>

#include <gtest/gtest.h>

#include "tests/common/synthetic_inputs.h"
#include "tests/unit/eval/byte_tokenizer.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

ModelConfig Config() {
  return test_inputs::SmallGqaConfig(/*hidden_dim=*/48, /*n_layers=*/2, /*vocab_size=*/259, /*max_seq_len=*/32,
                                     /*tied=*/true);
}

const char kText[] =
    "It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith, his chin nuzzled "
    "into his breast in an effort to escape the vile wind, slipped quickly through the glass doors.";

TEST(AgreementTest, KlDivergenceByHand) {
  const float a[3] = {0.0f, 1.0f, 2.0f}, b[3] = {2.0f, 1.0f, 0.0f};
  double za = std::exp(0.0) + std::exp(1.0) + std::exp(2.0);
  double expect = 0;
  for (int i = 0; i < 3; ++i) {
    const double pa = std::exp(double{a[i]}) / za, pb = std::exp(double{b[i]}) / za;
    expect += pa * std::log(pa / pb);
  }
  EXPECT_NEAR(KlDivergence(a, b, 3), expect, 1e-12);
  EXPECT_EQ(KlDivergence(a, a, 3), 0.0);
  std::vector<double> v = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(Quantile(v, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(Quantile(v, 1.0), 4.0);
}

TEST(AgreementTest, ModelWithItselfAgreesExactly) {
  const Model m = MakeRandomModel(Config(), 21);
  testing::ByteTokenizer tok;
  auto r = EvaluateAgreement(m, m, tok, kText, AgreementOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  const int64_t chunks = static_cast<int64_t>(sizeof(kText) - 1) / 32;
  EXPECT_EQ(r->chunks, chunks);
  EXPECT_EQ(r->positions, chunks * (32 - 16 - 1));  // llama.cpp: rows [L/2, L-1)
  EXPECT_EQ(r->mean_kl, 0.0);
  EXPECT_EQ(r->max_kl, 0.0);
  EXPECT_EQ(r->top1_agreement, 1.0);
  EXPECT_DOUBLE_EQ(r->reference_perplexity, r->model_perplexity);
}

TEST(AgreementTest, PerturbedModelHasPositiveKl) {
  const Model ref = MakeRandomModel(Config(), 22);
  Model m = MakeRandomModel(Config(), 22);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  for (auto& b : m.blocks) {
    MatrixRM w = b.down_proj->DenseWeight();
    for (int64_t i = 0; i < w.size(); ++i) w.data()[i] += noise(rng);
    b.down_proj = DenseLinear::FromMatrix(std::move(w));
  }
  testing::ByteTokenizer tok;
  AgreementOptions opt;
  opt.first_scored = 0;
  auto r = EvaluateAgreement(ref, m, tok, kText, opt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->positions, r->chunks * 31);
  EXPECT_GT(r->mean_kl, 1e-4);
  EXPECT_GT(r->kl_stderr, 0.0);
  EXPECT_LE(r->median_kl, r->p99_kl);
  EXPECT_LE(r->p99_kl, r->max_kl);
  EXPECT_GE(r->top1_agreement, 0.0);
  EXPECT_LE(r->top1_agreement, 1.0);
  EXPECT_NE(r->reference_perplexity, r->model_perplexity);
  std::printf("perturbed: mean KL %.5f (p99 %.5f, max %.5f), top-1 agreement %.3f over %lld positions\n",
              r->mean_kl, r->p99_kl, r->max_kl, r->top1_agreement, static_cast<long long>(r->positions));
  // Errors: too short a text, no scored position, different vocabularies.
  EXPECT_EQ(EvaluateAgreement(ref, m, tok, "short", opt).status().code(), absl::StatusCode::kInvalidArgument);
  opt.first_scored = 31;
  EXPECT_FALSE(EvaluateAgreement(ref, m, tok, kText, opt).ok());
  ModelConfig c = Config();
  c.vocab_size = 300;
  EXPECT_FALSE(EvaluateAgreement(ref, MakeRandomModel(c, 1), tok, kText, AgreementOptions{}).ok());
}

}  // namespace
}  // namespace squeeze
