// Sequential (layer-by-layer) calibration, the GPTQ / SparseGPT scheme.
//
// The hidden states of the whole calibration set are held at block i's input
// ([len_s, dim] fp32 per sequence s). For i = 0 .. n_layers-1:
//   1. block i runs on every sequence; hooks.on_input sees each linear's
//      input rows (one call per sequence and linear; q/k/v share a buffer,
//      gate/up another),
//   2. hooks.on_block_done(i, model) may replace block i's linears in `model`
//      (it returns whether it changed anything),
//   3. if it did, block i is re-run with the new weights; its outputs become
//      block i+1's inputs (the errors of compressed earlier blocks propagate),
//   4. hooks.progress(i + 1, n_layers).
// Peak memory: the weights + two copies of the calibration set's hidden
// states + one block's intermediate activations for one sequence.
// Each sequence is an independent causal sequence starting at position 0.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/model.h"

namespace squeeze {

struct LinearInput {
  int layer = 0;
  BlockLinear which = BlockLinear::kQ;
  const std::string* name = nullptr;  // HF module name, "model.layers.0.self_attn.q_proj"
  int sequence = 0;                   // index into the calibration set
  const float* x = nullptr;           // rows x cols, row-major; valid during the call only
  int64_t rows = 0;
  int64_t cols = 0;
};

struct SequentialHooks {
  // Receives the inputs of every linear of the running block. May be empty.
  std::function<void(const LinearInput&)> on_input;
  // Called once block `layer` has seen the whole calibration set; may replace
  // that block's linears in `model`. Returns true when it changed weights.
  // May be empty (nothing changes). An error stops the run.
  std::function<absl::StatusOr<bool>(int layer, Model& model)> on_block_done;
  // Called after each block: (blocks done, n_layers).
  std::function<void(int done, int total)> progress;
};

// Runs the scheme over `sequences` (token ids; each non-empty). Errors: a bad
// model (ValidateModel), bad token ids, a failing hook.
absl::Status RunSequentialCalibration(Model& model, const std::vector<std::vector<int>>& sequences,
                                      const SequentialHooks& hooks, ThreadPool& pool = ThreadPool::Default());

}  // namespace squeeze
