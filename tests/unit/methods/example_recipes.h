// Checks the example recipes in deploy/examples that a method ships
// (shared by the method tests, e.g. awq_test.cc and gptq_test.cc).
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "workers/runner/recipe.h"

namespace squeeze::test_util {

// Every deploy/examples/<prefix>*.yaml must parse, hold one stage whose first
// modifier is `modifier_type`, and serialize back to an equal recipe; each
// failure is a test failure naming the file. Returns how many files were
// checked (the caller asserts its minimum, so an emptied folder fails).
inline int ExpectExampleRecipesRoundTrip(const std::string& prefix, const std::string& modifier_type) {
  const std::string dir = std::string(SQUEEZE_SOURCE_DIR) + "/deploy/examples";
  int n = 0;
  for (const auto& de : std::filesystem::directory_iterator(dir)) {
    const std::string name = de.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || de.path().extension() != ".yaml") continue;
    ++n;
    std::ifstream in(de.path());
    std::stringstream ss;
    ss << in.rdbuf();
    auto r = ParseRecipe(ss.str());
    if (!r.ok()) {
      ADD_FAILURE() << name << ": " << r.status();
      continue;
    }
    if (r->stages.size() != 1u || r->stages[0].modifiers.empty()) {
      ADD_FAILURE() << name << ": " << r->stages.size() << " stages, expected 1 with a modifier";
      continue;
    }
    EXPECT_EQ(r->stages[0].modifiers[0].type, modifier_type) << name;
    auto back = ParseRecipe(SerializeRecipe(*r));
    if (!back.ok()) {
      ADD_FAILURE() << name << ": " << back.status();
      continue;
    }
    EXPECT_TRUE(*back == *r) << name;
  }
  return n;
}

}  // namespace squeeze::test_util
