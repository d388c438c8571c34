// Modifier: one compression method as the stage runner applies it (the plug-in
// point for every method of issues 3, 4 and 5).
//
// The runner walks the model block by block. For each block (a "layer" in
// progress events) and each modifier of the current stage, it hands the
// modifier a LayerContext: the block's linear slots that the modifier's
// targets select (in execution order q, k, v, o, gate, up, down) and, when
// the modifier needs calibration data, the inputs those linears see on the
// calibration set with every earlier block already compressed (the
// sequential scheme of GPTQ / SparseGPT / llm-compressor). The modifier
// replaces slots in place (a masked dense layer, a PackedIntLinear, later a
// sparse or factorized kind) and reports per-module figures.
//
// Block-level methods (AWQ / SmoothQuant scaling through the RMSNorm,
// structured pruning of heads) get the whole block through ctx.model.
// The untied lm_head is offered as a final pseudo-layer (layer == n_layers)
// without calibration inputs.
//
// Methods must be deterministic: the same inputs give the same bits (this is
// what makes checkpoint / resume byte-identical).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/calib/activation_stats.h"
#include "workers/engine/device/device.h"
#include "workers/engine/model/model.h"
#include "workers/runner/device_usage.h"
#include "workers/runner/target_match.h"

namespace squeeze {

// Calibration statistics of one block's linear inputs (engine/calib/
// activation_stats.h), gathered over the whole calibration set with every
// earlier block already compressed. Index = BlockLinear (forward.h); q/k/v
// share one input, as do gate/up, so their entries point to the same stats.
// xtx() is filled only when a modifier of the stage asked for it.
struct LayerInputs {
  std::array<const ActivationStats*, 7> stats{};
  int64_t n_sequences = 0;
};

struct LayerContext {
  Model* model = nullptr;
  int layer = 0;  // block index; == n_layers for the untied lm_head
  // Selected slots of this layer, in execution order. Slot index within the
  // block: 0..6 as BlockLinear (forward.h); -1 for lm_head.
  struct Target {
    LinearSlot slot;
    int which = -1;
  };
  std::vector<Target> targets;
  const LayerInputs* inputs = nullptr;  // non-null iff needs_calibration()
  ThreadPool* pool = nullptr;
  uint64_t seed = 0;
  // The run's input model (the uncompressed model the job started from) and
  // calibration text; "" when unknown. DistillationModifier's default teacher
  // and dataset.
  std::string input_model_path;
  std::string calibration_text_path;
  // Progress from inside a long ApplyToLayer (distillation steps): sent to the
  // run's progress sink as an event of the current stage with this unit. May
  // be empty (then nothing is reported).
  std::function<void(const std::string& unit, int64_t i, int64_t n, const std::string& message,
                     const std::map<std::string, double>& metrics)>
      progress;
  // The current stage's entry of report.json (stages[i]) while ApplyToLayer
  // runs; null when there is none. A modifier may add ONE key of its own
  // with whole-stage figures (DistillationModifier: "training", the loss
  // curve). It must be deterministic (no timings): report.json is
  // byte-identical across identical runs. Never keep the pointer.
  nlohmann::json* stage_report = nullptr;
  // The run's device (engine/device/device.h); null = the CPU. A modifier
  // that can run on a GPU (GPTQModifier) uses it when it is cuda and records
  // per module where it ran in `device_usage` (null = not recorded).
  const Device* device = nullptr;
  StageDeviceUsage* device_usage = nullptr;
};

// Figures for one module after a modifier ran (reported in progress events
// and report.json). Metric names in use: "sparsity" (fraction of zero
// weights), "rel_error" (||W - W_hat||_F / ||W||_F), "max_abs_error",
// "bits" (per weight including scales), "bytes_before", "bytes_after".
struct ModuleReport {
  std::string module;
  std::string modifier;
  std::string kind;  // layer kind after the modifier
  std::map<std::string, double> metrics;
};

class Modifier {
 public:
  virtual ~Modifier() = default;
  virtual std::string type() const = 0;  // e.g. "MagnitudePruningModifier"
  virtual const TargetMatcher& matcher() const = 0;
  virtual bool needs_calibration() const { return false; }
  // With needs_calibration(): whether the X^T X Hessian is needed (GPTQ,
  // SparseGPT) or per-channel norms / maxima suffice (Wanda, AWQ).
  virtual bool needs_xtx() const { return false; }
  // Applies the method to ctx.targets (never empty); appends one report per
  // module it changed.
  virtual absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) = 0;

  // True when modifiers after this one in the same stage must not use the
  // calibration statistics captured before it ran: it rescales the block's
  // inputs through the RMSNorm (SmoothQuant, AWQ without quantizing) or
  // removes structures (structured pruning). RunRecipe then runs the rest of
  // the stage as a new stage with its own calibration pass
  // (SplitStagesForCalibration, stage_runner.h), as llm-compressor runs
  // smoothing before GPTQ. Default: false.
  virtual bool ends_calibration_pass() const { return false; }

  // Whole-model preparation, for methods that allocate per layer from
  // statistics of every layer (OWL's layerwise sparsity). With
  // needs_calibration(), the runner calls it once per stage before the
  // stage's first layer, with the model as the stage starts and the
  // calibration sequences. The JSON it returns (null = nothing decided) is
  // kept in the stage report under "prepared"; a run resumed inside the stage
  // hands it back through RestorePrepared instead of calling PrepareStage
  // again, so it decides exactly as the uninterrupted run. Defaults: nothing.
  virtual absl::StatusOr<nlohmann::json> PrepareStage(const Model& /*model*/,
                                                      const std::vector<std::vector<int>>& /*calibration*/,
                                                      ThreadPool& /*pool*/) {
    return nlohmann::json();
  }
  virtual absl::Status RestorePrepared(const nlohmann::json& /*prepared*/) { return absl::OkStatus(); }

  // Whole blocks to remove when the stage starts (layer removal, e.g. by
  // block influence): distinct indices of `model` as the stage starts, fewer
  // than its blocks. Called once per stage, before PrepareStage and the first
  // layer, with the calibration sequences when needs_calibration()
  // (else empty). `details` (a JSON object, may be left empty) goes into the
  // stage report beside "removed_layers". The runner removes the blocks
  // (methods/prune/layer_removal.h RemoveBlocks: later blocks are renumbered)
  // and records them in its checkpoints, so a resumed run removes the same
  // blocks without calling this again. Default: none.
  virtual absl::StatusOr<std::vector<int>> LayersToRemove(const Model& /*model*/,
                                                          const std::vector<std::vector<int>>& /*calibration*/,
                                                          ThreadPool& /*pool*/, nlohmann::json* /*details*/) {
    return std::vector<int>();
  }

  // Checks, before any work, that the modifier can apply to a target module
  // of this shape (e.g. an N:M mask needs M to divide in_features). Called by
  // CheckRecipeForModel (recipe.h) for every module the matcher selects;
  // InvalidArgument naming the YAML path and the module. Default: any shape.
  virtual absl::Status CheckTargetShape(const std::string& /*module*/, int64_t /*in_features*/,
                                        int64_t /*out_features*/) const {
    return absl::OkStatus();
  }
};

}  // namespace squeeze
