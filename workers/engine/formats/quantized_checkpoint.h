// Detects a quantized Hugging Face checkpoint directory and rewrites its
// tensors into the engine's layer kinds, so LoadModel reads it:
//   config.json "quantization_config"."quant_method":
//     "compressed-tensors" -> compressed_tensors_format.h
//     "gptq"               -> gptq_format.h
//     "awq"                -> awq_format.h
//     anything else        -> Unimplemented naming the method
//   no quantization_config: quantize_config.json (AutoGPTQ) -> GPTQ,
//   quant_config.json (older AutoAWQ) -> AWQ, otherwise a plain checkpoint.
// The quantized layers become "packed_int_*" / "w8a8_*" kinds whose loaders
// methods/stored_linear.h registers (RegisterMethodLinearLoaders); without
// them BuildModel names the kind it cannot build.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/formats/checkpoint_tensors.h"

namespace squeeze {

// The quantization format of `dir` ("compressed-tensors", "gptq", "awq") or
// "" for a plain checkpoint; errors for unreadable / unsupported configs.
absl::StatusOr<std::string> QuantizedCheckpointFormat(const std::string& dir);

// Converts `ck` (ReadHfCheckpoint(dir)) in place; a no-op for plain ones.
absl::Status ConvertQuantizedCheckpoint(const std::string& dir, CheckpointTensors* ck);

}  // namespace squeeze
