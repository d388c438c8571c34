#include "workers/runner/pruning_modifier_base.h"

#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/forward.h"
#include "workers/methods/prune/owl.h"
#include "workers/methods/prune/sparse_linear.h"
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
  auto profile = args.GetString("sparsity_profile", "uniform");
  if (!profile.ok()) return profile.status();
  if (*profile == "owl") {
    o.owl = true;
  } else if (*profile != "uniform") {
    return args.Error("sparsity_profile", absl::StrCat("unknown value \"", *profile, "\" (expected uniform or owl)"));
  }
  auto m = args.GetNumber("owl_m", 5.0);
  if (!m.ok()) return m.status();
  if (!(*m > 0.0)) return args.Error("owl_m", absl::StrCat(*m, " must be > 0"));
  auto lambda = args.GetNumber("owl_lmbda", 0.08);
  if (!lambda.ok()) return lambda.status();
  if (!(*lambda >= 0.0 && *lambda < 1.0)) return args.Error("owl_lmbda", absl::StrCat(*lambda, " is outside [0, 1)"));
  o.owl_m = *m;
  o.owl_lambda = *lambda;
  if (o.owl && !o.mask.unstructured()) {
    return args.Error("sparsity_profile", absl::StrCat("\"owl\" needs unstructured pruning, not mask_structure \"",
                                                       *mask, "\""));
  }
  if (!o.owl && (args.Has("owl_m") || args.Has("owl_lmbda"))) {
    return args.Error(args.Has("owl_m") ? "owl_m" : "owl_lmbda", "is only used with sparsity_profile: owl");
  }
  auto storage = args.GetString("storage", "sparse");
  if (!storage.ok()) return storage.status();
  if (*storage == "sparse") {
    o.storage = PruneArgs::Storage::kSparse;
  } else if (*storage == "bitmask") {
    o.storage = PruneArgs::Storage::kBitmask;
  } else if (*storage == "dense") {
    o.storage = PruneArgs::Storage::kDense;
  } else {
    return args.Error("storage", absl::StrCat("unknown value \"", *storage, "\" (expected sparse, bitmask or dense)"));
  }
  if (o.owl) {  // every layer's sparsity must stay in [0, 1): the spread is 2 * lambda around the mean
    if (o.sparsity - 2.0 * o.owl_lambda < 0.0 || o.sparsity + 2.0 * o.owl_lambda >= 1.0) {
      return args.Error("owl_lmbda", absl::StrCat(o.owl_lambda, " with sparsity ", o.sparsity,
                                                  " could give a layer sparsity outside [0, 1) (needs sparsity +/- 2 * owl_lmbda inside)"));
    }
  }
  return o;
}

std::vector<ArgSpec> PruningArgSpecs(std::vector<ArgSpec> own) {
  std::vector<ArgSpec> specs = {{"sparsity", ArgType::kNumber, "fraction zeroed, [0, 1); default 0.5"},
                                {"mask_structure", ArgType::kString, "\"0:0\" unstructured or \"N:M\""}};
  specs.push_back({"sparsity_profile", ArgType::kString, "\"uniform\" (default) or \"owl\" (outlier-weighted layerwise)"});
  specs.push_back({"owl_m", ArgType::kNumber, "OWL outlier threshold M (default 5)"});
  specs.push_back({"owl_lmbda", ArgType::kNumber, "OWL lambda: layer sparsities span 2*lambda (default 0.08)"});
  specs.push_back({"storage", ArgType::kString,
                   "\"sparse\" (default: N:M values + indices, or a bitmask + values), \"bitmask\" or \"dense\""});
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

absl::StatusOr<nlohmann::json> PruningModifierBase::PrepareStage(const Model& model,
                                                                 const std::vector<std::vector<int>>& calibration,
                                                                 ThreadPool& pool) {
  if (!prune_args_.owl) return nlohmann::json();
  auto include = [&](int layer, BlockLinear w) {
    return matcher_.Matches(absl::StrCat("model.layers.", layer, ".", BlockLinearSuffix(w)));
  };
  auto ratios = ModelOutlierRatios(model, calibration, prune_args_.owl_m, include, pool);
  if (!ratios.ok()) return absl::Status(ratios.status().code(), absl::StrCat(type_, ": OWL: ", ratios.status().message()));
  std::vector<double> d;
  std::vector<int> layers;
  for (int l = 0; l < static_cast<int>(ratios->size()); ++l) {
    if ((*ratios)[l] >= 0.0) {
      d.push_back((*ratios)[l]);
      layers.push_back(l);
    }
  }
  nlohmann::json out = {{"sparsity_profile", "owl"}, {"owl_m", prune_args_.owl_m},
                        {"owl_lmbda", prune_args_.owl_lambda}, {"outlier_ratio", *ratios}};
  nlohmann::json per_layer = nlohmann::json::array();
  for (size_t l = 0; l < ratios->size(); ++l) per_layer.push_back(nullptr);
  if (!d.empty()) {
    auto sp = OwlSparsities(d, prune_args_.sparsity, prune_args_.owl_lambda);
    if (!sp.ok()) return absl::Status(sp.status().code(), absl::StrCat(type_, ": ", sp.status().message()));
    for (size_t i = 0; i < layers.size(); ++i) per_layer[layers[i]] = (*sp)[i];
  }
  out["layer_sparsity"] = per_layer;
  SQ_RETURN_IF_ERROR(RestorePrepared(out));
  return out;
}

absl::Status PruningModifierBase::RestorePrepared(const nlohmann::json& prepared) {
  layer_sparsity_.clear();
  if (!prepared.is_object() || !prepared.contains("layer_sparsity") || !prepared["layer_sparsity"].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(type_, ": prepared stage state has no layer_sparsity"));
  }
  const nlohmann::json& ls = prepared["layer_sparsity"];
  for (size_t l = 0; l < ls.size(); ++l) {
    if (ls[l].is_number()) layer_sparsity_[static_cast<int>(l)] = ls[l].get<double>();
  }
  return absl::OkStatus();
}

absl::Status PruningModifierBase::CheckTargetShape(const std::string& module, int64_t in_features,
                                                  int64_t /*out_features*/) const {
  const MaskStructure& mask = prune_args_.mask;
  if (mask.unstructured() || in_features % mask.m == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "recipe: ", yaml_path_, ".mask_structure: \"", prune_args_.mask_text, "\" groups ", mask.m,
      " consecutive inputs, but ", module, " has ", in_features, " inputs (not a multiple of ", mask.m,
      "); add it to ignore or use another mask_structure"));
}

double PruningModifierBase::LayerSparsity(int layer, double uniform) const {
  auto it = layer_sparsity_.find(layer);
  return it == layer_sparsity_.end() ? uniform : it->second;
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
    const MaskStructure& mask = prune_args_.mask;
    if (prune_args_.storage == PruneArgs::Storage::kDense) {
      slot = DenseLinear::FromMatrix(std::move(pruned->weight), std::move(bias));
    } else {
      const bool nm = prune_args_.storage == PruneArgs::Storage::kSparse && !mask.unstructured() && mask.m <= 16 &&
                      w.cols() % mask.m == 0;
      auto sparse = nm ? SparseLinear::FromDense(pruned->weight, std::move(bias), SparseFormat::kNM, mask.m - mask.n, mask.m)
                       : SparseLinear::FromDense(pruned->weight, std::move(bias), SparseFormat::kBitmask);
      if (!sparse.ok()) {
        return absl::InternalError(absl::StrCat(type_, ": ", t.slot.name, ": ", sparse.status().message()));
      }
      slot = std::move(*sparse);
    }
    r.kind = slot->kind();
    r.metrics["bytes_after"] = static_cast<double>(slot->StorageBytes());
    reports->push_back(std::move(r));
  }
  return absl::OkStatus();
}

}  // namespace squeeze
