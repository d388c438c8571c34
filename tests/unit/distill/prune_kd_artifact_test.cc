// A real prune -> KD job on stories260K (RunRecipe, as `squeeze run` and the
// worker run it): the artifact keeps every pruned layer's sparse storage kind
// and mask exactly as the prune-only job wrote them, and its report carries
// the training stage's loss curve (report.json) and plot (SVG in report.md).
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "tests/common/run_helpers.h"
#include "tests/common/temp_dirs.h"
#include "workers/engine/core/file_util.h"
#include "workers/runner/compressed_model.h"

namespace squeeze {
namespace {

const std::string kShared = SQUEEZE_SHARED_DIR;

// Unstructured 50% on attention (bitmask storage), 2:4 on the MLP (N:M).
constexpr char kPrune[] =
    "prune_attn:\n  a_modifiers:\n    MagnitudePruningModifier: {sparsity: 0.5, targets: ['re:.*self_attn.*']}\n"
    "prune_mlp:\n  m_modifiers:\n    MagnitudePruningModifier: {mask_structure: '2:4', targets: ['re:.*mlp.*']}\n";
constexpr char kDistill[] =
    "recover:\n  d_modifiers:\n    DistillationModifier: {max_bytes: 60000, steps: 8, batch_size: 2, seq_len: 32,"
    " lr: 0.002, min_lr: 0.0002, warmup_steps: 2}\n";

TEST(PruneKdArtifact, SparseKindsMasksAndLossCurveSurviveKd) {
  const test_inputs::SharedStories in = test_inputs::Stories260K(kShared);
  if (!in.ok) GTEST_SKIP() << in.missing;
  RunOptions o = test_inputs::PerplexityRunOptions(in.model, test_inputs::FreshTestDir("prune_kd_", "pruned"), in.valid);
  o.calib_text_path = in.train;
  o.threads = 2;
  o.report.latency = false;
  o.report.agreement = false;
  auto pruned = test_inputs::RunYaml(kPrune, o);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  o.output_dir = test_inputs::FreshTestDir("prune_kd_", "kd");
  auto kd = test_inputs::RunYaml(std::string(kPrune) + kDistill, o);
  ASSERT_TRUE(kd.ok()) << kd.status();

  auto a = LoadCompressedModel(pruned->output_dir);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = LoadCompressedModel(kd->output_dir);
  ASSERT_TRUE(b.ok()) << b.status();
  std::vector<LinearSlot> la = a->AllLinears(), lb = b->AllLinears();
  ASSERT_EQ(la.size(), lb.size());
  int bitmask = 0, nm = 0, trained = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    const LinearLayer& x = **la[i].slot;
    const LinearLayer& y = **lb[i].slot;
    ASSERT_EQ(la[i].name, lb[i].name);
    EXPECT_EQ(y.kind(), x.kind()) << la[i].name;
    bitmask += x.kind() == "sparse_bitmask";
    nm += x.kind() == "sparse_2of4";
    EXPECT_EQ(y.StorageBytes(), x.StorageBytes()) << la[i].name;
    const MatrixRM wx = x.DenseWeight(), wy = y.DenseWeight();
    int64_t mask_diff = 0;
    for (int64_t k = 0; k < wx.size(); ++k) mask_diff += (wx.data()[k] != 0.0f) != (wy.data()[k] != 0.0f);
    EXPECT_EQ(mask_diff, 0) << la[i].name;
    trained += !(wx == wy);
  }
  EXPECT_EQ(bitmask, 4 * 5);  // q, k, v, o of 5 layers
  EXPECT_EQ(nm, 3 * 5);       // gate, up, down
  EXPECT_EQ(trained, static_cast<int>(la.size()));

  // report.json: stages[2].training with one curve point per step (8 <= 200).
  auto text = ReadFileToString(kd->output_dir + "/report.json");
  ASSERT_TRUE(text.ok());
  const nlohmann::json report = nlohmann::json::parse(*text);
  ASSERT_EQ(report["stages"].size(), 3u);
  EXPECT_FALSE(report["stages"][0].contains("training"));
  const nlohmann::json& t = report["stages"][2]["training"];
  ASSERT_TRUE(t.is_object()) << report["stages"][2].dump();
  EXPECT_EQ(t["loss"], "forward_kl");
  EXPECT_EQ(t["steps"], 8);
  EXPECT_EQ(t["tokens_per_step"], 64);
  const nlohmann::json& curve = t["loss_curve"];
  ASSERT_EQ(curve.size(), 8u);
  for (size_t s = 0; s < curve.size(); ++s) {
    EXPECT_EQ(curve[s]["step"], static_cast<int>(s) + 1);
    EXPECT_GT(curve[s]["loss"].get<double>(), 0);
    EXPECT_GT(curve[s]["lr"].get<double>(), 0);
  }
  EXPECT_DOUBLE_EQ(curve[1]["lr"].get<double>(), 0.002);  // end of warmup: the peak
  EXPECT_LT(curve[7]["lr"].get<double>(), curve[2]["lr"].get<double>());  // cosine decay
  // The plot and its link.
  auto svg = ReadFileToString(kd->output_dir + "/loss_curve_2.svg");
  ASSERT_TRUE(svg.ok()) << svg.status();
  EXPECT_NE(svg->find("<polyline class=\"loss\" data-points=\"8\""), std::string::npos) << *svg;
  auto md = ReadFileToString(kd->output_dir + "/report.md");
  ASSERT_TRUE(md.ok());
  EXPECT_NE(md->find("![loss curve](loss_curve_2.svg)"), std::string::npos) << *md;
  EXPECT_NE(md->find("## Training"), std::string::npos);
  // The prune-only job has no training section.
  EXPECT_FALSE(std::filesystem::exists(pruned->output_dir + "/loss_curve_0.svg"));
}

}  // namespace
}  // namespace squeeze
