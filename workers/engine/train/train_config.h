// `squeeze train --config FILE`: a YAML file describing a training run, and
// the run itself (pre-training from scratch, continued training from a
// checkpoint, or distillation from a teacher).
//
//   model:                  # a fresh model (or init_from: PATH instead)
//     dim: 64
//     hidden_dim: 172
//     n_layers: 4
//     n_heads: 8
//     n_kv_heads: 4         # default n_heads
//     head_dim: 8           # default dim / n_heads
//     vocab_size: 512       # default: the tokenizer's
//     max_seq_len: 256      # default: seq_len
//     tie_word_embeddings: true
//     rope_theta: 10000
//     norm_eps: 1e-5
//   init_from: PATH         # HF directory or llama2.c .bin (instead of model)
//   teacher: PATH           # distill from this model (then loss != ce)
//   loss: ce                # ce | forward_kl | reverse_kl | gkd
//   temperature: 1.0
//   beta: 0.5               # gkd
//   lmbda: 0.0              # gkd / minillm on-policy fraction
//   prompt_len: 8
//   tokenizer: PATH | byte  # llama2.c tokenizer.bin / tokenizer.json, or a
//                           # byte-level one (259 ids); default: beside
//                           # init_from / teacher
//   data: [FILE, {path: FILE, weight: 2, max_bytes: 100000}]
//   separator: "<|endoftext|>"   # document separator in the files
//   steps: 1000
//   batch_size: 16
//   grad_accum: 1
//   seq_len: 128
//   lr: 1e-3
//   min_lr: 1e-4
//   warmup_steps: 50
//   weight_decay: 0.1
//   beta1: 0.9
//   beta2: 0.95
//   grad_clip: 1.0
//   activation_checkpointing: false
//   seed: 0
//   threads: 0              # 0 = the default pool
//   out_dir: DIR            # DIR/model (HF checkpoint + tokenizer), DIR/train_log.json
//   checkpoint_every: 100   # DIR/checkpoints; a rerun resumes from there
//
// Unknown keys are rejected, naming the key.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/model_config.h"
#include "workers/engine/train/data.h"
#include "workers/engine/train/trainer.h"

namespace squeeze::train {

struct TrainConfig {
  std::optional<ModelConfig> model;  // fresh model; vocab 0 = tokenizer's
  std::string init_from;
  std::string teacher;
  std::string tokenizer;
  std::vector<TextSource> data;
  std::string separator;
  TrainOptions options;
  int threads = 0;
  std::string out_dir;
};

absl::StatusOr<TrainConfig> ParseTrainConfig(const std::string& yaml_text);
absl::StatusOr<TrainConfig> LoadTrainConfig(const std::string& path);

struct TrainRunResult {
  int64_t steps_done = 0;
  bool resumed = false;
  double first_loss = 0, final_loss = 0;  // mean of the first / last min(10, steps) steps
  std::string model_dir;
};

// Runs the whole thing; on_step gets every step (loss, tokens/s). A stop
// request checkpoints (when checkpoint_every > 0) and returns Cancelled.
absl::StatusOr<TrainRunResult> RunTraining(const TrainConfig& config,
                                           const std::function<void(const StepLog&)>& on_step,
                                           const std::atomic<bool>* stop = nullptr);

// A llama2.c tokenizer.bin with <unk>, <s>, </s> and the 256 byte pieces
// <0x00>..<0xFF> (ids 3..258): every text encodes byte by byte.
std::string ByteLevelTokenizerBin();

}  // namespace squeeze::train
