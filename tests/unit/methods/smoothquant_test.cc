// SmoothQuant scales folded into the RMSNorms, W8A8Linear (int8 weights x
// per-token int8 activations) against its fake-quant reference, and the
// W8A8 recipe surface (scheme W8A8, input_activations, SmoothQuantModifier).
#include "workers/methods/quant/smoothquant.h"

#include <cmath>
#include <iostream>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/methods/method_test_util.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/methods/quant/int8_matmul.h"
#include "workers/methods/quant/rtn.h"
#include "workers/methods/quant/w8a8_linear.h"
#include "workers/methods/stored_linear.h"
#include "workers/runner/recipe.h"

namespace squeeze {
namespace {

using test_util::Args;
using test_util::RandomMatrix;
using ::testing::HasSubstr;

// Activations with a few large channels (x 30), as LLM activations have.
MatrixRM OutlierActivations(int64_t n, int64_t in, uint64_t seed) {
  MatrixRM x = RandomMatrix(n, in, seed);
  for (int64_t c = 1; c < in; c += 11) x.col(c) *= 30.0f;
  return x;
}

std::vector<float> ColumnAbsMax(const MatrixRM& x) {
  std::vector<float> m(x.cols(), 0.0f);
  for (int64_t r = 0; r < x.rows(); ++r) {
    for (int64_t c = 0; c < x.cols(); ++c) m[c] = std::max(m[c], std::fabs(x(r, c)));
  }
  return m;
}

double RelErr(const MatrixRM& a, const MatrixRM& ref) {
  return (a - ref).cast<double>().norm() / ref.cast<double>().norm();
}

TEST(SmoothQuant, ScalesFollowTheFormula) {
  MatrixRM w1(2, 3), w2(1, 3);
  w1 << 1.0f, -4.0f, 0.0f, 2.0f, 1.0f, 0.0f;
  w2 << -0.5f, 2.0f, 0.0f;
  const std::vector<float> act = {9.0f, 1.0f, 0.0f};
  auto s = SmoothQuantScales(act, {&w1, &w2}, 0.5);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_NEAR((*s)[0], std::sqrt(9.0) / std::sqrt(2.0), 1e-6);  // max|w| over both = 2
  EXPECT_NEAR((*s)[1], 1.0 / std::sqrt(4.0), 1e-6);
  EXPECT_EQ((*s)[2], 1.0f);  // a channel that never fires is left alone
  auto s8 = SmoothQuantScales(act, {&w1, &w2}, 0.8);
  EXPECT_NEAR((*s8)[0], std::pow(9.0, 0.8) / std::pow(2.0, 0.2), 1e-5);
  EXPECT_FALSE(SmoothQuantScales(act, {&w1}, 1.5).ok());
  MatrixRM bad(1, 4);
  EXPECT_FALSE(SmoothQuantScales(act, {&bad}, 0.5).ok());
}

ModelConfig SmallConfig() {
  ModelConfig c;
  c.dim = 48;
  c.hidden_dim = 100;
  c.n_layers = 2;
  c.n_heads = 6;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 97;
  c.max_seq_len = 64;
  c.rope_theta = 10000.0f;
  c.tie_word_embeddings = false;
  c.attention_bias = true;
  return c;
}

MatrixRM Logits(const Model& m) {
  std::vector<int> tokens(30);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int>((i * 37 + 11) % m.config.vocab_size);
  KVCache cache(m, 0);
  MatrixRM logits;
  EXPECT_TRUE(Forward(m, tokens, 0, cache, logits).ok());
  return logits;
}

TEST(SmoothQuant, FoldingLeavesFloatModelUnchanged) {
  Model m = MakeRandomModel(SmallConfig(), 5);
  const MatrixRM before = Logits(m);
  double max_log_s = 0.0;
  for (int l = 0; l < m.config.n_layers; ++l) {
    const std::vector<float> a0 = ColumnAbsMax(OutlierActivations(64, m.config.dim, 10 + l));
    const std::vector<float> a1 = ColumnAbsMax(OutlierActivations(64, m.config.dim, 20 + l));
    const std::vector<float> norm0 = m.blocks[l].attn_norm;
    const MatrixRM q0 = m.blocks[l].q_proj->DenseWeight();
    auto r = ApplySmoothQuantBlock(m.blocks[l], {&a0, &a1}, 0.5);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(r->applied[0] && r->applied[1]);
    for (float s : r->scales[0]) max_log_s = std::max(max_log_s, std::fabs(std::log(static_cast<double>(s))));
    // The norm is divided and the columns multiplied by the same s.
    const MatrixRM q1 = m.blocks[l].q_proj->DenseWeight();
    for (int64_t c = 0; c < m.config.dim; ++c) {
      EXPECT_FLOAT_EQ(m.blocks[l].attn_norm[c], norm0[c] / r->scales[0][c]);
      EXPECT_FLOAT_EQ(q1(3, c), q0(3, c) * r->scales[0][c]);
    }
    EXPECT_EQ(m.blocks[l].q_proj->bias().size(), static_cast<size_t>(m.blocks[l].q_proj->out_features()));
  }
  EXPECT_GT(max_log_s, 0.5) << "scales should be far from 1 for the test to mean anything";
  const MatrixRM after = Logits(m);
  const double diff = (after - before).cwiseAbs().maxCoeff();
  std::cout << "max |logit diff| after smoothing " << diff << "\n";
  EXPECT_LT(diff, 1e-4);
}

TEST(W8A8Linear, ForwardEqualsFakeQuantReference) {
  const MatrixRM w = RandomMatrix(37, 90, 1);
  std::vector<float> bias(37);
  for (int i = 0; i < 37; ++i) bias[i] = 0.1f * static_cast<float>(i);
  auto layer = W8A8Linear::FromDense(w, bias);
  ASSERT_TRUE(layer.ok()) << layer.status();
  MatrixRM x = OutlierActivations(21, 90, 2);
  x.row(4).setZero();  // an all-zero token
  MatrixRM y(21, 37), y1(21, 37);
  ThreadPool three(3), one(1);
  (*layer)->Forward(x.data(), 21, y.data(), three);
  (*layer)->Forward(x.data(), 21, y1.data(), one);
  EXPECT_TRUE((y.array() == y1.array()).all()) << "result depends on the thread count";
  const MatrixRM ref = (*layer)->ForwardFakeQuantReference(x);
  EXPECT_LT((y - ref).cwiseAbs().maxCoeff(), 1e-4f * ref.cwiseAbs().maxCoeff());
  for (int o = 0; o < 37; ++o) EXPECT_FLOAT_EQ(y(4, o), bias[o]);
  // The same int8 codes and scales as RTN at 8 bits per channel.
  auto rtn = QuantizeRtn(w, Args(8, true, QuantStrategy::kChannel), bias);
  ASSERT_TRUE(rtn.ok());
  auto from_packed = W8A8Linear::FromPacked(**rtn);
  ASSERT_TRUE(from_packed.ok()) << from_packed.status();
  EXPECT_TRUE(((*from_packed)->DenseWeight().array() == (*rtn)->DenseWeight().array()).all());
  EXPECT_TRUE(((*from_packed)->DenseWeight().array() == (*layer)->DenseWeight().array()).all());
  EXPECT_FALSE(W8A8Linear::FromPacked(**QuantizeRtn(w, Args(4, true, QuantStrategy::kChannel))).ok());
  // Quantizing activations costs little on plain inputs.
  const MatrixRM x2 = RandomMatrix(16, 90, 3);
  MatrixRM y2(16, 37);
  (*layer)->Forward(x2.data(), 16, y2.data(), one);
  MatrixRM exact = x2 * w.transpose();
  exact.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias.data(), 37);
  EXPECT_LT(RelErr(y2, exact), 0.02);
}

TEST(W8A8Linear, StoredTensorsRoundTrip) {
  const MatrixRM w = RandomMatrix(12, 30, 4);
  auto layer = W8A8Linear::FromDense(w, std::vector<float>(12, 0.25f));
  ASSERT_TRUE(layer.ok());
  std::map<std::string, TensorView> t;
  for (auto& [name, view] : (*layer)->StoredTensors()) t[name] = view;
  EXPECT_EQ(t["weight"].dtype, DType::kI8);
  EXPECT_EQ(t["weight_scale"].shape, (std::vector<int64_t>{12, 1}));
  auto back = LinearFromStoredTensors("m", t);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->kind(), kW8A8Kind);
  EXPECT_TRUE(((*back)->DenseWeight().array() == (*layer)->DenseWeight().array()).all());
  EXPECT_EQ((*back)->bias().size(), 12u);
  // int8 storage: about a quarter of fp32.
  EXPECT_LT((*layer)->StorageBytes(), static_cast<int64_t>(w.size() * sizeof(float)) / 3);
  auto bad = t;
  bad.erase("input_qparams");
  auto e = LinearFromStoredTensors("model.layers.1.mlp.up_proj", bad);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("model.layers.1.mlp.up_proj"));
  bad = t;
  std::vector<float> zero_scales(12, 0.0f);
  bad["weight_scale"].data = zero_scales.data();
  EXPECT_FALSE(LinearFromStoredTensors("m", bad).ok());
}

// The paper's point on a synthetic layer: with outlier channels in every
// token, per-token int8 loses the small channels; smoothing first (alpha 0.5)
// gives a much smaller W8A8 output error.
TEST(SmoothQuant, SmoothingReducesW8A8ErrorOnOutlierActivations) {
  const int64_t in = 128, out = 64;
  const MatrixRM w = RandomMatrix(out, in, 7);
  const MatrixRM x = OutlierActivations(256, in, 8);
  const MatrixRM exact = x * w.transpose();
  ThreadPool one(1);
  auto naive = W8A8Linear::FromDense(w);
  ASSERT_TRUE(naive.ok());
  MatrixRM y_naive(x.rows(), out);
  (*naive)->Forward(x.data(), x.rows(), y_naive.data(), one);
  auto s = SmoothQuantScales(ColumnAbsMax(x), {&w}, 0.5);
  ASSERT_TRUE(s.ok());
  MatrixRM xs = x, ws = w;
  for (int64_t c = 0; c < in; ++c) {
    xs.col(c) /= (*s)[c];
    ws.col(c) *= (*s)[c];
  }
  auto smooth = W8A8Linear::FromDense(ws);
  ASSERT_TRUE(smooth.ok());
  MatrixRM y_smooth(x.rows(), out);
  (*smooth)->Forward(xs.data(), x.rows(), y_smooth.data(), one);
  const double e_naive = RelErr(y_naive, exact), e_smooth = RelErr(y_smooth, exact);
  std::cout << "W8A8 output rel error: naive " << e_naive << ", SmoothQuant " << e_smooth << "\n";
  EXPECT_LT(e_smooth, 0.6 * e_naive);
}

std::string ErrorOf(const std::string& yaml) {
  auto r = ParseRecipe(yaml);
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(W8A8Recipes, SchemeAndInputActivationsParseAndErrorsNameTheField) {
  EXPECT_EQ(ErrorOf("s:\n  q_modifiers:\n    QuantizationModifier: {scheme: W8A8}\n"), "");
  EXPECT_EQ(ErrorOf("s:\n  q_modifiers:\n    GPTQModifier: {scheme: W8A8}\n"), "");
  const std::string groups = R"(s:
  q_modifiers:
    QuantizationModifier:
      config_groups:
        g:
          targets: [Linear]
          weights: {num_bits: 8, type: int, symmetric: true, strategy: channel}
          input_activations: {num_bits: 8, type: int, symmetric: true, strategy: token, dynamic: true}
)";
  EXPECT_EQ(ErrorOf(groups), "");
  std::string tensor = groups;
  tensor.replace(tensor.find("strategy: token"), 15, "strategy: tensor");
  EXPECT_THAT(ErrorOf(tensor), HasSubstr("config_groups.g.input_activations.strategy: only int8 symmetric per-token"));
  std::string w4 = groups;
  w4.replace(w4.find("num_bits: 8"), 11, "num_bits: 4");
  EXPECT_THAT(ErrorOf(w4), HasSubstr("config_groups.g.weights: int8 input activations need weights num_bits 8"));
  EXPECT_THAT(ErrorOf("s:\n  q_modifiers:\n    AWQModifier: {scheme: W8A8}\n"),
              HasSubstr("AWQModifier.scheme: W8A8: AWQModifier quantizes weights only"));
  EXPECT_EQ(ErrorOf("s:\n  m_modifiers:\n    SmoothQuantModifier: {smoothing_strength: 0.8}\n"), "");
  EXPECT_THAT(ErrorOf("s:\n  m_modifiers:\n    SmoothQuantModifier: {smoothing_strength: 1.5}\n"),
              HasSubstr("SmoothQuantModifier.smoothing_strength: 1.5 is outside [0, 1]"));
  EXPECT_EQ(ErrorOf(R"(s:
  m_modifiers:
    SmoothQuantModifier:
      mappings:
        - [["re:.*q_proj", "re:.*k_proj", "re:.*v_proj"], "re:.*input_layernorm"]
        - [["re:.*gate_proj", "re:.*up_proj"], "re:.*post_attention_layernorm"]
)"),
            "");
  EXPECT_THAT(ErrorOf(R"(s:
  m_modifiers:
    SmoothQuantModifier:
      mappings:
        - [["re:.*q_proj", "re:.*k_proj"], "re:.*input_layernorm"]
)"),
              HasSubstr("SmoothQuantModifier.mappings[0][0]: the balance layers of input_layernorm must be exactly"));
  EXPECT_THAT(ErrorOf(R"(s:
  m_modifiers:
    SmoothQuantModifier:
      mappings:
        - [["re:.*o_proj"], "re:.*v_proj"]
)"),
              HasSubstr("SmoothQuantModifier.mappings[0][1]: the smooth layer must match exactly one of"));
}

}  // namespace
}  // namespace squeeze
