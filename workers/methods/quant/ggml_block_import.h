// Lossless import of Q4_0 / Q8_0 GGUF weights: instead of the GGUF reader's
// dequantize-to-fp32 layers (formats/gguf_model.h), every 2-D weight stored
// as Q4_0 or Q8_0 becomes a GgmlBlockLinear holding the file's blocks
// unchanged (except that the q/k rows are permuted back to the engine's
// half-split RoPE layout, each row's blocks moving as a whole), so the block
// kernels (kernels/cpu/q8_0_gemm.h) run them. Tensors of other types keep the
// reader's dense layers. The embedding stays fp32 (it is only gathered).
// LoadGgufModelWithBlocks never dequantizes the Q4_0 / Q8_0 linears (the
// blocks go from the file mapping to the layers, unpermuted ones without a
// copy, and each layer converts them once into its packed-int form,
// releasing the mapped pages as it goes: ggml_block_linear.h); the older
// dequantize-then-replace path is kept as
// LoadGgufModelWithBlocksReference and UseGgufBlockLayers.
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

// Loads `path` keeping its Q4_0 / Q8_0 linear weights as blocks from the
// start: LoadGgufModel with GgufImportOptions::keep_ggml_blocks (their fp32
// copy is never made; the loader for "gguf_q" is registered here), so peak
// memory is about the file plus the blocks (the fp32 embedding aside)
// instead of the whole model in fp32. Layers and logits are bit-identical
// to LoadGgufModelWithBlocksReference (tests/unit/kernels/
// ggml_block_import_test.cc); a non-finite block scale, which the reference
// refuses through the dequantized NaN / Inf weight, is refused naming the
// tensor, row and block.
absl::StatusOr<GgufModel> LoadGgufModelWithBlocks(const std::string& path);

// The reference path: LoadGgufModel (everything dequantized to fp32) +
// UseGgufBlockLayers on the same file.
absl::StatusOr<GgufModel> LoadGgufModelWithBlocksReference(const std::string& path);

}  // namespace squeeze
