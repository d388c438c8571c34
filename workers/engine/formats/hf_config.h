// Hugging Face config.json <-> ModelConfig.
//
// Supported architectures: LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM. Keys and defaults follow transformers' LlamaConfig /
// MistralConfig / Qwen2Config:
//   hidden_size, intermediate_size, num_hidden_layers, num_attention_heads
//     (required); num_key_value_heads (default num_attention_heads);
//   head_dim (default hidden_size / num_attention_heads; null = default);
//   vocab_size (required); max_position_embeddings (default 2048 / 131072 /
//     32768 for llama / mistral / qwen2); rope_theta (default 10000, Qwen2
//     1e6); rms_norm_eps (default 1e-6); tie_word_embeddings (default false);
//   attention_bias (default false; Qwen2 always has q/k/v biases);
//   bos_token_id / eos_token_id (an int, or a list whose first entry is used);
//   sliding_window (Mistral; Qwen2 only when use_sliding_window is true).
// Extension key (ours; transformers ignores unknown keys) for structurally
// pruned models whose layers have different widths:
//   "squeeze_layer_widths": {"num_attention_heads": [n_layers ints],
//                            "num_key_value_heads": [n_layers ints],
//                            "intermediate_size":   [n_layers ints]}
// The standard keys then hold the maximum over layers; each layer's
// q/k/v/o and gate/up/down shapes must match its entries exactly (BuildModel).
// Written only when the layers differ; a uniformly pruned model gets plain
// standard keys (and loads in transformers as is).
// Rejected with InvalidArgument: other architectures, rope_scaling other than
// null or type "default", hidden_act other than silu, Qwen2 sliding windows.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/model/model.h"
#include "workers/engine/model/model_config.h"

namespace squeeze {

// Parses config.json text; `source` (the file path) prefixes every error.
// The result passes ModelConfig::Validate().
absl::StatusOr<ModelConfig> ParseHfConfig(absl::string_view json_text, const std::string& source);

// Reads and parses a config.json file.
absl::StatusOr<ModelConfig> ReadHfConfig(const std::string& path);

// The inverse: a config.json (pretty-printed, keys in a fixed order) that
// ParseHfConfig maps back to an equal ModelConfig. `torch_dtype` is written as
// given ("float32", "float16", "bfloat16").
std::string HfConfigJson(const ModelConfig& config, absl::string_view torch_dtype = "float32");

// model.config with the widths its linears really have (what SaveModel
// writes): per layer, heads = q_proj.out / head_dim, kv heads =
// k_proj.out / head_dim, hidden = gate_proj.out; the standard fields become
// the maxima over layers and the layer_* vectors are filled only when layers
// differ. model.config itself when it has no blocks or the derived config
// would not validate.
ModelConfig EffectiveConfig(const Model& model);

}  // namespace squeeze
