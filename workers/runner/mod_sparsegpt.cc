// SparseGPTModifier: recipe adapter for workers/methods/prune/sparsegpt.h.
//   sparsity          fraction of weights zeroed, [0, 1) (default 0.5)
//   mask_structure    "0:0" unstructured (default) or "N:M" (N zeros per M inputs)
//   block_size        columns per block (default 128; a multiple of M for N:M)
//   dampening_frac    dampening, fraction of mean(diag H) (default 0.01)
//   targets / ignore  see target_match.h (defaults [Linear] / [lm_head])
// Needs calibration data with X^T X. Output: the pruned and OBS-updated
// weight as an fp32 DenseLinear (bias kept). Reports "sparsity", "rel_error"
// (||W - W_hat||_F / ||W||_F, large by design: kept weights move),
// "rel_output_error" (||(W - W_hat) X^T||_F / ||W X^T||_F over the calibration
// inputs) and "dead_columns".
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/methods/prune/sparsegpt.h"
#include "workers/methods/quant/rtn.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {
namespace {

class SparseGPTModifier final : public Modifier {
 public:
  SparseGPTModifier(TargetMatcher matcher, SparseGptOptions options)
      : matcher_(std::move(matcher)), options_(options) {}
  std::string type() const override { return "SparseGPTModifier"; }
  const TargetMatcher& matcher() const override { return matcher_; }
  bool needs_calibration() const override { return true; }
  bool needs_xtx() const override { return true; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    if (ctx.inputs == nullptr) {
      return absl::FailedPreconditionError("SparseGPTModifier: no calibration inputs for this layer");
    }
    for (LayerContext::Target& t : ctx.targets) {
      std::unique_ptr<LinearLayer>& slot = *t.slot.slot;
      const ActivationStats* st =
          (t.which >= 0 && t.which < static_cast<int>(ctx.inputs->stats.size())) ? ctx.inputs->stats[t.which] : nullptr;
      if (st == nullptr || st->channels() != slot->in_features() || !st->has_xtx()) {
        return absl::FailedPreconditionError(
            absl::StrCat("SparseGPTModifier: ", t.slot.name, ": no X^T X statistics of its input"));
      }
      const MatrixRM w = slot->DenseWeight();
      auto res = SparseGptPrune(w, st->xtx(), st->count(), options_,
                                ctx.pool != nullptr ? *ctx.pool : ThreadPool::Default());
      if (!res.ok()) {
        return absl::Status(res.status().code(),
                            absl::StrCat("SparseGPTModifier: ", t.slot.name, ": ", res.status().message()));
      }
      ModuleReport r;
      r.module = t.slot.name;
      r.modifier = type();
      r.metrics["sparsity"] = res->stats.sparsity();
      r.metrics["rel_error"] = RelativeError(w, res->weight);
      r.metrics["rel_output_error"] = res->rel_output_error;
      r.metrics["dead_columns"] = static_cast<double>(res->dead_columns);
      r.metrics["bytes_before"] = static_cast<double>(slot->StorageBytes());
      std::vector<float> bias(slot->bias().begin(), slot->bias().end());
      slot = DenseLinear::FromMatrix(std::move(res->weight), std::move(bias));
      r.kind = slot->kind();
      r.metrics["bytes_after"] = static_cast<double>(slot->StorageBytes());
      reports->push_back(std::move(r));
    }
    return absl::OkStatus();
  }

 private:
  TargetMatcher matcher_;
  SparseGptOptions options_;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  SparseGptOptions o;
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
  auto block = args.GetInt("block_size", 128);
  if (!block.ok()) return block.status();
  if (*block < 1 || *block > (1 << 20)) return args.Error("block_size", absl::StrCat(*block, " is outside [1, 2^20]"));
  o.block_size = static_cast<int>(*block);
  if (!o.mask.unstructured() && o.block_size % o.mask.m != 0) {
    return args.Error("block_size", absl::StrCat(o.block_size, " is not a multiple of M = ", o.mask.m,
                                                 " of mask_structure \"", *mask, "\""));
  }
  auto damp = args.GetNumber("dampening_frac", 0.01);
  if (!damp.ok()) return damp.status();
  if (!(*damp >= 0.0 && std::isfinite(*damp))) {
    return args.Error("dampening_frac", absl::StrCat(*damp, " is not a number >= 0"));
  }
  o.dampening_frac = *damp;
  auto matcher = args.GetMatcher();
  if (!matcher.ok()) return matcher.status();
  return std::unique_ptr<Modifier>(std::make_unique<SparseGPTModifier>(std::move(*matcher), o));
}

}  // namespace

void RegisterSparseGPTModifier(ModifierRegistry& registry) {
  registry.Register({"SparseGPTModifier",
                     "prune with OBS weight updates from the calibration Hessian (SparseGPT; unstructured or N:M)",
                     {{"sparsity", ArgType::kNumber, "fraction zeroed, [0, 1); default 0.5"},
                      {"mask_structure", ArgType::kString, "\"0:0\" unstructured or \"N:M\""},
                      {"block_size", ArgType::kInt, "columns per block; default 128"},
                      {"dampening_frac", ArgType::kNumber, "fraction of mean(diag H) added to diag H; default 0.01"},
                      {"targets", ArgType::kStringList, "modules to prune (default [Linear])"},
                      {"ignore", ArgType::kStringList, "modules to skip (default [lm_head])"}},
                     Create});
}

}  // namespace squeeze
