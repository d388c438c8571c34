// Distillation of a compressed student from a teacher, keeping the student's
// compression: the student's linears become trainable kinds that preserve it
//   DenseLinear with exact zeros  -> masked sparse (mask kept)
//   SparseLinear (bitmask / N:M)  -> masked sparse, exported back in the same
//                                    storage format (sparse_trainable.h)
//   PackedIntLinear               -> QAT on the same grid (qat_linear.h), or
//                                    LoRA adapters on the frozen packed base
//                                    (then exported merged, dense fp32)
//   FactorizedLinear (U V)        -> trained U and V, exported as U V factors
//   anything else                 -> dense
//   modules options.trainable rejects -> frozen (no parameters)
// then the training loop (engine/train/trainer.h) minimises the chosen
// divergence to the teacher's logits on text windows, and the trained layers
// replace the student's in place.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/model.h"
#include "workers/engine/train/data.h"
#include "workers/engine/train/trainer.h"

namespace squeeze {

struct DistillOptions {
  train::TrainOptions train;  // loss, temperature, beta, lmbda, steps, lr, ...
  std::string quantized_as = "qat";  // "qat" | "lora" for packed layers
  int lora_rank = 8;
  float lora_alpha = 16.0f;
  bool train_embeddings = false;  // embedding / norms frozen unless set
  bool train_norms = true;
  // Modules trained; the others stay frozen (their input gradient still
  // flows). Empty = every linear.
  std::function<bool(const std::string& module)> trainable;
  // Called after every optimizer step (loss, lr, grad norm, tokens/s, hidden
  // loss); may be empty.
  std::function<void(const train::StepLog&)> on_step;
};

// The converter described above.
train::LinearConverter StudentConverter(const DistillOptions& options);

struct DistillResult {
  std::vector<train::StepLog> history;
};

// Distills `student` (modified in place) from `teacher` on `data`.
absl::StatusOr<DistillResult> DistillInPlace(Model& student, const Model& teacher, const train::TokenDataset& data,
                                             const DistillOptions& options, ThreadPool& pool);

}  // namespace squeeze
