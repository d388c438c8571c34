// compressed-tensors checkpoints (the format llm-compressor writes and vLLM /
// transformers load), written from neuralmagic/compressed-tensors 0.12
// (compressors/quantized_compressors/pack_quantized.py, naive_quantized.py,
// sparse_compressors/sparse_bitmask.py, sparse_24_bitmask.py,
// quantization/quant_config.py, quant_args.py, lifecycle/initialize.py).
//
// config.json "quantization_config":
//   {"config_groups": {"group_0": {"targets": [...], "weights": {num_bits,
//      type "int", symmetric, group_size, strategy "channel"|"group"|"tensor",
//      block_structure, dynamic, actorder null|"group", observer,
//      observer_kwargs}, "input_activations": null | {...}, "output_activations":
//      null, "format": ...}, ...},
//    "format": "pack-quantized" | "int-quantized" | "naive-quantized" |
//      "mixed-precision" (several), "global_compression_ratio": null,
//    "ignore": [...], "kv_cache_scheme": null, "quant_method":
//    "compressed-tensors", "quantization_status": "compressed",
//    "sparsity_config": {}, "transform_config": {}, "version": "0.12.2"}
// A target is a module name, "re:<regex>" (searched in the module name) or a
// class name ("Linear" matches every linear layer).
//
// pack-quantized tensors of module M (int weights, 2..8 bit; 32 / b values
// per int32):
//   M.weight_packed      I32 [out, ceil(in / (32/b))]: the signed code q
//     stored as u = q + 2^(b-1), value i of a row at bit (i % (32/b)) * b of
//     word i / (32/b), zero padded (pack_to_int32, packed_dim 1)
//   M.weight_scale       float [out, groups] (channel: [out, 1]; tensor: [1])
//     in the model dtype
//   M.weight_shape       I64 [2] = {out, in}
//   M.weight_zero_point  I32 [ceil(out / (32/b)), groups]: asymmetric group /
//     channel only, zero points packed the same way along the OUTPUT dim
//     (pack_to_int32 packed_dim 0); symmetric layers store none
//   M.weight_g_idx       I32 [in]: actorder "group" only
// int-quantized / naive-quantized: M.weight int8 [out, in] (signed codes),
// M.weight_scale, M.weight_zero_point int8 (asymmetric, unpacked).
// Dequantization: w = (q - z) * s with s, z of the input's group.
// sparse-bitmask / sparse-24-bitmask (config "sparsity_config"): the layout,
// config keys and import are in compressed_tensors_sparse.h.
//
// Export (engine layer kind -> compressed-tensors):
//   packed_int_* with 4 or 8 bits -> pack-quantized (vLLM runs 4 and 8 bit
//     only; other widths are refused). Tensor-strategy layers and layers
//     whose one group covers the whole row are written as strategy channel
//     (the same values). Codes and zero points are copied exactly; scales are
//     stored in options.scale_dtype (F32 keeps them exact).
//   w8a8_int8_channel_token -> int-quantized with input_activations int8
//     symmetric per-token dynamic (the W8A8 preset).
//   sparse_* (pruned, methods/prune/sparse_linear.h) -> sparsity_config
//     (options.sparse_format): "auto" = sparse-24-bitmask when every sparse
//     layer is sparse_2of4, sparse-bitmask otherwise; "sparse-24-bitmask"
//     refuses a layer that is not 2:4 (naming the row and inputs); "dense"
//     writes them dense. Values in options.dense_dtype (F32: exact). The
//     module is listed in sparsity_config.targets (and, not being quantized,
//     in the quantization ignore list). A model with sparse and quantized
//     layers writes both configs (compressed-tensors' decompress_model handles
//     each module by its own config). Runs in: transformers / compressed-
//     tensors (both formats, decompressed on load); vLLM runs
//     sparse-24-bitmask (2:4 cutlass kernels) only.
//   anything else -> dense "M.weight" in options.dense_dtype, listed in ignore.
// A model with neither quantized nor sparse layers is refused (export it as
// a plain checkpoint). The safetensors are sharded past
// options.max_shard_bytes (sharded_safetensors.h).
// Not refused (compressed-tensors' own decompression and transformers load
// them; vLLM's Marlin kernels may not): a group size that does not divide
// in_features (the last group of a row is shorter, as strategy_cdiv allows).
// Import: every scheme above back into the engine's kinds (packed_int_*,
// w8a8_*, sparse_bitmask / sparse_2of4); other formats and
// arguments (float types, block strategy, static activations) are
// Unimplemented naming the module and the field.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/formats/checkpoint_tensors.h"
#include "workers/engine/formats/quantized_export.h"
#include "workers/engine/model/model.h"

namespace squeeze {

inline constexpr char kCompressedTensorsVersion[] = "0.12.2";

struct CompressedTensorsExportOptions {
  DType dense_dtype = DType::kF32;  // embeddings, norms, dense layers, biases
  DType scale_dtype = DType::kF32;  // weight_scale
  std::string recipe_yaml;          // written as recipe.yaml when non-empty
  // Sparse layers: "auto", "sparse-bitmask", "sparse-24-bitmask" or "dense".
  std::string sparse_format = "auto";
  int64_t max_shard_bytes = kDefaultMaxShardBytes;  // sharded_safetensors.h
};

absl::StatusOr<QuantizedExportResult> ExportCompressedTensors(const Model& model, const std::string& dir,
                                                              const CompressedTensorsExportOptions& options = {});

// Rewrites the compressed modules of `ck` (read by ReadHfCheckpoint from a
// directory whose config.json "quantization_config" is `quantization_config_json`)
// into the engine's layer kinds. `source` names the directory in errors.
absl::Status CompressedTensorsToCheckpoint(const std::string& quantization_config_json, const std::string& source,
                                           CheckpointTensors* ck);

}  // namespace squeeze
