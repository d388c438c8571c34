// SplitStagesForCalibration: a smoothing (or structure-removing) modifier
// followed by a calibrated one in the same stage runs as two stages, so the
// later modifier's statistics come from the changed model.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "tests/common/run_helpers.h"
#include "workers/engine/core/file_util.h"
#include "workers/runner/modifier_registry.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

Recipe MustParse(const std::string& yaml) {
  auto r = ParseRecipe(yaml);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : Recipe{};
}

constexpr char kSmoothThenGptqOneStage[] = R"(
num_calibration_samples: 8
max_seq_length: 64
quant_stage:
  quant_modifiers:
    SmoothQuantModifier: {smoothing_strength: 0.5}
    GPTQModifier: {targets: [Linear], ignore: [lm_head], scheme: W8A8}
)";

constexpr char kSmoothThenGptqTwoStages[] = R"(
num_calibration_samples: 8
max_seq_length: 64
quant_stage:
  quant_modifiers:
    SmoothQuantModifier: {smoothing_strength: 0.5}
quant_stage.2:
  quant_modifiers:
    GPTQModifier: {targets: [Linear], ignore: [lm_head], scheme: W8A8}
)";

TEST(SplitStages, SmoothingBeforeACalibratedModifierStartsANewStage) {
  const Recipe r = MustParse(kSmoothThenGptqOneStage);
  auto split = SplitStagesForCalibration(r, ModifierRegistry::Builtin());
  ASSERT_TRUE(split.ok()) << split.status();
  ASSERT_EQ(split->stages.size(), 2u);
  EXPECT_EQ(split->stages[0].name, "quant_stage");
  EXPECT_EQ(split->stages[1].name, "quant_stage.2");
  ASSERT_EQ(split->stages[0].modifiers.size(), 1u);
  EXPECT_EQ(split->stages[0].modifiers[0].type, "SmoothQuantModifier");
  ASSERT_EQ(split->stages[1].modifiers.size(), 1u);
  EXPECT_EQ(split->stages[1].modifiers[0].type, "GPTQModifier");
  // The split recipe is what two explicit stages parse to.
  EXPECT_EQ(SerializeRecipe(*split), SerializeRecipe(MustParse(kSmoothThenGptqTwoStages)));
}

TEST(SplitStages, StagesWithoutSuchAPairAreUnchanged) {
  for (const char* yaml : {
           // Quantizing AWQ then GPTQ: AWQ leaves packed layers, no new pass.
           R"(
s:
  quant_modifiers:
    AWQModifier: {scheme: W4A16, ignore: [lm_head]}
    GPTQModifier: {scheme: W4A16, ignore: [lm_head]}
)",
           // Smoothing last: nothing after it needs statistics.
           R"(
s:
  quant_modifiers:
    GPTQModifier: {scheme: W8A8, ignore: [lm_head]}
    SmoothQuantModifier: {smoothing_strength: 0.8}
)",
           // Smoothing then an uncalibrated quantizer.
           R"(
s:
  quant_modifiers:
    SmoothQuantModifier: {smoothing_strength: 0.5}
    QuantizationModifier: {scheme: W8A8, ignore: [lm_head]}
)"}) {
    const Recipe r = MustParse(yaml);
    auto split = SplitStagesForCalibration(r, ModifierRegistry::Builtin());
    ASSERT_TRUE(split.ok()) << split.status();
    EXPECT_EQ(SerializeRecipe(*split), SerializeRecipe(r)) << yaml;
  }
  // AWQ that only scales does end the pass.
  const Recipe awq_scale = MustParse(R"(
s:
  quant_modifiers:
    AWQModifier: {scheme: W4A16, ignore: [lm_head], quantize: false}
    GPTQModifier: {scheme: W4A16, ignore: [lm_head]}
)");
  auto split = SplitStagesForCalibration(awq_scale, ModifierRegistry::Builtin());
  ASSERT_TRUE(split.ok()) << split.status();
  ASSERT_EQ(split->stages.size(), 2u);
  EXPECT_EQ(split->stages[1].name, "s.2");
}

// On the real model: one stage [SmoothQuant, GPTQ] gives the same model bytes
// as the two explicit stages (GPTQ's Hessians come from the smoothed model).
TEST(SplitStages, OneStageSmoothQuantGptqEqualsTwoStagesOnStories260K) {
  const std::string shared = SQUEEZE_SHARED_DIR;
  const std::string model = shared + "/models/stories260K/hf";
  const std::string calib = shared + "/data/tinystories/train.txt";
  if (!std::filesystem::exists(model + "/config.json") || !std::filesystem::exists(calib)) {
    GTEST_SKIP() << "needs ../shared/models/stories260K and ../shared/data/tinystories (absent)";
  }
  auto run = [&](const char* yaml, const std::string& name) {
    RunOptions o;
    o.model_path = model;
    o.calib_text_path = calib;
    o.output_dir = test_inputs::FreshTestDir("squeeze_split_", name);
    o.report.latency = false;
    o.report.agreement = false;
    auto r = test_inputs::RunQuietly(MustParse(yaml), o);
    EXPECT_TRUE(r.ok()) << r.status();
    return o.output_dir;
  };
  const std::string one = run(kSmoothThenGptqOneStage, "one");
  const std::string two = run(kSmoothThenGptqTwoStages, "two");
  auto a = ReadFileToString(one + "/model.safetensors");
  auto b = ReadFileToString(two + "/model.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(*a == *b) << "one-stage and two-stage SmoothQuant+GPTQ differ";
  EXPECT_EQ(*ReadFileToString(one + "/recipe.yaml"), *ReadFileToString(two + "/recipe.yaml"));
}

}  // namespace
}  // namespace squeeze
