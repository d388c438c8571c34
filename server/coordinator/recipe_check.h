// Submit-time recipe validation: parses the recipe with the stage runner's
// parser (when the runner is built) so unknown modifiers or arguments are
// rejected with InvalidArgument naming the YAML path, before anything queues.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace squeeze::server {

absl::Status ValidateRecipe(const std::string& recipe_yaml);

}  // namespace squeeze::server
