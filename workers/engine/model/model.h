// A Llama-family decoder's weights, held in engine types (no file formats).
//
// Layout conventions (the engine has exactly one):
// - Weight matrices are [out_features, in_features], as in HF / PyTorch.
// - RoPE uses the HF "half-split" layout (rotate_half: pairs (i, i + d/2)).
//   Loaders of llama2.c checkpoints (interleaved pairs (2i, 2i+1)) permute the
//   rows of q_proj / k_proj into this layout when loading.
// - Per-layer widths are read from each block's linear shapes, not from the
//   config, so structurally pruned models (fewer heads / channels in some
//   layers) run unchanged: n_heads(layer) = q_proj.out / head_dim,
//   n_kv_heads(layer) = k_proj.out / head_dim, hidden(layer) = gate_proj.out.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "workers/engine/core/tensor.h"
#include "workers/engine/model/linear.h"
#include "workers/engine/model/model_config.h"

namespace squeeze {

struct TransformerBlock {
  std::vector<float> attn_norm;  // [dim] RMSNorm weight before attention
  std::vector<float> ffn_norm;   // [dim] RMSNorm weight before the MLP
  std::unique_ptr<LinearLayer> q_proj;     // [n_heads*head_dim, dim] (+ bias on Qwen2)
  std::unique_ptr<LinearLayer> k_proj;     // [n_kv_heads*head_dim, dim]
  std::unique_ptr<LinearLayer> v_proj;     // [n_kv_heads*head_dim, dim]
  std::unique_ptr<LinearLayer> o_proj;     // [dim, n_heads*head_dim]
  std::unique_ptr<LinearLayer> gate_proj;  // [hidden, dim]
  std::unique_ptr<LinearLayer> up_proj;    // [hidden, dim]
  std::unique_ptr<LinearLayer> down_proj;  // [dim, hidden]
};

// A named slot holding one linear layer, so methods can read and replace it.
// `name` is the HF module name, e.g. "model.layers.3.self_attn.q_proj".
struct LinearSlot {
  std::string name;
  int layer = -1;  // block index, -1 for lm_head
  std::unique_ptr<LinearLayer>* slot = nullptr;
};

struct Model {
  ModelConfig config;
  MatrixRM embedding;  // [vocab_size, dim] token embeddings, fp32
  std::vector<TransformerBlock> blocks;
  std::vector<float> final_norm;  // [dim]
  // Output head [vocab_size, dim]; null when config.tie_word_embeddings, in
  // which case logits = h * embedding^T.
  std::unique_ptr<LinearLayer> lm_head;

  // The linear layers of block `layer` in execution order
  // (q, k, v, o, gate, up, down), named as HF names them.
  std::vector<LinearSlot> BlockLinears(int layer);
  // Every linear layer of the model, blocks in order, then lm_head if untied.
  std::vector<LinearSlot> AllLinears();
};

}  // namespace squeeze
