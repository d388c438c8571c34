// WandaPruningModifier and SparseGPTModifier run end to end through RunRecipe
// on a small synthetic model with a synthetic byte-level llama2.c tokenizer
// and calibration text written here (no ../shared needed): the reported
// sparsity is the requested one, and the artifact reloads with exactly that
// fraction of zeros in every pruned linear.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/common/run_helpers.h"
#include "tests/common/synthetic_inputs.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/runner/compressed_model.h"
#include "workers/runner/recipe.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int kLayers = 2;
constexpr int kVocab = 259;  // <unk>, <s>, </s> and the 256 byte pieces

std::string Fresh(const std::string& name) { return test_inputs::FreshTestDir("squeeze_calibrated_pruning_test_", name); }

// A small random Llama (untied head: dim 32, 4 query heads sharing 2 KV
// heads, hidden 64) with its byte-level tokenizer, as an HF directory.
const std::string& ModelDir() {
  static const std::string dir = [] {
    auto d = test_inputs::WriteSyntheticModelDir("squeeze_calibrated_pruning_test_", "model",
                                                 test_inputs::SmallGqaConfig(64, kLayers, kVocab, 64, false), 11);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : std::string();
  }();
  return dir;
}

// Deterministic English-like text, enough for 4 windows of 32 tokens.
const std::string& CalibText() {
  static const std::string path = [] {
    auto p = test_inputs::WriteCalibrationText("squeeze_calibrated_pruning_test_", 12345);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : std::string();
  }();
  return path;
}

absl::StatusOr<RunResult> RunPruning(const std::string& yaml, const std::string& out, bool with_calib = true) {
  auto recipe = ParseRecipe(yaml);
  if (!recipe.ok()) return recipe.status();
  RunOptions o;
  o.model_path = ModelDir();
  o.output_dir = out;
  if (with_calib) o.calib_text_path = CalibText();
  NullProgressSink null;
  RunControl control;
  return RunRecipe(*recipe, o, null, control);
}

double ZeroFraction(const MatrixRM& w) {
  return static_cast<double>((w.array() == 0.0f).count()) / static_cast<double>(w.size());
}

// Checks the report and the reloaded artifact of a run that pruned every
// block linear to `sparsity`; returns the modules' metrics, flat.
std::vector<nlohmann::json> CheckPrunedRun(const RunResult& r, const std::string& modifier, double sparsity) {
  std::vector<nlohmann::json> modules;
  const nlohmann::json& layers = r.report["stages"][0]["layers"];
  EXPECT_EQ(layers.size(), static_cast<size_t>(kLayers));
  for (const auto& l : layers) {
    EXPECT_EQ(l["modules"].size(), 7u);
    for (const auto& m : l["modules"]) {
      EXPECT_EQ(m["modifier"], modifier);
      // Stored sparse by default (pruning_modifier_base.h `storage`).
      EXPECT_THAT(m["kind"].get<std::string>(), ::testing::StartsWith("sparse_")) << m.dump();
      EXPECT_DOUBLE_EQ(m["sparsity"].get<double>(), sparsity) << m.dump();
      modules.push_back(m);
    }
  }

  auto original = LoadModel(ModelDir());
  auto loaded = LoadCompressedModel(r.output_dir);
  EXPECT_TRUE(original.ok()) << original.status();
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  if (!original.ok() || !loaded.ok()) return modules;
  for (int l = 0; l < kLayers; ++l) {
    for (const LinearSlot& s : loaded->BlockLinears(l)) {
      EXPECT_DOUBLE_EQ(ZeroFraction((*s.slot)->DenseWeight()), sparsity) << s.name;
    }
  }
  // lm_head is ignored by default.
  EXPECT_TRUE((loaded->lm_head->DenseWeight().array() == original->lm_head->DenseWeight().array()).all());
  KVCache cache(*loaded, 16);
  MatrixRM logits;
  EXPECT_TRUE(Forward(*loaded, std::vector<int>{1, 70, 80, 90}, 0, cache, logits).ok());
  EXPECT_TRUE(logits.allFinite());
  return modules;
}

TEST(CalibratedPruning, WandaThroughRunRecipe) {
  const std::string yaml =
      "num_calibration_samples: 4\nmax_seq_length: 32\n"
      "s:\n  p_modifiers:\n    WandaPruningModifier: {sparsity: 0.75}\n";
  auto missing = RunPruning(yaml, Fresh("wanda_nocalib"), /*with_calib=*/false);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("calibration"));

  auto r = RunPruning(yaml, Fresh("wanda"));
  ASSERT_TRUE(r.ok()) << r.status();
  for (const nlohmann::json& m : CheckPrunedRun(*r, "WandaPruningModifier", 0.75)) {
    EXPECT_GT(m["rel_error"].get<double>(), 0.0);
    // Wanda alone does not gather X^T X, so no output error is reported.
    EXPECT_FALSE(m.contains("rel_output_error")) << m.dump();
  }
}

TEST(CalibratedPruning, SparseGptThroughRunRecipeReloads) {
  struct Case {
    const char* name;
    const char* args;
    double sparsity;
  };
  for (const Case& c : {Case{"sparsegpt_unstructured", "{sparsity: 0.25, block_size: 16}", 0.25},
                        Case{"sparsegpt_2of4", "{mask_structure: \"2:4\", block_size: 16}", 0.5}}) {
    SCOPED_TRACE(c.name);
    const std::string yaml = std::string("num_calibration_samples: 4\nmax_seq_length: 32\n") +
                             "s:\n  p_modifiers:\n    SparseGPTModifier: " + c.args + "\n";
    const std::string out = Fresh(c.name);
    auto r = RunPruning(yaml, out);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const nlohmann::json& m : CheckPrunedRun(*r, "SparseGPTModifier", c.sparsity)) {
      const double e = m["rel_output_error"].get<double>();
      EXPECT_TRUE(std::isfinite(e) && e > 0.0 && e < 1.0) << m.dump();
      EXPECT_EQ(m["dead_columns"].get<double>(), 0.0) << m.dump();
    }
    if (c.sparsity == 0.5) {  // 2:4: at least 2 zeros in every 4 consecutive inputs
      auto loaded = LoadCompressedModel(out);
      ASSERT_TRUE(loaded.ok()) << loaded.status();
      for (const LinearSlot& s : loaded->BlockLinears(0)) {
        const MatrixRM w = (*s.slot)->DenseWeight();
        for (int64_t k = 0; k < w.size(); k += 4) {
          int zeros = 0;
          for (int j = 0; j < 4; ++j) zeros += w.data()[k + j] == 0.0f;
          ASSERT_EQ(zeros, 2) << s.name << " at " << k;
        }
      }
    }
  }
}

// OWL through RunRecipe: the stage report keeps the per-layer allocation
// (mean = the target), each layer's modules reach their layer's sparsity, and
// bad combinations are refused at parse time naming the argument.
TEST(CalibratedPruning, OwlProfileThroughRunRecipe) {
  const std::string yaml =
      "num_calibration_samples: 4\nmax_seq_length: 32\n"
      "s:\n  p_modifiers:\n    WandaPruningModifier: {sparsity: 0.5, sparsity_profile: owl, owl_m: 3, owl_lmbda: 0.1}\n";
  auto r = RunPruning(yaml, Fresh("owl"));
  ASSERT_TRUE(r.ok()) << r.status();
  const nlohmann::json& prep = r->report["stages"][0]["prepared"][0];
  ASSERT_TRUE(prep.is_object()) << r->report["stages"][0].dump();
  EXPECT_EQ(prep["sparsity_profile"], "owl");
  ASSERT_EQ(prep["layer_sparsity"].size(), static_cast<size_t>(kLayers));
  const double s0 = prep["layer_sparsity"][0].get<double>(), s1 = prep["layer_sparsity"][1].get<double>();
  EXPECT_NEAR((s0 + s1) / 2, 0.5, 1e-12);
  EXPECT_NEAR(std::abs(s0 - s1), 0.2, 1e-12);  // two layers: the spread is exactly 2 * lambda
  for (const auto& layer : r->report["stages"][0]["layers"]) {
    const double want = prep["layer_sparsity"][layer["layer"].get<int>()].get<double>();
    for (const auto& m : layer["modules"]) {
      const double in = 32;  // rows are ranked per row (Wanda): round(want * in) / in zeros per row
      EXPECT_NEAR(m["sparsity"].get<double>(), want, 0.5 / in + 1e-12) << m.dump();
    }
  }
  // Magnitude with OWL needs calibration data; without OWL it does not.
  auto mag = RunPruning("s:\n  p_modifiers:\n    MagnitudePruningModifier: {sparsity_profile: owl}\n",
                        Fresh("owl_mag_nocalib"), /*with_calib=*/false);
  EXPECT_EQ(mag.status().code(), absl::StatusCode::kFailedPrecondition) << mag.status();
  struct Bad {
    const char* args;
    const char* names;
  };
  for (const Bad& b : {Bad{"{sparsity_profile: owl, mask_structure: \"2:4\"}", "p_modifiers.SparseGPTModifier.sparsity_profile"},
                       Bad{"{owl_m: 5}", "p_modifiers.SparseGPTModifier.owl_m"},
                       Bad{"{sparsity_profile: owl, owl_lmbda: 0.3}", "p_modifiers.SparseGPTModifier.owl_lmbda"},
                       Bad{"{sparsity_profile: owl, owl_m: 0}", "p_modifiers.SparseGPTModifier.owl_m"},
                       Bad{"{sparsity_profile: wild}", "p_modifiers.SparseGPTModifier.sparsity_profile"}}) {
    auto rec = ParseRecipe(std::string("s:\n  p_modifiers:\n    SparseGPTModifier: ") + b.args + "\n");
    ASSERT_FALSE(rec.ok()) << b.args;
    EXPECT_EQ(rec.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(rec.status().message()), HasSubstr(b.names));
  }
}

// An N:M mask whose M does not divide a target's input width is refused
// before any work, naming the YAML path and the module.
TEST(CalibratedPruning, NmMaskWidthCheckedAgainstTheModel) {
  ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 172;  // stories260K's MLP width: 172 % 8 == 4
  c.n_layers = 2;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.vocab_size = 512;
  c.max_seq_len = 64;
  c.tie_word_embeddings = true;
  auto bad = ParseRecipe("s:\n  p_modifiers:\n    SparseGPTModifier: {mask_structure: \"4:8\"}\n");
  ASSERT_TRUE(bad.ok()) << bad.status();
  absl::Status s = CheckRecipeForModel(*bad, c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("s.p_modifiers.SparseGPTModifier.mask_structure"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("model.layers.0.mlp.down_proj has 172 inputs"));
  auto ignored = ParseRecipe(
      "s:\n  p_modifiers:\n    SparseGPTModifier: {mask_structure: \"4:8\", ignore: [lm_head, \"re:.*down_proj$\"]}\n");
  ASSERT_TRUE(ignored.ok());
  EXPECT_TRUE(CheckRecipeForModel(*ignored, c).ok());
  auto two_four = ParseRecipe("s:\n  p_modifiers:\n    WandaPruningModifier: {mask_structure: \"2:4\"}\n");
  ASSERT_TRUE(two_four.ok());
  EXPECT_TRUE(CheckRecipeForModel(*two_four, c).ok());
  // Per-layer widths: layer 1 pruned to 170 channels breaks 2:4 there.
  c.layer_n_heads = {8, 6};
  c.layer_n_kv_heads = {4, 3};
  c.layer_hidden_dim = {172, 170};
  s = CheckRecipeForModel(*two_four, c);
  EXPECT_THAT(std::string(s.message()), HasSubstr("model.layers.1.mlp.down_proj has 170 inputs"));

  // Through RunRecipe: refused before anything is written.
  const std::string out = Fresh("nm_width");
  auto r = RunPruning("num_calibration_samples: 4\nmax_seq_length: 32\n"
                      "s:\n  p_modifiers:\n    WandaPruningModifier: {mask_structure: \"2:24\"}\n",
                      out);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("model.layers.0.self_attn.q_proj has 32 inputs"));
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
}

// StructuredPruningModifier through RunRecipe with per-layer targets: only
// layer 0's heads and layer 1's channels shrink, config.json records the
// per-layer widths, and the artifact reloads.
TEST(CalibratedPruning, StructuredPerLayerTargetsReload) {
  const std::string yaml =
      "num_calibration_samples: 4\nmax_seq_length: 32\n"
      "s:\n  p_modifiers:\n    StructuredPruningModifier:\n      pruning_ratio: 0.5\n"
      "      targets: [\"re:model\\\\.layers\\\\.0\\\\.self_attn\\\\..*\", \"re:model\\\\.layers\\\\.1\\\\.mlp\\\\..*\"]\n";
  const std::string out = Fresh("structured");
  auto r = RunPruning(yaml, out);
  ASSERT_TRUE(r.ok()) << r.status();
  const nlohmann::json& layers = r->report["stages"][0]["layers"];
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0]["modules"].size(), 4u);  // q, k, v, o
  EXPECT_EQ(layers[1]["modules"].size(), 3u);  // gate, up, down
  for (const auto& m : layers[0]["modules"]) EXPECT_DOUBLE_EQ(m["removed_fraction"].get<double>(), 0.5) << m.dump();
  for (const auto& m : layers[1]["modules"]) EXPECT_DOUBLE_EQ(m["removed_fraction"].get<double>(), 0.5) << m.dump();
  auto cfg = ReadFileToString(out + "/config.json");
  ASSERT_TRUE(cfg.ok());
  const nlohmann::json j = nlohmann::json::parse(*cfg);
  EXPECT_EQ(j["squeeze_layer_widths"]["num_attention_heads"], nlohmann::json({2, 4}));
  EXPECT_EQ(j["squeeze_layer_widths"]["num_key_value_heads"], nlohmann::json({1, 2}));
  EXPECT_EQ(j["squeeze_layer_widths"]["intermediate_size"], nlohmann::json({64, 32}));
  auto loaded = LoadCompressedModel(out);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->blocks[0].q_proj->out_features(), 16);
  EXPECT_EQ(loaded->blocks[1].down_proj->in_features(), 32);
  EXPECT_LT(r->report["size"]["after"]["params"].get<double>(), r->report["size"]["before"]["params"].get<double>());
  KVCache cache(*loaded, 16);
  MatrixRM logits;
  ASSERT_TRUE(Forward(*loaded, std::vector<int>{1, 70, 80, 90}, 0, cache, logits).ok());
  EXPECT_TRUE(logits.allFinite());
  // Bad arguments name the YAML path.
  auto bad = ParseRecipe("s:\n  p_modifiers:\n    StructuredPruningModifier: {importance: fisher}\n");
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("s.p_modifiers.StructuredPruningModifier.importance"));
  bad = ParseRecipe("s:\n  p_modifiers:\n    StructuredPruningModifier: {pruning_ratio: 1.0}\n");
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("s.p_modifiers.StructuredPruningModifier.pruning_ratio"));
}

}  // namespace
}  // namespace squeeze
