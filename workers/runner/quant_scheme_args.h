// The weight-quantization scheme arguments shared by QuantizationModifier
// (mod_quantization.cc) and GPTQModifier (mod_gptq.cc), in llm-compressor's
// vocabulary:
//   scheme         a preset (quant_args.h: W4A16, W4A16_ASYM, W8A16, W8A8)
//                  with targets / ignore (defaults [Linear] / [lm_head]); or
//   config_groups  {<group name>: {targets: [...], weights: {num_bits,
//                  type: int, symmetric, strategy: tensor|channel|group,
//                  group_size, observer: minmax|mse, dynamic: false,
//                  actorder}, input_activations: null | {num_bits: 8,
//                  type: int, symmetric: true, strategy: token, dynamic:
//                  true}, output_activations: null}};
//                  the first group whose targets match a module quantizes it;
//                  `ignore` applies to all groups.
// Exactly one of scheme / config_groups. Every error is InvalidArgument
// "recipe: <yaml path>: <reason>".
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "workers/methods/quant/quant_args.h"
#include "workers/runner/modifier_registry.h"
#include "workers/runner/target_match.h"

namespace squeeze {

// What differs between the modifiers that use the parser.
struct QuantSchemeSpec {
  // Whether weights.observer may be "mse" (MSE-optimal clipping, quant_grid.h).
  bool allow_mse_observer = false;
  // Reason given for an observer other than minmax / null (or mse when allowed).
  std::string observer_error;
  // Whether int8 per-token input activations (W8A8) are accepted.
  bool allow_input_activations = false;
  // Reason given for input activations (scheme W8A8 or a non-null
  // input_activations) when they are not accepted.
  std::string input_activations_error;
  // Handles weights.actorder of config group number `group` (0-based, the
  // index it will have in QuantScheme::groups); `path` is its YAML path.
  // Returns the error to report, if any.
  std::function<absl::Status(size_t group, const nlohmann::json& value, const std::string& path)> actorder;
};

struct QuantSchemeGroup {
  TargetMatcher matcher;  // the group's targets minus ignore
  WeightQuantArgs weights;
  // W8A8: input activations int8, symmetric, per token, dynamic; the weights
  // are then 8 bit symmetric per channel (checked) and the layer a W8A8Linear.
  bool int8_token_activations = false;
};

struct QuantScheme {
  TargetMatcher any;  // union of the groups' targets, minus ignore
  std::vector<QuantSchemeGroup> groups;  // one for `scheme`, in file order for config_groups
  // Index of the first group whose matcher selects `module`; -1 when none.
  int Find(const std::string& module) const;
};

// The schema of the arguments parsed here: scheme (described by
// `scheme_help`), config_groups, targets, ignore; then the modifier's own.
std::vector<ArgSpec> QuantSchemeArgSpecs(const std::string& scheme_help, std::vector<ArgSpec> own = {});

// "recipe: <path>: <msg>" (InvalidArgument).
absl::Status RecipeFieldError(const std::string& path, const std::string& msg);

// Parses scheme / config_groups / targets / ignore of `args`.
absl::StatusOr<QuantScheme> ParseQuantScheme(const ModifierArgs& args, const QuantSchemeSpec& spec);

}  // namespace squeeze
