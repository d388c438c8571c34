// Hostile recipes (issue 11): inputs found by the recipe fuzz target
// (tests/fuzz/recipe_fuzz.cc) or known YAML attacks, each refused with an
// InvalidArgument naming the YAML path and the reason.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "workers/runner/recipe.h"

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

}  // namespace
}  // namespace squeeze
