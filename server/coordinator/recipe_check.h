// Submit-time recipe validation: parses the recipe with the stage runner's
// parser (when the runner is built) so unknown modifiers or arguments are
// rejected with InvalidArgument naming the YAML path, before anything queues.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace squeeze::server {

absl::Status ValidateRecipe(const std::string& recipe_yaml);

// ValidateRecipe, then the recipe against the input model's config.json
// (workers/runner/recipe.h CheckRecipeForModel): e.g. an N:M mask_structure
// whose M does not divide a target's input width is InvalidArgument naming
// the YAML path and the module. `config_source` names the file in errors.
// A config.json the engine cannot parse is not checked (the worker reports it).
// Without the runner built: ValidateRecipe only.
absl::Status ValidateRecipeForModel(const std::string& recipe_yaml, const std::string& config_json,
                                    const std::string& config_source);

}  // namespace squeeze::server
