// GPTQModifier: recipe adapter for workers/methods/quant/gptq.h, in
// llm-compressor's vocabulary.
//   scheme / config_groups / targets / ignore   as QuantizationModifier
//       (mod_quantization.cc); a group's weights may also carry `actorder`
//   block_size       columns per lazy-update block (default 128)
//   dampening_frac   fraction of mean(diag H) added to diag H (default 0.01)
//   actorder         null / false (input order), "static" (= "weight"),
//                    "group" (= "dynamic"); compressed-tensors'
//                    ActivationOrdering. Default: static, as llm-compressor.
//                    A group's weights.actorder, when given, wins.
// Needs calibration data with X^T X; H = 2 X^T X / n for each linear input.
// Output: a PackedIntLinear (the same packed format as RTN; act-order
// "group" with group strategy adds weight_g_idx).
// Per-module figures: rel_error, max_abs_error (weights), output_rel_error
// (||(W - W_hat) X^T|| / ||W X^T|| on the calibration inputs),
// rtn_output_rel_error (the same for RTN at the same scheme, for
// comparison), gptq_loss (gptq.h), dead_columns, damp, bits, bytes.
#include <cmath>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "workers/methods/quant/gptq.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/rtn.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {
namespace {

using nlohmann::json;

struct GptqGroup {
  TargetMatcher matcher;
  GptqOptions options;
};

class GptqModifier final : public Modifier {
 public:
  GptqModifier(TargetMatcher any, std::vector<GptqGroup> groups) : any_(std::move(any)), groups_(std::move(groups)) {}
  std::string type() const override { return "GPTQModifier"; }
  const TargetMatcher& matcher() const override { return any_; }
  bool needs_calibration() const override { return true; }
  bool needs_xtx() const override { return true; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    for (LayerContext::Target& t : ctx.targets) {
      const GptqGroup* g = nullptr;
      for (const GptqGroup& q : groups_) {
        if (q.matcher.Matches(t.slot.name)) {
          g = &q;
          break;
        }
      }
      if (g == nullptr) continue;
      const ActivationStats* stats =
          (ctx.inputs != nullptr && t.which >= 0 && t.which < 7) ? ctx.inputs->stats[t.which] : nullptr;
      if (stats == nullptr) {
        return absl::FailedPreconditionError(absl::StrCat(
            "GPTQModifier: ", t.slot.name, ": no calibration inputs for this module (add it to ignore)"));
      }
      auto h = GptqHessian(*stats);
      if (!h.ok()) return absl::FailedPreconditionError(absl::StrCat("GPTQModifier: ", t.slot.name, ": ", h.status().message()));
      std::unique_ptr<LinearLayer>& slot = *t.slot.slot;
      const MatrixRM w = slot->DenseWeight();
      std::vector<float> bias(slot->bias().begin(), slot->bias().end());
      ThreadPool& pool = ctx.pool != nullptr ? *ctx.pool : ThreadPool::Default();
      auto q = QuantizeGptq(w, *h, g->options, std::move(bias), pool);
      if (!q.ok()) {
        return absl::Status(q.status().code(), absl::StrCat("GPTQModifier: ", t.slot.name, ": ", q.status().message()));
      }
      const MatrixRM w_hat = q->layer->DenseWeight();
      ModuleReport r;
      r.module = t.slot.name;
      r.modifier = type();
      r.metrics["rel_error"] = RelativeError(w, w_hat);
      r.metrics["max_abs_error"] = static_cast<double>((w - w_hat).cwiseAbs().maxCoeff());
      r.metrics["output_rel_error"] = RelativeOutputError(w, w_hat, stats->xtx());
      auto rtn = QuantizeRtn(w, g->options.quant);
      if (rtn.ok()) r.metrics["rtn_output_rel_error"] = RelativeOutputError(w, (*rtn)->DenseWeight(), stats->xtx());
      r.metrics["gptq_loss"] = q->loss;
      r.metrics["dead_columns"] = static_cast<double>(q->dead_columns);
      r.metrics["damp"] = q->damp;
      r.metrics["bytes_before"] = static_cast<double>(slot->StorageBytes());
      r.metrics["sparsity"] =
          static_cast<double>((w_hat.array() == 0.0f).count()) / static_cast<double>(w_hat.size());
      slot = std::move(q->layer);
      r.kind = slot->kind();
      r.metrics["bytes_after"] = static_cast<double>(slot->StorageBytes());
      r.metrics["bits"] = 8.0 * static_cast<double>(slot->StorageBytes()) / static_cast<double>(w.size());
      reports->push_back(std::move(r));
    }
    return absl::OkStatus();
  }

 private:
  TargetMatcher any_;
  std::vector<GptqGroup> groups_;
};

absl::Status GroupError(const std::string& path, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat("recipe: ", path, ": ", msg));
}

// actorder as YAML: null / false = none; a string = a compressed-tensors name.
absl::StatusOr<ActOrder> ParseActOrderValue(const json& v, const std::string& path) {
  if (v.is_null() || (v.is_boolean() && !v.get<bool>())) return ActOrder::kNone;
  if (!v.is_string()) {
    return GroupError(path, "expected null, false or one of static, weight, group, dynamic");
  }
  auto a = ParseActOrder(v.get<std::string>());
  if (!a.ok()) return GroupError(path, std::string(a.status().message()));
  return *a;
}

// A config group's `weights` (compressed-tensors QuantizationArgs).
absl::Status ParseWeights(const json& w, const std::string& path, WeightQuantArgs* a,
                          std::optional<ActOrder>* actorder) {
  if (!w.is_object()) return GroupError(path, "expected a mapping");
  a->strategy = QuantStrategy::kChannel;
  a->group_size = 0;
  bool has_group_size = false;
  for (const auto& [k, v] : w.items()) {
    const std::string p = absl::StrCat(path, ".", k);
    if (k == "num_bits") {
      if (!v.is_number_integer()) return GroupError(p, "expected an integer");
      a->num_bits = v.get<int>();
      if (a->num_bits < 2 || a->num_bits > 8) return GroupError(p, absl::StrCat(a->num_bits, " is outside 2..8"));
    } else if (k == "type") {
      if (!v.is_string() || v.get<std::string>() != "int") return GroupError(p, "only type int is supported");
    } else if (k == "symmetric") {
      if (!v.is_boolean()) return GroupError(p, "expected true or false");
      a->symmetric = v.get<bool>();
    } else if (k == "strategy") {
      if (!v.is_string()) return GroupError(p, "expected a string");
      auto s = ParseQuantStrategy(v.get<std::string>());
      if (!s.ok()) return GroupError(p, std::string(s.status().message()));
      a->strategy = *s;
    } else if (k == "group_size") {
      if (v.is_null()) continue;
      if (!v.is_number_integer() || v.get<int64_t>() <= 0) return GroupError(p, "expected a positive integer");
      a->group_size = v.get<int>();
      has_group_size = true;
    } else if (k == "observer") {
      if (!v.is_null() && !(v.is_string() && v.get<std::string>() == "minmax")) {
        return GroupError(p, "only the minmax observer is implemented");
      }
    } else if (k == "dynamic") {
      if (!v.is_boolean() || v.get<bool>()) return GroupError(p, "dynamic weight quantization is not supported");
    } else if (k == "actorder") {
      auto o = ParseActOrderValue(v, p);
      if (!o.ok()) return o.status();
      *actorder = *o;
    } else {
      return GroupError(p, "unknown field (known: num_bits, type, symmetric, strategy, group_size, observer, "
                           "dynamic, actorder)");
    }
  }
  if (a->strategy == QuantStrategy::kGroup && !has_group_size) {
    return GroupError(path + ".group_size", "is required for strategy group");
  }
  if (a->strategy != QuantStrategy::kGroup && has_group_size) {
    return GroupError(path + ".group_size",
                      absl::StrCat("only applies to strategy group, not ", QuantStrategyName(a->strategy)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  GptqOptions base;
  auto block = args.GetInt("block_size", 128);
  if (!block.ok()) return block.status();
  if (*block <= 0) return args.Error("block_size", absl::StrCat(*block, " must be positive"));
  base.block_size = *block;
  auto damp = args.GetNumber("dampening_frac", 0.01);
  if (!damp.ok()) return damp.status();
  if (!(*damp >= 0.0) || !std::isfinite(*damp)) return args.Error("dampening_frac", absl::StrCat(*damp, " must be >= 0"));
  base.dampening_frac = *damp;
  base.actorder = ActOrder::kStatic;  // llm-compressor's default
  if (args.json().contains("actorder")) {
    auto o = ParseActOrderValue(args.json().at("actorder"), absl::StrCat("", args.path(), ".actorder"));
    if (!o.ok()) return o.status();
    base.actorder = *o;
  }

  auto ignore = args.GetStringList("ignore", {"lm_head"});
  if (!ignore.ok()) return ignore.status();
  const bool has_scheme = args.Has("scheme"), has_groups = args.Has("config_groups");
  if (has_scheme == has_groups) {
    return absl::InvalidArgumentError(absl::StrCat("recipe: ", args.path(), ": give exactly one of scheme or config_groups"));
  }
  std::vector<GptqGroup> groups;
  std::vector<std::string> all_targets;
  if (has_scheme) {
    auto scheme = args.GetString("scheme", "");
    if (!scheme.ok()) return scheme.status();
    auto preset = WeightOnlySchemePreset(*scheme);
    if (!preset.ok()) return args.Error("scheme", std::string(preset.status().message()));
    auto matcher = args.GetMatcher();
    if (!matcher.ok()) return matcher.status();
    all_targets = matcher->targets();
    GptqOptions o = base;
    o.quant = *preset;
    groups.push_back({std::move(*matcher), o});
  } else {
    if (args.Has("targets")) return args.Error("targets", "with config_groups, targets go inside each group");
    const json& cg = args.json().at("config_groups");
    if (cg.empty()) return args.Error("config_groups", "is empty");
    for (const auto& [name, g] : cg.items()) {
      const std::string gp = absl::StrCat(args.path(), ".config_groups.", name);
      if (!g.is_object()) return GroupError(gp, "expected a mapping");
      std::vector<std::string> targets;
      bool has_weights = false;
      GptqOptions o = base;
      std::optional<ActOrder> group_order;
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
          if (absl::Status s = ParseWeights(v, p, &o.quant, &group_order); !s.ok()) return s;
          has_weights = true;
        } else if (k == "input_activations") {
          if (!v.is_null()) return GroupError(p, "activation quantization is not supported by GPTQModifier yet");
        } else if (k == "output_activations") {
          if (!v.is_null()) return GroupError(p, "output activation quantization is not supported");
        } else {
          return GroupError(p, "unknown field (known: targets, weights, input_activations, output_activations)");
        }
      }
      if (targets.empty()) return GroupError(gp + ".targets", "is required");
      if (!has_weights) return GroupError(gp + ".weights", "is required");
      if (group_order.has_value()) o.actorder = *group_order;
      auto m = TargetMatcher::Create(targets, *ignore, gp);
      if (!m.ok()) return m.status();
      all_targets.insert(all_targets.end(), targets.begin(), targets.end());
      groups.push_back({std::move(*m), o});
    }
  }
  auto any = TargetMatcher::Create(all_targets, *ignore, args.path());
  if (!any.ok()) return any.status();
  return std::unique_ptr<Modifier>(std::make_unique<GptqModifier>(std::move(*any), std::move(groups)));
}

}  // namespace

void RegisterGptqModifier(ModifierRegistry& registry) {
  registry.Register({"GPTQModifier",
                     "GPTQ weight quantization (Hessian-aware error feedback) into packed integers",
                     {{"scheme", ArgType::kString, "W4A16, W4A16_ASYM, W8A16"},
                      {"config_groups", ArgType::kObject, "explicit groups: targets + weights"},
                      {"targets", ArgType::kStringList, "modules to quantize with scheme (default [Linear])"},
                      {"ignore", ArgType::kStringList, "modules to skip (default [lm_head])"},
                      {"block_size", ArgType::kInt, "columns per lazy-update block (default 128)"},
                      {"dampening_frac", ArgType::kNumber, "fraction of mean diag(H) added to diag(H) (default 0.01)"},
                      {"actorder", ArgType::kAny, "null/false, static (weight), group (dynamic); default static"}},
                     Create});
}

}  // namespace squeeze
