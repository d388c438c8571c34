#include "workers/runner/recipe.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "workers/runner/target_match.h"

namespace squeeze {
namespace {

using ::testing::HasSubstr;

std::string ErrorOf(absl::string_view yaml) {
  auto r = ParseRecipe(yaml);
  EXPECT_FALSE(r.ok()) << yaml;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  return std::string(r.status().message());
}

TEST(Recipe, ParsesStagesAndModifiersInFileOrder) {
  auto r = ParseRecipe(R"(
num_calibration_samples: 64
max_seq_length: 128
seed: 7
sparsity_stage:
  run_type: oneshot
  sparsity_modifiers:
    MagnitudePruningModifier:
      sparsity: 0.5
      mask_structure: "2:4"
      targets: ["re:.*mlp.*"]
quant_stage:
  quant_modifiers:
    QuantizationModifier: {targets: ["Linear"], ignore: ["lm_head"], scheme: W4A16}
)");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->stages.size(), 2u);
  EXPECT_EQ(r->stages[0].name, "sparsity_stage");
  EXPECT_EQ(r->stages[1].name, "quant_stage");
  ASSERT_EQ(r->stages[0].modifiers.size(), 1u);
  const RecipeModifier& m = r->stages[0].modifiers[0];
  EXPECT_EQ(m.type, "MagnitudePruningModifier");
  EXPECT_EQ(m.group, "sparsity_modifiers");
  EXPECT_EQ(m.path(), "sparsity_stage.sparsity_modifiers.MagnitudePruningModifier");
  EXPECT_DOUBLE_EQ(m.args["sparsity"].get<double>(), 0.5);
  EXPECT_EQ(m.args["mask_structure"], "2:4");
  EXPECT_EQ(r->stages[1].modifiers[0].args["scheme"], "W4A16");
  EXPECT_EQ(r->calibration.num_calibration_samples, 64);
  EXPECT_EQ(r->calibration.max_seq_length, 128);
  EXPECT_EQ(r->calibration.seed, 7u);
}

TEST(Recipe, ShortFormIsADefaultStage) {
  auto r = ParseRecipe("quant_modifiers:\n  QuantizationModifier: {scheme: W8A16}\n");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->stages.size(), 1u);
  EXPECT_EQ(r->stages[0].name, "default_stage");
  EXPECT_EQ(r->calibration.num_calibration_samples, 512);  // llm-compressor's default
}

TEST(Recipe, ErrorsNameTheYamlPath) {
  EXPECT_EQ(ErrorOf("quant_stage:\n  quant_modifiers:\n    QuantizationModifier: {scheme: W5A3}\n"),
            "recipe: quant_stage.quant_modifiers.QuantizationModifier.scheme: unknown scheme \"W5A3\" "
            "(expected one of W4A16, W4A16_ASYM, W8A16, W8A8)");
  EXPECT_THAT(ErrorOf("s:\n  m_modifiers:\n    FooModifier: {}\n"),
              HasSubstr("recipe: s.m_modifiers.FooModifier: unknown modifier \"FooModifier\""));
  EXPECT_THAT(ErrorOf("s:\n  m_modifiers:\n    MagnitudePruningModifier: {sparsty: 0.5}\n"),
              HasSubstr("recipe: s.m_modifiers.MagnitudePruningModifier.sparsty: unknown argument"));
  EXPECT_THAT(ErrorOf("s:\n  m_modifiers:\n    MagnitudePruningModifier: {sparsity: high}\n"),
              HasSubstr("recipe: s.m_modifiers.MagnitudePruningModifier.sparsity: expected a number, got string"));
  EXPECT_THAT(ErrorOf("s:\n  m_modifiers:\n    MagnitudePruningModifier: {sparsity: 1.5}\n"),
              HasSubstr("MagnitudePruningModifier.sparsity: 1.5 is outside [0, 1)"));
  EXPECT_THAT(ErrorOf("s:\n  m_modifiers:\n    MagnitudePruningModifier: {mask_structure: \"4:2\"}\n"),
              HasSubstr("MagnitudePruningModifier.mask_structure:"));
  EXPECT_THAT(ErrorOf("s:\n  m_modifiers:\n    MagnitudePruningModifier: {sparsity: 0.3, mask_structure: \"2:4\"}\n"),
              HasSubstr("contradicts"));
  EXPECT_THAT(ErrorOf("s:\n  m_modifiers:\n    MagnitudePruningModifier: {targets: [\"re:(\"]}\n"),
              HasSubstr("recipe: s.m_modifiers.MagnitudePruningModifier.targets: invalid regex"));
  EXPECT_THAT(ErrorOf("s:\n  m_modifiers:\n    AWQModifier: {scheme: W8A8}\n"),
              HasSubstr("AWQModifier.scheme: W8A8: AWQModifier quantizes weights only"));
  EXPECT_THAT(ErrorOf("s:\n  m_modifiers:\n    QuantizationModifier: {}\n"),
              HasSubstr("give exactly one of scheme or config_groups"));
  EXPECT_THAT(ErrorOf(R"(s:
  q_modifiers:
    QuantizationModifier:
      config_groups:
        group_0:
          targets: [Linear]
          weights: {num_bits: 4, type: int, symmetric: true, strategy: group}
)"),
              HasSubstr("recipe: s.q_modifiers.QuantizationModifier.config_groups.group_0.weights.group_size: "
                        "is required"));
  EXPECT_THAT(ErrorOf(R"(s:
  q_modifiers:
    QuantizationModifier:
      config_groups:
        group_0:
          targets: [Linear]
          weights: {num_bits: 12}
)"),
              HasSubstr("config_groups.group_0.weights.num_bits: 12 is outside 2..8"));
  EXPECT_THAT(ErrorOf("s:\n  not_a_group:\n    QuantizationModifier: {scheme: W8A16}\n"),
              HasSubstr("recipe: s.not_a_group: expected a <group>_modifiers key"));
  EXPECT_THAT(ErrorOf("num_calibration_samples: -3\ns:\n  q_modifiers:\n    QuantizationModifier: {scheme: W8A16}\n"),
              HasSubstr("recipe: num_calibration_samples: expected a positive integer"));
  EXPECT_THAT(ErrorOf("s: [1, 2\n"), HasSubstr("invalid YAML"));
  EXPECT_THAT(ErrorOf("- a\n- b\n"), HasSubstr("expected a mapping"));
  EXPECT_THAT(ErrorOf("seed: 1\n"), HasSubstr("no stages"));
}

TEST(Recipe, ConfigGroupsAreAccepted) {
  auto r = ParseRecipe(R"(quant_stage:
  quant_modifiers:
    QuantizationModifier:
      ignore: [lm_head]
      config_groups:
        group_0:
          targets: [Linear]
          weights: {num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 32}
          input_activations: null
)");
  ASSERT_TRUE(r.ok()) << r.status();
}

TEST(Recipe, CanonicalSerializationRoundTrips) {
  auto r = ParseRecipe(R"(
seed: 3
a_stage:
  pruning_modifiers:
    MagnitudePruningModifier: {targets: Linear, sparsity: 0.25, comparison_group: row}
  quant_modifiers:
    QuantizationModifier:
      config_groups:
        g: {targets: ["re:.*proj$"], weights: {num_bits: 8, symmetric: true, strategy: channel}}
b_stage:
  x_modifiers:
    MagnitudePruningModifier:
)");
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string text = SerializeRecipe(*r);
  auto back = ParseRecipe(text);
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
  EXPECT_TRUE(*back == *r) << text;
  EXPECT_EQ(SerializeRecipe(*back), text);
  // Numbers-as-strings stay strings.
  EXPECT_NE(text.find("\"re:.*proj$\""), std::string::npos) << text;
}

TEST(TargetMatcher, ClassRegexAndNames) {
  auto m = TargetMatcher::Create({"re:.*self_attn\\.(q|k)_proj", "model.layers.1"}, {"model.layers.1.mlp.up_proj"},
                                 "p");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->Matches("model.layers.0.self_attn.q_proj"));
  EXPECT_TRUE(m->Matches("model.layers.3.self_attn.k_proj"));
  EXPECT_FALSE(m->Matches("model.layers.0.self_attn.v_proj"));
  EXPECT_TRUE(m->Matches("model.layers.1.mlp.down_proj"));
  EXPECT_FALSE(m->Matches("model.layers.1.mlp.up_proj"));
  EXPECT_FALSE(m->Matches("model.layers.10.mlp.down_proj"));  // prefix match is per dotted component
  auto all = TargetMatcher::Create({"Linear"}, {"lm_head"}, "p");
  EXPECT_TRUE(all->Matches("model.layers.4.mlp.gate_proj"));
  EXPECT_FALSE(all->Matches("lm_head"));
  // re: anchors at the start (Python re.match) but not at the end.
  auto start = TargetMatcher::Create({"re:layers"}, {}, "p");
  EXPECT_FALSE(start->Matches("model.layers.0.mlp.up_proj"));
}

}  // namespace
}  // namespace squeeze

namespace squeeze {
namespace {

TEST(Recipe, EveryExampleRecipeParses) {
  const std::string dir = std::string(SQUEEZE_SOURCE_DIR) + "/deploy/examples";
  int n = 0;
  for (const auto& de : std::filesystem::directory_iterator(dir)) {
    if (de.path().extension() != ".yaml") continue;
    std::ifstream in(de.path());
    std::stringstream ss;
    ss << in.rdbuf();
    auto r = ParseRecipe(ss.str());
    EXPECT_TRUE(r.ok()) << de.path() << ": " << r.status();
    ++n;
  }
  EXPECT_GE(n, 4);
}

}  // namespace
}  // namespace squeeze
