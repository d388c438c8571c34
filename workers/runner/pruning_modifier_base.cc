#include "workers/runner/pruning_modifier_base.h"

#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/methods/quant/rtn.h"

namespace squeeze {

absl::StatusOr<PruneArgs> ParsePruneArgs(const ModifierArgs& args) {
  PruneArgs o;
  auto sparsity = args.GetNumber("sparsity", 0.5);
  if (!sparsity.ok()) return sparsity.status();
  if (!(*sparsity >= 0.0 && *sparsity < 1.0)) {
    return args.Error("sparsity", absl::StrCat(*sparsity, " is outside [0, 1)"));
  }
  o.sparsity = *sparsity;
  auto mask = args.GetString("mask_structure", "0:0");
  if (!mask.ok()) return mask.status();
  auto parsed = ParseMaskStructure(*mask);
  if (!parsed.ok()) return args.Error("mask_structure", std::string(parsed.status().message()));
  o.mask = *parsed;
  o.mask_text = *mask;
  if (!o.mask.unstructured() && args.Has("sparsity") && std::abs(o.sparsity - o.mask.sparsity()) > 1e-9) {
    return args.Error("sparsity", absl::StrCat(o.sparsity, " contradicts mask_structure \"", *mask,
                                               "\" (which zeroes exactly ", o.mask.sparsity(), ")"));
  }
  return o;
}

std::vector<ArgSpec> PruningArgSpecs(std::vector<ArgSpec> own) {
  std::vector<ArgSpec> specs = {{"sparsity", ArgType::kNumber, "fraction zeroed, [0, 1); default 0.5"},
                                {"mask_structure", ArgType::kString, "\"0:0\" unstructured or \"N:M\""}};
  specs.insert(specs.end(), own.begin(), own.end());
  specs.push_back({"targets", ArgType::kStringList, "modules to prune (default [Linear])"});
  specs.push_back({"ignore", ArgType::kStringList, "modules to skip (default [lm_head])"});
  return specs;
}

absl::StatusOr<PruneComparison> ParseComparisonGroup(const ModifierArgs& args, PruneComparison def) {
  const bool layer_first = def == PruneComparison::kLayer;
  auto cmp = args.GetString("comparison_group", layer_first ? "layer" : "row");
  if (!cmp.ok()) return cmp.status();
  if (*cmp == "layer") return PruneComparison::kLayer;
  if (*cmp == "row") return PruneComparison::kRow;
  return args.Error("comparison_group", absl::StrCat("unknown value \"", *cmp, "\" (expected ",
                                                     layer_first ? "layer or row" : "row or layer", ")"));
}

const ActivationStats* PruningModifierBase::InputStats(const LayerContext& ctx, const LayerContext::Target& t) {
  if (ctx.inputs == nullptr) return nullptr;
  const ActivationStats* st =
      (t.which >= 0 && t.which < static_cast<int>(ctx.inputs->stats.size())) ? ctx.inputs->stats[t.which] : nullptr;
  if (st == nullptr || st->channels() != (*t.slot.slot)->in_features()) return nullptr;
  return st;
}

absl::Status PruningModifierBase::ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) {
  if (needs_calibration() && ctx.inputs == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(type_, ": no calibration inputs for this layer"));
  }
  for (LayerContext::Target& t : ctx.targets) {
    std::unique_ptr<LinearLayer>& slot = *t.slot.slot;
    const MatrixRM w = slot->DenseWeight();
    auto pruned = PruneModule(ctx, t, w);
    if (!pruned.ok()) {
      return absl::Status(pruned.status().code(),
                          absl::StrCat(type_, ": ", t.slot.name, ": ", pruned.status().message()));
    }
    ModuleReport r;
    r.module = t.slot.name;
    r.modifier = type_;
    r.metrics = std::move(pruned->metrics);
    r.metrics["sparsity"] = pruned->stats.sparsity();
    r.metrics["rel_error"] = RelativeError(w, pruned->weight);
    r.metrics["bytes_before"] = static_cast<double>(slot->StorageBytes());
    std::vector<float> bias(slot->bias().begin(), slot->bias().end());
    slot = DenseLinear::FromMatrix(std::move(pruned->weight), std::move(bias));
    r.kind = slot->kind();
    r.metrics["bytes_after"] = static_cast<double>(slot->StorageBytes());
    reports->push_back(std::move(r));
  }
  return absl::OkStatus();
}

}  // namespace squeeze
