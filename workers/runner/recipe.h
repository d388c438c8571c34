// Recipes: the llm-compressor YAML dialect.
//
//   num_calibration_samples: 64      # optional top-level calibration options
//   max_seq_length: 256
//   seed: 0
//   sparsity_stage:                  # a stage: any other top-level key
//     sparsity_modifiers:            # a group: a key ending in "_modifiers"
//       MagnitudePruningModifier:    # a modifier type from the registry
//         sparsity: 0.5
//         targets: ["re:.*proj$"]
//   quant_stage:
//     quant_modifiers:
//       QuantizationModifier: {targets: [Linear], ignore: [lm_head], scheme: W4A16}
//
// Stages run in file order, and within a stage modifiers run in file order.
// A top-level `<group>_modifiers:` key is the short form of a single stage
// named "default_stage". A stage may also hold `run_type: oneshot` (the only
// run type). Every error is InvalidArgument naming the YAML path, e.g.
//   recipe: quant_stage.quant_modifiers.QuantizationModifier.scheme: unknown
//   scheme "W5A3" (expected one of W4A16, W4A16_ASYM, W8A16, W8A8)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {

struct RecipeModifier {
  std::string group;  // "quant_modifiers"
  std::string type;   // "QuantizationModifier"
  nlohmann::json args = nlohmann::json::object();  // as written (YAML scalars typed)
  std::string path() const;  // filled by the parser: "<stage>.<group>.<type>"
  std::string stage;
};

struct RecipeStage {
  std::string name;
  std::vector<RecipeModifier> modifiers;  // file order
};

// llm-compressor's calibration options (oneshot arguments) plus our seed.
struct CalibrationOptions {
  int64_t num_calibration_samples = 512;  // llm-compressor's default
  int64_t max_seq_length = 384;           // llm-compressor's default
  std::optional<uint64_t> seed;           // unset: RunOptions.seed decides
};

struct Recipe {
  std::vector<RecipeStage> stages;
  CalibrationOptions calibration;
  // Keys given explicitly (canonical serialization writes only these).
  bool has_num_calibration_samples = false;
  bool has_max_seq_length = false;

  bool operator==(const Recipe& other) const;
};

// Parses and validates (every modifier is built once through `registry`, so
// argument values are checked too).
absl::StatusOr<Recipe> ParseRecipe(absl::string_view yaml_text,
                                   const ModifierRegistry& registry = ModifierRegistry::Builtin());

// Canonical YAML: calibration options first, then stages, groups and
// modifiers in order, argument keys sorted, strings double-quoted, lists in
// flow style. ParseRecipe(SerializeRecipe(r)) == r, and serializing the
// result again gives the same bytes. This is the recipe.yaml stored with
// every artifact.
std::string SerializeRecipe(const Recipe& recipe);

// Checks the recipe against the shapes of a model given by its config
// (per-layer widths included): every stage's modifiers are built and
// Modifier::CheckTargetShape is called for each block linear / untied lm_head
// their targets select (e.g. an N:M mask_structure needs M to divide the
// module's input width). InvalidArgument naming the YAML path and the module;
// used at submit time (server/coordinator/recipe_check.h) and by the stage
// runner right after loading the model. Shapes are those of the input model:
// a stage after structured pruning is checked against the original widths.
absl::Status CheckRecipeForModel(const Recipe& recipe, const ModelConfig& config,
                                 const ModifierRegistry& registry = ModifierRegistry::Builtin());

// Instantiates the modifiers of one stage, in order.
absl::StatusOr<std::vector<std::unique_ptr<Modifier>>> BuildStageModifiers(
    const RecipeStage& stage, const ModifierRegistry& registry = ModifierRegistry::Builtin());

}  // namespace squeeze
