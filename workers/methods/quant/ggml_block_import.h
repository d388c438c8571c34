// Lossless import of Q4_0 / Q8_0 GGUF weights: instead of the GGUF reader's
// dequantize-to-fp32 layers (formats/gguf_model.h), every 2-D weight stored
// as Q4_0 or Q8_0 becomes a GgmlBlockLinear holding the file's blocks
// unchanged (except that the q/k rows are permuted back to the engine's
// half-split RoPE layout, each row's blocks moving as a whole), so the block
// kernels (kernels/cpu/q8_0_gemm.h) run them. Tensors of other types keep the
// reader's dense layers. The embedding stays fp32 (it is only gathered).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/formats/gguf.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/model/model.h"

namespace squeeze {

// Replaces the linears of `model` (built from `file` by GgufToCheckpoint +
// BuildModel) whose tensors are Q4_0 / Q8_0; returns how many. Errors name
// the tensor (shape that does not match the model's layer).
absl::StatusOr<int> UseGgufBlockLayers(const GgufFile& file, Model& model);

// LoadGgufModel + UseGgufBlockLayers on the same file.
absl::StatusOr<GgufModel> LoadGgufModelWithBlocks(const std::string& path);

}  // namespace squeeze
