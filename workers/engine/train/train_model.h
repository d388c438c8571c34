// A Llama-family decoder in trainable form, and its training forward /
// backward.
//
// TrainForward runs `batch` sequences of `seq` tokens (row b*seq + t sits at
// position t) through embedding -> blocks -> final RMSNorm -> head, with the
// same math as the inference forward (forward.h), keeping per block what the
// backward needs. With activation checkpointing only each block's input is
// kept and the block's forward is recomputed during the backward (less
// memory, ~1/3 more compute, bit-identical gradients).
// TrainBackward takes dLoss/dlogits [B*T, vocab] and ADDS the gradients of
// every parameter (embedding, norms, all linears, head; a tied head adds its
// part to the embedding's gradient).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/model.h"
#include "workers/engine/train/param.h"
#include "workers/engine/train/trainable_linear.h"

namespace squeeze::train {

struct TrainBlock {
  Param attn_norm, ffn_norm;  // [dim]
  std::array<std::unique_ptr<TrainableLinear>, kNumBlockLinears> linears;  // BlockLinear order
  TrainableLinear& lin(BlockLinear w) { return *linears[static_cast<int>(w)]; }
  const TrainableLinear& lin(BlockLinear w) const { return *linears[static_cast<int>(w)]; }
};

struct TrainModel {
  ModelConfig config;
  Param embedding;  // [vocab, dim]
  std::vector<TrainBlock> blocks;
  Param final_norm;  // [dim]
  std::unique_ptr<TrainableLinear> lm_head;  // null when tied to the embedding
  // Frozen parameters keep their values: the optimizer skips them.
  bool freeze_embedding = false;
  bool freeze_norms = false;

  // Every trainable parameter with its HF-style name, in a fixed order
  // (embedding, blocks in order: norms then linears, final norm, head).
  std::vector<NamedParam> Params();
  void ZeroGrad();
  // An inference Model with the current weights (each linear's ToInference()).
  Model ToModel() const;
};

// How each inference linear becomes trainable. Called with the module name
// (e.g. "model.layers.0.mlp.up_proj" or "lm_head") and the layer.
using LinearConverter =
    std::function<absl::StatusOr<std::unique_ptr<TrainableLinear>>(const std::string& name, const LinearLayer& layer)>;

// Dense conversion (exact zeros become masks when keep_sparsity).
LinearConverter DenseConverter(bool keep_sparsity);

// Copies `model` into trainable form. ValidateModel must pass.
absl::StatusOr<TrainModel> FromModel(const Model& model, const LinearConverter& convert);

// A freshly initialised model: weights N(0, 0.02^2), output projections
// (o_proj, down_proj) scaled by 1/sqrt(2 n_layers), norms 1 (GPT-2 style).
TrainModel InitTrainModel(const ModelConfig& config, uint64_t seed);

struct BlockActivations {
  MatrixRM x_in;  // block input [N, dim]: always kept
  // Kept unless checkpointing (then recomputed in the backward):
  MatrixRM a, q, k, v, attn, h_mid, m, g, u, s;
  std::vector<float> r1, r2, probs;
};

struct ForwardState {
  int batch = 0, seq = 0;
  std::vector<int> tokens;  // [B*T]
  bool checkpointing = false;
  std::vector<BlockActivations> blocks;
  MatrixRM h_final, normed;  // [N, dim]
  std::vector<float> r_final;
  MatrixRM logits;  // [N, vocab]
};

// tokens: batch*seq ids. InvalidArgument for bad sizes / ids / seq > max_seq_len.
absl::Status TrainForward(const TrainModel& model, const std::vector<int>& tokens, int batch, int seq,
                          bool checkpointing, ForwardState* state, ThreadPool& pool);
// dlogits [B*T, vocab]. Accumulates parameter gradients.
absl::Status TrainBackward(TrainModel& model, ForwardState& state, const MatrixRM& dlogits, ThreadPool& pool);
// The same with extra gradients on block outputs (hidden-state matching,
// hidden_match.h): dhidden[l] [N, dim] is dLoss/d(output of block l) — block
// l's output is state.blocks[l + 1].x_in, the last block's is state.h_final —
// added where the backward reaches it; an empty matrix (or an empty vector)
// adds nothing. dhidden has n_layers entries or none.
absl::Status TrainBackward(TrainModel& model, ForwardState& state, const MatrixRM& dlogits, ThreadPool& pool,
                           const std::vector<MatrixRM>& dhidden);
// Block l's output in `state` (see above).
const MatrixRM& BlockOutput(const ForwardState& state, int layer);

}  // namespace squeeze::train
