// Loading and saving whole models.
//
// LoadModel accepts
//   - a Hugging Face directory: config.json + model.safetensors, or sharded
//     model-0000k-of-0000N.safetensors + model.safetensors.index.json
//     (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM; F32/F16/BF16),
//   - a llama2.c v0 checkpoint (.bin): q/k rows are permuted from llama2.c's
//     interleaved RoPE layout into the engine's HF half-split layout,
//   - a GGUF file (.gguf, llama arch): every tensor dequantized to fp32 and
//     q/k rows permuted back (gguf_model.h; its tokenizer is read by
//     LoadModelAndTokenizer).
// Weights are memory-mapped; F16/BF16 stay in their dtype inside DenseLinear.
// Compressed linear kinds written by SaveModel are rebuilt by the loaders
// registered in linear_loaders.h (SaveModel records each module's kind in the
// safetensors __metadata__). Implementation: safetensors.h, hf_config.h,
// hf_checkpoint.h, llama2c.h, checkpoint_tensors.h.
// Errors name the file and the tensor (e.g. "model.safetensors: tensor
// model.layers.3.mlp.up_proj.weight: shape [172, 63], expected [172, 64]").
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/formats/sharded_safetensors.h"
#include "workers/engine/model/model.h"

namespace squeeze {

absl::StatusOr<Model> LoadModel(const std::string& path);

struct SaveOptions {
  DType dtype = DType::kF32;             // F32, F16 or BF16 for dense weights
  // Larger models are sharded + index.json (sharded_safetensors.h); the
  // default is transformers' "5GB".
  int64_t max_shard_bytes = kDefaultMaxShardBytes;
};

// Writes an HF directory (config.json + safetensors) that LoadModel reads back
// exactly (for F32). Files appear atomically; the directory is created.
absl::Status SaveModel(const Model& model, const std::string& dir, const SaveOptions& options = {});

}  // namespace squeeze
