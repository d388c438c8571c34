// MagnitudePruningModifier: recipe adapter for workers/methods/prune/magnitude.h.
//   sparsity          fraction of weights zeroed, [0, 1) (default 0.5)
//   mask_structure    "0:0" unstructured (default) or "N:M" (N zeros per M inputs)
//   comparison_group  "layer" (default) or "row": where the smallest are ranked
//   targets / ignore  see target_match.h (defaults [Linear] / [lm_head])
// Output: the masked weight as an fp32 DenseLinear (bias kept).
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/methods/prune/magnitude.h"
#include "workers/methods/quant/rtn.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {
namespace {

class MagnitudePruningModifier final : public Modifier {
 public:
  MagnitudePruningModifier(TargetMatcher matcher, MagnitudeOptions options)
      : matcher_(std::move(matcher)), options_(options) {}
  std::string type() const override { return "MagnitudePruningModifier"; }
  const TargetMatcher& matcher() const override { return matcher_; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    for (LayerContext::Target& t : ctx.targets) {
      std::unique_ptr<LinearLayer>& slot = *t.slot.slot;
      const MatrixRM w = slot->DenseWeight();
      PruneStats stats;
      auto pruned = MagnitudePrune(w, options_, &stats);
      if (!pruned.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("MagnitudePruningModifier: ", t.slot.name, ": ", pruned.status().message()));
      }
      ModuleReport r;
      r.module = t.slot.name;
      r.modifier = type();
      r.metrics["sparsity"] = stats.sparsity();
      r.metrics["rel_error"] = RelativeError(w, *pruned);
      r.metrics["bytes_before"] = static_cast<double>(slot->StorageBytes());
      std::vector<float> bias(slot->bias().begin(), slot->bias().end());
      slot = DenseLinear::FromMatrix(std::move(*pruned), std::move(bias));
      r.kind = slot->kind();
      r.metrics["bytes_after"] = static_cast<double>(slot->StorageBytes());
      reports->push_back(std::move(r));
    }
    return absl::OkStatus();
  }

 private:
  TargetMatcher matcher_;
  MagnitudeOptions options_;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  MagnitudeOptions o;
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
  if (!o.mask.unstructured() && args.Has("sparsity") && std::abs(o.sparsity - o.mask.sparsity()) > 1e-9) {
    return args.Error("sparsity", absl::StrCat(o.sparsity, " contradicts mask_structure \"", *mask,
                                               "\" (which zeroes exactly ", o.mask.sparsity(), ")"));
  }
  auto cmp = args.GetString("comparison_group", "layer");
  if (!cmp.ok()) return cmp.status();
  if (*cmp == "layer") {
    o.comparison = PruneComparison::kLayer;
  } else if (*cmp == "row") {
    o.comparison = PruneComparison::kRow;
  } else {
    return args.Error("comparison_group", absl::StrCat("unknown value \"", *cmp, "\" (expected layer or row)"));
  }
  auto matcher = args.GetMatcher();
  if (!matcher.ok()) return matcher.status();
  return std::unique_ptr<Modifier>(std::make_unique<MagnitudePruningModifier>(std::move(*matcher), o));
}

}  // namespace

void RegisterMagnitudePruningModifier(ModifierRegistry& registry) {
  registry.Register({"MagnitudePruningModifier",
                     "zero the smallest-magnitude weights (unstructured or N:M)",
                     {{"sparsity", ArgType::kNumber, "fraction zeroed, [0, 1); default 0.5"},
                      {"mask_structure", ArgType::kString, "\"0:0\" unstructured or \"N:M\""},
                      {"comparison_group", ArgType::kString, "\"layer\" (default) or \"row\""},
                      {"targets", ArgType::kStringList, "modules to prune (default [Linear])"},
                      {"ignore", ArgType::kStringList, "modules to skip (default [lm_head])"}},
                     Create});
}

}  // namespace squeeze
