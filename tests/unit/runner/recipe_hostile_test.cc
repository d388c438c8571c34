// Hostile recipes (issue 11): inputs found by the recipe fuzz target
// (tests/fuzz/recipe_fuzz.cc) or known YAML attacks, each refused with an
// InvalidArgument naming the YAML path and the reason.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "workers/runner/recipe.h"
#include "workers/runner/target_match.h"

namespace squeeze {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(RecipeHostile, AliasExpansionIsBoundedNotMaterialized) {
  // "Billion laughs": 9 levels of 10 aliases each spell 10^9 strings in a
  // few hundred bytes; converting them to JSON would never finish.
  std::string yaml = "quant_modifiers:\n  QuantizationModifier:\n    l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    yaml += absl::StrCat("    l", i, ": &l", i, " [");
    for (int k = 0; k < 10; ++k) absl::StrAppend(&yaml, k ? ", " : "", "*l", i - 1);
    yaml += "]\n";
  }
  auto r = ParseRecipe(yaml);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), AllOf(HasSubstr("recipe: default_stage.quant_modifiers.QuantizationModifier.l"),
                                          HasSubstr("more than 100000 values")));
}

TEST(RecipeHostile, InvalidUtf8IsRefusedNamingThePath) {
  // Found by fuzz_recipe (tests/fuzz/regressions/recipe/invalid_utf8_target):
  // a lead byte without its continuation byte in a target name was accepted,
  // then serialized as U+FFFD, so the recipe did not round-trip.
  const std::string value = "quant_modifiers:\n  QuantizationModifier:\n    targets: [\"Lin\xc2" "ear\"]\n"
                            "    scheme: W4A16\n";
  auto r = ParseRecipe(value);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), AllOf(HasSubstr("QuantizationModifier.targets[0]"), HasSubstr("not valid UTF-8")));

  const std::string key = "quant_modifiers:\n  QuantizationModifier:\n    \"sch\xffme\": W4A16\n";
  auto k = ParseRecipe(key);
  ASSERT_FALSE(k.ok());
  EXPECT_THAT(k.status().message(), HasSubstr("not valid UTF-8"));

  // Found by fuzz_recipe (regressions/recipe/nul_in_stage_name): a NUL in a
  // stage name did not survive serialization.
  using namespace std::string_literals;  // the literal holds a NUL
  const std::string with_nul = "\"sparsity\x13\0stage\":\n  sparsity_modifiers:\n    WandaPruningModifier:\n"
                               "      sparsity: 0.5\n"s;
  ASSERT_EQ(with_nul.size(), 87u);
  auto nul = ParseRecipe(with_nul);
  ASSERT_FALSE(nul.ok());
  EXPECT_THAT(nul.status().message(), HasSubstr("control character 0x13 at byte 8"));

  // Valid multi-byte UTF-8 is still accepted where a string is free text.
  auto ok = ParseRecipe("quant_modifiers:\n  QuantizationModifier:\n    targets: [\"Lin\xc3\xa9" "ar\"]\n"
                        "    scheme: W4A16\n");
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(RecipeHostile, TargetRegexesMatchInLinearTime) {
  // Found by fuzz_recipe (regressions/recipe/nested_quantifier_regex): a
  // target regex with nested quantifiers made the backtracking std::regex run
  // for minutes on one module name. RE2 answers at once.
  auto m = TargetMatcher::Create({"re:(a*)*b", "re:.*k_+proj"}, {}, "stage.Modifier");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(m->Matches(std::string(5000, 'a') + "c"));
  EXPECT_TRUE(m->Matches("model.layers.0.self_attn.k___proj"));
  EXPECT_TRUE(m->Matches("aaab.weight"));  // anchored at the start only, like Python's re.match
  EXPECT_FALSE(m->Matches("xaaab"));

  // What RE2 cannot match in linear time is refused naming the field.
  // What RE2 cannot match in linear time (backreferences), and stacked
  // quantifiers, are refused naming the field.
  for (const char* bad : {"re:(a)\\1", "re:.*k_**proj"}) {
    auto r = TargetMatcher::Create({bad}, {}, "stage.Modifier");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_THAT(r.status().message(), HasSubstr("recipe: stage.Modifier.targets: invalid regex")) << bad;
  }
}

}  // namespace
}  // namespace squeeze
