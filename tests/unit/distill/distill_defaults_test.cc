// DistillationModifier as a job runs it: no teacher or dataset in the recipe
// (the run's input model and calibration text are used), per-step progress
// events through the runner's progress sink (what a worker streams to the
// coordinator), and a smaller student (student_layers) initialised from the
// teacher's blocks and trained by KD with hidden-state matching.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/common/run_helpers.h"
#include "tests/common/temp_dirs.h"
#include "workers/runner/compressed_model.h"
#include "workers/runner/recipe.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

const std::string kShared = SQUEEZE_SHARED_DIR;

class Collect final : public ProgressSink {
 public:
  void OnProgress(const ProgressEvent& e) override { events.push_back(e); }
  std::vector<ProgressEvent> events;
};

struct Inputs {
  std::string model, train, valid;
  bool ok = false;
};
Inputs Stories() {
  Inputs in{kShared + "/models/stories260K/hf", kShared + "/data/tinystories/train.txt",
            kShared + "/data/tinystories/valid.txt"};
  in.ok = std::filesystem::exists(in.model + "/config.json") && std::filesystem::exists(in.train);
  return in;
}

double PerplexityAfter(const nlohmann::json& report) {
  const auto& p = report["perplexity"];
  return p.is_object() && p.contains("after") ? p["after"].get<double>() : -1.0;
}

TEST(DistillDefaults, TeacherAndDatasetFromTheRunAndStepProgress) {
  const Inputs in = Stories();
  if (!in.ok) GTEST_SKIP() << "needs ../shared/models/stories260K and ../shared/data/tinystories";
  auto recipe = ParseRecipe(
      "prune:\n  p_modifiers:\n    MagnitudePruningModifier: {sparsity: 0.5}\n"
      "recover:\n  d_modifiers:\n    DistillationModifier: {max_bytes: 100000, steps: 120, batch_size: 4,"
      " seq_len: 32, lr: 0.002, min_lr: 0.0002, warmup_steps: 2}\n");
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  RunOptions o = test_inputs::PerplexityRunOptions(in.model, test_inputs::FreshTestDir("distill_defaults_", "defaults"), in.valid);
  o.calib_text_path = in.train;
  o.threads = 2;
  Collect sink;
  RunControl control;
  auto r = RunRecipe(*recipe, o, sink, control);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<const ProgressEvent*> steps;
  for (const ProgressEvent& e : sink.events) {
    if (e.unit == "step") steps.push_back(&e);
  }
  // Every 120/50 = 2nd step: 60 events, the last one at step 120 of 120.
  ASSERT_EQ(steps.size(), 60u);
  EXPECT_EQ(steps.back()->i, 120);
  EXPECT_EQ(steps.back()->n, 120);
  EXPECT_EQ(steps.back()->stage, "recover");
  for (const char* k : {"loss", "lr", "grad_norm", "tokens_per_s", "eta_s"}) {
    EXPECT_TRUE(steps.back()->metrics.count(k)) << k;
  }
  EXPECT_GT(steps.back()->metrics.at("tokens_per_s"), 0);
  EXPECT_EQ(steps.back()->metrics.at("eta_s"), 0);  // nothing left after the last step
  EXPECT_GT(steps.front()->metrics.at("eta_s"), 0);
  // The loss falls and the schedule decays towards min_lr.
  EXPECT_LT(steps.back()->metrics.at("loss"), steps.front()->metrics.at("loss"));
  EXPECT_LT(steps.back()->metrics.at("lr"), steps[steps.size() / 2]->metrics.at("lr"));
  EXPECT_NE(steps.back()->message.find("distill step 120/120"), std::string::npos) << steps.back()->message;
  EXPECT_GT(PerplexityAfter(r->report), 0);

  // Without a calibration text (and no dataset) the modifier says what is missing.
  RunOptions none = test_inputs::PerplexityRunOptions(in.model, test_inputs::FreshTestDir("distill_defaults_", "nodata"), in.valid);
  auto bad = test_inputs::RunQuietly(*recipe, none);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("DistillationModifier.dataset"), std::string::npos)
      << bad.status();
}

TEST(DistillDefaults, SmallerStudentFromTeacherLayersTrainedByKd) {
  const Inputs in = Stories();
  if (!in.ok) GTEST_SKIP() << "needs ../shared/models/stories260K and ../shared/data/tinystories";
  auto run = [&](const std::string& name, int steps) {
    auto recipe = ParseRecipe(
        "student:\n  d_modifiers:\n    DistillationModifier: {student_layers: [0, 1, 3, 4], hidden_layers: [0, 1, 2, 3],"
        " hidden_teacher_layers: [0, 1, 3, 4], hidden_weight: 0.1, max_bytes: 100000, steps: " +
        std::to_string(steps) + ", batch_size: 4, seq_len: 32, lr: 0.002, min_lr: 0.0002, warmup_steps: 2}\n");
    EXPECT_TRUE(recipe.ok()) << recipe.status();
    RunOptions o = test_inputs::PerplexityRunOptions(in.model, test_inputs::FreshTestDir("distill_defaults_", name), in.valid);
    o.calib_text_path = in.train;
    o.threads = 2;
    return test_inputs::RunQuietly(*recipe, o);
  };
  auto few = run("student_few", 1);
  ASSERT_TRUE(few.ok()) << few.status();
  auto trained = run("student_trained", 100);
  ASSERT_TRUE(trained.ok()) << trained.status();
  auto loaded = LoadCompressedModel(trained->output_dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->blocks.size(), 4u);  // block 2 of 5 removed
  const double p_few = PerplexityAfter(few->report), p_trained = PerplexityAfter(trained->report);
  std::printf("stories260K without block 2: ppl %.3f after 1 KD step, %.3f after 100 (teacher %.3f)\n", p_few,
              p_trained, trained->report["perplexity"]["before"].get<double>());
  ASSERT_GT(p_few, 0);
  EXPECT_LT(p_trained, p_few);
}

}  // namespace
}  // namespace squeeze
