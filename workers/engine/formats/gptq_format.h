// GPTQ checkpoints as AutoGPTQ / GPTQModel write them and transformers
// (optimum), vLLM and ExLlama load them ("gptq" checkpoint format, written
// from AutoGPTQ's nn_modules/qlinear QuantLinear.pack and GPTQModel's
// gptq_v2 conversion).
//
// Per quantized linear M with b bits (b in {2, 4, 8}; p = 32 / b values per
// int32), in inputs, out outputs, ng = ceil(in / group_size) groups (1 when
// group_size is -1):
//   M.qweight  I32 [in / p, out]: packed along the INPUT dim; word (k, j)
//              holds the unsigned codes u of W[j, k*p + i] for i = 0..p-1 at
//              bit b*i (W = the [out, in] weight)
//   M.qzeros   I32 [ng, out / p]: packed along the OUTPUT dim; word (g, k)
//              holds zero point of output k*p + i at bit b*i, stored as
//              uz - 1 in the classic "gptq" format (AutoGPTQ's historic
//              off-by-one; readers add 1 back) and as uz in "gptq_v2"
//   M.scales   F16 [ng, out]
//   M.g_idx    I32 [in]: group of each input (i / group_size, or the
//              act-order permutation's groups when desc_act)
//   M.bias     F16 [out] (optional)
//   w[j, c] = scales[g, j] * (u[j, c] - uz[g, j]),  g = g_idx[c]
// Unsigned codes relate to the engine's signed ones by u = q + 2^(b-1),
// uz = z + 2^(b-1); symmetric quantization has uz = 2^(b-1) everywhere.
// quantize_config.json (and config.json "quantization_config", with
// quant_method "gptq"): bits, group_size (-1 = per channel), desc_act, sym,
// damp_percent, static_groups, true_sequential, lm_head, quant_method,
// checkpoint_format, model_file_base_name, meta; modules left unquantized
// are listed in GPTQModel's "dynamic" ({"-:<regex>": {}}).
//
// Export refuses (InvalidArgument naming the module): bit widths other than
// 2/4/8 (3-bit packing crosses words), in or out not a multiple of p (the
// format has no padding), layers with different bits or group sizes (one
// quantize_config), and, in the classic format, an unsigned zero point of 0
// (uz - 1 = -1 does not fit; use checkpoint_format gptq_v2). With
// unfit_as_dense, layers whose shapes do not fit are written dense and
// listed in "dynamic" instead.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/formats/checkpoint_tensors.h"
#include "workers/engine/formats/quantized_export.h"
#include "workers/engine/model/model.h"

namespace squeeze {

struct GptqExportOptions {
  DType dense_dtype = DType::kF16;  // embeddings, norms, dense layers, biases
  DType scale_dtype = DType::kF16;  // scales (F32 keeps them exact)
  bool v2 = false;                  // checkpoint_format "gptq_v2" (zero points not minus one)
  bool unfit_as_dense = false;      // shapes the format cannot pack -> dense + "dynamic" skip rule
  int64_t max_shard_bytes = kDefaultMaxShardBytes;  // sharded_safetensors.h
};

absl::StatusOr<QuantizedExportResult> ExportGptq(const Model& model, const std::string& dir,
                                                 const GptqExportOptions& options = {});

// Rewrites the qweight/qzeros/scales/g_idx modules of `ck` into the engine's
// packed-int kind. `config_json` is the GPTQ config object (from
// quantize_config.json or config.json's quantization_config).
absl::Status GptqToCheckpoint(const std::string& config_json, const std::string& source, CheckpointTensors* ck);

}  // namespace squeeze
