// AWQ checkpoints as AutoAWQ writes them with version "gemm" (and
// transformers / vLLM load them), written from AutoAWQ's
// awq/modules/linear/gemm.py (WQLinear_GEMM.from_linear) and
// awq/utils/packing_utils.py.
//
// 4-bit only. Per quantized linear M (in inputs, out outputs, G = group_size,
// ng = in / G):
//   M.qweight  I32 [in, out / 8]: packed along the OUTPUT dim in AWQ's
//              interleaved order: nibble i (bits 4i..4i+3) of word (c, k)
//              holds the unsigned code of W[8k + kAwqOrder[i], c],
//              kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7}
//   M.qzeros   I32 [ng, out / 8]: unsigned zero points, same packing
//   M.scales   F16 [ng, out]
//   M.bias     F16 [out] (optional)
//   w[j, c] = (u[j, c] - uz[g, j]) * scales[g, j],  g = c / G
// (no minus-one convention; always asymmetric: a symmetric layer is written
// with uz = 8, the same values). config.json "quantization_config":
// {"quant_method": "awq", "bits": 4, "group_size": G, "zero_point": true,
//  "version": "gemm", "modules_to_not_convert": [...] | null}; older
// AutoAWQ's quant_config.json {"w_bit", "q_group_size", "zero_point",
// "version"} is read too.
//
// Export refuses (InvalidArgument naming the module): bits other than 4;
// act-order g_idx (AWQ has none); per-channel / tensor strategy (AWQ stores
// one group size for every layer); in not a multiple of G (WQLinear_GEMM
// asserts it); out not a multiple of 8; layers with different group sizes.
// With unfit_as_dense the shape misfits are written dense and listed in
// modules_to_not_convert instead.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/formats/checkpoint_tensors.h"
#include "workers/engine/formats/quantized_export.h"
#include "workers/engine/model/model.h"

namespace squeeze {

inline constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

struct AwqExportOptions {
  DType dense_dtype = DType::kF16;
  DType scale_dtype = DType::kF16;
  bool unfit_as_dense = false;
  int64_t max_shard_bytes = kDefaultMaxShardBytes;  // sharded_safetensors.h
};

absl::StatusOr<QuantizedExportResult> ExportAwq(const Model& model, const std::string& dir,
                                                const AwqExportOptions& options = {});

// Rewrites the AWQ modules of `ck` into the engine's packed-int kind.
// `config_json`: config.json's quantization_config or quant_config.json.
absl::Status AwqToCheckpoint(const std::string& config_json, const std::string& source, CheckpointTensors* ck);

}  // namespace squeeze
