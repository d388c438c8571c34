#include "server/coordinator/recipe_check.h"

#if defined(SQUEEZE_HAVE_RUNNER)
#include "workers/runner/recipe.h"
#endif

namespace squeeze::server {

absl::Status ValidateRecipe(const std::string& recipe_yaml) {
#if defined(SQUEEZE_HAVE_RUNNER)
  return ParseRecipe(recipe_yaml).status();
#else
  if (recipe_yaml.empty()) return absl::InvalidArgumentError("empty recipe");
  return absl::OkStatus();
#endif
}

}  // namespace squeeze::server
