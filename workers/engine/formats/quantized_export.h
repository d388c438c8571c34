// Shared pieces of the quantized-checkpoint exporters (compressed-tensors,
// GPTQ, AWQ): every one writes a Hugging Face directory
//   config.json          the model's config (hf_config.h) plus the format's
//                        "quantization_config" object
//   model.safetensors    embeddings / norms / dense linears in `dense_dtype`,
//                        quantized linears as the format stores them;
//                        __metadata__ {"format": "pt"} (transformers needs it);
//                        or, past max_shard_bytes, model-0000k-of-0000N
//                        shards + model.safetensors.index.json
//                        (sharded_safetensors.h)
//   extra files          e.g. quantize_config.json, recipe.yaml
// Every tensor is computed before anything is written, so a refused layer
// leaves the directory untouched; each file appears atomically.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/formats/safetensors.h"
#include "workers/engine/formats/sharded_safetensors.h"
#include "workers/engine/model/model.h"

namespace squeeze {

// How one linear layer was written, and the error of the written weight
// against the layer's own effective weight ||W_file - W|| / ||W||.
struct QuantizedLayerReport {
  std::string module;
  std::string source_kind;  // the engine layer kind
  std::string how;          // "exact", "dense", "scales rounded to F16", ...
  double rel_error = 0.0;
};

struct QuantizedExportResult {
  std::string format;
  std::vector<QuantizedLayerReport> layers;
  int64_t bytes = 0;  // tensor data written (all shards)
  int shards = 1;     // safetensors files written
};

// The dense tensors of a linear layer: "<module>.weight" (its DenseWeight()
// in `dtype`) and "<module>.bias" when it has one.
std::vector<SafetensorsEntry> DenseLinearEntries(const std::string& module, const LinearLayer& layer, DType dtype);

// The layers a GPTQ / AWQ export writes unquantized (not packed-int, or packed
// in a way the format cannot hold): their tensors go in as plain dense
// weights, their names into the format's skip list.
struct DenseFallback {
  std::vector<std::string> skipped;  // module names, in model order
  std::string first_unfit;           // "<module>: <reason>" of the first layer written dense for its shape

  // Appends `layer`'s dense tensors (in `dtype`) to `entries` and `report`
  // (its error against `reference`) to `layers`. `unfit` is why a packed-int
  // layer cannot be packed, or empty for a layer that is not packed-int.
  void Add(const std::string& module, const LinearLayer& layer, const MatrixRM& reference, const std::string& unfit,
           DType dtype, QuantizedLayerReport report, std::vector<SafetensorsEntry>& entries,
           std::vector<QuantizedLayerReport>& layers);

  // The error when no layer could be packed; `format` prefixes the message.
  absl::Status NothingPacked(const std::string& format) const;
};

// ||a - b||_F / ||b||_F (0 when b == 0).
double WrittenRelativeError(const MatrixRM& a, const MatrixRM& b);

// The values a float tensor of `dtype` stores for `v` (F32 exact; F16 / BF16
// rounded to nearest even).
float RoundTo(DType dtype, float v);

struct IntWeight;  // int_weight.h

// WrittenRelativeError of a packed-int layer as a reader gets it back: `w`
// with its scales rounded to `scale_dtype` (how the file stores them),
// dequantized, against `reference` (the layer's DenseWeight()).
double PackedWrittenRelativeError(const IntWeight& w, DType scale_dtype, const MatrixRM& reference);

// The tail GPTQ and AWQ share once a packed layer's own tensors are in
// `entries`: appends "<module>.bias" (in `dense_dtype`) when `w` has a bias,
// fills `report` (rel_error from PackedWrittenRelativeError; how "exact" or
// "scales rounded to <scale_dtype>") and appends it to `layers`.
void FinishPackedLayer(const std::string& module, const IntWeight& w, DType scale_dtype, DType dense_dtype,
                       const MatrixRM& reference, QuantizedLayerReport report,
                       std::vector<SafetensorsEntry>& entries, std::vector<QuantizedLayerReport>& layers);

// The error for a packed-int layer `format` cannot pack (`unfit` says why)
// when dense fallback is off: "<format>: <module> (<kind>): <unfit>; pass
// --unfit-dense to write such layers unquantized; nothing was written".
absl::Status UnfitLayerError(const std::string& format, const std::string& module, const std::string& kind,
                             const std::string& unfit);

// w's scales laid out [groups, out] (row g holds group g of every output),
// the "<module>.scales" tensor of GPTQ and AWQ checkpoints.
std::vector<float> ScalesGroupMajor(const IntWeight& w);

// Writes the directory described above. `linear_entries` are the tensors of
// every linear layer (already in the format's layout); the embeddings, norms
// (and nothing else) are added here. `quantization_config_json` is a JSON
// object text stored under config.json's "quantization_config". Returns the
// tensor bytes written; `shards` (when not null) receives the shard count.
absl::StatusOr<int64_t> WriteQuantizedHfDir(const Model& model, const std::string& dir, DType dense_dtype,
                                            std::vector<SafetensorsEntry> linear_entries,
                                            const std::string& quantization_config_json,
                                            const std::map<std::string, std::string>& extra_files = {},
                                            int64_t max_shard_bytes = kDefaultMaxShardBytes, int* shards = nullptr);

// "float32" / "float16" / "bfloat16" for config.json's torch_dtype.
const char* TorchDtypeName(DType dtype);

}  // namespace squeeze
