// Issue 4 through RunRecipe on a small synthetic model (and on stories260K
// when ../shared is there):
//   - layer removal from a recipe (StructuredPruningModifier remove_layers):
//     the block-influence choice, the artifact's config.json
//     "squeeze_source_layers", and our engine loading the smaller model;
//   - stop / resume inside structured-pruning stages (narrower modules,
//     removed layers, Taylor scores) giving byte-identical artifacts;
//   - sparse storage kinds of pruned linears (bitmask, N:M) in artifacts,
//     against dense storage of the same pruned weights.
#include <algorithm>
#include <cmath>
#include <map>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/common/run_helpers.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/methods/prune/sparse_linear.h"
#include "workers/runner/compressed_model.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using test_inputs::DirContents;

constexpr char kPrefix[] = "squeeze_structured_resume_test_";
constexpr int kLayers = 3;

std::string Fresh(const std::string& name) { return test_inputs::FreshTestDir(kPrefix, name); }

const std::string& ModelDir() {
  static const std::string dir = [] {
    auto d = test_inputs::WriteSyntheticModelDir(
        kPrefix, "model", test_inputs::SmallGqaConfig(64, kLayers, 259, 64, /*tied=*/false), 21);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : std::string();
  }();
  return dir;
}

const std::string& Calib() {
  static const std::string path = [] {
    auto p = test_inputs::WriteCalibrationText(kPrefix, 4242);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : std::string();
  }();
  return path;
}

RunOptions Options(const std::string& out) {
  RunOptions o;
  o.model_path = ModelDir();
  o.output_dir = out;
  o.calib_text_path = Calib();
  return o;
}

const std::string kCalib = "num_calibration_samples: 4\nmax_seq_length: 32\n";

MatrixRM Logits(const Model& m, const std::vector<int>& tokens) {
  KVCache cache(m, static_cast<int>(tokens.size()));
  MatrixRM logits;
  EXPECT_TRUE(Forward(m, tokens, 0, cache, logits).ok());
  return logits;
}

TEST(LayerRemoval, RemoveLayersFromARecipeGivesASmallerModelThatLoads) {
  const std::string out = Fresh("remove1");
  auto r = test_inputs::RunYaml(
      kCalib + "s:\n  d_modifiers:\n    StructuredPruningModifier: {remove_layers: 1, pruning_ratio: 0}\n",
      Options(out));
  ASSERT_TRUE(r.ok()) << r.status();
  const nlohmann::json& stage = r->report["stages"][0];
  ASSERT_TRUE(stage.contains("layer_removal")) << stage.dump();
  const nlohmann::json& removal = stage["layer_removal"][0];
  const std::vector<double> bi = removal["details"]["block_influence"].get<std::vector<double>>();
  ASSERT_EQ(bi.size(), static_cast<size_t>(kLayers));
  const int lowest = static_cast<int>(std::min_element(bi.begin(), bi.end()) - bi.begin());
  EXPECT_EQ(removal["removed_layers"], nlohmann::json::array({lowest}));
  EXPECT_EQ(removal["n_layers_before"], kLayers);
  EXPECT_EQ(removal["n_layers_after"], kLayers - 1);
  EXPECT_EQ(stage["n_layers"], kLayers - 1);  // the stage walked the remaining blocks
  std::vector<int> kept;
  for (int l = 0; l < kLayers; ++l) {
    if (l != lowest) kept.push_back(l);
  }
  EXPECT_EQ(removal["kept_source_layers"], nlohmann::json(kept));
  for (double b : bi) EXPECT_TRUE(b > 0.0 && b < 2.0) << b;

  // config.json says which layers remain; our engine loads the smaller model,
  // whose blocks are the input's kept blocks, bit for bit.
  auto config = ReadFileToString(out + "/config.json");
  ASSERT_TRUE(config.ok());
  const nlohmann::json cj = nlohmann::json::parse(*config);
  EXPECT_EQ(cj["num_hidden_layers"], kLayers - 1);
  EXPECT_EQ(cj["squeeze_source_layers"], nlohmann::json(kept));
  auto original = LoadModel(ModelDir());
  auto loaded = LoadCompressedModel(out);
  ASSERT_TRUE(original.ok() && loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->blocks.size(), kept.size());
  EXPECT_EQ(loaded->config.source_layers, kept);
  for (size_t i = 0; i < kept.size(); ++i) {
    std::vector<LinearSlot> a = original->BlockLinears(kept[i]), b = loaded->BlockLinears(static_cast<int>(i));
    for (size_t k = 0; k < a.size(); ++k) {
      EXPECT_TRUE(((*a[k].slot)->DenseWeight().array() == (*b[k].slot)->DenseWeight().array()).all()) << b[k].name;
    }
  }
  EXPECT_LT(r->report["size"]["after"]["params"].get<double>(), r->report["size"]["before"]["params"].get<double>());
  EXPECT_TRUE(Logits(*loaded, {1, 70, 80, 90}).allFinite());

  // Removing every layer, or a negative count, is refused naming the field.
  auto all = test_inputs::RunYaml(
      kCalib + "s:\n  d_modifiers:\n    StructuredPruningModifier: {remove_layers: 3, pruning_ratio: 0}\n",
      Options(Fresh("remove_all")));
  EXPECT_EQ(all.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(all.status().message()), HasSubstr("would leave no layer"));
  auto neg = test_inputs::RunYaml(
      kCalib + "s:\n  d_modifiers:\n    StructuredPruningModifier: {remove_layers: -1}\n", Options(Fresh("neg")));
  EXPECT_EQ(neg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(neg.status().message()), HasSubstr("remove_layers"));
}

// Stop / resume at several points of recipes with structured pruning (narrower
// modules in the checkpoint), layer removal (renumbered modules) and Taylor
// importance (prepared scores): the artifacts equal an uninterrupted run's.
TEST(StructuredResume, StopInsideStructuredStagesIsByteIdentical) {
  struct Case {
    const char* name;
    std::string yaml;
    int stop_after;
  };
  const std::vector<Case> cases = {
      {"heads_channels", kCalib + "s:\n  p_modifiers:\n    StructuredPruningModifier: {pruning_ratio: 0.25}\n", 1},
      {"taylor", kCalib + "s:\n  p_modifiers:\n    StructuredPruningModifier: {pruning_ratio: 0.25, importance: taylor}\n", 2},
      {"wanda_then_remove_and_prune",
       kCalib + "a:\n  p_modifiers:\n    WandaPruningModifier: {sparsity: 0.5}\n"
                "b:\n  p_modifiers:\n    StructuredPruningModifier: {remove_layers: 1, pruning_ratio: 0.25}\n",
       4},
      {"remove_then_prune_stop_at_first_layer",
       kCalib + "b:\n  p_modifiers:\n    StructuredPruningModifier: {remove_layers: 1, pruning_ratio: 0.25}\n", 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string full = Fresh(std::string(c.name) + "_full"), resumed = Fresh(std::string(c.name) + "_resumed");
    absl::Status s = test_inputs::RunFullAndResumed(c.yaml, Options(""), full, resumed, c.stop_after);
    ASSERT_TRUE(s.ok()) << s;
    const auto a = DirContents(full), b = DirContents(resumed);
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, bytes] : a) {
      EXPECT_TRUE(b.count(name) && b.at(name) == bytes) << name << " differs after stop / resume";
    }
    auto loaded = LoadCompressedModel(resumed);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_TRUE(Logits(*loaded, {1, 70, 80}).allFinite());
  }
}

// A checkpoint whose modules do not fit together (here: narrower gate / up
// projections beside the input model's wide down_proj) is refused as a whole.
TEST(StructuredResume, InconsistentNarrowCheckpointIsRefused) {
  const std::string yaml = kCalib + "s:\n  p_modifiers:\n    StructuredPruningModifier: {pruning_ratio: 0.25}\n";
  RunOptions o = Options(Fresh("broken"));
  o.work_dir = Fresh("broken_work");
  auto recipe = ParseRecipe(yaml);
  ASSERT_TRUE(recipe.ok());
  RunControl stop;
  test_inputs::StopAfter sink(stop, 1);
  ASSERT_TRUE(IsStoppedWithCheckpoint(RunRecipe(*recipe, o, sink, stop).status()));
  // Drop down_proj from the checkpoint's module list: the narrower gate / up
  // no longer match the (wide) down_proj of the input model.
  const std::string jpath = o.work_dir + "/checkpoint.json";
  auto text = ReadFileToString(jpath);
  ASSERT_TRUE(text.ok());
  nlohmann::json j = nlohmann::json::parse(*text);
  nlohmann::json modules = nlohmann::json::array();
  for (const auto& m : j["modules"]) {
    if (m.get<std::string>().find("down_proj") == std::string::npos) modules.push_back(m);
  }
  ASSERT_LT(modules.size(), j["modules"].size());
  j["modules"] = modules;
  ASSERT_TRUE(WriteFileAtomically(jpath, j.dump()).ok());
  auto r = test_inputs::RunQuietly(*recipe, o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("do not fit the model"));
}

// Pruned linears are stored sparse by default: bitmask for unstructured, N:M
// values + indices for 2:4; `storage: dense` keeps the old dense kind. The
// weights are the same bits either way, the file is smaller, and a sparse
// run stops and resumes byte-identically.
TEST(SparseStorage, PrunedArtifactsStaySparseAndLoad) {
  struct Case {
    const char* name;
    const char* args;
    const char* kind;
  };
  std::map<std::string, std::string> dirs;
  for (const Case& c : {Case{"unstructured_sparse", "{sparsity: 0.5}", "sparse_bitmask"},
                        Case{"unstructured_dense", "{sparsity: 0.5, storage: dense}", "dense_f32"},
                        Case{"nm_sparse", "{mask_structure: \"2:4\"}", "sparse_2of4"},
                        Case{"nm_bitmask", "{mask_structure: \"2:4\", storage: bitmask}", "sparse_bitmask"},
                        Case{"nm_dense", "{mask_structure: \"2:4\", storage: dense}", "dense_f32"}}) {
    SCOPED_TRACE(c.name);
    const std::string out = Fresh(c.name);
    auto r = test_inputs::RunYaml(kCalib + "s:\n  p_modifiers:\n    WandaPruningModifier: " + c.args + "\n",
                                  Options(out));
    ASSERT_TRUE(r.ok()) << r.status();
    for (const auto& l : r->report["stages"][0]["layers"]) {
      for (const auto& m : l["modules"]) EXPECT_EQ(m["kind"], c.kind) << m.dump();
    }
    auto loaded = LoadCompressedModel(out);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    for (int l = 0; l < kLayers; ++l) {
      for (const LinearSlot& s : loaded->BlockLinears(l)) EXPECT_EQ((*s.slot)->kind(), c.kind) << s.name;
    }
    dirs[c.name] = out;
  }
  auto same_weights = [](const std::string& a, const std::string& b) {
    auto ma = LoadCompressedModel(a), mb = LoadCompressedModel(b);
    ASSERT_TRUE(ma.ok() && mb.ok());
    for (int l = 0; l < kLayers; ++l) {
      std::vector<LinearSlot> x = ma->BlockLinears(l), y = mb->BlockLinears(l);
      for (size_t k = 0; k < x.size(); ++k) {
        EXPECT_TRUE(((*x[k].slot)->DenseWeight().array() == (*y[k].slot)->DenseWeight().array()).all()) << x[k].name;
      }
    }
    const MatrixRM la = Logits(*ma, {1, 70, 80, 90, 100}), lb = Logits(*mb, {1, 70, 80, 90, 100});
    EXPECT_LT((la - lb).cwiseAbs().maxCoeff(), 1e-4 * (1.0 + lb.cwiseAbs().maxCoeff()));
  };
  same_weights(dirs["unstructured_sparse"], dirs["unstructured_dense"]);
  same_weights(dirs["nm_sparse"], dirs["nm_dense"]);
  same_weights(dirs["nm_bitmask"], dirs["nm_dense"]);
  auto bytes = [](const std::string& dir) { return fs::file_size(dir + "/model.safetensors"); };
  EXPECT_LT(bytes(dirs["unstructured_sparse"]), bytes(dirs["unstructured_dense"]));
  EXPECT_LT(bytes(dirs["nm_sparse"]), bytes(dirs["nm_dense"]));
  EXPECT_LT(bytes(dirs["nm_bitmask"]), bytes(dirs["nm_dense"]));

  auto bad = test_inputs::RunYaml(kCalib + "s:\n  p_modifiers:\n    WandaPruningModifier: {storage: csr}\n",
                                  Options(Fresh("bad_storage")));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("storage"));

  // Resume through a checkpoint holding sparse layers.
  const std::string full = Fresh("sparse_full"), resumed = Fresh("sparse_resumed");
  absl::Status s = test_inputs::RunFullAndResumed(
      kCalib + "s:\n  p_modifiers:\n    SparseGPTModifier: {mask_structure: \"2:4\", block_size: 16}\n", Options(""),
      full, resumed, 1);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(DirContents(full) == DirContents(resumed));
}

// stories260K (when ../shared is present): figures of layer removal,
// structured pruning by each importance (incl. Taylor) and the bytes on disk
// of each sparse storage, with perplexity on the valid text.
TEST(StructuredResume, Stories260KLayerRemovalTaylorAndSparseBytes) {
  const test_inputs::SharedStories st = test_inputs::Stories260K(SQUEEZE_SHARED_DIR);
  if (!st.ok) GTEST_SKIP() << st.missing;
  auto run = [&](const std::string& name, const std::string& body) -> absl::StatusOr<RunResult> {
    RunOptions o = test_inputs::PerplexityRunOptions(st.model, Fresh("stories_" + name), st.valid);
    o.calib_text_path = st.train;
    return test_inputs::RunYaml("num_calibration_samples: 16\nmax_seq_length: 128\ns:\n  m_modifiers:\n    " + body + "\n", o);
  };
  struct Row {
    std::string name, body;
  };
  std::map<std::string, double> ppl;
  std::map<std::string, nlohmann::json> rep;
  double dense = 0;
  for (const Row& row : std::vector<Row>{
           {"remove1", "StructuredPruningModifier: {remove_layers: 1, pruning_ratio: 0}"},
           {"struct25_wanda", "StructuredPruningModifier: {pruning_ratio: 0.25}"},
           {"struct25_taylor", "StructuredPruningModifier: {pruning_ratio: 0.25, importance: taylor}"},
           {"struct25_magnitude", "StructuredPruningModifier: {pruning_ratio: 0.25, importance: magnitude}"},
           {"wanda50_sparse", "WandaPruningModifier: {sparsity: 0.5}"},
           {"wanda50_dense", "WandaPruningModifier: {sparsity: 0.5, storage: dense}"},
           {"wanda24_sparse", "WandaPruningModifier: {mask_structure: \"2:4\"}"},
           {"wanda24_bitmask", "WandaPruningModifier: {mask_structure: \"2:4\", storage: bitmask}"},
           {"wanda24_dense", "WandaPruningModifier: {mask_structure: \"2:4\", storage: dense}"},
           {"lowrank_svdllm_0.45", "LowRankModifier: {rank_ratio: 0.45, method: svd_llm}"}}) {
    auto r = run(row.name, row.body);
    ASSERT_TRUE(r.ok()) << row.name << ": " << r.status();
    dense = r->report["perplexity"]["before"].get<double>();
    ppl[row.name] = r->report["perplexity"]["after"].get<double>();
    rep[row.name] = r->report;
    rep[row.name]["output_dir"] = r->output_dir;
    const nlohmann::json& size = r->report["size"];
    std::printf("stories260K %-20s ppl %8.3f (dense %.3f)  params %lld -> %lld  model.safetensors %lld bytes\n",
                row.name.c_str(), ppl[row.name], dense, size["before"]["params"].get<long long>(),
                size["after"]["params"].get<long long>(),
                r->report["files_bytes"]["model.safetensors"].get<long long>());
    EXPECT_TRUE(std::isfinite(ppl[row.name]) && ppl[row.name] > dense) << row.name;
    // FLOPs per token (analytic) and measured decode latency (batch 1, p50),
    // dense and compressed measured in the same run.
    const nlohmann::json& cost = r->report["cost"];
    const double f0 = cost["dense"]["flops_per_token"].get<double>(), f1 = cost["compressed"]["flops_per_token"].get<double>();
    double l0 = -1, l1 = -1;
    if (cost.contains("latency")) {
      l0 = cost["latency"]["dense"]["points"][0]["decode_ms_per_token_p50"].get<double>();
      l1 = cost["latency"]["compressed"]["points"][0]["decode_ms_per_token_p50"].get<double>();
    }
    std::printf("    flops/token %.0f -> %.0f (%+.1f%%), decode ms/token p50 %.4f -> %.4f (%+.1f%%)\n", f0, f1,
                100.0 * (f1 / f0 - 1.0), l0, l1, 100.0 * (l1 / l0 - 1.0));
    // (Low-rank's FLOPs are not counted as factorized by eval/cost.h yet:
    // FactorizedLinear::NonZeroWeights is the dense count; see the issue note.)
    if (row.name.rfind("struct", 0) == 0 || row.name.rfind("remove", 0) == 0) {
      EXPECT_LT(f1, f0) << row.name;
    }
  }
  // Layer removal: one of 5 layers gone, the model loads with 4.
  EXPECT_EQ(rep["remove1"]["stages"][0]["layer_removal"][0]["n_layers_after"], 4);
  auto loaded = LoadCompressedModel(rep["remove1"]["output_dir"].get<std::string>());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->blocks.size(), 4u);
  // Taylor's scores are data-driven yet, measured here, prune worse than
  // Wanda-sp (29.6 vs 17.6 at 25%): a true result on a 260K model, not asserted.
  // Storage changes bytes, not the model: perplexities agree to fp32
  // summation error, and the sparse files are smaller.
  EXPECT_NEAR(ppl["wanda50_sparse"], ppl["wanda50_dense"], 1e-4 * ppl["wanda50_dense"]);
  EXPECT_NEAR(ppl["wanda24_sparse"], ppl["wanda24_dense"], 1e-4 * ppl["wanda24_dense"]);
  EXPECT_NEAR(ppl["wanda24_bitmask"], ppl["wanda24_dense"], 1e-4 * ppl["wanda24_dense"]);
  auto file = [&](const std::string& n) { return rep[n]["files_bytes"]["model.safetensors"].get<int64_t>(); };
  EXPECT_LT(file("wanda50_sparse"), file("wanda50_dense"));
  EXPECT_LT(file("wanda24_sparse"), file("wanda24_dense"));
}

}  // namespace
}  // namespace squeeze
