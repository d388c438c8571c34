// A checkpoint as a set of HF-named tensors plus its config, independent of
// the file format it came from, and the one place that turns it into a Model.
//
// Both loaders (HF safetensors, llama2.c .bin) produce CheckpointTensors with
// HF names ("model.layers.0.self_attn.q_proj.weight", ...) and q/k rows in the
// HF half-split RoPE layout; BuildModel validates every shape and builds the
// Model, so both forms go through the same checks.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/model/model.h"
#include "workers/engine/model/model_config.h"

namespace squeeze {

struct SourceTensor {
  TensorView view;
  std::string file;  // where it came from, for error messages
};

struct CheckpointTensors {
  ModelConfig config;
  std::map<std::string, SourceTensor> tensors;  // HF names
  // module name -> LinearLayer kind recorded by SaveModel ("dense_f32",
  // "int4_g128", ...); modules not listed are dense.
  std::map<std::string, std::string> linear_kinds;
};

// The token embedding as GGUF stores it (any ggml type the reader knows):
// "<kEmbeddingGgmlRows>" U8 [vocab, row bytes] and "<kEmbeddingGgmlType>" one
// I64, the GgmlType. BuildModel dequantizes it row by row into the model's
// fp32 embedding, so a GGUF load holds one fp32 copy of the table, not two.
// A checkpoint has either these or "model.embed_tokens.weight".
inline constexpr const char* kEmbeddingGgmlRows = "model.embed_tokens.weight_ggml_rows";
inline constexpr const char* kEmbeddingGgmlType = "model.embed_tokens.weight_ggml_type";

// Builds a Model: linear weights become DenseLinear (F32 zero copy, F16/BF16
// kept in their dtype), embedding / norms / biases are widened to fp32.
//
// Shape rules ([out, in]; per-layer widths may be smaller than the config's
// for structurally pruned models, but only by whole heads / channels):
//   q_proj [hq*head_dim, dim], 0 < hq <= n_heads
//   k_proj, v_proj [hkv*head_dim, dim], 0 < hkv <= n_kv_heads, hq % hkv == 0
//   o_proj [dim, hq*head_dim]
//   gate_proj, up_proj [h, dim], 0 < h <= hidden_dim;  down_proj [dim, h]
//   embed_tokens, lm_head [vocab, dim]; norms [dim]; "<module>.bias" [out].
// With per-layer widths in the config (ModelConfig::layer_n_heads etc., the
// "squeeze_layer_widths" key of config.json) layer l's hq, hkv and h must
// equal its entries exactly.
// q/k/v biases are required when config.attention_bias; any other bias is
// optional. Linear modules of a non-dense kind (linear_kinds) are built by the
// loader registered for that kind (linear_loaders.h) from their
// "<module>.<suffix>" tensors and must satisfy the same [out, in] rules. Missing, mis-shaped or unexpected
// tensors are InvalidArgument naming the file and the tensor. An lm_head.weight present in a tied model is
// ignored (transformers does the same). "*.rotary_emb.inv_freq" is ignored.
// Float weights, norms and biases must be finite: a NaN or Inf is an
// InvalidArgument naming the file, the tensor, the element index and value.
absl::StatusOr<Model> BuildModel(CheckpointTensors checkpoint);

}  // namespace squeeze
