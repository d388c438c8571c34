// What the pruning modifiers (mod_magnitude.cc, mod_wanda.cc,
// mod_sparsegpt.cc) share: the common arguments and the per-module
// apply / report loop.
//
// Common arguments (llm-compressor's names):
//   sparsity          fraction of weights zeroed, [0, 1) (default 0.5)
//   mask_structure    "0:0" unstructured (default) or "N:M" (N zeros per M
//                     inputs); with N:M an explicit sparsity must equal N / M
//   comparison_group  "layer" or "row" (methods that rank within a group)
//   sparsity_profile  null / "uniform" (default): every layer gets `sparsity`;
//                     "owl": per-layer sparsity from the layer's outlier ratio
//                     (methods/prune/owl.h), mean equal to `sparsity`;
//                     unstructured only. Needs calibration (also for
//                     magnitude). The allocation is computed on the model as
//                     the stage starts and kept in the stage report
//                     ("prepared": outlier_ratio, layer_sparsity per layer).
//   owl_m             outlier threshold M (default 5, the paper's)
//   owl_lmbda         lambda: the layer sparsities span 2 * lambda around the
//                     target (default 0.08, the paper's LLaMA-7B setting)
//   storage           how the pruned weight is kept (and saved):
//                     "sparse" (default): zeros are not stored
//                     (methods/prune/sparse_linear.h) — the N:M layout
//                     ("sparse_<K>of<M>") for an N:M mask with M <= 16, else
//                     the bitmask layout ("sparse_bitmask"); "bitmask":
//                     always the bitmask layout; "dense": an fp32
//                     DenseLinear with explicit zeros (artifacts written
//                     before sparse storage existed look like this and still
//                     load).
//   targets / ignore  see target_match.h (defaults [Linear] / [lm_head])
// Output of every pruning modifier: the pruned weight in its `storage` kind
// (bias kept), reported with "sparsity" (fraction of zero weights), "rel_error"
// (||W - W_hat||_F / ||W||_F), "bytes_before", "bytes_after" and whatever
// figures the method adds.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/calib/activation_stats.h"
#include "workers/engine/core/tensor.h"
#include "workers/methods/prune/magnitude.h"
#include "workers/methods/prune/mask_structure.h"
#include "workers/runner/modifier.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {

struct PruneArgs {
  double sparsity = 0.5;  // in [0, 1)
  MaskStructure mask;
  std::string mask_text;  // mask_structure as written, for error messages
  bool owl = false;       // sparsity_profile: owl
  double owl_m = 5.0;     // > 0
  double owl_lambda = 0.08;  // >= 0
  enum class Storage { kSparse, kBitmask, kDense };
  Storage storage = Storage::kSparse;
};

// sparsity and mask_structure of `args`, checked against each other.
absl::StatusOr<PruneArgs> ParsePruneArgs(const ModifierArgs& args);

// ParsePruneArgs, copied into the method's options (any struct with
// `sparsity` and `mask`).
template <typename Options>
absl::StatusOr<PruneArgs> ParsePruneArgsInto(const ModifierArgs& args, Options* options) {
  auto common = ParsePruneArgs(args);
  if (!common.ok()) return common.status();
  options->sparsity = common->sparsity;
  options->mask = common->mask;
  return common;
}

// comparison_group of `args`: "layer" or "row", `def` when absent. The error
// lists the default first.
absl::StatusOr<PruneComparison> ParseComparisonGroup(const ModifierArgs& args, PruneComparison def);

// The schema of a pruning modifier: sparsity, mask_structure, then the
// method's own arguments `own`, then targets, ignore.
std::vector<ArgSpec> PruningArgSpecs(std::vector<ArgSpec> own);

// The modifier M(matcher, options), with the matcher from targets / ignore.
template <typename M, typename Options>
absl::StatusOr<std::unique_ptr<Modifier>> MakePruningModifier(const ModifierArgs& args, const Options& options) {
  auto matcher = args.GetMatcher();
  if (!matcher.ok()) return matcher.status();
  auto common = ParsePruneArgs(args);
  if (!common.ok()) return common.status();
  auto m = std::make_unique<M>(std::move(*matcher), options);
  m->SetPruneArgs(*common, args.path());
  return std::unique_ptr<Modifier>(std::move(m));
}

// One module's pruning result.
struct PrunedModule {
  MatrixRM weight;                         // W_hat [out, in]
  PruneStats stats;                        // zeros of W_hat
  std::map<std::string, double> metrics;   // method-specific figures
};

class PruningModifierBase : public Modifier {
 public:
  PruningModifierBase(std::string type, TargetMatcher matcher)
      : type_(std::move(type)), matcher_(std::move(matcher)) {}
  std::string type() const override { return type_; }
  const TargetMatcher& matcher() const override { return matcher_; }

  // For each target: PruneModule, then the DenseLinear and the report. With
  // needs_calibration(), FailedPrecondition when ctx has no inputs. A
  // PruneModule error comes back with its code as
  // "<type>: <module>: <message>".
  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) final;

  void SetPruneArgs(const PruneArgs& args, std::string yaml_path) {
    prune_args_ = args;
    yaml_path_ = std::move(yaml_path);
  }
  // N:M: M must divide the target's in_features.
  absl::Status CheckTargetShape(const std::string& module, int64_t in_features, int64_t out_features) const override;
  bool owl() const { return prune_args_.owl; }
  // OWL: the per-layer sparsities (null without sparsity_profile: owl).
  absl::StatusOr<nlohmann::json> PrepareStage(const Model& model, const std::vector<std::vector<int>>& calibration,
                                              ThreadPool& pool) override;
  absl::Status RestorePrepared(const nlohmann::json& prepared) override;

 protected:
  // Prunes `w`, the dense weight of target `t`.
  virtual absl::StatusOr<PrunedModule> PruneModule(const LayerContext& ctx, const LayerContext::Target& t,
                                                   const MatrixRM& w) = 0;

  // The calibration statistics of t's input when ctx has them and their
  // channel count is t's in_features; nullptr otherwise.
  static const ActivationStats* InputStats(const LayerContext& ctx, const LayerContext::Target& t);

  // The sparsity of block `layer`: OWL's allocation when prepared, else
  // `uniform` (the method's sparsity option).
  double LayerSparsity(int layer, double uniform) const;

 private:
  std::string type_;
  TargetMatcher matcher_;
  PruneArgs prune_args_;
  std::string yaml_path_;  // "<stage>.<group>.<type>", for errors
  std::map<int, double> layer_sparsity_;  // OWL allocation by block
};

}  // namespace squeeze
