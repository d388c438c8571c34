// Hyper-parameters of a Llama-family decoder (Llama, Mistral, Qwen2).
// Names follow llama2.c; the HF config.json key each comes from is noted.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace squeeze {

struct ModelConfig {
  std::string architecture = "LlamaForCausalLM";  // config.json "architectures"[0]
  std::string model_type = "llama";               // "llama" | "mistral" | "qwen2"
  int dim = 0;             // hidden_size
  int hidden_dim = 0;      // intermediate_size (SwiGLU width)
  int n_layers = 0;        // num_hidden_layers
  int n_heads = 0;         // num_attention_heads
  int n_kv_heads = 0;      // num_key_value_heads (== n_heads without GQA)
  int head_dim = 0;        // head_dim, else hidden_size / num_attention_heads
  int vocab_size = 0;      // vocab_size
  int max_seq_len = 0;     // max_position_embeddings
  float rope_theta = 10000.0f;  // rope_theta
  float norm_eps = 1e-5f;       // rms_norm_eps
  bool tie_word_embeddings = false;  // lm_head shares the embedding matrix
  bool attention_bias = false;       // q/k/v projections carry biases (Qwen2)
  int bos_token_id = 1;
  int eos_token_id = 2;
  int sliding_window = 0;  // Mistral; 0 = full attention
  // Per-layer widths of a structurally pruned model (config.json extension
  // key "squeeze_layer_widths", see hf_config.h). Empty = every layer has the
  // widths above; otherwise n_layers entries each, with
  // 0 < layer_n_heads[l] <= n_heads, 0 < layer_n_kv_heads[l] <= n_kv_heads,
  // layer_n_heads[l] % layer_n_kv_heads[l] == 0, 0 < layer_hidden_dim[l] <= hidden_dim.
  std::vector<int> layer_n_heads;
  std::vector<int> layer_n_kv_heads;
  std::vector<int> layer_hidden_dim;
  // After whole-layer removal (methods/prune/layer_removal.h): for each block,
  // the index of the layer of the original model it came from, ascending
  // (config.json extension key "squeeze_source_layers"). Empty = no layer was
  // removed (block i is original layer i).
  std::vector<int> source_layers;

  // Checks sizes are positive and consistent (dim == n_heads * head_dim is NOT
  // required: Qwen/Mistral variants may differ; n_heads % n_kv_heads == 0 is).
  absl::Status Validate() const;
};

}  // namespace squeeze
