// OWL layerwise sparsity (methods/prune/owl.h): the allocation's mean and
// spread, the outlier ratio against a plain re-computation, and the real
// stories260K model (Wanda uniform vs OWL, perplexity).
#include "workers/methods/prune/owl.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/common/run_helpers.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/runner/recipe.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;

double Mean(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }

TEST(Owl, AllocationMeanSpreadAndOrder) {
  const std::vector<double> d = {0.010, 0.002, 0.030, 0.004, 0.015, 0.004};
  for (double target : {0.5, 0.7}) {
    for (double lambda : {0.0, 0.02, 0.08}) {
      auto s = OwlSparsities(d, target, lambda);
      ASSERT_TRUE(s.ok()) << s.status();
      ASSERT_EQ(s->size(), d.size());
      EXPECT_NEAR(Mean(*s), target, 1e-12);
      const auto [lo, hi] = std::minmax_element(s->begin(), s->end());
      EXPECT_NEAR(*hi - *lo, 2.0 * lambda, 1e-12);
      for (double x : *s) EXPECT_LE(std::abs(x - target), 2.0 * lambda + 1e-12);
      // More outliers, lower sparsity; equal ratios, equal sparsity.
      for (size_t i = 0; i < d.size(); ++i) {
        for (size_t j = 0; j < d.size(); ++j) {
          if (d[i] > d[j]) {
            EXPECT_LE((*s)[i], (*s)[j]);
          }
        }
      }
      EXPECT_EQ((*s)[3], (*s)[5]);
      if (lambda > 0) {
        EXPECT_NEAR((*s)[2], *lo, 1e-15);  // most outliers: least pruned
        EXPECT_NEAR((*s)[1], *hi, 1e-15);
      }
    }
  }
  // Equal ratios: uniform.
  auto u = OwlSparsities({0.1, 0.1, 0.1}, 0.6, 0.08);
  ASSERT_TRUE(u.ok());
  for (double x : *u) EXPECT_NEAR(x, 0.6, 1e-12);
  // Out of range results are refused, naming lambda.
  auto bad = OwlSparsities({0.0, 1.0}, 0.95, 0.1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("lambda"), std::string::npos);
  EXPECT_FALSE(OwlSparsities({}, 0.5, 0.1).ok());
  EXPECT_FALSE(OwlSparsities({0.1}, 1.0, 0.1).ok());
}

TEST(Owl, OutlierRatioCountsAboveMTimesTheMean) {
  MatrixRM a(2, 3), b(1, 3);
  a << 1, 1, 1, 1, 1, 10;
  b << 1, 1, 2;
  // Mean over all 9 scores = 19 / 9; threshold at M = 2: 4.22 -> one outlier.
  EXPECT_DOUBLE_EQ(OutlierRatio({a, b}, 2.0), 1.0 / 9.0);
  // M = 0.5: threshold 1.06 -> the 10 and the 2.
  EXPECT_DOUBLE_EQ(OutlierRatio({a, b}, 0.5), 2.0 / 9.0);
  EXPECT_DOUBLE_EQ(OutlierRatio({}, 5.0), 0.0);
}

// ModelOutlierRatios equals a plain recomputation: inputs stored whole, norms
// by Eigen, scores |W| * ||x||, counted per block.
TEST(Owl, ModelOutlierRatiosMatchPlainReference) {
  ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 40;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 30;
  c.max_seq_len = 16;
  Model m = MakeRandomModel(c, 5);
  const std::vector<std::vector<int>> seqs = {{1, 2, 3, 4, 5, 6}, {7, 8, 9}};
  auto include = [](int layer, BlockLinear w) { return !(layer == 1 && w == BlockLinear::kDown); };
  auto got = ModelOutlierRatios(m, seqs, 3.0, include);
  ASSERT_TRUE(got.ok()) << got.status();

  struct Keep final : BlockObserver {
    std::array<MatrixRM, kNumBlockLinears> x;
    void OnLinearInput(int, BlockLinear w, const float* p, int64_t rows, int64_t cols) override {
      MatrixRM& dst = x[static_cast<int>(w)];
      const int64_t r0 = dst.rows();
      dst.conservativeResize(r0 + rows, cols);
      dst.bottomRows(rows) = ConstMapMatrixRM(p, rows, cols);
    }
  };
  std::vector<MatrixRM> hidden(seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s) ASSERT_TRUE(Embed(m, seqs[s], hidden[s]).ok());
  for (int l = 0; l < c.n_layers; ++l) {
    Keep keep;
    for (MatrixRM& h : hidden) ASSERT_TRUE(RunBlock(m, l, h, 0, nullptr, &keep, ThreadPool::Default()).ok());
    std::vector<double> all;
    std::vector<LinearSlot> slots = m.BlockLinears(l);
    for (int w = 0; w < kNumBlockLinears; ++w) {
      if (!include(l, static_cast<BlockLinear>(w))) continue;
      const Eigen::MatrixXd x = keep.x[w].cast<double>();
      const Eigen::MatrixXd wt = (*slots[w].slot)->DenseWeight().cast<double>();
      for (int64_t i = 0; i < wt.rows(); ++i) {
        for (int64_t j = 0; j < wt.cols(); ++j) all.push_back(std::abs(wt(i, j)) * x.col(j).norm());
      }
    }
    const double thr = 3.0 * Mean(all);
    const double want = static_cast<double>(std::count_if(all.begin(), all.end(), [&](double v) { return v > thr; })) /
                        static_cast<double>(all.size());
    EXPECT_NEAR((*got)[l], want, 2.0 / all.size()) << "layer " << l;  // fp32 vs double scores at the threshold
    EXPECT_GT((*got)[l], 0.0);
  }
  auto none = ModelOutlierRatios(m, seqs, 3.0, [](int layer, BlockLinear) { return layer != 2; });
  ASSERT_TRUE(none.ok());
  EXPECT_EQ((*none)[2], -1.0);
}

// ---- The real stories260K model through RunRecipe: uniform vs OWL. ----

const std::string kShared = SQUEEZE_SHARED_DIR;
const std::string kStories = kShared + "/models/stories260K/hf";

TEST(Owl, RealModelWandaUniformVsOwl) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories << " is absent (needs ../shared)";
  auto run = [&](const std::string& name, const std::string& args) -> nlohmann::json {
    const std::string out = test_inputs::FreshTestDir("squeeze_owl_real_", name);
    auto recipe = ParseRecipe("num_calibration_samples: 32\nmax_seq_length: 128\n"
                              "s:\n  p_modifiers:\n    WandaPruningModifier: " + args + "\n");
    EXPECT_TRUE(recipe.ok()) << recipe.status();
    if (!recipe.ok()) return nullptr;
    RunOptions o = test_inputs::PerplexityRunOptions(kStories, out, kShared + "/data/tinystories/valid.txt");
    o.calib_text_path = kShared + "/data/tinystories/train.txt";
    auto r = test_inputs::RunQuietly(*recipe, o);
    EXPECT_TRUE(r.ok()) << r.status();
    fs::remove_all(out);
    return r.ok() ? r->report : nlohmann::json();
  };
  for (double target : {0.5, 0.7}) {
    const nlohmann::json uni = run("uniform", absl::StrCat("{sparsity: ", target, "}"));
    const nlohmann::json owl =
        run("owl", absl::StrCat("{sparsity: ", target, ", sparsity_profile: owl, owl_m: 5, owl_lmbda: 0.08}"));
    ASSERT_FALSE(uni.is_null() || owl.is_null());
    const nlohmann::json& prep = owl["stages"][0]["prepared"][0];
    std::vector<double> layer_sparsity, reached;
    for (const auto& x : prep["layer_sparsity"]) layer_sparsity.push_back(x.get<double>());
    ASSERT_EQ(layer_sparsity.size(), 5u);
    EXPECT_NEAR(Mean(layer_sparsity), target, 1e-12);
    const auto [lo, hi] = std::minmax_element(layer_sparsity.begin(), layer_sparsity.end());
    EXPECT_NEAR(*hi - *lo, 0.16, 1e-12);
    // Every module of layer l reaches layer l's sparsity (rounded to whole weights).
    for (const auto& layer : owl["stages"][0]["layers"]) {
      const int l = layer["layer"].get<int>();
      for (const auto& m : layer["modules"]) EXPECT_NEAR(m["sparsity"].get<double>(), layer_sparsity[l], 0.01) << m;
    }
    const double dense = uni["perplexity"]["before"].get<double>();
    const double pu = uni["perplexity"]["after"].get<double>(), po = owl["perplexity"]["after"].get<double>();
    std::cout << "stories260K Wanda " << target << ": dense " << dense << ", uniform " << pu << ", OWL " << po
              << "; outlier ratios " << prep["outlier_ratio"].dump() << ", layer sparsity " << prep["layer_sparsity"].dump()
              << "\n";
    EXPECT_TRUE(std::isfinite(pu) && std::isfinite(po));
    EXPECT_GT(po, dense);
  }
}

}  // namespace
}  // namespace squeeze
