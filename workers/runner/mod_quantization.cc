// QuantizationModifier (round-to-nearest weight quantization): recipe adapter
// for workers/methods/quant/rtn.h, in llm-compressor's vocabulary.
//   scheme         W4A16 | W4A16_ASYM | W8A16 (W8A8 is recognised but needs
//                  activation quantization, not implemented yet), with
//                  targets / ignore (defaults [Linear] / [lm_head]); or
//   config_groups  {<group name>: {targets: [...], weights: {num_bits, type:
//                  int, symmetric, strategy: tensor|channel|group, group_size,
//                  observer: minmax}, input_activations: null}}; the first
//                  group whose targets match a module quantizes it; `ignore`
//                  applies to all groups.
// Output: a PackedIntLinear (real packed weights).
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/rtn.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {
namespace {

using nlohmann::json;

struct QuantGroup {
  TargetMatcher matcher;
  WeightQuantArgs args;
};

class QuantizationModifier final : public Modifier {
 public:
  QuantizationModifier(TargetMatcher any, std::vector<QuantGroup> groups)
      : any_(std::move(any)), groups_(std::move(groups)) {}
  std::string type() const override { return "QuantizationModifier"; }
  const TargetMatcher& matcher() const override { return any_; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    for (LayerContext::Target& t : ctx.targets) {
      const QuantGroup* g = nullptr;
      for (const QuantGroup& q : groups_) {
        if (q.matcher.Matches(t.slot.name)) {
          g = &q;
          break;
        }
      }
      if (g == nullptr) continue;
      std::unique_ptr<LinearLayer>& slot = *t.slot.slot;
      const MatrixRM w = slot->DenseWeight();
      std::vector<float> bias(slot->bias().begin(), slot->bias().end());
      auto q = QuantizeRtn(w, g->args, std::move(bias));
      if (!q.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("QuantizationModifier: ", t.slot.name, ": ", q.status().message()));
      }
      const MatrixRM w_hat = (*q)->DenseWeight();
      ModuleReport r;
      r.module = t.slot.name;
      r.modifier = type();
      r.metrics["rel_error"] = RelativeError(w, w_hat);
      r.metrics["max_abs_error"] = static_cast<double>((w - w_hat).cwiseAbs().maxCoeff());
      r.metrics["bytes_before"] = static_cast<double>(slot->StorageBytes());
      r.metrics["sparsity"] = static_cast<double>((w_hat.array() == 0.0f).count()) / static_cast<double>(w_hat.size());
      slot = std::move(*q);
      r.kind = slot->kind();
      r.metrics["bytes_after"] = static_cast<double>(slot->StorageBytes());
      r.metrics["bits"] = 8.0 * static_cast<double>(slot->StorageBytes()) / static_cast<double>(w.size());
      reports->push_back(std::move(r));
    }
    return absl::OkStatus();
  }

 private:
  TargetMatcher any_;  // union of the groups' targets, minus ignore
  std::vector<QuantGroup> groups_;
};

absl::Status GroupError(const std::string& path, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat("recipe: ", path, ": ", msg));
}

absl::StatusOr<WeightQuantArgs> ParseWeights(const json& w, const std::string& path) {
  if (!w.is_object()) return GroupError(path, "expected a mapping");
  WeightQuantArgs a;
  a.strategy = QuantStrategy::kChannel;
  a.group_size = 0;
  bool has_group_size = false;
  for (const auto& [k, v] : w.items()) {
    const std::string p = absl::StrCat(path, ".", k);
    if (k == "num_bits") {
      if (!v.is_number_integer()) return GroupError(p, "expected an integer");
      a.num_bits = v.get<int>();
      if (a.num_bits < 2 || a.num_bits > 8) return GroupError(p, absl::StrCat(a.num_bits, " is outside 2..8"));
    } else if (k == "type") {
      if (!v.is_string() || v.get<std::string>() != "int") return GroupError(p, "only type int is supported");
    } else if (k == "symmetric") {
      if (!v.is_boolean()) return GroupError(p, "expected true or false");
      a.symmetric = v.get<bool>();
    } else if (k == "strategy") {
      if (!v.is_string()) return GroupError(p, "expected a string");
      auto s = ParseQuantStrategy(v.get<std::string>());
      if (!s.ok()) return GroupError(p, std::string(s.status().message()));
      a.strategy = *s;
    } else if (k == "group_size") {
      if (v.is_null()) continue;
      if (!v.is_number_integer() || v.get<int64_t>() <= 0) return GroupError(p, "expected a positive integer");
      a.group_size = v.get<int>();
      has_group_size = true;
    } else if (k == "observer") {
      if (!v.is_null() && !(v.is_string() && v.get<std::string>() == "minmax")) {
        return GroupError(p, "only the minmax observer is implemented (MSE clipping search comes with issue 5)");
      }
    } else if (k == "dynamic") {
      if (!v.is_boolean() || v.get<bool>()) return GroupError(p, "dynamic weight quantization is not supported");
    } else if (k == "actorder") {
      if (!v.is_null() && !(v.is_boolean() && !v.get<bool>())) {
        return GroupError(p, "actorder applies to GPTQModifier, not round-to-nearest");
      }
    } else {
      return GroupError(p, "unknown field (known: num_bits, type, symmetric, strategy, group_size, observer, "
                           "dynamic, actorder)");
    }
  }
  if (a.strategy == QuantStrategy::kGroup && !has_group_size) {
    return GroupError(path + ".group_size", "is required for strategy group");
  }
  if (a.strategy != QuantStrategy::kGroup && has_group_size) {
    return GroupError(path + ".group_size", absl::StrCat("only applies to strategy group, not ",
                                                         QuantStrategyName(a.strategy)));
  }
  return a;
}

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  auto ignore = args.GetStringList("ignore", {"lm_head"});
  if (!ignore.ok()) return ignore.status();
  const bool has_scheme = args.Has("scheme"), has_groups = args.Has("config_groups");
  if (has_scheme == has_groups) {
    return absl::InvalidArgumentError(absl::StrCat("recipe: ", args.path(),
                                                   ": give exactly one of scheme or config_groups"));
  }
  std::vector<QuantGroup> groups;
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
    if (args.Has("targets")) {
      return args.Error("targets", "with config_groups, targets go inside each group");
    }
    const json& cg = args.json().at("config_groups");
    if (cg.empty()) return args.Error("config_groups", "is empty");
    for (const auto& [name, g] : cg.items()) {
      const std::string gp = absl::StrCat(args.path(), ".config_groups.", name);
      if (!g.is_object()) return GroupError(gp, "expected a mapping");
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
              if (!e.is_string()) return GroupError(p, "expected a list of strings");
              targets.push_back(e.get<std::string>());
            }
          } else {
            return GroupError(p, "expected a list of strings");
          }
        } else if (k == "weights") {
          auto w = ParseWeights(v, p);
          if (!w.ok()) return w.status();
          wa = *w;
          has_weights = true;
        } else if (k == "input_activations") {
          if (!v.is_null()) {
            return GroupError(p, "activation quantization (W8A8) is not implemented yet (SmoothQuant, issue 5)");
          }
        } else if (k == "output_activations") {
          if (!v.is_null()) return GroupError(p, "output activation quantization is not supported");
        } else {
          return GroupError(p, "unknown field (known: targets, weights, input_activations, output_activations)");
        }
      }
      if (targets.empty()) return GroupError(gp + ".targets", "is required");
      if (!has_weights) return GroupError(gp + ".weights", "is required");
      auto m = TargetMatcher::Create(targets, *ignore, gp);
      if (!m.ok()) return m.status();
      all_targets.insert(all_targets.end(), targets.begin(), targets.end());
      groups.push_back({std::move(*m), wa});
    }
  }
  auto any = TargetMatcher::Create(all_targets, *ignore, args.path());
  if (!any.ok()) return any.status();
  return std::unique_ptr<Modifier>(std::make_unique<QuantizationModifier>(std::move(*any), std::move(groups)));
}

}  // namespace

void RegisterQuantizationModifier(ModifierRegistry& registry) {
  registry.Register({"QuantizationModifier",
                     "round-to-nearest weight quantization into packed integers",
                     {{"scheme", ArgType::kString, "W4A16, W4A16_ASYM, W8A16 (W8A8: not yet)"},
                      {"config_groups", ArgType::kObject, "explicit groups: targets + weights"},
                      {"targets", ArgType::kStringList, "modules to quantize with scheme (default [Linear])"},
                      {"ignore", ArgType::kStringList, "modules to skip (default [lm_head])"}},
                     Create});
}

}  // namespace squeeze
