// WandaPruningModifier: recipe adapter for workers/methods/prune/wanda.h.
//   sparsity          fraction of weights zeroed, [0, 1) (default 0.5)
//   mask_structure    "0:0" unstructured (default) or "N:M" (N zeros per M inputs)
//   comparison_group  "row" (default, as the paper) or "layer"
//   sparsity_profile, owl_m, owl_lmbda   OWL layerwise sparsity (pruning_modifier_base.h)
//   targets / ignore  see target_match.h (defaults [Linear] / [lm_head])
// Needs calibration data (per-input-channel norms, no X^T X). Output: the
// masked weight as an fp32 DenseLinear (bias kept). Reports "sparsity",
// "rel_error" and, when the stage gathered X^T X anyway, "rel_output_error"
// (||(W - W_hat) X^T||_F / ||W X^T||_F). Argument parsing and the report loop
// are pruning_modifier_base.h's.
#include <algorithm>
#include <cmath>
#include <memory>

#include "workers/methods/prune/sparsegpt.h"
#include "workers/methods/prune/wanda.h"
#include "workers/runner/modifier_registry.h"
#include "workers/runner/pruning_modifier_base.h"

namespace squeeze {
namespace {

class WandaPruningModifier final : public PruningModifierBase {
 public:
  WandaPruningModifier(TargetMatcher matcher, WandaOptions options)
      : PruningModifierBase("WandaPruningModifier", std::move(matcher)), options_(options) {}
  bool needs_calibration() const override { return true; }

 protected:
  absl::StatusOr<PrunedModule> PruneModule(const LayerContext& ctx, const LayerContext::Target& t,
                                           const MatrixRM& w) override {
    const ActivationStats* st = InputStats(ctx, t);
    if (st == nullptr) return absl::FailedPreconditionError("no calibration statistics of its input");
    PrunedModule m;
    WandaOptions o = options_;
    o.sparsity = LayerSparsity(ctx.layer, options_.sparsity);
    auto pruned = WandaPrune(w, st->ChannelNorms(), o, &m.stats);
    if (!pruned.ok()) return pruned.status();
    m.weight = std::move(*pruned);
    if (st->has_xtx()) {
      const Eigen::MatrixXd wo = w.cast<double>();
      const double base = (wo * st->xtx()).cwiseProduct(wo).sum();
      m.metrics["rel_output_error"] =
          base > 0.0 ? std::sqrt(std::max(0.0, OutputErrorSq(w, m.weight, st->xtx())) / base) : 0.0;
    }
    return m;
  }

 private:
  WandaOptions options_;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  WandaOptions o;
  if (auto common = ParsePruneArgsInto(args, &o); !common.ok()) return common.status();
  auto cmp = ParseComparisonGroup(args, PruneComparison::kRow);
  if (!cmp.ok()) return cmp.status();
  o.comparison = *cmp;
  return MakePruningModifier<WandaPruningModifier>(args, o);
}

}  // namespace

void RegisterWandaPruningModifier(ModifierRegistry& registry) {
  registry.Register({"WandaPruningModifier",
                     "zero the weights of lowest |w| * ||x||_2 per output row (Wanda; unstructured or N:M)",
                     PruningArgSpecs({{"comparison_group", ArgType::kString, "\"row\" (default) or \"layer\""}}),
                     Create});
}

}  // namespace squeeze
