#include "workers/runner/stage_runner.h"

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/common/run_helpers.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/rtn.h"
#include "workers/runner/compressed_model.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kShared = SQUEEZE_SHARED_DIR;
const std::string kStories = kShared + "/models/stories260K/hf";

std::string Fresh(const std::string& name) { return test_inputs::FreshTestDir("squeeze_runner_test_", name); }

Recipe MustParse(const std::string& yaml) {
  auto r = ParseRecipe(yaml);
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

// A small random Llama (untied head, so lm_head exists) saved as an HF dir.
std::string SyntheticModelDir() {
  static const std::string dir = [] {
    ModelConfig c;
    c.dim = 32;
    c.hidden_dim = 64;
    c.n_layers = 3;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.vocab_size = 40;
    c.max_seq_len = 64;
    c.tie_word_embeddings = false;
    const std::string d = Fresh("synthetic_model");
    Model m = MakeRandomModel(c, 5);
    absl::Status s = SaveModel(m, d);
    EXPECT_TRUE(s.ok()) << s;
    return d;
  }();
  return dir;
}

class Recorder final : public ProgressSink {
 public:
  void OnProgress(const ProgressEvent& e) override { events.push_back(e); }
  std::vector<ProgressEvent> events;
};

using test_inputs::DirContents;

constexpr char kTwoStage[] = R"(
prune_stage:
  pruning_modifiers:
    MagnitudePruningModifier: {mask_structure: "2:4"}
quant_stage:
  quant_modifiers:
    QuantizationModifier:
      ignore: [lm_head, "re:.*down_proj"]
      config_groups:
        g0: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 16}}
)";

TEST(StageRunner, PrunesAndQuantizesASyntheticModel) {
  const std::string out = Fresh("two_stage");
  RunOptions o;
  o.model_path = SyntheticModelDir();
  o.output_dir = out;
  Recorder rec;
  RunControl control;
  auto r = RunRecipe(MustParse(kTwoStage), o, rec, control);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->resumed);
  for (const char* f : {"config.json", "model.safetensors", "recipe.yaml", "report.json"}) {
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  }
  EXPECT_FALSE(fs::exists(out + ".work/checkpoint.json"));

  // Progress: one "layer" event per block per stage, i counting up to n.
  int layer_events = 0;
  for (const ProgressEvent& e : rec.events) {
    if (e.unit != "layer") continue;
    ++layer_events;
    EXPECT_EQ(e.n, 3);
    EXPECT_TRUE(e.metrics.count("sparsity")) << e.message;
  }
  EXPECT_EQ(layer_events, 6);

  auto original = LoadModel(SyntheticModelDir());
  auto loaded = LoadCompressedModel(out);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  for (int l = 0; l < 3; ++l) {
    std::vector<LinearSlot> orig = original->BlockLinears(l);
    std::vector<LinearSlot> got = loaded->BlockLinears(l);
    for (size_t i = 0; i < got.size(); ++i) {
      const MatrixRM w = (*got[i].slot)->DenseWeight();
      // 2:4 survived quantization (zeros stay exactly zero under RTN).
      for (int64_t k = 0; k < w.size(); k += 4) {
        int zeros = 0;
        for (int j = 0; j < 4; ++j) zeros += w.data()[k + j] == 0.0f;
        ASSERT_GE(zeros, 2) << got[i].name;
      }
      const bool down = got[i].name.find("down_proj") != std::string::npos;
      // down_proj keeps the pruning's sparse N:M storage (pruning_modifier_base.h `storage`).
      EXPECT_EQ((*got[i].slot)->kind(), down ? "sparse_2of4" : "packed_int_w4_asym_g16") << got[i].name;
      if (!down) {
        // The stored weight is RTN of the 2:4-pruned original.
        const MatrixRM orig_w = (*orig[i].slot)->DenseWeight();
        auto pruned_ref = orig_w;
        for (int64_t k = 0; k < orig_w.size(); ++k) pruned_ref.data()[k] = w.data()[k] == 0.0f ? 0.0f : orig_w.data()[k];
        const auto* packed = dynamic_cast<const PackedIntLinear*>(got[i].slot->get());
        ASSERT_NE(packed, nullptr);
        EXPECT_TRUE((FakeQuantRtnReference(pruned_ref, packed->args()).array() == w.array()).all()) << got[i].name;
      }
    }
  }
  // lm_head is ignored by default.
  EXPECT_EQ(loaded->lm_head->kind(), "dense_f32");
  EXPECT_TRUE((loaded->lm_head->DenseWeight().array() == original->lm_head->DenseWeight().array()).all());

  // Report: per stage, per layer, per module; sizes shrink.
  const nlohmann::json& rep = r->report;
  ASSERT_EQ(rep["stages"].size(), 2u);
  EXPECT_EQ(rep["stages"][0]["name"], "prune_stage");
  ASSERT_EQ(rep["stages"][0]["layers"].size(), 3u);
  EXPECT_EQ(rep["stages"][0]["layers"][0]["modules"].size(), 7u);
  EXPECT_DOUBLE_EQ(rep["stages"][0]["layers"][0]["modules"][0]["sparsity"].get<double>(), 0.5);
  EXPECT_EQ(rep["stages"][1]["layers"][0]["modules"].size(), 6u);  // down_proj ignored
  EXPECT_LT(rep["size"]["after"]["linear_nonzero_params"].get<int64_t>(),
            rep["size"]["before"]["linear_nonzero_params"].get<int64_t>());
  EXPECT_LT(rep["size"]["after"]["linear_memory_bytes"].get<int64_t>(),
            rep["size"]["before"]["linear_memory_bytes"].get<int64_t>());
  EXPECT_TRUE(rep["perplexity"].is_null());
  EXPECT_EQ(*ReadFileToString(out + "/recipe.yaml"), SerializeRecipe(MustParse(kTwoStage)));

  // The output runs: the reloaded model's logits equal the in-memory ones'.
  KVCache cache(*loaded, 16);
  MatrixRM logits;
  ASSERT_TRUE(Forward(*loaded, std::vector<int>{1, 5, 7, 9}, 0, cache, logits).ok());
  EXPECT_TRUE(logits.allFinite());

  // A second run into a non-empty directory is refused.
  auto again = RunRecipe(MustParse(kTwoStage), o, rec, control);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
}

using test_inputs::StopAfter;  // stops after `n` layer events

TEST(StageRunner, StopAndResumeIsByteIdenticalToAnUninterruptedRun) {
  const Recipe recipe = MustParse(kTwoStage);
  const std::string full = Fresh("full"), resumed = Fresh("resumed");
  RunOptions o;
  o.model_path = SyntheticModelDir();
  o.output_dir = full;
  NullProgressSink null;
  RunControl c0;
  ASSERT_TRUE(RunRecipe(recipe, o, null, c0).ok());

  o.output_dir = resumed;
  for (int stop_after : {1, 4}) {  // inside stage 1, then inside stage 2
    RunControl c;
    StopAfter sink(c, stop_after - (stop_after == 4 ? 1 : 0));
    auto r = RunRecipe(recipe, o, sink, c);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(IsStoppedWithCheckpoint(r.status())) << r.status();
    EXPECT_TRUE(fs::exists(resumed + ".work/checkpoint.json"));
    EXPECT_FALSE(fs::exists(resumed));
  }
  RunControl c;
  Recorder rec;
  auto r = RunRecipe(recipe, o, rec, c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->resumed);
  int layer_events = 0;
  for (const ProgressEvent& e : rec.events) layer_events += e.unit == "layer";
  EXPECT_LT(layer_events, 6);  // it did not start over
  EXPECT_FALSE(fs::exists(resumed + ".work/checkpoint.json"));
  EXPECT_EQ(DirContents(full), DirContents(resumed));

  // A checkpoint of another recipe is refused.
  const std::string other = Fresh("other");
  o.output_dir = other;
  RunControl stop;
  StopAfter sink(stop, 1);
  ASSERT_TRUE(IsStoppedWithCheckpoint(RunRecipe(recipe, o, sink, stop).status()));
  auto mismatch = RunRecipe(MustParse("s:\n  q_modifiers:\n    QuantizationModifier: {scheme: W8A16}\n"), o,
                            null, c);
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(mismatch.status().message()), HasSubstr("checkpoint of another run"));
}

TEST(StageRunner, CancelWritesNothing) {
  const std::string out = Fresh("cancel");
  RunOptions o;
  o.model_path = SyntheticModelDir();
  o.output_dir = out;
  RunControl c;
  c.RequestCancel();
  NullProgressSink null;
  auto r = RunRecipe(MustParse(kTwoStage), o, null, c);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".work/checkpoint.json"));
}

// A test-only modifier that needs calibration data: it checks what the runner
// hands it and zeroes nothing.
class ProbeModifier final : public Modifier {
 public:
  explicit ProbeModifier(TargetMatcher m) : m_(std::move(m)) {}
  std::string type() const override { return "ProbeModifier"; }
  const TargetMatcher& matcher() const override { return m_; }
  bool needs_calibration() const override { return true; }
  bool needs_xtx() const override { return true; }
  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    if (ctx.inputs == nullptr) return absl::InternalError("no inputs");
    for (const auto& t : ctx.targets) {
      const ActivationStats* s = ctx.inputs->stats[t.which];
      if (s == nullptr) return absl::InternalError("no stats for " + t.slot.name);
      if (s->channels() != (*t.slot.slot)->in_features()) return absl::InternalError("bad width");
      if (!s->has_xtx()) return absl::InternalError("no xtx");
      ModuleReport r;
      r.module = t.slot.name;
      r.modifier = type();
      r.kind = (*t.slot.slot)->kind();
      r.metrics["rows"] = static_cast<double>(s->count());
      reports->push_back(std::move(r));
    }
    return absl::OkStatus();
  }

 private:
  TargetMatcher m_;
};

TEST(StageRunner, CalibratedModifiersGetInputStatisticsPerLayer) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories << " is absent (needs ../shared)";
  ModifierRegistry registry;
  RegisterBuiltinModifiers(registry);
  registry.Register({"ProbeModifier", "test", {{"targets", ArgType::kStringList, ""}, {"ignore", ArgType::kStringList, ""}},
                     [](const ModifierArgs& a) -> absl::StatusOr<std::unique_ptr<Modifier>> {
                       auto m = a.GetMatcher();
                       if (!m.ok()) return m.status();
                       return std::unique_ptr<Modifier>(std::make_unique<ProbeModifier>(std::move(*m)));
                     }});
  auto recipe = ParseRecipe("num_calibration_samples: 3\nmax_seq_length: 32\ns:\n  p_modifiers:\n    ProbeModifier: {}\n",
                            registry);
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  RunOptions o;
  o.model_path = kStories;
  o.output_dir = Fresh("probe");
  o.registry = &registry;
  NullProgressSink null;
  RunControl c;
  auto missing = RunRecipe(*recipe, o, null, c);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("calibration"));

  o.calib_text_path = kShared + "/data/tinystories/train.txt";
  auto r = RunRecipe(*recipe, o, null, c);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& layers = r->report["stages"][0]["layers"];
  ASSERT_EQ(layers.size(), 5u);
  for (const auto& l : layers) {
    ASSERT_EQ(l["modules"].size(), 7u);
    for (const auto& m : l["modules"]) EXPECT_EQ(m["rows"].get<double>(), 3 * 32) << m.dump();
  }

  // Stop inside the calibrated stage, resume: same artifacts.
  const std::string out2 = Fresh("probe_resumed");
  o.output_dir = out2;
  RunControl stop;
  StopAfter sink(stop, 2);
  auto stopped = RunRecipe(*recipe, o, sink, stop);
  ASSERT_TRUE(IsStoppedWithCheckpoint(stopped.status())) << stopped.status();
  RunControl go;
  auto resumed = RunRecipe(*recipe, o, null, go);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_TRUE(resumed->resumed);
  EXPECT_EQ(DirContents(r->output_dir), DirContents(out2));
}

struct PplCase {
  const char* name;
  const char* recipe;
};

TEST(StageRunner, RealModelPerplexityAfterEachMethod) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories << " is absent (needs ../shared)";
  const std::string eval = kShared + "/data/tinystories/valid.txt";
  std::map<std::string, std::pair<double, double>> ppl;
  for (const PplCase& c : std::vector<PplCase>{
           {"magnitude50", "s:\n  p_modifiers:\n    MagnitudePruningModifier: {sparsity: 0.5}\n"},
           {"magnitude50_row", "s:\n  p_modifiers:\n    MagnitudePruningModifier: {sparsity: 0.5, comparison_group: row}\n"},
           {"magnitude24", "s:\n  p_modifiers:\n    MagnitudePruningModifier: {mask_structure: \"2:4\"}\n"},
           {"w8a16", "s:\n  q_modifiers:\n    QuantizationModifier: {scheme: W8A16}\n"},
           {"w4a16", "s:\n  q_modifiers:\n    QuantizationModifier: {scheme: W4A16}\n"},
           {"w4_channel_asym", R"(s:
  q_modifiers:
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: channel}}
)"}}) {
    RunOptions o = test_inputs::PerplexityRunOptions(kStories, Fresh(c.name), eval);
    o.report.latency = false;  // perplexity is what this test checks
    auto r = test_inputs::RunQuietly(MustParse(c.recipe), o);
    ASSERT_TRUE(r.ok()) << c.name << ": " << r.status();
    const auto& p = r->report["perplexity"];
    ppl[c.name] = {p["before"].get<double>(), p["after"].get<double>()};
    std::cout << c.name << ": perplexity " << ppl[c.name].first << " -> " << ppl[c.name].second << "\n";
    // The artifact reloads and gives the same perplexity-relevant weights.
    auto back = LoadCompressedModel(o.output_dir);
    ASSERT_TRUE(back.ok()) << back.status();
    fs::remove_all(o.output_dir);
  }
  const double dense = ppl["w8a16"].first;
  EXPECT_GT(dense, 1.0);
  EXPECT_LT(dense, 20.0);
  for (const auto& [name, v] : ppl) {
    EXPECT_EQ(v.first, dense) << name;  // "before" is the same dense model every time
    EXPECT_TRUE(std::isfinite(v.second)) << name;
    EXPECT_GE(v.second, dense * 0.98) << name;
  }
  EXPECT_LT(ppl["w8a16"].second, dense * 1.02);              // W8: near dense
  EXPECT_GT(ppl["w4a16"].second, ppl["w8a16"].second);       // W4 worse than W8
  EXPECT_GT(ppl["magnitude24"].second, ppl["magnitude50"].second * 0.9);  // 2:4 no better than free 50%
}

// report.packed_activations int8: the compressed model's packed layers run
// int8 activations in the evaluation (perplexity moves a little, not much),
// the report records it, and the artifact is the same bytes either way.
TEST(StageRunner, EvaluatesPackedLayersWithInt8ActivationsWhenAsked) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories << " is absent (needs ../shared)";
  const std::string eval = kShared + "/data/tinystories/valid.txt";
  const Recipe recipe = MustParse("s:\n  q_modifiers:\n    QuantizationModifier: {scheme: W4A16}\n");
  std::map<std::string, double> after;
  std::map<std::string, std::string> weights;
  for (PackedActivations a : {PackedActivations::kFp32, PackedActivations::kInt8}) {
    const std::string name = PackedActivationsName(a);
    RunOptions o = test_inputs::PerplexityRunOptions(kStories, Fresh("act_" + name), eval);
    o.report.latency = false;
    o.report.agreement = false;
    o.report.packed_activations = a;
    auto r = test_inputs::RunQuietly(recipe, o);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status();
    EXPECT_EQ(r->report["quality"]["evaluation"]["packed_activations"], name);
    after[name] = r->report["perplexity"]["after"].get<double>();
    auto bytes = ReadFileToString(o.output_dir + "/model.safetensors");
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    weights[name] = *bytes;
  }
  std::cout << "W4A16 perplexity after: fp32 activations " << after["fp32"] << ", int8 " << after["int8"] << "\n";
  EXPECT_NE(after["int8"], after["fp32"]);  // the int8 path really ran
  EXPECT_NEAR(after["int8"], after["fp32"], after["fp32"] * 0.02);
  EXPECT_TRUE(weights["int8"] == weights["fp32"]) << "the artifact must not depend on the evaluation";
}

}  // namespace
}  // namespace squeeze
