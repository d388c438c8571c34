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
      if (v.is_null()) continue;
      if (v.is_string() && v.get<std::string>() == "minmax") continue;
      if (spec.allow_mse_observer && v.is_string() && v.get<std::string>() == "mse") {
        a.observer = QuantObserver::kMse;
        continue;
      }
      return RecipeFieldError(p, spec.observer_error);
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

// A config group's `input_activations`: only int8 symmetric per-token
// dynamic quantization is implemented (w8a8_linear.h).
absl::Status ParseInputActivations(const json& a, const std::string& path) {
  if (!a.is_object()) return RecipeFieldError(path, "expected a mapping or null");
  const std::string want = "only int8 symmetric per-token dynamic activations are supported "
                           "(num_bits: 8, type: int, symmetric: true, strategy: token, dynamic: true)";
  bool has_strategy = false, has_dynamic = false;
  for (const auto& [k, v] : a.items()) {
    const std::string p = absl::StrCat(path, ".", k);
    if (k == "num_bits") {
      if (!v.is_number_integer() || v.get<int>() != 8) return RecipeFieldError(p, want);
    } else if (k == "type") {
      if (!v.is_string() || v.get<std::string>() != "int") return RecipeFieldError(p, want);
    } else if (k == "symmetric") {
      if (!v.is_boolean() || !v.get<bool>()) return RecipeFieldError(p, want);
    } else if (k == "strategy") {
      if (!v.is_string() || v.get<std::string>() != "token") return RecipeFieldError(p, want);
      has_strategy = true;
    } else if (k == "dynamic") {
      if (!v.is_boolean() || !v.get<bool>()) return RecipeFieldError(p, want);
      has_dynamic = true;
    } else if (k == "observer") {
      if (!v.is_null() && !(v.is_string() && v.get<std::string>() == "minmax")) {
        return RecipeFieldError(p, "dynamic activations take no observer (null or minmax)");
      }
    } else if (k == "group_size") {
      if (!v.is_null()) return RecipeFieldError(p, "does not apply to strategy token");
    } else {
      return RecipeFieldError(p, "unknown field (known: num_bits, type, symmetric, strategy, dynamic, observer)");
    }
  }
  if (!has_strategy) return RecipeFieldError(path + ".strategy", "is required (token)");
  if (!has_dynamic) return RecipeFieldError(path + ".dynamic", "is required (true)");
  return absl::OkStatus();
}

// W8A8 layers take 8-bit symmetric per-channel weights.
absl::Status CheckW8A8Weights(const WeightQuantArgs& w, const std::string& path) {
  if (w.num_bits != 8 || !w.symmetric || w.strategy != QuantStrategy::kChannel) {
    return RecipeFieldError(path, absl::StrCat("int8 input activations need weights num_bits 8, symmetric, "
                                               "strategy channel (got ", w.ShortName(), ")"));
  }
  return absl::OkStatus();
}

// One entry of config_groups, number `index`, at YAML path `gp`; appends its
// targets to `all_targets`.
absl::StatusOr<QuantSchemeGroup> ParseGroup(const json& g, const std::string& gp, size_t index,
                                            const std::vector<std::string>& ignore, const QuantSchemeSpec& spec,
                                            std::vector<std::string>* all_targets) {
  if (!g.is_object()) return RecipeFieldError(gp, "expected a mapping");
  std::vector<std::string> targets;
  bool has_weights = false, act = false;
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
      if (v.is_null()) continue;
      if (!spec.allow_input_activations) return RecipeFieldError(p, spec.input_activations_error);
      if (absl::Status s = ParseInputActivations(v, p); !s.ok()) return s;
      act = true;
    } else if (k == "output_activations") {
      if (!v.is_null()) return RecipeFieldError(p, "output activation quantization is not supported");
    } else {
      return RecipeFieldError(p, "unknown field (known: targets, weights, input_activations, output_activations)");
    }
  }
  if (targets.empty()) return RecipeFieldError(gp + ".targets", "is required");
  if (!has_weights) return RecipeFieldError(gp + ".weights", "is required");
  if (act) {
    if (absl::Status s = CheckW8A8Weights(wa, gp + ".weights"); !s.ok()) return s;
  }
  auto m = TargetMatcher::Create(targets, ignore, gp);
  if (!m.ok()) return m.status();
  all_targets->insert(all_targets->end(), targets.begin(), targets.end());
  return QuantSchemeGroup{std::move(*m), wa, act};
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
    auto preset = FindSchemePreset(*scheme);
    if (!preset.ok()) return args.Error("scheme", std::string(preset.status().message()));
    if (preset->int8_token_activations && !spec.allow_input_activations) {
      return args.Error("scheme", absl::StrCat(*scheme, ": ", spec.input_activations_error));
    }
    auto matcher = args.GetMatcher();
    if (!matcher.ok()) return matcher.status();
    all_targets = matcher->targets();
    groups.push_back({std::move(*matcher), preset->weights, preset->int8_token_activations});
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
