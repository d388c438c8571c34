// DistillationModifier through RunRecipe: a recipe prunes stories260K 50% by
// magnitude, then distills it from the dense model; the artifact keeps the
// masks and its perplexity (the runner's before / after evaluation) improves
// on pruning alone. Argument errors name the YAML path.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "tests/common/run_helpers.h"
#include "workers/engine/formats/model_io.h"
#include "workers/methods/prune/magnitude.h"
#include "workers/runner/compressed_model.h"
#include "workers/runner/recipe.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

const std::string kShared = SQUEEZE_SHARED_DIR;

std::string Fresh(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  std::string d = std::string(t ? t : "/tmp") + "/distill_mod_" + name;
  std::filesystem::remove_all(d);
  return d;
}

TEST(DistillationModifier, BadArgumentsNameTheYamlPath) {
  // teacher / dataset are optional (the job's input model / calibration text).
  auto r = ParseRecipe("s:\n  d_modifiers:\n    DistillationModifier: {dataset: a.txt}\n");
  EXPECT_TRUE(r.ok()) << r.status();
  r = ParseRecipe("s:\n  d_modifiers:\n    DistillationModifier: {dataset: []}\n");
  EXPECT_NE(r.status().message().find("DistillationModifier.dataset"), std::string::npos) << r.status();
  r = ParseRecipe("s:\n  d_modifiers:\n    DistillationModifier: {hidden_layers: [0, x]}\n");
  EXPECT_NE(r.status().message().find("DistillationModifier.hidden_layers[1]"), std::string::npos) << r.status();
  r = ParseRecipe("s:\n  d_modifiers:\n    DistillationModifier: {hidden_layers: [0], hidden_teacher_layers: [0, 1]}\n");
  EXPECT_NE(r.status().message().find("DistillationModifier.hidden_teacher_layers"), std::string::npos) << r.status();
  r = ParseRecipe("s:\n  d_modifiers:\n    DistillationModifier: {student_layers: [-1]}\n");
  EXPECT_NE(r.status().message().find("DistillationModifier.student_layers[0]"), std::string::npos) << r.status();
  r = ParseRecipe("s:\n  d_modifiers:\n    DistillationModifier: {teacher: m, dataset: a.txt, beta: 2}\n");
  EXPECT_NE(r.status().message().find("DistillationModifier.beta"), std::string::npos) << r.status();
  r = ParseRecipe("s:\n  d_modifiers:\n    DistillationModifier: {teacher: m, dataset: a.txt, loss: l2}\n");
  EXPECT_NE(r.status().message().find("DistillationModifier.loss"), std::string::npos) << r.status();
  r = ParseRecipe("s:\n  d_modifiers:\n    DistillationModifier: {teacher: m, dataset: a.txt, bogus: 1}\n");
  EXPECT_FALSE(r.ok());
  r = ParseRecipe("s:\n  d_modifiers:\n    DistillationModifier: {teacher: m, dataset: [a.txt, b.txt], loss: gkd,"
                  " beta: 0.3, lmbda: 0.5}\n");
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST(DistillationModifier, RecoversPrunedStories260K) {
  const std::string model = kShared + "/models/stories260K/hf";
  const std::string valid = kShared + "/data/tinystories/valid.txt";
  const std::string train = kShared + "/data/tinystories/train.txt";
  if (!std::filesystem::exists(model) || !std::filesystem::exists(train)) {
    GTEST_SKIP() << "needs ../shared/models/stories260K and ../shared/data/tinystories";
  }
  auto run = [&](bool distill, const std::string& out) {
    std::string yaml =
        "prune:\n  p_modifiers:\n    MagnitudePruningModifier: {sparsity: 0.5}\n";
    if (distill) {
      yaml += "recover:\n  d_modifiers:\n    DistillationModifier: {teacher: \"" + model + "\", dataset: \"" + train +
              "\", separator: \"<|endoftext|>\", max_bytes: 100000, steps: 20, batch_size: 8, seq_len: 64,"
              " lr: 0.002, min_lr: 0.0002, warmup_steps: 2, loss: forward_kl}\n";
    }
    auto recipe = ParseRecipe(yaml);
    EXPECT_TRUE(recipe.ok()) << recipe.status();
    RunOptions o = test_inputs::PerplexityRunOptions(model, out, valid);
    o.threads = 2;
    return test_inputs::RunQuietly(*recipe, o);
  };
  auto pruned = run(false, Fresh("pruned"));
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  auto distilled = run(true, Fresh("distilled"));
  ASSERT_TRUE(distilled.ok()) << distilled.status();
  const std::string rep = distilled->report.dump();
  ASSERT_NE(rep.find("distill_loss_final"), std::string::npos) << rep.substr(0, 2000);
  auto ppl = [](const nlohmann::json& report) {
    // The runner's evaluation after compression (report.json "perplexity").
    const auto& p = report["perplexity"];
    return p.is_object() && p.contains("after") ? p["after"].get<double>() : -1.0;
  };
  const double p_pruned = ppl(pruned->report), p_distilled = ppl(distilled->report);
  std::printf("stories260K 50%% magnitude: ppl %.3f pruned, %.3f after 20 KD steps\n", p_pruned, p_distilled);
  ASSERT_GT(p_pruned, 0.0) << pruned->report.dump().substr(0, 1500);
  EXPECT_LT(p_distilled, p_pruned);
  // Masks kept in the artifact.
  auto loaded = LoadCompressedModel(distilled->output_dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  for (LinearSlot& s : loaded->AllLinears()) {
    if (s.name == "lm_head") continue;
    const MatrixRM w = (*s.slot)->DenseWeight();
    EXPECT_GE(CountZeros(w), w.size() / 2) << s.name;
  }
}

}  // namespace
}  // namespace squeeze
