// The training loop: pre-training (cross-entropy) or distillation from a
// teacher (forward KL / reverse KL / generalized JSD, optionally on-policy),
// AdamW with warmup + cosine, global-norm clipping, gradient accumulation,
// activation checkpointing, checkpoints every N steps and bit-identical resume.
//
// One optimizer step s (0-based):
//   on_policy = lmbda > 0 && (rng() >> 11) * 2^-53 < lmbda
//   for each of grad_accum micro-batches:
//     b = SampleBatch(data, batch, seq, rng)
//     on-policy: each row keeps its first prompt_len tokens and the student
//       samples the rest (temperature 1, seed = rng()) with the engine's
//       forward + KV cache (what MiniLLM / GKD call student-generated outputs)
//     loss = CE(student, targets) | Distill(student, teacher) scaled 1/grad_accum
//     backward (gradients add up)
//   grad_norm = ClipGradNorm(max_norm); AdamW step with lr = ScheduledLr(s)
// Everything that decides the result is the model, the data, the options and
// the one std::mt19937_64 (seeded with `seed`), so a checkpoint of parameters,
// AdamW moments, step and the rng state resumes bit-identically.
//
// Checkpoint files in checkpoint_dir (each written atomically):
//   ckpt-<step, 8 digits>.safetensors  tensors "param/<name>", "adam_m/<name>",
//                                      "adam_v/<name>" (F32)
//   latest.json   {"format": "squeeze-train-v1", "step", "file", "rng" (the
//                 mt19937_64 state as text), "loss_history": [...]}; written
//                 after the tensors, so it always names a complete file.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/model.h"
#include "workers/engine/train/data.h"
#include "workers/engine/train/losses.h"
#include "workers/engine/train/optimizer.h"
#include "workers/engine/train/train_model.h"

namespace squeeze::train {

struct TrainOptions {
  int64_t steps = 100;
  int batch = 8;
  int seq = 64;
  int grad_accum = 1;
  uint64_t seed = 0;
  float lr = 1e-3f;
  float min_lr = 0.0f;
  int64_t warmup_steps = 0;
  AdamWOptions adamw;
  double grad_clip = 1.0;  // <= 0: no clipping
  bool activation_checkpointing = false;
  // Distillation (a teacher is given): the divergence and its parameters.
  LossKind loss = LossKind::kCrossEntropy;
  float temperature = 1.0f;
  float beta = 0.5f;   // generalized JSD
  float lmbda = 0.0f;  // on-policy fraction (GKD); 0 = always dataset sequences
  int prompt_len = 8;  // on-policy: tokens kept from the dataset row
  // Hidden-state matching (hidden_match.h), with a teacher: the outputs of
  // student blocks hidden_layers[k] are pulled towards teacher block
  // hidden_teacher_layers[k] (empty = DefaultTeacherLayer) by an MSE of
  // weight hidden_weight, added to the loss above. When the widths differ a
  // projection [teacher dim, student dim] is learned with the student
  // (parameter "hidden_proj.<k>.weight", initialised to the truncated
  // identity; checkpointed like every parameter).
  std::vector<int> hidden_layers;
  std::vector<int> hidden_teacher_layers;
  float hidden_weight = 1.0f;
  // Checkpoints: every N steps (0 = never) and when stopped.
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;
};

struct StepLog {
  int64_t step = 0;  // 1-based count of completed steps
  double loss = 0;
  double lr = 0;
  double grad_norm = 0;
  bool on_policy = false;
  double tokens_per_second = 0;
  double hidden_loss = 0;  // the hidden-state part of `loss` (0 without hidden_layers)
};

class Trainer {
 public:
  // student, data (and teacher when distilling) must outlive the trainer.
  // InvalidArgument for inconsistent options (names the field).
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(TrainModel* student, const Model* teacher,
                                                          const TokenDataset* data, const TrainOptions& options,
                                                          ThreadPool* pool);
  // Loads the latest checkpoint of options.checkpoint_dir when there is one
  // (returns true); false when there is none. Errors: a checkpoint that does
  // not match the model (names the tensor).
  absl::StatusOr<bool> Resume();
  // Runs steps until options.steps are done or *stop becomes true (then a
  // checkpoint is written when checkpoint_dir is set). on_step may be empty.
  absl::Status Run(const std::function<void(const StepLog&)>& on_step, const std::atomic<bool>* stop = nullptr);
  // One optimizer step (no checkpointing).
  absl::StatusOr<StepLog> Step();
  absl::Status SaveCheckpoint();

  int64_t step() const { return step_; }
  const std::vector<StepLog>& history() const { return history_; }

 private:
  Trainer(TrainModel* student, const Model* teacher, const TokenDataset* data, const TrainOptions& options,
          ThreadPool* pool);
  absl::Status OnPolicyInputs(Batch& b);
  absl::Status TeacherLogits(const Batch& b, MatrixRM& logits);

  TrainModel* student_;
  const Model* teacher_;
  const TokenDataset* data_;
  TrainOptions options_;
  ThreadPool* pool_;
  std::vector<NamedParam> params_;
  std::vector<int> teacher_layers_;            // per options_.hidden_layers entry
  std::vector<std::unique_ptr<Param>> projs_;  // per entry; null = same width
  AdamW adamw_;
  std::mt19937_64 rng_;
  int64_t step_ = 0;
  std::vector<StepLog> history_;
};

}  // namespace squeeze::train
