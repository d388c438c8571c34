#include "workers/runner/quant_scheme_args.h"

#include "absl/strings/str_cat.h"

namespace squeeze {
namespace {

using nlohmann::json;

// A config group's `weights` (compressed-tensors QuantizationArgs).
absl::StatusOr<WeightQuantArgs> ParseWeights(const json& w, const std::string& path, size_t group,
                                             const QuantSchemeSpec& spec) {
  if (!w.is_object()) return RecipeFieldError(path, "expected a mapping");
  WeightQuantArgs a;
  a.strategy = QuantStrategy::kChannel;
  a.group_size = 0;
  bool has_group_size = false;
  for (const auto& [k, v] : w.items()) {
    const std::string p = absl::StrCat(path, ".", k);
    if (k == "num_bits") {
      if (!v.is_number_integer()) return RecipeFieldError(p, "expected an integer");
      a.num_bits = v.get<int>();
      if (a.num_bits < 2 || a.num_bits > 8) return RecipeFieldError(p, absl::StrCat(a.num_bits, " is outside 2..8"));
    } else if (k == "type") {
      if (!v.is_string() || v.get<std::string>() != "int") return RecipeFieldError(p, "only type int is supported");
    } else if (k == "symmetric") {
      if (!v.is_boolean()) return RecipeFieldError(p, "expected true or false");
      a.symmetric = v.get<bool>();
    } else if (k == "strategy") {
      if (!v.is_string()) return RecipeFieldError(p, "expected a string");
      auto s = ParseQuantStrategy(v.get<std::string>());
      if (!s.ok()) return RecipeFieldError(p, std::string(s.status().message()));
      a.strategy = *s;
    } else if (k == "group_size") {
      if (v.is_null()) continue;
      if (!v.is_number_integer() || v.get<int64_t>() <= 0) return RecipeFieldError(p, "expected a positive integer");
      a.group_size = v.get<int>();
      has_group_size = true;
    } else if (k == "observer") {
      if (!v.is_null() && !(v.is_string() && v.get<std::string>() == "minmax")) {
        return RecipeFieldError(p, spec.observer_error);
      }
    } else if (k == "dynamic") {
      if (!v.is_boolean() || v.get<bool>()) return RecipeFieldError(p, "dynamic weight quantization is not supported");
    } else if (k == "actorder") {
      if (absl::Status s = spec.actorder(group, v, p); !s.ok()) return s;
    } else {
      return RecipeFieldError(p, "unknown field (known: num_bits, type, symmetric, strategy, group_size, observer, "
                                 "dynamic, actorder)");
    }
  }
  if (a.strategy == QuantStrategy::kGroup && !has_group_size) {
    return RecipeFieldError(path + ".group_size", "is required for strategy group");
  }
  if (a.strategy != QuantStrategy::kGroup && has_group_size) {
    return RecipeFieldError(path + ".group_size",
                            absl::StrCat("only applies to strategy group, not ", QuantStrategyName(a.strategy)));
  }
  return a;
}

// One entry of config_groups, number `index`, at YAML path `gp`; appends its
// targets to `all_targets`.
absl::StatusOr<QuantSchemeGroup> ParseGroup(const json& g, const std::string& gp, size_t index,
                                            const std::vector<std::string>& ignore, const QuantSchemeSpec& spec,
                                            std::vector<std::string>* all_targets) {
  if (!g.is_object()) return RecipeFieldError(gp, "expected a mapping");
  std::vector<std::string> targets;
  bool has_weights = false;
  WeightQuantArgs wa;
  for (const auto& [k, v] : g.items()) {
    const std::string p = absl::StrCat(gp, ".", k);
    if (k == "targets") {
      if (v.is_string()) {
        targets.push_back(v.get<std::string>());
      } else if (v.is_array()) {
        for (const json& e : v) {
          if (!e.is_string()) return RecipeFieldError(p, "expected a list of strings");
          targets.push_back(e.get<std::string>());
        }
      } else {
        return RecipeFieldError(p, "expected a list of strings");
      }
    } else if (k == "weights") {
      auto w = ParseWeights(v, p, index, spec);
      if (!w.ok()) return w.status();
      wa = *w;
      has_weights = true;
    } else if (k == "input_activations") {
      if (!v.is_null()) return RecipeFieldError(p, spec.input_activations_error);
    } else if (k == "output_activations") {
      if (!v.is_null()) return RecipeFieldError(p, "output activation quantization is not supported");
    } else {
      return RecipeFieldError(p, "unknown field (known: targets, weights, input_activations, output_activations)");
    }
  }
  if (targets.empty()) return RecipeFieldError(gp + ".targets", "is required");
  if (!has_weights) return RecipeFieldError(gp + ".weights", "is required");
  auto m = TargetMatcher::Create(targets, ignore, gp);
  if (!m.ok()) return m.status();
  all_targets->insert(all_targets->end(), targets.begin(), targets.end());
  return QuantSchemeGroup{std::move(*m), wa};
}

}  // namespace

int QuantScheme::Find(const std::string& module) const {
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].matcher.Matches(module)) return static_cast<int>(i);
  }
  return -1;
}

std::vector<ArgSpec> QuantSchemeArgSpecs(const std::string& scheme_help, std::vector<ArgSpec> own) {
  std::vector<ArgSpec> specs = {
      {"scheme", ArgType::kString, scheme_help},
      {"config_groups", ArgType::kObject, "explicit groups: targets + weights"},
      {"targets", ArgType::kStringList, "modules to quantize with scheme (default [Linear])"},
      {"ignore", ArgType::kStringList, "modules to skip (default [lm_head])"}};
  specs.insert(specs.end(), own.begin(), own.end());
  return specs;
}

absl::Status RecipeFieldError(const std::string& path, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat("recipe: ", path, ": ", msg));
}

absl::StatusOr<QuantScheme> ParseQuantScheme(const ModifierArgs& args, const QuantSchemeSpec& spec) {
  auto ignore = args.GetStringList("ignore", {"lm_head"});
  if (!ignore.ok()) return ignore.status();
  const bool has_scheme = args.Has("scheme"), has_groups = args.Has("config_groups");
  if (has_scheme == has_groups) {
    return absl::InvalidArgumentError(absl::StrCat("recipe: ", args.path(),
                                                   ": give exactly one of scheme or config_groups"));
  }
  std::vector<QuantSchemeGroup> groups;
  std::vector<std::string> all_targets;
  if (has_scheme) {
    auto scheme = args.GetString("scheme", "");
    if (!scheme.ok()) return scheme.status();
    auto preset = WeightOnlySchemePreset(*scheme);
    if (!preset.ok()) return args.Error("scheme", std::string(preset.status().message()));
    auto matcher = args.GetMatcher();
    if (!matcher.ok()) return matcher.status();
    all_targets = matcher->targets();
    groups.push_back({std::move(*matcher), *preset});
  } else {
    if (args.Has("targets")) return args.Error("targets", "with config_groups, targets go inside each group");
    const json& cg = args.json().at("config_groups");
    if (cg.empty()) return args.Error("config_groups", "is empty");
    for (const auto& [name, g] : cg.items()) {
      auto group = ParseGroup(g, absl::StrCat(args.path(), ".config_groups.", name), groups.size(), *ignore, spec,
                              &all_targets);
      if (!group.ok()) return group.status();
      groups.push_back(std::move(*group));
    }
  }
  auto any = TargetMatcher::Create(all_targets, *ignore, args.path());
  if (!any.ok()) return any.status();
  return QuantScheme{std::move(*any), std::move(groups)};
}

}  // namespace squeeze
