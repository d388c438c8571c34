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

std::string Fresh(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/squeeze_calibrated_pruning_test_" + name;
  fs::remove_all(d);
  fs::remove_all(d + ".work");
  fs::remove_all(d + ".partial");
  return d;
}

// A small random Llama (untied head) with its tokenizer, as an HF directory.
const std::string& ModelDir() {
  static const std::string dir = [] {
    ModelConfig c;
    c.dim = 32;
    c.hidden_dim = 64;
    c.n_layers = kLayers;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.vocab_size = kVocab;
    c.max_seq_len = 64;
    c.tie_word_embeddings = false;
    const std::string d = Fresh("model");
    absl::Status s = SaveModel(MakeRandomModel(c, 11), d);
    EXPECT_TRUE(s.ok()) << s;
    s = WriteFileAtomically(d + "/tokenizer.bin", test_inputs::ByteTokenizerBin());
    EXPECT_TRUE(s.ok()) << s;
    return d;
  }();
  return dir;
}

// Deterministic English-like text, enough for 4 windows of 32 tokens.
const std::string& CalibText() {
  static const std::string path = [] {
    const std::string text = test_inputs::WordSalad(12345);
    const std::string p = ::testing::TempDir() + "/squeeze_calibrated_pruning_test_calib.txt";
    absl::Status s = WriteFileAtomically(p, text);
    EXPECT_TRUE(s.ok()) << s;
    return p;
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
      EXPECT_EQ(m["kind"], "dense_f32");
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

}  // namespace
}  // namespace squeeze
