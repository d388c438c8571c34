// Plain Hugging Face export ("squeeze export --format hf"): every linear
// layer written as a dense "<module>.weight" (+ bias) in options.dtype, so
// transformers / vLLM / llama.cpp's converter load it without squeeze's
// layer kinds. Compressed kinds (packed-int, sparse, low-rank, ...) are
// expanded to their DenseWeight(); the file layout is SaveModel's
// (hf_checkpoint.h), sharded past options.max_shard_bytes with
// model.safetensors.index.json.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/formats/quantized_export.h"
#include "workers/engine/model/model.h"

namespace squeeze {

// Replaces every non-dense linear layer of `model` by a DenseLinear holding
// its DenseWeight() and bias (so `model` is changed), then writes `dir`.
// The report lists each layer: "dense", or "dense (<kind> expanded)", with
// the error of the written weight (rounded to options.dtype) against the
// layer's own weight.
absl::StatusOr<QuantizedExportResult> ExportDenseHf(Model& model, const std::string& dir,
                                                    const SaveOptions& options = {});

}  // namespace squeeze
