#include "workers/methods/quant/awq.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/common/run_helpers.h"
#include "tests/unit/methods/example_recipes.h"
#include "tests/unit/methods/method_test_util.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/methods/quant/rtn.h"
#include "workers/runner/recipe.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using test_util::Args;
using test_util::RandomMatrix;
using test_util::XtX;
using ::testing::HasSubstr;

// Inputs with a few outlier channels (x 10), as LLM activations have.
MatrixRM OutlierInputs(int64_t n, int64_t in, uint64_t seed) {
  MatrixRM x = RandomMatrix(n, in, seed);
  for (int64_t c = 2; c < in; c += 13) x.col(c) *= 10.0f;
  return x;
}

std::vector<double> Rms(const MatrixRM& x) {
  std::vector<double> m(x.cols());
  for (int64_t c = 0; c < x.cols(); ++c) {
    m[c] = std::sqrt(x.col(c).cast<double>().squaredNorm() / static_cast<double>(x.rows()));
  }
  return m;
}

ModelConfig SmallConfig(int n_kv_heads, bool bias) {
  ModelConfig c;
  c.dim = 48;
  c.hidden_dim = 100;
  c.n_layers = 2;
  c.n_heads = 6;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = 8;
  c.vocab_size = 97;
  c.max_seq_len = 64;
  c.rope_theta = 10000.0f;
  c.tie_word_embeddings = false;
  c.attention_bias = bias;
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

// Synthetic calibration statistics for every linear of a block (random
// inputs with outlier channels of the right width).
struct BlockStats {
  std::array<Eigen::MatrixXd, 7> h;
  std::array<std::vector<double>, 7> mag;
};
BlockStats MakeStats(TransformerBlock& b, uint64_t seed) {
  BlockStats s;
  const std::array<LinearLayer*, 7> l = {b.q_proj.get(),    b.k_proj.get(),  b.v_proj.get(),  b.o_proj.get(),
                                         b.gate_proj.get(), b.up_proj.get(), b.down_proj.get()};
  for (int i = 0; i < 7; ++i) {
    const MatrixRM x = OutlierInputs(200, l[i]->in_features(), seed + i);
    s.h[i] = XtX(x);
    s.mag[i] = Rms(x);
  }
  return s;
}

TEST(Awq, OutputLossEqualsDirectOutputError) {
  const MatrixRM x = OutlierInputs(100, 40, 1);
  const MatrixRM w = RandomMatrix(12, 40, 2);
  const MatrixRM w_hat = FakeQuantRtnReference(w, Args(3, true, QuantStrategy::kChannel));
  const double direct = ((w_hat - w).cast<double>() * x.cast<double>().transpose()).squaredNorm();
  EXPECT_NEAR(AwqOutputLoss(w, w_hat, XtX(x)), direct, 1e-9 * direct);
}

TEST(Awq, ScalingLeavesFloatModelUnchanged) {
  for (int kv : {6, 2}) {  // 6: v -> o scaled too; 2 (GQA): it is skipped
    Model m = MakeRandomModel(SmallConfig(kv, kv == 2), 7);
    const MatrixRM before = Logits(m);
    const WeightQuantArgs a = Args(4, true, QuantStrategy::kChannel);
    std::array<const WeightQuantArgs*, 7> args;
    args.fill(&a);
    int scaled = 0;
    double max_dev = 0.0;
    for (int layer = 0; layer < m.config.n_layers; ++layer) {
      BlockStats st = MakeStats(m.blocks[layer], 100 + layer);
      std::array<const Eigen::MatrixXd*, 7> h;
      for (int i = 0; i < 7; ++i) h[i] = &st.h[i];
      auto r = ApplyAwqBlockScales(m.config, m.blocks[layer], args, h, st.mag, AwqOptions());
      ASSERT_TRUE(r.ok()) << r.status();
      for (int i = 0; i < 7; ++i) {
        if (!r->scaled[i]) continue;
        ++scaled;
        for (float s : r->input_scales[i]) max_dev = std::max(max_dev, std::fabs(std::log(static_cast<double>(s))));
      }
      EXPECT_EQ(r->scaled[3], kv == 6);
    }
    EXPECT_EQ(scaled, m.config.n_layers * (kv == 6 ? 7 : 6));
    EXPECT_GT(max_dev, 0.1) << "scales should be non-trivial for the test to mean anything";
    const MatrixRM after = Logits(m);
    const double diff = (after - before).cwiseAbs().maxCoeff();
    std::cout << "kv_heads " << kv << ": max |logit diff| after scaling " << diff << "\n";
    EXPECT_LT(diff, 1e-4);
  }
}

TEST(Awq, RatioZeroWithoutClipEqualsRtnExactly) {
  Model m = MakeRandomModel(SmallConfig(6, true), 3);
  Model ref = MakeRandomModel(SmallConfig(6, true), 3);
  const WeightQuantArgs a = Args(4, false, QuantStrategy::kGroup, 16);
  std::array<const WeightQuantArgs*, 7> args;
  args.fill(&a);
  AwqOptions o;
  o.fixed_ratio = 0.0;
  o.duo_scaling = false;
  o.apply_clip = false;
  BlockStats st = MakeStats(m.blocks[0], 9);
  std::array<const Eigen::MatrixXd*, 7> h;
  for (int i = 0; i < 7; ++i) h[i] = &st.h[i];
  auto r = ApplyAwqBlockScales(m.config, m.blocks[0], args, h, st.mag, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(m.blocks[0].attn_norm, ref.blocks[0].attn_norm);
  EXPECT_EQ(m.blocks[0].ffn_norm, ref.blocks[0].ffn_norm);
  auto slots = m.BlockLinears(0);
  auto ref_slots = ref.BlockLinears(0);
  for (size_t i = 0; i < slots.size(); ++i) {
    EXPECT_EQ(r->search[i].loss, r->search[i].rtn_loss) << slots[i].name;
    auto q = QuantizeRtn((*slots[i].slot)->DenseWeight(), a);
    auto q_ref = QuantizeRtn((*ref_slots[i].slot)->DenseWeight(), a);
    ASSERT_TRUE(q.ok() && q_ref.ok());
    EXPECT_TRUE((*q)->DenseWeight() == (*q_ref)->DenseWeight()) << slots[i].name;
  }
}

TEST(Awq, OutputErrorBelowRtnWithOutlierChannels) {
  const int64_t in = 64;
  const MatrixRM x = OutlierInputs(300, in, 11);
  const Eigen::MatrixXd h = XtX(x);
  const MatrixRM w = RandomMatrix(48, in, 12);
  for (const WeightQuantArgs& a :
       {Args(3, true, QuantStrategy::kChannel), Args(4, true, QuantStrategy::kChannel),
        Args(4, false, QuantStrategy::kGroup, 32)}) {
    for (bool duo : {false, true}) {
      AwqOptions o;
      o.duo_scaling = duo;
      auto r = SearchAwqScales({{&w, &a, &h}}, Rms(x), o);
      ASSERT_TRUE(r.ok()) << r.status();
      const double rtn = AwqOutputLoss(w, FakeQuantRtnReference(w, a), h);
      EXPECT_NEAR(r->rtn_loss, rtn, 1e-9 * rtn);
      // Clip search on the scaled weight, in the scaled coordinates.
      const MatrixRM ws = ScaleColumns(w, r->scales);
      const Eigen::MatrixXd hs = ScaleHessian(h, r->scales);
      const double scaled_loss = AwqOutputLoss(ws, FakeQuantRtnReference(ws, a), hs);
      EXPECT_NEAR(scaled_loss, r->loss, 1e-6 * r->loss);
      const MatrixRM wc = AwqClipWeight(ws, hs, a, o);
      const double clipped_loss = AwqOutputLoss(ws, FakeQuantRtnReference(wc, a), hs);
      std::cout << a.ShortName() << (duo ? " duo" : "") << ": ratio " << r->ratio << ", output error RTN " << rtn
                << " -> scaled " << r->loss << " -> clipped " << clipped_loss << "\n";
      EXPECT_LT(r->loss, rtn);
      if (a.strategy == QuantStrategy::kChannel) {
        EXPECT_LE(clipped_loss, r->loss);  // rows independent: per-row search is exact
      }
      EXPECT_LT(clipped_loss, rtn);
    }
  }
}

// Plain reference of the clip search: per (row, group), the shrink whose
// quantized group output on the raw inputs x is closest to the original's.
MatrixRM ClipReference(const MatrixRM& w, const MatrixRM& x, const WeightQuantArgs& a, const AwqOptions& o) {
  MatrixRM out = w;
  const int64_t g = a.EffectiveGroupSize(w.cols());
  for (int64_t r = 0; r < w.rows(); ++r) {
    for (int64_t c0 = 0; c0 < w.cols(); c0 += g) {
      const int64_t n = std::min<int64_t>(g, w.cols() - c0);
      const Eigen::VectorXf orig = w.row(r).segment(c0, n).transpose();
      const float mx = orig.cwiseAbs().maxCoeff();
      double best = 1e300;
      for (int k = 0; k < static_cast<int>(o.max_shrink * o.clip_grid); ++k) {
        const float m = mx * (1.0f - static_cast<float>(k) / static_cast<float>(o.clip_grid));
        std::vector<float> v(n);
        for (int64_t c = 0; c < n; ++c) v[c] = std::clamp(orig[c], -m, m);
        MatrixRM one(1, n);
        for (int64_t c = 0; c < n; ++c) one(0, c) = v[c];
        WeightQuantArgs row_args = a;
        row_args.strategy = QuantStrategy::kChannel;  // one group = the whole 1-row matrix
        const MatrixRM q = FakeQuantRtnReference(one, row_args);
        const Eigen::VectorXd d = (q.row(0).transpose() - orig).cast<double>();
        const double loss = (x.middleCols(c0, n).cast<double>() * d).squaredNorm();
        if (loss < best) {
          best = loss;
          for (int64_t c = 0; c < n; ++c) out(r, c0 + c) = v[c];
        }
      }
    }
  }
  return out;
}

TEST(Awq, ClipSearchMatchesPlainReference) {
  const MatrixRM x = OutlierInputs(150, 48, 21);
  const MatrixRM w = RandomMatrix(20, 48, 22);
  const AwqOptions o;
  for (const WeightQuantArgs& a : {Args(3, true, QuantStrategy::kChannel), Args(4, false, QuantStrategy::kGroup, 16)}) {
    const MatrixRM fast = AwqClipWeight(w, XtX(x), a, o);
    const MatrixRM ref = ClipReference(w, x, a, o);
    EXPECT_TRUE(fast == ref) << a.ShortName() << ": max diff " << (fast - ref).cwiseAbs().maxCoeff();
    EXPECT_FALSE(fast == w) << a.ShortName() << ": some group should be clipped";
  }
  // The tensor strategy is never clipped.
  EXPECT_TRUE(AwqClipWeight(w, XtX(x), Args(4, true, QuantStrategy::kTensor), o) == w);
}

TEST(Awq, BadInputsAreErrors) {
  const MatrixRM w = RandomMatrix(4, 8, 1);
  const Eigen::MatrixXd h = Eigen::MatrixXd::Identity(8, 8);
  const WeightQuantArgs a = Args(4, true, QuantStrategy::kChannel);
  EXPECT_FALSE(SearchAwqScales({}, std::vector<double>(8, 1.0), AwqOptions()).ok());
  auto r = SearchAwqScales({{&w, &a, &h}}, std::vector<double>(7, 1.0), AwqOptions());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("shapes differ"));
}

TEST(AwqModifier, RecipeErrorsNameTheField) {
  auto bad = ParseRecipe("s:\n  q_modifiers:\n    AWQModifier: {scheme: W4A16, duo_scaling: 3}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("AWQModifier.duo_scaling"));
  auto bad2 = ParseRecipe("s:\n  q_modifiers:\n    AWQModifier: {scheme: W4A16, smoothing: 1}\n");
  ASSERT_FALSE(bad2.ok());
  EXPECT_THAT(std::string(bad2.status().message()), HasSubstr("AWQModifier.smoothing"));
  auto bad3 = ParseRecipe(
      "s:\n  q_modifiers:\n    AWQModifier:\n      config_groups:\n        g: {targets: [Linear], weights: "
      "{num_bits: 4, strategy: channel, actorder: group}}\n");
  ASSERT_FALSE(bad3.ok());
  EXPECT_THAT(std::string(bad3.status().message()), HasSubstr("actorder"));
}

TEST(AwqModifier, ExampleRecipesParseAndRoundTrip) {
  const int n = test_util::ExpectExampleRecipesRoundTrip("awq-", "AWQModifier");
  EXPECT_GE(n, 2);
}

// stories260K (dim 64, hidden 172): AWQ vs RTN at W4A16 (groups of 128 =
// per channel here) and 3 bits per channel; perplexity on the first 6000
// bytes of valid.txt, windows of 256, calibration 16 x 128 tokens of train.txt.
TEST(AwqModifier, RealModelPerplexityBelowRtn) {
  const std::string shared = SQUEEZE_SHARED_DIR;
  const std::string model = shared + "/models/stories260K/hf";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is absent (needs ../shared)";
  const std::string calib = "num_calibration_samples: 16\nmax_seq_length: 128\n";
  const std::string w3 = "      config_groups:\n        g: {targets: [Linear], weights: {num_bits: 3, strategy: channel}}\n";
  std::map<std::string, std::pair<double, double>> ppl;
  std::map<std::string, nlohmann::json> reports;
  for (const auto& [name, text] : std::vector<std::pair<std::string, std::string>>{
           {"rtn_w4a16", "s:\n  q_modifiers:\n    QuantizationModifier: {scheme: W4A16}\n"},
           {"awq_w4a16", calib + "s:\n  q_modifiers:\n    AWQModifier: {scheme: W4A16}\n"},
           {"rtn_w3_channel", "s:\n  q_modifiers:\n    QuantizationModifier:\n" + w3},
           {"awq_w3_channel", calib + "s:\n  q_modifiers:\n    AWQModifier:\n" + w3}}) {
    auto recipe = ParseRecipe(text);
    ASSERT_TRUE(recipe.ok()) << name << ": " << recipe.status();
    RunOptions o;
    o.model_path = model;
    o.output_dir = ::testing::TempDir() + "/squeeze_awq_test_" + name;
    fs::remove_all(o.output_dir);
    fs::remove_all(o.output_dir + ".work");
    o.calib_text_path = shared + "/data/tinystories/train.txt";
    o.eval_text_path = shared + "/data/tinystories/valid.txt";
    o.eval_max_bytes = 6000;
    o.eval_seq_len = 256;
    NullProgressSink null;
    RunControl control;
    auto r = RunRecipe(*recipe, o, null, control);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status();
    const auto& p = r->report["perplexity"];
    ppl[name] = {p["before"].get<double>(), p["after"].get<double>()};
    reports[name] = r->report;
    std::cout << name << ": perplexity " << ppl[name].first << " -> " << ppl[name].second << "\n";
    fs::remove_all(o.output_dir);
  }
  const double dense = ppl["rtn_w4a16"].first;
  for (const auto& [name, v] : ppl) {
    EXPECT_EQ(v.first, dense) << name;
    EXPECT_GE(v.second, dense * 0.98) << name;
  }
  EXPECT_LT(ppl["awq_w4a16"].second, ppl["rtn_w4a16"].second);
  EXPECT_LT(ppl["awq_w3_channel"].second, ppl["rtn_w3_channel"].second);
  // Per-module figures: every module reports a ratio and both output errors;
  // summed over the model, AWQ's output error is below RTN's.
  for (const std::string name : {"awq_w4a16", "awq_w3_channel"}) {
    int modules = 0;
    double awq = 0.0, rtn = 0.0;
    for (const auto& stage : reports[name]["stages"]) {
      for (const auto& layer : stage["layers"]) {
        for (const auto& m : layer["modules"]) {
          ++modules;
          ASSERT_TRUE(m.contains("output_rel_error") && m.contains("rtn_output_rel_error")) << m.dump();
          // stories260K has grouped-query attention (4 kv heads of 8): v -> o is not scaled.
          const std::string module = m["name"].get<std::string>();
          const bool o_proj = module.size() > 6 && module.substr(module.size() - 6) == "o_proj";
          EXPECT_EQ(m.contains("awq_ratio"), !o_proj) << m.dump();
          awq += m["output_rel_error"].get<double>();
          rtn += m["rtn_output_rel_error"].get<double>();
          if (layer == stage["layers"][0]) {
            std::cout << "  " << name << " " << m["name"].get<std::string>() << ": ratio " << m.value("awq_ratio", -1.0)
                      << ", output rel error " << m["output_rel_error"] << " (RTN " << m["rtn_output_rel_error"]
                      << ")\n";
          }
        }
      }
    }
    EXPECT_EQ(modules, 5 * 7) << name;
    std::cout << name << ": mean output rel error " << awq / modules << " vs RTN " << rtn / modules << "\n";
    EXPECT_LT(awq, rtn) << name;
  }
}

// AWQ rescales the RMSNorms, which are not linear modules: a stop inside the
// stage and a resume must still give the same artifact as one run.
TEST(AwqModifier, StopAndResumeKeepsTheScaledNorms) {
  const std::string shared = SQUEEZE_SHARED_DIR;
  const std::string model = shared + "/models/stories260K/hf";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is absent (needs ../shared)";
  auto recipe = ParseRecipe("num_calibration_samples: 4\nmax_seq_length: 64\ns:\n  q_modifiers:\n    AWQModifier: {scheme: W4A16}\n");
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  RunOptions o;
  o.model_path = model;
  o.calib_text_path = shared + "/data/tinystories/train.txt";
  const std::string full = test_inputs::FreshTestDir("squeeze_awq_test_", "full");
  const std::string resumed = test_inputs::FreshTestDir("squeeze_awq_test_", "resumed");
  o.output_dir = full;
  NullProgressSink null;
  RunControl c0;
  ASSERT_TRUE(RunRecipe(*recipe, o, null, c0).ok());
  o.output_dir = resumed;
  RunControl stop;
  test_inputs::StopAfter sink(stop, 2);
  auto stopped = RunRecipe(*recipe, o, sink, stop);
  ASSERT_TRUE(IsStoppedWithCheckpoint(stopped.status())) << stopped.status();
  RunControl go;
  auto r = RunRecipe(*recipe, o, null, go);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->resumed);
  const auto a = test_inputs::DirContents(full), b = test_inputs::DirContents(resumed);
  EXPECT_GE(a.size(), 2u);
  for (const auto& [name, bytes] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(b.at(name) == bytes) << name << " differs after stop / resume";
  }
  fs::remove_all(full);
  fs::remove_all(resumed);
}

}  // namespace
}  // namespace squeeze
