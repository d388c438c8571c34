// SparseGPTModifier: recipe adapter for workers/methods/prune/sparsegpt.h.
//   sparsity          fraction of weights zeroed, [0, 1) (default 0.5)
//   mask_structure    "0:0" unstructured (default) or "N:M" (N zeros per M inputs)
//   block_size        columns per block (default 128; a multiple of M for N:M)
//   dampening_frac    dampening, fraction of mean(diag H) (default 0.01)
//   sparsity_profile, owl_m, owl_lmbda   OWL layerwise sparsity (pruning_modifier_base.h)
//   targets / ignore  see target_match.h (defaults [Linear] / [lm_head])
// Needs calibration data with X^T X. Output: the pruned and OBS-updated
// weight as an fp32 DenseLinear (bias kept). Reports "sparsity", "rel_error"
// (||W - W_hat||_F / ||W||_F, large by design: kept weights move),
// "rel_output_error" (||(W - W_hat) X^T||_F / ||W X^T||_F over the calibration
// inputs) and "dead_columns". Argument parsing and the report loop are
// pruning_modifier_base.h's.
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/methods/prune/sparsegpt.h"
#include "workers/runner/modifier_registry.h"
#include "workers/runner/pruning_modifier_base.h"

namespace squeeze {
namespace {

class SparseGPTModifier final : public PruningModifierBase {
 public:
  SparseGPTModifier(TargetMatcher matcher, SparseGptOptions options)
      : PruningModifierBase("SparseGPTModifier", std::move(matcher)), options_(options) {}
  bool needs_calibration() const override { return true; }
  bool needs_xtx() const override { return true; }

 protected:
  absl::StatusOr<PrunedModule> PruneModule(const LayerContext& ctx, const LayerContext::Target& t,
                                           const MatrixRM& w) override {
    const ActivationStats* st = InputStats(ctx, t);
    if (st == nullptr || !st->has_xtx()) return absl::FailedPreconditionError("no X^T X statistics of its input");
    SparseGptOptions o = options_;
    o.sparsity = LayerSparsity(ctx.layer, options_.sparsity);
    auto res = SparseGptPrune(w, st->xtx(), st->count(), o,
                              ctx.pool != nullptr ? *ctx.pool : ThreadPool::Default());
    if (!res.ok()) return res.status();
    PrunedModule m;
    m.weight = std::move(res->weight);
    m.stats = res->stats;
    m.metrics["rel_output_error"] = res->rel_output_error;
    m.metrics["dead_columns"] = static_cast<double>(res->dead_columns);
    return m;
  }

 private:
  SparseGptOptions options_;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  SparseGptOptions o;
  auto common = ParsePruneArgsInto(args, &o);
  if (!common.ok()) return common.status();
  auto block = args.GetInt("block_size", 128);
  if (!block.ok()) return block.status();
  if (*block < 1 || *block > (1 << 20)) return args.Error("block_size", absl::StrCat(*block, " is outside [1, 2^20]"));
  o.block_size = static_cast<int>(*block);
  if (!o.mask.unstructured() && o.block_size % o.mask.m != 0) {
    return args.Error("block_size", absl::StrCat(o.block_size, " is not a multiple of M = ", o.mask.m,
                                                 " of mask_structure \"", common->mask_text, "\""));
  }
  auto damp = args.GetNumber("dampening_frac", 0.01);
  if (!damp.ok()) return damp.status();
  if (!(*damp >= 0.0 && std::isfinite(*damp))) {
    return args.Error("dampening_frac", absl::StrCat(*damp, " is not a number >= 0"));
  }
  o.dampening_frac = *damp;
  return MakePruningModifier<SparseGPTModifier>(args, o);
}

}  // namespace

void RegisterSparseGPTModifier(ModifierRegistry& registry) {
  registry.Register({"SparseGPTModifier",
                     "prune with OBS weight updates from the calibration Hessian (SparseGPT; unstructured or N:M)",
                     PruningArgSpecs({{"block_size", ArgType::kInt, "columns per block; default 128"},
                                      {"dampening_frac", ArgType::kNumber,
                                       "fraction of mean(diag H) added to diag H; default 0.01"}}),
                     Create});
}

}  // namespace squeeze
