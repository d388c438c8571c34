#include "workers/methods/quant/gptq.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <iostream>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/methods/example_recipes.h"
#include "tests/unit/methods/method_test_util.h"

#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/rtn.h"
#include "workers/methods/stored_linear.h"
#include "workers/runner/compressed_model.h"
#include "workers/runner/recipe.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

using test_util::Args;
using test_util::RandomMatrix;
using test_util::XtX;

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Correlated inputs X [n, in]: X = Z A with a random mixing matrix A plus a
// few high-magnitude channels (outliers), as LLM activations have.
MatrixRM CorrelatedInputs(int64_t n, int64_t in, uint64_t seed, bool outliers) {
  MatrixRM z = RandomMatrix(n, in, seed);
  MatrixRM a = RandomMatrix(in, in, seed + 1) * (1.0f / std::sqrt(static_cast<float>(in)));
  a += MatrixRM::Identity(in, in) * 0.5f;
  MatrixRM x = z * a;
  if (outliers) {
    for (int64_t c = 3; c < in; c += 17) x.col(c) *= 8.0f;
  }
  return x;
}

Eigen::MatrixXd HessianOf(const MatrixRM& x) {
  const Eigen::MatrixXd xd = x.cast<double>();
  return (2.0 / static_cast<double>(x.rows())) * (xd.transpose() * xd);
}

GptqOptions Opts(const WeightQuantArgs& a, int64_t block, ActOrder order = ActOrder::kNone) {
  GptqOptions o;
  o.quant = a;
  o.block_size = block;
  o.actorder = order;
  return o;
}

std::vector<int32_t> Codes(const PackedIntLinear& l) {
  std::vector<int32_t> c;
  for (int64_t r = 0; r < l.out_features(); ++r) {
    for (int64_t k = 0; k < l.in_features(); ++k) c.push_back(l.Code(r, k));
  }
  return c;
}

TEST(Gptq, BlockedEqualsColumnByColumnReference) {
  const int64_t out = 40, in = 96;
  const MatrixRM w = RandomMatrix(out, in, 1);
  MatrixRM x = CorrelatedInputs(400, in, 2, true);
  x.col(5).setZero();  // a dead column
  const Eigen::MatrixXd h = HessianOf(x);
  struct Case {
    WeightQuantArgs a;
    int64_t block;
    ActOrder order;
  };
  for (const Case& c : std::vector<Case>{
           {Args(4, true, QuantStrategy::kChannel), 32, ActOrder::kNone},
           {Args(4, true, QuantStrategy::kGroup, 32), 32, ActOrder::kNone},
           // Groups that start inside a block and groups that span blocks.
           {Args(4, false, QuantStrategy::kGroup, 24), 40, ActOrder::kNone},
           {Args(3, true, QuantStrategy::kGroup, 48), 20, ActOrder::kNone},
           {Args(4, true, QuantStrategy::kGroup, 32), 128, ActOrder::kStatic},
           {Args(4, false, QuantStrategy::kGroup, 24), 40, ActOrder::kGroup},
           {Args(8, false, QuantStrategy::kTensor), 16, ActOrder::kGroup},
           {Args(2, true, QuantStrategy::kChannel), 7, ActOrder::kStatic}}) {
    const std::string name = absl::StrCat(c.a.ShortName(), " block ", c.block, " ", ActOrderName(c.order));
    auto blocked = QuantizeGptq(w, h, Opts(c.a, c.block, c.order));
    auto ref = QuantizeGptqReference(w, h, Opts(c.a, c.block, c.order));
    ASSERT_TRUE(blocked.ok()) << name << ": " << blocked.status();
    ASSERT_TRUE(ref.ok()) << name << ": " << ref.status();
    EXPECT_EQ(blocked->dead_columns, 1) << name;
    EXPECT_EQ(Codes(*blocked->layer), Codes(*ref->layer)) << name;
    const MatrixRM wb = blocked->layer->DenseWeight(), wr = ref->layer->DenseWeight();
    EXPECT_LE((wb - wr).cwiseAbs().maxCoeff(), 1e-6f) << name;
    EXPECT_NEAR(blocked->loss, ref->loss, 1e-9 * std::max(1.0, ref->loss)) << name;
    EXPECT_EQ(blocked->layer->g_idx(), ref->layer->g_idx()) << name;
    // The dead column's weights are zero.
    EXPECT_EQ(wb.col(5).cwiseAbs().maxCoeff(), 0.0f) << name;
  }
}

TEST(Gptq, ResultDoesNotDependOnThreads) {
  const MatrixRM w = RandomMatrix(100, 64, 3);
  const Eigen::MatrixXd h = HessianOf(CorrelatedInputs(300, 64, 4, false));
  ThreadPool one(1), three(3);
  auto a = QuantizeGptq(w, h, Opts(Args(4, true, QuantStrategy::kGroup, 16), 32), {}, one);
  auto b = QuantizeGptq(w, h, Opts(Args(4, true, QuantStrategy::kGroup, 16), 32), {}, three);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Codes(*a->layer), Codes(*b->layer));
  EXPECT_EQ(a->loss, b->loss);
}

TEST(Gptq, IdentityHessianEqualsRtnExactly) {
  const MatrixRM w = RandomMatrix(24, 172, 5);
  const Eigen::MatrixXd h = Eigen::MatrixXd::Identity(172, 172);
  for (const WeightQuantArgs& a :
       {Args(4, true, QuantStrategy::kGroup, 64), Args(4, false, QuantStrategy::kGroup, 128),
        Args(8, true, QuantStrategy::kChannel), Args(3, false, QuantStrategy::kChannel),
        Args(8, false, QuantStrategy::kTensor), Args(2, false, QuantStrategy::kGroup, 32)}) {
    auto g = QuantizeGptq(w, h, Opts(a, 50));
    auto r = QuantizeRtn(w, a);
    ASSERT_TRUE(g.ok() && r.ok()) << a.ShortName();
    EXPECT_EQ(Codes(*g->layer), Codes(**r)) << a.ShortName();
    EXPECT_TRUE((g->layer->DenseWeight().array() == (*r)->DenseWeight().array()).all()) << a.ShortName();
    // Same storage, byte for byte.
    const auto tg = g->layer->StoredTensors(), tr = (*r)->StoredTensors();
    ASSERT_EQ(tg.size(), tr.size());
    for (size_t i = 0; i < tg.size(); ++i) {
      EXPECT_EQ(tg[i].first, tr[i].first);
      ASSERT_EQ(tg[i].second.nbytes, tr[i].second.nbytes);
      EXPECT_EQ(std::memcmp(tg[i].second.data, tr[i].second.data, tg[i].second.nbytes), 0) << tg[i].first;
    }
  }
}

TEST(Gptq, OutputErrorBelowRtnOnCorrelatedInputs) {
  const int64_t out = 64, in = 128;
  const MatrixRM w = RandomMatrix(out, in, 7);
  const MatrixRM x = CorrelatedInputs(512, in, 8, false);
  const Eigen::MatrixXd h = HessianOf(x), xtx = XtX(x);
  for (const WeightQuantArgs& a : {Args(4, true, QuantStrategy::kChannel), Args(4, true, QuantStrategy::kGroup, 32),
                                   Args(3, false, QuantStrategy::kGroup, 64)}) {
    auto g = QuantizeGptq(w, h, Opts(a, 128));
    auto r = QuantizeRtn(w, a);
    ASSERT_TRUE(g.ok() && r.ok());
    const double eg = RelativeOutputError(w, g->layer->DenseWeight(), xtx);
    const double er = RelativeOutputError(w, (*r)->DenseWeight(), xtx);
    // Checks RelativeOutputError against the direct ||(W - Q) X^T|| / ||W X^T||.
    const MatrixRM wq = g->layer->DenseWeight();
    const double direct = ((w - wq).cast<double>() * x.cast<double>().transpose()).norm() /
                          (w.cast<double>() * x.cast<double>().transpose()).norm();
    EXPECT_NEAR(eg, direct, 1e-9);
    std::cout << a.ShortName() << ": relative output error GPTQ " << eg << ", RTN " << er << "\n";
    EXPECT_LT(eg, 0.9 * er) << a.ShortName();
  }
}

TEST(Gptq, ActOrderHelpsOnOutlierInputs) {
  const int64_t out = 64, in = 128;
  const MatrixRM w = RandomMatrix(out, in, 9);
  const MatrixRM x = CorrelatedInputs(512, in, 10, true);
  const Eigen::MatrixXd h = HessianOf(x), xtx = XtX(x);
  const WeightQuantArgs a = Args(4, true, QuantStrategy::kGroup, 32);
  double e[3];
  int i = 0;
  for (ActOrder o : {ActOrder::kNone, ActOrder::kStatic, ActOrder::kGroup}) {
    auto g = QuantizeGptq(w, h, Opts(a, 128, o));
    ASSERT_TRUE(g.ok());
    e[i++] = RelativeOutputError(w, g->layer->DenseWeight(), xtx);
  }
  std::cout << "outliers, w4 g32: none " << e[0] << ", static " << e[1] << ", group " << e[2] << "\n";
  EXPECT_LE(e[1], e[0] * 1.02);
  EXPECT_LE(e[2], e[0] * 1.02);
}

TEST(Gptq, GroupActOrderWritesValidGidxAndForwardsCorrectly) {
  const int64_t out = 20, in = 64;
  const MatrixRM w = RandomMatrix(out, in, 11);
  const MatrixRM x = CorrelatedInputs(256, in, 12, true);
  const Eigen::MatrixXd h = HessianOf(x);
  const WeightQuantArgs a = Args(4, false, QuantStrategy::kGroup, 16);
  std::vector<float> bias(out);
  for (int64_t i = 0; i < out; ++i) bias[i] = 0.1f * static_cast<float>(i);
  auto g = QuantizeGptq(w, h, Opts(a, 32, ActOrder::kGroup), bias);
  ASSERT_TRUE(g.ok()) << g.status();
  const PackedIntLinear& l = *g->layer;
  const std::vector<int32_t>& gi = l.g_idx();
  ASSERT_EQ(static_cast<int64_t>(gi.size()), in);
  std::vector<int> per_group(4, 0);
  for (int32_t v : gi) {
    ASSERT_GE(v, 0);
    ASSERT_LT(v, 4);
    ++per_group[v];
  }
  EXPECT_EQ(per_group, std::vector<int>(4, 16));
  // The outlier channels (largest diag H) come first: they are in group 0.
  for (int64_t c = 3; c < in; c += 17) EXPECT_EQ(gi[c], 0) << c;
  EXPECT_FALSE(std::is_sorted(gi.begin(), gi.end()));  // really permuted

  // Dequantization through g_idx: element (r, c) = (q - z[g]) * s[g].
  const MatrixRM dense = l.DenseWeight();
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) {
      const float want = static_cast<float>(l.Code(r, c) - l.ZeroPoint(r, gi[c])) * l.Scale(r, gi[c]);
      ASSERT_EQ(dense(r, c), want) << r << ", " << c;
    }
  }
  // Forward equals x W_hat^T + b.
  const MatrixRM xs = x.topRows(7);
  MatrixRM y(7, out);
  l.Forward(xs.data(), 7, y.data(), ThreadPool::Default());
  MatrixRM want = xs * dense.transpose();
  for (int64_t r = 0; r < 7; ++r) {
    for (int64_t o = 0; o < out; ++o) want(r, o) += bias[o];
  }
  EXPECT_LE((y - want).cwiseAbs().maxCoeff(), 1e-4f);

  // Stored tensors include weight_g_idx and read back to the same layer.
  std::map<std::string, TensorView> t;
  for (const auto& [k, v] : l.StoredTensors()) t[k] = v;
  ASSERT_TRUE(t.count("weight_g_idx"));
  auto back = LinearFromStoredTensors("m", t);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(((*back)->DenseWeight().array() == dense.array()).all());
  // A corrupt g_idx is rejected with the module's name.
  std::vector<int32_t> bad = gi;
  bad[3] = 9;
  TensorView bv = t["weight_g_idx"];
  bv.data = bad.data();
  t["weight_g_idx"] = bv;
  auto rejected = LinearFromStoredTensors("m", t);
  EXPECT_THAT(std::string(rejected.status().message()), HasSubstr("m.weight_g_idx"));

  // Static act-order keeps groups in input order: no g_idx.
  auto s = QuantizeGptq(w, h, Opts(a, 32, ActOrder::kStatic));
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->layer->g_idx().empty());
}

TEST(Gptq, BadInputsAreErrors) {
  const MatrixRM w = RandomMatrix(4, 8, 13);
  EXPECT_THAT(std::string(QuantizeGptq(w, Eigen::MatrixXd::Identity(7, 7), Opts(Args(4, true, QuantStrategy::kChannel), 8))
                              .status().message()),
              HasSubstr("Hessian is [7, 7]"));
  EXPECT_FALSE(QuantizeGptq(w, Eigen::MatrixXd::Identity(8, 8), Opts(Args(4, true, QuantStrategy::kChannel), 0)).ok());
  // Indefinite and undamped: not positive definite.
  Eigen::MatrixXd h = Eigen::MatrixXd::Identity(8, 8);
  h(0, 0) = -1.0;
  GptqOptions o = Opts(Args(4, true, QuantStrategy::kChannel), 8);
  o.dampening_frac = 0.0;
  auto r = QuantizeGptq(w, h, o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("dampening_frac"));
  EXPECT_FALSE(ParseActOrder("sideways").ok());
  EXPECT_EQ(*ParseActOrder("weight"), ActOrder::kStatic);
  EXPECT_EQ(*ParseActOrder("dynamic"), ActOrder::kGroup);
}

TEST(GptqModifier, RecipeErrorsNameTheField) {
  auto bad = ParseRecipe("s:\n  q_modifiers:\n    GPTQModifier: {scheme: W4A16, actorder: sideways}\n");
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("GPTQModifier.actorder"));
  auto bad2 = ParseRecipe("s:\n  q_modifiers:\n    GPTQModifier: {scheme: W4A16, dampening_frac: -1}\n");
  EXPECT_THAT(std::string(bad2.status().message()), HasSubstr("GPTQModifier.dampening_frac"));
  auto bad3 = ParseRecipe("s:\n  q_modifiers:\n    GPTQModifier: {scheme: W4A16, block_size: 0}\n");
  EXPECT_THAT(std::string(bad3.status().message()), HasSubstr("GPTQModifier.block_size"));
  auto ok = ParseRecipe(R"(s:
  q_modifiers:
    GPTQModifier:
      actorder: group
      config_groups:
        g: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 32, actorder: group}}
)");
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(GptqModifier, ExampleRecipesParseAndRoundTrip) {
  const int n = test_util::ExpectExampleRecipesRoundTrip("gptq-", "GPTQModifier");
  EXPECT_GE(n, 3);
}

// stories260K (dim 64, hidden 172): GPTQ vs RTN at W4A16 (groups of 128, i.e.
// per channel for the 64-wide inputs), 4 bits in groups of 32 with act-order
// "group" (g_idx), and 3 bits per channel; perplexity on the first 6000 bytes
// of valid.txt, windows of 256, calibration 16 x 128 tokens of train.txt.
TEST(GptqModifier, RealModelPerplexityBelowRtn) {
  const std::string shared = SQUEEZE_SHARED_DIR;
  const std::string model = shared + "/models/stories260K/hf";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is absent (needs ../shared)";
  struct Run {
    std::string name, recipe;
  };
  const std::string calib = "num_calibration_samples: 16\nmax_seq_length: 128\n";
  std::map<std::string, std::pair<double, double>> ppl;
  std::map<std::string, nlohmann::json> reports;
  for (const Run& run : std::vector<Run>{
           {"rtn_w4a16", "s:\n  q_modifiers:\n    QuantizationModifier: {scheme: W4A16}\n"},
           {"gptq_w4a16", calib + "s:\n  q_modifiers:\n    GPTQModifier: {scheme: W4A16}\n"},
           {"rtn_w3_channel",
            "s:\n  q_modifiers:\n    QuantizationModifier:\n      config_groups:\n        g: {targets: [Linear], weights: "
            "{num_bits: 3, strategy: channel}}\n"},
           {"gptq_w3_channel",
            calib + "s:\n  q_modifiers:\n    GPTQModifier:\n      config_groups:\n        g: {targets: [Linear], weights: "
                    "{num_bits: 3, strategy: channel}}\n"},
           {"gptq_w4_g32_actorder_group",
            calib + "s:\n  q_modifiers:\n    GPTQModifier:\n      actorder: group\n      config_groups:\n        g: {targets: "
                    "[Linear], weights: {num_bits: 4, strategy: group, group_size: 32}}\n"},
           {"gptq_w4a16_no_actorder", calib + "s:\n  q_modifiers:\n    GPTQModifier: {scheme: W4A16, actorder: null}\n"},
           {"rtn_w4_g32",
            "s:\n  q_modifiers:\n    QuantizationModifier:\n      config_groups:\n        g: {targets: [Linear], weights: "
            "{num_bits: 4, strategy: group, group_size: 32}}\n"}}) {
    auto recipe = ParseRecipe(run.recipe);
    ASSERT_TRUE(recipe.ok()) << run.name << ": " << recipe.status();
    RunOptions o;
    o.model_path = model;
    o.output_dir = ::testing::TempDir() + "/squeeze_gptq_test_" + run.name;
    fs::remove_all(o.output_dir);
    fs::remove_all(o.output_dir + ".work");
    o.calib_text_path = shared + "/data/tinystories/train.txt";
    o.eval_text_path = shared + "/data/tinystories/valid.txt";
    o.eval_max_bytes = 6000;
    o.eval_seq_len = 256;
    NullProgressSink null;
    RunControl control;
    auto r = RunRecipe(*recipe, o, null, control);
    ASSERT_TRUE(r.ok()) << run.name << ": " << r.status();
    const auto& p = r->report["perplexity"];
    ppl[run.name] = {p["before"].get<double>(), p["after"].get<double>()};
    reports[run.name] = r->report;
    std::cout << run.name << ": perplexity " << ppl[run.name].first << " -> " << ppl[run.name].second << "\n";
    if (run.name == "gptq_w4_g32_actorder_group") {
      // The artifact reloads with its g_idx: every linear is packed and has one.
      auto back = LoadCompressedModel(o.output_dir);
      ASSERT_TRUE(back.ok()) << back.status();
      int with_gidx = 0;
      for (LinearSlot& s : back->AllLinears()) {
        const auto* p = dynamic_cast<const PackedIntLinear*>(s.slot->get());
        if (p != nullptr && static_cast<int64_t>(p->g_idx().size()) == p->in_features()) ++with_gidx;
      }
      EXPECT_EQ(with_gidx, 5 * 7);
    }
    fs::remove_all(o.output_dir);
  }
  const double dense = ppl["rtn_w4a16"].first;
  for (const auto& [name, v] : ppl) {
    EXPECT_EQ(v.first, dense) << name;
    EXPECT_GE(v.second, dense * 0.98) << name;
  }
  EXPECT_LT(ppl["gptq_w4a16"].second, ppl["rtn_w4a16"].second);
  EXPECT_LT(ppl["gptq_w3_channel"].second, ppl["rtn_w3_channel"].second);
  EXPECT_LT(ppl["gptq_w4_g32_actorder_group"].second, ppl["rtn_w4_g32"].second);
  EXPECT_LT(ppl["gptq_w4a16_no_actorder"].second, ppl["rtn_w4a16"].second);
  // Per-module figures: GPTQ's output error below RTN's on each module.
  int modules = 0;
  for (const auto& stage : reports["gptq_w4a16"]["stages"]) {
    for (const auto& layer : stage["layers"]) {
      for (const auto& m : layer["modules"]) {
        ++modules;
        ASSERT_TRUE(m.contains("output_rel_error")) << m.dump();
        EXPECT_LE(m["output_rel_error"].get<double>(), m["rtn_output_rel_error"].get<double>() * 1.001) << m.dump();
        EXPECT_GE(m["gptq_loss"].get<double>(), 0.0);
      }
    }
  }
  EXPECT_EQ(modules, 5 * 7);
}

}  // namespace
}  // namespace squeeze
