// MagnitudePruningModifier: recipe adapter for workers/methods/prune/magnitude.h.
//   sparsity          fraction of weights zeroed, [0, 1) (default 0.5)
//   mask_structure    "0:0" unstructured (default) or "N:M" (N zeros per M inputs)
//   comparison_group  "layer" (default) or "row": where the smallest are ranked
//   sparsity_profile, owl_m, owl_lmbda   OWL layerwise sparsity (pruning_modifier_base.h)
//   targets / ignore  see target_match.h (defaults [Linear] / [lm_head])
// Output: the masked weight as an fp32 DenseLinear (bias kept); the argument
// parsing and report loop are pruning_modifier_base.h's.
#include <memory>

#include "workers/methods/prune/magnitude.h"
#include "workers/runner/modifier_registry.h"
#include "workers/runner/pruning_modifier_base.h"

namespace squeeze {
namespace {

class MagnitudePruningModifier final : public PruningModifierBase {
 public:
  MagnitudePruningModifier(TargetMatcher matcher, MagnitudeOptions options)
      : PruningModifierBase("MagnitudePruningModifier", std::move(matcher)), options_(options) {}
  // Only OWL's layer allocation needs calibration data.
  bool needs_calibration() const override { return owl(); }

 protected:
  absl::StatusOr<PrunedModule> PruneModule(const LayerContext& ctx, const LayerContext::Target&,
                                           const MatrixRM& w) override {
    PrunedModule m;
    MagnitudeOptions o = options_;
    o.sparsity = LayerSparsity(ctx.layer, options_.sparsity);
    auto pruned = MagnitudePrune(w, o, &m.stats);
    if (!pruned.ok()) return pruned.status();
    m.weight = std::move(*pruned);
    return m;
  }

 private:
  MagnitudeOptions options_;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  MagnitudeOptions o;
  if (auto common = ParsePruneArgsInto(args, &o); !common.ok()) return common.status();
  auto cmp = ParseComparisonGroup(args, PruneComparison::kLayer);
  if (!cmp.ok()) return cmp.status();
  o.comparison = *cmp;
  return MakePruningModifier<MagnitudePruningModifier>(args, o);
}

}  // namespace

void RegisterMagnitudePruningModifier(ModifierRegistry& registry) {
  registry.Register({"MagnitudePruningModifier",
                     "zero the smallest-magnitude weights (unstructured or N:M)",
                     PruningArgSpecs({{"comparison_group", ArgType::kString, "\"layer\" (default) or \"row\""}}),
                     Create});
}

}  // namespace squeeze
