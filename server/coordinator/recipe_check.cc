#include "server/coordinator/recipe_check.h"

#if defined(SQUEEZE_HAVE_RUNNER)
#include "workers/engine/formats/hf_config.h"
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

absl::Status ValidateRecipeForModel(const std::string& recipe_yaml, const std::string& config_json,
                                    const std::string& config_source) {
#if defined(SQUEEZE_HAVE_RUNNER)
  absl::StatusOr<Recipe> recipe = ParseRecipe(recipe_yaml);
  if (!recipe.ok()) return recipe.status();
  // A config.json the engine cannot read is left to the worker (which reports
  // it with the file's context); only widths we can read are checked here.
  absl::StatusOr<ModelConfig> config = ParseHfConfig(config_json, config_source);
  if (!config.ok()) return absl::OkStatus();
  return CheckRecipeForModel(*recipe, *config);
#else
  (void)config_json;
  (void)config_source;
  return ValidateRecipe(recipe_yaml);
#endif
}

}  // namespace squeeze::server
