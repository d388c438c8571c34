// libFuzzer target: the recipe parser (ParseRecipe with the built-in modifier
// registry, so every modifier's argument checks run too). For a recipe it
// accepts, the documented round trip must hold:
// ParseRecipe(SerializeRecipe(r)) == r, and serializing again gives the same
// bytes.
#include <cstdint>
#include <cstdio>
#include <string>

#include "workers/runner/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace squeeze;
  const absl::string_view yaml(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Recipe> recipe = ParseRecipe(yaml);
  if (!recipe.ok()) return 0;
  const std::string canonical = SerializeRecipe(*recipe);
  absl::StatusOr<Recipe> again = ParseRecipe(canonical);
  if (!again.ok() || !(*again == *recipe) || SerializeRecipe(*again) != canonical) {
    std::fprintf(stderr, "recipe round trip broken: %s\n--- canonical:\n%s\n",
                 again.ok() ? "different recipe or bytes" : std::string(again.status().message()).c_str(),
                 canonical.c_str());
    __builtin_trap();
  }
  return 0;
}
