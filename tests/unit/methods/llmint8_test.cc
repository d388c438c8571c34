// LLM.int8(): the mixed-precision decomposition layer against its double
// reference, against W8A8 without outliers, and the modifier's arguments.
#include "workers/methods/quant/llm_int8_linear.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/methods/method_test_util.h"
#include "workers/methods/quant/w8a8_linear.h"
#include "workers/methods/stored_linear.h"
#include "workers/runner/recipe.h"

namespace squeeze {
namespace {

using test_util::RandomMatrix;
using ::testing::HasSubstr;

// Inputs of magnitude ~1 with a few feature dimensions of magnitude ~20 (the
// emergent outliers of the paper), present in a minority of tokens.
MatrixRM OutlierInputs(int64_t n, int64_t in, uint64_t seed) {
  MatrixRM x = RandomMatrix(n, in, seed);
  for (int64_t c : {3, 40, 77}) {
    for (int64_t r = 0; r < n; r += 3) x(r, c) = 20.0f + static_cast<float>(r % 5);
  }
  return x;
}

double RelErr(const MatrixRM& a, const MatrixRM& ref) {
  return (a - ref).cast<double>().norm() / ref.cast<double>().norm();
}

std::unique_ptr<LLMInt8Linear> Make(const MatrixRM& w, float threshold, std::vector<float> bias = {}) {
  auto q = Int8Weight::Quantize(w, std::move(bias));
  EXPECT_TRUE(q.ok()) << q.status();
  auto l = LLMInt8Linear::Create(std::move(*q), threshold);
  EXPECT_TRUE(l.ok()) << l.status();
  return std::move(*l);
}

TEST(LLMInt8Linear, OutlierColumnsAreAnyRowAboveThreshold) {
  MatrixRM x = MatrixRM::Zero(3, 5);
  x(0, 1) = 6.0f;    // == threshold counts
  x(2, 3) = -7.5f;
  x(1, 4) = 5.99f;
  const std::vector<uint8_t> f = LLMInt8Linear::OutlierColumns(x.data(), 3, 5, 6.0f);
  EXPECT_EQ(f, (std::vector<uint8_t>{0, 1, 0, 1, 0}));
}

TEST(LLMInt8Linear, ForwardEqualsDoubleReference) {
  const MatrixRM w = RandomMatrix(50, 96, 1);
  std::vector<float> bias(50, -0.3f);
  auto layer = Make(w, 6.0f, bias);
  const MatrixRM x = OutlierInputs(33, 96, 2);
  const std::vector<uint8_t> flags = LLMInt8Linear::OutlierColumns(x.data(), 33, 96, 6.0f);
  EXPECT_EQ(std::count(flags.begin(), flags.end(), 1), 3);
  MatrixRM y(33, 50), y1(33, 50);
  ThreadPool three(3), one(1);
  layer->Forward(x.data(), 33, y.data(), three);
  layer->Forward(x.data(), 33, y1.data(), one);
  EXPECT_TRUE((y.array() == y1.array()).all()) << "result depends on the thread count";
  const MatrixRM ref = layer->ForwardReference(x);
  EXPECT_LT((y - ref).cwiseAbs().maxCoeff(), 1e-4f * ref.cwiseAbs().maxCoeff());
}

TEST(LLMInt8Linear, WithoutOutliersItIsW8A8BitForBit) {
  const MatrixRM w = RandomMatrix(20, 64, 3);
  const MatrixRM x = RandomMatrix(9, 64, 4) * 0.5f;  // |x| < 6 everywhere (N(0, 0.25))
  ASSERT_LT(x.cwiseAbs().maxCoeff(), 6.0f);
  auto llm = Make(w, 6.0f);
  auto w8 = W8A8Linear::FromDense(w);
  ASSERT_TRUE(w8.ok());
  MatrixRM a(9, 20), b(9, 20);
  ThreadPool one(1);
  llm->Forward(x.data(), 9, a.data(), one);
  (*w8)->Forward(x.data(), 9, b.data(), one);
  EXPECT_TRUE((a.array() == b.array()).all());
}

// The paper's claim on a synthetic layer: per-token int8 of tokens holding an
// outlier feature wipes out their other features; the decomposition keeps
// them, so the output error drops by a large factor.
TEST(LLMInt8Linear, DecompositionBeatsPlainInt8OnOutlierFeatures) {
  const MatrixRM w = RandomMatrix(64, 128, 5);
  MatrixRM x = RandomMatrix(64, 128, 6);
  for (int64_t r = 0; r < 64; r += 2) x(r, 10) = 60.0f;
  const MatrixRM exact = x * w.transpose();
  ThreadPool one(1);
  auto llm = Make(w, 6.0f);
  auto w8 = W8A8Linear::FromDense(w);
  MatrixRM y_llm(64, 64), y_w8(64, 64);
  llm->Forward(x.data(), 64, y_llm.data(), one);
  (*w8)->Forward(x.data(), 64, y_w8.data(), one);
  const double e_llm = RelErr(y_llm, exact), e_w8 = RelErr(y_w8, exact);
  std::cout << "output rel error: W8A8 " << e_w8 << ", LLM.int8() " << e_llm << "\n";
  EXPECT_LT(e_llm, 0.5 * e_w8);
  EXPECT_LT(e_llm, 0.02);
  // Run-time decision per batch: a token alone (no outlier) is computed
  // without decomposition; batched with an outlier token, column 10 is fp32.
  MatrixRM y_alone(1, 64), y_pair(2, 64);
  llm->Forward(x.data() + 128, 1, y_alone.data(), one);   // row 1: no outlier
  MatrixRM pair(2, 128);
  pair.row(0) = x.row(1);
  pair.row(1) = x.row(0);
  llm->Forward(pair.data(), 2, y_pair.data(), one);
  EXPECT_FALSE((y_alone.row(0).array() == y_pair.row(0).array()).all());
  EXPECT_LT((y_alone.row(0) - y_pair.row(0)).cwiseAbs().maxCoeff(), 0.05f);
}

TEST(LLMInt8Linear, StoredTensorsRoundTrip) {
  const MatrixRM w = RandomMatrix(8, 24, 9);
  auto layer = Make(w, 4.5f, std::vector<float>(8, 1.0f));
  std::map<std::string, TensorView> t;
  for (auto& [name, view] : layer->StoredTensors()) t[name] = view;
  EXPECT_EQ(t["weight"].dtype, DType::kI8);
  auto back = LinearFromStoredTensors("m", t);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->kind(), kLlmInt8Kind);
  auto* l = dynamic_cast<const LLMInt8Linear*>(back->get());
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->threshold(), 4.5f);
  EXPECT_TRUE(((*back)->DenseWeight().array() == layer->DenseWeight().array()).all());
  std::vector<float> neg = {-1.0f};
  auto bad = t;
  bad["llm_int8_threshold"].data = neg.data();
  auto e = LinearFromStoredTensors("model.layers.0.mlp.down_proj", bad);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("model.layers.0.mlp.down_proj.llm_int8_threshold"));
}

TEST(LLMInt8Modifier, ArgumentsAreChecked) {
  EXPECT_TRUE(ParseRecipe("s:\n  q_modifiers:\n    LLMInt8Modifier: {}\n").ok());
  EXPECT_TRUE(ParseRecipe("s:\n  q_modifiers:\n    LLMInt8Modifier: {threshold: 4}\n").ok());
  auto r = ParseRecipe("s:\n  q_modifiers:\n    LLMInt8Modifier: {threshold: 0}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("s.q_modifiers.LLMInt8Modifier.threshold: 0 must be > 0"));
  EXPECT_FALSE(LLMInt8Linear::Create(Int8Weight{}, -1.0f).ok());
}

}  // namespace
}  // namespace squeeze
