// WandaPruningModifier: recipe adapter for workers/methods/prune/wanda.h.
//   sparsity          fraction of weights zeroed, [0, 1) (default 0.5)
//   mask_structure    "0:0" unstructured (default) or "N:M" (N zeros per M inputs)
//   comparison_group  "row" (default, as the paper) or "layer"
//   targets / ignore  see target_match.h (defaults [Linear] / [lm_head])
// Needs calibration data (per-input-channel norms, no X^T X). Output: the
// masked weight as an fp32 DenseLinear (bias kept). Reports "sparsity",
// "rel_error" and, when the stage gathered X^T X anyway, "rel_output_error"
// (||(W - W_hat) X^T||_F / ||W X^T||_F).
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/methods/prune/sparsegpt.h"
#include "workers/methods/prune/wanda.h"
#include "workers/methods/quant/rtn.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {
namespace {

class WandaPruningModifier final : public Modifier {
 public:
  WandaPruningModifier(TargetMatcher matcher, WandaOptions options)
      : matcher_(std::move(matcher)), options_(options) {}
  std::string type() const override { return "WandaPruningModifier"; }
  const TargetMatcher& matcher() const override { return matcher_; }
  bool needs_calibration() const override { return true; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    if (ctx.inputs == nullptr) {
      return absl::FailedPreconditionError("WandaPruningModifier: no calibration inputs for this layer");
    }
    for (LayerContext::Target& t : ctx.targets) {
      std::unique_ptr<LinearLayer>& slot = *t.slot.slot;
      const ActivationStats* st =
          (t.which >= 0 && t.which < static_cast<int>(ctx.inputs->stats.size())) ? ctx.inputs->stats[t.which] : nullptr;
      if (st == nullptr || st->channels() != slot->in_features()) {
        return absl::FailedPreconditionError(
            absl::StrCat("WandaPruningModifier: ", t.slot.name, ": no calibration statistics of its input"));
      }
      const MatrixRM w = slot->DenseWeight();
      PruneStats stats;
      auto pruned = WandaPrune(w, st->ChannelNorms(), options_, &stats);
      if (!pruned.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("WandaPruningModifier: ", t.slot.name, ": ", pruned.status().message()));
      }
      ModuleReport r;
      r.module = t.slot.name;
      r.modifier = type();
      r.metrics["sparsity"] = stats.sparsity();
      r.metrics["rel_error"] = RelativeError(w, *pruned);
      if (st->has_xtx()) {
        const Eigen::MatrixXd wo = w.cast<double>();
        const double base = (wo * st->xtx()).cwiseProduct(wo).sum();
        r.metrics["rel_output_error"] =
            base > 0.0 ? std::sqrt(std::max(0.0, OutputErrorSq(w, *pruned, st->xtx())) / base) : 0.0;
      }
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
  WandaOptions options_;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  WandaOptions o;
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
  auto cmp = args.GetString("comparison_group", "row");
  if (!cmp.ok()) return cmp.status();
  if (*cmp == "row") {
    o.comparison = PruneComparison::kRow;
  } else if (*cmp == "layer") {
    o.comparison = PruneComparison::kLayer;
  } else {
    return args.Error("comparison_group", absl::StrCat("unknown value \"", *cmp, "\" (expected row or layer)"));
  }
  auto matcher = args.GetMatcher();
  if (!matcher.ok()) return matcher.status();
  return std::unique_ptr<Modifier>(std::make_unique<WandaPruningModifier>(std::move(*matcher), o));
}

}  // namespace

void RegisterWandaPruningModifier(ModifierRegistry& registry) {
  registry.Register({"WandaPruningModifier",
                     "zero the weights of lowest |w| * ||x||_2 per output row (Wanda; unstructured or N:M)",
                     {{"sparsity", ArgType::kNumber, "fraction zeroed, [0, 1); default 0.5"},
                      {"mask_structure", ArgType::kString, "\"0:0\" unstructured or \"N:M\""},
                      {"comparison_group", ArgType::kString, "\"row\" (default) or \"layer\""},
                      {"targets", ArgType::kStringList, "modules to prune (default [Linear])"},
                      {"ignore", ArgType::kStringList, "modules to skip (default [lm_head])"}},
                     Create});
}

}  // namespace squeeze
